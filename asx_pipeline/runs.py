"""Launching the definitions' jobs over a range of sessions from Python (CLI, demo, bench).

A run over one session carries Dagster's partition tag, over several the partition-range tags
(one single-run backfill). Runs execute in this process but are recorded in the instance of
DAGSTER_HOME, so the UI shows them like any other run. The daemon's run queue does not see them,
so `refuse_when_busy` checks for an in-progress run of an overlapping session first.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from dagster import (
    AssetKey,
    DagsterEventType,
    DagsterInstance,
    DagsterRunStatus,
    ExecuteInProcessResult,
    RunsFilter,
)
from dagster._core.storage.dagster_run import IN_PROGRESS_RUN_STATUSES, DagsterRun
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
    PARTITION_NAME_TAG,
)

from asx_pipeline.assets.metadata import FAILED_SYMBOLS
from asx_pipeline.calendar import partition_key, sessions_between
from asx_pipeline.sources.resource import YAHOO_POOL
from asx_pipeline.warehouse.frames import Window
from asx_pipeline.warehouse.tables import TABLES

_CONSOLE_INFO = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}


def range_tags(first: dt.date, last: dt.date) -> dict[str, str]:
    """Tags that make one run cover every partition from first to last (single-run backfill)."""
    return {
        ASSET_PARTITION_RANGE_START_TAG: partition_key(first),
        ASSET_PARTITION_RANGE_END_TAG: partition_key(last),
    }


class PartitionBusyError(RuntimeError):
    """Another run is writing an overlapping session right now."""


def run_job_range(
    job_name: str,
    first: dt.date,
    last: dt.date,
    instance: DagsterInstance | None = None,
    asset_selection: Sequence[AssetKey] | None = None,
) -> ExecuteInProcessResult:
    """Run a job of the definitions once over the sessions first..last, recorded in `instance`."""
    from asx_pipeline.definitions import defs

    job = defs.resolve_job_def(job_name)
    single = first == last
    return job.execute_in_process(
        instance=instance or DagsterInstance.get(),
        # One session is an ordinary partitioned run, so the UI and the run queue see its key.
        partition_key=partition_key(first) if single else None,
        tags=None if single else range_tags(first, last),
        run_config=_CONSOLE_INFO,
        raise_on_error=False,
        asset_selection=asset_selection,
    )


def run_sessions(run: DagsterRun) -> tuple[str, str] | None:
    """The first and last partition key a run covers (None for an unpartitioned run)."""
    if PARTITION_NAME_TAG in run.tags:
        return run.tags[PARTITION_NAME_TAG], run.tags[PARTITION_NAME_TAG]
    start = run.tags.get(ASSET_PARTITION_RANGE_START_TAG)
    end = run.tags.get(ASSET_PARTITION_RANGE_END_TAG)
    return (start, end) if start and end else None


def refuse_when_busy(instance: DagsterInstance, first: dt.date, last: dt.date) -> None:
    """Raise PartitionBusyError when an in-progress run covers any session of first..last."""
    wanted = (partition_key(first), partition_key(last))
    for run in instance.get_runs(RunsFilter(statuses=list(IN_PROGRESS_RUN_STATUSES))):
        covered = run_sessions(run)
        # Keys are YYYY-MM-DD, so string order is date order.
        if covered and covered[0] <= wanted[1] and wanted[0] <= covered[1]:
            raise PartitionBusyError(
                f"Run {run.run_id} ({run.job_name}, {covered[0]}..{covered[1]}) is "
                f"{run.status.value.lower()} and overlaps {wanted[0]}..{wanted[1]}; "
                "try again when it has finished."
            )


def summarise_tables(first: dt.date, last: dt.date, names: Sequence[str] | None = None) -> str:
    """Rows per warehouse table in first..last (every table by default), for a person."""
    from asx_pipeline.definitions import open_warehouse

    warehouse = open_warehouse()
    window = Window(first, last + dt.timedelta(days=1))
    lines = [f"Sessions {first} .. {last} ({len(sessions_between(first, last))} ASX sessions)"]
    for name in names or list(TABLES):
        frame = warehouse.read_window(TABLES[name], window)
        symbols = f"  {frame['symbol'].nunique():>5} symbols" if "symbol" in frame else ""
        lines.append(f"  {name:<18} {len(frame):>8} rows{symbols}")
    lines.append(f"Warehouse: {warehouse.describe()}")
    return "\n".join(lines)


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
    from dagster._core.storage.asset_check_execution_record import (
        AssetCheckExecutionRecordStatus,
    )

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


def ensure_yahoo_pool(instance: DagsterInstance, limit: int = 1) -> None:
    """Give the instance an explicit limit for the "yahoo" pool unless one is set already.

    dagster.yaml's `pools.default_limit` is created lazily by the first run that meets the pool,
    and two runs meeting it at the same moment can both get in (or crash on Postgres, dagster
    issue 33552). A limit someone set in the UI or with `dagster instance concurrency set` is
    left alone.
    """
    storage = instance.event_log_storage
    if not storage.supports_global_concurrency_limits:
        return  # an ephemeral instance: nothing to share with anyway
    current = {pool.name: pool for pool in storage.get_pool_limits()}.get(YAHOO_POOL)
    if current is None or current.from_default:
        storage.set_concurrency_slots(YAHOO_POOL, limit)
