"""Start and stop real `dagster-daemon` / `dagster-webserver` processes for end-to-end tests.

Each test gets its own DAGSTER_HOME (a copy of the repository's local dagster.yaml), an embedded
DuckDB warehouse in a temporary ASX_DATA_DIR, offline sample data, and a workspace that loads
`asx_pipeline_tests.deploy.e2e_location`. Processes start in their own session, so stopping one
signals its process group (the daemon's code server and any run worker it spawned go with it).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pandas as pd
from dagster import DagsterInstance

from asx_pipeline.sources.sample import SampleMarketData
from asx_pipeline.warehouse.duckdb_backend import DuckDBWarehouse
from asx_pipeline.warehouse.frames import Window
from asx_pipeline.warehouse.tables import TABLES

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
UNIVERSE_SIZE = 10
LOCATION_MODULE = "asx_pipeline_tests.deploy.e2e_location"

T = TypeVar("T")


class E2EStack:
    """The folders and environment of one end-to-end test."""

    def __init__(self, root: Path, *, schedule: bool) -> None:
        self.root = root
        self.home = root / "dagster_home"
        self.data_dir = root / "data"
        self.logs = root / "logs"
        self.workspace = root / "workspace.yaml"
        for folder in (self.home, self.data_dir, self.logs):
            folder.mkdir(parents=True, exist_ok=True)
        (self.home / "dagster.yaml").write_text((REPO / "dagster.yaml").read_text())
        # The webserver's "join the community" dialog is shown once per instance; seen already.
        (self.home / ".nux").mkdir(exist_ok=True)
        (self.home / ".nux" / "nux.yaml").write_text("seen: 1\n")
        self.workspace.write_text(
            "load_from:\n"
            "  - python_module:\n"
            f"      module_name: {LOCATION_MODULE}\n"
            f"      working_directory: {REPO}\n"
        )
        self.env = self._environment(schedule)
        # Create the SQLite storages once, here: a daemon and a webserver starting together on an
        # empty DAGSTER_HOME race to create the same tables ("table runs already exists").
        self.instance().dispose()

    def _environment(self, schedule: bool) -> dict[str, str]:
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("ASX_", "SUPABASE_", "DAGSTER_"))
        }
        env.update(
            DAGSTER_HOME=str(self.home),
            ASX_MARKET_DATA="sample",
            ASX_DATA_DIR=str(self.data_dir),
            ASX_UNIVERSE=f"top:{UNIVERSE_SIZE}",
            ASX_SCREENERS_FILE=str(REPO / "config" / "screeners.yml"),
            ASX_E2E_SCHEDULE="1" if schedule else "0",
        )
        return env

    def instance(self) -> DagsterInstance:
        return DagsterInstance.from_config(str(self.home))

    @contextlib.contextmanager
    def process(self, name: str, *args: str) -> Iterator[subprocess.Popen]:
        """Run `name` (a console script of this venv) until the block ends, then stop it."""
        log = (self.logs / f"{name}.log").open("wb")
        child = subprocess.Popen(
            [str(BIN / name), *args],
            cwd=self.root,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            yield child
        finally:
            stop_process_group(child)
            log.close()

    def daemon(self) -> contextlib.AbstractContextManager[subprocess.Popen]:
        return self.process("dagster-daemon", "run", "-w", str(self.workspace))

    def webserver(self, port: int) -> contextlib.AbstractContextManager[subprocess.Popen]:
        return self.process(
            "dagster-webserver", "-h", "127.0.0.1", "-p", str(port), "-w", str(self.workspace)
        )

    def log_tail(self, name: str, chars: int = 4000) -> str:
        path = self.logs / f"{name}.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else "(no log)"

    def read(self, table: str, first: dt.date, last: dt.date) -> pd.DataFrame:
        """Rows of `table` for sessions first..last, read straight from the DuckDB file."""
        warehouse = DuckDBWarehouse(self.data_dir / "warehouse.duckdb", lock_timeout_seconds=60)
        return warehouse.read_window(TABLES[table], Window(first, last + dt.timedelta(days=1)))


def stop_process_group(child: subprocess.Popen, grace_seconds: float = 20) -> None:
    """SIGTERM the process group led by `child` (its pid), then SIGKILL what is left."""
    if child.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(timeout=grace_seconds)
    # Children of the leader (code servers, run workers) may outlive it: the group goes too.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(child.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        child.wait(timeout=5)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for(
    check: Callable[[], T | None],
    *,
    timeout: float,
    what: str,
    interval: float = 1.0,
    alive: subprocess.Popen | None = None,
    diagnostics: Callable[[], str] = lambda: "",
) -> T:
    """Poll `check` until it returns something truthy; fail naming `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if alive is not None and alive.poll() is not None:
            raise AssertionError(
                f"{alive.args[0]} exited ({alive.returncode}) while waiting for {what}\n"
                f"{diagnostics()}"
            )
        if time.monotonic() > deadline:
            raise AssertionError(
                f"Timed out after {timeout:.0f}s waiting for {what}\n{diagnostics()}"
            )
        time.sleep(interval)


def sample_closes(symbols: list[str], day: dt.date) -> dict[str, float]:
    """What the sample source says each symbol closed at on `day`, the values the run stores."""
    history = SampleMarketData().price_history([f"{s}.AX" for s in symbols], day, day)
    prices = history.prices
    return {
        str(ticker).removesuffix(".AX"): float(close)
        for ticker, close in zip(prices["yahoo_ticker"], prices["close"], strict=True)
    }
