"""deploy/dagster.yaml, as is, keeps Dagster's runs and event logs in Postgres.

An instance is loaded from a DAGSTER_HOME holding an exact copy of the file, with the DAGSTER_PG_*
variables pointing at a fresh database of the test server. A partition of the core assets is
materialised on it; the run and its materialisations are then found through the instance API
and, directly, in the `runs` and `event_logs` tables of that database.
"""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import psycopg
import pytest
import yaml
from dagster import (
    AssetKey,
    AssetRecordsFilter,
    DagsterEventType,
    DagsterInstance,
    materialize,
)
from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage
from psycopg.conninfo import conninfo_to_dict

from asx_pipeline.assets.prices import market_bars
from asx_pipeline.assets.symbols import asx_symbols
from asx_pipeline.calendar import partition_key
from asx_pipeline.pools import ensure_yahoo_pool
from asx_pipeline.sources.resource import MarketDataResource
from asx_pipeline.warehouse.io_manager import warehouse_resources
from asx_pipeline.warehouse.resources import DuckDBWarehouseResource
from asx_pipeline_tests.assets.conftest import failure_text
from asx_pipeline_tests.test_pools import assert_wakes_the_waiter_only

pytestmark = pytest.mark.postgres

DEPLOY_DAGSTER_YAML = Path(__file__).resolve().parents[2] / "deploy" / "dagster.yaml"
LOCAL_DAGSTER_YAML = Path(__file__).resolve().parents[2] / "dagster.yaml"
DAY = dt.date(2025, 11, 20)
CORE_ASSETS = {"asx_symbols", "daily_prices", "corporate_actions"}


@pytest.fixture
def postgres_instance(postgres_dsn, tmp_path, monkeypatch):
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copyfile(DEPLOY_DAGSTER_YAML, home / "dagster.yaml")
    params = conninfo_to_dict(postgres_dsn)
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("DAGSTER_PG_HOST", str(params.get("host") or "127.0.0.1"))
    monkeypatch.setenv("DAGSTER_PG_PORT", str(params.get("port") or 5432))
    monkeypatch.setenv("DAGSTER_PG_USER", str(params.get("user") or "postgres"))
    monkeypatch.setenv("DAGSTER_PG_PASSWORD", str(params.get("password") or ""))
    monkeypatch.setenv("DAGSTER_PG_DB", str(params["dbname"]))
    with DagsterInstance.get() as instance:
        yield instance


def test_production_settings_match_the_local_ones() -> None:
    deploy = yaml.safe_load(DEPLOY_DAGSTER_YAML.read_text())
    local = yaml.safe_load(LOCAL_DAGSTER_YAML.read_text())
    assert deploy["telemetry"] == {"enabled": False}
    # The local instance class only changes the storage used when none is named (SQLite).
    assert local.pop("instance_class") == {
        "module": "asx_pipeline.instance_storage",
        "class": "LocalInstance",
    }
    for section in set(local) - {"storage"}:
        assert deploy.get(section) == local[section], section
    assert set(deploy) - set(local) == {"storage"}
    # Every connection detail comes from the environment, none is written in the file.
    settings = deploy["storage"]["postgres"]["postgres_db"]
    assert settings.pop("scheme") == "postgresql+psycopg2"
    assert {key: value["env"] for key, value in settings.items()} == {
        "hostname": "DAGSTER_PG_HOST",
        "port": "DAGSTER_PG_PORT",
        "username": "DAGSTER_PG_USER",
        "password": "DAGSTER_PG_PASSWORD",
        "db_name": "DAGSTER_PG_DB",
    }


def test_runs_and_materialisations_are_stored_in_postgres(
    postgres_instance: DagsterInstance, postgres_dsn: str, tmp_path: Path
) -> None:
    instance = postgres_instance
    assert isinstance(instance.run_storage, PostgresRunStorage)
    assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
    assert instance.run_coordinator is not None
    assert instance.run_retries_enabled and instance.run_retries_max_retries == 2

    result = materialize(
        [asx_symbols, market_bars],
        resources={
            "market_data": MarketDataResource(source="sample", universe="top:5"),
            **warehouse_resources(DuckDBWarehouseResource(path=str(tmp_path / "warehouse.duckdb"))),
        },
        partition_key=partition_key(DAY),
        instance=instance,
        raise_on_error=False,
    )
    assert result.success, failure_text(result)
    key = partition_key(DAY)

    # Through the instance API (which reads Postgres: the storage classes were checked above).
    run = instance.get_run_by_id(result.run_id)
    assert run is not None and run.is_success
    assert run.tags["dagster/partition"] == key
    for name in CORE_ASSETS:
        records = instance.fetch_materializations(
            AssetRecordsFilter(asset_key=AssetKey(name), asset_partitions=[key]), limit=10
        ).records
        assert [r.run_id for r in records] == [result.run_id], name
        materialization = records[0].asset_materialization
        assert materialization is not None and materialization.partition == key
        # top:5 on one session: five symbols, five bars (that day has no corporate action).
        expected_rows = 0 if name == "corporate_actions" else 5
        assert materialization.metadata["dagster/row_count"].value == expected_rows, name

    # And straight from the tables of that database.
    with psycopg.connect(postgres_dsn) as conn:
        runs = conn.execute(
            "SELECT run_id, status, partition FROM runs WHERE run_id = %s", [result.run_id]
        ).fetchall()
        assert runs == [(result.run_id, "SUCCESS", key)]
        stored = conn.execute(
            "SELECT asset_key, partition FROM event_logs "
            "WHERE run_id = %s AND dagster_event_type = 'ASSET_MATERIALIZATION' ORDER BY asset_key",
            [result.run_id],
        ).fetchall()
        assert stored == [(f'["{name}"]', key) for name in sorted(CORE_ASSETS)]
        kinds = {
            row[0]
            for row in conn.execute(
                "SELECT DISTINCT dagster_event_type FROM event_logs WHERE run_id = %s",
                [result.run_id],
            )
        }
        run_events = {DagsterEventType.RUN_START, DagsterEventType.RUN_SUCCESS}
        assert {e.value for e in run_events} | {"STEP_SUCCESS"} <= kinds


def test_a_step_left_waiting_gets_the_free_slot_on_postgres_storage(postgres_instance):
    # Dagster's lost wake-up is in the SQL storage both backends share (see test_pools.py).
    ensure_yahoo_pool(postgres_instance)
    assert_wakes_the_waiter_only(postgres_instance)
