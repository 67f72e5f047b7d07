"""One behaviour, every backend: the same calls leave the same rows in DuckDB and in Postgres."""

from __future__ import annotations

import datetime as dt
import multiprocessing
from pathlib import Path

import pandas as pd
import pytest

from asx_pipeline.warehouse.backend import WarehouseBackend
from asx_pipeline.warehouse.duckdb_backend import DuckDBWarehouse
from asx_pipeline.warehouse.frames import (
    FrameRefusedError,
    Window,
    coerce_types,
    conform_frame,
    empty_frame,
)
from asx_pipeline.warehouse.postgres_backend import REBUILD_MIN_ROWS, PostgresWarehouse
from asx_pipeline.warehouse.tables import ASX_SYMBOLS, DAILY_PRICES, TABLES, TableSpec
from asx_pipeline_tests.warehouse.sample_frames import make_frame, window_of

# Every table written by window; an append-only one is never replaced (test_append_partitions.py).
ALL_TABLES = [table for table in TABLES.values() if not table.append_only]


@pytest.fixture(params=["duckdb", "postgres", "postgres-rebuild"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> WarehouseBackend:
    if request.param == "duckdb":
        return DuckDBWarehouse(tmp_path / "warehouse.duckdb")
    # postgres-rebuild: every write of daily_prices that covers a month's stored rows rebuilds
    # the month and swaps it in, as a large one does (postgres_backend.py).
    rebuild_min_rows = 1 if request.param == "postgres-rebuild" else REBUILD_MIN_ROWS
    return PostgresWarehouse(
        request.getfixturevalue("migrated_dsn"), rebuild_min_rows=rebuild_min_rows
    )


def replace(
    backend: WarehouseBackend, table: TableSpec, window: Window, frame: pd.DataFrame
) -> int:
    """What the IO manager does: conform first (refusals happen here), then write."""
    return backend.replace_window(table, window, conform_frame(table, window, frame))


def expected(table: TableSpec, window: Window, frame: pd.DataFrame) -> pd.DataFrame:
    return conform_frame(table, window, frame)


@pytest.mark.parametrize("table", ALL_TABLES, ids=lambda t: t.name)
def test_replace_then_read_gives_exact_rows_and_dtypes(
    backend: WarehouseBackend, table: TableSpec
) -> None:
    window = window_of(0, 3)
    frame = make_frame(table, window, rows_per_day=6)

    assert replace(backend, table, window, frame) == len(frame) > 0

    pd.testing.assert_frame_equal(
        backend.read_window(table, window), expected(table, window, frame)
    )


def test_rerun_is_idempotent(backend: WarehouseBackend) -> None:
    window = window_of(0, 2)
    frame = make_frame(DAILY_PRICES, window, rows_per_day=5)

    replace(backend, DAILY_PRICES, window, frame)
    first = backend.read_window(DAILY_PRICES, window)
    replace(backend, DAILY_PRICES, window, frame)

    pd.testing.assert_frame_equal(backend.read_window(DAILY_PRICES, window), first)


def test_replacing_a_window_leaves_neighbouring_days_untouched(backend: WarehouseBackend) -> None:
    # asx_symbols replaces whole windows, so the middle also loses the row its frame lacks; the
    # per-symbol tables keep such rows (test_per_symbol_replace.py).
    table = ASX_SYMBOLS
    before, middle, after = window_of(0, 1), window_of(1, 2), window_of(3, 1)
    everything = window_of(0, 4)
    for window in (before, middle, after):
        replace(backend, table, window, make_frame(table, window, 4, version=1))

    new_middle = make_frame(table, middle, rows_per_day=3, version=2)
    replace(backend, table, middle, new_middle)

    assert len(backend.read_window(table, everything)) == 4 + 6 + 4
    pd.testing.assert_frame_equal(
        backend.read_window(table, before),
        expected(table, before, make_frame(table, before, 4, version=1)),
    )
    pd.testing.assert_frame_equal(
        backend.read_window(table, middle), expected(table, middle, new_middle)
    )
    pd.testing.assert_frame_equal(
        backend.read_window(table, after),
        expected(table, after, make_frame(table, after, 4, version=1)),
    )


def test_reading_returns_exactly_the_window(backend: WarehouseBackend) -> None:
    wide = window_of(0, 5)
    frame = make_frame(DAILY_PRICES, wide, rows_per_day=2)
    replace(backend, DAILY_PRICES, wide, frame)
    inner = window_of(1, 2)

    read = backend.read_window(DAILY_PRICES, inner, columns=["trade_date", "symbol", "close"])

    assert list(read.columns) == ["trade_date", "symbol", "close"]
    assert sorted(set(read["trade_date"])) == [inner.start, inner.start + dt.timedelta(days=1)]
    inside = expected(DAILY_PRICES, wide, frame)
    inside = inside[(inside.trade_date >= inner.start) & (inside.trade_date < inner.end)]
    pd.testing.assert_frame_equal(
        read, inside[["trade_date", "symbol", "close"]].reset_index(drop=True)
    )


def test_reading_an_empty_window_gives_typed_empty_frame(backend: WarehouseBackend) -> None:
    read = backend.read_window(DAILY_PRICES, window_of(40, 1))

    pd.testing.assert_frame_equal(read, empty_frame(DAILY_PRICES))


@pytest.mark.parametrize("problem", ["outside_window", "duplicate_key", "missing_column"])
def test_refused_frames_write_nothing(backend: WarehouseBackend, problem: str) -> None:
    window = window_of(0, 1)
    old = make_frame(DAILY_PRICES, window, rows_per_day=3, version=1)
    replace(backend, DAILY_PRICES, window, old)
    bad = make_frame(DAILY_PRICES, window, rows_per_day=3, version=2)
    if problem == "outside_window":
        bad.loc[1, "trade_date"] = window.end
    elif problem == "duplicate_key":
        bad.loc[2, "symbol"] = bad.loc[0, "symbol"]
    else:
        bad = bad.drop(columns=["close"])

    with pytest.raises(FrameRefusedError, match="daily_prices"):
        replace(backend, DAILY_PRICES, window, bad)

    pd.testing.assert_frame_equal(
        backend.read_window(DAILY_PRICES, window), expected(DAILY_PRICES, window, old)
    )


def test_an_empty_frame_clears_a_whole_window_table(backend: WarehouseBackend) -> None:
    # A per-symbol table keeps its rows instead (test_per_symbol_replace.py).
    table = ASX_SYMBOLS
    window, neighbour = window_of(0, 2), window_of(2, 1)
    replace(backend, table, window, make_frame(table, window, 3))
    replace(backend, table, neighbour, make_frame(table, neighbour, 3))

    assert replace(backend, table, window, empty_frame(table)) == 0

    assert backend.read_window(table, window).empty
    assert len(backend.read_window(table, neighbour)) == 3


def _write_window(path: str, first_day_offset: int, version: int) -> None:
    window = window_of(first_day_offset, 3)
    frame = make_frame(DAILY_PRICES, window, rows_per_day=400, version=version)
    for _ in range(5):  # several writes each, so the two processes really overlap
        replace(DuckDBWarehouse(path), DAILY_PRICES, window, frame)


def test_duckdb_two_processes_write_different_windows_at_once(tmp_path: Path) -> None:
    path = str(tmp_path / "warehouse.duckdb")
    context = multiprocessing.get_context("fork")
    workers = [
        context.Process(target=_write_window, args=(path, offset, version))
        for offset, version in ((0, 1), (10, 2))
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)

    assert [worker.exitcode for worker in workers] == [0, 0]
    warehouse = DuckDBWarehouse(path)
    for offset, version in ((0, 1), (10, 2)):
        window = window_of(offset, 3)
        pd.testing.assert_frame_equal(
            warehouse.read_window(DAILY_PRICES, window),
            expected(DAILY_PRICES, window, make_frame(DAILY_PRICES, window, 400, version=version)),
        )


@pytest.mark.parametrize(
    "values",
    [
        [dt.date(2024, 1, 2), None, dt.date(2024, 1, 1), dt.date(2024, 1, 2)],
        ["2024-03-01", "2024-03-04"],
        list(pd.to_datetime(["2024-03-01", "2024-03-01", None])),
        [],
    ],
    ids=["dates-and-none", "strings", "datetime64-with-nat", "empty"],
)
def test_dates_read_back_as_pandas_would_make_them(values: list[object]) -> None:
    """coerce_types builds one date object per distinct day: the same values, types and missing
    markers as `.dt.date`, in the frame's order and index."""
    index = range(10, 10 + len(values))  # not 0..n: the index must come through too
    frame = pd.DataFrame({"trade_date": pd.Series(values, dtype=object, index=index)})
    expected = pd.to_datetime(frame["trade_date"]).dt.date.astype("object")

    got = coerce_types(DAILY_PRICES, frame)["trade_date"]

    pd.testing.assert_series_equal(got, expected, check_exact=True)
    assert [repr(value) for value in got] == [repr(value) for value in expected]


@pytest.mark.parametrize(
    "column",
    [
        # As DuckDB reads a DATE back: datetime64[us], with a day before 1970 and a missing one.
        pd.Series(pd.to_datetime(["2024-03-01", None, "1969-12-31", "2024-03-01"])).astype(
            "datetime64[us]"
        ),
        # A stamp with a time of day, in a zone: `.date()` is the day where the stamp is.
        pd.Series(pd.to_datetime(["2025-01-02 23:30", "1960-03-04 00:15"])).dt.tz_localize(
            "Australia/Sydney"
        ),
    ],
    ids=["datetime64-us-read-back", "zoned-stamps"],
)
def test_typed_date_columns_read_back_as_pandas_would_make_them(column: pd.Series) -> None:
    """A column that is datetime64 already takes coerce_types' shortcut (no re-parsing): the
    same values and missing markers as `.dt.date`."""
    frame = pd.DataFrame({"trade_date": column.set_axis(range(5, 5 + len(column)))})
    expected = frame["trade_date"].dt.date.astype("object")

    got = coerce_types(DAILY_PRICES, frame)["trade_date"]

    pd.testing.assert_series_equal(got, expected, check_exact=True)
    assert [repr(value) for value in got] == [repr(value) for value in expected]


def test_zoned_timestamps_read_back_in_utc_nanoseconds() -> None:
    """`ingested_at` as DuckDB reads it back (µs, UTC) and as a caller may pass it (another
    zone): the same instants, as datetime64[ns, UTC]."""
    stamps = pd.Series(pd.to_datetime(["2025-11-14 06:30:00.123456", None], utc=True))
    for column in (stamps.dt.as_unit("us"), stamps.dt.tz_convert("Australia/Sydney")):
        got = coerce_types(DAILY_PRICES, pd.DataFrame({"ingested_at": column}))["ingested_at"]
        assert str(got.dtype) == "datetime64[ns, UTC]"
        pd.testing.assert_series_equal(got, stamps.dt.as_unit("ns"), check_names=False)
