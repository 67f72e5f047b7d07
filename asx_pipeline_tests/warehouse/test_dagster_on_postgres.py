"""The core assets through Dagster's `materialize` with the warehouse on a real Postgres.

The same range goes through DuckDB too: both backends must hold identical rows (ingested_at aside,
it is the time of the run).
"""

from __future__ import annotations

import datetime as dt
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
from dagster import DagsterInstance, materialize

from asx_pipeline.assets.prices import market_bars
from asx_pipeline.assets.symbols import asx_symbols
from asx_pipeline.calendar import range_tags, sessions_between
from asx_pipeline.sources.resource import MarketDataResource
from asx_pipeline.warehouse.backend import WarehouseBackend
from asx_pipeline.warehouse.frames import Window
from asx_pipeline.warehouse.io_manager import warehouse_resources
from asx_pipeline.warehouse.migrations import MIGRATIONS_DIR, apply_migrations
from asx_pipeline.warehouse.resources import (
    DuckDBWarehouseResource,
    PostgresWarehouseResource,
    WarehouseResource,
)
from asx_pipeline.warehouse.tables import TABLES
from asx_pipeline_tests.assets.conftest import failure_text

pytestmark = pytest.mark.postgres

FIRST, LAST = dt.date(2025, 10, 1), dt.date(2025, 11, 28)
WINDOW = Window(FIRST, LAST + dt.timedelta(days=1))
CORE_TABLES = ("asx_symbols", "daily_prices", "corporate_actions")
UNIVERSE = 10


def run_core(warehouse: WarehouseResource, instance: DagsterInstance | None = None):
    return materialize(
        [asx_symbols, market_bars],
        resources={
            "market_data": MarketDataResource(source="sample", universe=f"top:{UNIVERSE}"),
            **warehouse_resources(warehouse),
        },
        tags=range_tags(FIRST, LAST),
        instance=instance or DagsterInstance.ephemeral(),
        raise_on_error=False,
    )


def read_core(warehouse: WarehouseResource) -> dict[str, pd.DataFrame]:
    backend: WarehouseBackend = warehouse.open()
    return {name: backend.read_window(TABLES[name], WINDOW) for name in CORE_TABLES}


def without_ingested_at(frames: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    return {
        name: frame.drop(columns=["ingested_at"], errors="ignore") for name, frame in frames.items()
    }


@pytest.fixture
def postgres_io(postgres_dsn: str) -> WarehouseResource:
    assert apply_migrations(postgres_dsn), "a fresh database gets every migration"
    return PostgresWarehouseResource(url=postgres_dsn)


def test_core_assets_on_postgres_match_duckdb_exactly(postgres_io, tmp_path: Path) -> None:
    result = run_core(postgres_io)
    assert result.success, failure_text(result)
    stored = read_core(postgres_io)

    sessions = sessions_between(FIRST, LAST)
    assert len(sessions) == 43
    assert len(stored["asx_symbols"]) == 43 * UNIVERSE
    assert len(stored["daily_prices"]) == 43 * UNIVERSE
    assert stored["daily_prices"]["trade_date"].min() == FIRST
    assert stored["daily_prices"]["trade_date"].max() == LAST
    assert set(stored["daily_prices"]["source"]) == {"sample"}
    assert not stored["corporate_actions"].empty
    # Timestamps come back as instants; the run wrote them just now.
    ingested = stored["daily_prices"]["ingested_at"]
    assert ingested.dt.tz is not None
    assert (pd.Timestamp.now(tz="UTC") - ingested.max()) < pd.Timedelta(minutes=10)

    duckdb_io = DuckDBWarehouseResource(path=str(tmp_path / "w.duckdb"))
    assert run_core(duckdb_io).success
    on_duckdb = without_ingested_at(read_core(duckdb_io))
    for name, frame in without_ingested_at(stored).items():
        pd.testing.assert_frame_equal(frame, on_duckdb[name], check_exact=True, obj=name)


def test_rerun_on_postgres_gives_identical_rows(postgres_io) -> None:
    assert run_core(postgres_io).success
    first = read_core(postgres_io)
    assert run_core(postgres_io).success
    second = read_core(postgres_io)
    for name in ("asx_symbols", "corporate_actions"):
        pd.testing.assert_frame_equal(second[name], first[name], check_exact=True, obj=name)
    # Every row again, only the ingestion time moved on.
    pd.testing.assert_frame_equal(
        without_ingested_at(second)["daily_prices"],
        without_ingested_at(first)["daily_prices"],
        check_exact=True,
    )
    assert (second["daily_prices"]["ingested_at"] >= first["daily_prices"]["ingested_at"]).all()


def test_database_behind_the_migrations_fails_saying_to_migrate(
    postgres_dsn: str, tmp_path: Path
) -> None:
    # The database has seen only the first migration file.
    older = tmp_path / "migrations"
    older.mkdir()
    first_file = sorted(MIGRATIONS_DIR.glob("*.sql"))[0]
    shutil.copy(first_file, older / first_file.name)
    assert apply_migrations(postgres_dsn, older) == [first_file.name]

    result = run_core(PostgresWarehouseResource(url=postgres_dsn))
    assert not result.success
    message = failure_text(result)
    assert "run `asx-pipeline db migrate`" in message
    assert "pending migration(s)" in message
    assert "0002_" in message
    # Refused at once: no retry can migrate the database, so the assets' RetryPolicy stays out.
    retries = [e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]
    assert retries == []


@pytest.fixture
def cli_on(monkeypatch):
    """Runs `asx-pipeline ...` in-process with SUPABASE_DB_URL set to a test database."""
    from asx_pipeline import cli
    from asx_pipeline.settings import get_settings

    def run(dsn: str, *args: str) -> int:
        monkeypatch.setenv("SUPABASE_DB_URL", dsn)
        get_settings.cache_clear()
        return cli.main(list(args))

    yield run
    get_settings.cache_clear()


def test_db_status_lists_pending_until_db_migrate(cli_on, postgres_dsn: str, capsys) -> None:
    files = [path.name for path in sorted(MIGRATIONS_DIR.glob("*.sql"))]

    assert cli_on(postgres_dsn, "db", "status") == 1
    out = capsys.readouterr().out
    assert [line.split()[0] for line in out.splitlines()[1:-1]] == files
    assert out.count("PENDING") == len(files)
    assert out.splitlines()[-1] == f"{len(files)} pending: run `asx-pipeline db migrate`."

    assert cli_on(postgres_dsn, "db", "migrate") == 0
    assert capsys.readouterr().out.strip() == "Applied: " + ", ".join(files)

    assert cli_on(postgres_dsn, "db", "status") == 0
    out = capsys.readouterr().out
    assert "PENDING" not in out
    assert out.count(" applied ") == len(files)
    assert out.splitlines()[-1] == "Up to date."

    result = run_core(PostgresWarehouseResource(url=postgres_dsn))
    assert result.success, failure_text(result)


def test_cli_summaries_read_the_postgres_warehouse(
    postgres_io, postgres_dsn: str, monkeypatch
) -> None:
    # The CLI reads the warehouse outside a run, so its secrets must be resolved, not EnvVars.
    from asx_pipeline.runs import summarise_tables
    from asx_pipeline.settings import get_settings

    assert run_core(postgres_io).success
    monkeypatch.setenv("SUPABASE_DB_URL", postgres_dsn)
    get_settings.cache_clear()
    try:
        summary = summarise_tables(FIRST, LAST, CORE_TABLES)
    finally:
        get_settings.cache_clear()
    sessions = len(sessions_between(FIRST, LAST))
    assert re.search(rf"daily_prices +{sessions * UNIVERSE} rows +{UNIVERSE} symbols", summary)
    assert re.search(rf"asx_symbols +{sessions * UNIVERSE} rows +{UNIVERSE} symbols", summary)
    assert "Warehouse: Postgres" in summary
