"""Dead runs are failed: a run whose process was SIGKILLed is marked failed, saying why, by the
daemon's `asx_dead_runs` sensor (and by every `asx-pipeline` command), and its pool slot freed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from dagster import DagsterInstance, DagsterRunStatus, RunsFilter, build_sensor_context

from asx_pipeline.cli import REPO_DAGSTER_YAML
from asx_pipeline.instance import fail_dead_runs, prepare_instance
from asx_pipeline.sensors import asx_dead_runs

pytestmark = pytest.mark.slow

# A run that holds the "yahoo" pool and sleeps: killed while it sleeps, it is STARTED for ever.
_SLEEPER = textwrap.dedent(
    """
    import json, os, time
    from dagster import DagsterInstance, asset, materialize

    @asset(pool=os.environ.get("SLEEPER_POOL") or None)
    def sleeper() -> None:
        print("sleeping", flush=True)
        time.sleep(120)

    tags = json.loads(os.environ.get("SLEEPER_TAGS", "{}"))
    if tags.pop("from_process_tags", None):
        from asx_pipeline.instance import process_tags
        tags = {**process_tags(), **tags}
    materialize([sleeper], instance=DagsterInstance.get(), tags=tags)
    """
)


def _killed_run(home: Path, tags: dict[str, str] | None = None, pool: str = "") -> str:
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "SLEEPER_TAGS": json.dumps(tags or {}),
        "SLEEPER_POOL": pool,
    }
    child = subprocess.Popen(
        [sys.executable, "-c", _SLEEPER], env=env, stdout=subprocess.PIPE, text=True,
        start_new_session=True,
    )
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "sleeping"
    os.killpg(child.pid, signal.SIGKILL)
    child.wait()
    with DagsterInstance.from_config(str(home)) as instance:
        return instance.get_runs(RunsFilter(statuses=[DagsterRunStatus.STARTED]))[0].run_id


@pytest.fixture
def home(tmp_path: Path) -> Path:
    folder = tmp_path / "dagster_home"
    folder.mkdir()
    (folder / "dagster.yaml").write_text(REPO_DAGSTER_YAML.read_text())
    os.environ["DAGSTER_HOME"] = str(folder)
    prepare_instance(folder)
    yield folder
    del os.environ["DAGSTER_HOME"]


def test_the_sensor_fails_a_run_whose_process_is_gone_and_frees_its_slot(home):
    run_id = _killed_run(home, pool="yahoo")
    with DagsterInstance.from_config(str(home)) as instance:
        assert instance.event_log_storage.get_concurrency_info("yahoo").active_slot_count == 1

        skipped = asx_dead_runs(build_sensor_context(instance=instance))

        run = instance.get_run_by_id(run_id)
        assert run.status == DagsterRunStatus.FAILURE
        assert f"run {run_id} (__ephemeral_asset_job__): Marked failed by asx-pipeline: " in (
            skipped.skip_message
        )
        assert "is gone (killed, or the machine restarted)" in skipped.skip_message
        assert instance.event_log_storage.get_concurrency_info("yahoo").active_slot_count == 0
        # Nothing left to do the next time.
        assert fail_dead_runs(instance) == []


def test_a_live_run_is_left_alone(home):
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    child = subprocess.Popen(
        [sys.executable, "-c", _SLEEPER], env=env, stdout=subprocess.PIPE, text=True,
        start_new_session=True,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "sleeping"
        with DagsterInstance.from_config(str(home)) as instance:
            assert fail_dead_runs(instance) == []
            (run,) = instance.get_runs()
            assert run.status == DagsterRunStatus.STARTED
    finally:
        os.killpg(child.pid, signal.SIGKILL)
        child.wait()


def test_a_command_judges_only_its_own_machines_tagged_runs(home):
    untagged = _killed_run(home)
    elsewhere = _killed_run(home, {"from_process_tags": "1", "asx/host": "another-box"})
    with DagsterInstance.from_config(str(home)) as instance:
        # What `asx-pipeline` does: the daemon's (untagged) runs and other hosts' are not its.
        assert fail_dead_runs(instance) == []
        statuses = {instance.get_run_by_id(r).status for r in (untagged, elsewhere)}
        assert statuses == {DagsterRunStatus.STARTED}


def test_a_run_of_this_process_dies_with_it_and_a_reboot_is_seen(home):
    mine = _killed_run(home, {"from_process_tags": "1"})
    before_reboot = _killed_run(home, {"from_process_tags": "1", "asx/boot_id": "an-old-boot"})
    with DagsterInstance.from_config(str(home)) as instance:
        said = fail_dead_runs(instance)

        assert len(said) == 2
        assert any(mine in line and "is gone" in line for line in said)
        assert any(before_reboot in line and "machine restarted" in line for line in said)
        for run_id in (mine, before_reboot):
            run = instance.get_run_by_id(run_id)
            assert run.status == DagsterRunStatus.FAILURE
            # The daemon must not try to relaunch a run it cannot start.
            assert run.tags["dagster/max_retries"] == "0"
