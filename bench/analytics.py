"""Benchmark of the analytics assets (issue 4, part 7): prints wall seconds and peak memory.

1. a daily run for 2,000 sample symbols with its full lookback (260 sessions of prices);
2. a two-year range for 200 symbols, in one run.

The core tables are filled first, untimed, straight through the sample source and the warehouse;
each timed scenario then materialises daily_indicators, market_breadth, screener_results and
daily_report through Dagster in a fresh process, whose peak RSS (which includes about 250 MB of
imported Dagster/pandas) is printed. Run: `.venv/bin/python bench/analytics.py`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
warnings.filterwarnings("ignore")

DAILY_DAY = dt.date(2025, 11, 14)
RANGE_FIRST, RANGE_LAST = dt.date(2023, 11, 14), dt.date(2025, 11, 14)
ANALYTICS = ["daily_indicators", "market_breadth", "screener_results", "daily_report"]


def fill(path: Path, symbols: int, first: dt.date, last: dt.date) -> float:
    """Fill the core tables for `symbols` sample symbols from the lookback before `first`."""
    from asx_pipeline.analytics.indicators import LOOKBACK_SESSIONS
    from asx_pipeline.assets.prices import actions_frame, prices_frame
    from asx_pipeline.assets.symbols import symbols_for_sessions
    from asx_pipeline.calendar import sessions_between
    from asx_pipeline.sources.resource import MarketDataResource
    from asx_pipeline.warehouse.duckdb_backend import DuckDBWarehouse
    from asx_pipeline.warehouse.frames import Window, conform_frame
    from asx_pipeline.warehouse.tables import TABLES

    started = time.perf_counter()
    start = sessions_between(first - dt.timedelta(days=LOOKBACK_SESSIONS * 2), first)[
        -LOOKBACK_SESSIONS
    ]
    market = MarketDataResource(source="sample", universe="all", sample_symbols=symbols)
    sessions = sessions_between(start, last)
    listed = symbols_for_sessions(market, DuckDBWarehouse(path), sessions)[0].frame
    history = market.client().price_history(sorted(listed["yahoo_ticker"].unique()), start, last)
    now = dt.datetime.now(dt.UTC)
    frames = {
        "asx_symbols": listed,
        "daily_prices": prices_frame(history, listed, "sample", now),
        "corporate_actions": actions_frame(history, listed, "sample"),
    }
    window = Window(start, last + dt.timedelta(days=1))
    warehouse = DuckDBWarehouse(path)
    for name, frame in frames.items():
        warehouse.replace_window(TABLES[name], window, conform_frame(TABLES[name], window, frame))
    return time.perf_counter() - started


def run(path: Path, symbols: int, first: dt.date, last: dt.date) -> dict[str, object]:
    """Materialise the analytics assets over first..last in one run (in this process)."""
    from dagster import AssetSelection, DagsterEventType, DagsterInstance, materialize

    from asx_pipeline.assets.breadth import market_breadth
    from asx_pipeline.assets.indicators import daily_indicators
    from asx_pipeline.assets.prices import market_bars
    from asx_pipeline.assets.reports import ReportsResource, daily_report
    from asx_pipeline.assets.screeners import ScreenersResource, screener_results
    from asx_pipeline.assets.symbols import asx_symbols
    from asx_pipeline.calendar import range_tags
    from asx_pipeline.sources.resource import MarketDataResource
    from asx_pipeline.warehouse.io_manager import warehouse_resources
    from asx_pipeline.warehouse.resources import DuckDBWarehouseResource

    started = time.perf_counter()
    result = materialize(
        [
            asx_symbols,
            market_bars,
            daily_indicators,
            market_breadth,
            screener_results,
            daily_report,
        ],
        selection=AssetSelection.assets(*ANALYTICS),
        resources={
            "market_data": MarketDataResource(source="sample", sample_symbols=symbols),
            **warehouse_resources(DuckDBWarehouseResource(path=str(path))),
            "screeners": ScreenersResource(path=str(REPO_ROOT / "config" / "screeners.yml")),
            "reports": ReportsResource(directory=str(path.parent / "reports")),
        },
        tags=range_tags(first, last),
        instance=DagsterInstance.ephemeral(),
    )
    wall = time.perf_counter() - started
    steps = {
        event.step_key: round(event.event_specific_data.duration_ms / 1000, 2)
        for event in result.all_events
        if event.event_type == DagsterEventType.STEP_SUCCESS
    }
    materializations = [
        event.event_specific_data.materialization
        for event in result.get_asset_materialization_events()
    ]
    rows = {
        m.asset_key.to_user_string(): m.metadata["dagster/row_count"].value
        for m in materializations
    }
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "wall_seconds": round(wall, 2),
        "peak_rss_mib": round(peak_mib),
        "steps": steps,
        "rows": rows,
    }


def scenario(name: str, symbols: int, first: dt.date, last: dt.date) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "warehouse.duckdb"
        filled = fill(path, symbols, first, last)
        child = subprocess.run(
            [
                sys.executable,
                __file__,
                "--run",
                str(path),
                str(symbols),
                first.isoformat(),
                last.isoformat(),
            ],
            check=True,
            capture_output=True,
            text=True,
        )
        figures = json.loads(child.stdout.strip().splitlines()[-1])
    print(f"{name}: {symbols} symbols, {first} .. {last}")
    print(f"  core tables filled (untimed setup): {filled:.1f} s")
    print(
        f"  analytics run: {figures['wall_seconds']} s wall, peak RSS {figures['peak_rss_mib']} MiB"
    )
    print(f"  steps (s): {figures['steps']}")
    print(f"  rows written: {figures['rows']}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--run", nargs=4, metavar=("PATH", "SYMBOLS", "FIRST", "LAST"))
    args = parser.parse_args()
    if args.run:
        path, symbols, first, last = args.run
        figures = run(
            Path(path), int(symbols), dt.date.fromisoformat(first), dt.date.fromisoformat(last)
        )
        print(json.dumps(figures))
        return
    scenario("Daily run", 2000, DAILY_DAY, DAILY_DAY)
    scenario("Two-year range", 200, RANGE_FIRST, RANGE_LAST)


if __name__ == "__main__":
    main()
