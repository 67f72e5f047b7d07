"""Market breadth per session, from that session's indicators and raw bars.

- advancers / decliners / unchanged count symbols by `return_1d` (adjusted, so a split or an
  ex-dividend drop is not a decline); symbols without a previous bar are not counted;
- a new 52-week high is a session whose high reaches `high_52w` (which includes the session),
  likewise lows; symbols without a 52-week history are not counted;
- pct_above_sma_200 is the percentage (0-100) of symbols with a 200-day SMA whose close is above it;
- median_return is the median `return_1d` of the symbols that have one.
"""

from __future__ import annotations

import pandas as pd

BREADTH_COLUMNS = [
    "trade_date",
    "symbols",
    "advancers",
    "decliners",
    "unchanged",
    "new_highs_52w",
    "new_lows_52w",
    "pct_above_sma_200",
    "median_return",
]


def compute_breadth(indicators: pd.DataFrame, prices: pd.DataFrame) -> pd.DataFrame:
    """One row per session present in `indicators` (joined to `prices` on trade_date, symbol)."""
    if indicators.empty:
        return pd.DataFrame(columns=BREADTH_COLUMNS)
    bars = prices[["trade_date", "symbol", "high", "low", "close"]]
    joined = indicators.merge(bars, on=["trade_date", "symbol"], how="left")
    rows = [_session_breadth(day, group) for day, group in joined.groupby("trade_date", sort=True)]
    return pd.DataFrame(rows, columns=BREADTH_COLUMNS)


def _session_breadth(day: object, group: pd.DataFrame) -> dict[str, object]:
    returns = group["return_1d"].dropna()
    with_sma = group.dropna(subset=["sma_200", "close"])
    above = (with_sma["close"] > with_sma["sma_200"]).sum()
    return {
        "trade_date": day,
        "symbols": len(group),
        "advancers": int((returns > 0).sum()),
        "decliners": int((returns < 0).sum()),
        "unchanged": int((returns == 0).sum()),
        "new_highs_52w": int((group["high"] >= group["high_52w"]).sum()),
        "new_lows_52w": int((group["low"] <= group["low_52w"]).sum()),
        "pct_above_sma_200": 100.0 * above / len(with_sma) if len(with_sma) else None,
        "median_return": float(returns.median()) if len(returns) else None,
    }
