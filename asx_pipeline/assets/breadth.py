"""`market_breadth`: one row per session summarising the whole tracked market."""

import pandas as pd
from dagster import AssetExecutionContext, Output

from asx_pipeline.analytics.breadth import compute_breadth
from asx_pipeline.analytics.universe import in_universe
from asx_pipeline.assets.daily import daily_table_asset
from asx_pipeline.assets.metadata import preview, session_span
from asx_pipeline.calendar import span_of
from asx_pipeline.warehouse.tables import MARKET_BREADTH


@daily_table_asset(
    MARKET_BREADTH,
    "analytics",
)
def market_breadth(
    context: AssetExecutionContext,
    daily_indicators: pd.DataFrame,
    daily_prices: pd.DataFrame,
    asx_symbols: pd.DataFrame,
) -> Output[pd.DataFrame]:
    sessions = span_of(context.partition_time_window).sessions
    frame = compute_breadth(in_universe(daily_indicators, asx_symbols), daily_prices)
    latest = frame.iloc[-1] if not frame.empty else None
    metadata: dict[str, object] = {
        **session_span(sessions),
        "preview": preview(frame.tail(10)),
    }
    if latest is not None:
        metadata |= {
            "latest_advancers": int(latest["advancers"]),
            "latest_decliners": int(latest["decliners"]),
            "latest_pct_above_sma_200": _number(latest["pct_above_sma_200"]),
        }
    return Output(frame, metadata=metadata)


def _number(value: object) -> float:
    return float("nan") if value is None or pd.isna(value) else round(float(value), 2)
