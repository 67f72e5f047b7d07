"""The dagster daemon, as a real process, ticks a schedule and the daily job lands rows.

`dagster-daemon run` starts with a temporary DAGSTER_HOME, sample market data and the embedded
DuckDB warehouse, on the test code location (e2e_location.py): its schedule fires every minute and
asks for the real `asx_daily_refresh` job on a fixed, final 2025 session. The test waits (bounded)
for that run to succeed, stops the daemon by its pid, and reads the DuckDB file.
"""

from __future__ import annotations

import datetime as dt

import pytest
from dagster import DagsterRunStatus, RunsFilter

from asx_pipeline.jobs import DAILY_JOB
from asx_pipeline_tests.deploy.e2e_location import DEFAULT_PARTITION, E2E_TAG
from asx_pipeline_tests.deploy.stack import UNIVERSE_SIZE, E2EStack, sample_closes, wait_for

# The next tick of `* * * * *` is at most 60 s away, the code server takes ~10 s to load and the
# run ~10 s on a two-CPU box: 150 s is generous and still bounded.
RUN_DEADLINE_SECONDS = 150
SESSION = dt.date.fromisoformat(DEFAULT_PARTITION)
FINISHED = {DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED}


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_daemon_schedule_tick_runs_the_daily_job_and_lands_rows(tmp_path) -> None:
    stack = E2EStack(tmp_path, schedule=True)
    instance = stack.instance()
    try:
        with stack.daemon() as daemon:

            def finished_run():
                runs = instance.get_runs(RunsFilter(tags=E2E_TAG))
                return next((run for run in runs if run.status in FINISHED), None)

            run = wait_for(
                finished_run,
                timeout=RUN_DEADLINE_SECONDS,
                what="the schedule's run of the daily job to finish",
                interval=2,
                alive=daemon,
                diagnostics=lambda: stack.log_tail("dagster-daemon"),
            )
            assert run.status == DagsterRunStatus.SUCCESS, stack.log_tail("dagster-daemon")
        # The daemon is stopped (and its process group gone) before the warehouse is read.
        assert daemon.poll() is not None

        assert run.job_name == DAILY_JOB
        assert run.tags["dagster/schedule_name"] == "e2e_daily_refresh_every_minute"
        assert run.tags["dagster/partition"] == DEFAULT_PARTITION
        # The schedule launched exactly one run, then skipped.
        assert len(instance.get_runs(RunsFilter(tags=E2E_TAG))) == 1

        symbols = stack.read("asx_symbols", SESSION, SESSION)
        prices = stack.read("daily_prices", SESSION, SESSION)
        assert len(symbols) == UNIVERSE_SIZE
        assert sorted(prices["symbol"]) == sorted(symbols["symbol"])
        assert set(prices["trade_date"]) == {SESSION}
        stored = dict(zip(prices["symbol"], prices["close"], strict=True))
        assert stored == pytest.approx(sample_closes(sorted(stored), SESSION))
        # Everything downstream came in the same run.
        assert len(stack.read("daily_indicators", SESSION, SESSION)) == UNIVERSE_SIZE
        # One session alone has no previous close, so breadth counts are zero, but the row is there.
        assert list(stack.read("market_breadth", SESSION, SESSION)["trade_date"]) == [SESSION]
        assert len(stack.read("daily_report", SESSION, SESSION)) == 1
    finally:
        instance.dispose()
