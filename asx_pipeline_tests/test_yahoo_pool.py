"""Runs that call Yahoo take turns across processes: the "yahoo" concurrency pool.

Two runs start at once on one DAGSTER_HOME (SQLite, the repo's dagster.yaml): one as
`asx-pipeline daily` runs (in-process), one as the daemon's run worker does (multiprocess
executor). Yahoo (the fake, answering each chart request after ANSWER_DELAY, so that each run's
Yahoo phase outlasts the seconds the second run takes to start on a loaded box: measured at up to
6 s in CI and 20 s with two extra busy cores) must see all the chart requests of one run before
any of the other's. Without the pool, the same two runs overlap.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from dagster import DagsterInstance

from asx_pipeline.cli import REPO_DAGSTER_YAML
from asx_pipeline.pools import ensure_yahoo_pool
from asx_pipeline_tests.fake_yahoo import ANY_SYMBOL, FakeYahoo, Fault, reset_yfinance
from asx_pipeline_tests.loopback_yahoo import directory_csv

UNIVERSES = {
    "inprocess": ["AAA", "AAB", "AAC", "AAD"],
    "multiprocess": ["BBA", "BBB", "BBC", "BBD"],
}
PARTITIONS = {"inprocess": "2025-10-01", "multiprocess": "2025-10-02"}
ANSWER_DELAY = 8.0  # seconds the fake waits before answering each chart request
ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


def _start(mode: str, fake: FakeYahoo, home: Path, folder: Path) -> subprocess.Popen[str]:
    folder.mkdir(parents=True)
    (folder / "directory.csv").write_text(directory_csv(UNIVERSES[mode]))
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "ASX_POOL_PORT": str(fake.port),
        "ASX_POOL_DIR": str(folder),
        "ASX_POOL_UNIVERSE": ",".join(UNIVERSES[mode]),
        "YF_DISABLE_CURL_CFFI": "1",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "asx_pipeline_tests.pool_runs", mode, PARTITIONS[mode]],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for_chart_request(
    fake: FakeYahoo, codes: list[str], child: subprocess.Popen[str]
) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and child.poll() is None:
        if any((r.symbol or "")[:3] in codes for r in fake.stats().requests):
            return
        time.sleep(0.05)
    raise AssertionError(f"the run never called Yahoo: {child.communicate()[1][-3000:]}")


def _chart_spans(fake: FakeYahoo) -> Spans:
    """Per run (told apart by its tickers): from its first chart request's arrival to the
    earliest its last one can have been answered (ANSWER_DELAY after it arrived). Its Yahoo
    phase lasts at least that long, so a second run starting up slowly still meets it."""
    spans: dict[str, tuple[float, float]] = {}
    for request in fake.stats().requests:
        if not request.symbol or request.symbol == ANY_SYMBOL:
            continue
        mode = next(m for m, codes in UNIVERSES.items() if request.symbol[:3] in codes)
        first, last = spans.get(mode, (request.arrived, request.arrived))
        spans[mode] = (min(first, request.arrived), max(last, request.arrived + ANSWER_DELAY))
    return spans


Spans = dict[str, tuple[float, float]]


def _run_both(fixtures_dir: Path, tmp_path: Path, with_pool: bool) -> Spans:
    home = tmp_path / "dagster_home"
    home.mkdir()
    config = REPO_DAGSTER_YAML.read_text()
    if not with_pool:
        config = config.replace("default_limit: 1", "default_limit: 100")
    (home / "dagster.yaml").write_text(config)
    # Create the instance's storage before two processes meet it (a fresh SQLite instance
    # does not survive two first users at once; that is another issue's subject).
    os.environ["DAGSTER_HOME"] = str(home)
    try:
        with DagsterInstance.get() as instance:
            if with_pool:
                ensure_yahoo_pool(instance)  # what every asx-pipeline command and `init` do
    finally:
        del os.environ["DAGSTER_HOME"]
    reset_yfinance(tmp_path / "cache")
    with FakeYahoo(fixtures_dir) as fake:
        fake.serve_any_symbol(dt.date(2025, 9, 1), dt.date(2025, 10, 3))
        fake.fail(ANY_SYMBOL, Fault.TIMEOUT, delay=ANSWER_DELAY)
        # The daemon-style run first; the CLI-style run once it is calling Yahoo, so that
        # without a pool the two would certainly meet (process start-up times vary a lot).
        children = {"multiprocess": _start("multiprocess", fake, home, tmp_path / "mp")}
        _wait_for_chart_request(fake, UNIVERSES["multiprocess"], children["multiprocess"])
        children["inprocess"] = _start("inprocess", fake, home, tmp_path / "ip")
        deadline = time.monotonic() + 240
        for mode, child in children.items():
            _, err = child.communicate(timeout=max(1.0, deadline - time.monotonic()))
            assert child.returncode == 0, f"{mode} run failed:\n{err[-3000:]}"
        return _chart_spans(fake)


def test_the_daemons_and_the_clis_runs_take_turns_at_yahoo(fixtures_dir, tmp_path):
    spans = _run_both(fixtures_dir, tmp_path, with_pool=True)

    (first, second) = sorted(spans.values())
    assert first[1] < second[0], f"chart requests of the two runs overlapped: {spans}"


def test_without_the_pool_the_same_runs_overlap(fixtures_dir, tmp_path):
    # The control: the test above would notice two runs calling Yahoo at once.
    spans = _run_both(fixtures_dir, tmp_path, with_pool=False)

    (first, second) = sorted(spans.values())
    assert second[0] < first[1], f"expected overlapping chart requests: {spans}"

