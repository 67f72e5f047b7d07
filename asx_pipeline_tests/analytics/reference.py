"""An independent reference for one (symbol, day): adjust with plain pandas, then call TA-Lib."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import talib


def adjusted_window(bars: pd.DataFrame, actions: pd.DataFrame) -> pd.DataFrame:
    """`bars` (one symbol, date order) restated in the units of its last bar."""
    adjusted = bars.reset_index(drop=True).copy()
    price_columns = ["open", "high", "low", "close"]
    for action in actions.itertuples():
        before = adjusted["trade_date"] < action.ex_date
        if not before.any() or before.all():
            continue
        if action.action == "split":
            adjusted.loc[before, price_columns] /= action.value
            adjusted.loc[before, "volume"] *= action.value
        else:
            previous_close = bars.reset_index(drop=True).loc[before, "close"].iloc[-1]
            adjusted.loc[before, price_columns] *= 1 - action.value / previous_close
    return adjusted


def reference_row(bars: pd.DataFrame, actions: pd.DataFrame, day: dt.date) -> dict[str, float]:
    """TA-Lib's values at `day` for bars already cut to the lookback window ending at `day`."""
    window = adjusted_window(bars[bars["trade_date"] <= day], actions)
    high, low, close = (window[c].to_numpy(dtype=float) for c in ("high", "low", "close"))
    volume = window["volume"].to_numpy(dtype=float)
    macd, signal, _ = talib.MACD(close, 12, 26, 9)
    log_returns = np.diff(np.log(close))
    return {
        "sma_20": talib.SMA(close, 20)[-1],
        "sma_50": talib.SMA(close, 50)[-1] if len(close) >= 50 else np.nan,
        "sma_200": talib.SMA(close, 200)[-1] if len(close) >= 200 else np.nan,
        "ema_12": talib.EMA(close, 12)[-1],
        "ema_26": talib.EMA(close, 26)[-1],
        "macd": macd[-1],
        "macd_signal": signal[-1],
        "rsi_14": talib.RSI(close, 14)[-1],
        "atr_14": talib.ATR(high, low, close, 14)[-1],
        "volatility_20d": np.std(log_returns[-20:], ddof=1) * np.sqrt(252),
        "avg_volume_20d": talib.SMA(volume, 20)[-1],
        "return_1d": close[-1] / close[-2] - 1,
    }
