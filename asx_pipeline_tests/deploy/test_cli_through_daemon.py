"""With a dagster-daemon running, `asx-pipeline daily` submits its run to the daemon's queue.

A real daemon serves the production code location (`asx_pipeline.definitions`, as the systemd
unit and `make ui` load it) on a throwaway instance; the CLI sees its heartbeat, hands the run to
the run queue, follows it to the end and prints the usual summary and exit code.
"""

from __future__ import annotations

import datetime as dt
import re
import subprocess

import pytest
from dagster import DagsterEventType, DagsterRunStatus

from asx_pipeline.runs import daemon_is_running
from asx_pipeline_tests.deploy.stack import BIN, UNIVERSE_SIZE, E2EStack, wait_for

SESSION = dt.date(2025, 6, 2)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_daily_goes_through_the_daemons_queue_when_a_daemon_runs(tmp_path) -> None:
    stack = E2EStack(tmp_path, schedule=False)
    instance = stack.instance()
    with stack.process("dagster-daemon", "run", "-m", "asx_pipeline.definitions") as daemon:
        wait_for(
            lambda: daemon_is_running(instance),
            timeout=120,
            what="the daemon's first heartbeat",
            alive=daemon,
            diagnostics=lambda: stack.log_tail("dagster-daemon"),
        )
        done = subprocess.run(
            [str(BIN / "asx-pipeline"), "daily", "--date", SESSION.isoformat()],
            env=stack.env,
            cwd=stack.root,
            capture_output=True,
            text=True,
            timeout=240,
        )
    assert done.returncode == 0, done.stderr[-3000:] + stack.log_tail("dagster-daemon")
    lines = done.stdout.splitlines()
    assert lines[0].endswith("runs in the dagster-daemon's run queue)")
    assert any("queued (the daemon starts it when the run queue allows)" in line for line in lines)
    assert any(line.endswith("market_bars: step succeeded") for line in lines)
    (run_id,) = re.findall(r"^OK: run (\S+)$", done.stdout, flags=re.MULTILINE)

    run = instance.get_run_by_id(run_id)
    assert run.status == DagsterRunStatus.SUCCESS
    assert run.tags["dagster/partition"] == SESSION.isoformat()
    # It went through the queue: enqueued by the CLI, then launched by the daemon.
    events = {
        record.event_log_entry.dagster_event.event_type
        for record in instance.get_records_for_run(run_id).records
        if record.event_log_entry.dagster_event
    }
    assert {DagsterEventType.RUN_ENQUEUED, DagsterEventType.RUN_STARTING} <= events
    assert len(stack.read("daily_prices", SESSION, SESSION)) == UNIVERSE_SIZE
