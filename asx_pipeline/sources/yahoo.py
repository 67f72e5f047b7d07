"""Daily bars and corporate actions from Yahoo Finance, through yfinance.

yfinance swallows most failures: `yf.download` catches every per-ticker exception (rate limits
included) and only *logs* a "Failed downloads" summary. This module therefore listens to that log
while a batch downloads, turns it into `PriceHistory.failed`, and retries the tickers whose reason
was a rate limit or a network error. Everything it returns has been checked: junk from Yahoo
(negative or non-finite prices, missing columns) makes the ticker fail with a reason, never pass.
"""

from __future__ import annotations

import ast
import datetime as dt
import logging
import math
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import requests
import tenacity
import yfinance as yf
from yfinance import cache as yf_cache
from yfinance.exceptions import YFRateLimitError

from asx_pipeline.calendar import SYDNEY
from asx_pipeline.sources.asx_directory import load_directory
from asx_pipeline.sources.market_data import (
    ACTION_COLUMNS,
    PRICE_COLUMNS,
    MarketDataError,
    PriceHistory,
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
# yf.download logs one line per distinct reason: "['AAA.AX', 'BBB.AX']: <reason>".
_FAILED_LINE = re.compile(r"^\s*(?P<tickers>\[.*?\]):\s(?P<reason>.*)$", re.DOTALL)
# Reasons worth another attempt: Yahoo throttled us or the network let us down. yfinance reports
# exceptions as repr() strings, so the exception's class name is what identifies them.
_TRANSIENT_REASON = re.compile(
    r"YFRateLimitError|Too Many Requests|Rate limited|ConnectionError|Timeout|"
    r"ChunkedEncodingError|RemoteDisconnected|ProtocolError|CURRENTLY DOWN|"
    # yfinance's worker threads race on its SQLite timezone cache when it is first created.
    r"database is locked",
    re.IGNORECASE,
)
_TRANSIENT_EXCEPTIONS = (requests.RequestException, OSError, YFRateLimitError)


class RateLimiter:
    """Spaces calls at least 1/rate seconds apart (a token bucket holding one token).

    The clock and sleep are injectable so tests can check the spacing without waiting.
    """

    def __init__(
        self,
        per_second: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if per_second <= 0:
            raise ValueError(f"requests_per_second must be positive, got {per_second}")
        self.interval = 1.0 / per_second
        self._clock = clock
        self._sleep = sleep
        self._next_free = -math.inf
        # yfinance downloads in threads; callers may too, so the bookkeeping must be atomic.
        self._lock = threading.Lock()

    def acquire(self) -> None:
        with self._lock:
            now = self._clock()
            if now < self._next_free:
                self._sleep(self._next_free - now)
                now = self._next_free
            self._next_free = now + self.interval


class _TransientFailure(Exception):
    """Some tickers of a batch failed for a reason worth retrying."""

    def __init__(self, reasons: dict[str, str]) -> None:
        super().__init__("; ".join(f"{t}: {r}" for t, r in sorted(reasons.items())))
        self.reasons = reasons


@dataclass
class _BatchResult:
    """One yf.download call, split into per-ticker frames and per-ticker failure reasons."""

    frames: dict[str, pd.DataFrame] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)

    def absorb(self, other: _BatchResult) -> list[str]:
        """Keep `other`'s frames and lasting failures; return the tickers worth another try."""
        transient = sorted(t for t, r in other.failed.items() if _TRANSIENT_REASON.search(r))
        self.frames.update(other.frames)
        self.failed.update({t: r for t, r in other.failed.items() if t not in transient})
        for ticker in transient:
            # A ticker that failed before and now merely got throttled keeps no stale reason.
            self.failed.pop(ticker, None)
        return transient


class YahooMarketData:
    """The `yahoo` market-data source: real ASX prices via yfinance, many tickers per request."""

    name = "yahoo"

    def __init__(
        self,
        *,
        cache_dir: Path,
        directory_source: str,
        batch_size: int = 100,
        requests_per_second: float = 2.0,
        max_retries: int = 5,
        session: requests.Session | None = None,
        retry_wait_initial: float = 1.0,
        retry_wait_max: float = 60.0,
        rate_limiter: RateLimiter | None = None,
        today: Callable[[], dt.date] | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if max_retries < 0:
            raise ValueError(f"max_retries must not be negative, got {max_retries}")
        self.batch_size = batch_size
        self.max_retries = max_retries
        self.retry_wait_initial = retry_wait_initial
        self.retry_wait_max = retry_wait_max
        self.rate_limiter = rate_limiter or RateLimiter(requests_per_second)
        self._session = session
        self._directory_source = directory_source
        self._directory: pd.DataFrame | None = None
        self._today = today or _sydney_today
        point_yfinance_cache_at(cache_dir)

    def directory(self, as_of: dt.date) -> pd.DataFrame:
        """The ASX directory. The ASX only publishes the current list, so `as_of` cannot select
        an older one; it is loaded once per instance because a run asks for it per partition."""
        if self._directory is None:
            self._directory = load_directory(self._directory_source, session=self._session)
        return self._directory.copy()

    def price_history(self, tickers: Sequence[str], first: dt.date, last: dt.date) -> PriceHistory:
        """Bars and actions with a Sydney trade date in [first, last], one request per ticker
        for the whole range, `batch_size` tickers per yfinance call."""
        if last < first:
            raise ValueError(f"last ({last}) is before first ({first})")
        wanted = list(dict.fromkeys(t.strip().upper() for t in tickers))
        _open_tz_cache()
        prices, actions, failed = [], [], {}
        for batch in _batches(wanted, self.batch_size):
            result = self._download_with_retries(batch, first, last)
            failed.update(result.failed)
            for ticker, frame in result.frames.items():
                ticker_prices, ticker_actions, problem = _to_canonical(ticker, frame, first, last)
                if problem:
                    failed[ticker] = problem
                    continue
                prices.append(ticker_prices)
                actions.append(ticker_actions)
        return PriceHistory(
            prices=_concat(prices, PRICE_COLUMNS, ["trade_date", "yahoo_ticker"]),
            actions=_concat(actions, ACTION_COLUMNS, ["ex_date", "yahoo_ticker", "action"]),
            failed=dict(sorted(failed.items())),
        )

    def _download_with_retries(
        self, batch: list[str], first: dt.date, last: dt.date
    ) -> _BatchResult:
        """Download a batch; ask again, with backoff, only for tickers that failed transiently."""
        done = _BatchResult()
        pending = list(batch)
        try:
            for attempt in self._retrying():
                with attempt:
                    result = self._download(pending, first, last)
                    pending = done.absorb(result)
                    if pending:
                        raise _TransientFailure({t: result.failed[t] for t in pending})
        except (_TransientFailure, *_TRANSIENT_EXCEPTIONS) as error:
            raise MarketDataError(
                f"Yahoo kept failing for {', '.join(pending)} after {self.max_retries} "
                f"retries; last error: {error}"
            ) from error
        return done

    def _retrying(self) -> tenacity.Retrying:
        return tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self.max_retries + 1),
            wait=tenacity.wait_exponential_jitter(
                initial=self.retry_wait_initial,
                max=self.retry_wait_max,
                jitter=self.retry_wait_initial,
            ),
            retry=tenacity.retry_if_exception_type((_TransientFailure, *_TRANSIENT_EXCEPTIONS)),
            reraise=True,
        )

    def _download(self, tickers: list[str], first: dt.date, last: dt.date) -> _BatchResult:
        self.rate_limiter.acquire()
        with _hide_no_exceptions(), _capture_failures() as logged:
            data = yf.download(
                tickers,
                start=first.isoformat(),
                # Through today, not just `last`: Yahoo restates bars for every later split, so
                # the splits after `last` must be seen to store prices as traded. yfinance's end
                # is exclusive; the bounds are midnights in the exchange's zone.
                end=(max(last, self._today()) + dt.timedelta(days=1)).isoformat(),
                auto_adjust=False,
                actions=True,
                # Keep the index tz-aware so the Sydney date is computed, not assumed.
                ignore_tz=False,
                group_by="ticker",
                multi_level_index=True,
                progress=False,
                session=self._session,
            )
        return _split_batch(data, tickers, logged)


def _sydney_today() -> dt.date:
    return dt.datetime.now(SYDNEY).date()


def point_yfinance_cache_at(cache_dir: Path) -> None:
    """Keep yfinance's timezone and cookie caches (SQLite files) in `cache_dir`, under our data
    folder rather than the user's home.

    yfinance holds one cache per process and only honours a new location before it first uses
    it, so construct the source before anything else in the process calls yfinance.
    """
    Path(cache_dir).mkdir(parents=True, exist_ok=True)
    yf.set_tz_cache_location(str(cache_dir))


def _open_tz_cache() -> None:
    """Open yfinance's timezone cache from this thread, before its download threads need it.

    yfinance opens its SQLite cache lazily in whichever worker thread gets there first; two at
    once fail with "database is locked" (yfinance 1.7), which would fail a ticker in the first
    batch of every fresh process. Opening it here avoids that; the retry is the safety net.
    """
    try:
        yf_cache.get_tz_cache().lookup("")
    except Exception as error:  # an optimisation only: never let it stop a download
        _log.debug("could not open the yfinance timezone cache early: %s", error)


def _batches(items: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


@contextmanager
def _hide_no_exceptions() -> Iterator[None]:
    """Make yfinance raise inside its per-ticker worker instead of logging "no price data".

    With the default (hide_exceptions=True) a network error is reported exactly like a delisted
    ticker; raised, yf.download records its repr, so the reason says what really happened.
    """
    previous = yf.config.debug.hide_exceptions
    yf.config.debug.hide_exceptions = False
    try:
        yield
    finally:
        yf.config.debug.hide_exceptions = previous


class _FailureLog(logging.Handler):
    """Collects the per-ticker reasons from yf.download's "Failed downloads" log lines."""

    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.reasons: dict[str, str] = {}

    def emit(self, record: logging.LogRecord) -> None:
        match = _FAILED_LINE.match(record.getMessage())
        if not match:
            return
        try:
            tickers = ast.literal_eval(match.group("tickers"))
        except (ValueError, SyntaxError):
            return
        for ticker in tickers:
            self.reasons[str(ticker).upper()] = match.group("reason").strip()


@contextmanager
def _capture_failures() -> Iterator[dict[str, str]]:
    logger = logging.getLogger("yfinance")
    handler = _FailureLog()
    previous_level = logger.level
    # The failures are logged at ERROR; make sure a quieter configured level cannot hide them.
    if logger.getEffectiveLevel() > logging.ERROR:
        logger.setLevel(logging.ERROR)
    logger.addHandler(handler)
    try:
        yield handler.reasons
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous_level)


def _split_batch(
    data: pd.DataFrame | None, tickers: list[str], logged: dict[str, str]
) -> _BatchResult:
    """Per-ticker frames (rows with a close only) and reasons for tickers that returned none."""
    result = _BatchResult()
    for ticker in tickers:
        frame = _ticker_frame(data, ticker)
        if frame is not None and "Close" in frame.columns:
            frame = frame[frame["Close"].notna() | _has_action(frame)]
        if frame is None or frame.empty:
            result.failed[ticker] = logged.get(ticker, "no data returned")
        else:
            result.frames[ticker] = frame
    return result


def _ticker_frame(data: pd.DataFrame | None, ticker: str) -> pd.DataFrame | None:
    if data is None or data.empty or not isinstance(data.columns, pd.MultiIndex):
        return None
    if ticker not in data.columns.get_level_values(0):
        return None
    return data[ticker].dropna(how="all")


def _has_action(frame: pd.DataFrame) -> pd.Series:
    """Rows carrying a dividend or split, kept even without a bar (yfinance adds such rows)."""
    flags = pd.Series(False, index=frame.index)
    for column in _ACTION_FIELDS:
        if column in frame.columns:
            values = pd.to_numeric(frame[column], errors="coerce")
            flags |= values.notna() & (values != 0)
    return flags


def _to_canonical(
    ticker: str, frame: pd.DataFrame, first: dt.date, last: dt.date
) -> tuple[pd.DataFrame, pd.DataFrame, str | None]:
    """Prices and actions in our columns, or a reason why this ticker's data is not usable."""
    missing = [c for c in _REQUIRED_FIELDS if c not in frame.columns]
    if missing:
        return _empty_prices(), _empty_actions(), f"Yahoo response lacks columns: {missing}"
    frame = frame.copy()
    frame.index = _sydney_dates(frame.index)
    problem = _junk_in(frame)
    if problem:
        return _empty_prices(), _empty_actions(), problem
    # Undo the splits before trimming: a split after `last` restated the bars inside the range.
    frame = _undo_split_adjustment(frame)
    frame = frame[(frame.index >= first) & (frame.index <= last)]
    prices = _prices(ticker, frame)
    if prices.empty:
        return _empty_prices(), _empty_actions(), f"no bars between {first} and {last}"
    return prices, _actions(ticker, frame), None


def _sydney_dates(index: pd.Index) -> pd.Index:
    """The Australia/Sydney calendar date of each bar.

    ASX bars are stamped 10:00 Sydney, which in summer is the previous day in UTC, so the UTC
    date would be wrong. A naive index means yfinance already reduced it to exchange-local dates.
    """
    stamps = pd.DatetimeIndex(index)
    if stamps.tz is not None:
        stamps = stamps.tz_convert(SYDNEY)
    return pd.Index(stamps.date, name="trade_date")


def _junk_in(frame: pd.DataFrame) -> str | None:
    """Describe the first kind of nonsense found in a ticker's frame, if any."""
    bars = frame[frame["Close"].notna()]
    for column in [*_PRICE_FIELDS, *_ACTION_FIELDS]:
        source = bars if column in _PRICE_FIELDS else frame
        raw = source[column].dropna()
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
