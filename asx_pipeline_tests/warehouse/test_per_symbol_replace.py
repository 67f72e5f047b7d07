"""Per-symbol tables: a write replaces only the rows it brings, on every backend.

The same calls on DuckDB, Postgres and the REST backend (its SQL functions on a real Postgres,
in one request and staged in batches) must leave the same rows: a ticker missing from a rerun,
or one session of it, keeps what was stored (daily_prices, daily_indicators); a symbol in the
frame has its window's actions replaced, a symbol absent from it keeps them (corporate_actions).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import respx

from asx_pipeline.warehouse.backend import WarehouseBackend
from asx_pipeline.warehouse.duckdb_backend import DuckDBWarehouse
from asx_pipeline.warehouse.frames import Window, conform_frame, empty_frame
from asx_pipeline.warehouse.postgres_backend import PostgresWarehouse
from asx_pipeline.warehouse.rest_backend import SupabaseRestWarehouse
from asx_pipeline.warehouse.tables import (
    CORPORATE_ACTIONS,
    DAILY_INDICATORS,
    DAILY_PRICES,
    TableSpec,
)
from asx_pipeline_tests.warehouse.fake_postgrest import KEY, URL, FakePostgrest
from asx_pipeline_tests.warehouse.sample_frames import window_of

WINDOW = window_of(0, 3)  # three sessions, 2025-11-03 .. 2025-11-05
NEIGHBOUR = window_of(3, 1)  # the session after it, never part of a write below
D0, D1, D2 = (WINDOW.start + dt.timedelta(days=offset) for offset in range(3))
D3 = NEIGHBOUR.start
SYMBOLS = ("BHP", "CBA", "CSL")
OLD, NEW = 1, 2
# A key tuple (in the table's key order) and the version of the values stored with it.
Versioned = tuple[tuple[Any, ...], int]


@pytest.fixture(params=["duckdb", "postgres", "rest", "rest-staged"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[WarehouseBackend]:
    if request.param == "duckdb":
        yield DuckDBWarehouse(tmp_path / "warehouse.duckdb")
        return
    dsn = request.getfixturevalue("migrated_dsn")
    if request.param == "postgres":
        yield PostgresWarehouse(dsn)
        return
    # One request per write (replace_<table>_window), or batches of two rows staged and then
    # committed (commit_<table>_window): each function carries its own copy of the delete.
    batch_rows = 500 if request.param == "rest" else 2
    with respx.mock(assert_all_called=False) as router:
        FakePostgrest(dsn).install(router)
        yield SupabaseRestWarehouse(URL, KEY, batch_rows=batch_rows, retry_wait_s=0.001)


def frame_of(table: TableSpec, keys: Iterable[tuple[Any, ...]], version: int) -> pd.DataFrame:
    """One row per key tuple; every other column holds a value that says `version`."""
    records = []
    for key in keys:
        record = dict(zip(table.key, key, strict=True))
        for position, column in enumerate(table.columns):
            if column.name not in record:
                record[column.name] = _value(column.type, version, position)
        records.append(record)
    return pd.DataFrame.from_records(records, columns=table.column_names)


def _value(column_type: str, version: int, position: int) -> object:
    if column_type == "double":
        return version + position / 100
    if column_type in ("bigint", "integer"):
        return version * 100 + position
    if column_type == "text":
        return f"v{version}"
    if column_type == "timestamp":
        return pd.Timestamp("2025-11-03T06:30:00Z") + pd.Timedelta(minutes=version)
    raise AssertionError(f"no test value for column type {column_type}")


def write(
    backend: WarehouseBackend, table: TableSpec, window: Window, rows: list[Versioned]
) -> int:
    """What the IO manager does with a frame of these rows: conform it, replace the window."""
    frame = pd.concat([frame_of(table, [key], version) for key, version in rows])
    return backend.replace_window(table, window, conform_frame(table, window, frame))


def assert_stored(
    backend: WarehouseBackend, table: TableSpec, window: Window, rows: list[Versioned]
) -> None:
    expected = pd.concat([frame_of(table, [key], version) for key, version in rows])
    pd.testing.assert_frame_equal(
        backend.read_window(table, window), conform_frame(table, window, expected)
    )


@pytest.mark.parametrize("table", [DAILY_PRICES, DAILY_INDICATORS], ids=lambda t: t.name)
def test_a_session_row_is_replaced_only_by_a_row_of_that_session_and_symbol(
    backend: WarehouseBackend, table: TableSpec
) -> None:
    stored = [((day, symbol), OLD) for day in (D0, D1, D2) for symbol in SYMBOLS]
    write(backend, table, WINDOW, stored)
    write(backend, table, NEIGHBOUR, [((D3, "BHP"), OLD), ((D3, "CSL"), OLD)])
    # The rerun: CSL failed, and BHP came back without its D1 bar (refused as junk, or left out).
    rerun = [((D0, "BHP"), NEW), ((D2, "BHP"), NEW)] + [
        ((day, "CBA"), NEW) for day in (D0, D1, D2)
    ]

    for _ in range(2):  # running it twice leaves the same rows
        assert write(backend, table, WINDOW, rerun) == 5

        assert_stored(backend, table, WINDOW, [
            ((D0, "BHP"), NEW), ((D0, "CBA"), NEW), ((D0, "CSL"), OLD),
            ((D1, "BHP"), OLD), ((D1, "CBA"), NEW), ((D1, "CSL"), OLD),
            ((D2, "BHP"), NEW), ((D2, "CBA"), NEW), ((D2, "CSL"), OLD),
        ])  # fmt: skip
        assert_stored(backend, table, NEIGHBOUR, [((D3, "BHP"), OLD), ((D3, "CSL"), OLD)])


def test_a_symbol_in_the_frame_has_its_window_of_actions_replaced(
    backend: WarehouseBackend,
) -> None:
    write(backend, CORPORATE_ACTIONS, WINDOW, [
        ((D0, "BHP", "dividend"), OLD), ((D2, "BHP", "split"), OLD),
        ((D1, "CBA", "dividend"), OLD),
        ((D1, "CSL", "dividend"), OLD), ((D2, "CSL", "split"), OLD),
    ])  # fmt: skip
    write(backend, CORPORATE_ACTIONS, NEIGHBOUR, [((D3, "BHP", "dividend"), OLD)])
    # The rerun: BHP restates its dividend and no longer has the split, CBA's dividend moved to
    # D2; CSL failed (or has no action in the window this time): it is not in the frame.
    rerun = [((D0, "BHP", "dividend"), NEW), ((D2, "CBA", "dividend"), NEW)]

    for _ in range(2):
        assert write(backend, CORPORATE_ACTIONS, WINDOW, rerun) == 2

        assert_stored(backend, CORPORATE_ACTIONS, WINDOW, [
            ((D0, "BHP", "dividend"), NEW),
            ((D1, "CSL", "dividend"), OLD),
            ((D2, "CBA", "dividend"), NEW), ((D2, "CSL", "split"), OLD),
        ])  # fmt: skip
        # BHP is in the frame, but its actions outside the window are not the window's.
        assert_stored(backend, CORPORATE_ACTIONS, NEIGHBOUR, [((D3, "BHP", "dividend"), OLD)])


@pytest.mark.parametrize(
    "table", [DAILY_PRICES, CORPORATE_ACTIONS, DAILY_INDICATORS], ids=lambda t: t.name
)
def test_an_empty_frame_keeps_every_stored_row(
    backend: WarehouseBackend, table: TableSpec
) -> None:
    extra = ("dividend",) if table is CORPORATE_ACTIONS else ()
    stored = [((D0, symbol, *extra), OLD) for symbol in SYMBOLS]
    write(backend, table, WINDOW, stored)

    assert backend.replace_window(table, WINDOW, empty_frame(table)) == 0

    assert_stored(backend, table, WINDOW, stored)
