"""Technical indicators, TA-Lib's conventions, computed for many lookback windows at once.

Every function here takes rows of bars: a 2-D array with one lookback window per row, bars
**left-aligned** (a row's first bar in column 0) and padded on the right with NaN. A function
returns the whole output series per row, exactly as TA-Lib would for that row alone (NaN where
TA-Lib has no output yet); `at_last_bar` then picks the value at each row's last bar.

Conventions (TA-Lib 0.6, unstable period 0):
- SMA: mean of the last N values.
- EMA: k = 2/(N+1), seeded with the SMA of the row's first N values, then
  `ema = (x - ema) * k + ema`.
- MACD(12, 26, 9): the slow EMA is seeded on the first 26 values, the fast EMA on values 14..25
  (so both start together, as TA-Lib's MACD does; it is not EMA(12) of the whole row); the signal
  is an EMA(9) of the MACD line seeded on its first 9 values. Both outputs start at the 34th bar.
- RSI(14) and ATR(14): Wilder smoothing, seeded with plain means of the first 14 changes/true
  ranges; RSI is 0 when average gain + loss is below TA-Lib's 1e-8 zero.

Recursions run column by column with element-wise numpy operations, so a row's result depends
only on that row's values, never on how many rows share the array: a range run and day-by-day
runs produce the same bits. Equality with TA-Lib itself is proven to 1e-9 by the tests.
"""

from __future__ import annotations

import numpy as np

TA_LIB_ZERO = 1e-8  # TA_IS_ZERO in TA-Lib's source
TRADING_DAYS_PER_YEAR = 252


def at_last_bar(series: np.ndarray, bars: np.ndarray) -> np.ndarray:
    """Each row's value at its last bar (`bars` = number of bars in the row, at least 1)."""
    return np.take_along_axis(series, (bars - 1)[:, None], axis=1)[:, 0]


def trailing(values: np.ndarray, bars: np.ndarray, length: int) -> np.ndarray:
    """Each row's last `length` values as a (rows, length) block; NaN rows if too few bars."""
    columns = bars[:, None] - length + np.arange(length)[None, :]
    block = np.take_along_axis(values, np.clip(columns, 0, None), axis=1)
    block[bars < length] = np.nan
    return block


def sequential_sum(block: np.ndarray) -> np.ndarray:
    """Sum along rows left to right, one column at a time (fixed order, so fixed bits)."""
    total = block[:, 0].copy()
    for column in range(1, block.shape[1]):
        total += block[:, column]
    return total


def trailing_mean(values: np.ndarray, bars: np.ndarray, length: int) -> np.ndarray:
    """SMA of each row's last `length` values, at its last bar."""
    return sequential_sum(trailing(values, bars, length)) / length


def ema(values: np.ndarray, period: int, start: int = 0) -> np.ndarray:
    """TA-Lib EMA of each row, seeded with the SMA of columns start .. start+period-1."""
    rows, width = values.shape
    out = np.full((rows, width), np.nan)
    seed_end = start + period - 1
    if seed_end >= width:
        return out
    k = 2.0 / (period + 1)
    state = sequential_sum(values[:, start : seed_end + 1]) / period
    out[:, seed_end] = state
    for column in range(seed_end + 1, width):
        state = (values[:, column] - state) * k + state
        out[:, column] = state
    return out


def macd(
    values: np.ndarray, fast: int = 12, slow: int = 26, signal: int = 9
) -> tuple[np.ndarray, np.ndarray]:
    """TA-Lib MACD line and signal of each row (NaN before the 34th bar for 12/26/9)."""
    slow_line = ema(values, slow)
    fast_line = ema(values, fast, start=slow - fast)
    line = fast_line - slow_line
    signal_line = ema(line, signal, start=slow - 1)
    first_output = slow - 1 + signal - 1
    line[:, :first_output] = np.nan
    return line, signal_line


def rsi(values: np.ndarray, period: int = 14) -> np.ndarray:
    """TA-Lib (Wilder) RSI of each row."""
    rows, width = values.shape
    out = np.full((rows, width), np.nan)
    if period >= width:
        return out
    change = np.diff(values, axis=1)  # change[:, c - 1] is column c's change
    gain = np.zeros(rows)
    loss = np.zeros(rows)
    for column in range(1, period + 1):
        step = change[:, column - 1]
        loss -= np.where(step < 0, step, 0.0)
        gain += np.where(step < 0, 0.0, step)
    loss /= period
    gain /= period
    out[:, period] = _rsi_value(gain, loss)
    for column in range(period + 1, width):
        step = change[:, column - 1]
        loss = (loss * (period - 1) - np.where(step < 0, step, 0.0)) / period
        gain = (gain * (period - 1) + np.where(step < 0, 0.0, step)) / period
        out[:, column] = _rsi_value(gain, loss)
    return out


def _rsi_value(gain: np.ndarray, loss: np.ndarray) -> np.ndarray:
    total = gain + loss
    is_zero = (total > -TA_LIB_ZERO) & (total < TA_LIB_ZERO)
    with np.errstate(invalid="ignore", divide="ignore"):
        value = 100.0 * (gain / total)
    return np.where(is_zero, 0.0, value)


def true_range(high: np.ndarray, low: np.ndarray, close: np.ndarray) -> np.ndarray:
    """TA-Lib TRANGE of each row (column 0 has no previous close: NaN)."""
    previous = np.full_like(close, np.nan)
    previous[:, 1:] = close[:, :-1]
    greatest = high - low
    greatest = np.where(np.abs(previous - high) > greatest, np.abs(previous - high), greatest)
    greatest = np.where(np.abs(previous - low) > greatest, np.abs(previous - low), greatest)
    greatest[:, 0] = np.nan
    return greatest


def atr(high: np.ndarray, low: np.ndarray, close: np.ndarray, period: int = 14) -> np.ndarray:
    """TA-Lib (Wilder) ATR of each row: the first value at column `period`."""
    rows, width = close.shape
    out = np.full((rows, width), np.nan)
    if period >= width:
        return out
    ranges = true_range(high, low, close)
    state = sequential_sum(ranges[:, 1 : period + 1]) / period
    out[:, period] = state
    for column in range(period + 1, width):
        state = (state * (period - 1) + ranges[:, column]) / period
        out[:, column] = state
    return out


def annualised_volatility(log_returns: np.ndarray, bars: np.ndarray, length: int) -> np.ndarray:
    """Sample standard deviation (ddof=1) of each row's last `length` log returns, x sqrt(252).

    `log_returns[:, c]` is the return into column c, so a row needs length + 1 bars.
    """
    block = trailing(log_returns, bars, length)
    block[bars < length + 1] = np.nan
    mean = sequential_sum(block) / length
    variance = sequential_sum((block - mean[:, None]) ** 2) / (length - 1)
    return np.sqrt(variance) * np.sqrt(TRADING_DAYS_PER_YEAR)
