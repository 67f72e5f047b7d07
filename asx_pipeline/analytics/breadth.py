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
    """One row per session present in `indicators` (joined to `prices` on trade_date, symbol).

    Every measure is a per-row flag summed per session, so a range is one grouped pass.
    """
    if indicators.empty:
        return pd.DataFrame(columns=BREADTH_COLUMNS)
    bars = prices[["trade_date", "symbol", "high", "low", "close"]]
    joined = indicators.merge(bars, on=["trade_date", "symbol"], how="left")
    returns = joined["return_1d"]
    with_sma = joined["sma_200"].notna() & joined["close"].notna()
    flags = pd.DataFrame(
        {
            "trade_date": joined["trade_date"],
            "symbols": 1,
            "advancers": returns > 0,
            "decliners": returns < 0,
            "unchanged": returns == 0,
            "new_highs_52w": joined["high"] >= joined["high_52w"],
            "new_lows_52w": joined["low"] <= joined["low_52w"],
            "with_sma": with_sma,
            "above": with_sma & (joined["close"] > joined["sma_200"]),
        }
    )
    grouped = flags.groupby("trade_date", sort=True)
    table = grouped.sum().astype("int64")
    table["median_return"] = returns.groupby(joined["trade_date"], sort=True).median()
    table["pct_above_sma_200"] = (100.0 * table["above"] / table["with_sma"]).where(
        table["with_sma"] > 0
    )
    return table.reset_index()[BREADTH_COLUMNS]
