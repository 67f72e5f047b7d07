"""The Postgres warehouse (Supabase's database, or any Postgres): psycopg 3, COPY, one transaction.

A window replace is one transaction: `SET LOCAL statement_timeout`, a per-table advisory lock (so
two writers of one table queue instead of tripping over each other's rows), then
  * into a window that holds no row (a first load): binary COPY straight into the table;
  * else: binary COPY into a temporary staging table (no WAL, no indexes, dropped at COMMIT),
    DELETE the window's stored rows whose key the stage does not bring (for a table with a
    `replace_scope`, only among the rows whose scope values it brings), and MERGE the stage in:
    a stored row with the same values is left alone, a changed one updated, a new one inserted.
COMMIT. A crash at any point leaves the old rows or the new ones, because Postgres discards an
uncommitted transaction (and its temporary table, and any table it created) when its connection
dies. MERGE needs Postgres 15 or later.

A table stored in monthly partitions (`TableSpec.monthly_partitions`: daily_prices) gets the
partitions its rows need first, in a short transaction of their own (asx_private.
ensure_month_partitions, the migrations' SQL function: creating a partition locks the table
against readers until COMMIT), and a write of at least REBUILD_MIN_ROWS rows rebuilds each month
whose stored rows all lie in the window, in the write's transaction: the table is locked against
other writers (SHARE; readers go on), the month's rows are COPYed into a new table, the stored
rows of the month they do not replace are copied beside them, the indexes are built, the window's
other months are merged, and last the new table is swapped in for the month's partition (DETACH,
DROP, ATTACH, right before COMMIT, because DETACH locks the whole table against readers until
then). Writing a month whole and indexing it once is
what COPY into an empty table costs; an UPDATE of every row costs a new row version, two index
entries and the WAL of each (a refetch of daily_prices changes every row's ingested_at, and ran
at 0.27x COPY's rate through MERGE). One
caveat, TRUNCATE's: a REPEATABLE READ or SERIALIZABLE transaction whose snapshot predates the swap
but which first reads the table after it sees a rebuilt month empty (one that read the table
before holds a lock the swap waits for; READ COMMITTED readers, PostgREST's and this code's, see
the old month or the new one: test_month_rebuild.py).

Why not DELETE the window and COPY the frame in, as this did before: on a million-row window of
daily_prices that ran at ~0.6x the rate of COPY into an empty window. The DELETE (a quarter of the
time) writes a WAL record per row, and COPY into a window that is all dead tuples of the same
transaction (over half) doubles both indexes and has every primary-key insert visit the dead
duplicate in the heap. MERGE writes nothing for a row that comes back with the values stored (a
rerun of a derived table: no dead tuple, no index entry, no WAL). A row that did change (a
refetch of daily_prices changes every row's ingested_at) still costs about what DELETE and COPY
cost, a new row version and an entry in each index: bench/write.py times both cases. An empty
window skips the stage: nothing there to compare with, and COPY alone is the cheapest write.

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
# work_mem for a replace's joins of stage and table (a transaction's own setting, which any role
# may SET). A million-row window's keys hash in ~57 MiB; with hash_mem_multiplier's default of 2,
# 32MB keeps that in one batch instead of spilling 16 batches to temporary files.
REPLACE_WORK_MEM = "32MB"

# A write of a monthly-partitioned table this large rebuilds the months it covers instead of
# merging row by row. Below it, the merge is as fast (a month of 200 symbols is ~4,000 rows), and
# a daily run never takes DETACH's lock on the whole table.
REBUILD_MIN_ROWS = 50_000

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
        rebuild_min_rows: int = REBUILD_MIN_ROWS,
    ) -> None:
        self._dsn = dsn
        self.statement_timeout_ms = statement_timeout_ms
        self.connect_timeout_s = connect_timeout_s
        self.max_attempts = max_attempts
        self.retry_wait_s = retry_wait_s
        self.read_chunk_rows = read_chunk_rows
        self.copy_chunk_rows = copy_chunk_rows
        self.rebuild_min_rows = rebuild_min_rows
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
        self._with_retries(
            f"{table.name} ({window}) write",
            lambda conn: self._replace(conn, table, window, ordered),
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
    ) -> None:
        if table.monthly_partitions:
            self._ensure_month_partitions(conn, table, frame)
        with conn.transaction():
            self._begin(conn)
            if _lock_and_find_window_empty(conn, table, window):
                # Nothing stored to replace (a first load): straight into the table.
                self._copy(conn, table, frame, into=_stored(table))
                return
            rebuilt: list[dt.date] = []
            merged = window
            if table.monthly_partitions and len(frame) >= self.rebuild_min_rows:
                frame, rebuilt = self._build_months(conn, table, window, frame)
                merged = _months_span(window, _months(table, frame))
            # An empty frame still runs the merge (for a table scoped otherwise than by its key,
            # it clears the window); one whose rows were all rebuilt has nothing left to merge.
            if not (rebuilt and frame.empty):
                conn.execute(_create_stage_sql(table))
                self._copy(conn, table, frame, into=_stage(table))
                # One round trip for both statements (no parameters: the dates travel as
                # literals).
                conn.execute(_apply_stage_sql(table, merged))
            if rebuilt:
                # Last, right before COMMIT: DETACH locks the whole table against readers until
                # then, so they wait for the swap itself (milliseconds), never for a COPY or MERGE.
                conn.execute(sql.SQL("; ").join(_swap_partition_sql(table, m) for m in rebuilt))

    def _ensure_month_partitions(
        self, conn: psycopg.Connection[Any], table: TableSpec, frame: pd.DataFrame
    ) -> None:
        """Create the partitions the frame's months need, in a short transaction of their own
        before the write: CREATE TABLE ... PARTITION OF locks the whole table against readers
        until COMMIT, and in the write's transaction that would be for the whole COPY. Under the
        table's lock, so that two writers never race to create one; an empty partition left by a
        write that then failed holds nothing and is used by the next write of its month."""
        if frame.empty:
            return
        with conn.transaction():
            self._begin(conn)
            conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [window_lock_key(table)])
            _ensure_month_partitions(conn, table, frame)

    def _build_months(
        self,
        conn: psycopg.Connection[Any],
        table: TableSpec,
        window: Window,
        frame: pd.DataFrame,
    ) -> tuple[pd.DataFrame, list[dt.date]]:
        """Build afresh each month of the frame whose stored rows all lie in the window, as a new
        table to swap in for its partition (_swap_partition_sql); returned: the frame's rows of
        the other months, for the row-by-row path, and the months built.

        First the table is locked against every other writer (SHARE: readers go on). The
        pipeline's writers queue on the advisory lock anyway, but a write that skips it (by hand,
        or through the API as service_role) and committed to a month after its stored rows were
        copied across would be dropped with the old partition; locked out, it waits instead.
        Per month, into a new table that nobody sees yet: COPY the frame's rows, add the stored
        rows of the month the frame does not bring (the replace_scope rule: an absent row is "no
        news"), then the key, the symbol index and a CHECK of the month's bounds (which lets
        ATTACH skip its scan).
        """
        months = _months(table, frame)
        conn.execute(sql.SQL("LOCK TABLE {} IN SHARE MODE").format(_stored(table)))
        rebuilt = _covered_months(conn, table, window, sorted(set(months)))
        if not rebuilt:
            return frame, []
        conn.execute(sql.SQL("; ").join(_create_next_partition_sql(table, m) for m in rebuilt))
        for month in rebuilt:
            self._copy(conn, table, frame[months == month], into=_next_partition(table, month))
        conn.execute(sql.SQL("; ").join(_finish_next_partition_sql(table, m) for m in rebuilt))
        return frame[~months.isin(rebuilt)], rebuilt

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
            self._copy(conn, table, new, into=_stored(table))
        return len(new)

    def _copy(
        self,
        conn: psycopg.Connection[Any],
        table: TableSpec,
        frame: pd.DataFrame,
        *,
        into: sql.Identifier,
    ) -> None:
        """COPY the frame's rows (all of `table`'s columns) into `into`: the table or its stage."""
        if frame.empty:
            return
        with conn.cursor() as cursor, cursor.copy(_copy_in_sql(table, into)) as copy:
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


def _stored(table: TableSpec) -> sql.Identifier:
    return sql.Identifier("public", table.name)


def _stage(table: TableSpec) -> sql.Identifier:
    """The replace's staging table: temporary, so private to the transaction's session."""
    return sql.Identifier("pg_temp", f"asx_stage_{table.name}")


def _create_stage_sql(table: TableSpec) -> sql.Composed:
    """The replace's work_mem, and an empty stage with the table's columns, types and NOT NULLs.

    No indexes: COPY into it writes neither WAL nor index entries. ON COMMIT DROP, and a rollback
    or a dead connection drops it too, so a retried transaction creates it afresh.
    """
    return sql.SQL(
        "SET LOCAL work_mem = {work_mem}; "
        "CREATE TEMPORARY TABLE {stage} (LIKE {table}) ON COMMIT DROP"
    ).format(work_mem=sql.Literal(REPLACE_WORK_MEM), stage=_stage(table), table=_stored(table))


def _lock_and_find_window_empty(
    conn: psycopg.Connection[Any], table: TableSpec, window: Window
) -> bool:
    """Take the table's lock, then look whether the window holds no row at all.

    Two statements, one round trip. The look must be a statement of its own: under READ
    COMMITTED each statement sees what was committed when it started, so only one that starts
    after the lock is granted sees the rows of the writer it waited for.
    """
    query = sql.SQL(
        "SELECT pg_advisory_xact_lock(hashtext({key})); "
        "SELECT NOT EXISTS (SELECT FROM {table} AS t WHERE {window})"
    ).format(
        key=sql.Literal(window_lock_key(table)),
        table=_stored(table),
        window=_in_window(table, window),
    )
    cursor = conn.execute(query)
    cursor.nextset()  # past the lock's result
    row = cursor.fetchone()
    return bool(row and row[0])


def _apply_stage_sql(table: TableSpec, window: Window) -> sql.Composed:
    """Make the window (or its scope) hold exactly the stage's rows: delete the stale rows, then
    MERGE the stage in."""
    stale = _delete_stale_sql(table, window)
    merge = _merge_stage_sql(table, window)
    return merge if stale is None else sql.SQL("; ").join([stale, merge])


def _in_window(table: TableSpec, window: Window) -> sql.Composed:
    return sql.SQL("t.{part} >= {start} AND t.{part} < {end}").format(
        part=sql.Identifier(table.partition_column),
        start=sql.Literal(window.start),
        end=sql.Literal(window.end),
    )


def _matching(columns: Sequence[str]) -> sql.Composed:
    """`t.a = s.a AND t.b = s.b ...`: the stored row `t` and the staged row `s` agree on them."""
    return sql.SQL(" AND ").join(
        sql.SQL("t.{column} = s.{column}").format(column=sql.Identifier(name)) for name in columns
    )


def _scope_covers_key(table: TableSpec) -> bool:
    """Whether a stored row in the write's scope always has the key of one of the frame's rows
    (daily_prices, daily_indicators: scoped by their key), so that none of them can be stale."""
    return bool(table.replace_scope) and set(table.key) <= set(table.replace_scope)


def _delete_stale_sql(table: TableSpec, window: Window) -> sql.Composed | None:
    """DELETE the window's stored rows whose key the stage does not bring; for a scoped table
    only those whose scope values it does bring. None where no row can be stale.

    The rows the stage does bring are left to the MERGE, which rewrites only those that changed.
    """
    if _scope_covers_key(table):
        return None
    conditions = [_in_window(table, window)]
    if table.replace_scope:
        conditions.append(
            sql.SQL("EXISTS (SELECT FROM {stage} AS s WHERE {scope})").format(
                stage=_stage(table), scope=_matching(table.replace_scope)
            )
        )
    conditions.append(
        sql.SQL("NOT EXISTS (SELECT FROM {stage} AS s WHERE {key})").format(
            stage=_stage(table), key=_matching(table.key)
        )
    )
    return sql.SQL("DELETE FROM {table} AS t WHERE {conditions}").format(
        table=_stored(table), conditions=sql.SQL(" AND ").join(conditions)
    )


def _merge_stage_sql(table: TableSpec, window: Window) -> sql.Composed:
    """MERGE the stage into the table: update a stored row of the window whose values differ,
    insert a row it lacks, and leave an identical one alone (no dead tuple, no index entry, no
    WAL: a rerun that brings the same values writes nothing).

    The ON clause matches only stored rows of the window (and, were a scope column not part of
    the key, of the same scope values): rows the write replaces. A staged row whose key is stored
    outside the window is then "not matched", and its INSERT fails on the primary key (as a COPY
    of it would) instead of overwriting a row the write must not touch.

    IS DISTINCT FROM compares as Postgres does: NULLs are equal, and so are 0.0 and -0.0 (which
    keeps the stored sign of a zero; nothing else equal under it differs).
    """
    values = [name for name in table.column_names if name not in table.key]
    match = [*table.key, *(name for name in table.replace_scope if name not in table.key)]
    query = sql.SQL("MERGE INTO {table} AS t USING {stage} AS s ON {match} AND {window}").format(
        table=_stored(table),
        stage=_stage(table),
        match=_matching(match),
        window=_in_window(table, window),
    )
    if values:
        query += sql.SQL(
            " WHEN MATCHED AND ROW({stored}) IS DISTINCT FROM ROW({staged}) THEN UPDATE SET {set}"
        ).format(
            stored=sql.SQL(", ").join(sql.Identifier("t", name) for name in values),
            staged=sql.SQL(", ").join(sql.Identifier("s", name) for name in values),
            set=sql.SQL(", ").join(
                sql.SQL("{name} = s.{name}").format(name=sql.Identifier(name)) for name in values
            ),
        )
    return query + sql.SQL(" WHEN NOT MATCHED THEN INSERT ({columns}) VALUES ({staged})").format(
        columns=_identifiers(table.column_names),
        staged=sql.SQL(", ").join(sql.Identifier("s", name) for name in table.column_names),
    )


def _months(table: TableSpec, frame: pd.DataFrame) -> pd.Series:
    """The first day of the month of each row's partition date, as `datetime.date`."""
    firsts = pd.to_datetime(frame[table.partition_column]).dt.to_period("M").dt.start_time
    return pd.Series(firsts.dt.date, index=frame.index)


def _months_span(window: Window, months: pd.Series) -> Window:
    """The part of the window that the given months cover (the window if there are none): what
    the merge of the months not rebuilt joins against, so that it never reads the rebuilt ones.
    Every row of those months lies in it, so their keys are matched exactly as in the window."""
    if months.empty:
        return window
    return Window(max(window.start, months.min()), min(window.end, _next_month(months.max())))


def _next_month(month: dt.date) -> dt.date:
    return (month.replace(day=28) + dt.timedelta(days=4)).replace(day=1)


def _ensure_month_partitions(
    conn: psycopg.Connection[Any], table: TableSpec, frame: pd.DataFrame
) -> None:
    """Create the partitions the frame's months need (the migrations' SQL function, which the
    REST functions call too)."""
    if frame.empty:
        return
    dates = frame[table.partition_column]
    conn.execute(
        "SELECT asx_private.ensure_month_partitions(%s, %s, %s)",
        [table.name, dates.min(), dates.max()],
    )


def _covered_months(
    conn: psycopg.Connection[Any], table: TableSpec, window: Window, months: list[dt.date]
) -> list[dt.date]:
    """The months whose stored rows all lie in the window: the write covers them whole.

    A month inside the window is covered without a look; the window's first and last months are
    covered when nothing is stored in their days outside it (one query, a key probe per range).
    """
    outside: dict[dt.date, list[tuple[dt.date, dt.date]]] = {}
    for month in months:
        end = _next_month(month)
        ranges = [(month, min(window.start, end)), (max(window.end, month), end)]
        outside[month] = [(start, stop) for start, stop in ranges if start < stop]
    probed = [month for month in months if outside[month]]
    if probed:
        query = sql.SQL("SELECT {}").format(
            sql.SQL(", ").join(
                sql.SQL("NOT ({})").format(
                    sql.SQL(" OR ").join(_stored_between(table, *dates) for dates in outside[m])
                )
                for m in probed
            )
        )
        row = conn.execute(query).fetchone() or ()
        uncovered = {month for month, covered in zip(probed, row, strict=True) if not covered}
    else:
        uncovered = set()
    return [month for month in months if month not in uncovered]


def _stored_between(table: TableSpec, start: dt.date, end: dt.date) -> sql.Composed:
    return sql.SQL(
        "EXISTS (SELECT FROM {table} AS t WHERE t.{part} >= {start} AND t.{part} < {end})"
    ).format(
        table=_stored(table),
        part=sql.Identifier(table.partition_column),
        start=sql.Literal(start),
        end=sql.Literal(end),
    )


def _partition_name(table: TableSpec, month: dt.date) -> str:
    """As asx_private.ensure_month_partitions names it."""
    return f"{table.name}_p{month:%Y%m}"


def _next_partition(table: TableSpec, month: dt.date) -> sql.Identifier:
    return sql.Identifier("asx_private", _partition_name(table, month) + "_next")


def _create_next_partition_sql(table: TableSpec, month: dt.date) -> sql.Composed:
    """An empty table shaped like `table` (columns, types, NOT NULLs), no index yet."""
    return sql.SQL("CREATE TABLE {next} (LIKE {table})").format(
        next=_next_partition(table, month), table=_stored(table)
    )


def _finish_next_partition_sql(table: TableSpec, month: dt.date) -> sql.Composed:
    """Into the month's new table, once its incoming rows are in: the month's stored rows they do
    not replace, then the indexes the table's have (the key; symbol and date), and the month's
    bounds as a CHECK so that ATTACH need not scan the rows again."""
    name = _partition_name(table, month)
    part = sql.Identifier(table.partition_column)
    statements = [
        sql.SQL(
            "INSERT INTO {next} ({columns}) SELECT {stored} FROM {old} AS t "
            "WHERE NOT EXISTS (SELECT FROM {next} AS s WHERE {key})"
        ).format(
            next=_next_partition(table, month),
            columns=_identifiers(table.column_names),
            stored=sql.SQL(", ").join(sql.Identifier("t", c) for c in table.column_names),
            old=sql.Identifier("asx_private", name),
            key=_matching(table.key),
        ),
        sql.SQL("ALTER TABLE {next} ADD CONSTRAINT {pkey} PRIMARY KEY ({key})").format(
            next=_next_partition(table, month),
            pkey=sql.Identifier(f"{name}_next_pkey"),
            key=_identifiers(table.key),
        ),
        sql.SQL(
            "ALTER TABLE {next} ADD CONSTRAINT {bounds} "
            "CHECK ({part} >= {start} AND {part} < {end})"
        ).format(
            next=_next_partition(table, month),
            bounds=sql.Identifier(f"{name}_bounds"),
            part=part,
            start=sql.Literal(month),
            end=sql.Literal(_next_month(month)),
        ),
    ]
    if "symbol" in table.column_names:
        statements.append(
            sql.SQL("CREATE INDEX {index} ON {next} (symbol, {part})").format(
                index=sql.Identifier(f"{name}_next_symbol_idx"),
                next=_next_partition(table, month),
                part=part,
            )
        )
    return sql.SQL("; ").join(statements)


def _swap_partition_sql(table: TableSpec, month: dt.date) -> sql.Composed:
    """Put the month's new table where its partition was: detach and drop the old one, then
    rename the new one (and its indexes) to the old names and attach it."""
    name = _partition_name(table, month)
    old = sql.Identifier("asx_private", name)
    statements = [
        "ALTER TABLE {table} DETACH PARTITION {old}",
        "DROP TABLE {old}",
        "ALTER TABLE {next} RENAME TO {name}",
        "ALTER INDEX {next_pkey} RENAME TO {pkey}",
    ]
    if "symbol" in table.column_names:
        statements.append("ALTER INDEX {next_symbol} RENAME TO {symbol}")
    statements.append(
        "ALTER TABLE {table} ATTACH PARTITION {old} FOR VALUES FROM ({start}) TO ({end})"
    )
    return sql.SQL("; ".join(statements)).format(
        table=_stored(table),
        old=old,
        next=_next_partition(table, month),
        name=sql.Identifier(name),
        next_pkey=sql.Identifier("asx_private", f"{name}_next_pkey"),
        pkey=sql.Identifier(f"{name}_pkey"),
        next_symbol=sql.Identifier("asx_private", f"{name}_next_symbol_idx"),
        symbol=sql.Identifier(f"{name}_symbol_idx"),
        start=sql.Literal(month),
        end=sql.Literal(_next_month(month)),
    )


def _copy_in_sql(table: TableSpec, into: sql.Identifier) -> sql.Composed:
    return sql.SQL("COPY {into} ({columns}) FROM STDIN (FORMAT BINARY)").format(
        into=into, columns=_identifiers(table.column_names)
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
