"""`daily_indicators`: TA-Lib-convention indicators per symbol and session, on adjusted prices.

The asset reads `daily_prices` and `corporate_actions` over its own window plus the
LOOKBACK_SESSIONS - 1 sessions before it (a TimeWindowPartitionMapping counts partitions, i.e.
ASX sessions), adjusts explicitly (analytics/adjustment.py) and writes only its own window. How a
range run equals day-by-day runs is explained in analytics/indicators.py.
"""

import datetime as dt

import numpy as np
import pandas as pd
from dagster import (
    AssetExecutionContext,
    AssetIn,
    Output,
    TimeWindowPartitionMapping,
)

from asx_pipeline.analytics.indicators import LOOKBACK_SESSIONS, compute_indicators
from asx_pipeline.assets.daily import daily_table_asset
from asx_pipeline.assets.metadata import names, preview, session_span
from asx_pipeline.calendar import asx_calendar, span_of
from asx_pipeline.warehouse.tables import DAILY_INDICATORS

# Early partitions (near ASX_START_DATE) get the history that exists, and nulls where it is short.
LOOKBACK = TimeWindowPartitionMapping(
    start_offset=-(LOOKBACK_SESSIONS - 1), allow_nonexistent_upstream_partitions=True
)


def asx_sessions() -> np.ndarray:
    """Every XASX session the calendar knows, as sorted datetime64[D]."""
    return asx_calendar().sessions.values.astype("datetime64[D]")


@daily_table_asset(
    DAILY_INDICATORS,
    "analytics",
    ins={
        "daily_prices": AssetIn(partition_mapping=LOOKBACK),
        "corporate_actions": AssetIn(partition_mapping=LOOKBACK),
    },
)
def daily_indicators(
    context: AssetExecutionContext, daily_prices: pd.DataFrame, corporate_actions: pd.DataFrame
) -> Output[pd.DataFrame]:
    sessions = span_of(context.partition_time_window).sessions
    run = compute_indicators(
        daily_prices, corporate_actions, asx_sessions(), sessions[0], sessions[-1]
    )
    frame = run.frame
    loaded = set(daily_prices["trade_date"]) if not daily_prices.empty else set()
    missing_history = _sessions_without_prices(loaded, sessions[0])
    if missing_history:
        context.log.warning(
            f"{len(missing_history)} session(s) of the {LOOKBACK_SESSIONS}-session lookback have "
            "no daily_prices: indicators needing them are null or warm up on less history. "
            "Materialise daily_prices for those sessions first."
        )
    full_history = frame["sma_200"].notna() if not frame.empty else pd.Series(dtype=bool)
    return Output(
        frame,
        metadata={
            "symbols": int(frame["symbol"].nunique()) if not frame.empty else 0,
            **session_span(sessions),
            "lookback_sessions": LOOKBACK_SESSIONS,
            "history_rows_loaded": len(daily_prices),
            "lookback_sessions_without_prices": len(missing_history),
            "corporate_actions_applied": run.actions_applied,
            "rows_with_sma_200": int(full_history.sum()),
            "symbols_without_sma_200": names(
                frame.loc[~full_history, "symbol"].unique() if not frame.empty else []
            ),
            "preview": preview(frame),
        },
    )


def _sessions_without_prices(loaded: set[dt.date], first_output: dt.date) -> list[dt.date]:
    """Lookback sessions (before the window) on which no symbol has a bar."""
    all_sessions = asx_sessions()
    end = int(np.searchsorted(all_sessions, np.datetime64(first_output)))
    start = max(0, end - (LOOKBACK_SESSIONS - 1))
    wanted = [d.astype(object) for d in all_sessions[start:end]]
    return [d for d in wanted if d not in loaded]
