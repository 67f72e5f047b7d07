"""Append-only tables, every backend: a partition is added once, whole, and never replaced.

The same calls on DuckDB, on Postgres, and over REST (FakePostgrest running the SQL functions of
the migrations) leave the same rows.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import psycopg
import pytest
import respx

from asx_pipeline.warehouse.backend import WarehouseBackend
from asx_pipeline.warehouse.duckdb_backend import DuckDBWarehouse
from asx_pipeline.warehouse.frames import WarehouseError, Window, conform_frame
from asx_pipeline.warehouse.postgres_backend import PostgresWarehouse
from asx_pipeline.warehouse.postgres_sql import window_lock_key
from asx_pipeline.warehouse.rest_backend import SupabaseRestWarehouse, partition_requests
from asx_pipeline.warehouse.tables import ASX_DIRECTORY_SNAPSHOTS, ASX_SYMBOLS
from asx_pipeline_tests.warehouse.fake_postgrest import KEY, URL, FakePostgrest
from asx_pipeline_tests.warehouse.sample_frames import make_frame, window_of

TABLE = ASX_DIRECTORY_SNAPSHOTS
EVERYTHING = window_of(-30, 60)


@pytest.fixture(params=["duckdb", "postgres", "rest"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[WarehouseBackend]:
    if request.param == "duckdb":
        yield DuckDBWarehouse(tmp_path / "warehouse.duckdb")
        return
    dsn = request.getfixturevalue("migrated_dsn")
    if request.param == "postgres":
        yield PostgresWarehouse(dsn)
        return
    with respx.mock(assert_all_called=False) as router:
        FakePostgrest(dsn).install(router)
        # Small requests, so a multi-partition frame takes several calls.
        yield SupabaseRestWarehouse(URL, KEY, batch_rows=8, retry_wait_s=0.001)


def snapshots(window: Window, rows_per_day: int, version: int = 0) -> pd.DataFrame:
    """What the symbols asset appends: a conformed frame of whole partitions."""
    return conform_frame(TABLE, window, make_frame(TABLE, window, rows_per_day, version))


def stored(backend: WarehouseBackend) -> pd.DataFrame:
    return backend.read_window(TABLE, EVERYTHING)


def test_appending_the_same_frame_twice_adds_it_once(backend: WarehouseBackend) -> None:
    frame = snapshots(window_of(0, 3), rows_per_day=5)

    assert backend.append_partitions(TABLE, frame) == 15
    assert backend.append_partitions(TABLE, frame) == 0

    pd.testing.assert_frame_equal(stored(backend), frame)


def test_a_stored_partition_is_skipped_whole(backend: WarehouseBackend) -> None:
    first = snapshots(window_of(1, 1), rows_per_day=4, version=1)
    backend.append_partitions(TABLE, first)
    # Day 1 again with more rows and every value changed, and days 0 and 2 that are new.
    second = snapshots(window_of(0, 3), rows_per_day=6, version=2)

    assert backend.append_partitions(TABLE, second) == 12

    day_1 = window_of(1, 1).start
    expected = pd.concat([first, second[second.captured_on != day_1]])
    expected = expected.sort_values(list(TABLE.key), ignore_index=True)
    pd.testing.assert_frame_equal(stored(backend), expected)


def test_partition_values_are_ascending(backend: WarehouseBackend) -> None:
    assert backend.partition_values(TABLE) == []
    backend.append_partitions(TABLE, snapshots(window_of(5, 1), rows_per_day=2))
    backend.append_partitions(TABLE, snapshots(window_of(-3, 2), rows_per_day=3))
    backend.append_partitions(TABLE, snapshots(window_of(2, 1), rows_per_day=1))

    days = [window_of(offset, 1).start for offset in (-3, -2, 2, 5)]
    assert backend.partition_values(TABLE) == days


def test_an_empty_frame_adds_nothing(backend: WarehouseBackend) -> None:
    assert backend.append_partitions(TABLE, snapshots(window_of(0, 1), 0)) == 0
    assert backend.partition_values(TABLE) == []


@pytest.mark.parametrize(
    "backend",
    ["duckdb", "postgres", "rest"],
    indirect=True,
)
def test_replacing_a_window_of_an_append_only_table_is_refused(
    backend: WarehouseBackend,
) -> None:
    window = window_of(0, 2)
    frame = snapshots(window, rows_per_day=3, version=1)
    backend.append_partitions(TABLE, frame)

    with pytest.raises(WarehouseError, match=r"append-only.*replace_window is refused"):
        backend.replace_window(TABLE, window, snapshots(window, rows_per_day=2, version=2))

    pd.testing.assert_frame_equal(stored(backend), frame)


@pytest.mark.parametrize(
    "backend",
    ["duckdb", "postgres", "rest"],
    indirect=True,
)
def test_appending_to_a_windowed_table_is_refused(backend: WarehouseBackend) -> None:
    window = window_of(0, 1)
    frame = conform_frame(ASX_SYMBOLS, window, make_frame(ASX_SYMBOLS, window, 2))

    with pytest.raises(WarehouseError, match=r"not append-only.*append_partitions is refused"):
        backend.append_partitions(ASX_SYMBOLS, frame)

    assert backend.read_window(ASX_SYMBOLS, window).empty


def test_asx_symbols_keeps_its_snapshot_columns(backend: WarehouseBackend) -> None:
    window = window_of(0, 2)
    frame = make_frame(ASX_SYMBOLS, window, rows_per_day=8)
    assert frame["snapshot_captured_on"].notna().any()
    assert frame["snapshot_after_session"].notna().any()
    conformed = conform_frame(ASX_SYMBOLS, window, frame)

    backend.replace_window(ASX_SYMBOLS, window, conformed)

    pd.testing.assert_frame_equal(backend.read_window(ASX_SYMBOLS, window), conformed)


def test_rest_sends_whole_partitions_in_requests_of_about_batch_rows() -> None:
    rows = [
        {"captured_on": day, "symbol": symbol}
        for day, count in (("2025-11-05", 3), ("2025-11-03", 2), ("2025-11-04", 9))
        for symbol in map(str, range(count))
    ]

    requests = partition_requests(TABLE, rows, batch_rows=5)

    days = [sorted({row["captured_on"] for row in request}) for request in requests]
    # 11-03 (2) and 11-05 (3) would fit together, but requests keep partitions in order.
    assert days == [["2025-11-03"], ["2025-11-04"], ["2025-11-05"]]
    assert [len(request) for request in requests] == [2, 9, 3]
    assert [len(r) for r in partition_requests(TABLE, rows, batch_rows=100)] == [14]


def wait_for_advisory_waiters(dsn: str, count: int, timeout_s: float = 20) -> None:
    deadline = time.monotonic() + timeout_s
    with psycopg.connect(dsn, autocommit=True) as conn:
        while True:
            waiting = conn.execute(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
            ).fetchone()
            if waiting is not None and waiting[0] >= count:
                return
            assert time.monotonic() < deadline, f"{count} appenders never queued for the lock"
            time.sleep(0.02)


@pytest.mark.parametrize("transport", ["postgres", "rest"])
def test_two_processes_appending_one_new_partition_add_it_once(
    migrated_dsn: str, transport: str
) -> None:
    """Held back by a third session's lock, both appenders really are at the door at once."""
    day = window_of(0, 1)
    frames = [snapshots(day, rows_per_day=30, version=version) for version in (1, 2)]
    results: list[int] = []
    errors: list[BaseException] = []

    def make() -> WarehouseBackend:
        if transport == "postgres":
            return PostgresWarehouse(migrated_dsn)
        return SupabaseRestWarehouse(URL, KEY, retry_wait_s=0.001)

    def append(frame: pd.DataFrame) -> None:
        try:
            results.append(make().append_partitions(TABLE, frame))
        except BaseException as error:
            errors.append(error)

    with respx.mock(assert_all_called=False) as router, psycopg.connect(migrated_dsn) as holder:
        FakePostgrest(migrated_dsn).install(router)
        holder.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [window_lock_key(TABLE)])
        threads = [threading.Thread(target=append, args=(frame,)) for frame in frames]
        for thread in threads:
            thread.start()
        wait_for_advisory_waiters(migrated_dsn, 2)
        holder.commit()
        for thread in threads:
            thread.join(timeout=30)

    assert errors == []
    assert sorted(results) == [0, 30]
    read = PostgresWarehouse(migrated_dsn).read_window(TABLE, EVERYTHING)
    # Whichever came first is stored, whole; nothing of the other.
    assert any(read.equals(frame) for frame in frames)


def test_rest_lists_partitions_with_one_rpc(migrated_dsn: str) -> None:
    with psycopg.connect(migrated_dsn, autocommit=True) as conn:
        conn.execute(
            "SELECT public.append_asx_directory_snapshots(%s)",
            [json.dumps([{"captured_on": "2025-11-03", "symbol": "BHP", "status": "active",
                          "origin": "sample"}])],
        )  # fmt: skip
    with respx.mock(assert_all_called=False) as router:
        fake = FakePostgrest(migrated_dsn)
        fake.install(router)
        backend = SupabaseRestWarehouse(URL, KEY)
        assert backend.partition_values(TABLE) == [dt.date(2025, 11, 3)]

    (call,) = fake.calls
    assert call.url.path == "/rest/v1/rpc/asx_directory_snapshots_partition_values"
