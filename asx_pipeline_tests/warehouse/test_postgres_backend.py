"""What only the Postgres backend does: DSN handling, the pooler, retries, scrubbed errors, and
the window replace's staging and MERGE."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import numpy as np
import pandas as pd
import psycopg
import pytest
from dagster import DagsterInstance, materialize
from dagster._serdes import serialize_value
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from asx_pipeline.assets.symbols import asx_symbols
from asx_pipeline.sources.resource import MarketDataResource
from asx_pipeline.warehouse import postgres_backend, postgres_sql
from asx_pipeline.warehouse.frames import WarehouseError, Window, coerce_types, conform_frame
from asx_pipeline.warehouse.io_manager import warehouse_resources
from asx_pipeline.warehouse.migrations import (
    MigrationError,
    apply_migrations,
    migration_status,
    pending_migrations,
)
from asx_pipeline.warehouse.postgres_backend import PostgresWarehouse, in_copy_order
from asx_pipeline.warehouse.postgres_sql import connect, scrub_dsn
from asx_pipeline.warehouse.resources import PostgresWarehouseResource
from asx_pipeline.warehouse.tables import DAILY_PRICES, TABLES, TableSpec
from asx_pipeline_tests.warehouse.sample_frames import make_frame, window_of

PASSWORD = "pa:ss@w0rd/Secret"
POOLER_URL = (
    "postgresql://postgres.abcdefghijkl:pa%3Ass%40w0rd%2FSecret@"
    "aws-0-ap-southeast-2.pooler.supabase.com:6543/postgres?sslmode=verify-full&sslrootcert=ca.crt"
)


def test_scrubbed_dsn_keeps_only_harmless_parameters() -> None:
    # sslpassword (a client key's passphrase) and `options` may carry secrets too.
    dsn = POOLER_URL + "&sslpassword=KeyPass123&options=-c%20app.token%3Dtok456"
    scrubbed = scrub_dsn(dsn)
    assert "KeyPass123" not in scrubbed and "tok456" not in scrubbed
    assert scrubbed.endswith("?sslmode=verify-full&sslrootcert=ca.crt")
    assert "KeyPass123" not in postgres_sql.redact("failed: sslpassword=KeyPass123", dsn)


def test_scrubbed_dsn_keeps_everything_but_the_password() -> None:
    scrubbed = scrub_dsn(POOLER_URL)

    assert PASSWORD not in scrubbed and "pa%3Ass" not in scrubbed
    assert scrubbed == (
        "postgresql://postgres.abcdefghijkl:***@aws-0-ap-southeast-2.pooler.supabase.com:6543/"
        "postgres?sslmode=verify-full&sslrootcert=ca.crt"
    )
    assert "***" in scrub_dsn(f"host=db.example port=5432 user=u password='{PASSWORD}'")
    assert PASSWORD not in repr(PostgresWarehouse(POOLER_URL))


def test_transaction_pooler_turns_prepared_statements_off_and_ssl_passes_through(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[tuple[str, dict[str, Any]]] = []
    monkeypatch.setattr(psycopg, "connect", lambda dsn, **kw: seen.append((dsn, kw)))

    connect(POOLER_URL)
    connect(POOLER_URL.replace(":6543/", ":5432/"))

    (pooler_dsn, pooler_kwargs), (_session_dsn, session_kwargs) = seen
    assert pooler_kwargs["prepare_threshold"] is None
    assert "prepare_threshold" not in session_kwargs
    assert pooler_dsn == POOLER_URL  # sslmode and sslrootcert reach libpq untouched
    assert "transaction pooler" in PostgresWarehouse(POOLER_URL).describe()


def test_connection_errors_never_show_the_password() -> None:
    dsn = f"postgresql://postgres:{quote(PASSWORD, safe='')}@127.0.0.1:9/test"
    warehouse = PostgresWarehouse(dsn, connect_timeout_s=1, max_attempts=2, retry_wait_s=0.01)

    with pytest.raises(WarehouseError) as raised:
        warehouse.read_window(DAILY_PRICES, window_of(0, 1))

    text = str(raised.value)
    assert "daily_prices (2025-11-03) read" in text or "schema check" in text
    assert PASSWORD not in text and "pa%3Ass" not in text
    assert raised.value.__cause__ is None


def test_a_dropped_connection_reruns_the_whole_transaction(
    migrated_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    window = window_of(0, 2)
    frame = conform_frame(DAILY_PRICES, window, make_frame(DAILY_PRICES, window, 50))
    warehouse = PostgresWarehouse(migrated_dsn, retry_wait_s=0.01)
    warehouse.check_schema()
    real_connect = postgres_backend.connect
    attempts: list[int] = []

    def flaky_connect(dsn: str, **kwargs: Any) -> psycopg.Connection[Any]:
        attempts.append(1)
        conn = real_connect(dsn, **kwargs)
        if len(attempts) == 1:
            # The server goes away mid-transaction, after the stage was created.
            original = conn.cursor

            def cursor(*args: Any, **kw: Any) -> Any:
                conn.pgconn.finish()
                return original(*args, **kw)

            monkeypatch.setattr(conn, "cursor", cursor)
        return conn

    monkeypatch.setattr(postgres_backend, "connect", flaky_connect)
    warehouse.replace_window(DAILY_PRICES, window, frame)

    assert len(attempts) == 2
    pd.testing.assert_frame_equal(warehouse.read_window(DAILY_PRICES, window), frame)


def test_a_statement_timeout_is_not_retried_and_names_table_and_window(
    migrated_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    warehouse = PostgresWarehouse(migrated_dsn, statement_timeout_ms=1, retry_wait_s=0.01)
    warehouse.check_schema()
    monkeypatch.setattr(
        postgres_backend, "_select_window_sql", lambda *_: "SELECT pg_sleep(1) WHERE %s < %s"
    )

    with pytest.raises(WarehouseError, match=r"daily_prices \(2025-11-03\) read .*QueryCanceled"):
        warehouse.read_window(DAILY_PRICES, window_of(0, 1), columns=["trade_date"])


# --- a DSN libpq cannot parse: refused before libpq quotes it, and redacted even then -------------

TYPO_DSNS = {
    # The two typos of the issue: libpq's parse error quotes the DSN, or the password.
    "no colon after the scheme": ("postgresql//user:S3cretPw@127.0.0.1:5432/db", "S3cretPw"),
    "space": ("postgresql://postgres:my secret@127.0.0.1:5432/postgres", "my secret"),
    # libpq takes `ss!x@127.0.0.1` for the host, and would try to resolve it.
    "@": ("postgresql://postgres:p@ss!x@127.0.0.1:5432/postgres", "p@ss!x"),
    "/": ("postgresql://postgres:pa/ss!x@127.0.0.1:5432/postgres", "pa/ss!x"),
    "%": ("postgresql://postgres:100%sure@127.0.0.1:5432/postgres", "100%sure"),
    "key=value, unquoted space": ("host=127.0.0.1 dbname=d password=my secret", "my secret"),
}
# Unusual but legal: libpq reads each as the password it is (no percent-encoding needed).
LEGAL_ODD_DSNS = {
    "#": ("postgresql://postgres:pa#ss!x@127.0.0.1:1/postgres", "pa#ss!x"),
    "'": ("postgresql://postgres:it's!x@127.0.0.1:1/postgres", "it's!x"),
    ":": ("postgresql://postgres:pa:ss!x@127.0.0.1:1/postgres", "pa:ss!x"),
}


def _assert_names_the_setting_only(error: BaseException, dsn: str, password: str) -> None:
    text = str(error)
    assert text.startswith("SUPABASE_DB_URL is not a valid Postgres connection URL: it ")
    assert "expected postgresql://user:password@host:port/dbname" in text
    assert "percent-encode special characters in the password" in text
    assert password not in text and dsn not in text and "127.0.0.1" not in text
    # `from None`: libpq's error, which quotes the DSN, is not chained for a traceback to print.
    assert error.__cause__ is None and (error.__context__ is None or error.__suppress_context__)


@pytest.mark.parametrize("case", list(TYPO_DSNS))
def test_a_typo_dsn_is_refused_by_every_entry_point_without_quoting_it(case) -> None:
    dsn, password = TYPO_DSNS[case]
    for entry_point in (
        PostgresWarehouse,
        connect,
        postgres_sql.is_transaction_pooler,
        postgres_sql.parse_dsn,
    ):
        with pytest.raises(postgres_sql.InvalidDsnError) as raised:
            entry_point(dsn)
        assert isinstance(raised.value, WarehouseError)
        _assert_names_the_setting_only(raised.value, dsn, password)
    assert scrub_dsn(dsn) == "<unparseable connection string>"


@pytest.mark.parametrize("case", list(TYPO_DSNS))
def test_the_migration_commands_refuse_a_typo_dsn_without_quoting_it(case) -> None:
    dsn, password = TYPO_DSNS[case]
    for command in (apply_migrations, migration_status, pending_migrations):
        with pytest.raises(MigrationError) as raised:
            command(dsn)
        _assert_names_the_setting_only(raised.value, dsn, password)


def _libpq_parse_error(dsn: str) -> str:
    try:
        conninfo_to_dict(dsn)
    except psycopg.ProgrammingError as error:
        return f"{type(error).__name__}: {error}"
    return ""


@pytest.mark.parametrize("case", [*TYPO_DSNS, *LEGAL_ODD_DSNS])
def test_redact_removes_the_password_of_any_dsn_parseable_or_not(case) -> None:
    dsn, password = {**TYPO_DSNS, **LEGAL_ODD_DSNS}[case]
    # What could carry it: libpq's own parse error, the DSN, the password quoted or encoded.
    text = "\n".join(
        [_libpq_parse_error(dsn), f"connecting to {dsn}", f'password "{password}"', quote(password)]
    )
    assert password in text

    cleaned = postgres_sql.redact(text, dsn)
    assert password not in cleaned and quote(password, safe="") not in cleaned
    assert dsn not in cleaned


@pytest.mark.parametrize("case", list(LEGAL_ODD_DSNS))
def test_odd_but_legal_passwords_are_read_as_libpq_reads_them(case) -> None:
    dsn, password = LEGAL_ODD_DSNS[case]
    assert postgres_sql.parse_dsn(dsn)["password"] == password
    assert scrub_dsn(dsn) == "postgresql://postgres:***@127.0.0.1:1/postgres"


def test_a_parse_error_from_psycopg_connect_itself_is_replaced(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    dsn = "postgresql://postgres:S3cretPw@127.0.0.1:1/postgres"

    def refuse(conninfo: str, **kwargs: Any) -> None:
        raise psycopg.ProgrammingError(f'missing "=" after "{conninfo}" in connection info string')

    monkeypatch.setattr(psycopg, "connect", refuse)
    with pytest.raises(postgres_sql.InvalidDsnError) as raised:
        connect(dsn)
    _assert_names_the_setting_only(raised.value, dsn, "S3cretPw")


def test_a_typo_dsn_fails_the_step_once_and_stays_out_of_the_event_log() -> None:
    """Through Dagster: the IO manager given a typo (the settings would refuse it first)."""
    dsn, password = TYPO_DSNS["space"]
    instance = DagsterInstance.ephemeral()
    result = materialize(
        [asx_symbols],
        partition_key="2025-06-02",
        resources={
            "market_data": MarketDataResource(source="sample", universe="top:5"),
            **warehouse_resources(PostgresWarehouseResource(url=dsn)),
        },
        instance=instance,
        raise_on_error=False,
    )

    assert not result.success
    (failure,) = result.get_step_failure_events()  # no retry: a typo does not fix itself
    assert "SUPABASE_DB_URL is not a valid Postgres connection URL" in str(
        failure.event_specific_data.error.message
    )
    events = [serialize_value(entry) for entry in instance.all_logs(result.run_id)]
    assert not any(password in event for event in events)


# --- the window replace: COPY into a stage, delete what is stale, MERGE the rest -----------------

WINDOWED = [table for table in TABLES.values() if not table.append_only]


def _in_scope(table: TableSpec, stored: pd.DataFrame, frame: pd.DataFrame) -> np.ndarray:
    """Which stored rows a write of `frame` replaces (tables.py): all, or those of its scope."""
    if not table.replace_scope:
        return np.ones(len(stored), dtype=bool)
    scope = list(table.replace_scope)
    return pd.MultiIndex.from_frame(stored[scope]).isin(pd.MultiIndex.from_frame(frame[scope]))


def _row_versions(dsn: str, table: TableSpec, window: Window) -> pd.DataFrame:
    """Each stored row's key and xmin (the transaction that wrote it: a rewrite changes it)."""
    query = sql.SQL(
        "SELECT {key}, xmin::text AS xmin FROM {table} WHERE {part} >= %s AND {part} < %s"
    ).format(
        key=sql.SQL(", ").join(sql.Identifier(name) for name in table.key),
        table=sql.Identifier("public", table.name),
        part=sql.Identifier(table.partition_column),
    )
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(query, [window.start, window.end]).fetchall()
    found = pd.DataFrame(rows, columns=[*table.key, "xmin"])
    return coerce_types(table, found).assign(xmin=found["xmin"])


@pytest.mark.parametrize("table", WINDOWED, ids=lambda t: t.name)
def test_a_rerun_leaves_what_it_brings_and_rewrites_only_the_rows_that_changed(
    migrated_dsn: str, table: TableSpec
) -> None:
    window, neighbour = window_of(0, 4), window_of(4, 1)
    old, new = (
        conform_frame(table, window, make_frame(table, window, 8, version)) for version in (1, 2)
    )
    # The same keys in both versions. Row by row: the rerun brings it unchanged (0), brings it
    # changed (1), leaves it out (2), or brings it for the first time (3). Cycling by 5 over
    # 8 rows a day gives each symbol (snapshot, ...) a different kind on different days.
    kind = np.arange(len(old)) % 5 % 4
    if table.replace_scope:
        # And the first row's scope (a symbol, a snapshot) the rerun leaves out altogether.
        scope = list(table.replace_scope)
        kind[(old[scope] == old[scope].iloc[0]).all(axis=1).to_numpy()] = 2
    stored = old[kind != 3]
    rerun = conform_frame(
        table, window, pd.concat([old[kind == 0], new[kind == 1], new[kind == 3]])
    )
    beside = conform_frame(table, neighbour, make_frame(table, neighbour, 8, 1))
    warehouse = PostgresWarehouse(migrated_dsn)
    warehouse.replace_window(table, neighbour, beside)
    warehouse.replace_window(table, window, stored.reset_index(drop=True))
    before = _row_versions(migrated_dsn, table, window)

    warehouse.replace_window(table, window, rerun)

    # The rerun's rows, and the stored ones outside its scope (none without a replace_scope).
    in_scope = _in_scope(table, stored, rerun)
    kept = stored[~in_scope]
    assert len(kept) if table.replace_scope else not len(kept)
    if not set(table.key) <= set(table.replace_scope):
        assert (in_scope & (kind[kind != 3] == 2)).any(), "no stale row to delete"
    expected = conform_frame(table, window, pd.concat([rerun, kept]))
    pd.testing.assert_frame_equal(warehouse.read_window(table, window), expected)
    pd.testing.assert_frame_equal(warehouse.read_window(table, neighbour), beside)
    key = list(table.key)
    versions = (
        old[key]
        .assign(kind=kind)
        .merge(before, on=key)
        .merge(_row_versions(migrated_dsn, table, window), on=key, suffixes=("", "_after"))
    )
    unchanged, changed = (versions[versions["kind"] == k] for k in (0, 1))
    assert len(unchanged) and len(changed)
    assert (unchanged["xmin"] == unchanged["xmin_after"]).all(), "an unchanged row was rewritten"
    assert (changed["xmin"] != changed["xmin_after"]).all()


def test_one_session_can_run_replace_after_replace_even_after_a_failed_one(
    migrated_dsn: str,
) -> None:
    """A transaction pooler gives many transactions one server session: each replace's stage
    is gone at its end (ON COMMIT DROP, or the rollback), so the next one can create it."""
    window = window_of(0, 2)
    first, second = (
        in_copy_order(DAILY_PRICES, conform_frame(DAILY_PRICES, window, frame))
        for frame in (make_frame(DAILY_PRICES, window, 20, v) for v in (1, 2))
    )
    twice = pd.concat([second, second.iloc[:1]], ignore_index=True)  # one key twice
    warehouse = PostgresWarehouse(migrated_dsn)
    warehouse.check_schema()

    with connect(migrated_dsn) as conn:
        warehouse._replace(conn, DAILY_PRICES, window, first)
        with pytest.raises(psycopg.errors.CardinalityViolation):
            warehouse._replace(conn, DAILY_PRICES, window, twice)
        warehouse._replace(conn, DAILY_PRICES, window, second)
        stage = conn.execute("SELECT to_regclass('pg_temp.asx_stage_daily_prices')").fetchone()

    assert stage == (None,)
    expected = conform_frame(DAILY_PRICES, window, second)
    pd.testing.assert_frame_equal(warehouse.read_window(DAILY_PRICES, window), expected)


def test_a_row_of_another_window_fails_on_the_key_and_is_never_merged(migrated_dsn: str) -> None:
    """The MERGE matches stored rows of the window only. A frame that skipped conform_frame and
    brings a stored row of the next day fails on the primary key (as COPY did), changing nothing.
    """
    window, neighbour = window_of(0, 1), window_of(1, 1)
    inside, beside = (
        conform_frame(DAILY_PRICES, w, make_frame(DAILY_PRICES, w, 10, 1))
        for w in (window, neighbour)
    )
    warehouse = PostgresWarehouse(migrated_dsn)
    warehouse.replace_window(DAILY_PRICES, window, inside)
    warehouse.replace_window(DAILY_PRICES, neighbour, beside)
    stray = pd.concat(
        [make_frame(DAILY_PRICES, window, 10, 2), make_frame(DAILY_PRICES, neighbour, 10, 2)[:1]],
        ignore_index=True,
    )

    with pytest.raises(WarehouseError, match="UniqueViolation"):
        warehouse.replace_window(DAILY_PRICES, window, stray)

    pd.testing.assert_frame_equal(warehouse.read_window(DAILY_PRICES, window), inside)
    pd.testing.assert_frame_equal(warehouse.read_window(DAILY_PRICES, neighbour), beside)
