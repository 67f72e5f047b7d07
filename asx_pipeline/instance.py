"""The Dagster instance of DAGSTER_HOME as the shell commands open it: safely, and cleaned up.

- **First use under a lock.** A fresh SQLite instance creates its tables (and stamps their schema
  version) when it is first opened; two commands doing that at once (cron and a person, or two
  cron lines) fail with "table ... already exists" or leave "more than one head present" for
  good. Every command therefore opens the instance under an exclusive `flock` on a file in
  DAGSTER_HOME until each storage exists.
- **Dead runs are failed.** A run whose process was killed (SIGKILL, the OOM killer, a reboot)
  stays STARTED for ever and blocks its sessions. A run's process is the one that logged its
  RUN_START (the `asx-pipeline` process, or the daemon's run worker); when that process is gone,
  the run is marked failed, saying so, and its concurrency-pool slots are freed. Only runs of
  this machine are judged: `asx-pipeline` tags its in-process runs with the host, the boot and
  its process's start (`process_tags`), and judges only those of its own host; the daemon's
  `asx_dead_runs` sensor also judges the untagged runs its run launcher started on its host.
- **The "yahoo" pool has a limit** (see `pools.ensure_yahoo_pool`).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import os
import socket
from collections.abc import Iterator, Mapping
from pathlib import Path

from dagster import DagsterEventType, DagsterInstance, DagsterRunStatus, RunsFilter

from asx_pipeline.dagster_compat import MAX_RETRIES_TAG
from asx_pipeline.pools import ensure_yahoo_pool

LOCK_FILE = ".asx-pipeline-instance.lock"
# Runs whose process may be checked: the ones that have started. QUEUED and STARTING runs have
# no process of their own yet (the daemon's queue and run monitoring look after those).
_RUNNING = [DagsterRunStatus.STARTED, DagsterRunStatus.CANCELING]
# A process whose start is this much later than the run's RUN_START is another process that
# got the same pid (pids are reused), not the run's. Generous, because the two times come from
# different clocks (the event's wall clock, and boot time plus ticks), which a clock step moves.
_PID_REUSE_SLACK = dt.timedelta(minutes=2)
HOST_TAG = "asx/host"
BOOT_TAG = "asx/boot_id"
PID_TAG = "asx/pid"
START_TICKS_TAG = "asx/pid_start_ticks"


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


def process_tags() -> dict[str, str]:
    """Tags for a run executed by this process: which machine, boot and process runs it."""
    tags = {HOST_TAG: socket.gethostname(), PID_TAG: str(os.getpid())}
    boot, ticks = _boot_id(), _start_ticks(os.getpid())
    if boot:
        tags[BOOT_TAG] = boot
    if ticks is not None:
        tags[START_TICKS_TAG] = str(ticks)
    # The daemon cannot relaunch a run of this process (it has no code location to start it
    # from), so its run retries must not try.
    tags[MAX_RETRIES_TAG] = "0"
    return tags


def fail_dead_runs(instance: DagsterInstance, *, include_untagged: bool = False) -> list[str]:
    """Mark every started run of this machine whose process has died as failed; return what
    was said. `include_untagged`: also judge runs without `process_tags` (the daemon's own)."""
    said = []
    for run in instance.get_runs(RunsFilter(statuses=_RUNNING)):
        if not _judged_here(run.tags, include_untagged):
            continue
        reason = _why_dead(instance, run.run_id, run.tags)
        if reason is None:
            continue
        # It may have ended since the list was read: never turn an ended run into a failure.
        current = instance.get_run_by_id(run.run_id)
        if current is None or current.status not in _RUNNING:
            continue
        message = f"Marked failed by asx-pipeline: {reason}."
        instance.report_run_failed(current, message)
        with contextlib.suppress(Exception):  # best effort: the monitoring daemon also frees
            instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
        said.append(f"run {run.run_id} ({run.job_name}): {message}")
    return said


def _judged_here(tags: Mapping[str, str], include_untagged: bool) -> bool:
    host = tags.get(HOST_TAG)
    if host is None:
        return include_untagged
    return host == socket.gethostname()


def _why_dead(instance: DagsterInstance, run_id: str, tags: Mapping[str, str]) -> str | None:
    """Why the run's process is certainly gone, or None when it may be alive."""
    boot = tags.get(BOOT_TAG)
    if boot and _boot_id() and boot != _boot_id():
        return "the machine restarted while it ran"
    if PID_TAG in tags:
        pid = int(tags[PID_TAG])
        ticks = tags.get(START_TICKS_TAG)
        if not _pid_exists(pid):
            return f"the process running it (pid {pid}) is gone"
        if ticks is not None and _start_ticks(pid) not in (None, int(ticks)):
            return f"the process running it (pid {pid}) is gone (the pid is another's now)"
        return None
    process = run_process(instance, run_id)
    if process is None:
        return None
    pid, started_by = process
    if not process_alive(pid, started_by):
        return f"the process running it (pid {pid}) is gone (killed, or the machine restarted)"
    return None


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
    """Whether `pid` still runs and is the process that existed at `started_by` (a process
    that started well after it got a reused pid)."""
    if not _pid_exists(pid):
        return False
    began = _process_start(pid)
    return began is None or began <= started_by + _PID_REUSE_SLACK


def _pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, under another user
    return True


def _start_ticks(pid: int) -> int | None:
    """When `pid` started, in clock ticks after boot (/proc, Linux); None where unreadable."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Field 22 (starttime) follows the parenthesised command name, which may hold spaces.
    return int(stat.rsplit(")", 1)[1].split()[19])


def _process_start(pid: int) -> dt.datetime | None:
    """When `pid` started, as a wall-clock time; None where that cannot be read."""
    ticks = _start_ticks(pid)
    try:
        boot = next(
            int(line.split()[1])
            for line in Path("/proc/stat").read_text().splitlines()
            if line.startswith("btime ")
        )
    except (OSError, StopIteration, ValueError):
        return None
    if ticks is None:
        return None
    return dt.datetime.fromtimestamp(boot + ticks / os.sysconf("SC_CLK_TCK"), dt.UTC)


def _boot_id() -> str | None:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip() or None
    except OSError:
        return None
