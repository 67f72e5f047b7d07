"""The point-in-time universe on the real archive of the ASX directory (37 monthly snapshots).

The archive is imported the way a user does it (`asx-pipeline directory import`), then
asx_symbols and market_bars run through Dagster against it; prices come from the fake Yahoo
through the real yfinance.
"""

import datetime as dt
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from dagster import DagsterInstance, materialize

from asx_pipeline.analytics.point_in_time import code_changes
from asx_pipeline.assets.indicators import daily_indicators
from asx_pipeline.assets.prices import market_bars
from asx_pipeline.assets.symbols import asx_symbols, store_directory_snapshots
from asx_pipeline.calendar import range_tags, session_before, sessions_between
from asx_pipeline.cli import EXIT_USAGE
from asx_pipeline.sources.asx_directory import load_directory
from asx_pipeline.sources.directory_archive import import_archive
from asx_pipeline.sources.resource import MarketDataResource
from asx_pipeline.warehouse.duckdb_backend import DuckDBWarehouse
from asx_pipeline.warehouse.frames import Window, conform_frame
from asx_pipeline.warehouse.io_manager import warehouse_resources
from asx_pipeline.warehouse.resources import DuckDBWarehouseResource
from asx_pipeline.warehouse.tables import (
    ASX_DIRECTORY_SNAPSHOTS,
    ASX_SYMBOLS,
    CORPORATE_ACTIONS,
    DAILY_INDICATORS,
    DAILY_PRICES,
    TableSpec,
)
from asx_pipeline_tests.fake_yahoo import FakeYahoo, Fault
from asx_pipeline_tests.loopback_yahoo import LoopbackYahooResource
from asx_pipeline_tests.test_cli import _cli as run_cli

ARCHIVE_FILES = 37


@pytest.fixture
def archive(fixtures_dir: Path) -> list[Path]:
    files = sorted((fixtures_dir / "asx" / "directory-history").glob("ASX_Listed_Companies_*.csv"))
    assert len(files) == ARCHIVE_FILES
    return files


class ArchiveWarehouse:
    """A DuckDB warehouse holding the imported archive, and Dagster runs against it."""

    def __init__(self, root: Path, archive: list[Path]) -> None:
        self.root = root
        self.path = root / "warehouse.duckdb"
        self.warehouse = DuckDBWarehouse(self.path)
        self.latest_file = archive[-1]
        self.instance = DagsterInstance.ephemeral()
        import_archive(self.warehouse, archive)

    def market_data(self, universe: str = "top:200", **options) -> MarketDataResource:
        return MarketDataResource(
            source="yahoo",
            universe=universe,
            data_dir=str(self.root / "data"),
            directory_source=str(self.latest_file),
            **options,
        )

    def loopback(self, fake: FakeYahoo, universe: str, start: dt.date) -> LoopbackYahooResource:
        """The Yahoo source against `fake`, with history back to `start` for joiners."""
        return LoopbackYahooResource(
            source="yahoo",
            universe=universe,
            data_dir=str(self.root / "data"),
            directory_source=str(self.latest_file),
            port=fake.port,
            start_date=start.isoformat(),
        )

    def run(self, assets, first: dt.date, last: dt.date, market_data: MarketDataResource):
        result = materialize(
            assets,
            resources={
                "market_data": market_data,
                **warehouse_resources(DuckDBWarehouseResource(path=str(self.path))),
            },
            tags=range_tags(first, last),
            instance=self.instance,
        )
        assert result.success
        return result

    def read(self, table: TableSpec, first: dt.date, last: dt.date) -> pd.DataFrame:
        return self.warehouse.read_window(table, Window(first, last + dt.timedelta(days=1)))


@pytest.fixture
def stored(tmp_path: Path, archive: list[Path]) -> ArchiveWarehouse:
    return ArchiveWarehouse(tmp_path, archive)


def _on(frame: pd.DataFrame, day: dt.date) -> pd.DataFrame:
    return frame[frame["as_of_date"] == day].set_index("symbol")


def _import(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`asx-pipeline directory import ARGS`, as a user runs it."""
    return run_cli(root, "directory", "import", *args)


def test_import_is_idempotent_and_reports_what_it_added(tmp_path, archive):
    imported = _import(tmp_path, *map(str, archive))
    assert imported.returncode == 0, imported.stderr
    first = imported.stdout
    assert "Added 37 snapshot(s) (2023-08-31 .. 2026-08-22)" in first
    assert "IPL -> DNL (same listing date)" in first or "--code-changes" in first
    warehouse = DuckDBWarehouse(tmp_path / "data" / "warehouse.duckdb")
    stored = warehouse.partition_values(ASX_DIRECTORY_SNAPSHOTS)
    rows = warehouse.read_window(
        ASX_DIRECTORY_SNAPSHOTS, Window(stored[0], stored[-1] + dt.timedelta(days=1))
    )
    assert len(stored) == ARCHIVE_FILES
    assert len(rows) == sum(len(load_directory(str(path))) for path in archive)

    second = _import(tmp_path, *map(str, archive)).stdout
    assert "Added no snapshot." in second
    assert "Already stored, left as they were: 37 snapshot(s)." in second
    again = warehouse.read_window(
        ASX_DIRECTORY_SNAPSHOTS, Window(stored[0], stored[-1] + dt.timedelta(days=1))
    )
    pd.testing.assert_frame_equal(rows, again)


def test_import_refuses_a_file_without_a_capture_date(tmp_path, fixtures_dir):
    undated = fixtures_dir / "asx" / "ASX_Listed_Companies.csv"
    refused = _import(tmp_path, str(undated))
    assert refused.returncode == EXIT_USAGE
    assert "no capture date in the name of" in refused.stderr and "--as-of" in refused.stderr
    dated = _import(tmp_path, str(undated), "--as-of", "2026-08-01")
    assert dated.returncode == 0, dated.stderr
    assert "Added 1 snapshot(s) (2026-08-01 .. 2026-08-01)" in dated.stdout


def test_the_archive_shows_ipl_renamed_dnl(archive):
    before = load_directory(str(next(p for p in archive if "2025-03-31" in p.name)))
    after = load_directory(str(next(p for p in archive if "2025-04-30" in p.name)))
    changes = {change.old: change for change in code_changes(before, after)}
    assert changes["IPL"].new == "DNL"
    assert changes["IPL"].matched_on == "listing date"


def test_each_session_gets_its_own_snapshot(stored: ArchiveWarehouse):
    first, last = dt.date(2023, 9, 1), dt.date(2024, 7, 31)
    stored.run([asx_symbols], first, last, stored.market_data())
    symbols = stored.read(ASX_SYMBOLS, first, last)
    sessions = sessions_between(first, last)
    assert sorted(set(symbols["as_of_date"])) == sessions
    assert symbols.groupby("as_of_date")["symbol"].count().eq(200).all()
    captured = stored.warehouse.partition_values(ASX_DIRECTORY_SNAPSHOTS)
    for day in sessions:
        expected = max(c for c in captured if c <= day)
        assert set(_on(symbols, day)["snapshot_captured_on"]) == {expected}
    assert not symbols["snapshot_after_session"].any()
    # The last session of a month is on that month's capture, the next on the same one.
    assert set(_on(symbols, dt.date(2024, 1, 31))["snapshot_captured_on"]) == {
        dt.date(2024, 1, 31)
    }
    assert set(_on(symbols, dt.date(2024, 2, 1))["snapshot_captured_on"]) == {
        dt.date(2024, 1, 31)
    }

    # Newcrest (NCM), taken over by Newmont in November 2023: in the universe in September 2023
    # with that month's market cap, and nowhere in 2024.
    september = _on(symbols, dt.date(2023, 9, 15))
    assert september.loc["NCM", "market_cap"] == 23384133642
    assert september.loc["NCM", "snapshot_captured_on"] == dt.date(2023, 8, 31)
    assert "NCM" not in set(symbols.loc[symbols["as_of_date"] >= dt.date(2024, 1, 2), "symbol"])
    # Guzman y Gomez (GYG), listed 20 June 2024: absent before its listing, present after.
    before_listing = symbols[symbols["as_of_date"] < dt.date(2024, 6, 20)]
    assert "GYG" not in set(before_listing["symbol"])
    assert "GYG" in set(_on(symbols, dt.date(2024, 7, 1)).index)
    # 200 a day, and over the range more companies than 200: the survivors are not all.
    assert symbols["symbol"].nunique() > 200

    # A rerun gives identical rows.
    stored.run([asx_symbols], first, last, stored.market_data())
    pd.testing.assert_frame_equal(symbols, stored.read(ASX_SYMBOLS, first, last))


def test_a_session_before_every_snapshot_takes_the_earliest_and_says_so(stored):
    day = dt.date(2023, 8, 15)
    stored.run([asx_symbols], day, day, stored.market_data())
    symbols = stored.read(ASX_SYMBOLS, day, day)
    assert set(symbols["snapshot_captured_on"]) == {dt.date(2023, 8, 31)}
    assert symbols["snapshot_after_session"].all()


def test_todays_directory_is_stored_once_and_never_replaced(tmp_path, archive):
    warehouse = DuckDBWarehouse(tmp_path / "w.duckdb")
    today = dt.date(2026, 9, 1)
    market = MarketDataResource(source="yahoo", directory_source=str(archive[-1]))
    added = store_directory_snapshots(market.client(), warehouse, [today], today)
    assert added == {today: len(load_directory(str(archive[-1])))}
    # Later in the day, a backfill (or a rerun) sees a different list: today's stays as stored.
    other = MarketDataResource(source="yahoo", directory_source=str(archive[0]))
    assert store_directory_snapshots(other.client(), warehouse, [today], today) == {}
    rows = warehouse.read_window(ASX_DIRECTORY_SNAPSHOTS, Window.single(today))
    assert set(rows["symbol"]) == set(load_directory(str(archive[-1]))["symbol"])
    # A backfill of past sessions does not need the ASX when snapshots exist.
    past = [dt.date(2026, 8, 3)]
    assert store_directory_snapshots(other.client(), warehouse, past, today) == {}


@pytest.fixture
def fake_yahoo(fixtures_dir):
    with FakeYahoo(fixtures_dir) as fake:
        fake.serve_any_symbol(dt.date(2022, 1, 3), dt.date(2026, 8, 31))
        yield fake


def _joining_session(stored: ArchiveWarehouse, universe: str) -> tuple[dt.date, set[str]]:
    """The first session on the 2025-04-30 snapshot (that day itself), and who joins
    `universe` on it."""
    day = dt.date(2025, 4, 30)
    previous = session_before(day)
    probe = stored.market_data(universe)
    stored.run([asx_symbols], previous, day, probe)
    symbols = stored.read(ASX_SYMBOLS, previous, day)
    joining = set(_on(symbols, day).index) - set(_on(symbols, previous).index)
    assert joining, "the archive has companies entering the top 50 on 2025-04-30"
    return day, joining


def _prime(stored: ArchiveWarehouse, fake: FakeYahoo, day: dt.date) -> None:
    """Yesterday's daily run: the session before `day` with its bars stored."""
    previous = session_before(day)
    market = stored.loopback(fake, "top:50", previous)
    stored.run([asx_symbols, market_bars], previous, previous, market)
    fake.reset_stats()


def test_a_joining_symbol_has_its_history_and_full_indicators_on_day_one(stored, fake_yahoo):
    day, joining = _joining_session(stored, "top:50")
    _prime(stored, fake_yahoo, day)
    start = session_before(day, 300)
    market = stored.loopback(fake_yahoo, "top:50", start)
    result = stored.run([asx_symbols, market_bars, daily_indicators], day, day, market)

    prices = stored.read(DAILY_PRICES, start, day)
    for symbol in joining:
        bars = prices[prices["symbol"] == symbol]
        assert bars["trade_date"].min() == start and len(bars) == 301
    # Everyone else has only yesterday and the day itself: history is loaded for joiners only.
    others = prices[~prices["symbol"].isin(joining)]
    assert set(others["trade_date"]) <= {session_before(day), day}
    indicators = stored.read(DAILY_INDICATORS, day, day).set_index("symbol")
    for symbol in joining:
        assert indicators.loc[symbol, ["sma_200", "high_52w", "rsi_14"]].notna().all()
    # One request per symbol: joiners ask once for their whole history.
    assert max(fake_yahoo.stats().by_symbol.values()) == 1
    # The UI names who got history, and why.
    materialization = next(
        event.materialization
        for event in result.get_asset_materialization_events()
        if event.materialization.asset_key.path[-1] == "daily_prices"
    )
    loaded = materialization.metadata["history_loaded_for"].value
    for symbol in joining:
        assert f"{symbol} joins on {day}:" in loaded
    assert materialization.metadata["history_from"].value == start.isoformat()

    # A rerun of the day gives the same rows (ingested_at aside).
    stored.run([asx_symbols, market_bars, daily_indicators], day, day, market)
    again = stored.read(DAILY_PRICES, start, day)
    pd.testing.assert_frame_equal(
        prices.drop(columns="ingested_at"), again.drop(columns="ingested_at")
    )


def test_a_leaving_symbol_keeps_every_stored_row(stored, fake_yahoo):
    first, last = dt.date(2025, 4, 28), dt.date(2025, 5, 2)
    market = stored.loopback(fake_yahoo, "top:50", first)
    # Day by day, as the daily refresh does, across the 2025-04-30 snapshot.
    for day in sessions_between(first, last):
        stored.run([asx_symbols, market_bars], day, day, market)
    symbols = stored.read(ASX_SYMBOLS, first, last)
    april, may = _on(symbols, dt.date(2025, 4, 29)), _on(symbols, dt.date(2025, 4, 30))
    leaving = set(april.index) - set(may.index)
    assert leaving, "the archive has companies leaving the top 50 on 2025-04-30"
    kept = stored.read(DAILY_PRICES, first, last)
    kept_actions = stored.read(CORPORATE_ACTIONS, dt.date(2022, 1, 1), last)
    # A backfill of the whole range afterwards leaves the leavers' rows as they were.
    stored.run([asx_symbols, market_bars], first, last, market)
    after = stored.read(DAILY_PRICES, first, last)
    for symbol in leaving:
        before_rows = kept[kept["symbol"] == symbol].drop(columns="ingested_at")
        after_rows = after[after["symbol"] == symbol].drop(columns="ingested_at")
        assert not before_rows.empty
        pd.testing.assert_frame_equal(
            before_rows.reset_index(drop=True), after_rows.reset_index(drop=True)
        )
    assert len(stored.read(CORPORATE_ACTIONS, dt.date(2022, 1, 1), last)) >= len(kept_actions)


def test_a_joiner_whose_history_failed_gets_it_the_next_day(stored, fake_yahoo):
    day, joining = _joining_session(stored, "top:50")
    unlucky = sorted(joining)[0]
    _prime(stored, fake_yahoo, day)
    start = session_before(day, 300)
    market = stored.loopback(fake_yahoo, "top:50", start)
    fake_yahoo.fail(f"{unlucky}.AX", Fault.NOT_FOUND)
    result = stored.run([asx_symbols, market_bars], day, day, market)
    metadata = _prices_metadata(result)
    assert unlucky in metadata["failed_symbols"].value
    assert stored.read(DAILY_PRICES, start, day).query("symbol == @unlucky").empty

    fake_yahoo.clear_faults()
    following = dt.date(2025, 5, 1)
    result = stored.run([asx_symbols, market_bars], following, following, market)
    loaded = _prices_metadata(result)["history_loaded_for"].value
    assert f"{unlucky} joins on {following}: no bar stored for {day}" in loaded
    bars = stored.read(DAILY_PRICES, start, following).query("symbol == @unlucky")
    assert bars["trade_date"].min() == start
    # The others joined yesterday and have their bars: they are not loaded again.
    for symbol in joining - {unlucky}:
        assert f"{symbol} joins" not in loaded


def test_a_history_load_never_removes_a_stored_action(stored, fake_yahoo):
    day, joining = _joining_session(stored, "top:50")
    symbol = sorted(joining)[0]
    _prime(stored, fake_yahoo, day)
    start = session_before(day, 300)
    planted = pd.DataFrame(
        {
            "ex_date": [session_before(day, 100)],
            "symbol": [symbol],
            "action": ["dividend"],
            "value": [0.123],
            "source": ["yahoo"],
        }
    )
    window = Window(start, day)
    stored.warehouse.replace_window(
        CORPORATE_ACTIONS, window, conform_frame(CORPORATE_ACTIONS, window, planted)
    )
    # Yahoo's answer has a dividend of its own in the history range, but not the stored one.
    served_ex_date = session_before(day, 50)
    fake_yahoo.serve_sessions(
        f"{symbol}.AX", dt.date(2022, 1, 3), dt.date(2026, 8, 31), dividends={served_ex_date: 0.5}
    )
    market = stored.loopback(fake_yahoo, "top:50", start)
    stored.run([asx_symbols, market_bars], day, day, market)
    actions = stored.read(CORPORATE_ACTIONS, start, day).query("symbol == @symbol")
    by_date = dict(zip(actions["ex_date"], actions["value"], strict=True))
    assert by_date[served_ex_date] == pytest.approx(0.5, rel=1e-6)  # the answer's, added
    assert by_date[session_before(day, 100)] == 0.123  # the stored one, kept


def _prices_metadata(result):
    return next(
        event.materialization.metadata
        for event in result.get_asset_materialization_events()
        if event.materialization.asset_key.path[-1] == "daily_prices"
    )
