"""Following a run submitted to the daemon's queue never hangs cron when the daemon is gone."""

from __future__ import annotations

import pytest
from dagster import DagsterInstance, DagsterRun, DagsterRunStatus

from asx_pipeline.runs import DaemonGoneError, daemon_is_running, follow_run


def test_a_queued_run_with_no_daemon_is_given_up_on_saying_why() -> None:
    instance = DagsterInstance.ephemeral()
    run = instance.add_run(
        # NOT_STARTED: waiting like a queued run (a QUEUED record needs a code location).
        DagsterRun(
            job_name="asx_daily_refresh", run_id="waiting-1", status=DagsterRunStatus.NOT_STARTED
        )
    )
    assert not daemon_is_running(instance)
    printed: list[str] = []

    with pytest.raises(DaemonGoneError) as raised:
        follow_run(instance, run.run_id, printed.append, daemon_grace_seconds=0.2)

    assert str(raised.value) == (
        "run waiting-1 is not_started, and the dagster-daemon that would start it has not been "
        "seen for 0s; it starts when the daemon is back"
    )
