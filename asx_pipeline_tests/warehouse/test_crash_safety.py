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
from asx_pipeline.warehouse.postgres_backend import PostgresWarehouse
from asx_pipeline.warehouse.tables import DAILY_PRICES
from asx_pipeline_tests.warehouse.sample_frames import make_frame, window_of

KILLS = 20
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


def write_forever(dsn: str, frames: list[pd.DataFrame]) -> None:
    """Alternate the two versions until killed, so a kill can land anywhere in a transaction."""
    warehouse = PostgresWarehouse(dsn, check_schema_on_first_use=False)
    while True:
        for frame in frames:
            warehouse.replace_window(DAILY_PRICES, WINDOW, frame)


@pytest.mark.slow
def test_sigkill_during_window_replace_leaves_old_or_new_rows(migrated_dsn: str) -> None:
    old, new = (
        conform_frame(DAILY_PRICES, WINDOW, make_frame(DAILY_PRICES, WINDOW, per_day, version))
        for per_day, version in ((OLD_ROWS_PER_DAY, 1), (NEW_ROWS_PER_DAY, 2))
    )
    warehouse = PostgresWarehouse(migrated_dsn)
    warehouse.replace_window(DAILY_PRICES, WINDOW, new)
    pd.testing.assert_frame_equal(warehouse.read_window(DAILY_PRICES, WINDOW), new)
    new_print = fingerprint(migrated_dsn)
    # Timed over stored rows, as the writer below always writes (staged and merged), not the
    # first write into the empty window (a plain COPY, quicker): the kills span its writes.
    started = time.perf_counter()
    warehouse.replace_window(DAILY_PRICES, WINDOW, old)
    write_seconds = time.perf_counter() - started
    old_print = fingerprint(migrated_dsn)
    assert old_print != new_print

    # fork: the child starts writing at once, without importing pandas again.
    context = multiprocessing.get_context("fork")
    rng = random.Random(20251103)
    seen = {"old": 0, "new": 0}
    for kill in range(KILLS):
        child = context.Process(target=write_forever, args=(migrated_dsn, [new, old]), daemon=True)
        child.start()
        time.sleep(rng.uniform(0.0, 2.2 * write_seconds))
        assert child.pid is not None and child.is_alive(), "the writer died before it was killed"
        os.kill(child.pid, signal.SIGKILL)
        child.join()

        state = fingerprint(migrated_dsn)
        assert state in (old_print, new_print), f"kill {kill + 1}: the window holds a mixture"
        seen["old" if state == old_print else "new"] += 1

    print(f"{KILLS} kills, one write {write_seconds:.2f}s, window afterwards: {seen}")
