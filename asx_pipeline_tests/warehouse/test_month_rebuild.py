"""daily_prices on Postgres: a large write that covers a month's stored rows rebuilds the month.

postgres_backend.py builds such a month as a new table and swaps it in for the month's
partition; every other write merges row by row. These tests tell the two apart by the partition's
oid (a rebuilt partition is a new table), and check that the rebuild keeps the same rules: the
stored rows a write does not bring stay, rows outside the window stay, and a reader never sees a
month half written or empty.
"""

from __future__ import annotations

import datetime as dt
import threading
from typing import Any

import pandas as pd
import psycopg
import pytest

from asx_pipeline.warehouse.frames import Window, conform_frame
from asx_pipeline.warehouse.postgres_backend import REBUILD_MIN_ROWS, PostgresWarehouse
from asx_pipeline.warehouse.tables import DAILY_PRICES
from asx_pipeline_tests.warehouse.partitions import oids
from asx_pipeline_tests.warehouse.sample_frames import make_frame

NOVEMBER = Window(dt.date(2025, 11, 1), dt.date(2025, 12, 1))
# From the middle of October to the middle of December: November is covered whole, October and
# December only in part.
WIDE = Window(dt.date(2025, 10, 20), dt.date(2025, 12, 10))
PARTITIONS = ("daily_prices_p202510", "daily_prices_p202511", "daily_prices_p202512")


def frame(window: Window, per_day: int, version: int) -> pd.DataFrame:
    return conform_frame(DAILY_PRICES, window, make_frame(DAILY_PRICES, window, per_day, version))


def partition_indexes(dsn: str, name: str) -> list[tuple[str, bool]]:
    """(index name, attached to the parent's index) for each index of one partition."""
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT c.relname, EXISTS (SELECT FROM pg_inherits i WHERE i.inhrelid = c.oid) "
            "FROM pg_index x JOIN pg_class c ON c.oid = x.indexrelid "
            "WHERE x.indrelid = ('asx_private.' || %s)::regclass ORDER BY 1",
            [name],
        ).fetchall()
    return [tuple(row) for row in rows]


def assert_read_only_through_the_table(dsn: str, partition: str, rows: int) -> None:
    """A rebuilt partition is a table the writer created, not the migration: the API roles still
    read the month through daily_prices and its policies, and never the partition itself."""
    month = f"'{partition[-6:-2]}-{partition[-2:]}-01'::date"
    with psycopg.connect(dsn, autocommit=True) as conn:
        for role in ("anon", "authenticated"):
            conn.execute(f"SET ROLE {role}")
            assert conn.execute(
                f"SELECT count(*) FROM daily_prices WHERE trade_date >= {month} "
                f"AND trade_date < {month} + interval '1 month'"
            ).fetchone() == (rows,)
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(f"SELECT count(*) FROM asx_private.{partition}")
            conn.execute("RESET ROLE")


def sorted_rows(rows: pd.DataFrame) -> pd.DataFrame:
    return rows.sort_values(list(DAILY_PRICES.key), ignore_index=True)


def test_a_write_covering_a_month_rebuilds_it_and_keeps_what_it_does_not_bring(
    migrated_dsn: str,
) -> None:
    warehouse = PostgresWarehouse(migrated_dsn, rebuild_min_rows=1)
    stored = frame(WIDE, 30, version=1)
    warehouse.replace_window(DAILY_PRICES, WIDE, stored)
    before = oids(migrated_dsn)
    assert sorted(before) == list(PARTITIONS)

    # A refetch of November that lacks two symbols and one session: every other row changes.
    incoming = frame(NOVEMBER, 30, version=2)
    incoming = incoming[~incoming["symbol"].isin(["SYM00003", "SYM00011"])]
    incoming = incoming[incoming["trade_date"] != dt.date(2025, 11, 14)]
    warehouse.replace_window(DAILY_PRICES, NOVEMBER, incoming)

    after = oids(migrated_dsn)
    assert after["daily_prices_p202511"] != before["daily_prices_p202511"], "not rebuilt"
    assert after["daily_prices_p202510"] == before["daily_prices_p202510"]
    brought = stored.set_index(list(DAILY_PRICES.key)).index.isin(
        incoming.set_index(list(DAILY_PRICES.key)).index
    )
    expected = sorted_rows(pd.concat([stored[~brought], incoming], ignore_index=True))
    read = sorted_rows(warehouse.read_window(DAILY_PRICES, WIDE))
    pd.testing.assert_frame_equal(read, expected)
    assert partition_indexes(migrated_dsn, "daily_prices_p202511") == [
        ("daily_prices_p202511_pkey", True),
        ("daily_prices_p202511_symbol_idx", True),
    ]

    november = expected["trade_date"].between(NOVEMBER.start, NOVEMBER.end, inclusive="left")
    assert_read_only_through_the_table(migrated_dsn, "daily_prices_p202511", int(november.sum()))

    # Rebuilt again (the indexes' names are free again), and a rerun gives the same rows.
    warehouse.replace_window(DAILY_PRICES, NOVEMBER, incoming)
    assert oids(migrated_dsn)["daily_prices_p202511"] != after["daily_prices_p202511"]
    pd.testing.assert_frame_equal(
        sorted_rows(warehouse.read_window(DAILY_PRICES, WIDE)), expected
    )


def test_a_month_with_stored_rows_outside_the_window_is_merged(migrated_dsn: str) -> None:
    warehouse = PostgresWarehouse(migrated_dsn, rebuild_min_rows=1)
    stored = frame(WIDE, 5, version=1)
    warehouse.replace_window(DAILY_PRICES, WIDE, stored)
    before = oids(migrated_dsn)
    # From 21 October to 8 December: October's stored 20th and December's stored 9th lie
    # outside the window, so those two months are merged; November is covered, and rebuilt.
    narrower = Window(dt.date(2025, 10, 21), dt.date(2025, 12, 9))
    incoming = frame(narrower, 5, version=2)
    warehouse.replace_window(DAILY_PRICES, narrower, incoming)

    after = oids(migrated_dsn)
    assert after["daily_prices_p202510"] == before["daily_prices_p202510"]
    assert after["daily_prices_p202512"] == before["daily_prices_p202512"]
    assert after["daily_prices_p202511"] != before["daily_prices_p202511"]
    # The window's rows are the new ones, and the two days outside it keep their stored rows.
    outside = stored[~stored["trade_date"].between(narrower.start, narrower.end, inclusive="left")]
    assert sorted(set(outside["trade_date"])) == [dt.date(2025, 10, 20), dt.date(2025, 12, 9)]
    read = warehouse.read_window(DAILY_PRICES, WIDE)
    expected = pd.concat([outside, incoming], ignore_index=True)
    pd.testing.assert_frame_equal(sorted_rows(read), sorted_rows(expected))


def test_a_small_write_merges_even_when_it_covers_the_month(migrated_dsn: str) -> None:
    warehouse = PostgresWarehouse(migrated_dsn)  # the default threshold
    small = frame(NOVEMBER, 10, version=1)
    assert len(small) < REBUILD_MIN_ROWS
    warehouse.replace_window(DAILY_PRICES, NOVEMBER, small)
    before = oids(migrated_dsn)
    warehouse.replace_window(DAILY_PRICES, NOVEMBER, frame(NOVEMBER, 10, version=2))
    assert oids(migrated_dsn) == before


def test_a_row_written_beside_the_pipeline_during_a_rebuild_is_kept(migrated_dsn: str) -> None:
    """A writer that skips the pipeline's advisory lock (SQL by hand, or the API as service_role)
    and commits a row of the month while it is rebuilt: the rebuild waits for it and carries the
    row across. Without the table lock the rebuild copied the month before the row was committed,
    and the row went with the old partition."""
    warehouse = PostgresWarehouse(migrated_dsn, rebuild_min_rows=1)
    warehouse.replace_window(DAILY_PRICES, NOVEMBER, frame(NOVEMBER, 10, version=1))
    with psycopg.connect(migrated_dsn) as foreign:  # one open transaction, until commit()
        foreign.execute(
            "CREATE TEMP TABLE beside AS SELECT * FROM public.daily_prices "
            "WHERE trade_date = '2025-11-14' LIMIT 1; UPDATE beside SET symbol = 'BESIDE'; "
            "INSERT INTO public.daily_prices SELECT * FROM beside"
        )
        rebuild = threading.Thread(
            target=warehouse.replace_window,
            args=(DAILY_PRICES, NOVEMBER, frame(NOVEMBER, 10, version=2)),
        )
        rebuild.start()
        rebuild.join(timeout=1.0)  # it waits for the foreign writer, or would have copied by now
        foreign.commit()
    rebuild.join(timeout=30)
    assert not rebuild.is_alive()
    read = warehouse.read_window(DAILY_PRICES, NOVEMBER)
    assert list(read.loc[read["symbol"] == "BESIDE", "trade_date"]) == [dt.date(2025, 11, 14)]
    assert len(read) == len(frame(NOVEMBER, 10, version=2)) + 1


def fingerprint(conn: psycopg.Connection[Any]) -> tuple[Any, ...]:
    row = conn.execute(
        "SELECT count(*), sum(close) FROM public.daily_prices "
        "WHERE trade_date >= %s AND trade_date < %s",
        [NOVEMBER.start, NOVEMBER.end],
    ).fetchone()
    assert row is not None
    return tuple(row)


def test_readers_during_rebuilds_see_the_old_month_or_the_new_one(migrated_dsn: str) -> None:
    """The swap is one transaction: a reader sees every row of one version, never an empty or
    half-swapped month, whether it reads before, during or right after the swap."""
    warehouse = PostgresWarehouse(migrated_dsn, rebuild_min_rows=1)
    versions = [frame(NOVEMBER, 200, version) for version in (1, 2)]
    prints = []
    with psycopg.connect(migrated_dsn, autocommit=True) as conn:
        for version in versions:
            warehouse.replace_window(DAILY_PRICES, NOVEMBER, version)
            prints.append(fingerprint(conn))
    assert prints[0] != prints[1]

    seen: list[tuple[Any, ...]] = []
    done = threading.Event()

    def read_until_done() -> None:
        with psycopg.connect(migrated_dsn, autocommit=True) as conn:
            while not done.is_set():
                seen.append(fingerprint(conn))

    reader = threading.Thread(target=read_until_done)
    reader.start()
    try:
        for _ in range(3):
            for version in versions:
                warehouse.replace_window(DAILY_PRICES, NOVEMBER, version)
    finally:
        done.set()
        reader.join()
    assert len(seen) > 10
    assert set(seen) <= set(prints), f"a reader saw {set(seen) - set(prints)}"
