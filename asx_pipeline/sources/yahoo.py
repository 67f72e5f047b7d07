"""Daily bars and corporate actions from Yahoo Finance, through yfinance, one ticker at a time.

Each ticker is one `Ticker.history` request for the whole range, made from a small thread pool of
our own (ASX_YAHOO_MAX_CONCURRENCY) with yfinance told to raise instead of logging. That gives
three things `yf.download` cannot: every HTTP request passes the process's RequestLimiter (see
yahoo_http.py), a failure arrives as an exception naming its ticker (not a log line to parse), and
only the ticker that failed is asked again, with backoff.

A ticker that still fails after ASX_YAHOO_MAX_RETRIES is returned in `PriceHistory.failed` with
the reason, and the others are returned as usual: one stubborn ticker never costs the day. A bar
that is junk is refused on its own (bar_validation.py) and returned in `PriceHistory.refused`.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import logging
import math
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import peewee
import requests
import tenacity
import yfinance as yf
from yfinance import cache as yf_cache
from yfinance.exceptions import YFDataException, YFRateLimitError

from asx_pipeline.calendar import SYDNEY, sydney_today
from asx_pipeline.sources.asx_directory import load_directory, redact_url
from asx_pipeline.sources.bar_validation import RefusedBar, refuse_junk_bars
from asx_pipeline.sources.market_data import (
    ACTION_COLUMNS,
    PRICE_COLUMNS,
    PriceHistory,
)
from asx_pipeline.sources.yahoo_http import (
    RequestLimiter,
    directory_session,
    limit_session,
    process_limiter,
    yfinance_default_session,
)

_log = logging.getLogger(__name__)
# yfinance's column names -> ours. Dividends/Stock Splits are there because actions=True.
_PRICE_FIELDS = {
    "Open": "open",
    "High": "high",
    "Low": "low",
    "Close": "close",
    "Adj Close": "adj_close",
    "Volume": "volume",
}
_ACTION_FIELDS = {"Dividends": "dividend", "Stock Splits": "split"}
_REQUIRED_FIELDS = [*_PRICE_FIELDS, *_ACTION_FIELDS]
# Every ASX ticker trades in Sydney. Telling yfinance's timezone cache so saves the extra
# `range=1d` chart request yfinance would otherwise make per ticker to learn it.
ASX_TIMEZONE = "Australia/Sydney"
# Bars before the range are fetched in the same request so that the first session of the range
# has a previous close to be compared with (the unit-error rule); ASX closures are at most 4 days.
_LOOKBACK_DAYS = 10
# Exception names (requests', curl_cffi's, urllib3's) that mean the network let us down.
_NETWORK_ERRORS = frozenset(
    {
        "ConnectionError",
        "ConnectTimeout",
        "ReadTimeout",
        "Timeout",
        "TimeoutError",
        "ChunkedEncodingError",
        "RemoteDisconnected",
        "ProtocolError",
        "IncompleteRead",
        "CurlError",
    }
)
_MAX_REASON_CHARS = 300
_URL_QUERY = re.compile(r"\?[^\s'\"),]*")


def is_transient(error: BaseException) -> bool:
    """Worth asking Yahoo again: throttling, an outage page, the network, a garbled answer, or
    two processes racing on yfinance's SQLite caches. Not: Yahoo saying it has no such data."""
    if isinstance(error, YFRateLimitError):
        return True
    if isinstance(error, YFDataException):
        # yfinance's name for Yahoo's "Will be right back" outage page.
        return "CURRENTLY DOWN" in str(error)
    if isinstance(error, json.JSONDecodeError | requests.RequestException | OSError):
        # An HTML error page or a body cut short in place of JSON; the network.
        return True
    if isinstance(error, peewee.IntegrityError | peewee.OperationalError):
        return True
    return any(kind.__name__ in _NETWORK_ERRORS for kind in type(error).__mro__)


def describe_error(error: BaseException) -> str:
    """A one-line reason naming what went wrong, for metadata, summaries and alerts."""
    if isinstance(error, YFRateLimitError):
        text = "Yahoo answered HTTP 429 Too Many Requests"
    elif isinstance(error, json.JSONDecodeError):
        text = f"Yahoo's answer was not valid JSON ({error.msg} at char {error.pos})"
    else:
        # HTTP errors repeat the URL (or its path), whose query carries the session's crumb.
        detail = _URL_QUERY.sub("", " ".join(str(error).split()))
        text = f"{type(error).__name__}: {detail}" if detail else type(error).__name__
    return text[:_MAX_REASON_CHARS]


@dataclass
class _TickerResult:
    prices: pd.DataFrame
    actions: pd.DataFrame
    refused: list[RefusedBar] = field(default_factory=list)
    failure: str | None = None
    transient: bool = False


class YahooMarketData:
    """The `yahoo` market-data source: real ASX prices via yfinance, one request per ticker."""

    name = "yahoo"
    point_in_time_directory = False

    def __init__(
        self,
        *,
        cache_dir: Path,
        directory_source: str,
        requests_per_second: float = 2.0,
        max_concurrency: int = 2,
        max_retries: int = 5,
        timeout_seconds: float = 30.0,
        session: Any = None,
        retry_wait_initial: float = 1.0,
        retry_wait_max: float = 60.0,
        limiter: RequestLimiter | None = None,
        today: Callable[[], dt.date] | None = None,
    ) -> None:
        if max_retries < 0:
            raise ValueError(f"max_retries must not be negative, got {max_retries}")
        if max_concurrency < 1:
            raise ValueError(f"max_concurrency must be at least 1, got {max_concurrency}")
        self.max_retries = max_retries
        self.max_concurrency = max_concurrency
        self.timeout_seconds = timeout_seconds
        self.retry_wait_initial = retry_wait_initial
        self.retry_wait_max = retry_wait_max
        self.limiter = limiter or process_limiter(requests_per_second, max_concurrency)
        self._session = limit_session(session or shared_yfinance_session(), self.limiter)
        self._directory_session = (
            self._session if session is not None else directory_session(self.limiter)
        )
        self._directory_source = directory_source
        self._directory: pd.DataFrame | None = None
        self._today = today or sydney_today
        self._cache_dir = Path(cache_dir)
        point_yfinance_cache_at(self._cache_dir)
        # Raise, do not log: our pool sees each ticker's exception. (A process-wide yfinance
        # setting; this process only ever wants it this way.)
        yf.config.debug.hide_exceptions = False

    @property
    def directory_origin(self) -> str:
        return redact_url(self._directory_source)

    @property
    def session(self) -> Any:
        """The (limited) HTTP session every Yahoo request of this source goes through."""
        return self._session

    def directory(self, as_of: dt.date) -> pd.DataFrame:
        """The ASX directory. The ASX only publishes the current list, so `as_of` cannot select
        an older one; it is loaded once per instance because a run asks for it per partition."""
        if self._directory is None:
            self._directory = load_directory(
                self._directory_source, session=self._directory_session
            )
        return self._directory.copy()

    def price_history(
        self,
        tickers: Sequence[str],
        first: dt.date,
        last: dt.date,
        history_from: Mapping[str, dt.date] | None = None,
    ) -> PriceHistory:
        """Bars and actions with a Sydney trade date in [first, last] (from `history_from[t]`
        for a ticker listed there): one request per ticker for its whole range, at most
        `max_concurrency` at once."""
        if last < first:
            raise ValueError(f"last ({last}) is before first ({first})")
        wanted = list(dict.fromkeys(t.strip().upper() for t in tickers))
        starts = {t.strip().upper(): day for t, day in (history_from or {}).items()}
        self._prepare_caches(wanted)
        with ThreadPoolExecutor(self.max_concurrency, thread_name_prefix="yahoo") as pool:
            results = list(
                pool.map(lambda t: self._ticker(t, min(starts.get(t, first), first), last), wanted)
            )
        prices, actions, refused, failed, exhausted = [], [], [], {}, set()
        for ticker, result in zip(wanted, results, strict=True):
            if result.failure is not None:
                failed[ticker] = result.failure
                if result.transient:
                    exhausted.add(ticker)
                continue
            prices.append(result.prices)
            actions.append(result.actions)
            refused.extend(result.refused)
        return PriceHistory(
            prices=_concat(prices, PRICE_COLUMNS, ["trade_date", "yahoo_ticker"]),
            actions=_concat(actions, ACTION_COLUMNS, ["ex_date", "yahoo_ticker", "action"]),
            failed=dict(sorted(failed.items())),
            refused=sorted(refused, key=lambda bar: (bar.ticker, bar.session)),
            retries_exhausted=frozenset(exhausted),
        )

    def _ticker(self, ticker: str, first: dt.date, last: dt.date) -> _TickerResult:
        try:
            frame = self._history_with_retries(ticker, first, last)
        except Exception as error:
            # Whatever yfinance raised on Yahoo's answer (its own errors, or a ValueError or
            # KeyError on a body it could not parse) is this ticker's failure, not the run's.
            transient = is_transient(error)
            tries = self.max_retries + 1
            attempts = f" (still failing after {tries} attempts)" if transient else ""
            return _TickerResult(
                _empty_prices(),
                _empty_actions(),
                failure=f"{describe_error(error)}{attempts}",
                transient=transient,
            )
        try:
            return _to_canonical(ticker, frame, first, last)
        except Exception as error:  # one odd answer must not cost the other tickers their day
            _log.exception("could not read Yahoo's answer for %s", ticker)
            return _failed(f"could not read Yahoo's answer: {describe_error(error)}")

    def _history_with_retries(self, ticker: str, first: dt.date, last: dt.date) -> pd.DataFrame:
        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self.max_retries + 1),
            wait=tenacity.wait_exponential_jitter(
                initial=self.retry_wait_initial,
                max=self.retry_wait_max,
                jitter=self.retry_wait_initial,
            ),
            retry=tenacity.retry_if_exception(is_transient),
            before_sleep=self._before_retry,
            reraise=True,
        )
        return retrying(self._history, ticker, first, last)

    def _history(self, ticker: str, first: dt.date, last: dt.date) -> pd.DataFrame:
        """One chart request: from a few days before `first` through today.

        Through today, not just `last`: Yahoo restates bars for every later split, so the
        splits after `last` must be seen to store prices as traded. yfinance's end is exclusive;
        the bounds are midnights in the exchange's zone.
        """
        start = first - dt.timedelta(days=_LOOKBACK_DAYS)
        end = max(last, self._today()) + dt.timedelta(days=1)
        return yf.Ticker(ticker, session=self._session).history(
            start=start.isoformat(),
            end=end.isoformat(),
            interval="1d",
            auto_adjust=False,
            actions=True,
            repair=False,
            timeout=self.timeout_seconds,
        )

    def _before_retry(self, state: tenacity.RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        wait = state.next_action.sleep if state.next_action else 0.0
        if isinstance(error, YFRateLimitError):
            # Throttled: every thread of the process slows down, not just this ticker's.
            self.limiter.pause(wait)
        ticker = state.args[0] if state.args else "?"
        _log.info(
            "Yahoo: %s attempt %d failed (%s); retrying in %.1fs",
            ticker,
            state.attempt_number,
            describe_error(error) if error else "?",
            wait,
        )

    def _prepare_caches(self, tickers: list[str]) -> None:
        """Open yfinance's SQLite caches and record the ASX timezone, one process at a time.

        Several processes (a run's steps, the daily tick beside a backfill) share the cache
        folder; creating its tables or writing the same row at once fails in SQLite, so this
        first touch happens under an exclusive lock on the folder. The pool's retries are the
        safety net for the cookie yfinance stores on its first request.
        """
        with _exclusive_lock(self._cache_dir / "yfinance.lock"):
            try:
                tz_cache = yf_cache.get_tz_cache()
                for ticker in tickers:
                    if ticker.endswith(".AX") and tz_cache.lookup(ticker) != ASX_TIMEZONE:
                        tz_cache.store(ticker, ASX_TIMEZONE)
                yf_cache.get_cookie_cache().lookup("curlCffi")
            except Exception as error:  # an optimisation only: never let it stop a download
                _log.debug("could not prepare the yfinance caches: %s", error)


_SHARED_SESSION: Any = None


def shared_yfinance_session() -> Any:
    """One yfinance-made session per process (so its cookie and crumb are fetched once)."""
    global _SHARED_SESSION
    if _SHARED_SESSION is None:
        _SHARED_SESSION = yfinance_default_session()
    return _SHARED_SESSION


def point_yfinance_cache_at(cache_dir: Path) -> None:
    """Keep yfinance's timezone and cookie caches (SQLite files) in `cache_dir`, under our data
    folder rather than the user's home.

    yfinance holds one cache per process and only honours a new location before it first uses
    it, so construct the source before anything else in the process calls yfinance.
    """
    Path(cache_dir).mkdir(parents=True, exist_ok=True)
    yf.set_tz_cache_location(str(cache_dir))


@contextmanager
def _exclusive_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _to_canonical(
    ticker: str, frame: pd.DataFrame, first: dt.date, last: dt.date
) -> _TickerResult:
    """Prices and actions in our columns, the bars refused as junk, or why the ticker failed."""
    missing = [c for c in _REQUIRED_FIELDS if c not in frame.columns]
    if missing:
        return _failed(f"Yahoo response lacks columns: {missing}")
    frame = frame.copy()
    frame.index = _sydney_dates(frame.index)
    problem = _junk_in_actions(frame)
    if problem:
        return _failed(problem)
    frame, refused = refuse_junk_bars(ticker, frame)
    # Undo the splits before trimming: a split after `last` restated the bars inside the range.
    frame = _undo_split_adjustment(frame)
    frame = frame[(frame.index >= first) & (frame.index <= last)]
    refused = [bar for bar in refused if first <= bar.session <= last]
    prices = _prices(ticker, frame)
    if prices.empty and not refused:
        return _failed(f"no bars between {first} and {last}")
    return _TickerResult(prices, _actions(ticker, frame), refused)


def _failed(reason: str) -> _TickerResult:
    return _TickerResult(_empty_prices(), _empty_actions(), failure=reason)


def _sydney_dates(index: pd.Index) -> pd.Index:
    """The Australia/Sydney calendar date of each bar.

    ASX bars are stamped 10:00 Sydney, which in summer is the previous day in UTC, so the UTC
    date would be wrong. A naive index means yfinance already reduced it to exchange-local dates.
    """
    stamps = pd.DatetimeIndex(index)
    if stamps.tz is not None:
        stamps = stamps.tz_convert(SYDNEY)
    return pd.Index(stamps.date, name="trade_date")


def _junk_in_actions(frame: pd.DataFrame) -> str | None:
    """A dividend or split that is not a finite, non-negative number makes the whole ticker
    unusable: splits decide how every earlier bar is restated."""
    for column in _ACTION_FIELDS:
        raw = frame[column].dropna()
        values = pd.to_numeric(raw, errors="coerce")
        bad = values.isna()
        if bad.any():
            return f"non-numeric {column} on {_first_bad(raw, bad)}"
        bad = ~values.map(math.isfinite) | (values < 0)
        if bad.any():
            return f"negative or infinite {column} on {_first_bad(values, bad)}"
    return None


def _first_bad(values: pd.Series, bad: pd.Series) -> str:
    """'<date>: <value>' of the first offending row, so the reason shows what was wrong."""
    value = values[bad].iloc[0]
    shown = repr(value) if isinstance(value, str) else str(value)
    return f"{values.index[bad.to_numpy()][0]}: {shown}"


def _undo_split_adjustment(frame: pd.DataFrame) -> pd.DataFrame:
    """Prices as traded: Yahoo restates earlier bars for every later split; undo that.

    Yahoo divides every bar and dividend before a split by its ratio (and multiplies the volume).
    The request reaches today, so every such split is in `frame` and reversing them gives the
    same numbers whatever range was asked for; `Adj Close` stays Yahoo's adjusted series.
    """
    splits = pd.to_numeric(frame["Stock Splits"], errors="coerce").fillna(0)
    events = splits[splits > 0]
    if events.empty:
        return frame
    dates = np.array(frame.index, dtype="datetime64[D]")
    factor = np.ones(len(frame))
    for ex_date, ratio in events.items():
        factor[dates < np.datetime64(ex_date)] *= float(ratio)
    restated = frame.copy()
    for column in ("Open", "High", "Low", "Close"):
        restated[column] = pd.to_numeric(restated[column]) * factor
    restated["Volume"] = pd.to_numeric(restated["Volume"]) / factor
    restated["Dividends"] = pd.to_numeric(restated["Dividends"]).fillna(0) * factor
    return restated


def _prices(ticker: str, frame: pd.DataFrame) -> pd.DataFrame:
    bars = frame[frame["Close"].notna()]
    prices = bars[list(_PRICE_FIELDS)].rename(columns=_PRICE_FIELDS).astype("float64")
    prices["volume"] = prices["volume"].fillna(0).round().astype("int64")
    prices.insert(0, "yahoo_ticker", ticker)
    prices.insert(0, "trade_date", bars.index)
    return prices.reset_index(drop=True)[PRICE_COLUMNS]


def _actions(ticker: str, frame: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for column, action in _ACTION_FIELDS.items():
        # yfinance fills "no event" with 0: a split ratio or dividend of 0 is never real.
        values = pd.to_numeric(frame[column], errors="coerce").fillna(0)
        for ex_date, value in values[values != 0].items():
            rows.append(
                {"ex_date": ex_date, "yahoo_ticker": ticker, "action": action, "value": value}
            )
    return pd.DataFrame(rows, columns=ACTION_COLUMNS)


def _empty_prices() -> pd.DataFrame:
    return pd.DataFrame(columns=PRICE_COLUMNS)


def _empty_actions() -> pd.DataFrame:
    return pd.DataFrame(columns=ACTION_COLUMNS)


def _concat(frames: list[pd.DataFrame], columns: list[str], key: list[str]) -> pd.DataFrame:
    frames = [f for f in frames if not f.empty]
    if not frames:
        return pd.DataFrame(columns=columns)
    combined = pd.concat(frames, ignore_index=True)
    return combined.sort_values(key, kind="stable").reset_index(drop=True)[columns]
