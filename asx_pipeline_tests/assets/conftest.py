"""Materialising the core assets through Dagster into a throwaway DuckDB warehouse."""

import datetime as dt
from pathlib import Path

import pytest
from dagster import DagsterInstance, materialize

from asx_pipeline.assets.prices import market_bars
from asx_pipeline.assets.symbols import asx_symbols
from asx_pipeline.calendar import range_tags
from asx_pipeline.sources.resource import MarketDataResource
from asx_pipeline.warehouse.duckdb_backend import DuckDBWarehouse
from asx_pipeline.warehouse.frames import Window
from asx_pipeline.warehouse.io_manager import warehouse_resources
from asx_pipeline.warehouse.resources import DuckDBWarehouseResource
from asx_pipeline.warehouse.tables import TABLES


class CoreWarehouse:
    """Runs the core assets over ranges and reads back what they stored."""

    def __init__(self, root: Path, market_data: MarketDataResource) -> None:
        self.path = root / "warehouse.duckdb"
        self.market_data = market_data
        self.instance = DagsterInstance.ephemeral()

    def materialize(self, first: dt.date, last: dt.date, **kwargs):
        return materialize(
            [asx_symbols, market_bars],
            resources={
                "market_data": kwargs.pop("market_data", self.market_data),
                **warehouse_resources(DuckDBWarehouseResource(path=str(self.path))),
            },
            tags=range_tags(first, last),
            instance=self.instance,
            **kwargs,
        )

    def read(self, table: str, first: dt.date, last: dt.date):
        window = Window(first, last + dt.timedelta(days=1))
        return DuckDBWarehouse(self.path).read_window(TABLES[table], window)


def failure_text(result) -> str:
    """The first step failure of a run, as a person reads it in the UI."""
    return result.get_step_failure_events()[0].event_specific_data.error.to_string()


@pytest.fixture
def core(tmp_path) -> CoreWarehouse:
    return CoreWarehouse(tmp_path, MarketDataResource(source="sample", universe="top:30"))
