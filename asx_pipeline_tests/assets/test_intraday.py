"""intraday_quotes through Dagster: snapshots accumulate, and a rerun replaces only its own."""

import datetime as dt
from zoneinfo import ZoneInfo

import pandas as pd
import pytest
from dagster import AssetSelection, DagsterInstance, materialize

from asx_pipeline.assets.intraday import intraday_quotes
from asx_pipeline.assets.symbols import asx_symbols
from asx_pipeline.calendar import snapshot_times
from asx_pipeline.sources.market_data import MarketDataError
from asx_pipeline.sources.resource import MarketDataResource
from asx_pipeline.sources.sample import SampleMarketData
from asx_pipeline.sources.yahoo_intraday import YahooIntradayQuotes, quotes_frame
from asx_pipeline.warehouse.duckdb_backend import DuckDBWarehouse
from asx_pipeline.warehouse.frames import Window
from asx_pipeline.warehouse.io_manager import warehouse_resources
from asx_pipeline.warehouse.resources import DuckDBWarehouseResource
from asx_pipeline.warehouse.tables import INTRADAY_QUOTES

SYDNEY = ZoneInfo("Australia/Sydney")
EVE = dt.date(2025, 12, 24)


def _at(hour: int, minute: int, day: dt.date = EVE) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour, minute), tzinfo=SYDNEY)


class IntradayWarehouse:
    def __init__(self, root, universe: str = "top:5") -> None:
        self.path = root / "warehouse.duckdb"
        self.instance = DagsterInstance.ephemeral()
        self.resources = {
            "market_data": MarketDataResource(source="sample", universe=universe),
            **warehouse_resources(DuckDBWarehouseResource(path=str(self.path))),
        }

    def snapshot(self, at: dt.datetime, day: dt.date = EVE):
        return materialize(
            [intraday_quotes, asx_symbols],
            selection=AssetSelection.assets("intraday_quotes"),
            partition_key=day.isoformat(),
            run_config={"ops": {"intraday_quotes": {"config": {"snapshot_at": at.isoformat()}}}},
            resources=self.resources,
            instance=self.instance,
            raise_on_error=False,
        )

    def symbols(self, day: dt.date):
        return materialize(
            [asx_symbols],
            partition_key=day.isoformat(),
            resources=self.resources,
            instance=self.instance,
        )

    def rows(self, day: dt.date = EVE) -> pd.DataFrame:
        return DuckDBWarehouse(self.path).read_window(INTRADAY_QUOTES, Window.single(day))


@pytest.fixture
def intraday(tmp_path) -> IntradayWarehouse:
    return IntradayWarehouse(tmp_path)


def test_snapshots_accumulate_and_a_rerun_replaces_only_its_own(intraday):
    assert intraday.snapshot(_at(10, 15)).success
    assert intraday.snapshot(_at(10, 30)).success
    first = intraday.rows()
    assert first.groupby("snapshot_at").size().tolist() == [5, 5]

    assert intraday.snapshot(_at(10, 30)).success
    again = intraday.rows()
    pd.testing.assert_frame_equal(again, first)
    assert set(again["snapshot_at"].dt.tz_convert(SYDNEY).dt.strftime("%H:%M")) == {
        "10:15",
        "10:30",
    }
    assert set(again["trade_date"]) == {EVE}
    assert set(again["source"]) == {"sample"}


def test_the_snapshot_after_an_early_close_shows_the_closing_bar(intraday):
    assert intraday.snapshot(_at(14, 15)).success
    rows = intraday.rows().set_index("symbol")
    source = SampleMarketData()
    tickers = [f"{symbol}.AX" for symbol in rows.index]
    daily = source.price_history(tickers, EVE, EVE).prices.set_index("yahoo_ticker")
    for symbol, row in rows.iterrows():
        bar = daily.loc[f"{symbol}.AX"]
        assert row["last"] == bar["close"]
        assert row["volume"] == bar["volume"]


def test_the_universe_is_the_previous_sessions_symbols_when_stored(tmp_path):
    intraday = IntradayWarehouse(tmp_path, universe="BHP,CBA,CSL")
    intraday.symbols(dt.date(2025, 12, 23))
    # The resource now asks for a different universe; the stored one of 12-23 wins.
    intraday.resources["market_data"] = MarketDataResource(source="sample", universe="top:2")
    assert intraday.snapshot(_at(11, 0)).success
    assert sorted(intraday.rows()["symbol"]) == ["BHP", "CBA", "CSL"]


def test_a_snapshot_time_outside_its_session_is_refused(intraday):
    result = intraday.snapshot(_at(11, 0, dt.date(2025, 12, 23)), day=EVE)
    assert not result.success
    error = result.get_step_failure_events()[0].event_specific_data.error.message
    assert "snapshot_at 2025-12-23T11:00:00+11:00 is not during session 2025-12-24" in error
    assert intraday.rows().empty


def test_snapshot_times_follow_the_session_hours():
    eve = snapshot_times(EVE)
    assert (eve[0].astimezone(SYDNEY).time(), eve[-1].astimezone(SYDNEY).time()) == (
        dt.time(10, 0),
        dt.time(14, 15),
    )
    ordinary = snapshot_times(dt.date(2025, 12, 23))
    assert len(ordinary) == 26 and ordinary[-1] == _at(16, 15, dt.date(2025, 12, 23))


def test_sample_intraday_is_deterministic_and_within_the_days_range():
    source = SampleMarketData()
    tickers = ["BHP.AX", "CBA.AX", "SYR.AX", "NOPE.AX"]
    one = source.intraday_snapshot(tickers, _at(12, 0))
    two = SampleMarketData().intraday_snapshot(tickers, _at(12, 0))
    pd.testing.assert_frame_equal(one.quotes, two.quotes)
    assert one.failed == {"NOPE.AX": "not in the sample universe"}
    daily = source.price_history(tickers, EVE, EVE).prices.set_index("yahoo_ticker")
    for quote in one.quotes.itertuples():
        assert daily.loc[quote.yahoo_ticker, "low"] <= quote.last
        assert quote.last <= daily.loc[quote.yahoo_ticker, "high"]


def test_yahoo_quote_answers_become_rows_and_missing_tickers_are_named():
    body = {
        "quoteResponse": {
            "result": [
                {
                    "symbol": "BHP.AX",
                    "regularMarketPrice": 45.12,
                    "regularMarketChangePercent": -0.53,
                    "regularMarketVolume": 3_456_789,
                },
                {"symbol": "XYZ.AX"},  # no price: left out
            ],
            "error": None,
        }
    }
    frame = quotes_frame(body)
    assert frame.to_dict("records") == [
        {"yahoo_ticker": "BHP.AX", "last": 45.12, "change_pct": -0.53, "volume": 3_456_789}
    ]


def test_yahoo_refuses_a_snapshot_of_the_past():
    quotes = YahooIntradayQuotes(now=lambda: _at(15, 0))
    with pytest.raises(MarketDataError, match="past snapshots cannot be fetched"):
        quotes.intraday_snapshot(["BHP.AX"], _at(10, 0))


def test_yahoo_quote_requests_are_retried_on_429(fixtures_dir, tmp_path):
    # Through the real yfinance and a fake Yahoo on 127.0.0.1: the 429 (asked twice by yfinance
    # itself, which then raises YFRateLimitError) is retried; the fake then answers with no quote.
    from asx_pipeline.sources.yahoo_http import RequestLimiter
    from asx_pipeline_tests.fake_yahoo import (
        Endpoint,
        FakeYahoo,
        Fault,
        loopback_session,
        reset_yfinance,
    )

    reset_yfinance(tmp_path / "cache")
    with FakeYahoo(fixtures_dir) as fake:
        fake.fail_endpoint(Endpoint.QUOTE, Fault.TOO_MANY_REQUESTS, times=2)
        quotes = YahooIntradayQuotes(
            session=loopback_session(fake),
            limiter=RequestLimiter(100.0, 2),
            retry_wait_initial=0.01,
            now=lambda: _at(11, 0),
        )
        snapshot = quotes.intraday_snapshot(["BHP.AX"], _at(11, 0))
        statuses = [r.status for r in fake.stats().requests if r.endpoint is Endpoint.QUOTE]
    reset_yfinance()
    assert statuses == [429, 429, 200]
    assert snapshot.failed == {"BHP.AX": "no quote in Yahoo's answer"}
