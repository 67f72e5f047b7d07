"""What only the Postgres backend does: DSN handling, the pooler, retries, scrubbed errors."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pandas as pd
import psycopg
import pytest

from asx_pipeline.warehouse import postgres_backend
from asx_pipeline.warehouse.frames import WarehouseError, conform_frame
from asx_pipeline.warehouse.postgres_backend import PostgresWarehouse, connect, scrub_dsn
from asx_pipeline.warehouse.tables import DAILY_PRICES
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
    assert "KeyPass123" not in postgres_backend.redact("failed: sslpassword=KeyPass123", dsn)


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
            # The server goes away mid-transaction, after the DELETE ran.
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
