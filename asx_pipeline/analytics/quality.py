"""Data-quality rules for bars and corporate actions, as pure functions over frames.

The asset checks (checks.py) turn these into pass/fail results in the UI, and the daily report
lists what they find, so both always agree on what "bad data" means.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

PRICE_FIELDS = ["open", "high", "low", "close"]
MIN_COVERAGE = 0.9  # share of active symbols with a bar below which a session is flagged
STALE_SESSIONS = 5  # sessions of unchanged close with zero volume that make a quote stale
MAX_DIVIDEND_YIELD = 0.5  # a dividend above half the ex-date close is not plausible
SPLIT_RATIO_RANGE = (1 / 1000, 1000)


@dataclass(frozen=True)
class Finding:
    """What a rule found: offending rows (key columns plus why) and a one-line summary."""

    rows: pd.DataFrame
    summary: str

    @property
    def passed(self) -> bool:
        return self.rows.empty


def non_positive_prices(prices: pd.DataFrame) -> Finding:
    """Bars with a price at or below zero (a null open/high/low is allowed, a null close is not)."""
    values = prices[PRICE_FIELDS]
    bad = (values <= 0).any(axis=1) | prices["close"].isna()
    rows = _with_reason(prices[bad], "price <= 0 or missing close")
    return Finding(rows, f"{len(rows)} bar(s) with a non-positive price")


def inconsistent_ohlc(prices: pd.DataFrame) -> Finding:
    """Bars where low > open/close or open/close > high, or low > high."""
    low, high = prices["low"], prices["high"]
    bad = (
        (low > high)
        | (low > prices["open"])
        | (low > prices["close"])
        | (prices["open"] > high)
        | (prices["close"] > high)
    )
    rows = _with_reason(prices[bad.fillna(False)], "not low <= open/close <= high")
    return Finding(rows, f"{len(rows)} bar(s) outside their own low..high range")


def negative_volume(prices: pd.DataFrame) -> Finding:
    rows = _with_reason(prices[(prices["volume"] < 0).fillna(False)], "volume < 0")
    return Finding(rows, f"{len(rows)} bar(s) with negative volume")


def coverage(prices: pd.DataFrame, symbols: pd.DataFrame) -> pd.DataFrame:
    """Per session: active symbols, how many have a bar, and the share.

    A company listed after the session (today's directory used for a past session) could not
    have traded then, so it does not count against that session.
    """
    listed = symbols["listing_date"].isna() | (
        pd.to_datetime(symbols["listing_date"]) <= pd.to_datetime(symbols["as_of_date"])
    )
    active = symbols[(symbols["status"] == "active") & listed][["as_of_date", "symbol"]]
    active = active.rename(columns={"as_of_date": "trade_date"})
    priced = prices[["trade_date", "symbol"]].assign(has_bar=True)
    joined = active.merge(priced, on=["trade_date", "symbol"], how="left")
    joined["has_bar"] = joined["has_bar"].notna()
    table = joined.groupby("trade_date").agg(active=("symbol", "size"), with_bar=("has_bar", "sum"))
    table["share"] = table["with_bar"] / table["active"]
    return table.reset_index()


def low_coverage(
    prices: pd.DataFrame, symbols: pd.DataFrame, minimum: float = MIN_COVERAGE
) -> Finding:
    return sessions_below(coverage(prices, symbols), minimum)


def sessions_below(table: pd.DataFrame, minimum: float) -> Finding:
    """The sessions of a `coverage` table whose share is below `minimum`."""
    low = table[table["share"] < minimum]
    rows = low.assign(reason=[f"{s:.1%} of active symbols have a bar" for s in low["share"]])
    worst = f"{table['share'].min():.1%}" if not table.empty else "n/a"
    return Finding(
        rows.reset_index(drop=True),
        f"{len(low)} session(s) below {minimum:.0%} coverage (lowest {worst})",
    )


def stale_quotes(history: pd.DataFrame, sessions: list, length: int = STALE_SESSIONS) -> Finding:
    """Symbols whose close was unchanged with zero volume on each of the `length` sessions up to
    a session in `sessions` (so a daily run needs the `length - 1` sessions before it too).

    `history` holds bars of at least those sessions; a missing bar breaks a run.
    """
    frame = history[["trade_date", "symbol", "close", "volume"]].sort_values(
        ["symbol", "trade_date"]
    )
    ordinal = {day: i for i, day in enumerate(sorted(set(frame["trade_date"])))}
    frame = frame.assign(position=frame["trade_date"].map(ordinal))
    quiet = (frame["volume"].fillna(-1) == 0).to_numpy()
    same_symbol = (frame["symbol"] == frame["symbol"].shift()).to_numpy()
    unchanged = same_symbol & (frame["close"] == frame["close"].shift()).to_numpy()
    consecutive = same_symbol & (frame["position"].diff() == 1).to_numpy()
    run = np.zeros(len(frame), dtype=np.int64)
    for i in range(len(frame)):
        if not quiet[i]:
            continue
        run[i] = run[i - 1] + 1 if i and unchanged[i] and consecutive[i] and run[i - 1] else 1
    wanted = set(sessions)
    stale = frame[(run >= length) & frame["trade_date"].isin(wanted).to_numpy()]
    rows = _with_reason(stale, f"close unchanged with zero volume for {length}+ sessions")
    return Finding(rows, f"{rows['symbol'].nunique()} symbol(s) with stale quotes")


def implausible_actions(actions: pd.DataFrame, prices: pd.DataFrame) -> Finding:
    """Dividends that are negative, not finite or above half the ex-date close; splits that are
    not a finite ratio other than 1 within 1:1000..1000:1; actions of unknown kind.

    A zero dividend passes: Yahoo reports some, and it restates nothing (factor 1).
    """
    closes = prices[["trade_date", "symbol", "close"]].rename(columns={"trade_date": "ex_date"})
    joined = actions.merge(closes, on=["ex_date", "symbol"], how="left")
    value = joined["value"].astype("float64")
    dividend = joined["action"] == "dividend"
    split = joined["action"] == "split"
    low, high = SPLIT_RATIO_RANGE
    bad_dividend = dividend & (
        ~np.isfinite(value) | (value < 0) | (value > MAX_DIVIDEND_YIELD * joined["close"])
    )
    bad_split = split & (~np.isfinite(value) | (value < low) | (value > high) | (value == 1.0))
    unknown = ~(dividend | split)
    reasons = np.select(
        [bad_dividend, bad_split, unknown],
        [
            f"dividend not in [0, {MAX_DIVIDEND_YIELD:.0%} of the ex-date close]",
            "split ratio not a plausible new/old ratio",
            "unknown action",
        ],
        default="",
    )
    rows = joined[reasons != ""].assign(reason=reasons[reasons != ""])
    rows = rows[["ex_date", "symbol", "action", "value", "reason"]].reset_index(drop=True)
    return Finding(rows, f"{len(rows)} implausible corporate action(s)")


def _with_reason(rows: pd.DataFrame, reason: str) -> pd.DataFrame:
    keep = [c for c in ("trade_date", "symbol", *PRICE_FIELDS, "volume") if c in rows.columns]
    return rows[keep].assign(reason=reason).reset_index(drop=True)


def missing_bars(prices: pd.DataFrame, symbols: pd.DataFrame, sessions: list) -> list[str]:
    """'SYMBOL: n session(s)' for the active, listed symbols with no bar on some of `sessions`."""
    listed = symbols["listing_date"].isna() | (
        pd.to_datetime(symbols["listing_date"]) <= pd.to_datetime(symbols["as_of_date"])
    )
    active = symbols[(symbols["status"] == "active") & listed]
    active = active[active["as_of_date"].isin(sessions)][["as_of_date", "symbol"]]
    have = set(zip(prices["trade_date"], prices["symbol"], strict=True))
    counts: dict[str, int] = {}
    for day, symbol in active.itertuples(index=False, name=None):
        if (day, symbol) not in have:
            counts[symbol] = counts.get(symbol, 0) + 1
    return [f"{symbol}: no bar on {n} session(s)" for symbol, n in sorted(counts.items())]
