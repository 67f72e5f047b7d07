"""Which of a ticker's daily bars are fit to store, and why the others are not.

Yahoo sends the occasional bar with a missing field, a zero or negative price, a high below the
low, negative volume, or (for ASX tickers) a session quoted in cents instead of dollars. Such a
bar is refused here, by itself: the ticker's other sessions are stored, and whatever the warehouse
already holds for that ticker and session stays (daily_prices replaces only the rows it brings).
The blocking asset checks on daily_prices remain the second line of defence.

Works on a frame as yfinance returns it (`Open`, `High`, `Low`, `Close`, `Adj Close`, `Volume`,
`Dividends`, `Stock Splits`), indexed by Sydney trade date, before splits are undone: Yahoo's
series is split-adjusted and therefore continuous across a real split, so a ~100x jump in it is a
unit error, not a corporate action.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

import pandas as pd

PRICE_FIELDS = ("Open", "High", "Low", "Close")
BAR_FIELDS = (*PRICE_FIELDS, "Adj Close", "Volume")
# A close about 100 times (or a hundredth of) the previous accepted close, with no split that
# day: dollars and cents mixed up. Real daily moves of 50x do not happen on the ASX.
_UNIT_ERROR_RATIO = 50.0


@dataclass(frozen=True)
class RefusedBar:
    """One bar that was not stored: which ticker and session, and what was wrong with it."""

    ticker: str
    session: dt.date
    reason: str

    def __str__(self) -> str:
        return f"{self.ticker} {self.session.isoformat()}: {self.reason}"


def refuse_junk_bars(ticker: str, frame: pd.DataFrame) -> tuple[pd.DataFrame, list[RefusedBar]]:
    """`frame` with its junk bars blanked out, and a RefusedBar for each one.

    A refused bar's prices and volume become NaN, so no row of it is stored; its dividend or
    split (yfinance puts actions on the bar's row) stays, because the action is not the junk and
    a split must still be undone on the earlier bars. Rows with no price at all but an action
    (yfinance adds such rows) are actions, not bars, and are left alone.
    """
    refused: list[RefusedBar] = []
    junk = pd.Series(False, index=frame.index)
    # The first bar has no previous one: start from the median of the first few closes, so that
    # a first bar in cents is the outlier, not the yardstick every later bar is refused against.
    previous_close = _typical_close(frame)
    splits = pd.to_numeric(frame["Stock Splits"], errors="coerce").fillna(0)
    for position, (session, row) in enumerate(frame.iterrows()):
        if _is_action_only(row):
            continue
        reason = bar_problem(row)
        if reason is None and previous_close is not None and splits.iloc[position] == 0:
            reason = _unit_error(float(row["Close"]), previous_close)
        if reason is not None:
            refused.append(RefusedBar(ticker, session, reason))
            junk.iloc[position] = True
            continue
        previous_close = float(row["Close"])
    cleaned = frame.copy()
    bar_fields = [field for field in BAR_FIELDS if field in cleaned.columns]
    for field in bar_fields:
        # Every bar kept passed `bar_problem`, so only refused values can fail to convert.
        cleaned[field] = pd.to_numeric(cleaned[field], errors="coerce")
    cleaned.loc[junk.to_numpy(), bar_fields] = float("nan")
    return cleaned, refused


def bar_problem(row: pd.Series) -> str | None:
    """What is wrong with one bar on its own, or None when it is fit to store."""
    prices: dict[str, float] = {}
    for field in PRICE_FIELDS:
        value = _number(row[field])
        if value is None:
            return f"{field.lower()} is missing"
        if value <= 0:
            return f"{field.lower()} is {_shown(value)}; prices must be above zero"
        prices[field] = value
    high, low = prices["High"], prices["Low"]
    if high < low:
        return f"high {_shown(high)} is below low {_shown(low)}"
    for field in ("Open", "Close"):
        if not low <= prices[field] <= high:
            return (
                f"{field.lower()} {_shown(prices[field])} is outside the bar's range "
                f"{_shown(low)}..{_shown(high)}"
            )
    adjusted = _number(row.get("Adj Close"))
    if adjusted is None:
        return "adj_close is missing"
    if adjusted <= 0:
        return f"adj_close is {_shown(adjusted)}; it must be above zero"
    volume = _number(row.get("Volume"))
    if volume is None:
        return "volume is missing"
    if volume < 0:
        return f"volume is {_shown(volume)}; it must not be negative"
    return None


def _typical_close(frame: pd.DataFrame, count: int = 5) -> float | None:
    closes = pd.to_numeric(frame["Close"], errors="coerce")
    closes = closes[closes.map(lambda v: math.isfinite(v) and v > 0)].head(count)
    return float(closes.median()) if not closes.empty else None


def _unit_error(close: float, previous_close: float) -> str | None:
    ratio = close / previous_close
    if ratio >= _UNIT_ERROR_RATIO or ratio <= 1 / _UNIT_ERROR_RATIO:
        return (
            f"close {_shown(close)} is {ratio:.4g}x the previous close {_shown(previous_close)} "
            "with no split that day: looks like cents and dollars mixed up"
        )
    return None


def _is_action_only(row: pd.Series) -> bool:
    if any(_number(row[field]) is not None for field in PRICE_FIELDS):
        return False
    actions = (_number(row.get("Dividends")) or 0, _number(row.get("Stock Splits")) or 0)
    return any(value != 0 for value in actions)


def _number(value: object) -> float | None:
    """A finite float, or None for missing, NaN, infinite or non-numeric values."""
    if value is None:
        return None
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _shown(value: float) -> str:
    return f"{value:.6g}"
