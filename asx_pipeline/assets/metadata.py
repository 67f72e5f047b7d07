"""Materialisation metadata that a person can read in the UI."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

import pandas as pd
from dagster import MetadataValue

_PREVIEW_ROWS = 10
# Keys of daily_prices' metadata that the coverage check, the CLI summary and the failure alert
# read back from a run: which tickers were not fetched and why, which bars were refused as junk.
FAILED_SYMBOLS = "failed_symbols"
REFUSED_BARS = "refused_bars"


def preview(frame: pd.DataFrame) -> MetadataValue:
    """The first rows as a Markdown table."""
    return MetadataValue.md(frame.head(_PREVIEW_ROWS).to_markdown(index=False))


def session_span(sessions: Iterable[dt.date]) -> dict[str, str]:
    ordered = sorted(sessions)
    if not ordered:
        return {"first_session": "none", "last_session": "none"}
    return {"first_session": ordered[0].isoformat(), "last_session": ordered[-1].isoformat()}


def names(values: Iterable[str], limit: int = 50) -> str:
    """A comma list of names, cut short with a count when it is long."""
    ordered = sorted(values)
    shown = ", ".join(ordered[:limit])
    more = len(ordered) - limit
    return (shown + (f" and {more} more" if more > 0 else "")) or "none"
