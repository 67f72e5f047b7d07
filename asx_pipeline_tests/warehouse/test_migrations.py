"""The SQL migrations on a real server: tables as tables.py says, RLS, window functions, history."""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pandas as pd
import psycopg
import pytest
import respx

from asx_pipeline.warehouse.frames import Window, conform_frame
from asx_pipeline.warehouse.migrations import (
    MIGRATIONS_DIR,
    MigrationError,
    apply_migrations,
    discover_migrations,
    pending_migrations,
    render_table_functions,
    table_function_names,
    window_function_names,
)
from asx_pipeline.warehouse.postgres_backend import PostgresWarehouse, SchemaOutOfDateError
from asx_pipeline.warehouse.rest_backend import SupabaseRestWarehouse
from asx_pipeline.warehouse.tables import ASX_SYMBOLS, DAILY_PRICES, TABLES, TableSpec, sql_type
from asx_pipeline_tests.warehouse.fake_postgrest import KEY, URL, FakePostgrest
from asx_pipeline_tests.warehouse.sample_frames import make_frame, window_of

ALL_FILES = [m.filename for m in discover_migrations()]
# One function definition, from its CREATE OR REPLACE to the GRANT that ends its block.
FUNCTION_DEFINITION = re.compile(
    r"^CREATE OR REPLACE FUNCTION public\.(?P<name>\w+)\(.*?"
    r"^GRANT EXECUTE ON FUNCTION public\.(?P=name)\(.*?;$",
    re.MULTILINE | re.DOTALL,
)


def query(dsn: str, text: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return conn.execute(text, params).fetchall()  # type: ignore[arg-type]


def price_row(day: str, symbol: str, close: float) -> dict[str, Any]:
    return {
        "trade_date": day, "symbol": symbol, "open": None, "high": None, "low": None,
        "close": close, "adj_close": close, "volume": 100, "source": "sample",
        "ingested_at": "2025-11-03T06:30:00+00:00",
    }  # fmt: skip


def test_apply_twice_applies_each_file_once(postgres_dsn: str) -> None:
    assert pending_migrations(postgres_dsn) == ALL_FILES

    assert apply_migrations(postgres_dsn) == ALL_FILES
    assert apply_migrations(postgres_dsn) == []
    assert pending_migrations(postgres_dsn) == []
    recorded = query(postgres_dsn, "SELECT version FROM asx_private.schema_migrations")
    assert sorted(v for (v,) in recorded) == [m.version for m in discover_migrations()]


def test_two_processes_migrating_at_once_apply_each_file_once(postgres_dsn: str) -> None:
    results: list[list[str]] = []
    threads = [
        threading.Thread(target=lambda: results.append(apply_migrations(postgres_dsn)))
        for _ in range(2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # Each file is its own locked transaction, so the two may share the work; together they
    # apply every file exactly once.
    applied = [name for result in results for name in result]
    assert sorted(applied) == ALL_FILES


@pytest.mark.parametrize("table", list(TABLES.values()), ids=lambda t: t.name)
def test_tables_match_tables_py_column_for_column(migrated_dsn: str, table: TableSpec) -> None:
    """The generator check: SQL and tables.py cannot drift apart unnoticed."""
    columns = query(
        migrated_dsn,
        "SELECT column_name, data_type, is_nullable = 'NO' FROM information_schema.columns "
        "WHERE table_schema = 'public' AND table_name = %s ORDER BY ordinal_position",
        [table.name],
    )
    assert columns, (
        f"public.{table.name} is missing: add a migration, starting from "
        f"`python -m asx_pipeline.warehouse.migrations render {table.name}`"
    )
    assert columns == [
        (c.name, sql_type(c.type, "postgres"), not c.nullable or c.name in table.key)
        for c in table.columns
    ]
    primary_key = query(
        migrated_dsn,
        "SELECT a.attname FROM pg_index i JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(n, o) "
        "ON true JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.n "
        "WHERE i.indrelid = %s::regclass AND i.indisprimary ORDER BY k.o",
        [f"public.{table.name}"],
    )
    assert tuple(name for (name,) in primary_key) == table.key
    for function in table_function_names(table):
        assert query(migrated_dsn, "SELECT 1 FROM pg_proc WHERE proname = %s", [function])
    if table.append_only:  # nothing stored in it is ever replaced, not even over REST
        for function in window_function_names(table):
            assert not query(migrated_dsn, "SELECT 1 FROM pg_proc WHERE proname = %s", [function])


def function_definitions(text: str) -> dict[str, str]:
    """Every public function defined in `text`, by name, with its REVOKE/GRANT lines."""
    return {match["name"]: match[0] for match in FUNCTION_DEFINITION.finditer(text)}


def latest_function_definitions() -> dict[str, tuple[str, str]]:
    """name -> (file, definition) of the last migration file that (re)defines each function."""
    latest: dict[str, tuple[str, str]] = {}
    for migration in discover_migrations():
        for name, definition in function_definitions(migration.sql).items():
            latest[name] = (migration.filename, definition)
    return latest


@pytest.mark.parametrize("table", list(TABLES.values()), ids=lambda t: t.name)
def test_latest_window_functions_are_what_tables_py_renders(table: TableSpec) -> None:
    """A change to how a table is written (replace_scope, columns) cannot skip its migration.

    Window functions for a windowed table; append functions for an append-only one, which must
    have no window functions at all.
    """
    latest = latest_function_definitions()
    rendered = function_definitions(render_table_functions(table))

    assert sorted(rendered) == sorted(table_function_names(table))
    if table.append_only:
        defined = [name for name in window_function_names(table) if name in latest]
        assert defined == [], f"append-only {table.name} must have no window functions"
    for name, definition in rendered.items():
        assert name in latest, f"no migration defines public.{name}"
        filename, defined = latest[name]
        assert defined == definition, (
            f"public.{name} as last defined (in {filename}) is not what tables.py renders now: "
            f"add a migration from `python -m asx_pipeline.warehouse.migrations "
            f"render-functions {table.name}`"
        )


@pytest.mark.parametrize("table", list(TABLES.values()), ids=lambda t: t.name)
def test_indexes_serve_reads_by_date_and_by_symbol(migrated_dsn: str, table: TableSpec) -> None:
    leading = query(
        migrated_dsn,
        "SELECT a.attname FROM pg_index i JOIN pg_attribute a "
        "ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0] WHERE i.indrelid = %s::regclass",
        [f"public.{table.name}"],
    )
    firsts = {name for (name,) in leading}
    assert table.partition_column in firsts
    if "symbol" in table.column_names:
        assert "symbol" in firsts


def test_row_level_security_is_enabled_on_every_public_table(migrated_dsn: str) -> None:
    tables = query(
        migrated_dsn,
        "SELECT c.relname, c.relrowsecurity FROM pg_class c JOIN pg_namespace n "
        "ON n.oid = c.relnamespace WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')",
    )
    assert {name for name, _ in tables} >= set(TABLES)
    assert [name for name, secured in tables if not secured] == []


def test_anon_can_read_but_never_write(migrated_dsn: str) -> None:
    with psycopg.connect(migrated_dsn, autocommit=True) as conn:
        conn.execute(
            "SELECT public.replace_daily_prices_window('2025-11-03', '2025-11-04', %s)",
            [json.dumps([price_row("2025-11-03", "BHP", 40.5)])],
        )
        conn.execute("SET ROLE anon")
        assert conn.execute("SELECT symbol, close FROM daily_prices").fetchall() == [("BHP", 40.5)]
        for statement in (
            "INSERT INTO daily_prices (trade_date, symbol, close, source, ingested_at) "
            "VALUES ('2025-11-04', 'CBA', 1, 'x', now())",
            "UPDATE daily_prices SET close = 0",
            "DELETE FROM daily_prices",
            "SELECT public.replace_daily_prices_window('2025-11-03', '2025-11-04', '[]')",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)
        conn.execute("RESET ROLE")
        assert conn.execute("SELECT count(*) FROM daily_prices").fetchone() == (1,)


def test_rls_refuses_anon_writes_even_when_granted(migrated_dsn: str) -> None:
    """Supabase's default privileges grant anon everything; the policies must still hold."""
    with psycopg.connect(migrated_dsn, autocommit=True) as conn:
        # The month's partition exists (a writer made it), so what refuses the row is RLS.
        conn.execute(
            "SELECT asx_private.ensure_month_partitions('daily_prices', '2025-11-04', '2025-11-04')"
        )
        conn.execute("GRANT INSERT ON public.daily_prices TO anon")
        conn.execute("SET ROLE anon")
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
            conn.execute(
                "INSERT INTO daily_prices (trade_date, symbol, close, source, ingested_at) "
                "VALUES ('2025-11-04', 'CBA', 1, 'x', now())"
            )


def _closes(conn: psycopg.Connection[Any]) -> list[tuple[Any, ...]]:
    rows = conn.execute(
        "SELECT trade_date::text, symbol, close FROM daily_prices ORDER BY 1, 2"
    ).fetchall()
    return [tuple(row) for row in rows]


def test_replace_function_replaces_only_the_window(migrated_dsn: str) -> None:
    with psycopg.connect(migrated_dsn, autocommit=True) as conn:
        conn.execute("SET ROLE service_role")
        call = "SELECT public.replace_daily_prices_window(%s, %s, %s)"
        conn.execute(call, ["2025-11-03", "2025-11-05", json.dumps([
            price_row("2025-11-03", "BHP", 1), price_row("2025-11-04", "BHP", 2),
            price_row("2025-11-04", "CSL", 4),
        ])])  # fmt: skip
        written = conn.execute(call, ["2025-11-04", "2025-11-05", json.dumps([
            price_row("2025-11-04", "BHP", 5), price_row("2025-11-04", "CBA", 3),
        ])]).fetchone()  # fmt: skip

        assert written == (2,)
        # 2025-11-03 is outside the window; CSL was not among the rows, so it keeps its bar.
        after = [
            ("2025-11-03", "BHP", 1.0), ("2025-11-04", "BHP", 5.0), ("2025-11-04", "CBA", 3.0),
            ("2025-11-04", "CSL", 4.0),
        ]  # fmt: skip
        assert _closes(conn) == after
        with pytest.raises(psycopg.errors.InvalidParameterValue, match="outside the window"):
            conn.execute(
                call, ["2025-11-04", "2025-11-05", json.dumps([price_row("2025-11-09", "X", 9)])]
            )
        assert _closes(conn) == after


def test_staged_batches_become_visible_only_at_commit(migrated_dsn: str) -> None:
    upload = str(uuid.uuid4())
    window = ["2025-11-03", "2025-11-04"]
    stage = "SELECT public.stage_window_batch(%s, 'daily_prices', %s, %s, %s, %s)"
    commit = "SELECT public.commit_daily_prices_window(%s, %s, %s, %s)"
    with psycopg.connect(migrated_dsn, autocommit=True) as conn:
        conn.execute(
            "SELECT public.replace_daily_prices_window(%s, %s, %s)",
            [*window, json.dumps([price_row("2025-11-03", "OLD", 1)])],
        )
        conn.execute("SET ROLE service_role")
        conn.execute(stage, [upload, *window, 0, json.dumps([price_row("2025-11-03", "A", 2)])])
        conn.execute(stage, [upload, *window, 1, json.dumps([price_row("2025-11-03", "OLD", 3)])])
        # A retried batch replaces itself rather than adding rows.
        conn.execute(stage, [upload, *window, 1, json.dumps([price_row("2025-11-03", "OLD", 3)])])
        assert _closes(conn) == [("2025-11-03", "OLD", 1.0)]
        with pytest.raises(psycopg.errors.InvalidParameterValue, match="2 of 3 batches"):
            conn.execute(commit, [upload, *window, 3])
        assert _closes(conn) == [("2025-11-03", "OLD", 1.0)]

        assert conn.execute(commit, [upload, *window, 2]).fetchone() == (2,)
        # A commit retried after its answer was lost changes nothing and answers the same.
        assert conn.execute(commit, [upload, *window, 2]).fetchone() == (2,)
        assert _closes(conn) == [("2025-11-03", "A", 2.0), ("2025-11-03", "OLD", 3.0)]
        conn.execute("RESET ROLE")  # service_role cannot even see asx_private
        staged = conn.execute("SELECT count(*) FROM asx_private.window_upload_batches")
        assert staged.fetchone() == (0,)


def test_pending_migrations_make_the_backend_refuse_to_start(
    postgres_dsn: str, tmp_path: Path
) -> None:
    older = tmp_path / "migrations"
    older.mkdir()
    shutil.copy(MIGRATIONS_DIR / ALL_FILES[0], older / ALL_FILES[0])
    apply_migrations(postgres_dsn, older)
    warehouse = PostgresWarehouse(postgres_dsn)

    assert pending_migrations(postgres_dsn) == ALL_FILES[1:]
    if ALL_FILES[1:]:
        with pytest.raises(SchemaOutOfDateError, match=r"run `asx-pipeline db migrate`"):
            warehouse.read_window(DAILY_PRICES, Window.single(dt.date(2025, 11, 3)))

    apply_migrations(postgres_dsn)
    warehouse.check_schema()  # no longer raises


def test_an_unmigrated_database_says_to_migrate(postgres_dsn: str) -> None:
    with pytest.raises(SchemaOutOfDateError, match=r"pending migration.*asx-pipeline db migrate"):
        PostgresWarehouse(postgres_dsn).check_schema()


def test_editing_an_applied_migration_is_refused(postgres_dsn: str, tmp_path: Path) -> None:
    folder = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS_DIR, folder)
    apply_migrations(postgres_dsn, folder)
    first = folder / ALL_FILES[0]
    first.write_text(first.read_text() + "\n-- an afterthought\n")

    with pytest.raises(MigrationError, match="edited after it was applied"):
        apply_migrations(postgres_dsn, folder)


def snapshot_row(day: str, symbol: str, company: str = "Co") -> dict[str, Any]:
    return {
        "captured_on": day, "symbol": symbol, "company_name": company,
        "gics_industry_group": None, "listing_date": None, "market_cap": None,
        "status": "active", "origin": "sample",
    }  # fmt: skip


def _snapshots(conn: psycopg.Connection[Any]) -> list[tuple[Any, ...]]:
    rows = conn.execute(
        "SELECT captured_on::text, symbol, company_name FROM asx_directory_snapshots ORDER BY 1, 2"
    ).fetchall()
    return [tuple(row) for row in rows]


def test_append_function_adds_new_partitions_whole_and_skips_stored_ones(
    migrated_dsn: str,
) -> None:
    append = "SELECT public.append_asx_directory_snapshots(%s)"
    listed = "SELECT public.asx_directory_snapshots_partition_values()"
    with psycopg.connect(migrated_dsn, autocommit=True) as conn:
        conn.execute("SET ROLE service_role")
        assert conn.execute(listed).fetchone() == ([],)
        first = [snapshot_row("2025-11-04", "BHP"), snapshot_row("2025-11-04", "CBA")]
        assert conn.execute(append, [json.dumps(first)]).fetchone() == (2,)
        assert conn.execute(append, [json.dumps(first)]).fetchone() == (0,)
        # 2025-11-04 is stored: skipped whole, its new row and changed name included; 11-03 is new.
        again = [
            snapshot_row("2025-11-04", "BHP", "Changed"), snapshot_row("2025-11-04", "CSL"),
            snapshot_row("2025-11-03", "BHP"),
        ]  # fmt: skip
        assert conn.execute(append, [json.dumps(again)]).fetchone() == (1,)
        assert _snapshots(conn) == [
            ("2025-11-03", "BHP", "Co"), ("2025-11-04", "BHP", "Co"), ("2025-11-04", "CBA", "Co"),
        ]  # fmt: skip
        assert conn.execute(listed).fetchone() == ([dt.date(2025, 11, 3), dt.date(2025, 11, 4)],)
        # No window functions, so no staging either: nothing stored is ever replaced.
        with pytest.raises(psycopg.errors.UndefinedTable, match="takes staged windows"):
            conn.execute(
                "SELECT public.stage_window_batch(%s, 'asx_directory_snapshots', "
                "'2025-11-03', '2025-11-04', 0, %s)",
                [str(uuid.uuid4()), json.dumps([snapshot_row("2025-11-03", "X")])],
            )


def test_anon_can_list_snapshot_partitions_but_never_append(migrated_dsn: str) -> None:
    with psycopg.connect(migrated_dsn, autocommit=True) as conn:
        conn.execute(
            "SELECT public.append_asx_directory_snapshots(%s)",
            [json.dumps([snapshot_row("2025-11-03", "BHP")])],
        )
        conn.execute("SET ROLE anon")
        listed = conn.execute("SELECT public.asx_directory_snapshots_partition_values()")
        assert listed.fetchone() == ([dt.date(2025, 11, 3)],)
        for statement in (
            "SELECT public.append_asx_directory_snapshots('[]')",
            "DELETE FROM asx_directory_snapshots",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)


def wait_for_advisory_waiters(dsn: str, count: int, timeout_s: float = 20) -> None:
    """Until `count` sessions wait for an advisory lock (the appenders queue behind a holder)."""
    deadline = time.monotonic() + timeout_s
    waiting = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
    while query(dsn, waiting)[0][0] < count:
        assert time.monotonic() < deadline, f"{count} appenders never queued for the lock"
        time.sleep(0.02)


def test_concurrent_appends_of_one_partition_add_it_once(migrated_dsn: str) -> None:
    """Both calls queue on the table's lock; the second finds the partition and adds nothing."""
    rows = json.dumps([snapshot_row("2025-11-03", f"S{i:03d}") for i in range(50)])
    results: list[int] = []
    errors: list[BaseException] = []

    def append() -> None:
        try:
            with psycopg.connect(migrated_dsn, autocommit=True) as conn:
                conn.execute("SET ROLE service_role")
                added = conn.execute("SELECT public.append_asx_directory_snapshots(%s)", [rows])
                results.append(added.fetchone()[0])  # type: ignore[index]
        except BaseException as error:
            errors.append(error)

    with psycopg.connect(migrated_dsn) as holder:
        holder.execute(
            "SELECT pg_advisory_xact_lock(hashtext(%s))",
            ["asx_pipeline.replace_window:asx_directory_snapshots"],
        )
        threads = [threading.Thread(target=append) for _ in range(2)]
        for thread in threads:
            thread.start()
        wait_for_advisory_waiters(migrated_dsn, 2)
        holder.commit()
    for thread in threads:
        thread.join(timeout=30)

    assert errors == []
    assert sorted(results) == [0, 50]
    assert query(migrated_dsn, "SELECT count(*) FROM asx_directory_snapshots") == [(50,)]


def migrate_before(dsn: str, tmp_path: Path, version: str) -> None:
    """Apply the migrations older than `version`, as a database migrated by older code is."""
    older = tmp_path / "migrations"
    older.mkdir()
    for filename in ALL_FILES:
        if filename < version:
            shutil.copy(MIGRATIONS_DIR / filename, older / filename)
    apply_migrations(dsn, older)


def test_0005_upgrades_a_database_migrated_to_0004(postgres_dsn: str, tmp_path: Path) -> None:
    """Stored asx_symbols rows keep their values and hold null in the columns 0005 adds."""
    migrate_before(postgres_dsn, tmp_path, "0005")
    old_row = {
        "as_of_date": "2025-11-03", "symbol": "BHP", "yahoo_ticker": "BHP.AX",
        "company_name": "BHP Group", "gics_industry_group": "Materials", "listing_date": None,
        "market_cap": 1.5e11, "status": "active",
    }  # fmt: skip
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        conn.execute(
            "SELECT public.replace_asx_symbols_window('2025-11-03', '2025-11-04', %s)",
            [json.dumps([old_row])],
        )
    with pytest.raises(SchemaOutOfDateError) as raised:
        PostgresWarehouse(postgres_dsn).check_schema()
    message = str(raised.value)
    assert "0005_directory_snapshots.sql" in message
    assert "table public.asx_directory_snapshots is missing" in message
    assert "asx_symbols lacks column(s) snapshot_captured_on, snapshot_after_session" in message
    assert message.endswith("run `asx-pipeline db migrate` first.")

    assert apply_migrations(postgres_dsn)[0] == "0005_directory_snapshots.sql"

    PostgresWarehouse(postgres_dsn).check_schema()
    stored = query(
        postgres_dsn,
        "SELECT symbol, company_name, market_cap, snapshot_captured_on, snapshot_after_session "
        "FROM asx_symbols",
    )
    assert stored == [("BHP", "BHP Group", 1.5e11, None, None)]
    day = Window.single(dt.date(2025, 11, 3))
    with respx.mock(assert_all_called=False) as router:
        FakePostgrest(postgres_dsn).install(router)
        backends = [PostgresWarehouse(postgres_dsn), SupabaseRestWarehouse(URL, KEY)]
        for backend in backends:
            read = backend.read_window(ASX_SYMBOLS, day)
            assert read[["symbol", "company_name"]].values.tolist() == [["BHP", "BHP Group"]]
            assert read[["snapshot_captured_on", "snapshot_after_session"]].isna().all(None)
        # Both write the new columns (the REST functions of 0005 list them) and read them back.
        for index, backend in enumerate(backends):
            window = window_of(1 + 2 * index, 2)  # after the old row's day, apart from each other
            frame = conform_frame(ASX_SYMBOLS, window, make_frame(ASX_SYMBOLS, window, 8))
            backend.replace_window(ASX_SYMBOLS, window, frame)
            for reader in backends:
                pd.testing.assert_frame_equal(reader.read_window(ASX_SYMBOLS, window), frame)


def test_0006_moves_stored_prices_into_month_partitions(postgres_dsn: str, tmp_path: Path) -> None:
    """Every stored bar survives the move; the table keeps its RLS, policies and grants, its
    partitions are out of the API roles' reach, and both backends write new months."""
    migrate_before(postgres_dsn, tmp_path, "0006")
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        for day, symbols in (("2025-10-31", ("BHP", "CBA")), ("2025-11-03", ("BHP", "CSL"))):
            rows = [price_row(day, symbol, 40.5 + i) for i, symbol in enumerate(symbols)]
            conn.execute(
                "SELECT public.replace_daily_prices_window(%s, (%s::date + 1), %s)",
                [day, day, json.dumps(rows)],
            )
    every_bar = "SELECT * FROM daily_prices ORDER BY trade_date, symbol"
    stored = query(postgres_dsn, every_bar)
    assert len(stored) == 4

    assert apply_migrations(postgres_dsn) == ["0006_monthly_price_partitions.sql"]

    assert query(postgres_dsn, every_bar) == stored
    kind = "SELECT relkind::text FROM pg_class WHERE oid = 'public.daily_prices'::regclass"
    assert query(postgres_dsn, kind) == [("p",)]
    partitions = query(
        postgres_dsn,
        "SELECT n.nspname || '.' || c.relname FROM pg_inherits i JOIN pg_class c "
        "ON c.oid = i.inhrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE i.inhparent = 'public.daily_prices'::regclass ORDER BY 1",
    )
    assert partitions == [
        ("asx_private.daily_prices_p202510",),
        ("asx_private.daily_prices_p202511",),
    ]
    policies = query(
        postgres_dsn,
        "SELECT policyname FROM pg_policies WHERE schemaname = 'public' "
        "AND tablename = 'daily_prices' ORDER BY 1",
    )
    assert policies == [("daily_prices_read",), ("daily_prices_service",)]
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        for role in ("anon", "authenticated", "service_role"):
            conn.execute(f"SET ROLE {role}")
            if role != "service_role":  # anon and authenticated read through the table...
                assert conn.execute("SELECT count(*) FROM daily_prices").fetchone() == (4,)
            with pytest.raises(psycopg.errors.InsufficientPrivilege):  # ...never a partition
                conn.execute("SELECT count(*) FROM asx_private.daily_prices_p202511")
            conn.execute("RESET ROLE")

    PostgresWarehouse(postgres_dsn).check_schema()
    with respx.mock(assert_all_called=False) as router:
        FakePostgrest(postgres_dsn).install(router)
        backends = [PostgresWarehouse(postgres_dsn), SupabaseRestWarehouse(URL, KEY)]
        # December and January: months with no partition yet, written by each backend.
        for window in (Window(dt.date(2025, 12, 1), dt.date(2025, 12, 3)),
                       Window(dt.date(2026, 1, 5), dt.date(2026, 1, 6))):  # fmt: skip
            for backend in backends:
                frame = conform_frame(DAILY_PRICES, window, make_frame(DAILY_PRICES, window, 3))
                backend.replace_window(DAILY_PRICES, window, frame)
                for reader in backends:
                    pd.testing.assert_frame_equal(reader.read_window(DAILY_PRICES, window), frame)
    assert len(query(postgres_dsn, every_bar)) == 4 + 2 * 3 + 3
