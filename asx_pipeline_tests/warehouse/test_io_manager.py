"""The IO manager stores an asset in the table its `dagster/table_name` names, through the
warehouse resource it holds, and says so when an asset names none."""

import datetime as dt
from pathlib import Path

import pandas as pd
from dagster import DagsterInstance, asset, materialize

from asx_pipeline.assets.daily import table_metadata
from asx_pipeline.calendar import partition_key, window_of
from asx_pipeline.configured import DAILY_PARTITIONS
from asx_pipeline.warehouse.frames import Window
from asx_pipeline.warehouse.io_manager import warehouse_resources
from asx_pipeline.warehouse.resources import DuckDBWarehouseResource
from asx_pipeline.warehouse.tables import MARKET_BREADTH

DAY = dt.date(2025, 11, 3)


def _breadth_row(day: dt.date) -> pd.DataFrame:
    counts = dict.fromkeys(
        ("symbols", "advancers", "decliners", "unchanged", "new_highs_52w", "new_lows_52w"), 1
    )
    return pd.DataFrame(
        [{"trade_date": day, **counts, "pct_above_sma_200": 0.5, "median_return": 0.01}]
    )


def test_an_asset_is_stored_in_the_table_its_metadata_names(tmp_path: Path) -> None:
    # The key differs from the table: only the metadata can tell the IO manager where it goes.
    @asset(partitions_def=DAILY_PARTITIONS, metadata=table_metadata(MARKET_BREADTH))
    def breadth_under_another_name(context) -> pd.DataFrame:
        return _breadth_row(window_of(context.partition_time_window).start)

    warehouse = DuckDBWarehouseResource(path=str(tmp_path / "warehouse.duckdb"))
    result = materialize(
        [breadth_under_another_name],
        resources=warehouse_resources(warehouse),
        partition_key=partition_key(DAY),
        instance=DagsterInstance.ephemeral(),
    )
    assert result.success
    (event,) = result.get_asset_materialization_events()
    metadata = event.materialization.metadata
    assert metadata["dagster/row_count"].value == 1
    stored = warehouse.open().read_window(MARKET_BREADTH, Window.single(DAY))
    assert list(stored["trade_date"]) == [DAY]


def test_an_asset_without_a_table_name_is_refused_by_name(tmp_path: Path) -> None:
    @asset(partitions_def=DAILY_PARTITIONS)
    def nameless() -> pd.DataFrame:
        return _breadth_row(DAY)

    result = materialize(
        [nameless],
        resources=warehouse_resources(DuckDBWarehouseResource(path=str(tmp_path / "w.duckdb"))),
        partition_key=partition_key(DAY),
        instance=DagsterInstance.ephemeral(),
        raise_on_error=False,
    )
    assert not result.success
    (failure,) = result.get_step_failure_events()
    message = failure.event_specific_data.error.message
    assert "nameless declares no dagster/table_name" in message
