"""A test-only code location: the real assets, checks, jobs and resources, with test schedules.

The end-to-end tests in this folder point `dagster-daemon` and `dagster-webserver` at this module.
It reuses everything `asx_pipeline.definitions` wires, and swaps the automation for what a test can
wait on:

- `e2e_daily_refresh_every_minute` asks for a run of the real `asx_daily_refresh` job every minute
  (the next tick is at most 60 s away). Its partition is a fixed, final 2025 session
  (`ASX_E2E_PARTITION`): the real schedule asks for *today's* session, which is neither
  deterministic nor final at an arbitrary time of day. Once it has launched a run it skips (a
  schedule's run key only deduplicates within one tick), so the test waits on exactly one run.
  It is on by default, like the real schedules.
- No sensors: `asx_follow_prices` would answer a UI materialisation of `daily_prices` with a
  second run of everything downstream, which the UI test does not ask for and would wait behind.
- Runs execute their steps in one process: a test box may have two CPUs, and one process per step
  spends most of a short run starting Python.

`ASX_E2E_SCHEDULE=0` leaves the schedule out (the web UI test launches its own runs).
"""

from __future__ import annotations

import os

from dagster import (
    DefaultScheduleStatus,
    Definitions,
    RunRequest,
    RunsFilter,
    ScheduleEvaluationContext,
    SkipReason,
    in_process_executor,
    schedule,
)

import asx_pipeline.definitions as production
from asx_pipeline.jobs import DAILY_JOB, asx_daily_refresh
from asx_pipeline.settings import get_settings

DEFAULT_PARTITION = "2025-06-02"
E2E_TAG = {"asx/e2e": "daemon"}
# `production.defs` is reached through its module: a second Definitions object at this module's
# scope would make Dagster refuse to pick one.

if get_settings().warehouse_backend != "duckdb":
    # A repo-level .env with Supabase settings must never receive test rows.
    raise RuntimeError(
        "The end-to-end code location runs on the embedded DuckDB warehouse only; unset "
        "SUPABASE_DB_URL / SUPABASE_URL (a .env file in the repository may set them)."
    )


@schedule(
    name="e2e_daily_refresh_every_minute",
    cron_schedule="* * * * *",
    job=asx_daily_refresh,
    default_status=DefaultScheduleStatus.RUNNING,
    description="Test only: the daily refresh of one fixed 2025 session, every minute.",
)
def e2e_daily_refresh_every_minute(
    context: ScheduleEvaluationContext,
) -> RunRequest | SkipReason:
    launched = context.instance.get_runs_count(RunsFilter(tags=E2E_TAG))
    if launched:
        return SkipReason("The end-to-end run of this schedule was already launched.")
    key = os.environ.get("ASX_E2E_PARTITION", DEFAULT_PARTITION)
    return RunRequest(run_key=f"{DAILY_JOB}:{key}", partition_key=key, tags=E2E_TAG)


def _schedules() -> list:
    return [] if os.environ.get("ASX_E2E_SCHEDULE") == "0" else [e2e_daily_refresh_every_minute]


defs = Definitions(
    assets=production.defs.assets,
    asset_checks=production.defs.asset_checks,
    jobs=production.defs.jobs,
    schedules=_schedules(),
    loggers=production.defs.loggers,
    resources=production.defs.resources,
    executor=in_process_executor,
)
