"""`screener_results`: the screeners of the screeners file, run on each session, ranked.

The file is validated when the definitions load (definitions.py builds the ScreenersResource
with `validated_screeners_resource`), so a bad file stops the code location, not a run.
"""

from pathlib import Path

import pandas as pd
from dagster import AssetExecutionContext, ConfigurableResource, Output

from asx_pipeline.analytics.screener_config import ScreenerSet, load_screeners
from asx_pipeline.analytics.screening import run_screeners, screening_frame
from asx_pipeline.analytics.universe import in_universe
from asx_pipeline.assets.daily import daily_table_asset
from asx_pipeline.assets.metadata import preview, session_span
from asx_pipeline.calendar import span_of
from asx_pipeline.warehouse.tables import SCREENER_RESULTS


class ScreenersResource(ConfigurableResource):
    """Where the screeners file is; `screeners()` parses and validates it."""

    path: str = "config/screeners.yml"

    def screeners(self) -> ScreenerSet:
        return load_screeners(self.path)


PROJECT_ROOT = Path(__file__).resolve().parents[2]


def resolve_screeners_path(path: str) -> str:
    """`path` as given, or, when relative and absent from the working directory, relative to
    the project (so the default works however `dagster` or cron were started)."""
    given = Path(path)
    if given.is_absolute() or given.exists() or not (PROJECT_ROOT / given).exists():
        return str(given)
    return str(PROJECT_ROOT / given)


def validated_screeners_resource(path: str) -> ScreenersResource:
    """A resource for `path`, after checking the file (raises ScreenerConfigError if bad)."""
    resolved = resolve_screeners_path(path)
    load_screeners(resolved)
    return ScreenersResource(path=resolved)


@daily_table_asset(
    SCREENER_RESULTS,
    "analytics",
)
def screener_results(
    context: AssetExecutionContext,
    screeners: ScreenersResource,
    daily_indicators: pd.DataFrame,
    daily_prices: pd.DataFrame,
    asx_symbols: pd.DataFrame,
) -> Output[pd.DataFrame]:
    sessions = span_of(context.partition_time_window).sessions
    config = screeners.screeners()
    tracked = in_universe(daily_indicators, asx_symbols)
    frame = run_screeners(screening_frame(tracked, daily_prices, asx_symbols), config)
    hits = frame.groupby("screener").size() if not frame.empty else pd.Series(dtype=int)
    return Output(
        frame,
        metadata={
            **session_span(sessions),
            "screeners_file": config.path,
            **{f"hits_{s.name}": int(hits.get(s.name, 0)) for s in config.screeners},
            "preview": preview(frame[frame["rank"] <= 3] if not frame.empty else frame),
        },
    )
