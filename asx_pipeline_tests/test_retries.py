"""Steps that call Yahoo recover from passing failures through Dagster's RetryPolicy."""

import datetime as dt
import os
import subprocess
import sys

from dagster import Backoff, DagsterEventType, DagsterInstance, Jitter, RetryPolicy
from dagster._core.instance.ref import InstanceRef

from asx_pipeline.assets.prices import market_bars
from asx_pipeline.assets.symbols import asx_symbols
from asx_pipeline.configured import YAHOO_RETRY_POLICY
from asx_pipeline.retries import yahoo_retry_policy
from asx_pipeline.settings import load_settings
from asx_pipeline.warehouse.duckdb_backend import DuckDBWarehouse
from asx_pipeline.warehouse.frames import Window
from asx_pipeline.warehouse.tables import DAILY_PRICES


def test_yahoo_steps_back_off_exponentially_with_jitter():
    settings = load_settings()
    policy = yahoo_retry_policy(
        settings.asx_step_max_retries, settings.asx_step_retry_delay_seconds
    )
    assert policy == RetryPolicy(
        max_retries=3, delay=30.0, backoff=Backoff.EXPONENTIAL, jitter=Jitter.PLUS_MINUS
    )
    assert market_bars.op.retry_policy == YAHOO_RETRY_POLICY == policy
    assert asx_symbols.op.retry_policy == YAHOO_RETRY_POLICY


def test_two_throttled_price_requests_then_success_is_one_successful_run(tmp_path):
    home = tmp_path / "dagster_home"
    home.mkdir()
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "ASX_STEP_RETRY_DELAY_SECONDS": "0.1",
        "ASX_MARKET_DATA": "sample",
    }
    completed = subprocess.run(
        [sys.executable, "-m", "asx_pipeline_tests.flaky_market_data", str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    run_id = completed.stdout.strip().splitlines()[-1]

    assert (tmp_path / "attempts").read_text() == "3"
    with DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
        assert instance.get_run_by_id(run_id).is_success

        def steps(event_type):
            records = instance.get_records_for_run(run_id, of_type=event_type).records
            return [record.event_log_entry.step_key for record in records]

        assert steps(DagsterEventType.STEP_UP_FOR_RETRY) == ["market_bars", "market_bars"]
        assert steps(DagsterEventType.STEP_RESTARTED) == ["market_bars", "market_bars"]
        assert steps(DagsterEventType.STEP_SUCCESS) == ["asx_symbols", "market_bars"]
        assert steps(DagsterEventType.STEP_FAILURE) == []

    day = dt.date(2025, 12, 24)
    prices = DuckDBWarehouse(tmp_path / "warehouse.duckdb").read_window(
        DAILY_PRICES, Window.single(day)
    )
    assert sorted(prices["symbol"]) == ["BHP", "CBA", "CSL", "NAB", "WBC"]
