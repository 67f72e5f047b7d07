"""`daily_indicators` rows from raw bars and corporate actions, one lookback window per row.

The indicators of symbol S on day D are, by definition, TA-Lib's values at D's bar for the series
of S's bars in the LOOKBACK_SESSIONS sessions ending at D, adjusted to D's units (see
`adjustment.py`). That definition never mentions the run, so a two-year range run and 500
one-day runs write the same bits: each (S, D) is computed from its own window, gathered from the
loaded bars, and every window is evaluated with row-independent arithmetic (`technical.py`).

Too little history gives nulls, never numbers from a shorter series: SMA/EMA/RSI/ATR need their
TA-Lib lookback in bars (e.g. 200 bars for sma_200, 34 for MACD), volatility_20d 21 bars, and the
52-week high/low need the symbol to have traded at or before the first of the 252 sessions.
"""

from __future__ import annotations

import datetime as dt
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from asx_pipeline.analytics import technical as ta
from asx_pipeline.analytics.adjustment import adjustment_steps, factors_to_last

LOOKBACK_SESSIONS = 260  # 52 weeks (252 sessions) plus a little, and >= 200 bars for sma_200
WEEKS_52_SESSIONS = 252
VOLATILITY_RETURNS = 20
VOLUME_AVERAGE_BARS = 20
_ROWS_PER_CHUNK = 2048  # windows evaluated together: bounds memory at ~15 x 2048 x 260 doubles

INDICATOR_COLUMNS = [
    "return_1d",
    "sma_20",
    "sma_50",
    "sma_200",
    "ema_12",
    "ema_26",
    "macd",
    "macd_signal",
    "rsi_14",
    "atr_14",
    "volatility_20d",
    "high_52w",
    "low_52w",
    "avg_volume_20d",
    "relative_volume",
]


@dataclass(frozen=True)
class IndicatorRun:
    """What one computation produced, and facts a person wants in the metadata."""

    frame: pd.DataFrame
    actions_applied: int


@dataclass(frozen=True)
class _Bars:
    """All loaded bars of all symbols, flat, sorted by (symbol, trade_date)."""

    symbol: np.ndarray
    trade_date: np.ndarray
    ordinal: np.ndarray  # session number on the ASX calendar
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    price_step: np.ndarray
    volume_step: np.ndarray
    simple_return: np.ndarray  # into this bar from the symbol's previous bar, adjusted
    log_return: np.ndarray
    window_start: np.ndarray  # index of the first bar of this bar's lookback window
    actions_applied: int


def compute_indicators(
    prices: pd.DataFrame,
    actions: pd.DataFrame,
    sessions: np.ndarray,
    first: dt.date,
    last: dt.date,
) -> IndicatorRun:
    """Indicator rows for every bar dated first..last, using the history loaded in `prices`.

    `sessions` holds ASX sessions (datetime64[D], sorted) covering every date in `prices`.
    """
    bars = _prepare(prices, actions, sessions)
    dates = bars.trade_date
    outputs = np.flatnonzero((dates >= np.datetime64(first)) & (dates <= np.datetime64(last)))
    chunks = [
        _indicators_for(bars, outputs[i : i + _ROWS_PER_CHUNK])
        for i in range(0, len(outputs), _ROWS_PER_CHUNK)
    ]
    frame = pd.concat(chunks, ignore_index=True) if chunks else _empty()
    return IndicatorRun(frame=frame, actions_applied=bars.actions_applied)


def _prepare(prices: pd.DataFrame, actions: pd.DataFrame, sessions: np.ndarray) -> _Bars:
    ordered = prices.sort_values(["symbol", "trade_date"], kind="stable").reset_index(drop=True)
    steps = adjustment_steps(ordered, actions)
    symbol = ordered["symbol"].to_numpy(dtype=object)
    trade_date = pd.to_datetime(ordered["trade_date"]).to_numpy(dtype="datetime64[D]")
    ordinal = np.searchsorted(sessions, trade_date).astype(np.int64)
    close = ordered["close"].to_numpy(dtype="float64")
    same_symbol = np.zeros(len(ordered), dtype=bool)
    same_symbol[1:] = symbol[1:] == symbol[:-1]
    previous = np.full(len(ordered), np.nan)
    previous[1:] = close[:-1]
    # Returns need no anchor: the previous close restated in this bar's units is
    # previous * price_step, whatever day the window ends on.
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = close / (previous * steps.price_step)
    ratio[~same_symbol] = np.nan
    codes = pd.factorize(symbol, sort=True)[0].astype(np.int64)
    keys = codes * 1_000_000 + ordinal
    window_start = np.searchsorted(keys, keys - (LOOKBACK_SESSIONS - 1), side="left")
    return _Bars(
        symbol=symbol,
        trade_date=trade_date,
        ordinal=ordinal,
        high=ordered["high"].to_numpy(dtype="float64", na_value=np.nan),
        low=ordered["low"].to_numpy(dtype="float64", na_value=np.nan),
        close=close,
        volume=ordered["volume"].to_numpy(dtype="float64", na_value=np.nan),
        price_step=steps.price_step,
        volume_step=steps.volume_step,
        simple_return=ratio - 1.0,
        log_return=_log(ratio),
        window_start=window_start,
        actions_applied=steps.actions_applied,
    )


def _indicators_for(bars: _Bars, outputs: np.ndarray) -> pd.DataFrame:
    """Indicators at the bars `outputs`, each from its own left-aligned lookback window."""
    count = outputs - bars.window_start[outputs] + 1
    columns = np.arange(LOOKBACK_SESSIONS)[None, :]
    index = bars.window_start[outputs][:, None] + columns
    inside = columns < count[:, None]
    index = np.where(inside, index, outputs[:, None])

    def rows(values: np.ndarray, pad: float) -> np.ndarray:
        return np.where(inside, values[index], pad)

    price_factor = factors_to_last(rows(bars.price_step, 1.0))
    volume_factor = factors_to_last(rows(bars.volume_step, 1.0))
    close = rows(bars.close, np.nan) * price_factor
    high = rows(bars.high, np.nan) * price_factor
    low = rows(bars.low, np.nan) * price_factor
    volume = rows(bars.volume, np.nan) * volume_factor
    log_returns = rows(bars.log_return, np.nan)
    log_returns[:, 0] = np.nan  # its previous bar is outside the window

    macd_line, macd_signal = ta.macd(close)
    avg_volume = ta.trailing_mean(volume, count, VOLUME_AVERAGE_BARS)
    high_52w, low_52w = _extremes_52w(bars, outputs, rows(bars.ordinal, -1), high, low)
    with np.errstate(invalid="ignore", divide="ignore"):
        relative_volume = np.where(avg_volume > 0, bars.volume[outputs] / avg_volume, np.nan)
        return_1d = np.where(count >= 2, bars.simple_return[outputs], np.nan)
    values = {
        "return_1d": return_1d,
        "sma_20": ta.trailing_mean(close, count, 20),
        "sma_50": ta.trailing_mean(close, count, 50),
        "sma_200": ta.trailing_mean(close, count, 200),
        "ema_12": ta.at_last_bar(ta.ema(close, 12), count),
        "ema_26": ta.at_last_bar(ta.ema(close, 26), count),
        "macd": ta.at_last_bar(macd_line, count),
        "macd_signal": ta.at_last_bar(macd_signal, count),
        "rsi_14": ta.at_last_bar(ta.rsi(close, 14), count),
        "atr_14": ta.at_last_bar(ta.atr(high, low, close, 14), count),
        "volatility_20d": ta.annualised_volatility(log_returns, count, VOLATILITY_RETURNS),
        "high_52w": high_52w,
        "low_52w": low_52w,
        "avg_volume_20d": avg_volume,
        "relative_volume": relative_volume,
    }
    frame = pd.DataFrame(
        {
            "trade_date": bars.trade_date[outputs].astype(object),
            "symbol": bars.symbol[outputs],
            **values,
            "lookback_bars": count,
        }
    )
    return frame


def _extremes_52w(
    bars: _Bars, outputs: np.ndarray, ordinals: np.ndarray, high: np.ndarray, low: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Highest high and lowest low (adjusted) over the 252 sessions ending at each output bar.

    Null unless the symbol traded at or before the first of those sessions, so that a recent
    listing never reports a "52-week" high made of a few months.
    """
    first_session = bars.ordinal[outputs] - (WEEKS_52_SESSIONS - 1)
    in_span = ordinals >= first_session[:, None]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows are nulled below
        highest = np.nanmax(np.where(in_span, high, np.nan), axis=1)
        lowest = np.nanmin(np.where(in_span, low, np.nan), axis=1)
    reaches_back = ordinals[:, 0] <= first_session
    return np.where(reaches_back, highest, np.nan), np.where(reaches_back, lowest, np.nan)


def _empty() -> pd.DataFrame:
    return pd.DataFrame(
        {"trade_date": [], "symbol": [], **{c: [] for c in INDICATOR_COLUMNS}, "lookback_bars": []}
    )


def _log(values: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.log(values)
