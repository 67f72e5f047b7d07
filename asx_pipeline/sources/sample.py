"""Deterministic synthetic market data for the offline demo, tests and benchmarks.

Every number is a pure function of (symbol, session): the random draws for a symbol come in
fixed blocks of sessions counted from SAMPLE_EPOCH, each block seeded by (symbol, block number),
so a session has the same bar whether it is fetched alone or inside a two-year range.

The sample has the events real data has, on fixed dates so tests can name them:
- dividends: about two a year for most companies (the raw price drops by the amount on ex-date);
- splits: PME 2:1 on 2025-11-10, ZIP 1:10 consolidation on 2026-09-14;
- a suspension: SYR has no bars for 4 sessions in every 55, and shows as `suspended`;
- a delisting: AWC's last session is 2025-10-31; after it AWC is neither listed nor priced;
- a listing: TLC has no bars before its listing date (2022-05-24).
`adj_close` is built as Yahoo builds it: a session's raw close times the split-and-dividend
factor of every action with a later ex-date (a split of ratio r divides earlier prices by r, a
dividend d multiplies them by 1 - d / the raw close of the bar before the ex-date). Yahoo counts
the actions up to its latest session, which moves every day; the sample counts every action up to
SAMPLE_HORIZON, its last possible session, so a session's adj_close is fixed (alone or in a range,
today or next year). adj_close / close is therefore constant between ex-dates and changes exactly
on them, and agrees with analytics.adjustment's explicit adjustment of the same rows.
"""

from __future__ import annotations

import datetime as dt
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd

from asx_pipeline.calendar import asx_calendar, sessions_between
from asx_pipeline.sources.market_data import (
    ACTION_COLUMNS,
    DIRECTORY_COLUMNS,
    INTRADAY_COLUMNS,
    PRICE_COLUMNS,
    IntradaySnapshot,
    PriceHistory,
)
from asx_pipeline.sources.sample_companies import SAMPLE_COMPANIES, SampleCompany

SAMPLE_EPOCH = dt.date(2015, 1, 2)
# The sample's last session, and the anchor of its adj_close: every action up to it is counted.
SAMPLE_HORIZON = dt.date(2031, 12, 31)
SPLITS: dict[str, tuple[dt.date, float]] = {
    "PME": (dt.date(2025, 11, 10), 2.0),
    "ZIP": (dt.date(2026, 9, 14), 0.1),
}
DELISTINGS: dict[str, dt.date] = {"AWC": dt.date(2025, 10, 31)}
SUSPENDED_SYMBOL = "SYR"
_SUSPENSION_CYCLE, _SUSPENSION_FIRST, _SUSPENSION_LENGTH = 55, 20, 4
_BLOCK = 256  # sessions per seeded block of draws
_DIVIDEND_CYCLE = 126  # sessions between a company's dividends (about six months)
_DRAWS = 5  # close return, open gap, high, low, volume


@dataclass(frozen=True)
class _Path:
    """One symbol's random walk over sessions [0, n) counted from SAMPLE_EPOCH.

    Everything a bar depends on that spans sessions (the cumulated returns, the actions); the
    bars themselves are elementwise functions of it, so `bars` computes only the sessions asked
    for, with the same values a full-length computation gives.
    """

    z: np.ndarray  # the draws, one row per session (see _DRAWS)
    sigma: float
    raw: np.ndarray  # unrounded close
    previous: np.ndarray  # yesterday's close restated in today's units (split or dividend)
    share_factor: np.ndarray
    base_volume: float
    traded: np.ndarray  # False on sessions without a bar (before listing, suspended, delisted)
    dividends: dict[int, float]
    splits: dict[int, float]

    def bars(self, start: int, stop: int) -> _Bars:
        """The bars of sessions [start, stop)."""
        z, previous, raw = self.z[start:stop], self.previous[start:stop], self.raw[start:stop]
        open_ = previous * np.exp(0.3 * self.sigma * z[:, 1])
        high = np.maximum(open_, raw) * np.exp(np.abs(0.5 * self.sigma * z[:, 2]))
        low = np.minimum(open_, raw) * np.exp(-np.abs(0.5 * self.sigma * z[:, 3]))
        volume = self.base_volume * self.share_factor[start:stop] * np.exp(0.5 * z[:, 4])
        return _Bars(
            start=start,
            open=_round_to_tick(open_),
            high=_round_to_tick(high),
            low=_round_to_tick(low),
            close=_round_to_tick(raw),
            volume=volume.astype(np.int64),
        )

    def close_at(self, ordinals: np.ndarray) -> np.ndarray:
        return _round_to_tick(self.raw[ordinals])


@dataclass(frozen=True)
class _Bars:
    """Bars of sessions [start, start + len) of one _Path; index i is session start + i."""

    start: int
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray


class SampleMarketData:
    """The `sample` source: realistic ASX companies, synthetic but repeatable prices."""

    name = "sample"
    point_in_time_directory = True
    directory_origin = "sample"

    def __init__(self, symbols: int | None = None) -> None:
        self.companies = sample_universe(symbols)
        self._by_symbol = {company.symbol: company for company in self.companies}

    def directory(self, as_of: dt.date) -> pd.DataFrame:
        rows = [
            _directory_row(company, as_of)
            for company in self.companies
            if _is_listed(company, as_of)
        ]
        frame = pd.DataFrame(rows, columns=DIRECTORY_COLUMNS)
        return frame.sort_values("symbol").reset_index(drop=True)

    def price_history(
        self,
        tickers: Sequence[str],
        first: dt.date,
        last: dt.date,
        history_from: Mapping[str, dt.date] | None = None,
    ) -> PriceHistory:
        sessions = _sessions()
        stop = int(np.searchsorted(sessions, np.datetime64(last), side="right"))
        prices: dict[str, list[np.ndarray]] = {column: [] for column in PRICE_COLUMNS}
        actions: list[tuple[object, str, str, float]] = []
        failed: dict[str, str] = {}
        for ticker in tickers:
            begin = min((history_from or {}).get(ticker, first), first)
            start = int(np.searchsorted(sessions, np.datetime64(begin)))
            company = self._by_symbol.get(ticker.removesuffix(".AX"))
            if company is None or not ticker.endswith(".AX"):
                failed[ticker] = "not in the sample universe"
                continue
            if stop <= start:
                continue
            # The walk runs to the horizon: adj_close needs every action up to it, not only
            # those up to `last`. Only the sessions asked for become bars.
            path = _path(company, len(sessions))
            bars = path.bars(start, stop)
            keep = np.flatnonzero(path.traded[start:stop])
            prices["trade_date"].append(keep + start)
            prices["yahoo_ticker"].append(np.full(len(keep), ticker, dtype=object))
            for column in ("open", "high", "low", "close", "volume"):
                prices[column].append(getattr(bars, column)[keep])
            prices["adj_close"].append(_adjusted_close(path, bars)[keep])
            actions.extend(_actions(ticker, path, sessions, start, stop))
        return PriceHistory(
            prices=_price_frame(prices, sessions),
            actions=pd.DataFrame(actions, columns=ACTION_COLUMNS),
            failed=failed,
        )

    def intraday_snapshot(self, tickers: Sequence[str], at: dt.datetime) -> IntradaySnapshot:
        """Quotes at `at` on a path from the session's open to its close (see _intraday_quote).

        The path ends exactly on the daily bar: a snapshot at or after the close shows the close
        and the day's whole volume, so intraday and daily data never disagree.
        """
        session, progress = _session_progress(at)
        ordinal = _ordinal(session)
        rows, failed = [], {}
        for ticker in tickers:
            company = self._by_symbol.get(ticker.removesuffix(".AX"))
            if company is None or not ticker.endswith(".AX"):
                failed[ticker] = "not in the sample universe"
                continue
            quote = _intraday_quote(company, ordinal, progress, at)
            if quote is not None:
                rows.append({"yahoo_ticker": ticker, **quote})
        return IntradaySnapshot(pd.DataFrame(rows, columns=INTRADAY_COLUMNS), failed)


def sample_universe(symbols: int | None) -> tuple[SampleCompany, ...]:
    """The real sample companies by market cap, widened with synthetic ones up to `symbols`."""
    real = tuple(sorted(SAMPLE_COMPANIES, key=lambda c: -c.market_cap_billions))
    if symbols is None or symbols == len(real):
        return real
    if symbols < len(real):
        return real[:symbols]
    groups = sorted({c.gics_industry_group for c in real})
    extra = tuple(_synthetic_company(i, groups) for i in range(symbols - len(real)))
    return real + extra


def _synthetic_company(index: int, groups: list[str]) -> SampleCompany:
    code = "Q" + np.base_repr(index, 36).rjust(3, "0")
    seed = _seed(code)
    return SampleCompany(
        symbol=code,
        company_name=f"SAMPLE COMPANY {code} LIMITED",
        gics_industry_group=groups[seed % len(groups)],
        listing_date="2010-01-04",
        market_cap_billions=round(3.0 / (1 + index / 50), 4),
        price=round(0.2 + (seed % 5000) / 100, 2),
    )


@lru_cache(maxsize=1)
def _sessions() -> np.ndarray:
    return np.array(sessions_between(SAMPLE_EPOCH, SAMPLE_HORIZON), dtype="datetime64[D]")


def _seed(symbol: str) -> int:
    return zlib.crc32(symbol.encode("ascii"))


def _ordinal(day: dt.date) -> int:
    return int(np.searchsorted(_sessions(), np.datetime64(day)))


def _is_listed(company: SampleCompany, as_of: dt.date) -> bool:
    delisted = DELISTINGS.get(company.symbol)
    listed = dt.date.fromisoformat(company.listing_date) <= as_of
    return listed and (delisted is None or as_of <= delisted)


def _is_suspended(symbol: str, ordinal: int) -> bool:
    if symbol != SUSPENDED_SYMBOL:
        return False
    phase = ordinal % _SUSPENSION_CYCLE
    return _SUSPENSION_FIRST <= phase < _SUSPENSION_FIRST + _SUSPENSION_LENGTH


def _directory_row(company: SampleCompany, as_of: dt.date) -> dict[str, object]:
    suspended = _is_suspended(company.symbol, _ordinal(as_of))
    return {
        "symbol": company.symbol,
        "company_name": company.company_name,
        "gics_industry_group": company.gics_industry_group,
        "listing_date": dt.date.fromisoformat(company.listing_date),
        # The ASX directory shows SUSPENDED instead of a number for a suspended company.
        "market_cap": None if suspended else company.market_cap_billions * 1e9,
        "status": "suspended" if suspended else "active",
    }


def _draws(seed: int, sessions: int) -> np.ndarray:
    blocks = -(-sessions // _BLOCK)
    draws = np.empty((blocks * _BLOCK, _DRAWS))
    for block in range(blocks):
        # Filled in place: the same numbers as standard_normal((_BLOCK, _DRAWS)), uncopied.
        rows = draws[block * _BLOCK : (block + 1) * _BLOCK]
        np.random.default_rng([seed, block]).standard_normal(out=rows)
    return draws[:sessions]


def _path(company: SampleCompany, sessions: int) -> _Path:
    """The walk over sessions [0, sessions); any prefix is identical whatever `sessions` is."""
    seed = _seed(company.symbol)
    z = _draws(seed, sessions)
    profile = np.random.default_rng([seed, 1_000_000]).random(3)
    sigma = 0.008 + 0.02 * profile[0]
    # Penny stocks pay no dividends here: a cash amount of a fraction of a cent would round to 0.
    pays = profile[1] >= 0.2 and company.price >= 1.0
    dividend_yield = 0.01 + 0.05 * profile[1] if pays else 0.0
    total_return = company.price * np.exp(np.cumsum(0.0002 + sigma * z[:, 0]))

    ordinals = np.arange(sessions)
    phase = int(profile[2] * _DIVIDEND_CYCLE)
    ex_dividend = ((ordinals + phase) % _DIVIDEND_CYCLE == 0) & (ordinals > 0)
    if dividend_yield == 0.0:
        ex_dividend[:] = False
    retained = np.where(ex_dividend, 1.0 - dividend_yield / 2, 1.0).cumprod()
    share_factor = np.ones(sessions)
    splits: dict[int, float] = {}
    if company.symbol in SPLITS:
        split_day, ratio = SPLITS[company.symbol]
        split_ordinal = _ordinal(split_day)
        if split_ordinal < sessions:
            share_factor[split_ordinal:] = ratio
            splits[split_ordinal] = ratio

    raw = total_return * retained / share_factor
    # The open gaps from yesterday's close, restated in today's units after a split or dividend.
    previous = np.concatenate([[raw[0]], (total_return * retained)[:-1] / share_factor[1:]])
    dividends = {
        int(k): round(float(previous[k] * dividend_yield / 2), 3)
        for k in np.flatnonzero(ex_dividend)
    }
    return _Path(
        z=z,
        sigma=sigma,
        raw=raw,
        previous=previous,
        share_factor=share_factor,
        base_volume=company.market_cap_billions * 1e9 / company.price * 0.002,
        traded=_traded(company, sessions),
        dividends=dividends,
        splits=splits,
    )


def _traded(company: SampleCompany, sessions: int) -> np.ndarray:
    days = _sessions()[:sessions]
    traded = days >= np.datetime64(company.listing_date)
    delisted = DELISTINGS.get(company.symbol)
    if delisted is not None:
        traded &= days <= np.datetime64(delisted)
    if company.symbol == SUSPENDED_SYMBOL:
        # _is_suspended, for every session at once.
        phase = np.arange(sessions) % _SUSPENSION_CYCLE
        suspended = (phase >= _SUSPENSION_FIRST) & (phase < _SUSPENSION_FIRST + _SUSPENSION_LENGTH)
        traded &= ~suspended
    return traded


def _adjusted_close(path: _Path, bars: _Bars) -> np.ndarray:
    """Yahoo's adj_close of `bars`: close x the factor of the actions after each, to the horizon.

    Only actions the source reports (on a traded session) count, each with the factor that
    analytics.adjustment derives from the reported rows: a split 1/r, a dividend 1 - d/c with c the
    raw close of the last bar before the ex-date (the previous session's, unless suspended).
    Factors on one session multiply dividend before split, the order adjustment_steps uses.
    """
    sessions = len(path.raw)
    if sessions != len(_sessions()):
        raise ValueError("adj_close is anchored at SAMPLE_HORIZON: it needs the path up to it")
    step = np.ones(sessions)
    traded = np.flatnonzero(path.traded)
    ordinals = np.array(sorted(path.dividends), dtype=np.int64)
    # The last traded session before each ex-date (-1: none), and its raw close.
    before = np.searchsorted(traded, ordinals, side="left") - 1
    counted = path.traded[ordinals] & (before >= 0)
    closes = path.close_at(traded[before[counted]])
    for ordinal, close in zip(ordinals[counted], closes, strict=True):
        step[ordinal] *= 1.0 - path.dividends[int(ordinal)] / close
    for ordinal, ratio in sorted(path.splits.items()):
        if path.traded[ordinal]:
            step[ordinal] *= 1.0 / ratio
    # factor[k] = product of step[k+1:], multiplied from the horizon backwards.
    factor = np.ones(sessions)
    factor[:-1] = np.cumprod(step[:0:-1])[::-1]
    return bars.close * factor[bars.start : bars.start + len(bars.close)]


def _round_to_tick(prices: np.ndarray) -> np.ndarray:
    # ASX price steps: a cent from $2, half a cent from 10c, a tenth of a cent below.
    cents = np.round(prices, 2)
    half_cents = np.round(prices * 200) / 200
    tenths = np.round(prices, 3)
    return np.where(prices >= 2, cents, np.where(prices >= 0.1, half_cents, tenths))


def _price_frame(columns: dict[str, list[np.ndarray]], sessions: np.ndarray) -> pd.DataFrame:
    """One frame of every ticker's bars (trade_date holds session ordinals until here)."""
    if not sum(len(part) for part in columns["trade_date"]):
        return pd.DataFrame(columns=PRICE_COLUMNS)
    joined = {name: np.concatenate(parts) for name, parts in columns.items()}
    joined["trade_date"] = sessions[joined["trade_date"]].astype(object)
    return pd.DataFrame(joined)[PRICE_COLUMNS]


def _actions(
    ticker: str, path: _Path, sessions: np.ndarray, start: int, stop: int
) -> list[tuple[object, str, str, float]]:
    return [
        (sessions[k].astype(object), ticker, action, value)
        for action, events in (("dividend", path.dividends), ("split", path.splits))
        for k, value in events.items()
        if start <= k < stop and path.traded[k]
    ]


def _session_progress(at: dt.datetime) -> tuple[dt.date, float]:
    """The session `at` falls on (Sydney date) and how far through it `at` is, from 0 to 1."""
    if at.tzinfo is None:
        raise ValueError(f"intraday snapshot time {at} must be timezone-aware")
    calendar = asx_calendar()
    day = pd.Timestamp(at).tz_convert(calendar.tz).date()
    if not calendar.is_session(pd.Timestamp(day)):
        raise ValueError(f"{day} is not an ASX session; there are no intraday quotes")
    opens = calendar.session_open(pd.Timestamp(day))
    closes = calendar.session_close(pd.Timestamp(day))
    progress = (pd.Timestamp(at) - opens) / (closes - opens)
    return day, float(min(1.0, max(0.0, progress)))


def _intraday_quote(
    company: SampleCompany, ordinal: int, progress: float, at: dt.datetime
) -> dict[str, float | int] | None:
    """A Brownian bridge from the open to the close, seeded by (symbol, session, minute).

    None when the company has no bar that session (not listed yet, suspended, delisted).
    """
    path = _path(company, ordinal + 1)
    if not path.traded[ordinal] or ordinal == 0:
        return None
    bars = path.bars(ordinal - 1, ordinal + 1)  # the session and the one before it
    open_, close = bars.open[1], bars.close[1]
    minute = int(pd.Timestamp(at).timestamp() // 60)
    z = np.random.default_rng([_seed(company.symbol), ordinal, minute]).standard_normal()
    spread = abs(close - open_) + 0.004 * open_
    drift = open_ + (close - open_) * progress
    wander = spread * np.sqrt(progress * (1 - progress)) * z
    # Kept inside the day's range so a snapshot never contradicts the daily bar.
    inside = min(max(drift + wander, bars.low[1]), bars.high[1])
    last = float(_round_to_tick(np.array([inside]))[0])
    # Yahoo's change is on the previous close restated in today's units (after a split).
    previous = bars.close[0] / path.splits.get(ordinal, 1.0)
    return {
        "last": last,
        "change_pct": round((last / previous - 1) * 100, 4),
        "volume": int(bars.volume[1] * progress),
    }
