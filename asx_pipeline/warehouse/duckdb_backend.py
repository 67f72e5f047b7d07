"""The embedded DuckDB warehouse: one file under ASX_DATA_DIR, no server.

DuckDB lets one process at a time open a file for writing, and Dagster's default executor runs
steps in several processes. Every operation therefore opens the file only for as long as it needs
it, under an exclusive `flock` on a lock file beside it, so parallel steps queue instead of failing
with "Could not set lock on file".
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import duckdb
import pandas as pd

from asx_pipeline.warehouse.frames import (
    WarehouseError,
    Window,
    coerce_types,
    empty_frame,
    refuse_append_to_windowed,
    refuse_replace_of_append_only,
)
from asx_pipeline.warehouse.tables import TABLES, TableSpec, sql_type

_LOCK_POLL_SECONDS = 0.05


def create_table_sql(table: TableSpec) -> str:
    columns = [
        f'"{c.name}" {sql_type(c.type, "duckdb")}{"" if c.nullable else " NOT NULL"}'
        for c in table.columns
    ]
    key = ", ".join(f'"{name}"' for name in table.key)
    return f'CREATE TABLE IF NOT EXISTS "{table.name}" ({", ".join(columns)}, PRIMARY KEY ({key}))'


def _scope_condition(table: TableSpec) -> str:
    """Narrow the delete to the scope values present in `incoming_rows` (see TableSpec)."""
    if not table.replace_scope:
        return ""
    columns = ", ".join(f'"{name}"' for name in table.replace_scope)
    return f" AND ({columns}) IN (SELECT DISTINCT {columns} FROM incoming_rows)"


def _create_or_upgrade(connection: duckdb.DuckDBPyConnection) -> None:
    """Create missing tables, and add columns a newer tables.py has to a file made before.

    The file is its own migration history: a column added to a table later is always nullable
    (tables.py), so rows stored before it simply hold null there.
    """
    for table in TABLES.values():
        connection.execute(create_table_sql(table))
        stored = {
            row[0]
            for row in connection.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = ?",
                [table.name],
            ).fetchall()
        }
        for column in table.columns:
            if column.name not in stored:
                connection.execute(
                    f'ALTER TABLE "{table.name}" ADD COLUMN "{column.name}" '
                    f"{sql_type(column.type, 'duckdb')}"
                )


class DuckDBWarehouse:
    """A DuckDB file shared safely by every process of one machine."""

    name = "duckdb"

    def __init__(self, path: Path | str, lock_timeout_seconds: float = 600.0) -> None:
        self.path = Path(path)
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        self.lock_timeout_seconds = lock_timeout_seconds
        self._schema_ready = False

    def describe(self) -> str:
        return f"DuckDB file {self.path.resolve()}"

    def replace_window(self, table: TableSpec, window: Window, frame: pd.DataFrame) -> int:
        refuse_replace_of_append_only(table)
        ordered = frame[table.column_names]
        columns = ", ".join(f'"{name}"' for name in table.column_names)
        with self._connection() as connection:
            try:
                connection.execute("BEGIN TRANSACTION")
                connection.register("incoming_rows", ordered)
                connection.execute(
                    f'DELETE FROM "{table.name}" WHERE "{table.partition_column}" >= ? '
                    f'AND "{table.partition_column}" < ?{_scope_condition(table)}',
                    [window.start, window.end],
                )
                connection.execute(
                    f'INSERT INTO "{table.name}" ({columns}) SELECT {columns} FROM incoming_rows'
                )
                connection.unregister("incoming_rows")
                connection.execute("COMMIT")
            except duckdb.Error as error:
                connection.execute("ROLLBACK")
                raise WarehouseError(
                    f"{table.name} ({window}): DuckDB refused the write, nothing was changed: "
                    f"{error}"
                ) from error
        return len(ordered)

    def append_partitions(self, table: TableSpec, frame: pd.DataFrame) -> int:
        refuse_append_to_windowed(table)
        ordered = frame[table.column_names]
        columns = ", ".join(f'"{name}"' for name in table.column_names)
        part = f'"{table.partition_column}"'
        with self._connection() as connection:
            try:
                connection.execute("BEGIN TRANSACTION")
                connection.register("incoming_rows", ordered)
                added = connection.execute(
                    f'INSERT INTO "{table.name}" ({columns}) SELECT {columns} FROM incoming_rows '
                    f'WHERE {part} NOT IN (SELECT DISTINCT {part} FROM "{table.name}") '
                    "RETURNING 1"
                ).fetchall()
                connection.unregister("incoming_rows")
                connection.execute("COMMIT")
            except duckdb.Error as error:
                connection.execute("ROLLBACK")
                raise WarehouseError(
                    f"{table.name}: DuckDB refused the append, nothing was changed: {error}"
                ) from error
        return len(added)

    def partition_values(self, table: TableSpec) -> list[dt.date]:
        part = f'"{table.partition_column}"'
        with self._connection() as connection:
            rows = connection.execute(
                f'SELECT DISTINCT {part} FROM "{table.name}" ORDER BY {part}'
            ).fetchall()
        return [row[0] for row in rows]

    def read_window(
        self, table: TableSpec, window: Window, columns: Sequence[str] | None = None
    ) -> pd.DataFrame:
        wanted = list(columns) if columns is not None else table.column_names
        selected = ", ".join(f'"{name}"' for name in wanted)
        order = ", ".join(f'"{name}"' for name in table.key)
        with self._connection() as connection:
            frame = connection.execute(
                f'SELECT {selected} FROM "{table.name}" WHERE "{table.partition_column}" >= ? '
                f'AND "{table.partition_column}" < ? ORDER BY {order}',
                [window.start, window.end],
            ).df()
        if frame.empty:
            return empty_frame(table)[wanted]
        return coerce_types(table, frame)

    @contextlib.contextmanager
    def _connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._exclusive_lock():
            connection = duckdb.connect(str(self.path))
            try:
                connection.execute("SET TimeZone = 'UTC'")
                if not self._schema_ready:
                    _create_or_upgrade(connection)
                    self._schema_ready = True
                yield connection
            finally:
                connection.close()

    @contextlib.contextmanager
    def _exclusive_lock(self) -> Iterator[None]:
        deadline = time.monotonic() + self.lock_timeout_seconds
        with open(self.lock_path, "a+") as lock_file:
            while True:
                try:
                    fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise WarehouseError(
                            f"Waited {self.lock_timeout_seconds:.0f}s for another process to "
                            f"release {self.path} (ASX_DUCKDB_LOCK_TIMEOUT_SECONDS)"
                        ) from None
                    time.sleep(_LOCK_POLL_SECONDS)
            try:
                yield
            finally:
                fcntl.flock(lock_file, fcntl.LOCK_UN)
