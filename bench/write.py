"""Window writes on the local Postgres: COPY vs batched upserts vs the REST backend's requests.

    .venv/bin/python bench/write.py [--sizes 100000 1000000] [--dsn postgresql://...]

For each size, in a throwaway database with the migrations applied, it times:
  * copy:      PostgresWarehouse.replace_window into an empty window (one transaction: lock,
               find the window empty, binary COPY straight into the table, rows converted in
               chunks while COPY streams);
  * replace:   replace_window over that full window, bringing the same rows or every row
               changed (a refetch of daily_prices: a new ingested_at on every bar). The window
               covers every month it touches, so each month is rebuilt as a new table (COPY,
               the stored rows it does not bring, indexes) and swapped in for its partition.
               Each starts from the window just loaded by a timed empty-window copy (then VACUUM
               ANALYZE, as autovacuum would do), and prints its rate as a multiple of that copy's:
               the ratio compares two writes of one run;
  * merge:     the same copies and replaces the way smaller writes go (COPY into a staging
               table, MERGE: a stored row with the same values left alone, a changed one
               updated in place), which is how every replace went before the month rebuild;
  * before:    the same copies and replaces the way replace_window wrote them before staging
               (one transaction: DELETE the frame's keys, binary COPY into the table), in the
               same run (into the month partitions that replace_window created);
  * upsert:    what a simple Supabase job runner does, batched `INSERT ... ON CONFLICT DO UPDATE`
               of 1,000 rows per statement (neither atomic nor able to remove stale rows);
  * rest:      the SQL calls the REST backend makes (`stage_window_batch` per 500 rows, then
               `commit_daily_prices_window`), sent straight to Postgres so HTTP is left out.
It prints rows/s, the round trips each needs, and the time projected at a 30 ms round trip (a home
lab talking to Supabase's Sydney region): measured time + round trips x 30 ms. Bandwidth and TLS
are not modelled. It asserts nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import math
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial

import numpy as np
import pandas as pd
import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from asx_pipeline.warehouse.frames import Window, conform_frame
from asx_pipeline.warehouse.migrations import apply_migrations
from asx_pipeline.warehouse.postgres_backend import (
    PG_COPY_TYPES,
    PostgresWarehouse,
    copy_rows,
    in_copy_order,
)
from asx_pipeline.warehouse.postgres_sql import python_values, window_lock_key
from asx_pipeline.warehouse.rest_backend import json_rows
from asx_pipeline.warehouse.tables import DAILY_PRICES

SYMBOLS_PER_DAY = 2000
UPSERT_BATCH = 1000
REST_BATCH = 500
PROJECTED_RTT_S = 0.030
# The same for any row count (COPY streams its rows without waiting for answers). Into an empty
# window: BEGIN, SET statement_timeout, SET TimeZone, lock + look, create the months' partitions,
# COPY, COMMIT. Over stored rows whose months the window covers: the same, less the COPY, plus
# the look at the first and last months, the new tables, one COPY per month, the rest of the new
# tables and the swap. Before: BEGIN, the two SETs, lock, DELETE, COPY, COMMIT.
COPY_ROUND_TRIPS = 7
REPLACE_ROUND_TRIPS_BESIDES_MONTHS = 10
# Merging instead: BEGIN, the two SETs, lock + look, partitions, SET work_mem + CREATE the stage,
# COPY, DELETE + MERGE, COMMIT.
MERGE_ROUND_TRIPS = 9
BEFORE_ROUND_TRIPS = 7


@dataclass
class Result:
    method: str
    rows: int
    seconds: float
    round_trips: int
    # The empty-window copy this write is compared with (timed just before it, in this run).
    baseline: Result | None = None

    def line(self) -> str:
        projected = self.seconds + self.round_trips * PROJECTED_RTT_S
        ratio = (
            f"  {self.baseline.seconds / self.seconds:4.2f}x the copy before it"
            if self.baseline
            else ""
        )
        return (
            f"{self.method:<36} {self.rows:>9,} rows {self.seconds:>8.2f} s "
            f"{self.rows / self.seconds:>11,.0f} rows/s {self.round_trips:>7,} round trips "
            f"{projected:>9.1f} s at 30 ms{ratio}"
        )


def make_prices(rows: int) -> tuple[Window, pd.DataFrame]:
    days = math.ceil(rows / SYMBOLS_PER_DAY)
    start = dt.date(2020, 1, 1)
    window = Window(start, start + dt.timedelta(days=days))
    rng = np.random.default_rng(7)
    frame = pd.DataFrame(
        {
            "trade_date": np.repeat([start + dt.timedelta(days=d) for d in range(days)],
                                    SYMBOLS_PER_DAY)[:rows],
            "symbol": np.tile([f"S{i:04d}" for i in range(SYMBOLS_PER_DAY)], days)[:rows],
            **{name: rng.uniform(1, 100, rows).round(4)
               for name in ("open", "high", "low", "close", "adj_close")},
            "volume": rng.integers(0, 10**8, rows),
            "source": "bench",
            "ingested_at": pd.Timestamp("2025-11-03T06:30:00Z"),
        }
    )  # fmt: skip
    return window, conform_frame(DAILY_PRICES, window, frame)


def every_row_changed(frame: pd.DataFrame) -> pd.DataFrame:
    """The same bars fetched again a day later: only ingested_at differs, on every row."""
    return frame.assign(ingested_at=frame["ingested_at"] + pd.Timedelta(days=1))


def timed(
    method: str,
    rows: int,
    round_trips: int,
    work: Callable[[], object],
    baseline: Result | None = None,
) -> Result:
    started = time.perf_counter()
    work()
    return Result(method, rows, time.perf_counter() - started, round_trips, baseline)


def truncate(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("TRUNCATE public.daily_prices")
        vacuum(conn)


def vacuum(conn: psycopg.Connection) -> None:
    # What autovacuum would have done by the time of a rerun (it is off on some test servers),
    # and a checkpoint so that no write pays for the previous one's dirty pages (a role without
    # pg_checkpoint goes without).
    conn.execute("VACUUM ANALYZE public.daily_prices")
    with contextlib.suppress(psycopg.errors.InsufficientPrivilege):
        conn.execute("CHECKPOINT")


def replace_before(dsn: str, window: Window, frame: pd.DataFrame) -> None:
    """The replace before the stage and MERGE: DELETE the frame's keys, COPY its rows in."""
    ordered = in_copy_order(DAILY_PRICES, frame)
    dates, symbols = (
        python_values(ordered[name], DAILY_PRICES.column(name).type) for name in DAILY_PRICES.key
    )
    columns = ", ".join(DAILY_PRICES.column_names)
    with psycopg.connect(dsn, autocommit=True) as conn, conn.transaction():
        conn.execute("SET LOCAL statement_timeout = 600000")
        conn.execute("SET LOCAL TimeZone = 'UTC'")
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [window_lock_key(DAILY_PRICES)])
        conn.execute(
            "DELETE FROM public.daily_prices AS t "
            "USING unnest(%b::date[], %b::text[]) AS s(trade_date, symbol) "
            "WHERE t.trade_date >= %s AND t.trade_date < %s "
            "AND t.trade_date = s.trade_date AND t.symbol = s.symbol",
            [dates, symbols, window.start, window.end],
        )
        copy_in = f"COPY public.daily_prices ({columns}) FROM STDIN (FORMAT BINARY)"
        with conn.cursor() as cursor, cursor.copy(copy_in) as copy:
            copy.set_types([PG_COPY_TYPES[c.type] for c in DAILY_PRICES.columns])
            for row in copy_rows(DAILY_PRICES, ordered):
                copy.write_row(row)


def upsert_statement(rows: int) -> bytes:
    """One multi-row INSERT ... ON CONFLICT DO UPDATE for `rows` rows, rendered once."""
    names = DAILY_PRICES.column_names
    updates = ", ".join(f"{n} = EXCLUDED.{n}" for n in names if n not in DAILY_PRICES.key)
    row = "(" + ", ".join(["%s"] * len(names)) + ")"
    return (
        f"INSERT INTO public.daily_prices ({', '.join(names)}) VALUES "
        f"{', '.join([row] * rows)} ON CONFLICT (trade_date, symbol) DO UPDATE SET {updates}"
    ).encode()


def upsert(dsn: str, frame: pd.DataFrame) -> None:
    rows = copy_rows(DAILY_PRICES, frame)
    full = upsert_statement(UPSERT_BATCH)
    with psycopg.connect(dsn, autocommit=True) as conn:
        for start in range(0, len(rows), UPSERT_BATCH):
            batch = rows[start : start + UPSERT_BATCH]
            statement = full if len(batch) == UPSERT_BATCH else upsert_statement(len(batch))
            conn.execute(statement, [value for row in batch for value in row])


def rest_pattern(dsn: str, window: Window, frame: pd.DataFrame) -> None:
    rows = json_rows(DAILY_PRICES, frame)
    upload = str(uuid.uuid4())
    batches = [rows[i : i + REST_BATCH] for i in range(0, len(rows), REST_BATCH)]
    with psycopg.connect(dsn, autocommit=True) as conn:
        for number, batch in enumerate(batches):
            conn.execute(
                "SELECT public.stage_window_batch(%s, 'daily_prices', %s, %s, %s, %s)",
                [upload, window.start, window.end, number, json.dumps(batch)],
            )
        conn.execute(
            "SELECT public.commit_daily_prices_window(%s, %s, %s, %s)",
            [upload, window.start, window.end, len(batches)],
        )


@contextmanager
def throwaway_database(admin_dsn: str) -> Iterator[str]:
    name = f"asx_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        dsn = make_conninfo(admin_dsn, dbname=name)
        apply_migrations(dsn)
        yield dsn
    finally:
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


def bench_size(dsn: str, rows: int, *, copy_only: bool = False) -> list[Result]:
    window, frame = make_prices(rows)
    warehouse = PostgresWarehouse(dsn)
    # Once per process, not per write: kept out of the timings.
    warehouse.check_schema()
    # The row-by-row path that smaller writes take: what the rebuild replaced for large ones.
    merging = PostgresWarehouse(dsn, rebuild_min_rows=rows + 1, check_schema_on_first_use=False)
    changed = every_row_changed(frame)
    results = []

    # (label prefix, write, round trips into an empty window, round trips over stored rows)
    months = len({(day.year, day.month) for day in frame["trade_date"]})
    writers: list[tuple[str, Callable[[pd.DataFrame], object], int, int]] = [
        ("", lambda new: warehouse.replace_window(DAILY_PRICES, window, new),
         COPY_ROUND_TRIPS, REPLACE_ROUND_TRIPS_BESIDES_MONTHS + months),
        ("merge: ", lambda new: merging.replace_window(DAILY_PRICES, window, new),
         COPY_ROUND_TRIPS, MERGE_ROUND_TRIPS),
        ("before: ", lambda new: replace_before(dsn, window, new),
         BEFORE_ROUND_TRIPS, BEFORE_ROUND_TRIPS),
    ]  # fmt: skip
    for prefix, write, copy_trips, replace_trips in writers:
        for label, new in (("same rows", frame), ("every row changed", changed)):
            # Each replace starts from a window just written by a timed copy into the empty
            # table, and is compared with that copy.
            truncate(dsn)
            copied = timed(f"{prefix}copy (empty window)", rows, copy_trips, partial(write, frame))
            with psycopg.connect(dsn, autocommit=True) as conn:
                vacuum(conn)
            replaced = timed(
                f"{prefix}replace ({label})", rows, replace_trips, partial(write, new), copied
            )
            results += [copied, replaced]
    if copy_only:
        return results
    truncate(dsn)
    results.append(
        timed("upsert (empty window)", rows, math.ceil(rows / UPSERT_BATCH),
              lambda: upsert(dsn, frame))
    )  # fmt: skip
    truncate(dsn)
    results.append(
        timed("rest (empty window)", rows, math.ceil(rows / REST_BATCH) + 1,
              lambda: rest_pattern(dsn, window, frame))
    )  # fmt: skip
    assert len(warehouse.read_window(DAILY_PRICES, window, ["trade_date"])) == rows
    return results


def table_size(dsn: str) -> str:
    with psycopg.connect(dsn) as conn:
        # Its month partitions, with their indexes: the partitioned table itself holds nothing.
        row = conn.execute(
            "SELECT pg_size_pretty(sum(pg_total_relation_size(relid))) "
            "FROM pg_partition_tree('public.daily_prices')"
        ).fetchone()
    return row[0] if row else "?"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument(
        "--dsn",
        default="postgresql://postgres@127.0.0.1:5432/postgres",
        help="a role that may CREATE DATABASE; a throwaway database is used",
    )
    parser.add_argument(
        "--copy-only",
        action="store_true",
        help="only the copies and replaces (skip the slow upsert and REST patterns)",
    )
    args = parser.parse_args()
    with throwaway_database(args.dsn) as dsn:
        with psycopg.connect(dsn, autocommit=True) as conn:
            version = conn.execute("SHOW server_version").fetchone()
        print(
            f"PostgreSQL {version[0] if version else '?'} on {PostgresWarehouse(dsn).describe()}"
        )
        for rows in args.sizes:
            for result in bench_size(dsn, rows, copy_only=args.copy_only):
                print(result.line(), flush=True)
            print(f"daily_prices after the last write: {table_size(dsn)}", flush=True)


if __name__ == "__main__":
    main()
