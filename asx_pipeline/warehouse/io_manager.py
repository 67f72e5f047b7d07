"""The one IO manager: stores every asset's frame as a window of its warehouse table.

Assets return pandas frames and never open a connection or know the backend. A frame replaces
exactly the partition time window of the run (one day, or a whole backfill range in one go), and
an input is exactly the window Dagster maps to it (longer, for assets that need history).
"""

from __future__ import annotations

from typing import Literal

import pandas as pd
from dagster import ConfigurableIOManager, Failure, InputContext, OutputContext
from dagster._core.definitions.partitions.utils.time_window import TimeWindow
from pydantic import PrivateAttr

from asx_pipeline.warehouse.backend import WarehouseBackend
from asx_pipeline.warehouse.frames import FrameRefusedError, Window, conform_frame
from asx_pipeline.warehouse.tables import table_for

BackendName = Literal["duckdb", "postgres", "rest"]


class WarehouseIOManager(ConfigurableIOManager):
    """Reads and replaces table windows on the backend the settings chose."""

    backend: BackendName = "duckdb"
    duckdb_path: str = "data/warehouse.duckdb"
    duckdb_lock_timeout_seconds: float = 600.0
    postgres_url: str | None = None
    supabase_url: str | None = None
    supabase_service_role_key: str | None = None

    _warehouse: WarehouseBackend | None = PrivateAttr(default=None)

    def warehouse(self) -> WarehouseBackend:
        if self._warehouse is None:
            self._warehouse = self._build()
        return self._warehouse

    def handle_output(self, context: OutputContext, obj: pd.DataFrame | None) -> None:
        if obj is None:
            return
        table = table_for(context.asset_key.path[-1])
        window = window_of(context.asset_partitions_time_window)
        try:
            frame = conform_frame(table, window, obj)
        except FrameRefusedError as error:
            # The same frame would be refused again: fail now rather than after step retries.
            raise Failure(str(error), allow_retries=False) from None
        written = self.warehouse().replace_window(table, window, frame)
        where = self.warehouse().describe()
        # dagster/row_count is the key the UI charts over time, on every table asset alike.
        context.add_output_metadata(
            {"dagster/row_count": written, "window": str(window), "stored_in": where}
        )

    def load_input(self, context: InputContext) -> pd.DataFrame:
        table = table_for(context.asset_key.path[-1])
        window = window_of(context.asset_partitions_time_window)
        return self.warehouse().read_window(table, window)

    def _build(self) -> WarehouseBackend:
        if self.backend == "postgres":
            from asx_pipeline.warehouse.postgres_backend import PostgresWarehouse

            return PostgresWarehouse(_required(self.postgres_url, "SUPABASE_DB_URL"))
        if self.backend == "rest":
            from asx_pipeline.warehouse.rest_backend import SupabaseRestWarehouse

            return SupabaseRestWarehouse(
                url=_required(self.supabase_url, "SUPABASE_URL"),
                service_role_key=_required(
                    self.supabase_service_role_key, "SUPABASE_SERVICE_ROLE_KEY"
                ),
            )
        from asx_pipeline.warehouse.duckdb_backend import DuckDBWarehouse

        return DuckDBWarehouse(self.duckdb_path, self.duckdb_lock_timeout_seconds)


def window_of(time_window: TimeWindow) -> Window:
    """Partition time windows start and end at Sydney midnight; the dates are the window."""
    return Window(time_window.start.date(), time_window.end.date())


def _required(value: str | None, variable: str) -> str:
    if not value:
        raise ValueError(f"{variable} is required by the selected warehouse backend")
    return value
