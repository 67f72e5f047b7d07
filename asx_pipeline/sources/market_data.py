"""The canonical frames every market-data source returns, and the interface they share.

Assets only see these shapes, so switching ASX_MARKET_DATA between `yahoo` and `sample` changes
where numbers come from and nothing else.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import pandas as pd

from asx_pipeline.sources.bar_validation import RefusedBar

# One row per company: symbol is the ASX code (e.g. BHP); market_cap is null when the directory
# has no number (suspended or "--"); status is `active` or `suspended`.
DIRECTORY_COLUMNS = [
    "symbol",
    "company_name",
    "gics_industry_group",
    "listing_date",
    "market_cap",
    "status",
]
# One row per (trade_date, yahoo_ticker): raw prices as traded plus adj_close.
PRICE_COLUMNS = [
    "trade_date",
    "yahoo_ticker",
    "open",
    "high",
    "low",
    "close",
    "adj_close",
    "volume",
]
# One row per (ex_date, yahoo_ticker, action): action is `dividend` (cash per share) or `split`
# (ratio new/old, so a 4:1 split is 4.0).
ACTION_COLUMNS = ["ex_date", "yahoo_ticker", "action", "value"]
# One row per yahoo_ticker at one moment of a session: last traded price, % change on the previous
# close (as Yahoo reports it), and the volume traded so far that session.
INTRADAY_COLUMNS = ["yahoo_ticker", "last", "change_pct", "volume"]


class MarketDataError(RuntimeError):
    """A source could not deliver what was asked; the message says what and why."""


@dataclass
class PriceHistory:
    """What a source returned for some tickers over a range of sessions."""

    prices: pd.DataFrame
    actions: pd.DataFrame
    # Tickers the source could not fetch, with the reason (after its own retries).
    failed: dict[str, str] = field(default_factory=dict)
    # Bars that arrived but were junk (a missing or non-positive price, high below low, a unit
    # error, ...): never stored, so whatever was stored before for that ticker and session stays.
    refused: list[RefusedBar] = field(default_factory=list)
    # The failed tickers whose last error was worth retrying (throttling, the network): the
    # source gave up on them, but later they may well be served.
    retries_exhausted: frozenset[str] = frozenset()


class MarketDataSource(Protocol):
    """A source of the ASX directory and of daily bars and corporate actions."""

    name: str
    # True when `directory(as_of)` is the directory as it was on any `as_of` (the sample source);
    # False when it is only ever today's (the ASX publishes nothing else).
    point_in_time_directory: bool
    # Where the directory comes from, for people (never a token): stored with each snapshot.
    directory_origin: str

    def directory(self, as_of: dt.date) -> pd.DataFrame:
        """The listed companies known on `as_of`, with DIRECTORY_COLUMNS."""
        ...

    def price_history(
        self,
        tickers: Sequence[str],
        first: dt.date,
        last: dt.date,
        history_from: Mapping[str, dt.date] | None = None,
    ) -> PriceHistory:
        """Daily bars and actions for `tickers` (Yahoo form, `BHP.AX`) from first to last.

        A ticker in `history_from` is fetched from that date instead (a company joining the
        universe gets its history): still one request per ticker.
        """
        ...


@dataclass
class IntradaySnapshot:
    """Quotes for some tickers at one moment, and the tickers the source could not quote."""

    quotes: pd.DataFrame
    failed: dict[str, str] = field(default_factory=dict)


class IntradaySource(Protocol):
    """A source of intraday quotes: one snapshot of many tickers at a time."""

    name: str

    def intraday_snapshot(self, tickers: Sequence[str], at: dt.datetime) -> IntradaySnapshot:
        """Quotes with INTRADAY_COLUMNS for `tickers` as they stood at `at` (aware datetime)."""
        ...


def yahoo_ticker(symbol: str) -> str:
    """The Yahoo Finance ticker of an ASX code: BHP -> BHP.AX."""
    return f"{symbol}.AX"
