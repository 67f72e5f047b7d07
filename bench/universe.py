"""The point-in-time universe on the real ASX directory archive: how many companies, how long.

Imports the 37 monthly snapshots of ../shared/fixtures/asx/directory-history, then

1. backfills `top:N` (default 200) over the archive's sessions in one run of asx_symbols and
   market_bars against a fake Yahoo on 127.0.0.1 (the real yfinance, one request per ticker),
   and counts the distinct companies the universe held against N on the last session;
2. runs the daily refresh's market steps on each session where a new snapshot takes over, twice
   side by side: with history loads for joining companies (back to --history-start) and without
   (history start = the session), so the difference is what the history loads cost.

Prints figures and asserts nothing. Needs the recorded fixtures (../shared/fixtures or
ASX_FIXTURES_DIR).
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("YF_DISABLE_CURL_CFFI", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--universe", default="top:200")
    parser.add_argument("--first", type=dt.date.fromisoformat, default=dt.date(2023, 9, 1))
    parser.add_argument("--last", type=dt.date.fromisoformat, default=dt.date(2026, 8, 21))
    parser.add_argument(
        "--history-start", type=dt.date.fromisoformat, default=dt.date(2020, 1, 2),
        help="ASX_START_DATE: how far back a joining company's history goes",
    )
    parser.add_argument("--daily-sessions", type=int, default=12, help="snapshot changes to run")
    args = parser.parse_args()
    logging.getLogger("dagster").setLevel(logging.WARNING)

    from asx_pipeline_tests.conftest import shared_fixtures_dir
    from asx_pipeline_tests.fake_yahoo import FakeYahoo

    fixtures = shared_fixtures_dir()
    if fixtures is None:
        sys.exit("recorded fixtures not found: set ASX_FIXTURES_DIR or put shared/fixtures beside")
    archive = sorted((fixtures / "asx" / "directory-history").glob("ASX_Listed_Companies_*.csv"))
    with tempfile.TemporaryDirectory() as folder, FakeYahoo(fixtures) as fake:
        fake.serve_any_symbol(args.history_start, args.last)
        root = Path(folder)
        backfill(root / "backfill", archive, fake, args)
        daily(root, archive, fake, args)


def _setup(root: Path, archive: list[Path]) -> float:
    from asx_pipeline.sources.directory_archive import import_archive
    from asx_pipeline.warehouse.duckdb_backend import DuckDBWarehouse

    root.mkdir(parents=True)
    started = time.perf_counter()
    import_archive(DuckDBWarehouse(root / "warehouse.duckdb"), archive)
    return time.perf_counter() - started


def _run(root: Path, archive: list[Path], fake, universe: str, start: dt.date, first, last):
    from dagster import DagsterInstance, materialize

    from asx_pipeline.assets.prices import market_bars
    from asx_pipeline.assets.symbols import asx_symbols
    from asx_pipeline.calendar import range_tags
    from asx_pipeline.warehouse.io_manager import warehouse_resources
    from asx_pipeline.warehouse.resources import DuckDBWarehouseResource
    from asx_pipeline_tests.loopback_yahoo import LoopbackYahooResource

    started = time.perf_counter()
    result = materialize(
        [asx_symbols, market_bars],
        resources={
            "market_data": LoopbackYahooResource(
                source="yahoo",
                universe=universe,
                data_dir=str(root / "data"),
                directory_source=str(archive[-1]),
                port=fake.port,
                timeout_seconds=30.0,
                start_date=start.isoformat(),
            ),
            **warehouse_resources(DuckDBWarehouseResource(path=str(root / "warehouse.duckdb"))),
        },
        tags=range_tags(first, last),
        instance=DagsterInstance.ephemeral(),
    )
    seconds = time.perf_counter() - started
    metadata = {
        event.materialization.asset_key.path[-1]: event.materialization.metadata
        for event in result.get_asset_materialization_events()
    }
    return result.success, seconds, metadata


def backfill(root: Path, archive: list[Path], fake, args) -> None:
    from asx_pipeline.calendar import sessions_between
    from asx_pipeline.warehouse.duckdb_backend import DuckDBWarehouse
    from asx_pipeline.warehouse.frames import Window
    from asx_pipeline.warehouse.tables import ASX_SYMBOLS, DAILY_PRICES

    imported = _setup(root, archive)
    sessions = sessions_between(args.first, args.last)
    fake.reset_stats()
    ok, seconds, metadata = _run(
        root, archive, fake, args.universe, args.history_start, sessions[0], sessions[-1]
    )
    warehouse = DuckDBWarehouse(root / "warehouse.duckdb")
    symbols = warehouse.read_window(ASX_SYMBOLS, Window(sessions[0], args.last + dt.timedelta(1)))
    prices = warehouse.read_window(
        DAILY_PRICES, Window(args.history_start, args.last + dt.timedelta(1))
    )
    last_day = symbols[symbols["as_of_date"] == sessions[-1]]
    prices_meta = metadata.get("daily_prices", {})
    history = prices_meta.get("history_symbols")
    print(f"Archive import: {len(archive)} files in {imported:.1f} s")
    print(
        f"Backfill {args.universe} {sessions[0]}..{sessions[-1]} ({len(sessions)} sessions), "
        f"one run: {'ok' if ok else 'FAILED'} in {seconds:.1f} s, "
        f"{sum(fake.stats().by_symbol.values())} Yahoo chart requests"
    )
    print(
        f"  distinct companies in the universe over the range: {symbols['symbol'].nunique()} "
        f"(on the last session: {len(last_day)})"
    )
    before_window = prices_meta.get("history_rows_written")
    print(
        f"  companies joining after the first session, with history from {args.history_start}: "
        f"{history.value if history is not None else 0}; rows written before the window: "
        f"{before_window.value if before_window is not None else 0}"
    )
    print(f"  daily_prices rows stored: {len(prices)}")


def daily(root: Path, archive: list[Path], fake, args) -> None:
    """The sessions where a new snapshot takes over, one daily run each, with and without."""
    from asx_pipeline.calendar import is_session, session_before

    captures = [
        dt.date.fromisoformat(path.stem.rsplit("_", 1)[-1]) for path in archive[1:]
    ]
    changes = [d for d in captures if is_session(d)][-args.daily_sessions :]
    print(f"\nDaily runs on {len(changes)} sessions where a new snapshot takes over:")
    print(f"{'session':<11} {'joiners':>7} {'with history':>13} {'without':>9} {'rows':>7}")
    totals = {"with": 0.0, "without": 0.0}
    figures: dict[tuple[str, dt.date], tuple[float, int, int]] = {}
    for mode, start_of in (("with", lambda d: args.history_start), ("without", lambda d: d)):
        folder = root / f"daily-{mode}"
        _setup(folder, archive)
        for day in changes:
            # Yesterday's daily run first, so that the day finds yesterday's bars stored.
            previous = session_before(day)
            _run(folder, archive, fake, args.universe, previous, previous, previous)
            _, seconds, metadata = _run(
                folder, archive, fake, args.universe, start_of(day), day, day
            )
            prices = metadata.get("daily_prices", {})
            joiners = prices["history_symbols"].value if "history_symbols" in prices else 0
            rows = prices["history_rows_written"].value if "history_rows_written" in prices else 0
            figures[(mode, day)] = (seconds, joiners, rows)
            totals[mode] += seconds
    for day in changes:
        with_s, joiners, rows = figures[("with", day)]
        without_s, _, _ = figures[("without", day)]
        print(f"{day!s:<11} {joiners:>7} {with_s:>12.1f}s {without_s:>8.1f}s {rows:>7}")
    print(
        f"{'total':<11} {'':>7} {totals['with']:>12.1f}s {totals['without']:>8.1f}s "
        f"(history loads: {totals['with'] - totals['without']:+.1f} s)"
    )


if __name__ == "__main__":
    main()
