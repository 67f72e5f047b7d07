"""The one IO manager: stores every asset's frame as a window of its warehouse table.

Assets return pandas frames and never open a connection or know the backend. A frame replaces
exactly the partition time window of the run (one day, or a whole backfill range in one go), and
an input is exactly the window Dagster maps to it (longer, for assets that need history). The
table is the one the asset declares as `dagster/table_name` (assets/daily.py puts it there from
tables.py), so an asset's key and its table's name are free to differ.
"""

from typing import Any

import pandas as pd
from dagster import (
    ConfigurableIOManager,
    Failure,
    InputContext,
    OutputContext,
)

from asx_pipeline.calendar import window_of
from asx_pipeline.warehouse.frames import FrameRefusedError, conform_frame
from asx_pipeline.warehouse.resources import WarehouseResource
from asx_pipeline.warehouse.tables import TableSpec, table_for

# Where the IO manager finds an asset's table (assets/daily.py puts it on every table asset).
TABLE_NAME = "dagster/table_name"


class WarehouseIOManager(ConfigurableIOManager):
    """Reads and replaces table windows in the warehouse resource it holds."""

    # A nested resource: the same one assets, checks and the CLI use, not a copy of its config.
    warehouse: WarehouseResource

    def handle_output(self, context: OutputContext, obj: pd.DataFrame | None) -> None:
        if obj is None:
            return
        table = _table(context.definition_metadata, context.asset_key.to_user_string())
        window = window_of(context.asset_partitions_time_window)
        try:
            frame = conform_frame(table, window, obj)
        except FrameRefusedError as error:
            # The same frame would be refused again: fail now rather than after step retries.
            raise Failure(str(error), allow_retries=False) from None
        backend = self.warehouse.open()
        written = backend.replace_window(table, window, frame)
        # dagster/row_count is the key the UI charts over time, on every table asset alike.
        context.add_output_metadata(
            {"dagster/row_count": written, "window": str(window), "stored_in": backend.describe()}
        )

    def load_input(self, context: InputContext) -> pd.DataFrame:
        upstream = context.upstream_output
        metadata = upstream.definition_metadata if upstream is not None else None
        table = _table(metadata, context.asset_key.to_user_string())
        window = window_of(context.asset_partitions_time_window)
        return self.warehouse.open().read_window(table, window)


def warehouse_resources(
    warehouse: WarehouseResource,
) -> dict[str, Any]:
    """The warehouse and the default IO manager, which stores every table asset through it."""
    return {"warehouse": warehouse, "io_manager": WarehouseIOManager(warehouse=warehouse)}


def _table(metadata: dict[str, Any] | None, asset: str) -> TableSpec:
    name = (metadata or {}).get(TABLE_NAME)
    if name is None:
        raise Failure(f"{asset} declares no {TABLE_NAME}: the warehouse cannot tell its table")
    return table_for(str(getattr(name, "value", name)))
