"""The Dagster instance of DAGSTER_HOME as the shell commands open it: safely, and cleaned up.

- **First use under a lock.** A fresh SQLite instance creates its tables (and stamps their schema
  version) when it is first opened; two commands doing that at once (cron and a person, or two
  cron lines) fail with "table ... already exists" or leave "more than one head present" for
  good. Every command therefore opens the instance under an exclusive `flock` on a file in
  DAGSTER_HOME until each storage exists.
- **Dead runs are failed.** A run whose process was killed (SIGKILL, the OOM killer, a reboot)
  stays STARTED for ever and blocks its sessions. A run's process is the one that logged its
  RUN_START (the `asx-pipeline` process, or the daemon's run worker); when that process is gone,
  the run is marked failed, saying so, and its concurrency-pool slots are freed.
- **The "yahoo" pool has a limit** (see `runs.ensure_yahoo_pool`).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from dagster import DagsterEventType, DagsterInstance, DagsterRunStatus, RunsFilter

from asx_pipeline.runs import ensure_yahoo_pool

LOCK_FILE = ".asx-pipeline-instance.lock"
# Runs whose process may be checked: the ones that have started. QUEUED and STARTING runs have
# no process of their own yet (the daemon's queue and run monitoring look after those).
_RUNNING = [DagsterRunStatus.STARTED, DagsterRunStatus.CANCELING]
# A process whose start is this much later than the run's RUN_START is another process that
# got the same pid (pids are reused), not the run's.
_PID_REUSE_SLACK = dt.timedelta(seconds=2)


@contextlib.contextmanager
def instance_lock(home: Path) -> Iterator[None]:
    """Exclusive, for every process of this machine that opens the instance at `home`."""
    home.mkdir(parents=True, exist_ok=True)
    with open(home / LOCK_FILE, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def prepare_instance(home: Path) -> list[str]:
    """Create and check the instance's storage, one process at a time; give the "yahoo" pool
    its limit; fail runs whose process is gone. Returns the messages of the runs it failed."""
    with instance_lock(home), DagsterInstance.get() as instance:
        _touch_storage(instance)
        ensure_yahoo_pool(instance)
        return fail_dead_runs(instance)


def _touch_storage(instance: DagsterInstance) -> None:
    """Make each storage create its tables now, while the lock is held (they do it lazily)."""
    instance.get_runs(limit=1)
    instance.get_run_records(limit=1)
    instance.all_instigator_state()
    instance.get_daemon_heartbeats()
    instance.event_log_storage.get_pool_limits()


def fail_dead_runs(instance: DagsterInstance) -> list[str]:
    """Mark every started run whose process has died as failed; return what was said."""
    said = []
    for run in instance.get_runs(RunsFilter(statuses=_RUNNING)):
        process = run_process(instance, run.run_id)
        if process is None or process_alive(*process):
            continue
        pid, _ = process
        message = (
            f"Marked failed by asx-pipeline: the process running it (pid {pid}) is gone "
            "(killed, or the machine restarted) without recording an end."
        )
        instance.report_run_failed(run, message)
        with contextlib.suppress(Exception):  # best effort: the monitoring daemon also frees
            instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
        said.append(f"run {run.run_id} ({run.job_name}): {message}")
    return said


def run_process(instance: DagsterInstance, run_id: str) -> tuple[int, dt.datetime] | None:
    """The pid that logged the run's RUN_START and when, or None when there is none yet."""
    records = instance.get_records_for_run(
        run_id, of_type=DagsterEventType.RUN_START, limit=1
    ).records
    if not records:
        return None
    entry = records[0].event_log_entry
    pid = entry.dagster_event.pid if entry.dagster_event else None
    if not pid:
        return None
    return int(pid), dt.datetime.fromtimestamp(entry.timestamp, dt.UTC)


def process_alive(pid: int, started_by: dt.datetime) -> bool:
    """Whether `pid` still runs and is the process that existed at `started_by`."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, under another user
    began = _process_start(pid)
    return began is None or began <= started_by + _PID_REUSE_SLACK


def _process_start(pid: int) -> dt.datetime | None:
    """When `pid` started, from /proc (Linux); None where that cannot be read."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        boot = next(
            int(line.split()[1])
            for line in Path("/proc/stat").read_text().splitlines()
            if line.startswith("btime ")
        )
    except (OSError, StopIteration, ValueError):
        return None
    # Field 22 (starttime, clock ticks after boot) follows the parenthesised command name.
    ticks = int(stat.rsplit(")", 1)[1].split()[19])
    seconds = boot + ticks / os.sysconf("SC_CLK_TCK")
    return dt.datetime.fromtimestamp(seconds, dt.UTC)
