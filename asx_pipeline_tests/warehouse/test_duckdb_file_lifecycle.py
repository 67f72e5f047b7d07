"""The DuckDB file is complete and free between operations, though the process keeps DuckDB.

Each operation ATTACHes the file to the process's in-memory DuckDB and DETACHes it at the end
(duckdb_backend.py), which is much cheaper than a connection per operation. These tests pin down
what that must not change: after any operation the file alone holds every committed row (no .wal
beside it, so a copy of the file is a full copy), another process can open it, and a forked
process can use the warehouse and exit.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from asx_pipeline.warehouse.duckdb_backend import DuckDBWarehouse, _Engine
from asx_pipeline.warehouse.frames import WarehouseError, conform_frame
from asx_pipeline.warehouse.tables import DAILY_PRICES
from asx_pipeline_tests.warehouse.sample_frames import make_frame, window_of


def _write(warehouse: DuckDBWarehouse, days: int = 3) -> pd.DataFrame:
    window = window_of(0, days)
    frame = conform_frame(DAILY_PRICES, window, make_frame(DAILY_PRICES, window, rows_per_day=50))
    warehouse.replace_window(DAILY_PRICES, window, frame)
    return frame


def test_after_a_write_the_file_alone_holds_the_rows(tmp_path: Path) -> None:
    path = tmp_path / "warehouse.duckdb"
    frame = _write(DuckDBWarehouse(path))

    assert not path.with_name(path.name + ".wal").exists()
    copy = tmp_path / "copy.duckdb"
    shutil.copyfile(path, copy)
    read_back = DuckDBWarehouse(copy).read_window(DAILY_PRICES, window_of(0, 3))
    pd.testing.assert_frame_equal(read_back, frame)


def test_another_process_opens_the_file_between_operations(tmp_path: Path) -> None:
    path = tmp_path / "warehouse.duckdb"
    warehouse = DuckDBWarehouse(path)
    frame = _write(warehouse)
    warehouse.read_window(DAILY_PRICES, window_of(0, 3))

    # Without the lock file: DuckDB itself must not be holding the file either.
    count = subprocess.run(
        [sys.executable, "-c", "import duckdb, sys; c = duckdb.connect(sys.argv[1]); "
         "print(c.execute('SELECT count(*) FROM daily_prices').fetchone()[0])", str(path)],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout  # fmt: skip
    assert int(count) == len(frame)


def test_a_failed_write_leaves_the_file_usable_and_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "warehouse.duckdb"
    warehouse = DuckDBWarehouse(path)
    frame = _write(warehouse)
    duplicated = pd.concat([frame, frame], ignore_index=True)  # breaks the primary key

    with pytest.raises(WarehouseError):
        warehouse.replace_window(DAILY_PRICES, window_of(0, 3), duplicated)

    pd.testing.assert_frame_equal(warehouse.read_window(DAILY_PRICES, window_of(0, 3)), frame)
    with duckdb.connect(str(path)) as other:
        assert other.execute("SELECT count(*) FROM daily_prices").fetchone() == (len(frame),)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_uses_the_warehouse_and_exits(tmp_path: Path) -> None:
    path = tmp_path / "warehouse.duckdb"
    warehouse = DuckDBWarehouse(path)
    frame = _write(warehouse)  # the parent's DuckDB exists before the fork
    script = f"""
import os, sys
from asx_pipeline.warehouse.duckdb_backend import DuckDBWarehouse, _Engine
from asx_pipeline_tests.warehouse.sample_frames import window_of
from asx_pipeline.warehouse.tables import DAILY_PRICES
warehouse = DuckDBWarehouse({str(path)!r})
warehouse.read_window(DAILY_PRICES, window_of(0, 3))
child = os.fork()
if child == 0:
    rows = len(DuckDBWarehouse({str(path)!r}).read_window(DAILY_PRICES, window_of(0, 3)))
    print(rows, flush=True)
    sys.exit(0)  # a normal interpreter exit, with the parent's DuckDB inherited
_, status = os.waitpid(child, 0)
sys.exit(os.waitstatus_to_exitcode(status))
"""
    # In a subprocess with a timeout: a child stuck on the inherited DuckDB hangs, not the suite.
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
        cwd=Path(__file__).resolve().parents[2],
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) == len(frame)


def test_two_files_in_one_process_stay_apart(tmp_path: Path) -> None:
    first, second = DuckDBWarehouse(tmp_path / "a.duckdb"), DuckDBWarehouse(tmp_path / "b.duckdb")
    frame = _write(first)
    _write(second, days=1)

    assert len(first.read_window(DAILY_PRICES, window_of(0, 3))) == len(frame)
    assert len(second.read_window(DAILY_PRICES, window_of(0, 3))) == 50
    assert second.partition_values(DAILY_PRICES) == [window_of(0, 1).start]
    assert isinstance(first.partition_values(DAILY_PRICES)[0], dt.date)


def test_a_file_left_attached_by_an_interrupted_operation_is_freed_by_the_next(
    tmp_path: Path,
) -> None:
    path = tmp_path / "warehouse.duckdb"
    warehouse = DuckDBWarehouse(path)
    frame = _write(warehouse)
    # What an interrupt between ATTACH and DETACH (a signal while waiting for the engine's
    # lock) leaves behind: the file attached under some name, locked by this process's DuckDB.
    with _Engine.lock:
        _Engine._root(path).execute(f"ATTACH '{path}' AS interrupted")

    assert len(warehouse.read_window(DAILY_PRICES, window_of(0, 3))) == len(frame)
    with duckdb.connect(str(path)) as other:
        assert other.execute("SELECT count(*) FROM daily_prices").fetchone() == (len(frame),)


def test_an_error_inside_an_operation_is_reported_and_detaches_the_file(tmp_path: Path) -> None:
    path = tmp_path / "warehouse.duckdb"
    _write(DuckDBWarehouse(path))

    with (
        pytest.raises(duckdb.CatalogException, match="no_such_table"),
        _Engine.attached(path) as connection,
    ):
        connection.execute("SELECT * FROM no_such_table")

    attached = _Engine._root(path).execute(
        "SELECT count(*) FROM duckdb_databases() WHERE path = ?", [str(path)]
    ).fetchone()
    assert attached == (0,)
    assert not path.with_name(path.name + ".wal").exists()
