"""The embedded DuckDB warehouse: one file under ASX_DATA_DIR, no server.

DuckDB lets one process at a time open a file for writing, and Dagster's default executor runs
steps in several processes. Every operation therefore opens the file only for as long as it needs
it, under an exclusive `flock` on a lock file beside it, so parallel steps queue instead of failing
with "Could not set lock on file".

"Opens the file" is an `ATTACH` to an empty in-memory DuckDB that the process keeps, and the
operation ends with `DETACH`, which checkpoints and closes the file exactly as closing a
connection does (no .wal left behind, DuckDB's own lock released). Starting a DuckDB instance costs
12-15 ms (it builds the catalog of every built-in function); an ATTACH costs about 1 ms, and an
evening refresh makes some 35 warehouse operations. The file itself is never held open between
operations: keeping a connection open was tried and left copies of the file without the writes
still in its .wal. An operation interrupted between ATTACH and DETACH is detached by the next one
on its file, and an error inside an operation still DETACHes (and is the error reported).
"""

from __future__ import annotations

import contextlib
import ctypes
import datetime as dt
import fcntl
import itertools
import os
import threading
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


class _Engine:
    """The process's in-memory DuckDB, to which each operation attaches its file.

    One per process. A DuckDB instance does not survive a fork: its threads stay in the parent,
    and destroying the child's copy (at the latest when the child's interpreter exits) waits for
    them forever. A forked child therefore keeps the inherited instance alive for good, unused,
    and starts its own.
    """

    lock = threading.Lock()  # one DuckDB connection object, used from any thread
    _root_connection: duckdb.DuckDBPyConnection | None = None
    _aliases = itertools.count()

    @classmethod
    def _root(cls, first_path: Path) -> duckdb.DuckDBPyConnection:
        if cls._root_connection is None:
            # Spill files go where a connection to the file would put them, beside it. DuckDB
            # fixes the folder for the life of the instance once it is used, so it is set here,
            # once: a process that opens several warehouses spills beside the first.
            cls._root_connection = duckdb.connect(
                ":memory:", config={"temp_directory": f"{first_path}.tmp"}
            )
        return cls._root_connection

    @classmethod
    def _after_fork_in_child(cls) -> None:
        if cls._root_connection is not None:
            # A reference never released: the inherited instance is never destroyed.
            ctypes.pythonapi.Py_IncRef(ctypes.py_object(cls._root_connection))
            cls._root_connection = None
        cls.lock = threading.Lock()  # another thread of the parent may have held it

    @classmethod
    @contextlib.contextmanager
    def attached(cls, path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection whose default database is the file at `path`, open only meanwhile."""
        # Two warehouses of one process may be attached at once (different files, different
        # locks), so every attachment has its own name.
        alias = f"warehouse_{next(cls._aliases)}"
        with cls.lock:
            root = cls._root(path)
            _detach_leftovers(root, path)
            root.execute(f"ATTACH '{_quoted(path)}' AS {alias}")
        try:
            with cls.lock:
                connection = root.cursor()
            try:
                connection.execute(f"USE {alias}")
                yield connection
            finally:
                # Closing the cursor first rolls back a transaction an error left open: a DETACH
                # beside an open transaction would leave the file locked and its .wal behind.
                connection.close()
        except BaseException:
            # The operation's own error is the one to report, not a failed checkpoint after it.
            with contextlib.suppress(duckdb.Error), cls.lock:
                root.execute(f"DETACH DATABASE IF EXISTS {alias}")
            raise
        with cls.lock:
            root.execute(f"DETACH DATABASE IF EXISTS {alias}")


def _quoted(path: Path) -> str:
    return str(path).replace("'", "''")


def _detach_leftovers(root: duckdb.DuckDBPyConnection, path: Path) -> None:
    """Detach `path` if an earlier operation could not (interrupted between ATTACH and DETACH):
    left attached, the file would stay locked by DuckDB for the life of the process."""
    for (name,) in root.execute(
        "SELECT database_name FROM duckdb_databases() WHERE path = ?", [str(path)]
    ).fetchall():
        root.execute(f'DETACH DATABASE IF EXISTS "{name}"')


os.register_at_fork(after_in_child=_Engine._after_fork_in_child)


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
    # One look at the catalog instead of a CREATE and a query per table: a file that is up to
    # date (every run after its first) needs no other statement. information_schema spans every
    # attached database, so only this file's columns count.
    stored: dict[str, set[str]] = {}
    for table_name, column_name in connection.execute(
        "SELECT table_name, column_name FROM information_schema.columns "
        "WHERE table_catalog = current_database()"
    ).fetchall():
        stored.setdefault(table_name, set()).add(column_name)
    for table in TABLES.values():
        if table.name not in stored:
            connection.execute(create_table_sql(table))
            continue
        for column in table.columns:
            if column.name not in stored[table.name]:
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
        with self._exclusive_lock(), _Engine.attached(self.path) as connection:
            # A session setting: every attachment's connection is a new session.
            connection.execute("SET TimeZone = 'UTC'")
            if not self._schema_ready:
                # information_schema spans every attached database: not while another thread
                # attaches or detaches one.
                with _Engine.lock:
                    _create_or_upgrade(connection)
                self._schema_ready = True
            yield connection

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
