"""The evening refresh of one session through the path users take, against one asset.

Times `dagster asset materialize` (a fresh process, the job's executor, the DAGSTER_HOME
instance: what a person types, and the same executor the daemon's runs use) for

- every daily asset of one session, with their asset checks (the evening refresh), and
- one asset of the same session (`asx_symbols`), the yardstick of what a run costs anyway,

once for each executor, side by side in one run: Dagster's default multiprocess executor (every
step in a freshly spawned Python, bench/default_executor_location.py), and the two that
ASX_EXECUTOR selects: `multiprocess` (the `forkserver` start method, the project preloaded) and
`in_process` (the default). The core tables are filled first, untimed, for
the indicators' lookback. Run: `.venv/bin/python bench/refresh.py [--symbols N] [--repeat N]
[--executors default,multiprocess,in_process]` (`--executors in_process` times one variant).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(REPO_ROOT / "bench"))
warnings.filterwarnings("ignore")

DAY = dt.date(2025, 11, 14)
DAILY_ASSETS = (
    "asx_symbols,daily_prices,corporate_actions,daily_indicators,market_breadth,"
    "screener_results,daily_report"
)
ONE_ASSET = "asx_symbols"
# --executors key -> (printed name, code location, ASX_EXECUTOR); the first is Dagster's own
# default. Keys so that one variant can be timed alone: all three take about a minute.
EXECUTORS: dict[str, tuple[str, list[str], str]] = {
    "default": (
        "multiprocess, spawned per step (Dagster's default)",
        ["-f", str(REPO_ROOT / "bench" / "default_executor_location.py")],
        "in_process",
    ),
    "multiprocess": (
        "ASX_EXECUTOR=multiprocess (forkserver, preloaded)",
        ["-m", "asx_pipeline.definitions"],
        "multiprocess",
    ),
    "in_process": (
        "ASX_EXECUTOR=in_process (the default)",
        ["-m", "asx_pipeline.definitions"],
        "in_process",
    ),
}


def user_environment(root: Path, symbols: int, **settings: str) -> dict[str, str]:
    """A fresh DAGSTER_HOME (the repo's dagster.yaml) and data folder under `root`, and the
    environment of a shell that runs the sample source there: no inherited ASX_/SUPABASE_
    setting can point a benchmark at real data. Run the commands in `scratch_of(env)`, not in
    the repo, where a .env file could point them at the user's Supabase all the same."""
    home, data = root / "dagster_home", root / "data"
    home.mkdir(exist_ok=True)
    data.mkdir(exist_ok=True)
    (home / "dagster.yaml").write_text((REPO_ROOT / "dagster.yaml").read_text())
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SUPABASE_", "ASX_"))}
    env.update(
        DAGSTER_HOME=str(home),
        ASX_MARKET_DATA="sample",
        ASX_DATA_DIR=str(data),
        ASX_UNIVERSE="all",
        ASX_SAMPLE_SYMBOLS=str(symbols),
        **settings,
    )
    return env


def scratch_of(env: dict[str, str]) -> Path:
    """The folder `user_environment` made: the working directory of a benchmark's commands
    (Dagster's CLI and settings.py read a .env from the working directory)."""
    return Path(env["DAGSTER_HOME"]).parent


def materialize(
    env: dict[str, str], selection: str, variant: tuple[list[str], str]
) -> tuple[float, dict[str, float]]:
    """(wall seconds, seconds per step) of one `dagster asset materialize`."""
    from dagster import DagsterEventType, DagsterInstance

    location, executor = variant
    command = [
        str(Path(sys.executable).with_name("dagster")), "asset", "materialize", *location,
        "--select", selection, "--partition", DAY.isoformat(),
    ]  # fmt: skip
    started = time.perf_counter()
    done = subprocess.run(
        command, env={**env, "ASX_EXECUTOR": executor}, capture_output=True, text=True,
        check=False, cwd=scratch_of(env),
    )  # fmt: skip
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    os.environ["DAGSTER_HOME"] = env["DAGSTER_HOME"]
    with DagsterInstance.get() as instance:
        run = instance.get_runs(limit=1)[0]
        steps = {
            record.event_log_entry.step_key: round(
                record.event_log_entry.dagster_event.event_specific_data.duration_ms / 1000, 2
            )
            for record in instance.get_records_for_run(
                run.run_id, of_type=DagsterEventType.STEP_SUCCESS
            ).records
        }
    return wall, steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=2, help="runs per figure (median shown)")
    parser.add_argument(
        "--executors",
        default=",".join(EXECUTORS),
        help=f"comma-separated, of {', '.join(EXECUTORS)} (default: all, in that order)",
    )
    args = parser.parse_args()
    chosen = [key.strip() for key in args.executors.split(",") if key.strip()]
    if unknown := sorted(set(chosen) - set(EXECUTORS)):
        parser.error(
            f"unknown executor(s) {', '.join(unknown)}; choose from {', '.join(EXECUTORS)}"
        )
    from analytics import fill_lookback

    with tempfile.TemporaryDirectory() as scratch:
        env = user_environment(Path(scratch), args.symbols)
        warehouse = Path(env["ASX_DATA_DIR"]) / "warehouse.duckdb"
        filled = fill_lookback(warehouse, args.symbols, DAY)
        print(
            f"Evening refresh of {DAY} ({args.symbols} sample symbols, core lookback filled in "
            f"{filled:.1f} s, untimed); `dagster asset materialize`, median of {args.repeat}"
        )
        print(
            f"{'executor':<52} {'refresh s':>9} {'steps':>5} {'compute s':>9} "
            f"{'one asset s':>11} {'ratio':>6}"
        )
        steps: list[tuple[str, dict[str, float]]] = []
        runs: list[tuple[str, list[float], list[float]]] = []
        for key in chosen:
            name, location, executor = EXECUTORS[key]
            variant = (location, executor)
            # Interleaved, so that the box slowing down or speeding up (it does, by a third over
            # a minute on a shared VM) weighs on both figures alike.
            refresh, single = [], []
            for _ in range(args.repeat):
                refresh.append(materialize(env, DAILY_ASSETS, variant))
                single.append(materialize(env, ONE_ASSET, variant))
            wall = statistics.median(r[0] for r in refresh)
            one = statistics.median(s[0] for s in single)
            compute = statistics.median(sum(r[1].values()) for r in refresh)
            print(
                f"{name:<52} {wall:>9.1f} {len(refresh[0][1]):>5} {compute:>9.1f} "
                f"{one:>11.1f} {wall / one:>5.2f}x"
            )
            steps.append((name, refresh[-1][1]))
            runs.append((name, [r[0] for r in refresh], [s[0] for s in single]))
        for name, durations in steps:
            slowest = sorted(durations.items(), key=lambda item: -item[1])[:6]
            print(f"  {name}, slowest steps (s): " + ", ".join(f"{k} {v}" for k, v in slowest))
        for name, refreshes, singles in runs:
            # Every run, so a noisy median shows as such; the fastest of each is the figure
            # least disturbed by whatever else the box was doing.
            print(
                f"  {name}, each run (s): refresh {_seconds(refreshes)}; one asset "
                f"{_seconds(singles)}; fastest {min(refreshes) / min(singles):.2f}x"
            )


def _seconds(values: list[float]) -> str:
    return " ".join(f"{value:.1f}" for value in values)


if __name__ == "__main__":
    main()
