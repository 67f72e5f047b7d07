"""Safe from the shell: a killed run never blocks its session, and a fresh instance survives
several commands started at once. Real `asx-pipeline` subprocesses, sample data, DuckDB."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from dagster import DagsterInstance, DagsterRunStatus, RunsFilter

from asx_pipeline.cli import EXIT_BUSY
from asx_pipeline_tests.test_cli import _environment

pytestmark = pytest.mark.slow
SESSION = "2025-12-24"
REPO = Path(__file__).resolve().parents[1]


def _start(root: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "asx_pipeline.cli", *args],
        env=_environment(root),
        cwd=root,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def _kill(child: subprocess.Popen[str]) -> str:
    """Kill a command still running, with its process group; its stderr. Never left behind: a
    hung command spinning a core slows every test after this one."""
    os.killpg(child.pid, signal.SIGKILL)
    return child.communicate()[1]


def _finish(child: subprocess.Popen[str], timeout: float = 180) -> tuple[int, str, str]:
    try:
        out, err = child.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        err = _kill(child)
        raise AssertionError(
            f"{' '.join(map(str, child.args[3:]))} still ran after {timeout:.0f} s:\n{err[-3000:]}"
        ) from None
    return child.returncode, out, err


def _wait_for_started_run(root: Path, child: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and child.poll() is None:
        home = root / "dagster_home"
        if (home / "dagster.yaml").exists():
            with _instance(root) as instance:
                if instance.get_runs(RunsFilter(statuses=[DagsterRunStatus.STARTED])):
                    return
        time.sleep(0.2)
    raise AssertionError("the daily run never started")


def _instance(root: Path) -> DagsterInstance:
    return DagsterInstance.from_config(str(root / "dagster_home"))


def _started_runs(root: Path) -> list:
    """The STARTED runs of the instance, none if a kill came before the command made it (on a
    slow box a first kill 3 s in can land before DAGSTER_HOME exists)."""
    if not (root / "dagster_home").is_dir():
        return []
    with _instance(root) as instance:
        return instance.get_runs(RunsFilter(statuses=[DagsterRunStatus.STARTED]))


@pytest.mark.timeout(420)
def test_a_killed_daily_never_blocks_the_next_daily_of_its_session(tmp_path, capsys):
    rng = random.Random(20261201)
    root = tmp_path / "kills"
    root.mkdir()
    left_started = 0
    kills = 3
    for kill in range(kills):
        child = _start(root, "daily", "--date", SESSION)
        if kill == 0:
            # Anywhere from importing the code to writing the warehouse (a run takes ~10 s).
            time.sleep(rng.uniform(3.0, 11.0))
        else:
            # At a random moment of the run itself, so that the dead-run handling is exercised.
            _wait_for_started_run(root, child)
            time.sleep(rng.uniform(0.0, 3.0))
        os.killpg(child.pid, signal.SIGKILL)
        child.wait()
        stuck = _started_runs(root)
        left_started += bool(stuck)

        code, out, err = _finish(_start(root, "daily", "--date", SESSION))

        assert code == 0, f"daily after kill {kill + 1} exited {code}:\n{err[-3000:]}"
        assert "OK: run " in out
        if stuck:
            assert f"run {stuck[0].run_id} " in err and "is gone" in err
    with _instance(root) as instance:
        in_progress = instance.get_runs(
            RunsFilter(statuses=[DagsterRunStatus.STARTED, DagsterRunStatus.STARTING])
        )
        assert in_progress == []
        failed = instance.get_runs(RunsFilter(statuses=[DagsterRunStatus.FAILURE]))
    assert len(failed) == left_started
    assert left_started >= 1, "no kill landed inside a run: the test exercised nothing"
    with capsys.disabled():
        print(f"\n{kills} SIGKILLs of `daily`: {left_started} left a STARTED run, every next "
              "daily ran")


@pytest.mark.timeout(420)
def test_commands_started_together_on_a_fresh_instance_all_run(tmp_path, capsys):
    outcomes: list[int] = []
    rounds = 2
    for attempt in range(rounds):
        root = tmp_path / f"fresh-{attempt}"
        root.mkdir()
        commands = [
            ("daily", "--date", SESSION),
            ("daily", "--date", SESSION),
            ("daily", "--date", "2025-12-23"),
            ("backfill", "--start", "2025-12-22", "--end", "2025-12-23"),
        ]
        children = [_start(root, *command) for command in commands]
        try:
            results = [_finish(child) for child in children]
        finally:
            for child in children:
                if child.poll() is None:
                    _kill(child)
        for command, (code, _, err) in zip(commands, results, strict=True):
            assert code in (0, EXIT_BUSY), f"{' '.join(command)} exited {code}:\n{err[-3000:]}"
            outcomes.append(code)
        # The instance stays usable: status reads it, and a run after the crowd succeeds.
        code, out, err = _finish(_start(root, "status"))
        assert code in (0, 1) and "Expected latest session" in out, err[-3000:]
        code, _, err = _finish(_start(root, "daily", "--date", SESSION))
        assert code == 0, err[-3000:]
    with capsys.disabled():
        print(f"\n{rounds} rounds of 4 commands at once on a fresh DAGSTER_HOME: "
              f"{outcomes.count(0)} ran, {outcomes.count(EXIT_BUSY)} were told to wait (75), "
              "0 failed")
