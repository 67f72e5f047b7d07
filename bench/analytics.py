"""The derived tables against the core tables of the same range, through the path users take.

1. a two-year range for 200 symbols, in one run;
2. a daily run for 2,000 sample symbols with its full lookback (260 sessions of prices).

The lookback before the range is filled first, untimed, straight through the sample source and
the warehouse. Each scenario then materialises the core assets (`asx_symbols`, `daily_prices`,
`corporate_actions`) and, after them, the derived ones (`daily_indicators`, `market_breadth`,
`screener_results`, `daily_report`) over the same sessions, two ways side by side:

- `dagster asset materialize --partition-range` in a fresh process against a DAGSTER_HOME
  instance (what a person types: the configured ASX_EXECUTOR, run and events stored in the
  instance's SQLite), and
- in one Python process on an ephemeral instance (`materialize`), which leaves that cost out.

It prints wall seconds, the derived/core ratio, seconds per step and the rows written. Peak RSS
(which includes about 250 MB of imported Dagster/pandas) is printed for the in-process runs.
Run: `.venv/bin/python bench/analytics.py [--only range|daily] [--repeat N]` (N pairs of runs
per path, each pair's ratio printed). It asserts nothing.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import shutil
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

DAILY_DAY = dt.date(2025, 11, 14)
RANGE_FIRST, RANGE_LAST = dt.date(2023, 11, 14), dt.date(2025, 11, 14)
CORE = ["asx_symbols", "daily_prices", "corporate_actions"]
ANALYTICS = ["daily_indicators", "market_breadth", "screener_results", "daily_report"]


def lookback_start(first: dt.date) -> dt.date:
    from asx_pipeline.analytics.indicators import LOOKBACK_SESSIONS
    from asx_pipeline.calendar import session_before

    start = session_before(first, LOOKBACK_SESSIONS - 1)
    assert start is not None
    return start


def fill_lookback(path: Path, symbols: int, first: dt.date) -> float:
    """Fill the core tables for `symbols` sample symbols over the lookback before `first`."""
    from asx_pipeline.assets.prices import actions_frame, prices_frame
    from asx_pipeline.assets.symbols import symbols_for_sessions
    from asx_pipeline.calendar import session_before, sessions_between
    from asx_pipeline.sources.resource import MarketDataResource
    from asx_pipeline.warehouse.duckdb_backend import DuckDBWarehouse
    from asx_pipeline.warehouse.frames import Window, conform_frame
    from asx_pipeline.warehouse.tables import TABLES

    started = time.perf_counter()
    start, last = lookback_start(first), session_before(first)
    market = MarketDataResource(source="sample", universe="all", sample_symbols=symbols)
    path.parent.mkdir(parents=True, exist_ok=True)
    warehouse = DuckDBWarehouse(path)
    listed = symbols_for_sessions(market, warehouse, sessions_between(start, last))[0].frame
    history = market.client().price_history(sorted(listed["yahoo_ticker"].unique()), start, last)
    now = dt.datetime.now(dt.UTC)
    frames = {
        "asx_symbols": listed,
        "daily_prices": prices_frame(history, listed, "sample", now),
        "corporate_actions": actions_frame(history, listed, "sample"),
    }
    window = Window(start, last + dt.timedelta(days=1))
    for name, frame in frames.items():
        warehouse.replace_window(TABLES[name], window, conform_frame(TABLES[name], window, frame))
    return time.perf_counter() - started


def run(path: Path, symbols: int, first: dt.date, last: dt.date) -> dict[str, object]:
    """The core assets, then the derived ones, over first..last: two runs in this process, on
    a fresh ephemeral instance."""
    from dagster import AssetSelection, DagsterEventType, DagsterInstance, materialize

    from asx_pipeline.assets.breadth import market_breadth
    from asx_pipeline.assets.indicators import daily_indicators
    from asx_pipeline.assets.prices import market_bars
    from asx_pipeline.assets.reports import ReportsResource, daily_report
    from asx_pipeline.assets.screeners import ScreenersResource, screener_results
    from asx_pipeline.assets.symbols import asx_symbols
    from asx_pipeline.calendar import range_tags
    from asx_pipeline.report_mail import ReportMailResource
    from asx_pipeline.sources.resource import MarketDataResource
    from asx_pipeline.warehouse.io_manager import warehouse_resources
    from asx_pipeline.warehouse.resources import DuckDBWarehouseResource

    figures: dict[str, object] = {}
    instance = DagsterInstance.ephemeral()
    for part, selected in (("core", CORE), ("derived", ANALYTICS)):
        started = time.perf_counter()
        result = materialize(
            [asx_symbols, market_bars, daily_indicators, market_breadth, screener_results,
             daily_report],
            selection=AssetSelection.assets(*selected),
            resources={
                "market_data": MarketDataResource(
                    source="sample", universe="all", sample_symbols=symbols
                ),
                **warehouse_resources(DuckDBWarehouseResource(path=str(path))),
                "screeners": ScreenersResource(path=str(REPO_ROOT / "config" / "screeners.yml")),
                "reports": ReportsResource(directory=str(path.parent / "reports")),
                "report_mail": ReportMailResource(),
            },
            tags=range_tags(first, last),
            instance=instance,
        )  # fmt: skip
        wall = time.perf_counter() - started
        figures[part] = {
            "wall_seconds": round(wall, 2),
            "steps": {
                event.step_key: round(event.event_specific_data.duration_ms / 1000, 2)
                for event in result.all_events
                if event.event_type == DagsterEventType.STEP_SUCCESS
            },
            "rows": _rows(
                event.event_specific_data.materialization
                for event in result.get_asset_materialization_events()
            ),
        }
    figures["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return figures


def _rows(materializations) -> dict[str, int]:
    """Rows written per asset (a range run reports its row count on each partition's event)."""
    rows: dict[str, int] = {}
    for m in materializations:
        rows[m.asset_key.to_user_string()] = m.metadata["dagster/row_count"].value
    return rows


def through_cli(env: dict[str, str], selected: list[str], first: dt.date, last: dt.date):
    """(wall seconds, seconds per step) of `dagster asset materialize` over first..last."""
    from dagster import DagsterEventType, DagsterInstance
    from refresh import scratch_of

    command = [
        str(Path(sys.executable).with_name("dagster")), "asset", "materialize",
        "-m", "asx_pipeline.definitions", "--select", ",".join(selected),
        *(["--partition", first.isoformat()] if first == last
          else ["--partition-range", f"{first}...{last}"]),
    ]  # fmt: skip
    started = time.perf_counter()
    done = subprocess.run(command, env=env, cwd=scratch_of(env), capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    os.environ["DAGSTER_HOME"] = env["DAGSTER_HOME"]
    with DagsterInstance.get() as instance:
        run_id = instance.get_runs(limit=1)[0].run_id
        steps = {
            record.event_log_entry.step_key: round(
                record.event_log_entry.dagster_event.event_specific_data.duration_ms / 1000, 2
            )
            for record in instance.get_records_for_run(
                run_id, of_type=DagsterEventType.STEP_SUCCESS
            ).records
        }
    return round(wall, 2), steps


def scenario(name: str, symbols: int, first: dt.date, last: dt.date, repeat: int = 1) -> None:
    """`repeat` pairs (core, then derived) on each path. A pair runs back to back, so that the
    box speeding up or slowing down (by a third within a minute on this VM) weighs on both of
    its figures alike; every pair's ratio is printed, and the median of each figure."""
    from refresh import user_environment

    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        # Partitions from the lookback's first session, as a user who loaded that history.
        env = user_environment(root, symbols, ASX_START_DATE=lookback_start(first).isoformat())
        cli_path = Path(env["ASX_DATA_DIR"]) / "warehouse.duckdb"
        filled = fill_lookback(cli_path, symbols, first)
        in_process_path = root / "in_process" / "warehouse.duckdb"
        in_process_path.parent.mkdir()
        shutil.copyfile(cli_path, in_process_path)
        cli_pairs, in_process_pairs = [], []
        for _ in range(repeat):
            cli_pairs.append(
                {part: through_cli(env, selected, first, last)
                 for part, selected in (("core", CORE), ("derived", ANALYTICS))}
            )  # fmt: skip
            child = subprocess.run(
                [sys.executable, __file__, "--run", str(in_process_path), str(symbols),
                 first.isoformat(), last.isoformat()],
                check=True, capture_output=True, text=True,
            )  # fmt: skip
            in_process_pairs.append(json.loads(child.stdout.strip().splitlines()[-1]))
    print(f"{name}: {symbols} symbols, {first} .. {last}")
    print(f"  lookback filled (untimed setup): {filled:.1f} s")
    print(f"  {'path (median of ' + str(repeat) + ')':<52} {'core s':>8} {'derived s':>10} "
          f"{'derived/core':>13}  each pair")  # fmt: skip
    paths = {
        "dagster asset materialize (fresh process, instance)": [
            (pair["core"][0], pair["derived"][0]) for pair in cli_pairs
        ],
        "in one process, ephemeral instance": [
            (pair["core"]["wall_seconds"], pair["derived"]["wall_seconds"])
            for pair in in_process_pairs
        ],
    }
    for label, pairs in paths.items():
        core = statistics.median(c for c, _ in pairs)
        derived = statistics.median(d for _, d in pairs)
        each = " ".join(f"{d / c:.2f}x" for c, d in pairs)
        print(f"  {label:<52} {core:>8.1f} {derived:>10.1f} {derived / core:>12.2f}x  {each}")
    cli, in_process = cli_pairs[-1], in_process_pairs[-1]
    print(
        f"  steps through dagster asset materialize, last pair (s): "
        f"{cli['core'][1] | cli['derived'][1]}"
    )
    print(
        "  steps in one process, last pair (s): "
        f"{in_process['core']['steps'] | in_process['derived']['steps']}"
    )
    print(f"  rows written: {in_process['core']['rows'] | in_process['derived']['rows']}")
    print(f"  peak RSS of the in-process runs: {in_process['peak_rss_mib']} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", nargs=4, metavar=("PATH", "SYMBOLS", "FIRST", "LAST"))
    parser.add_argument("--only", choices=("range", "daily"))
    parser.add_argument(
        "--repeat", type=int, default=1, help="core/derived pairs per path (median shown)"
    )
    args = parser.parse_args()
    if args.run:
        path, symbols, first, last = args.run
        figures = run(
            Path(path), int(symbols), dt.date.fromisoformat(first), dt.date.fromisoformat(last)
        )
        print(json.dumps(figures))
        return
    if args.only != "daily":
        scenario("Two-year range", 200, RANGE_FIRST, RANGE_LAST, args.repeat)
    if args.only != "range":
        scenario("Daily run", 2000, DAILY_DAY, DAILY_DAY, args.repeat)


if __name__ == "__main__":
    main()
