"""Backfill benchmark: a two-year single-run backfill against one run per partition, and the
same single run through the path users take (`dagster asset materialize --partition-range`, a
fresh process with the job's executor and a real instance).

Prints figures; asserts nothing. Each mode runs in its own process so that its peak memory
(ru_maxrss) is its own. Usage:

    python bench/backfill.py [--symbols 200] [--years 2] [--per-partition-sample 5]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--symbols", type=int, default=200)
    parser.add_argument("--years", type=float, default=2.0)
    parser.add_argument("--per-partition-sample", type=int, default=5)
    parser.add_argument("--mode", choices=["single", "per-partition"], help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.mode:
        print(json.dumps(_measure(args)))
        return
    _report(args)


def _sessions(years: float) -> list[dt.date]:
    from asx_pipeline.calendar import sessions_between

    last = dt.date(2025, 11, 28)
    return sessions_between(last - dt.timedelta(days=round(365.25 * years)), last)


def _measure(args: argparse.Namespace) -> dict[str, float]:
    from dagster import DagsterInstance, materialize

    from asx_pipeline.assets.prices import market_bars
    from asx_pipeline.assets.symbols import asx_symbols
    from asx_pipeline.calendar import range_tags
    from asx_pipeline.sources.resource import MarketDataResource
    from asx_pipeline.warehouse.io_manager import warehouse_resources
    from asx_pipeline.warehouse.resources import DuckDBWarehouseResource

    sessions = _sessions(args.years)
    ranges = (
        [(sessions[0], sessions[-1])]
        if args.mode == "single"
        else [(day, day) for day in sessions[-args.per_partition_sample :]]
    )
    resources = {
        "market_data": MarketDataResource(
            source="sample", universe="all", sample_symbols=args.symbols
        ),
        **warehouse_resources(
            DuckDBWarehouseResource(path=str(Path(args.data_dir) / "warehouse.duckdb"))
        ),
    }
    instance = DagsterInstance.ephemeral()
    rows = 0
    started = time.perf_counter()
    for first, last in ranges:
        result = materialize(
            [asx_symbols, market_bars],
            resources=resources,
            tags=range_tags(first, last),
            instance=instance,
        )
        # A range run records one materialisation per partition, each with the run's metadata.
        row_counts = {
            event.asset_key: int(event.materialization.metadata["dagster/row_count"].value)
            for event in result.get_asset_materialization_events()
        }
        rows += sum(row_counts.values())
    wall = time.perf_counter() - started
    return {
        "wall_seconds": wall,
        "rows": rows,
        "runs": len(ranges),
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def _run_mode(mode: str, args: argparse.Namespace) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as data_dir:
        command = [
            sys.executable,
            __file__,
            "--mode",
            mode,
            "--data-dir",
            data_dir,
            "--symbols",
            str(args.symbols),
            "--years",
            str(args.years),
            "--per-partition-sample",
            str(args.per_partition_sample),
        ]
        env = {**os.environ, "DAGSTER_HOME": data_dir}
        started = time.perf_counter()
        output = subprocess.run(command, env=env, check=True, capture_output=True, text=True)
        figures = json.loads(output.stdout.strip().splitlines()[-1])
        figures["process_seconds"] = time.perf_counter() - started
        return figures


def _run_cli(args: argparse.Namespace) -> float:
    """Seconds of `dagster asset materialize` over the whole range, as a person types it."""
    from refresh import scratch_of, user_environment

    sessions = _sessions(args.years)
    with tempfile.TemporaryDirectory() as scratch:
        # Partitions from the range's first session: no history before it to load for joining
        # symbols, so the run writes the same rows as the in-process mode.
        env = user_environment(
            Path(scratch), args.symbols, ASX_START_DATE=sessions[0].isoformat()
        )
        command = [
            str(Path(sys.executable).with_name("dagster")), "asset", "materialize",
            "-m", "asx_pipeline.definitions",
            "--select", "asx_symbols,daily_prices,corporate_actions",
            "--partition-range", f"{sessions[0]}...{sessions[-1]}",
        ]  # fmt: skip
        started = time.perf_counter()
        subprocess.run(
            command, env=env, cwd=scratch_of(env), check=True, capture_output=True, text=True
        )
        return time.perf_counter() - started


def _report(args: argparse.Namespace) -> None:
    sessions = _sessions(args.years)
    print(
        f"Backfill of {len(sessions)} ASX sessions ({sessions[0]} .. {sessions[-1]}) "
        f"x {args.symbols} sample symbols, embedded DuckDB, {os.cpu_count()} cores"
    )
    single = _run_mode("single", args)
    per = _run_mode("per-partition", args)
    per_run = per["wall_seconds"] / per["runs"]
    extrapolated = per_run * len(sessions)
    print(
        f"single run     : {single['wall_seconds']:8.1f} s in-run, "
        f"{single['process_seconds']:6.1f} s end to end, {single['rows']:>9,.0f} rows, "
        f"{single['rows'] / single['wall_seconds']:>9,.0f} rows/s, "
        f"peak {single['peak_rss_mib']:,.0f} MiB"
    )
    print(
        f"run per day    : {per_run:8.2f} s per run over {per['runs']} runs -> "
        f"{extrapolated:,.0f} s for {len(sessions)} runs (extrapolated), "
        f"{per['rows'] / per['wall_seconds']:>9,.0f} rows/s, "
        f"peak {per['peak_rss_mib']:,.0f} MiB"
    )
    cli = _run_cli(args)
    print(
        f"dagster CLI    : {cli:8.1f} s end to end (`dagster asset materialize "
        "--partition-range`, one run, ASX_EXECUTOR's executor)"
    )
    print(f"speed-up       : {extrapolated / single['wall_seconds']:.0f}x")


if __name__ == "__main__":
    main()
