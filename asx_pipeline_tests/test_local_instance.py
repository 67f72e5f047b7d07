"""dagster.yaml's instance (asx_pipeline/instance_storage.py): Dagster's SQLite storage, in the
same files, with each process keeping its connections open instead of one per statement."""

from __future__ import annotations

import multiprocessing
import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml
from dagster import AssetKey, DagsterInstance, DagsterRunStatus, asset, materialize
from sqlalchemy import event
from sqlalchemy.engine import Engine

from asx_pipeline.cli import REPO_DAGSTER_YAML
from asx_pipeline.instance_storage import (
    KEPT_RUN_DATABASES,
    LocalInstance,
    PooledSqliteEventLogStorage,
    PooledSqliteRunStorage,
    PooledSqliteScheduleStorage,
)


@asset
def first() -> int:
    return 1


@asset
def second(first: int) -> int:
    return first + 1


@asset
def third(second: int) -> int:
    return second + 1


def _home(root: Path, *, dagster_default: bool = False) -> Path:
    """An instance folder with the repo's dagster.yaml, or the same without its instance class
    (Dagster's own instance and SQLite storage)."""
    config = yaml.safe_load(REPO_DAGSTER_YAML.read_text())
    if dagster_default:
        del config["instance_class"]
    root.mkdir(parents=True, exist_ok=True)
    (root / "dagster.yaml").write_text(yaml.safe_dump(config))
    return root


def _materialized(instance: DagsterInstance, asset_name: str) -> int:
    return len(instance.fetch_materializations(AssetKey(asset_name), limit=100).records)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return _home(tmp_path / "dagster_home")


def test_the_repo_instance_is_dagsters_sqlite_storage_with_kept_connections(home: Path) -> None:
    with DagsterInstance.from_config(str(home)) as instance:
        assert isinstance(instance, LocalInstance)
        assert isinstance(instance.run_storage, PooledSqliteRunStorage)
        assert isinstance(instance.event_log_storage, PooledSqliteEventLogStorage)
        assert isinstance(instance.schedule_storage, PooledSqliteScheduleStorage)
        assert materialize([first], instance=instance).success
    # Where Dagster's default SQLite storage keeps it, in the folder the instance was opened from.
    assert (home / "history" / "runs.db").is_file()
    assert (home / "history" / "runs" / "index.db").is_file()
    assert (home / "schedules" / "schedules.db").is_file()


def test_either_instance_opens_the_history_of_the_other(tmp_path: Path) -> None:
    """Switching to this instance (or back) keeps every run and materialisation."""
    folder = tmp_path / "dagster_home"
    _home(folder, dagster_default=True)
    with DagsterInstance.from_config(str(folder)) as instance:
        assert type(instance) is DagsterInstance
        assert materialize([first], instance=instance).success
    _home(folder)
    with DagsterInstance.from_config(str(folder)) as instance:
        assert isinstance(instance, LocalInstance)
        assert _materialized(instance, "first") == 1
        assert materialize([first], instance=instance).success
    _home(folder, dagster_default=True)
    with DagsterInstance.from_config(str(folder)) as instance:
        assert type(instance) is DagsterInstance
        assert _materialized(instance, "first") == 2
        assert {run.status for run in instance.get_runs()} == {DagsterRunStatus.SUCCESS}
        assert len(instance.get_runs()) == 2


def _connections_and_events(folder: Path) -> tuple[int, int]:
    """(SQLite connections opened, events stored) by one run of three assets."""
    opened: list[object] = []

    def count(*_: object) -> None:
        opened.append(None)

    with DagsterInstance.from_config(str(folder)) as instance:
        event.listen(Engine, "connect", count)
        try:
            result = materialize([first, second, third], instance=instance)
        finally:
            event.remove(Engine, "connect", count)
        assert result.success
        return len(opened), len(instance.all_logs(result.run_id))


def test_a_run_opens_a_few_connections_not_one_per_event(tmp_path: Path) -> None:
    connections, events = _connections_and_events(_home(tmp_path / "ours"))
    assert events > 30
    # The run's database, the index, runs.db, and a second connection where two threads meet.
    assert connections <= 6, (connections, events)
    # Dagster's own storage, the same run: a connection (and a WAL checkpoint) per statement.
    stock, stock_events = _connections_and_events(_home(tmp_path / "stock", dagster_default=True))
    assert stock_events == events
    assert stock > events


def _open_databases(folder: Path) -> set[str]:
    """The SQLite database files under `folder` this process has open."""
    found = set()
    for fd in Path("/proc/self/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith(f"{folder}{os.sep}") and target.endswith(".db"):
            found.add(target)
    return found


def test_a_long_lived_process_keeps_only_its_latest_run_databases_open(home: Path) -> None:
    runs = KEPT_RUN_DATABASES + 4
    with DagsterInstance.from_config(str(home)) as instance:
        for _ in range(runs):
            assert materialize([first], instance=instance).success
        run_databases = {
            name
            for name in _open_databases(home / "history" / "runs")
            if not name.endswith("index.db")
        }
        assert len(run_databases) <= KEPT_RUN_DATABASES
        # Every run's events are still read back, the closed databases opened again on demand.
        assert (
            all(instance.all_logs(run.run_id) for run in instance.get_runs())
            and len(instance.get_runs()) == runs
        )
    assert _open_databases(home) == set(), "disposing the instance closes every database"


def test_wipe_deletes_the_databases_and_the_storage_keeps_working(home: Path) -> None:
    with DagsterInstance.from_config(str(home)) as instance:
        assert materialize([first], instance=instance).success
        instance.wipe()
        assert instance.get_runs() == []
        assert _materialized(instance, "first") == 0
        assert materialize([first], instance=instance).success
        assert _materialized(instance, "first") == 1


def _materialize_in_forked_child(instance: DagsterInstance) -> None:
    # Uses the parent's instance object: its storages must open their own connections here.
    storage = instance.event_log_storage
    assert isinstance(storage, PooledSqliteEventLogStorage)
    inherited = list(storage._index_engines._engines.values())
    ok = materialize([first], instance=instance).success
    fresh = list(storage._index_engines._engines.values())
    os._exit(
        0 if ok and inherited and fresh and not set(map(id, fresh)) & set(map(id, inherited)) else 3
    )


def test_a_forked_child_never_uses_its_parents_connections(home: Path) -> None:
    with DagsterInstance.from_config(str(home)) as instance:
        assert materialize([first], instance=instance).success
        child = multiprocessing.get_context("fork").Process(
            target=_materialize_in_forked_child, args=(instance,)
        )
        child.start()
        child.join(60)
        assert child.exitcode == 0
        # The parent's kept connections still work after the child wrote and exited.
        assert materialize([first], instance=instance).success
        assert _materialized(instance, "first") == 3
    index = home / "history" / "runs" / "index.db"
    with sqlite3.connect(index) as check:
        assert check.execute("PRAGMA integrity_check").fetchone() == ("ok",)


_WRITER = textwrap.dedent(
    """
    import sys
    from dagster import DagsterInstance, asset, materialize

    @asset
    def first() -> int:
        return 1

    with DagsterInstance.from_config(sys.argv[1]) as instance:
        for _ in range(4):
            assert materialize([first], instance=instance).success
    """
)


def test_processes_writing_at_once_each_keeping_connections_do_not_lock_each_other_out(
    home: Path,
) -> None:
    with DagsterInstance.from_config(str(home)):
        pass  # the storage is created once, before the writers meet
    writers = [
        subprocess.Popen([sys.executable, "-c", _WRITER, str(home)], stderr=subprocess.PIPE)
        for _ in range(3)
    ]
    failures = [w.stderr.read().decode()[-2000:] for w in writers if w.wait(120) != 0]
    assert failures == []
    with DagsterInstance.from_config(str(home)) as instance:
        assert _materialized(instance, "first") == 12
        assert {run.status for run in instance.get_runs()} == {DagsterRunStatus.SUCCESS}
