"""SIGKILL a writer in the middle of a large window replace: old rows or new, never a mixture."""

from __future__ import annotations

import multiprocessing
import os
import random
import signal
import time
from typing import Any

import pandas as pd
import psycopg
import pytest

from asx_pipeline.warehouse.frames import conform_frame
from asx_pipeline.warehouse.postgres_backend import REBUILD_MIN_ROWS, PostgresWarehouse
from asx_pipeline.warehouse.tables import DAILY_PRICES
from asx_pipeline_tests.warehouse.partitions import oids
from asx_pipeline_tests.warehouse.sample_frames import make_frame, window_of

KILLS = 12  # per way of writing
WINDOW = window_of(0, 20)
# Both versions differ in every value and in their key sets, so any mixture shows. daily_prices
# replaces only the (session, symbol) rows a write brings, so after writing `old` over `new` the
# window holds old's 2,000 rows a day plus new's last 100: that whole state is "old" below.
OLD_ROWS_PER_DAY, NEW_ROWS_PER_DAY = 2000, 2100
FINGERPRINT_SQL = """
SELECT count(*), md5(string_agg(symbol || ':' || close::text || ':' || coalesce(volume, -1)::text,
                                ',' ORDER BY trade_date, symbol))
FROM public.daily_prices WHERE trade_date >= %s AND trade_date < %s
"""


def fingerprint(dsn: str) -> tuple[Any, ...]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(FINGERPRINT_SQL, [WINDOW.start, WINDOW.end]).fetchone()
    assert row is not None
    return tuple(row)


def write_forever(dsn: str, frames: list[pd.DataFrame], rebuild_min_rows: int) -> None:
    """Alternate the two versions until killed, so a kill can land anywhere in a transaction."""
    warehouse = PostgresWarehouse(
        dsn, check_schema_on_first_use=False, rebuild_min_rows=rebuild_min_rows
    )
    while True:
        for frame in frames:
            warehouse.replace_window(DAILY_PRICES, WINDOW, frame)


@pytest.mark.slow
# Merged row by row (the window's 42,000 rows are under the rebuild threshold), and with the
# window's month rebuilt and swapped in, as a larger write does (postgres_backend.py).
@pytest.mark.parametrize("rebuild_min_rows", [REBUILD_MIN_ROWS, 1], ids=["merge", "rebuild"])
def test_sigkill_during_window_replace_leaves_old_or_new_rows(
    migrated_dsn: str, rebuild_min_rows: int
) -> None:
    old, new = (
        conform_frame(DAILY_PRICES, WINDOW, make_frame(DAILY_PRICES, WINDOW, per_day, version))
        for per_day, version in ((OLD_ROWS_PER_DAY, 1), (NEW_ROWS_PER_DAY, 2))
    )
    warehouse = PostgresWarehouse(migrated_dsn, rebuild_min_rows=rebuild_min_rows)
    warehouse.replace_window(DAILY_PRICES, WINDOW, new)
    pd.testing.assert_frame_equal(warehouse.read_window(DAILY_PRICES, WINDOW), new)
    new_print = fingerprint(migrated_dsn)
    # Timed over stored rows, as the writer below always writes (staged and merged), not the
    # first write into the empty window (a plain COPY, quicker): the kills span its writes.
    partitions = oids(migrated_dsn)
    started = time.perf_counter()
    warehouse.replace_window(DAILY_PRICES, WINDOW, old)
    write_seconds = time.perf_counter() - started
    # The path the ids say: a rebuilt month is a new table, a merged one the same.
    rebuilt = oids(migrated_dsn) != partitions
    assert rebuilt == (rebuild_min_rows == 1)
    old_print = fingerprint(migrated_dsn)
    assert old_print != new_print

    # fork: the child starts writing at once, without importing pandas again.
    context = multiprocessing.get_context("fork")
    rng = random.Random(20251103)
    seen = {"old": 0, "new": 0}
    for kill in range(KILLS):
        child = context.Process(
            target=write_forever, args=(migrated_dsn, [new, old], rebuild_min_rows), daemon=True
        )
        child.start()
        time.sleep(rng.uniform(0.0, 2.2 * write_seconds))
        assert child.pid is not None and child.is_alive(), "the writer died before it was killed"
        os.kill(child.pid, signal.SIGKILL)
        child.join()

        state = fingerprint(migrated_dsn)
        assert state in (old_print, new_print), f"kill {kill + 1}: the window holds a mixture"
        seen["old" if state == old_print else "new"] += 1

    print(f"{KILLS} kills, one write {write_seconds:.2f}s, window afterwards: {seen}")
