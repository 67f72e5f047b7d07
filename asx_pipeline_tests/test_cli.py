"""`asx-pipeline` as cron runs it: a real subprocess, sample data, a throwaway instance.

The tests of this module share one DAGSTER_HOME and warehouse: a daily run, then a backfill
(module fixtures, so any test that reads what they left behind gets them first, whatever order or
subset runs), and `status` and `symbols` reading the result.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from dagster import DagsterInstance, DagsterRun, DagsterRunStatus
from dagster._core.instance.ref import InstanceRef

from asx_pipeline.report_mail import MAIL_REPORT_TAG

pytestmark = pytest.mark.slow
REPO_ROOT = Path(__file__).resolve().parents[1]


def _environment(root: Path, **extra: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("ASX_", "SUPABASE_", "DAGSTER_"))
    }
    return {
        **env,
        "ASX_MARKET_DATA": "sample",
        "ASX_UNIVERSE": "top:5",
        "ASX_DATA_DIR": str(root / "data"),
        "DAGSTER_HOME": str(root / "dagster_home"),
        # cron starts in some other folder: every path the CLI needs comes from the environment.
        "ASX_SCREENERS_FILE": str(REPO_ROOT / "config" / "screeners.yml"),
        **extra,
    }


def _cli(root: Path, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "asx_pipeline.cli", *args],
        env=_environment(root, **extra),
        cwd=root,
        capture_output=True,
        text=True,
        timeout=180,
    )


def _table_line(table: str, rows: int, symbols: int) -> str:
    return f"  {table:<18} {rows:>8} rows  {symbols:>5} symbols"


def _run_tags(root: Path, stdout: str) -> dict[str, str]:
    """The tags of the run whose id the command's last line (`OK: run <id>`) names."""
    run_id = stdout.splitlines()[-1].removeprefix("OK: run ")
    with DagsterInstance.from_ref(InstanceRef.from_dir(str(root / "dagster_home"))) as instance:
        return dict(instance.get_run_by_id(run_id).tags)


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cli")


@pytest.fixture(scope="module")
def daily(root) -> subprocess.CompletedProcess[str]:
    return _cli(root, "daily", "--date", "2025-12-24")


@pytest.fixture(scope="module")
def backfill(root, daily) -> subprocess.CompletedProcess[str]:
    """A backfill over the daily run's session and the rest of the year."""
    return _cli(root, "backfill", "--start", "2025-12-22", "--end", "2025-12-31")


def test_daily_refreshes_one_session_and_summarises(root, daily):
    done = daily
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert lines[0] == (
        "asx-pipeline daily: session 2025-12-24 "
        "(market data: sample, warehouse: duckdb, runs in this process)"
    )
    assert "Sessions 2025-12-24 .. 2025-12-24 (1 ASX sessions)" in lines
    assert _table_line("asx_symbols", 5, 5) in lines
    assert _table_line("daily_prices", 5, 5) in lines
    assert lines[-1].startswith("OK: run ")
    # Progress went to stderr while it ran: Dagster's step log lines.
    assert "Fetching 5 tickers for 2025-12-24 from sample" in done.stderr
    # Not the latest session any more: its report is not mailed again.
    assert MAIL_REPORT_TAG not in _run_tags(root, done.stdout)


def test_daily_on_a_holiday_says_why_and_does_nothing(root):
    done = _cli(root, "daily", "--date", "2025-12-25")
    assert done.returncode == 2
    assert done.stdout == (
        "Thursday 2025-12-25 is an ASX holiday (Christmas): no session, nothing to refresh.\n"
    )


def test_backfill_is_one_run_over_the_sessions_of_a_range(root, backfill):
    done = backfill
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert lines[0].startswith(
        "asx-pipeline backfill: 6 sessions 2025-12-22 .. 2025-12-31 in one run"
    )
    assert _table_line("daily_prices", 30, 5) in lines
    assert sum(line.startswith("OK: run ") for line in lines) == 1
    # A backfill never mails a report.
    assert MAIL_REPORT_TAG not in _run_tags(root, done.stdout)


def test_status_lists_each_asset_and_fails_when_stale(root, backfill):
    done = _cli(root, "status")
    # The data ends in 2025: stale today, so cron or a systemd timer sees a failure.
    assert done.returncode == 1
    rows = {line.split()[0]: line.split() for line in done.stdout.splitlines()[2:-1]}
    assert rows["daily_prices"][1:3] == ["2025-12-31", "SUCCESS"]
    assert rows["daily_prices"][-1] == "STALE"
    assert rows["intraday_quotes"][1:3] == ["never", "-"]
    assert done.stdout.splitlines()[-1].startswith("NOT OK: ")


def test_symbols_lists_the_tracked_universe(root, backfill):
    done = _cli(root, "symbols", "--date", "2025-12-24")
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert "5 symbols tracked on 2025-12-24:" in lines
    listed = [line.split()[0] for line in lines if line.startswith("  ") and "rows" not in line]
    assert listed == ["BHP", "CBA", "CSL", "NAB", "WBC"]


def test_a_failed_run_exits_1_and_names_the_step(tmp_path):
    done = _cli(tmp_path, "daily", "--date", "2025-12-23", ASX_UNIVERSE="ZZZZ")
    assert done.returncode == 1
    assert "FAILED: run " in done.stderr
    assert (
        "  step asx_symbols: dagster._core.definitions.events.Failure: ASX_UNIVERSE lists ZZZZ, "
        "none of which is in the ASX directory" in done.stderr
    )


def test_a_session_being_written_by_another_run_is_not_started_twice(tmp_path):
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    with DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
        instance.add_run(
            DagsterRun(
                job_name="asx_daily_refresh",
                run_id="busy-run",
                status=DagsterRunStatus.STARTED,
                tags={"dagster/partition": "2025-12-29"},
            )
        )
    done = _cli(tmp_path, "backfill", "--start", "2025-12-24", "--end", "2025-12-30")
    assert done.returncode == 75
    assert "Not started: Run busy-run (asx_daily_refresh, 2025-12-29..2025-12-29) is started" in (
        done.stderr
    )


def test_json_logs_carry_run_asset_and_partition_on_every_line(tmp_path):
    done = _cli(tmp_path, "daily", "--date", "2025-12-23", ASX_LOG_FORMAT="json")
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [json.loads(line) for line in done.stderr.splitlines()]
    run_lines = [line for line in lines if line["run_id"]]
    assert len(run_lines) >= 2
    assert {line["partition"] for line in run_lines} == {"2025-12-23"}
    assert {line["job"] for line in run_lines} == {"asx_daily_refresh"}
    fetching = next(line for line in run_lines if line["message"].startswith("Fetching"))
    assert fetching["step"] == "market_bars"
    assert fetching["asset"] == "corporate_actions,daily_prices"
    assert all(set(line) >= {"time", "level", "message", "asset", "partition"} for line in lines)


def test_a_failed_steps_summary_is_its_own_error_not_the_retry_count() -> None:
    from dagster._utils.error import SerializableErrorInfo

    from asx_pipeline.notify import failure_reason

    cause = SerializableErrorInfo(
        "DirectoryUnavailableError: could not fetch the ASX directory from "
        "https://example.invalid/dir.csv: ConnectionError\n",
        [],
        "DirectoryUnavailableError",
    )
    exhausted = SerializableErrorInfo("Exceeded max_retries of 2\n", [], "Failure", cause=cause)

    assert failure_reason(exhausted) == (
        "DirectoryUnavailableError: could not fetch the ASX directory from "
        "https://example.invalid/dir.csv: ConnectionError"
    )
    assert failure_reason(None) == "unknown error"


@pytest.mark.parametrize("where", ["environment", "dotenv"])
def test_the_demo_never_writes_sample_prices_into_supabase(tmp_path, where):
    """`make demo` forces the sample source; with a Supabase warehouse configured, in the
    environment or a .env file, its synthetic bars would replace real ones: refused, by name."""
    password = "s3cret-demo-pw"
    # A closed port: were the refusal broken, the demo fails there instead of writing its sample
    # rows into a real database of this machine.
    settings = {"SUPABASE_DB_URL": f"postgresql://postgres:{password}@127.0.0.1:1/postgres"}
    if where == "dotenv":
        (tmp_path / ".env").write_text(
            "SUPABASE_URL=https://abcdefghijkl.supabase.co\n"
            f"SUPABASE_SERVICE_ROLE_KEY={password}\n"
        )
        settings = {}
    completed = _cli(tmp_path, "demo", "--sessions", "1", **settings)
    variable = "SUPABASE_DB_URL" if where == "environment" else "SUPABASE_URL"
    assert completed.returncode == 2, completed.stderr[-3000:]
    assert f"asx-pipeline demo: refused: {variable} is set" in completed.stderr
    assert "Nothing was written." in completed.stderr
    assert password not in completed.stdout + completed.stderr
    # Refused before anything was prepared: no instance, no warehouse file, no run.
    assert not (tmp_path / "dagster_home").exists()
    assert not (tmp_path / "data").exists()
