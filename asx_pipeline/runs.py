"""Launching the definitions' jobs over a range of sessions from Python (CLI, demo, bench)."""

from __future__ import annotations

import datetime as dt

from dagster import DagsterInstance, ExecuteInProcessResult
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
)

from asx_pipeline.calendar import partition_key, sessions_between
from asx_pipeline.warehouse.frames import Window
from asx_pipeline.warehouse.tables import TABLES

_CONSOLE_INFO = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}


def range_tags(first: dt.date, last: dt.date) -> dict[str, str]:
    """Tags that make one run cover every partition from first to last (single-run backfill)."""
    return {
        ASSET_PARTITION_RANGE_START_TAG: partition_key(first),
        ASSET_PARTITION_RANGE_END_TAG: partition_key(last),
    }


def run_job_range(
    job_name: str,
    first: dt.date,
    last: dt.date,
    instance: DagsterInstance | None = None,
) -> ExecuteInProcessResult:
    """Run a job of the definitions once over the sessions first..last, recorded in `instance`."""
    from asx_pipeline.definitions import defs

    job = defs.resolve_job_def(job_name)
    return job.execute_in_process(
        instance=instance or DagsterInstance.get(),
        tags=range_tags(first, last),
        run_config=_CONSOLE_INFO,
        raise_on_error=False,
    )


def run_core_range(
    first: dt.date, last: dt.date, instance: DagsterInstance | None = None
) -> ExecuteInProcessResult:
    return run_job_range("asx_core", first, last, instance)


def summarise_core_tables(first: dt.date, last: dt.date) -> str:
    """Rows per table in first..last, and where the warehouse is, as lines for a person."""
    from asx_pipeline.definitions import defs

    warehouse = defs.resources["warehouse_io_manager"].warehouse()
    window = Window(first, last + dt.timedelta(days=1))
    sessions = sessions_between(first, last)
    lines = [f"Sessions {first} .. {last} ({len(sessions)} ASX sessions)"]
    for name in ("asx_symbols", "daily_prices", "corporate_actions"):
        frame = warehouse.read_window(TABLES[name], window)
        symbols = frame["symbol"].nunique() if not frame.empty else 0
        lines.append(f"  {name:<18} {len(frame):>8} rows  {symbols:>5} symbols")
    lines.append(f"Warehouse: {warehouse.describe()}")
    return "\n".join(lines)
