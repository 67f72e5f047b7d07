"""The Postgres warehouse (Supabase's database, or any Postgres): psycopg 3, COPY, one transaction.

A window replace is one transaction: `SET LOCAL statement_timeout`, a per-table advisory lock (so
two writers of one table queue instead of tripping over each other's rows), DELETE the window (for
a table with a `replace_scope`, only its rows whose scope values the frame brings), COPY the rows
in, COMMIT. A crash at any point leaves the old rows or the new ones, because Postgres
discards an uncommitted transaction when its connection dies.

An append to an append-only table (`TableSpec.append_only`) is one transaction too: the same
per-table lock, then the incoming partitions that are stored already are looked up, and only the
rows of the others are COPYed in. The lock makes two appenders of one new partition queue, and the
second sees the first's committed rows (READ COMMITTED: each statement a new snapshot), so it
skips that partition instead of tripping over the primary key.

Retries: a connection error re-runs the *whole* transaction on a fresh connection, never the rest
of a broken one. That is safe even when the COMMIT itself was in flight (its outcome unknown),
because replacing a window with the same rows twice leaves the same rows, and an append whose
partitions are stored already adds nothing.

The DSN holds a password: connecting, and scrubbing it out of every message, is postgres_sql.py's
(the migration commands connect the same way).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from typing import Any, TypeVar, get_args

import pandas as pd
import psycopg
from dagster import Failure
from psycopg import sql
from psycopg.adapt import PyFormat
from psycopg.postgres import types as pg_types
from tenacity import (
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)

from asx_pipeline.warehouse.frames import (
    WarehouseError,
    Window,
    coerce_types,
    empty_frame,
    refuse_append_to_windowed,
    refuse_replace_of_append_only,
)
from asx_pipeline.warehouse.migrations import schema_problems
from asx_pipeline.warehouse.postgres_sql import (
    connect,
    is_transaction_pooler,
    python_values,
    redact,
    scrub_dsn,
    window_lock_key,
)
from asx_pipeline.warehouse.tables import ColumnType, TableSpec, sql_type

MIGRATE_HINT = "run `asx-pipeline db migrate`"

# Binary COPY needs the Postgres type of every column up front. These are the types of the
# migrations' DDL (`sql_type`) by their catalog names (float8 for double precision, ...), which
# is how COPY and the array casts below have always named them.
PG_COPY_TYPES: dict[ColumnType, str] = {
    column_type: pg_types[sql_type(column_type, "postgres")].name
    for column_type in get_args(ColumnType)
}
# SQLSTATEs worth re-running a whole transaction for: the server went away or refused us for now,
# or Postgres itself asks for a retry (serialization failure, deadlock).
_RETRYABLE_SQLSTATES = {"40001", "40P01", "57P01", "57P02", "57P03", "53300"}
# What a transaction-mode pooler says when prepared statements are on (psycopg's default).
_PREPARED_STATEMENT_SQLSTATES = {"42P05", "26000"}

T = TypeVar("T")


class SchemaOutOfDateError(WarehouseError, Failure):
    """The database lacks migrations or tables this code needs.

    Also a Dagster `Failure` that forbids retries: the assets' RetryPolicy (meant for Yahoo being
    down) would otherwise wait minutes of backoff before reporting what no retry can change.
    """

    def __init__(self, message: str) -> None:
        Failure.__init__(self, description=message, allow_retries=False)


def is_transient(error: BaseException) -> bool:
    """Worth re-running a whole transaction on a fresh connection."""
    if isinstance(error, psycopg.errors.QueryCanceled):
        return False  # statement_timeout: running it again would only time out again
    if isinstance(error, psycopg.Error) and error.sqlstate in _RETRYABLE_SQLSTATES:
        return True
    # OperationalError without a SQLSTATE: could not connect, or the connection broke.
    return isinstance(error, psycopg.OperationalError) and (
        error.sqlstate is None or error.sqlstate.startswith("08")
    )


class PostgresWarehouse:
    """Tables of `tables.py` in a Postgres database whose migrations have been applied."""

    name = "postgres"

    def __init__(
        self,
        dsn: str,
        statement_timeout_ms: int = 600_000,
        *,
        connect_timeout_s: int = 10,
        max_attempts: int = 4,
        retry_wait_s: float = 0.5,
        read_chunk_rows: int = 50_000,
        copy_chunk_rows: int = 50_000,
        check_schema_on_first_use: bool = True,
    ) -> None:
        self._dsn = dsn
        self.statement_timeout_ms = statement_timeout_ms
        self.connect_timeout_s = connect_timeout_s
        self.max_attempts = max_attempts
        self.retry_wait_s = retry_wait_s
        self.read_chunk_rows = read_chunk_rows
        self.copy_chunk_rows = copy_chunk_rows
        self._schema_checked = not check_schema_on_first_use
        self._pooler = is_transaction_pooler(dsn)

    def __repr__(self) -> str:
        return f"PostgresWarehouse({self.describe()})"

    def describe(self) -> str:
        mode = " via the transaction pooler (prepared statements off)" if self._pooler else ""
        return f"Postgres {scrub_dsn(self._dsn)}{mode}"

    def check_schema(self) -> None:
        """Fail, saying to run `asx-pipeline db migrate`, if the database is behind this code."""
        problems = self._with_retries("schema check", lambda conn: schema_problems(conn))
        if problems:
            raise SchemaOutOfDateError(
                f"The warehouse at {scrub_dsn(self._dsn)} is behind this code: "
                + "; ".join(problems)
                + f". {MIGRATE_HINT} first."
            )
        self._schema_checked = True

    def replace_window(self, table: TableSpec, window: Window, frame: pd.DataFrame) -> int:
        refuse_replace_of_append_only(table)
        self._check_schema_once()
        ordered = in_copy_order(table, frame)
        scope = scope_values(table, frame)
        self._with_retries(
            f"{table.name} ({window}) write",
            lambda conn: self._replace(conn, table, window, ordered, scope),
        )
        return len(ordered)

    def read_window(
        self, table: TableSpec, window: Window, columns: Sequence[str] | None = None
    ) -> pd.DataFrame:
        self._check_schema_once()
        wanted = _wanted_columns(table, columns)
        frame = self._with_retries(
            f"{table.name} ({window}) read", lambda conn: self._read(conn, table, window, wanted)
        )
        if frame.empty:
            return empty_frame(table)[wanted]
        return coerce_types(table, frame)[wanted]

    def append_partitions(self, table: TableSpec, frame: pd.DataFrame) -> int:
        refuse_append_to_windowed(table)
        self._check_schema_once()
        if frame.empty:
            return 0
        ordered = in_copy_order(table, coerce_types(table, frame[table.column_names]))
        return self._with_retries(
            f"{table.name} append", lambda conn: self._append(conn, table, ordered)
        )

    def partition_values(self, table: TableSpec) -> list[dt.date]:
        self._check_schema_once()
        rows = self._with_retries(
            f"{table.name} partition list",
            lambda conn: conn.execute(_partition_values_sql(table)).fetchall(),
        )
        return [value for (value,) in rows]

    def _check_schema_once(self) -> None:
        if not self._schema_checked:
            self.check_schema()

    def _replace(
        self,
        conn: psycopg.Connection[Any],
        table: TableSpec,
        window: Window,
        frame: pd.DataFrame,
        scope: list[list[Any]],
    ) -> None:
        with conn.transaction():
            self._begin(conn)
            conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [window_lock_key(table)])
            conn.execute(_delete_window_sql(table), _delete_window_params(window, scope))
            self._copy(conn, table, frame)

    def _append(self, conn: psycopg.Connection[Any], table: TableSpec, frame: pd.DataFrame) -> int:
        part = table.partition_column
        incoming = python_values(frame[part].drop_duplicates(), table.column(part).type)
        with conn.transaction():
            self._begin(conn)
            # Taken before looking: a partition another appender is adding becomes visible to
            # the lookup below once that appender commits and lets go of the lock.
            conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [window_lock_key(table)])
            stored = {value for (value,) in conn.execute(_stored_partitions_sql(table), [incoming])}
            new = frame[~frame[part].isin(stored)] if stored else frame
            self._copy(conn, table, new)
        return len(new)

    def _copy(self, conn: psycopg.Connection[Any], table: TableSpec, frame: pd.DataFrame) -> None:
        if frame.empty:
            return
        with conn.cursor() as cursor, cursor.copy(_copy_in_sql(table)) as copy:
            copy.set_types([PG_COPY_TYPES[c.type] for c in table.columns])
            # Converted chunk by chunk while COPY streams, so that turning the frame into Python
            # values overlaps the server's work instead of preceding it. A retried transaction
            # converts the same frame again: it sends the same rows.
            for start in range(0, len(frame), self.copy_chunk_rows):
                for row in copy_rows(table, frame.iloc[start : start + self.copy_chunk_rows]):
                    copy.write_row(row)

    def _read(
        self, conn: psycopg.Connection[Any], table: TableSpec, window: Window, wanted: list[str]
    ) -> pd.DataFrame:
        # A named (server-side) cursor streams the window in chunks instead of buffering the whole
        # result in the client library first; it lives only inside this transaction.
        chunks: list[pd.DataFrame] = []
        with conn.transaction():
            self._begin(conn)
            with conn.cursor(name="asx_read_window") as cursor:
                cursor.itersize = self.read_chunk_rows
                cursor.execute(_select_window_sql(table, wanted), [window.start, window.end])
                while batch := cursor.fetchmany(self.read_chunk_rows):
                    chunks.append(pd.DataFrame.from_records(batch, columns=wanted))
        if not chunks:
            return pd.DataFrame(columns=wanted)
        return pd.concat(chunks, ignore_index=True) if len(chunks) > 1 else chunks[0]

    def _begin(self, conn: psycopg.Connection[Any]) -> None:
        # SET cannot take bind parameters; the timeout is an int we own, quoted as a literal.
        conn.execute(
            sql.SQL("SET LOCAL statement_timeout = {}").format(
                sql.Literal(int(self.statement_timeout_ms))
            )
        )
        conn.execute("SET LOCAL TimeZone = 'UTC'")

    def _with_retries(self, what: str, work: Callable[[psycopg.Connection[Any]], T]) -> T:
        retrying = Retrying(
            retry=retry_if_exception(is_transient),
            stop=stop_after_attempt(self.max_attempts),
            wait=wait_exponential_jitter(initial=self.retry_wait_s, max=10),
            reraise=True,
        )
        try:
            for attempt in retrying:
                with attempt, connect(self._dsn, connect_timeout_s=self.connect_timeout_s) as conn:
                    return work(conn)
        except psycopg.Error as error:
            # `from None`: the driver's exception may carry connection details; ours is scrubbed.
            raise WarehouseError(self._explain(what, error)) from None
        raise AssertionError("unreachable: tenacity reraises the last error")

    def _explain(self, what: str, error: psycopg.Error) -> str:
        detail = redact(str(error).strip(), self._dsn)
        message = (
            f"{what} failed on {self.describe()}, nothing was changed: "
            f"{type(error).__name__}: {detail}"
        )
        if error.sqlstate in _PREPARED_STATEMENT_SQLSTATES:
            message += (
                " (this looks like a transaction-mode pooler on a port other than 6543: "
                "use port 6543 or a session/direct connection)"
            )
        elif isinstance(error, psycopg.errors.UndefinedTable | psycopg.errors.UndefinedColumn):
            message += f" ({MIGRATE_HINT})"
        return message


def copy_order(table: TableSpec) -> list[str]:
    """The columns whose order rows are sent to COPY in: the symbol index's, else the key's.

    The primary key leads with the partition date, whose comparisons are cheap; the symbol index
    leads with text, whose comparisons are not. Rows arriving in the symbol index's order keep
    its inserts next to each other: for a million daily_prices rows that measured a quarter less
    server CPU than key order into an empty table, and 5-25% less after a year of history.
    """
    if "symbol" not in table.column_names:
        return list(table.key)
    first = ["symbol", table.partition_column]
    return first + [name for name in table.key if name not in first]


def in_copy_order(table: TableSpec, frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values(copy_order(table), ignore_index=True, kind="stable")


def copy_rows(table: TableSpec, frame: pd.DataFrame) -> list[tuple[Any, ...]]:
    """The frame's rows as tuples of plain Python values (None for missing), in table order."""
    columns = [python_values(frame[c.name], c.type) for c in table.columns]
    return list(zip(*columns, strict=True))


def _wanted_columns(table: TableSpec, columns: Sequence[str] | None) -> list[str]:
    if columns is None:
        return table.column_names
    unknown = [name for name in columns if name not in table.column_names]
    if unknown:
        raise WarehouseError(
            f"{table.name}: no column(s) {', '.join(unknown)}; "
            f"it has {', '.join(table.column_names)}"
        )
    return list(columns)


def _identifiers(names: Sequence[str]) -> sql.Composed:
    return sql.SQL(", ").join(sql.Identifier(name) for name in names)


def scope_values(table: TableSpec, frame: pd.DataFrame) -> list[list[Any]]:
    """One list per `replace_scope` column: the distinct scope tuples of the frame, unzipped."""
    if not table.replace_scope:
        return []
    scoped = frame[list(table.replace_scope)]
    # A scope that covers the key is distinct already (conform_frame refuses duplicate keys, and
    # the primary key would refuse them at COPY): no need to hash a million rows to find out.
    if not set(table.key) <= set(table.replace_scope):
        scoped = scoped.drop_duplicates()
    return [python_values(scoped[name], table.column(name).type) for name in table.replace_scope]


def _delete_window_sql(table: TableSpec) -> sql.Composed:
    """DELETE the window's rows, or for a scoped table those whose scope values the frame brings.

    Parameters by name: `start`, `end`, and `scope_0`... (one array per scope column).
    """
    query = sql.SQL("DELETE FROM {table} AS t").format(table=sql.Identifier("public", table.name))
    window = sql.SQL("t.{part} >= %(start)s AND t.{part} < %(end)s").format(
        part=sql.Identifier(table.partition_column)
    )
    if not table.replace_scope:
        return query + sql.SQL(" WHERE ") + window
    # The scope tuples travel as one *binary* array per column: a million dates and symbols are
    # sent and parsed in ~40% of the time text arrays take. A join rather than `IN (SELECT ...)`:
    # the tuples are distinct already, and IN would make Postgres de-duplicate them again first.
    # Together, on a million keys: ~60% of the CPU (client and server) of IN over text arrays.
    arrays = sql.SQL(", ").join(
        sql.SQL("{}::{}[]").format(
            sql.Placeholder(f"scope_{index}", format=PyFormat.BINARY),
            sql.SQL(PG_COPY_TYPES[table.column(name).type]),
        )
        for index, name in enumerate(table.replace_scope)
    )
    matches = sql.SQL(" AND ").join(
        sql.SQL("t.{column} = s.{column}").format(column=sql.Identifier(name))
        for name in table.replace_scope
    )
    scoped = sql.SQL(" USING unnest({arrays}) AS s({columns}) WHERE {window} AND {matches}")
    return query + scoped.format(
        arrays=arrays, columns=_identifiers(table.replace_scope), window=window, matches=matches
    )


def _delete_window_params(window: Window, scope: list[list[Any]]) -> dict[str, Any]:
    return {
        "start": window.start,
        "end": window.end,
        **{f"scope_{index}": values for index, values in enumerate(scope)},
    }


def _copy_in_sql(table: TableSpec) -> sql.Composed:
    return sql.SQL("COPY {table} ({columns}) FROM STDIN (FORMAT BINARY)").format(
        table=sql.Identifier("public", table.name), columns=_identifiers(table.column_names)
    )


def _stored_partitions_sql(table: TableSpec) -> sql.Composed:
    """Which of the partition values in parameter 1 (an array) are stored."""
    return sql.SQL(
        "SELECT DISTINCT t.{part} FROM {table} AS t WHERE t.{part} = ANY(%s::{type}[])"
    ).format(
        part=sql.Identifier(table.partition_column),
        table=sql.Identifier("public", table.name),
        type=sql.SQL(PG_COPY_TYPES[table.column(table.partition_column).type]),
    )


def _partition_values_sql(table: TableSpec) -> sql.Composed:
    """Every stored partition value, ascending, by a loose index scan of the primary key.

    The key leads with the partition column, so each step is one index probe: a list of a few
    hundred partitions costs a few hundred probes, not a read of every row (the SQL function
    `<table>_partition_values` of the migrations does the same for REST).
    """
    return sql.SQL(
        "WITH RECURSIVE stored (value) AS ("
        "SELECT min(t.{part}) FROM {table} AS t "
        "UNION ALL "
        "SELECT (SELECT min(t.{part}) FROM {table} AS t WHERE t.{part} > stored.value) "
        "FROM stored WHERE stored.value IS NOT NULL"
        ") SELECT value FROM stored WHERE value IS NOT NULL ORDER BY value"
    ).format(
        part=sql.Identifier(table.partition_column), table=sql.Identifier("public", table.name)
    )


def _select_window_sql(table: TableSpec, wanted: Sequence[str]) -> sql.Composed:
    return sql.SQL(
        "SELECT {columns} FROM {table} WHERE {part} >= %s AND {part} < %s ORDER BY {key}"
    ).format(
        columns=_identifiers(wanted),
        table=sql.Identifier("public", table.name),
        part=sql.Identifier(table.partition_column),
        key=_identifiers(table.key),
    )
