"""A DuckDB warehouse pre-filled with sample core tables, for the analytics tests.

Filling the core tables through the pure frame builders (not a Dagster run) keeps the tests
fast; the analytics assets are then materialised through Dagster against this file.
"""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pandas as pd
from dagster import AssetSelection, DagsterInstance, materialize

from asx_pipeline.assets.breadth import market_breadth
from asx_pipeline.assets.indicators import daily_indicators
from asx_pipeline.assets.prices import actions_frame, market_bars, prices_frame
from asx_pipeline.assets.reports import ReportsResource, daily_report
from asx_pipeline.assets.screeners import ScreenersResource, screener_results
from asx_pipeline.assets.symbols import asx_symbols, symbols_for_sessions
from asx_pipeline.calendar import range_tags, sessions_between
from asx_pipeline.report_mail import ReportMailResource
from asx_pipeline.sources.resource import MarketDataResource
from asx_pipeline.warehouse.duckdb_backend import DuckDBWarehouse
from asx_pipeline.warehouse.frames import Window, conform_frame
from asx_pipeline.warehouse.io_manager import warehouse_resources
from asx_pipeline.warehouse.resources import DuckDBWarehouseResource
from asx_pipeline.warehouse.tables import TABLES

REPO_ROOT = Path(__file__).resolve().parents[2]
UNIVERSE = "BHP,CBA,WBC,NAB,FMG,CSL,PME,SYR,AWC,TLC,WOW,QBE"
HISTORY_FIRST = dt.date(2024, 9, 2)
HISTORY_LAST = dt.date(2025, 11, 28)
FIXED_INGESTED_AT = dt.datetime(2025, 12, 1, tzinfo=dt.UTC)


def market_data() -> MarketDataResource:
    return MarketDataResource(source="sample", universe=UNIVERSE)


def fill_core_tables(path: Path, first: dt.date = HISTORY_FIRST, last: dt.date = HISTORY_LAST):
    """Write asx_symbols, daily_prices and corporate_actions for first..last into `path`."""
    resource = market_data()
    sessions = sessions_between(first, last)
    warehouse = DuckDBWarehouse(path)
    symbols = symbols_for_sessions(resource, warehouse, sessions)[0].frame
    tickers = sorted(symbols["yahoo_ticker"].unique())
    history = resource.client().price_history(tickers, first, last)
    frames = {
        "asx_symbols": symbols,
        "daily_prices": prices_frame(history, symbols, "sample", FIXED_INGESTED_AT),
        "corporate_actions": actions_frame(history, symbols, "sample"),
    }
    window = Window(first, last + dt.timedelta(days=1))
    for name, frame in frames.items():
        table = TABLES[name]
        warehouse.replace_window(table, window, conform_frame(table, window, frame))
    return frames


class AnalyticsWarehouse:
    """Materialises the analytics assets through Dagster into one DuckDB file."""

    def __init__(self, path: Path, reports_dir: Path) -> None:
        self.path = path
        self.reports_dir = reports_dir
        self.instance = DagsterInstance.ephemeral()

    def resources(self, **overrides: object) -> dict[str, object]:
        return {
            "market_data": market_data(),
            **warehouse_resources(DuckDBWarehouseResource(path=str(self.path))),
            "screeners": ScreenersResource(path=str(REPO_ROOT / "config" / "screeners.yml")),
            "reports": ReportsResource(directory=str(self.reports_dir)),
            "report_mail": ReportMailResource(),
            **overrides,
        }

    def materialize(self, selected: list[str], first: dt.date, last: dt.date, **kwargs):
        """Materialise the `selected` assets (and checks on them) over first..last in one run."""
        return materialize(
            [asx_symbols, market_bars, *ANALYTICS_ASSETS, *kwargs.pop("checks", [])],
            selection=AssetSelection.assets(*selected),
            resources=self.resources(**kwargs.pop("resources", {})),
            tags={**range_tags(first, last), **kwargs.pop("tags", {})},
            instance=self.instance,
            **kwargs,
        )

    def read(self, table: str, first: dt.date, last: dt.date) -> pd.DataFrame:
        window = Window(first, last + dt.timedelta(days=1))
        return DuckDBWarehouse(self.path).read_window(TABLES[table], window)


ANALYTICS_ASSETS = [daily_indicators, market_breadth, screener_results, daily_report]


def copy_of(source: Path, directory: Path) -> AnalyticsWarehouse:
    """A fresh warehouse in `directory` holding a copy of the pre-filled file at `source`."""
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / "warehouse.duckdb"
    shutil.copyfile(source, target)
    return AnalyticsWarehouse(target, directory / "reports")
