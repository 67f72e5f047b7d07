"""Split and dividend adjustment of raw bars, made explicit.

`daily_prices` stores raw (as traded) prices; `corporate_actions` stores dividends (cash per
share) and splits (ratio new/old). Indicators need a continuous series, so prices are adjusted
here, from those two tables only, never from a source's own `adj_close`:

- a split of ratio r (new/old) on ex-date e multiplies every price before e by 1/r and every
  volume before e by r (a 2:1 split halves old prices and doubles old volumes);
- a cash dividend d on ex-date e multiplies every price before e by (1 - d / c), c being the raw
  close of the last bar before e (Yahoo's convention); volumes are unchanged.

Adjustment is **backward, anchored at the day being described**: the indicators of day D use
prices restated in D's own units, so D's close is its raw close and `close > sma_200` compares
like with like. Each bar j carries `price_step[j]`, the product of the factors of the actions
that take effect between the previous bar and bar j (an action on a suspended day takes effect at
the next bar). The factor of bar i as seen from day D is the product of `price_step` over the bars
after i up to D; it depends only on the bars inside D's lookback window, never on which range a
run covers, which is what makes a range run equal to day-by-day runs exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

SPLIT, DIVIDEND = "split", "dividend"


@dataclass(frozen=True)
class AdjustmentSteps:
    """Per-bar adjustment steps, aligned with the bars they were computed for."""

    price_step: np.ndarray  # product of price factors taking effect at this bar
    volume_step: np.ndarray  # product of volume factors (splits only) taking effect here
    actions_applied: int  # actions that fell on a bar with a previous bar to restate


def adjustment_steps(bars: pd.DataFrame, actions: pd.DataFrame) -> AdjustmentSteps:
    """Steps for `bars` (sorted by symbol, trade_date; columns symbol, trade_date, close).

    `actions` has columns ex_date, symbol, action, value. An action whose ex-date is after a
    symbol's last bar, or at or before its first bar, restates nothing in these bars.
    """
    n = len(bars)
    price_step = np.ones(n)
    volume_step = np.ones(n)
    if n == 0 or actions.empty:
        return AdjustmentSteps(price_step, volume_step, 0)
    bar_keys = _keys(bars["symbol"], bars["trade_date"], bars["symbol"])
    relevant = actions[actions["symbol"].isin(bars["symbol"].unique())]
    # A fixed order, so that several actions on one bar multiply the same way in every run.
    relevant = relevant.sort_values(["symbol", "ex_date", "action", "value"], kind="stable")
    action_keys = _keys(relevant["symbol"], relevant["ex_date"], bars["symbol"])
    at = np.searchsorted(bar_keys, action_keys, side="left")
    symbols = bars["symbol"].to_numpy()
    closes = bars["close"].to_numpy(dtype="float64")
    applied = 0
    for position, action, value, symbol in zip(
        at,
        relevant["action"].to_numpy(),
        relevant["value"].to_numpy(dtype="float64"),
        relevant["symbol"].to_numpy(),
        strict=True,
    ):
        # The action restates bars before it: it needs a bar on/after its ex-date and one before.
        if position >= n or position == 0 or symbols[position] != symbol:
            continue
        if symbols[position - 1] != symbol:
            continue
        if action == SPLIT:
            price_step[position] *= 1.0 / value
            volume_step[position] *= value
        elif action == DIVIDEND:
            price_step[position] *= 1.0 - value / closes[position - 1]
        else:
            raise ValueError(f"Unknown corporate action {action!r} for {symbol}")
        applied += 1
    return AdjustmentSteps(price_step, volume_step, applied)


def _keys(symbols: pd.Series, dates: pd.Series, universe: pd.Series) -> np.ndarray:
    """Sortable int64 keys (symbol code, day number) so bars and actions can be matched fast."""
    codes = pd.Categorical(symbols, categories=np.sort(universe.unique())).codes.astype(np.int64)
    days = pd.to_datetime(dates).to_numpy(dtype="datetime64[D]").astype(np.int64)
    return codes * 1_000_000 + days


def factors_to_last(steps: np.ndarray) -> np.ndarray:
    """For rows of per-bar steps (left-aligned, padded with 1.0), each bar's factor to the row's
    last bar: factor[i] = product of steps[i+1:]. Multiplied from the last column backwards, in
    the same order for every row, so the same bars always give the same bits.
    """
    rows, width = steps.shape
    factors = np.ones((rows, width))
    if width > 1:
        reversed_steps = steps[:, :0:-1]  # columns width-1 .. 1
        factors[:, -2::-1] = np.cumprod(reversed_steps, axis=1)
    return factors
