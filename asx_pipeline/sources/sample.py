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
class _Bars:
    """One symbol's bars for sessions [0, n) counted from SAMPLE_EPOCH."""

    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    traded: np.ndarray  # False on sessions without a bar (before listing, suspended, delisted)
    dividends: dict[int, float]
    splits: dict[int, float]


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
        price_frames, action_frames, failed = [], [], {}
        for ticker in tickers:
            begin = min((history_from or {}).get(ticker, first), first)
            start = int(np.searchsorted(sessions, np.datetime64(begin)))
            company = self._by_symbol.get(ticker.removesuffix(".AX"))
            if company is None or not ticker.endswith(".AX"):
                failed[ticker] = "not in the sample universe"
                continue
            if stop <= start:
                continue
            # adj_close needs every action up to the horizon, not only those up to `last`.
            bars = _bars(company, len(sessions))
            price_frames.append(_price_frame(ticker, bars, sessions, start, stop))
            action_frames.append(_action_frame(ticker, bars, sessions, start, stop))
        prices = _concat(price_frames, PRICE_COLUMNS)
        actions = _concat(action_frames, ACTION_COLUMNS)
        return PriceHistory(prices=prices, actions=actions, failed=failed)

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
    parts = [np.random.default_rng([seed, block]).standard_normal((_BLOCK, _DRAWS))
             for block in range(blocks)]
    return np.concatenate(parts)[:sessions]


def _bars(company: SampleCompany, sessions: int) -> _Bars:
    """Bars for sessions [0, sessions); any prefix is identical whatever `sessions` is."""
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
    open_ = previous * np.exp(0.3 * sigma * z[:, 1])
    high = np.maximum(open_, raw) * np.exp(np.abs(0.5 * sigma * z[:, 2]))
    low = np.minimum(open_, raw) * np.exp(-np.abs(0.5 * sigma * z[:, 3]))
    dividends = {
        int(k): round(float(previous[k] * dividend_yield / 2), 3)
        for k in np.flatnonzero(ex_dividend)
    }
    base_volume = company.market_cap_billions * 1e9 / company.price * 0.002
    volume = (base_volume * share_factor * np.exp(0.5 * z[:, 4])).astype(np.int64)
    return _Bars(
        open=_round_to_tick(open_),
        high=_round_to_tick(high),
        low=_round_to_tick(low),
        close=_round_to_tick(raw),
        volume=volume,
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
        traded &= ~np.array([_is_suspended(company.symbol, i) for i in range(sessions)])
    return traded


def _adjusted_close(bars: _Bars) -> np.ndarray:
    """Yahoo's adj_close for bars over the whole horizon: close x the factor of later actions.

    Only actions the source reports (on a traded session) count, each with the factor that
    analytics.adjustment derives from the reported rows: a split 1/r, a dividend 1 - d/c with c the
    raw close of the last bar before the ex-date (the previous session's, unless suspended).
    Factors on one session multiply dividend before split, the order adjustment_steps uses.
    """
    if len(bars.close) != len(_sessions()):
        raise ValueError("adj_close is anchored at SAMPLE_HORIZON: it needs the bars up to it")
    step = np.ones(len(bars.close))
    traded = np.flatnonzero(bars.traded)
    for ordinal, amount in sorted(bars.dividends.items()):
        earlier = traded[traded < ordinal]
        if bars.traded[ordinal] and earlier.size:
            step[ordinal] *= 1.0 - amount / bars.close[earlier[-1]]
    for ordinal, ratio in sorted(bars.splits.items()):
        if bars.traded[ordinal]:
            step[ordinal] *= 1.0 / ratio
    # factor[k] = product of step[k+1:], multiplied from the horizon backwards.
    factor = np.ones(len(step))
    factor[:-1] = np.cumprod(step[:0:-1])[::-1]
    return bars.close * factor


def _round_to_tick(prices: np.ndarray) -> np.ndarray:
    # ASX price steps: a cent from $2, half a cent from 10c, a tenth of a cent below.
    cents = np.round(prices, 2)
    half_cents = np.round(prices * 200) / 200
    tenths = np.round(prices, 3)
    return np.where(prices >= 2, cents, np.where(prices >= 0.1, half_cents, tenths))


def _price_frame(
    ticker: str, bars: _Bars, sessions: np.ndarray, start: int, stop: int
) -> pd.DataFrame:
    keep = np.flatnonzero(bars.traded[start:stop]) + start
    adj_close = _adjusted_close(bars)
    return pd.DataFrame(
        {
            "trade_date": sessions[keep].astype(object),
            "yahoo_ticker": ticker,
            "open": bars.open[keep],
            "high": bars.high[keep],
            "low": bars.low[keep],
            "close": bars.close[keep],
            "adj_close": adj_close[keep],
            "volume": bars.volume[keep],
        }
    )


def _action_frame(
    ticker: str, bars: _Bars, sessions: np.ndarray, start: int, stop: int
) -> pd.DataFrame:
    rows = [
        (sessions[k].astype(object), ticker, action, value)
        for action, events in (("dividend", bars.dividends), ("split", bars.splits))
        for k, value in events.items()
        if start <= k < stop and bars.traded[k]
    ]
    return pd.DataFrame(rows, columns=ACTION_COLUMNS)


def _concat(frames: list[pd.DataFrame], columns: list[str]) -> pd.DataFrame:
    frames = [frame for frame in frames if not frame.empty]
    if not frames:
        return pd.DataFrame(columns=columns)
    return pd.concat(frames, ignore_index=True)[columns]


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
    bars = _bars(company, ordinal + 1)
    if not bars.traded[ordinal] or ordinal == 0:
        return None
    open_, close = bars.open[ordinal], bars.close[ordinal]
    minute = int(pd.Timestamp(at).timestamp() // 60)
    z = np.random.default_rng([_seed(company.symbol), ordinal, minute]).standard_normal()
    spread = abs(close - open_) + 0.004 * open_
    drift = open_ + (close - open_) * progress
    wander = spread * np.sqrt(progress * (1 - progress)) * z
    # Kept inside the day's range so a snapshot never contradicts the daily bar.
    inside = min(max(drift + wander, bars.low[ordinal]), bars.high[ordinal])
    last = float(_round_to_tick(np.array([inside]))[0])
    # Yahoo's change is on the previous close restated in today's units (after a split).
    previous = bars.close[ordinal - 1] / bars.splits.get(ordinal, 1.0)
    return {
        "last": last,
        "change_pct": round((last / previous - 1) * 100, 4),
        "volume": int(bars.volume[ordinal] * progress),
    }
