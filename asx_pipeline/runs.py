"""Launching the definitions' jobs over a range of sessions from Python (CLI, demo, bench).

A run over one session carries Dagster's partition tag, over several the partition-range tags
(one single-run backfill). Two ways to run, both recorded in the instance of DAGSTER_HOME:

- **Through the daemon's queue** when a daemon is running for that instance (its heartbeat is
  recent): `submit_job_range` hands the run to the instance's run coordinator, exactly as the UI
  does, so the run queue's limits (one run per partition, one backfill), concurrency pools and
  run retries apply; `follow_run` prints its progress and waits for it to end.
- **In this process** otherwise (cron on a box without a daemon): the run queue does not see
  such a run, so `refuse_when_busy` checks for an in-progress run of an overlapping session.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from dagster import (
    AssetKey,
    DagsterEventType,
    DagsterInstance,
    DagsterRun,
    DagsterRunStatus,
    EventLogEntry,
    ExecuteInProcessResult,
    JobExecutionResult,
    QueuedRunCoordinator,
    RunsFilter,
    execute_job,
    in_process_executor,
)
from dagster_shared.error import SerializableErrorInfo

from asx_pipeline.assets.metadata import FAILED_SYMBOLS
from asx_pipeline.calendar import partition_key, partition_range, range_tags, sessions_between
from asx_pipeline.dagster_compat import (
    IN_PROGRESS_RUN_STATUSES,
    PARTITION_NAME_TAG,
    AssetCheckExecutionRecordStatus,
    ReconstructableRepository,
    make_new_run_id,
)
from asx_pipeline.pools import waking_stranded_claims
from asx_pipeline.warehouse.backend import WarehouseBackend
from asx_pipeline.warehouse.frames import Window
from asx_pipeline.warehouse.resources import opened
from asx_pipeline.warehouse.tables import TABLES

DEFINITIONS_MODULE = "asx_pipeline.definitions"
_CONSOLE_INFO = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}


class PartitionBusyError(RuntimeError):
    """Another run is writing an overlapping session right now."""


def run_job_range(
    job_name: str,
    first: dt.date,
    last: dt.date,
    instance: DagsterInstance | None = None,
    asset_selection: Sequence[AssetKey] | None = None,
    extra_tags: Mapping[str, str] | None = None,
) -> ExecuteInProcessResult | JobExecutionResult:
    """Run a job of the definitions once over the sessions first..last, recorded in `instance`,
    with `extra_tags` on the run besides its own (e.g. report_mail.MAIL_REPORT_TAG), on the
    job's executor (ASX_EXECUTOR)."""
    from asx_pipeline.definitions import defs
    from asx_pipeline.instance import process_tags

    job = defs.resolve_job_def(job_name)
    single = first == last
    instance = instance or DagsterInstance.get()
    # Which process runs it, so a later command can tell when that process died.
    tags = {**process_tags(), **({} if single else range_tags(first, last)), **(extra_tags or {})}
    # This process is the run's worker: it also repairs the pools' lost wake-ups (pools.py).
    with waking_stranded_claims(instance):
        if job.executor_def.name != in_process_executor.name:
            # execute_in_process ignores the job's executor: a run whose steps go elsewhere
            # (Celery workers, forked processes) is executed from the job's code pointer instead,
            # with this process as its run worker, as the daemon's run launcher would start one.
            if single:
                # One session is an ordinary partitioned run, so the UI and the run queue see
                # its key.
                tags[PARTITION_NAME_TAG] = partition_key(first)
            return execute_job(
                ReconstructableRepository.for_module(
                    DEFINITIONS_MODULE, "defs", working_directory=os.getcwd()
                ).get_reconstructable_job(job_name),
                instance,
                run_config=_CONSOLE_INFO,
                tags=tags,
                raise_on_error=False,
                asset_selection=asset_selection,
            )
        return job.execute_in_process(
            instance=instance,
            partition_key=partition_key(first) if single else None,
            tags=tags,
            run_config=_CONSOLE_INFO,
            raise_on_error=False,
            asset_selection=asset_selection,
        )


def refuse_when_busy(instance: DagsterInstance, first: dt.date, last: dt.date) -> None:
    """Raise PartitionBusyError when an in-progress run covers any session of first..last."""
    wanted = (partition_key(first), partition_key(last))
    for run in instance.get_runs(RunsFilter(statuses=list(IN_PROGRESS_RUN_STATUSES))):
        covered = partition_range(run.tags)
        # Keys are YYYY-MM-DD, so string order is date order.
        if covered and covered[0] <= wanted[1] and wanted[0] <= covered[1]:
            raise PartitionBusyError(
                f"Run {run.run_id} ({run.job_name}, {covered[0]}..{covered[1]}) is "
                f"{run.status.value.lower()} and overlaps {wanted[0]}..{wanted[1]}; "
                "try again when it has finished."
            )


def summarise_tables(first: dt.date, last: dt.date, names: Sequence[str] | None = None) -> str:
    """Rows per warehouse table in first..last (every table by default), for a person."""
    window = Window(first, last + dt.timedelta(days=1))
    lines = [f"Sessions {first} .. {last} ({len(sessions_between(first, last))} ASX sessions)"]
    with definitions_warehouse() as warehouse:
        for name in names or list(TABLES):
            frame = warehouse.read_window(TABLES[name], window)
            symbols = f"  {frame['symbol'].nunique():>5} symbols" if "symbol" in frame else ""
            lines.append(f"  {name:<18} {len(frame):>8} rows{symbols}")
        lines.append(f"Warehouse: {warehouse.describe()}")
    return "\n".join(lines)


@contextmanager
def definitions_warehouse() -> Iterator[WarehouseBackend]:
    """The warehouse resource the settings select, as definitions.py builds it for runs, opened
    outside a run (the CLI's summaries)."""
    from asx_pipeline.definitions import warehouse_resource
    from asx_pipeline.settings import get_settings

    with opened(warehouse_resource(get_settings())) as warehouse:
        yield warehouse


@dataclass(frozen=True)
class AssetStatus:
    """What `asx-pipeline status` says about one asset."""

    asset: str
    latest_session: str | None
    last_run_id: str | None
    last_run_status: str | None
    failing_checks: tuple[str, ...]
    stale: bool

    @property
    def healthy(self) -> bool:
        return not self.stale and self.last_run_status != "FAILURE" and not self.failing_checks


def asset_statuses(
    instance: DagsterInstance, expected_session: dt.date, skip_staleness: Sequence[str] = ()
) -> list[AssetStatus]:
    """Every asset's latest session, last run and failing checks; stale if behind `expected`."""
    from asx_pipeline.definitions import defs

    graph = defs.get_repository_def().asset_graph
    expected = partition_key(expected_session)
    statuses = []
    for key in sorted(graph.materializable_asset_keys, key=lambda k: k.to_user_string()):
        sessions = instance.get_materialized_partitions(key)
        latest = max(sessions) if sessions else None
        run = _last_planned_run(instance, key)
        name = key.to_user_string()
        statuses.append(
            AssetStatus(
                asset=name,
                latest_session=latest,
                last_run_id=run.run_id if run else None,
                last_run_status=run.status.value if run else None,
                failing_checks=_failing_checks(instance, graph, key),
                stale=name not in skip_staleness and (latest is None or latest < expected),
            )
        )
    return statuses


def _last_planned_run(instance: DagsterInstance, key: AssetKey) -> DagsterRun | None:
    records = instance.fetch_planned_materializations(key, limit=1).records
    return instance.get_run_by_id(records[0].run_id) if records else None


def _failing_checks(instance: DagsterInstance, graph, key: AssetKey) -> tuple[str, ...]:
    check_keys = [check for check in graph.asset_check_keys if check.asset_key == key]
    if not check_keys:
        return ()
    latest = instance.event_log_storage.get_latest_asset_check_execution_by_key(check_keys)
    failing = []
    for check_key, record in latest.items():
        # A check that raised stays PLANNED, in a run that failed: that is failing too.
        crashed = record.status == AssetCheckExecutionRecordStatus.PLANNED and _run_failed(
            instance, record.run_id
        )
        if record.status == AssetCheckExecutionRecordStatus.FAILED or crashed:
            failing.append(check_key.name)
    return tuple(sorted(failing))



def _run_failed(instance: DagsterInstance, run_id: str) -> bool:
    run = instance.get_run_by_id(run_id)
    return run is not None and run.status == DagsterRunStatus.FAILURE


def failed_symbols_of_run(instance: DagsterInstance, run_id: str) -> str:
    """The 'failed_symbols' list the prices step of `run_id` recorded, as Markdown ('' if none)."""
    records = instance.get_records_for_run(
        run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION
    ).records
    for record in records:
        materialization = record.event_log_entry.asset_materialization
        if materialization is None or materialization.asset_key != AssetKey("daily_prices"):
            continue
        value = materialization.metadata.get(FAILED_SYMBOLS)
        text = getattr(value, "value", value)
        if text and text != "none":
            return str(text)
    return ""


# The daemon beats every 30 s or so; older than this and it is not running.
_HEARTBEAT_FRESH_SECONDS = 90
_FOLLOW_POLL_SECONDS = 1.0
_FINISHED = {DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED}
_WAITING = {DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING}
_SHOWN_EVENTS = {
    DagsterEventType.RUN_ENQUEUED: "queued (the daemon starts it when the run queue allows)",
    DagsterEventType.RUN_START: "started",
    DagsterEventType.STEP_START: "step started",
    DagsterEventType.STEP_SUCCESS: "step succeeded",
    DagsterEventType.STEP_UP_FOR_RETRY: "step will be retried",
    DagsterEventType.STEP_FAILURE: "step failed",
    DagsterEventType.ASSET_MATERIALIZATION: "stored",
}


@dataclass(frozen=True)
class RunOutcome:
    """How a run ended, as the CLI reports it (in-process or through the queue alike)."""

    run_id: str
    success: bool
    # (step key, the error it failed with) for every failed step.
    step_failures: tuple[tuple[str, SerializableErrorInfo | None], ...]


def outcome_of(result: ExecuteInProcessResult | JobExecutionResult) -> RunOutcome:
    failures = tuple(
        (event.step_key or "?", _error_of(event.event_specific_data))
        for event in result.get_step_failure_events()
    )
    return RunOutcome(result.run_id, result.success, failures)


def _error_of(data: object) -> SerializableErrorInfo | None:
    return getattr(data, "error", None)


def daemon_is_running(instance: DagsterInstance) -> bool:
    """Whether a dagster-daemon with a run queue is beating for this instance."""
    if not isinstance(instance.run_coordinator, QueuedRunCoordinator):
        return False
    beat = instance.get_daemon_heartbeats().get("QUEUED_RUN_COORDINATOR")
    return beat is not None and time.time() - beat.timestamp < _HEARTBEAT_FRESH_SECONDS


def submit_job_range(
    job_name: str, first: dt.date, last: dt.date, extra_tags: Mapping[str, str] | None = None
) -> str:
    """Hand a run of `job_name` over first..last, tagged with `extra_tags` too, to the
    instance's run queue; return its id.

    `dagster job launch` does what the UI's "Materialize" does: it builds the run from the code
    location (the same module the daemon loads) and submits it to the run coordinator.
    """
    run_id = make_new_run_id()
    tags = {PARTITION_NAME_TAG: partition_key(first)} if first == last else range_tags(first, last)
    tags.update(extra_tags or {})
    command = [
        str(Path(sys.executable).with_name("dagster")),
        "job",
        "launch",
        "--module-name",
        DEFINITIONS_MODULE,
        "--job",
        job_name,
        "--tags",
        json.dumps(tags),
        "--run-id",
        run_id,
    ]
    launched = subprocess.run(command, capture_output=True, text=True, check=False)
    if launched.returncode != 0:
        raise RuntimeError(
            f"could not submit {job_name} to the run queue: "
            + (launched.stderr.strip().splitlines() or ["no output"])[-1]
        )
    return run_id


class DaemonGoneError(RuntimeError):
    """A submitted run is still waiting to start and the daemon that would start it stopped."""


def follow_run(
    instance: DagsterInstance,
    run_id: str,
    echo: Callable[[str], None] = print,
    daemon_grace_seconds: float = 120.0,
) -> RunOutcome:
    """Print a run's progress until it has finished, then say how it ended.

    Raises DaemonGoneError when the run has not started and no daemon has beaten for
    `daemon_grace_seconds`: cron must not wait for ever on a queue nobody serves.
    """
    cursor = None
    daemon_last_seen = time.monotonic()
    while True:
        run = instance.get_run_by_id(run_id)
        if run is not None and run.status in _WAITING:
            if daemon_is_running(instance):
                daemon_last_seen = time.monotonic()
            elif time.monotonic() - daemon_last_seen > daemon_grace_seconds:
                raise DaemonGoneError(
                    f"run {run_id} is {run.status.value.lower()}, and the dagster-daemon that "
                    f"would start it has not been seen for {daemon_grace_seconds:.0f}s; it "
                    "starts when the daemon is back"
                )
        connection = instance.get_records_for_run(run_id, cursor=cursor)
        for record in connection.records:
            line = _progress_line(record.event_log_entry)
            if line:
                echo(line)
        cursor = connection.cursor
        if run is not None and run.status in _FINISHED and not connection.has_more:
            break
        if not connection.has_more:
            time.sleep(_FOLLOW_POLL_SECONDS)
    failures = tuple(
        (
            record.event_log_entry.step_key or "?",
            _error_of(getattr(record.event_log_entry.dagster_event, "event_specific_data", None)),
        )
        for record in instance.get_records_for_run(
            run_id, of_type=DagsterEventType.STEP_FAILURE
        ).records
    )
    return RunOutcome(run_id, run.status == DagsterRunStatus.SUCCESS, failures)


def _progress_line(entry: EventLogEntry) -> str | None:
    stamp = dt.datetime.fromtimestamp(entry.timestamp).strftime("%H:%M:%S")
    where = f" {entry.step_key}" if entry.step_key else ""
    event = entry.dagster_event
    if event is None:
        if entry.level < logging.INFO:
            return None
        return f"{stamp}{where}: {entry.user_message}"
    shown = _SHOWN_EVENTS.get(event.event_type)
    if shown is None:
        return None
    if event.event_type == DagsterEventType.ASSET_MATERIALIZATION and event.asset_key:
        partition = f" {event.partition}" if event.partition else ""
        return f"{stamp}{where}: stored {event.asset_key.to_user_string()}{partition}"
    return f"{stamp}{where}: {shown}"


def run_failure_message(instance: DagsterInstance, run_id: str) -> str:
    """What the run's RUN_FAILURE event says (a launch error, a dead process), '' if none."""
    records = instance.get_records_for_run(
        run_id, of_type=DagsterEventType.RUN_FAILURE, limit=1, ascending=False
    ).records
    return records[0].event_log_entry.message.strip() if records else ""
