"""Nothing stored is ever lost: reruns against a faulty Yahoo, through Dagster, on every backend.

A range of sessions is stored for BHP, CBA and CSL from a fake Yahoo on 127.0.0.1 through the
real yfinance. Then it is rerun while CSL keeps failing (or one of CBA's bars is junk): the run
succeeds, names the ticker (or bar) and why, refreshes what Yahoo served, and every row stored
for what it could not serve stays exactly as it was, in daily_prices, corporate_actions and
daily_indicators.
"""

from __future__ import annotations

import os

os.environ.setdefault("YF_DISABLE_CURL_CFFI", "1")

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from dagster import AssetSelection, DagsterInstance, materialize

from asx_pipeline.assets.indicators import daily_indicators
from asx_pipeline.assets.prices import market_bars
from asx_pipeline.assets.symbols import asx_symbols
from asx_pipeline.calendar import range_tags
from asx_pipeline.checks import ALL_CHECKS
from asx_pipeline.notify import failure_alert
from asx_pipeline.runs import failed_symbols_of_run
from asx_pipeline.warehouse.frames import Window
from asx_pipeline.warehouse.io_manager import warehouse_resources
from asx_pipeline.warehouse.resources import (
    DuckDBWarehouseResource,
    PostgresWarehouseResource,
    WarehouseResource,
)
from asx_pipeline_tests.fake_yahoo import FakeYahoo, Fault, Junk, reset_yfinance
from asx_pipeline_tests.loopback_yahoo import LoopbackYahooResource

FIRST, LAST = dt.date(2025, 10, 1), dt.date(2025, 11, 6)  # 27 sessions
JUNK_DAY = dt.date(2025, 10, 15)
TABLES = ("daily_prices", "corporate_actions", "daily_indicators")
DIRECTORY = """"ASX code","Company name","GICs industry group","Listing date","Market Cap"
"BHP","BHP GROUP LIMITED","Materials","13/08/1885",220000000000
"CBA","COMMONWEALTH BANK OF AUSTRALIA.","Banks","12/09/1991",280000000000
"CSL","CSL LIMITED","Pharmaceuticals, Biotechnology & Life Sciences","30/05/1994",90000000000
"""


@pytest.fixture
def fake(fixtures_dir: Path, tmp_path: Path) -> Iterator[FakeYahoo]:
    reset_yfinance(tmp_path / "data" / "cache" / "yfinance")
    with FakeYahoo(fixtures_dir) as server:
        server.serve_sessions("BHP.AX", dt.date(2025, 9, 1), LAST,
                              dividends={dt.date(2025, 10, 20): 0.5})
        server.serve_sessions("CBA.AX", dt.date(2025, 9, 1), LAST,
                              dividends={dt.date(2025, 10, 8): 2.0})
        server.serve_sessions("CSL.AX", dt.date(2025, 9, 1), LAST,
                              splits={dt.date(2025, 10, 27): 2.0},
                              dividends={dt.date(2025, 10, 9): 1.2})
        yield server
    reset_yfinance()


@pytest.fixture(params=["duckdb", "postgres"])
def warehouse(request: pytest.FixtureRequest, tmp_path: Path) -> WarehouseResource:
    if request.param == "postgres":
        return PostgresWarehouseResource(url=request.getfixturevalue("migrated_dsn"))
    return DuckDBWarehouseResource(path=str(tmp_path / "warehouse.duckdb"))


def run(
    fake: FakeYahoo,
    warehouse: WarehouseResource,
    tmp_path: Path,
    instance: DagsterInstance | None = None,
    last: dt.date = LAST,
    timeout_seconds: float = 5.0,
) -> Any:
    directory = tmp_path / "directory.csv"
    directory.write_text(DIRECTORY)
    market_data = LoopbackYahooResource(
        source="yahoo",
        universe="BHP,CBA,CSL",
        data_dir=str(tmp_path / "data"),
        directory_source=str(directory),
        port=fake.port,
        timeout_seconds=timeout_seconds,
    )
    return materialize(
        [asx_symbols, market_bars, daily_indicators, *ALL_CHECKS],
        selection=AssetSelection.assets(
            "asx_symbols", "daily_prices", "corporate_actions", "daily_indicators"
        ),
        resources={"market_data": market_data, **warehouse_resources(warehouse)},
        tags=range_tags(FIRST, last),
        instance=instance or DagsterInstance.ephemeral(),
        raise_on_error=False,
    )


def stored(warehouse: WarehouseResource) -> dict[str, pd.DataFrame]:
    window = Window(FIRST, LAST + dt.timedelta(days=1))
    return {name: warehouse.open().read_window(_table(name), window) for name in TABLES}


def _table(name: str):
    from asx_pipeline.warehouse.tables import table_for

    return table_for(name)


def rows_of(frames: dict[str, pd.DataFrame], table: str, symbol: str) -> pd.DataFrame:
    frame = frames[table]
    return frame[frame["symbol"] == symbol].reset_index(drop=True)


def prices_metadata(result: Any) -> dict[str, Any]:
    return next(
        event.materialization.metadata
        for event in result.get_asset_materialization_events()
        if event.asset_key.path == ["daily_prices"]
    )


def test_a_ticker_yahoo_will_not_serve_keeps_its_stored_rows(fake, warehouse, tmp_path):
    assert run(fake, warehouse, tmp_path).success
    before = stored(warehouse)
    assert {len(rows_of(before, "daily_prices", s)) for s in ("BHP", "CBA", "CSL")} == {27}
    assert set(before["corporate_actions"]["symbol"]) == {"BHP", "CBA", "CSL"}

    fake.fail("CSL.AX", Fault.TOO_MANY_REQUESTS)
    # A single session first (the daily refresh), then the whole range (a backfill).
    assert run(fake, warehouse, tmp_path, last=FIRST).success
    for table in TABLES:
        pd.testing.assert_frame_equal(
            rows_of(stored(warehouse), table, "CSL"), rows_of(before, table, "CSL")
        )
    result = run(fake, warehouse, tmp_path)

    # A stubborn ticker is a normal day: the run succeeds (stored coverage stays full).
    assert result.success
    metadata = prices_metadata(result)
    assert metadata["failed_symbols"].value == (
        "- CSL: Yahoo answered HTTP 429 Too Many Requests (still failing after 2 attempts)"
    )
    assert metadata["kept_previous_rows_for"].value == "CSL"
    assert metadata["symbols_received"].value == 2
    after = stored(warehouse)
    for table in TABLES:
        pd.testing.assert_frame_equal(
            rows_of(after, table, "CSL"), rows_of(before, table, "CSL"), check_exact=True
        )
    # What Yahoo did serve was stored again (same numbers, a later ingested_at).
    new_bhp = rows_of(after, "daily_prices", "BHP")
    old_bhp = rows_of(before, "daily_prices", "BHP")
    assert (new_bhp["ingested_at"] > old_bhp["ingested_at"]).all()
    pd.testing.assert_frame_equal(
        new_bhp.drop(columns="ingested_at"), old_bhp.drop(columns="ingested_at")
    )
    pd.testing.assert_frame_equal(
        rows_of(after, "corporate_actions", "BHP"), rows_of(before, "corporate_actions", "BHP")
    )


def test_a_junk_bar_keeps_the_stored_row_of_its_session(fake, warehouse, tmp_path):
    assert run(fake, warehouse, tmp_path).success
    before = stored(warehouse)

    fake.junk("CBA.AX", JUNK_DAY, Junk.NULL_OPEN)
    result = run(fake, warehouse, tmp_path)

    assert result.success
    metadata = prices_metadata(result)
    assert metadata["refused_bars"].value == f"- CBA {JUNK_DAY}: open is missing"
    assert metadata["kept_previous_rows_for"].value == f"CBA {JUNK_DAY}"
    after = stored(warehouse)
    prices_before, prices_after = before["daily_prices"], after["daily_prices"]
    key = (prices_after["symbol"] == "CBA") & (prices_after["trade_date"] == JUNK_DAY)
    old_key = (prices_before["symbol"] == "CBA") & (prices_before["trade_date"] == JUNK_DAY)
    pd.testing.assert_frame_equal(
        prices_after[key].reset_index(drop=True), prices_before[old_key].reset_index(drop=True)
    )
    # The rest of CBA was refreshed, and nothing else went missing.
    assert len(prices_after) == len(prices_before) == 3 * 27
    refreshed = prices_after[(prices_after["symbol"] == "CBA") & ~key]
    assert (refreshed["ingested_at"] > prices_before["ingested_at"].max()).all()


def test_a_first_run_below_coverage_fails_names_the_tickers_and_stores_what_came(
    fake, warehouse, tmp_path
):
    fake.fail("CSL.AX", Fault.TIMEOUT, delay=2.5)
    fake.fail("CBA.AX", Fault.NOT_FOUND)
    instance = DagsterInstance.ephemeral()

    result = run(fake, warehouse, tmp_path, instance, timeout_seconds=2.0)

    assert not result.success
    coverage = next(
        e for e in result.get_asset_check_evaluations() if e.check_name == "daily_prices_coverage"
    )
    assert not coverage.passed
    failed = coverage.metadata["failed_symbols"].value.splitlines()
    assert failed[0] == (
        "- CBA: YFPricesMissingError: $CBA.AX: No data found, symbol may be delisted"
    )
    assert failed[1].startswith("- CSL: ReadTimeout: ")
    assert failed[1].endswith("(still failing after 2 attempts)")
    # Blocking: the indicators did not run on a third of the market; BHP's bars are stored.
    assert not result.asset_materializations_for_node("daily_indicators")
    after = stored(warehouse)
    assert set(after["daily_prices"]["symbol"]) == {"BHP"}
    assert after["daily_indicators"].empty
    # The failure alert names them too, with their reasons.
    run_record = instance.get_run_by_id(result.run_id)
    alert = failure_alert(run_record, [], "", failed_symbols_of_run(instance, result.run_id))
    assert alert.lines[-3:] == (
        "Tickers not fetched (their stored rows are kept):",
        *failed,
    )
