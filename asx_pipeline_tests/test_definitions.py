"""The code location loads, every daily asset backfills in one run, and the shell commands work."""

import datetime as dt
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from dagster import BackfillPolicy, DagsterInstance

from asx_pipeline.configured import DAILY_PARTITIONS
from asx_pipeline.warehouse.duckdb_backend import DuckDBWarehouse
from asx_pipeline.warehouse.frames import Window
from asx_pipeline.warehouse.tables import DAILY_PRICES

REPO = Path(__file__).resolve().parents[1]
DAGSTER = Path(sys.executable).with_name("dagster")
ASX_PIPELINE = Path(sys.executable).with_name("asx-pipeline")


def test_definitions_load_and_every_daily_asset_is_one_run_per_backfill() -> None:
    from asx_pipeline.definitions import defs

    graph = defs.resolve_asset_graph()
    keys = {key.to_user_string() for key in graph.get_all_asset_keys()}
    assert {"asx_symbols", "daily_prices", "corporate_actions"} <= keys
    # Every asset is a daily table: one partition per session, and a backfill is one run.
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        assert node.partitions_def == DAILY_PARTITIONS, key
        assert node.backfill_policy == BackfillPolicy.single_run(), key
    assert defs.resolve_job_def("asx_core") is not None


def _environment(tmp_path: Path) -> dict[str, str]:
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text((REPO / "dagster.yaml").read_text())
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SUPABASE_", "ASX_"))}
    env.update(
        DAGSTER_HOME=str(home),
        ASX_MARKET_DATA="sample",
        ASX_DATA_DIR=str(tmp_path / "data"),
        ASX_UNIVERSE="top:10",
    )
    return env


@pytest.mark.slow
def test_dagster_cli_partition_range_is_one_run(tmp_path) -> None:
    env = _environment(tmp_path)
    completed = subprocess.run(
        [str(DAGSTER), "asset", "materialize", "-m", "asx_pipeline.definitions",
         "--select", "asx_symbols,daily_prices,corporate_actions",
         "--partition-range", "2025-10-01...2025-11-28"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    os.environ["DAGSTER_HOME"], previous = env["DAGSTER_HOME"], os.environ.get("DAGSTER_HOME")
    try:
        with DagsterInstance.get() as instance:
            runs = instance.get_run_records()
            assert len(runs) == 1
            assert runs[0].dagster_run.tags["dagster/asset_partition_range_start"] == "2025-10-01"
            assert runs[0].dagster_run.tags["dagster/asset_partition_range_end"] == "2025-11-28"
    finally:
        if previous is None:
            del os.environ["DAGSTER_HOME"]
        else:
            os.environ["DAGSTER_HOME"] = previous

    stored = DuckDBWarehouse(tmp_path / "data" / "warehouse.duckdb").read_window(
        DAILY_PRICES, Window(dt.date(2025, 10, 1), dt.date(2025, 11, 29))
    )
    assert len(stored) == 43 * 10


@pytest.mark.slow
def test_demo_command_summarises_and_reruns_identically(tmp_path) -> None:
    env = _environment(tmp_path)
    outputs = []
    for _ in range(2):
        completed = subprocess.run(
            [str(ASX_PIPELINE), "demo", "--sessions", "5"],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240,
        )
        assert completed.returncode == 0, completed.stderr[-3000:]
        outputs.append(completed.stdout)
    for output in outputs:
        assert re.search(r"asx_symbols +50 rows +10 symbols", output)
        assert re.search(r"daily_prices +50 rows +10 symbols", output)
        assert f"DuckDB file {tmp_path / 'data' / 'warehouse.duckdb'}" in output
        assert "make ui" in output
    # Everything but the run id is the same the second time.
    assert outputs[0].splitlines()[-7:-2] == outputs[1].splitlines()[-7:-2]


def test_every_table_asset_shows_its_table_contract_in_the_ui() -> None:
    from dagster import AssetKey

    from asx_pipeline.definitions import defs
    from asx_pipeline.warehouse.tables import TABLES

    shown = {}
    for assets_def in defs.resolve_all_asset_specs():
        if "dagster/table_name" in assets_def.metadata:
            shown[assets_def.key] = assets_def.metadata
    stored = {name for name, table in TABLES.items() if not table.append_only}
    assert {key.path[-1] for key in shown} == stored
    for key, metadata in shown.items():
        table = TABLES[metadata["dagster/table_name"]]
        assert key == AssetKey(table.name)
        columns = metadata["dagster/column_schema"].columns
        assert [c.name for c in columns] == table.column_names
        assert [c.type for c in columns] == [c.type for c in table.columns]
        for column in columns:
            required = column.name in table.key or not table.column(column.name).nullable
            assert column.constraints.nullable is not required, (table.name, column.name)


def test_only_the_compatibility_module_imports_dagster_internals() -> None:
    """Private Dagster API breaks on minor upgrades: it is confined to dagster_compat.py."""
    package = REPO / "asx_pipeline"
    private = re.compile(r"^\s*(from|import)\s+dagster\._", re.MULTILINE)
    importing = sorted(
        str(path.relative_to(package))
        for path in package.rglob("*.py")
        if private.search(path.read_text())
    )
    assert importing == ["dagster_compat.py"]


@pytest.mark.slow
def test_dg_lists_the_definitions_from_the_repo_root(tmp_path) -> None:
    env = {**_environment(tmp_path), "VIRTUAL_ENV": str(Path(sys.executable).parents[1])}
    completed = subprocess.run(
        [str(Path(sys.executable).with_name("dg")), "list", "defs", "--json"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-3000:]
    listed = json.loads(completed.stdout)
    assets = {entry["asset_key"] for entry in listed["assets"]}
    assert {"asx_symbols", "daily_prices", "daily_report", "intraday_quotes"} <= assets
    assert {entry["name"] for entry in listed["sensors"]} == {
        "asx_dead_runs", "asx_follow_prices", "asx_prices_freshness", "asx_run_failure_alerts",
    }  # fmt: skip
    assert {entry["name"] for entry in listed["schedules"]} == {
        "asx_daily_refresh_schedule", "asx_intraday_schedule",
    }  # fmt: skip


def test_every_job_runs_in_process_unless_asx_executor_says_otherwise(monkeypatch) -> None:
    from asx_pipeline.definitions import build_definitions, defs
    from asx_pipeline.settings import load_settings

    assert defs.resolve_job_def("asx_daily_refresh").executor_def.name == "in_process"
    multi = build_definitions(load_settings(asx_executor="multiprocess"))
    executor = multi.resolve_job_def("asx_daily_refresh").executor_def
    assert executor.name == "multiprocess_forkserver"
    config = executor.config_schema.resolve_config({}).value["config"]
    assert config["start_method"] == {
        "forkserver": {"preload_modules": ["asx_pipeline.definitions"]}
    }
    with pytest.raises(Exception, match="ASX_EXECUTOR=celery needs ASX_CELERY_BROKER_URL"):
        load_settings(asx_executor="celery")
    celery = build_definitions(
        load_settings(
            asx_executor="celery", asx_celery_broker_url="redis://:s3cret@127.0.0.1:6379/0"
        )
    )
    executor = celery.resolve_job_def("asx_daily_refresh").executor_def
    assert executor.name == "celery"
    # The broker is read from the environment when a run starts (the definitions hold the
    # variable's name, never the URL), for the broker and the result backend alike.
    monkeypatch.setenv("ASX_CELERY_BROKER_URL", "redis://127.0.0.1:6399/3")
    config = executor.config_schema.resolve_config({}).value["config"]
    assert config["broker"] == config["backend"] == "redis://127.0.0.1:6399/3"
