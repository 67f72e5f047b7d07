"""Steps on Celery workers, for real: a Redis broker on 127.0.0.1, a worker subprocess
(`asx-pipeline worker`) stopped by its pid, and `asx-pipeline daily` of one session into Postgres
with ASX_EXECUTOR=celery, run by the CLI itself, then of another through a dagster-daemon. The
same session through the default executor, into a database of its own, must hold the same rows;
the step events must show each step ran in the worker; the `yahoo` pool must hold the prices step
back while another run has its slot; and the broker's password must appear nowhere.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import pytest
import redis
from dagster import DagsterEventType, DagsterInstance

from asx_pipeline.celery_workers import NoWorkerError, answering_workers
from asx_pipeline.cli import REPO_DAGSTER_YAML
from asx_pipeline.pools import ensure_yahoo_pool
from asx_pipeline.runs import daemon_is_running
from asx_pipeline.sources.resource import YAHOO_POOL
from asx_pipeline.warehouse.frames import Window
from asx_pipeline.warehouse.migrations import apply_migrations
from asx_pipeline.warehouse.resources import PostgresWarehouseResource
from asx_pipeline.warehouse.tables import TABLES
from asx_pipeline_tests.smtp_server import free_port
from asx_pipeline_tests.test_cli import _environment

# The warehouse tests' Postgres (a local server, or a throwaway cluster of the local binaries).
from asx_pipeline_tests.warehouse.conftest import (  # noqa: F401 - fixtures
    fresh_database,
    postgres_admin_dsn,
    throwaway_cluster,
)

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

SESSION = "2025-12-24"
DAEMON_SESSION = "2025-12-23"
WORKER = "asx-test@%h"
WORKER_NAME = WORKER.replace("%h", socket.gethostname())
LOCAL_REDIS = "redis://127.0.0.1:6379/0"


def _redis_answers(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_timeout=1).ping())
    except redis.RedisError:
        return False


@pytest.fixture(scope="module")
def broker_url() -> Iterator[str]:
    """A Redis of the test's own on a free port of 127.0.0.1 when `redis-server` is installed:
    its queue holds only this test's tasks, and it has a password, so the test can show that the
    password stays out of every output. Without the binary, the Redis on 127.0.0.1:6379."""
    server = shutil.which("redis-server")
    if server is None:
        if not _redis_answers(LOCAL_REDIS):
            pytest.skip("no redis-server to start and no Redis answers on 127.0.0.1:6379")
        yield "redis://127.0.0.1:6379/15"
        return
    port, password = free_port(), f"pw-{secrets.token_hex(8)}"
    with tempfile.TemporaryDirectory(prefix="asx-redis-") as folder:
        child = subprocess.Popen(
            [server, "--bind", "127.0.0.1", "--port", str(port), "--requirepass", password,
             "--save", "", "--appendonly", "no", "--dir", folder],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        url = f"redis://:{password}@127.0.0.1:{port}/0"
        try:
            deadline = time.monotonic() + 20
            while not _redis_answers(url):
                assert child.poll() is None and time.monotonic() < deadline, "redis did not start"
                time.sleep(0.1)
            yield url
        finally:
            child.terminate()
            child.wait(timeout=10)


def _pool_children(pid: int) -> set[int]:
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return {int(child) for child in children}


@contextmanager
def _running_worker(root: Path, env: dict[str, str], broker: str) -> Iterator[set[int]]:
    """`asx-pipeline worker` as a subprocess until it answers; yields its pool's pids, then stops
    it with SIGTERM to its pid and checks that it and its pool are gone."""
    log = (root / "worker.log").open("w")
    worker = subprocess.Popen(
        [sys.executable, "-m", "asx_pipeline.cli", "worker", "--name", WORKER,
         "--concurrency", "2"],
        env=env, cwd=root, stdout=log, stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 90
    while True:
        try:
            if WORKER_NAME in answering_workers(broker, timeout=1):
                break
        except NoWorkerError:
            pass
        if worker.poll() is not None or time.monotonic() > deadline:
            worker.kill()
            pytest.fail("the worker never answered:\n" + (root / "worker.log").read_text()[-3000:])
    pool = _pool_children(worker.pid)
    try:
        yield pool
    finally:
        os.kill(worker.pid, signal.SIGTERM)
        try:
            code = worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
            pytest.fail("the worker did not stop within 30 s of SIGTERM")
        log.close()
        assert code == 0, (root / "worker.log").read_text()[-3000:]
        for pid in pool:
            assert not Path(f"/proc/{pid}").exists(), f"pool process {pid} outlived its worker"


def _instance(root: Path) -> DagsterInstance:
    return DagsterInstance.from_config(str(root / "dagster_home"))


def _home(root: Path) -> None:
    home = root / "dagster_home"
    home.mkdir(parents=True)
    shutil.copyfile(REPO_DAGSTER_YAML, home / "dagster.yaml")


def _daily(root: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "asx_pipeline.cli", "daily", "--date", SESSION],
        env=env, cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def _rows(dsn: str, data_dir: Path) -> dict[str, pd.DataFrame]:
    """Every table's rows of SESSION, without the ingestion time, paths relative to data_dir."""
    day = pd.Timestamp(SESSION).date()
    window = Window(day, day + pd.Timedelta(days=1))
    backend = PostgresWarehouseResource(url=dsn).open()
    frames = {}
    for name, spec in TABLES.items():
        frame = backend.read_window(spec, window).drop(columns=["ingested_at"], errors="ignore")
        if "html_path" in frame:
            frame["html_path"] = [str(Path(p).relative_to(data_dir)) for p in frame["html_path"]]
        frames[name] = frame
    return frames


def _wait_for_pool_block(root: Path, daily: subprocess.Popen[str]) -> str:
    """The id of the run whose market_bars step waits in the yahoo pool's queue. (The Celery
    executor, unlike the multiprocess one, writes no "blocked by pool" event: the pool's own
    records are what say so, as the UI's Concurrency page shows them.)"""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and daily.poll() is None:
        with _instance(root) as instance:
            info = instance.event_log_storage.get_concurrency_info(YAHOO_POOL)
        waiting = [step.run_id for step in info.pending_steps
                   if step.step_key == "market_bars" and step.assigned_timestamp is None]
        if waiting:
            return waiting[0]
        time.sleep(0.5)
    out, err = daily.communicate(timeout=30) if daily.poll() is not None else ("", "")
    pytest.fail(f"the prices step never queued for the yahoo pool\n{out}\n{err}")


def _steps(root: Path, run_id: str) -> tuple[list, dict[str, str], dict[str, int]]:
    """A run's event log entries, the worker each step ran on (from the "Executing steps ... in
    celery worker" event the UI shows), and each step's pid (from its STEP_START)."""
    with _instance(root) as instance:
        records = instance.get_records_for_run(run_id).records
    entries = [record.event_log_entry for record in records]
    ran_on = {
        entry.step_key: entry.dagster_event.event_specific_data.metadata["Celery worker"].value
        for entry in entries
        if entry.dagster_event
        and entry.dagster_event.event_type == DagsterEventType.ENGINE_EVENT
        and "Executing steps" in entry.message
    }
    step_pids = {
        entry.step_key: entry.dagster_event.pid
        for entry in entries
        if entry.dagster_event and entry.dagster_event.event_type == DagsterEventType.STEP_START
    }
    return entries, ran_on, step_pids


def _daily_through_the_daemon(root: Path, env: dict[str, str], pool_pids: set[int]) -> set[str]:
    """With a dagster-daemon running, `asx-pipeline daily` of another session goes through its
    run queue and the daemon's run launcher: its steps must land on the same worker too."""
    log = (root / "daemon.log").open("w")
    daemon = subprocess.Popen(
        [str(Path(sys.executable).with_name("dagster-daemon")), "run",
         "--module-name", "asx_pipeline.definitions"],
        env=env, cwd=root, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            with _instance(root) as instance:
                if daemon_is_running(instance):
                    break
            assert daemon.poll() is None and time.monotonic() < deadline, (
                (root / "daemon.log").read_text()[-3000:]
            )
            time.sleep(1)
        done = subprocess.run(
            [sys.executable, "-m", "asx_pipeline.cli", "daily", "--date", DAEMON_SESSION],
            env=env, cwd=root, capture_output=True, text=True, timeout=300,
        )
        assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
        assert "runs in the dagster-daemon's run queue, steps on Celery workers" in done.stdout
    finally:
        os.killpg(daemon.pid, signal.SIGTERM)
        daemon.wait(timeout=60)
        log.close()
    run_id = done.stdout.splitlines()[-1].removeprefix("OK: run ")
    _, ran_on, step_pids = _steps(root, run_id)
    assert set(ran_on) == set(step_pids) and set(ran_on.values()) == {WORKER_NAME}
    assert set(step_pids.values()) <= pool_pids
    return set(step_pids)


def test_daily_on_celery_workers_matches_the_default_executor(
    tmp_path: Path, broker_url: str, postgres_admin_dsn: str  # noqa: F811
) -> None:
    celery_root, default_root = tmp_path / "celery", tmp_path / "default"
    celery_root.mkdir()
    default_root.mkdir()
    with fresh_database(postgres_admin_dsn) as celery_dsn, fresh_database(
        postgres_admin_dsn
    ) as plain_dsn:
        apply_migrations(celery_dsn)
        apply_migrations(plain_dsn)
        # The default executor first: the yardstick.
        started = time.monotonic()
        plain = subprocess.run(
            [sys.executable, "-m", "asx_pipeline.cli", "daily", "--date", SESSION],
            env=_environment(default_root, SUPABASE_DB_URL=plain_dsn),
            cwd=default_root, capture_output=True, text=True, timeout=300,
        )
        plain_seconds = time.monotonic() - started
        assert plain.returncode == 0, plain.stderr[-3000:]

        env = _environment(
            celery_root,
            SUPABASE_DB_URL=celery_dsn,
            ASX_EXECUTOR="celery",
            ASX_CELERY_BROKER_URL=broker_url,
        )
        _home(celery_root)
        with _instance(celery_root) as instance:
            # Another run holds the only yahoo slot, as a backfill on another box would.
            ensure_yahoo_pool(instance)
            instance.event_log_storage.claim_concurrency_slot(YAHOO_POOL, "other-run", "held")
        with _running_worker(celery_root, env, broker_url) as pool_pids:
            started = time.monotonic()
            daily = _daily(celery_root, env)
            run_id = _wait_for_pool_block(celery_root, daily)
            held = time.monotonic()
            time.sleep(3)  # long enough for a step that ignored the pool to have started
            with _instance(celery_root) as instance:
                starts = instance.get_records_for_run(
                    run_id, of_type=DagsterEventType.STEP_START
                ).records
                assert "market_bars" not in {r.event_log_entry.step_key for r in starts}
                instance.event_log_storage.free_concurrency_slots_for_run("other-run")
            released = time.monotonic()
            out, err = daily.communicate(timeout=300)
            celery_seconds = time.monotonic() - started
            assert daily.returncode == 0, f"{out}\n{err}"[-4000:]
            daemon_run_steps = _daily_through_the_daemon(celery_root, env, pool_pids)
        worker_log = (celery_root / "worker.log").read_text()

        assert "steps on Celery workers" in out.splitlines()[0]
        assert out.splitlines()[-1] == f"OK: run {run_id}"
        entries, ran_on, step_pids = _steps(celery_root, run_id)
        # Every step of the daily job (7 assets, their checks) ran in the worker's pool.
        assert len(step_pids) >= 7 and set(ran_on) == set(step_pids)
        assert set(ran_on.values()) == {WORKER_NAME}
        assert set(step_pids.values()) <= pool_pids, (step_pids, pool_pids)
        assert daily.pid not in step_pids.values()
        assert daemon_run_steps == set(step_pids), "the daemon's run ran the same steps"

        celery_rows = _rows(celery_dsn, celery_root / "data")
        plain_rows = _rows(plain_dsn, default_root / "data")
        assert len(celery_rows["daily_prices"]) == 5 and len(celery_rows["daily_report"]) == 1
        for name, frame in plain_rows.items():
            pd.testing.assert_frame_equal(celery_rows[name], frame, check_exact=True, obj=name)
        # The report a worker wrote is where the UI (and the mail step) look for it.
        report = celery_root / "data" / celery_rows["daily_report"]["html_path"].iloc[0]
        assert report.read_text().startswith("<!DOCTYPE html>")

    password = broker_url.split(":")[2].split("@")[0] if "@" in broker_url else None
    if password:
        events = json.dumps([entry.message for entry in entries]) + str(
            [entry.dagster_event for entry in entries]
        )
        daemon_log = (celery_root / "daemon.log").read_text()
        for text in (out, err, worker_log, daemon_log, events):
            assert password not in text
    print(
        f"\ndaily {SESSION}, 5 symbols into Postgres: default executor {plain_seconds:.1f} s; "
        f"celery {celery_seconds:.1f} s wall, {celery_seconds - (released - held):.1f} s "
        f"without the {released - held:.1f} s held by the yahoo pool; "
        f"{len(step_pids)} steps on {WORKER_NAME}"
    )


def test_daily_on_celery_without_a_worker_says_so_and_starts_nothing(
    tmp_path: Path, broker_url: str
) -> None:
    # DuckDB is allowed: the broker is on 127.0.0.1, so every worker would be on this box.
    env = _environment(tmp_path, ASX_EXECUTOR="celery", ASX_CELERY_BROKER_URL=broker_url)
    done = subprocess.run(
        [sys.executable, "-m", "asx_pipeline.cli", "daily", "--date", SESSION],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 1
    assert "Not started: no Celery worker answers on redis://" in done.stderr
    assert "start one with `asx-pipeline worker`" in done.stderr
    if "@" in broker_url:
        assert broker_url.split("@")[0].split(":")[2] not in done.stdout + done.stderr
    with _instance(tmp_path) as instance:
        assert instance.get_runs() == []


LOCAL_RABBITMQ = "amqp://guest:guest@127.0.0.1:5672//"


@pytest.fixture
def rabbitmq_url() -> str:
    try:
        socket.create_connection(("127.0.0.1", 5672), timeout=2).close()
    except OSError:
        pytest.skip("no RabbitMQ answers on 127.0.0.1:5672")
    return LOCAL_RABBITMQ


def test_daily_on_celery_workers_through_rabbitmq(tmp_path: Path, rabbitmq_url: str) -> None:
    # Celery 5 has no `amqp` result backend: the results must come back over RabbitMQ itself.
    # DuckDB is allowed: the broker is on 127.0.0.1, so the worker is on this box.
    env = _environment(tmp_path, ASX_EXECUTOR="celery", ASX_CELERY_BROKER_URL=rabbitmq_url)
    _home(tmp_path)
    with _running_worker(tmp_path, env, rabbitmq_url) as pool_pids:
        daily = _daily(tmp_path, env)
        out, err = daily.communicate(timeout=300)
    assert daily.returncode == 0, f"{out}\n{err}"[-4000:]
    assert "steps on Celery workers" in out.splitlines()[0]
    run_id = out.splitlines()[-1].removeprefix("OK: run ")
    _, ran_on, step_pids = _steps(tmp_path, run_id)
    assert len(step_pids) >= 7 and set(ran_on) == set(step_pids)
    assert set(ran_on.values()) == {WORKER_NAME}
    assert set(step_pids.values()) <= pool_pids
    assert "guest:guest" not in out + err
