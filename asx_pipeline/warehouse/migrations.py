"""SQL migrations in deploy/supabase/migrations/NNNN_name.sql, applied in order, once each.

Applied versions are recorded in `asx_private.schema_migrations` (outside `public`, so PostgREST
never exposes it), with a checksum: editing a migration after it has run is refused, because the
databases that already ran it would silently differ from new ones.

Each migration runs in its own transaction that first takes a transaction-scoped advisory lock and
then re-checks whether it is still pending, so two processes migrating at once apply each file
exactly once. Transaction-scoped (not session) locks also work through Supabase's transaction
pooler.

`render_table_sql` writes the DDL, row-level security and REST functions for one TableSpec: use
it to start the migration of a table newly added to tables.py
(`python -m asx_pipeline.warehouse.migrations render daily_indicators`). `render_table_functions`
writes only a table's REST functions, for a migration that changes how an existing table is
written (its `replace_scope`, or its columns, which the functions list):
`python -m asx_pipeline.warehouse.migrations render-functions daily_prices`. A windowed table has
two window functions (`render_window_functions`); an append-only one (`TableSpec.append_only`)
has none, only an append function and a list of its stored partitions
(`render_append_functions`). test_migrations.py checks that the latest definition of every such
function in the migration files is what these render today.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from asx_pipeline.warehouse.frames import WarehouseError
from asx_pipeline.warehouse.postgres_sql import InvalidDsnError, connect, redact, window_lock_key
from asx_pipeline.warehouse.tables import TABLES, TableSpec, sql_type, table_for

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "deploy" / "supabase" / "migrations"
_FILE_PATTERN = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_LOCK_KEY = "asx_pipeline.schema_migrations"
_BOOKKEEPING_SQL = """
CREATE SCHEMA IF NOT EXISTS asx_private;
REVOKE ALL ON SCHEMA asx_private FROM PUBLIC;
CREATE TABLE IF NOT EXISTS asx_private.schema_migrations (
    version text PRIMARY KEY,
    name text NOT NULL,
    checksum text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);
"""


class MigrationError(WarehouseError):
    """A migration could not be applied, or the recorded history does not match the files."""


@dataclass(frozen=True)
class Migration:
    version: str
    name: str
    sql: str

    @property
    def filename(self) -> str:
        return f"{self.version}_{self.name}.sql"

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def discover_migrations(directory: Path | None = None) -> list[Migration]:
    """The migration files, in version order; refuses duplicate versions and stray names."""
    folder = directory or MIGRATIONS_DIR
    if not folder.is_dir():
        raise MigrationError(f"No migrations folder at {folder}")
    found: dict[str, Migration] = {}
    for path in sorted(folder.glob("*.sql")):
        match = _FILE_PATTERN.match(path.name)
        if not match:
            raise MigrationError(f"{path.name}: migration files are named NNNN_snake_name.sql")
        version, name = match.groups()
        if version in found:
            raise MigrationError(f"Two migrations share version {version}: {path.name}")
        found[version] = Migration(version, name, path.read_text(encoding="utf-8"))
    return [found[version] for version in sorted(found)]


def _connect(dsn: str) -> psycopg.Connection[Any]:
    """connect(), with an unusable DSN reported as the MigrationError the CLI reports.

    The DSN is checked before libpq parses it, because libpq's parse error quotes it.
    """
    try:
        return connect(dsn)
    except InvalidDsnError as error:
        raise MigrationError(str(error)) from None


def apply_migrations(dsn: str, directory: Path | None = None) -> list[str]:
    """Apply every pending migration in order; return the file names applied (empty if none)."""
    migrations = discover_migrations(directory)
    applied: list[str] = []
    try:
        with _connect(dsn) as conn:
            with conn.transaction():
                _lock(conn)
                conn.execute(_BOOKKEEPING_SQL)
            for migration in migrations:
                if _apply_one(conn, migration):
                    applied.append(migration.filename)
    except psycopg.Error as error:
        done = f" (applied before the failure: {', '.join(applied)})" if applied else ""
        raise MigrationError(
            f"Migrating failed{done}: {type(error).__name__}: {redact(str(error).strip(), dsn)}"
        ) from None
    return applied


def pending_migrations(dsn: str, directory: Path | None = None) -> list[str]:
    """File names of the migrations not yet applied to the database at `dsn`."""
    migrations = discover_migrations(directory)
    try:
        with _connect(dsn) as conn:
            recorded = _recorded(conn)
    except psycopg.Error as error:
        raise MigrationError(
            f"Could not read the migration history: {redact(str(error).strip(), dsn)}"
        ) from None
    _refuse_edited(migrations, recorded)
    return [m.filename for m in migrations if m.version not in recorded]


@dataclass(frozen=True)
class MigrationState:
    """One migration file, and when it was applied to a database (None: pending)."""

    filename: str
    applied_at: dt.datetime | None

    @property
    def pending(self) -> bool:
        return self.applied_at is None


def migration_status(dsn: str, directory: Path | None = None) -> list[MigrationState]:
    """Every migration file in order, with its applied time in the database at `dsn`.

    Refuses (MigrationError) when an applied file has been edited since, as `db migrate` would.
    """
    migrations = discover_migrations(directory)
    try:
        with _connect(dsn) as conn:
            recorded = _recorded(conn)
            applied_at = _applied_times(conn) if recorded else {}
    except psycopg.Error as error:
        raise MigrationError(
            f"Could not read the migration history: {redact(str(error).strip(), dsn)}"
        ) from None
    _refuse_edited(migrations, recorded)
    return [MigrationState(m.filename, applied_at.get(m.version)) for m in migrations]


def schema_problems(conn: psycopg.Connection[Any], directory: Path | None = None) -> list[str]:
    """What stops this code from using the database: pending migrations, missing tables/columns.

    Without the migrations folder (an installed package without the repo) only the tables and
    columns of tables.py are checked.
    """
    problems: list[str] = []
    folder = directory or MIGRATIONS_DIR
    if folder.is_dir():
        recorded = _recorded(conn)
        pending = [m.filename for m in discover_migrations(folder) if m.version not in recorded]
        if pending:
            problems.append(f"{len(pending)} pending migration(s): {', '.join(pending)}")
    existing = _public_columns(conn)
    for table in TABLES.values():
        if table.name not in existing:
            problems.append(f"table public.{table.name} is missing")
            continue
        missing = [name for name in table.column_names if name not in existing[table.name]]
        if missing:
            problems.append(f"public.{table.name} lacks column(s) {', '.join(missing)}")
    return problems


def _apply_one(conn: psycopg.Connection[Any], migration: Migration) -> bool:
    with conn.transaction():
        _lock(conn)
        recorded = _recorded(conn)
        if migration.version in recorded:
            _refuse_edited([migration], recorded)
            return False
        conn.execute("SET LOCAL statement_timeout = 0")
        # No parameters: psycopg uses the simple protocol, so a file may hold many statements.
        conn.execute(migration.sql.encode())
        conn.execute(
            "INSERT INTO asx_private.schema_migrations (version, name, checksum) "
            "VALUES (%s, %s, %s)",
            [migration.version, migration.name, migration.checksum],
        )
    return True


def _lock(conn: psycopg.Connection[Any]) -> None:
    conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [_LOCK_KEY])


def _recorded(conn: psycopg.Connection[Any]) -> dict[str, str]:
    """version -> checksum of the applied migrations (empty before the first migrate)."""
    exists = conn.execute("SELECT to_regclass('asx_private.schema_migrations')").fetchone()
    if not exists or exists[0] is None:
        return {}
    rows = conn.execute("SELECT version, checksum FROM asx_private.schema_migrations").fetchall()
    return {version: checksum for version, checksum in rows}


def _applied_times(conn: psycopg.Connection[Any]) -> dict[str, dt.datetime]:
    rows = conn.execute("SELECT version, applied_at FROM asx_private.schema_migrations").fetchall()
    return {version: applied_at for version, applied_at in rows}


def _refuse_edited(migrations: list[Migration], recorded: dict[str, str]) -> None:
    for migration in migrations:
        checksum = recorded.get(migration.version)
        if checksum is not None and checksum != migration.checksum:
            raise MigrationError(
                f"{migration.filename} was edited after it was applied to this database; "
                "put the change in a new migration file instead"
            )


def _public_columns(conn: psycopg.Connection[Any]) -> dict[str, set[str]]:
    rows = conn.execute(
        "SELECT table_name, column_name FROM information_schema.columns "
        "WHERE table_schema = 'public'"
    ).fetchall()
    columns: dict[str, set[str]] = {}
    for table_name, column_name in rows:
        columns.setdefault(table_name, set()).add(column_name)
    return columns


def render_table_sql(table: TableSpec) -> str:
    """Plain SQL for one table: DDL, indexes, RLS, grants and its REST functions."""
    return "\n".join(
        [
            _render_heading(table),
            _render_create(table),
            _render_security(table),
            render_table_functions(table),
        ]
    )


def render_table_functions(table: TableSpec) -> str:
    """The REST functions of `table`: append functions if it is append-only, else window ones."""
    if table.append_only:
        return render_append_functions(table)
    return render_window_functions(table)


def table_function_names(table: TableSpec) -> tuple[str, str]:
    """The names of the functions `render_table_functions` writes."""
    if table.append_only:
        return append_function_names(table)
    return window_function_names(table)


def render_window_functions(table: TableSpec) -> str:
    """`replace_<table>_window` and `commit_<table>_window` with their grants, nothing else.

    CREATE OR REPLACE keeps the functions' privileges, but the REVOKE/GRANT lines come along so
    that the latest definition of a function is complete on its own.
    """
    if table.append_only:
        raise ValueError(f"{table.name} is append-only: it has append functions instead")
    return "\n".join([_render_replace_function(table), _render_commit_function(table)])


def window_function_names(table: TableSpec) -> tuple[str, str]:
    """The REST backend's write functions of `table`, as the migrations name them."""
    return f"replace_{table.name}_window", f"commit_{table.name}_window"


def render_append_functions(table: TableSpec) -> str:
    """`append_<table>` and `<table>_partition_values` with their grants, nothing else.

    For an append-only table, which has no window functions: nothing stored is ever replaced.
    """
    if not table.append_only:
        raise ValueError(f"{table.name} is not append-only: it has window functions instead")
    return "\n".join([_render_append_function(table), _render_partition_values_function(table)])


def append_function_names(table: TableSpec) -> tuple[str, str]:
    """The REST backend's append and partition-list functions of an append-only `table`."""
    return f"append_{table.name}", f"{table.name}_partition_values"


def _render_heading(table: TableSpec) -> str:
    return f"-- {'-' * 90}\n-- {table.name}: {table.description}\n"


def _render_create(table: TableSpec) -> str:
    columns = ",\n".join(
        f"    {c.name} {sql_type(c.type, 'postgres')}{'' if c.nullable else ' NOT NULL'}"
        for c in table.columns
    )
    key = ", ".join(table.key)
    part = table.partition_column
    symbol_index = (
        f"-- Reads by symbol (one company's history); the primary key, which leads with {part},\n"
        f"-- serves reads by date.\n"
        f"CREATE INDEX IF NOT EXISTS {table.name}_symbol_idx ON public.{table.name} "
        f"(symbol, {part});\n"
        if "symbol" in table.column_names
        else ""
    )
    # Monthly partitions are created by the writers (asx_private.ensure_month_partitions).
    partitioned = f" PARTITION BY RANGE ({part})" if table.monthly_partitions else ""
    return (
        f"CREATE TABLE IF NOT EXISTS public.{table.name} (\n{columns},\n"
        f"    CONSTRAINT {table.name}_pkey PRIMARY KEY ({key})\n){partitioned};\n"
        f"COMMENT ON TABLE public.{table.name} IS {_sql_string(table.description)};\n"
        f"{symbol_index}"
    )


def _sql_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _render_lock(table: TableSpec) -> str:
    key = _sql_string(window_lock_key(table))
    return f"    PERFORM pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext({key}));"


def _render_security(table: TableSpec) -> str:
    name = f"public.{table.name}"
    return f"""ALTER TABLE {name} ENABLE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS {table.name}_read ON {name};
CREATE POLICY {table.name}_read ON {name} FOR SELECT TO anon, authenticated USING (true);
DROP POLICY IF EXISTS {table.name}_service ON {name};
CREATE POLICY {table.name}_service ON {name} FOR ALL TO service_role USING (true) WITH CHECK (true);
-- Supabase's default privileges grant everything on new tables to anon and authenticated; the
-- policies above already stop writes, and the grants say the same thing a second time.
REVOKE ALL ON TABLE {name} FROM PUBLIC, anon, authenticated;
GRANT SELECT ON TABLE {name} TO anon, authenticated;
GRANT SELECT, INSERT, UPDATE, DELETE ON TABLE {name} TO service_role;
"""


def _render_insert(table: TableSpec, source: str, condition: str = "") -> str:
    columns = ", ".join(table.column_names)
    prefixed = ", ".join(f"r.{name}" for name in table.column_names)
    part = table.partition_column
    return (
        f"    INSERT INTO public.{table.name} ({columns})\n"
        f"    SELECT {prefixed}\n"
        f"    {source}\n"
        f"    WHERE {condition}r.{part} >= p_start AND r.{part} < p_end;\n"
        f"    GET DIAGNOSTICS v_written = ROW_COUNT;"
    )


def _render_partitions(table: TableSpec, source: str, condition: str = "") -> str:
    """For a table stored in monthly partitions: create those the incoming rows need, if any.

    Only rows inside the window count: the others make the call fail after the INSERT anyway.
    """
    if not table.monthly_partitions:
        return ""
    part = table.partition_column
    return (
        f"    PERFORM asx_private.ensure_month_partitions('{table.name}', "
        f"pg_catalog.min(r.{part}), pg_catalog.max(r.{part}))\n"
        f"    {source}\n"
        f"    WHERE {condition}r.{part} >= p_start AND r.{part} < p_end;\n"
    )


def _render_delete(table: TableSpec, source: str, condition: str = "") -> str:
    part = table.partition_column
    delete = f"    DELETE FROM public.{table.name} WHERE {part} >= p_start AND {part} < p_end"
    if not table.replace_scope:
        return delete + ";"
    # Scoped tables lose only the rows whose scope values the incoming rows bring (TableSpec).
    columns = ", ".join(table.replace_scope)
    incoming = ", ".join(f"r.{name}" for name in table.replace_scope)
    where = f"\n        WHERE {condition.removesuffix(' AND ')}" if condition else ""
    scoped = f"\n    AND ({columns}) IN (SELECT DISTINCT {incoming}\n        {source}{where});"
    return delete + scoped


def _render_window_check(table: TableSpec, expected: str) -> str:
    # Rows outside the window were skipped by the INSERT; counting them refuses the whole call.
    return (
        f"    IF v_written <> {expected} THEN\n"
        f"        RAISE EXCEPTION '{table.name} [%, %): % row(s) fall outside the window; "
        f"nothing was written', p_start, p_end, {expected} - v_written\n"
        f"            USING ERRCODE = '22023';\n"
        f"    END IF;"
    )


def _render_replace_function(table: TableSpec) -> str:
    fn = f"public.{window_function_names(table)[0]}"
    source = f"FROM pg_catalog.jsonb_populate_recordset(NULL::public.{table.name}, p_rows) AS r"
    return f"""-- One request, one transaction: for a window that fits in one PostgREST request.
CREATE OR REPLACE FUNCTION {fn}(p_start date, p_end date, p_rows jsonb)
RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = ''
AS $fn$
DECLARE
    v_written integer;
BEGIN
    PERFORM asx_private.check_window('{table.name}', p_start, p_end, p_rows);
{_render_lock(table)}
{_render_partitions(table, source)}{_render_delete(table, source)}
{_render_insert(table, source)}
{_render_window_check(table, "pg_catalog.jsonb_array_length(p_rows)")}
    RETURN v_written;
END
$fn$;
REVOKE ALL ON FUNCTION {fn}(date, date, jsonb) FROM PUBLIC, anon, authenticated;
GRANT EXECUTE ON FUNCTION {fn}(date, date, jsonb) TO service_role;
"""


def _render_commit_function(table: TableSpec) -> str:
    fn = f"public.{window_function_names(table)[1]}"
    source = (
        "FROM asx_private.window_upload_batches AS b\n"
        f"    CROSS JOIN LATERAL pg_catalog.jsonb_populate_recordset(NULL::public.{table.name}, "
        "b.rows) AS r"
    )
    condition = "b.upload_id = p_upload_id AND "
    insert = _render_insert(table, source, condition)
    return f"""-- A window staged in batches (stage_window_batch) becomes visible here, all at once.
CREATE OR REPLACE FUNCTION {fn}(p_upload_id uuid, p_start date, p_end date, p_batches integer)
RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = ''
AS $fn$
DECLARE
    v_written integer;
    v_staged integer;
BEGIN
    v_staged := asx_private.claim_upload(p_upload_id, '{table.name}', p_start, p_end, p_batches);
    IF v_staged IS NULL THEN
        -- Already committed: this is a retry whose first answer was lost. Report, change nothing.
        RETURN (SELECT u.row_count FROM asx_private.window_uploads AS u
                WHERE u.upload_id = p_upload_id);
    END IF;
{_render_lock(table)}
{_render_partitions(table, source, condition)}{_render_delete(table, source, condition)}
{insert}
{_render_window_check(table, "v_staged")}
    PERFORM asx_private.finish_upload(p_upload_id, v_written);
    RETURN v_written;
END
$fn$;
REVOKE ALL ON FUNCTION {fn}(uuid, date, date, integer) FROM PUBLIC, anon, authenticated;
GRANT EXECUTE ON FUNCTION {fn}(uuid, date, date, integer) TO service_role;
"""


def _render_append_function(table: TableSpec) -> str:
    fn = f"public.{append_function_names(table)[0]}"
    columns = ", ".join(table.column_names)
    prefixed = ", ".join(f"r.{name}" for name in table.column_names)
    part = table.partition_column
    return f"""-- Adds the partitions of p_rows ({part} values) not stored yet, whole;
-- a partition already stored is skipped whole, never merged into or replaced, so a retry adds
-- nothing. The lock is replace_window's: two appenders of one table queue, and the second one's
-- NOT EXISTS (a new snapshot per statement) sees what the first committed.
CREATE OR REPLACE FUNCTION {fn}(p_rows jsonb)
RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = ''
AS $fn$
DECLARE
    v_added integer;
BEGIN
{_render_lock(table)}
    INSERT INTO public.{table.name} ({columns})
    SELECT {prefixed}
    FROM pg_catalog.jsonb_populate_recordset(NULL::public.{table.name}, p_rows) AS r
    WHERE NOT EXISTS (SELECT 1 FROM public.{table.name} AS s WHERE s.{part} = r.{part});
    GET DIAGNOSTICS v_added = ROW_COUNT;
    RETURN v_added;
END
$fn$;
REVOKE ALL ON FUNCTION {fn}(jsonb) FROM PUBLIC, anon, authenticated;
GRANT EXECUTE ON FUNCTION {fn}(jsonb) TO service_role;
"""


def _render_partition_values_function(table: TableSpec) -> str:
    fn = f"public.{append_function_names(table)[1]}"
    part = table.partition_column
    name = f"public.{table.name}"
    return f"""-- The stored partitions ({part} values), ascending. One array, not a set
-- of rows: PostgREST caps a set at max-rows (1,000 on Supabase) but returns a scalar whole. The
-- recursive query is a loose index scan of the primary key (which leads with {part}): one
-- probe per partition, not a read of every row. Invoker's rights: whoever may read the table
-- may list its partitions.
CREATE OR REPLACE FUNCTION {fn}()
RETURNS date[]
LANGUAGE sql
STABLE
SET search_path = ''
AS $fn$
    WITH RECURSIVE stored (value) AS (
        SELECT pg_catalog.min(t.{part}) FROM {name} AS t
        UNION ALL
        SELECT (SELECT pg_catalog.min(t.{part}) FROM {name} AS t WHERE t.{part} > stored.value)
        FROM stored WHERE stored.value IS NOT NULL
    )
    SELECT COALESCE(pg_catalog.array_agg(value ORDER BY value), '{{}}')
    FROM stored WHERE value IS NOT NULL
$fn$;
REVOKE ALL ON FUNCTION {fn}() FROM PUBLIC, anon, authenticated;
GRANT EXECUTE ON FUNCTION {fn}() TO anon, authenticated, service_role;
"""


_USAGE = """usage: python -m asx_pipeline.warehouse.migrations COMMAND TABLE [TABLE...]
  render            a new table: DDL, row-level security, grants and its REST functions
  render-functions  an existing table whose writes changed: only its REST functions (window
                    functions, or for an append-only table its append functions)"""


def _render_functions_block(table: TableSpec) -> str:
    return "\n".join([_render_heading(table), render_table_functions(table)])


_RENDERERS = {"render": render_table_sql, "render-functions": _render_functions_block}


def main(argv: list[str]) -> int:
    """`render TABLE...` / `render-functions TABLE...`: print SQL for a new migration file."""
    renderer = _RENDERERS.get(argv[0]) if argv else None
    if renderer is None or len(argv) < 2:
        print(_USAGE)
        return 2
    for name in argv[1:]:
        print(renderer(table_for(name)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
