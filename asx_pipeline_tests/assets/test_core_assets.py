"""The core assets through Dagster's own `materialize`, read back from the warehouse."""

import datetime as dt

import pandas as pd
import pytest
from dagster import AssetKey, materialize

from asx_pipeline.assets.prices import market_bars
from asx_pipeline.assets.symbols import asx_symbols
from asx_pipeline.calendar import range_tags, sessions_between
from asx_pipeline.sources.market_data import PriceHistory
from asx_pipeline.sources.resource import MarketDataResource
from asx_pipeline.sources.sample import SampleMarketData
from asx_pipeline.warehouse.io_manager import warehouse_resources
from asx_pipeline.warehouse.resources import DuckDBWarehouseResource
from asx_pipeline_tests.assets.conftest import failure_text

FIRST, LAST = dt.date(2025, 10, 1), dt.date(2025, 11, 28)
SESSIONS = sessions_between(FIRST, LAST)


def _without_ingested_at(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.drop(columns=["ingested_at"])


def test_range_is_one_run_with_exact_rows(core) -> None:
    result = core.materialize(FIRST, LAST)
    assert result.success
    assert len(core.instance.get_run_records()) == 1

    symbols = core.read("asx_symbols", FIRST, LAST)
    # top:30 by market cap on every session; AWC is far below the top 30.
    assert len(SESSIONS) == 43
    assert len(symbols) == 43 * 30
    assert symbols.groupby("as_of_date").size().eq(30).all()
    bhp = symbols[(symbols["symbol"] == "BHP") & (symbols["as_of_date"] == dt.date(2025, 11, 20))]
    assert bhp[["yahoo_ticker", "company_name", "status"]].values.tolist() == [
        ["BHP.AX", "BHP GROUP LIMITED", "active"]
    ]

    prices = core.read("daily_prices", FIRST, LAST)
    assert len(prices) == 43 * 30
    day = dt.date(2025, 11, 20)
    expected = SampleMarketData().price_history(["BHP.AX"], day, day)
    stored = prices[(prices["symbol"] == "BHP") & (prices["trade_date"] == dt.date(2025, 11, 20))]
    columns = ["open", "high", "low", "close", "adj_close"]
    assert stored[columns].values.tolist() == expected.prices[columns].values.tolist()
    assert stored["volume"].tolist() == expected.prices["volume"].tolist()
    assert set(prices["source"]) == {"sample"}

    actions = core.read("corporate_actions", FIRST, LAST)
    split = actions[actions["action"] == "split"]
    assert split[["ex_date", "symbol", "value"]].values.tolist() == [
        [dt.date(2025, 11, 10), "PME", 2.0]
    ]
    assert (actions.loc[actions["action"] == "dividend", "value"] > 0).all()


def test_rerun_gives_the_same_rows(core) -> None:
    assert core.materialize(FIRST, LAST).success
    first = {t: core.read(t, FIRST, LAST) for t in ("asx_symbols", "corporate_actions")}
    first_prices = _without_ingested_at(core.read("daily_prices", FIRST, LAST))
    assert core.materialize(FIRST, LAST).success
    for table, frame in first.items():
        pd.testing.assert_frame_equal(core.read(table, FIRST, LAST), frame)
    pd.testing.assert_frame_equal(
        _without_ingested_at(core.read("daily_prices", FIRST, LAST)), first_prices
    )


def test_range_equals_day_by_day(core, tmp_path) -> None:
    days = sessions_between(dt.date(2025, 11, 6), dt.date(2025, 11, 12))
    assert core.materialize(days[0], days[-1]).success
    ranged = _without_ingested_at(core.read("daily_prices", days[0], days[-1]))
    other = type(core)(tmp_path / "daily", core.market_data)
    (tmp_path / "daily").mkdir()
    for day in days:
        assert other.materialize(day, day).success
    daily = _without_ingested_at(other.read("daily_prices", days[0], days[-1]))
    pd.testing.assert_frame_equal(ranged, daily)
    pd.testing.assert_frame_equal(
        core.read("corporate_actions", days[0], days[-1]),
        other.read("corporate_actions", days[0], days[-1]),
    )


def test_delisted_and_suspended_companies(core) -> None:
    market_data = MarketDataResource(source="sample", universe="AWC,SYR,BHP")
    first = dt.date(2025, 9, 15)
    assert core.materialize(first, LAST, market_data=market_data).success
    symbols = core.read("asx_symbols", first, LAST)
    awc = symbols[symbols["symbol"] == "AWC"]
    assert awc["as_of_date"].max() == dt.date(2025, 10, 31)
    prices = core.read("daily_prices", first, LAST)
    assert prices.loc[prices["symbol"] == "AWC", "trade_date"].max() == dt.date(2025, 10, 31)
    suspended = symbols[symbols["status"] == "suspended"]
    assert suspended["symbol"].unique().tolist() == ["SYR"]
    assert suspended["as_of_date"].tolist() == [
        dt.date(2025, 9, 24), dt.date(2025, 9, 25), dt.date(2025, 9, 26), dt.date(2025, 9, 29)
    ]
    assert suspended["market_cap"].isna().all()
    syr_days = set(prices.loc[prices["symbol"] == "SYR", "trade_date"])
    assert not (set(suspended["as_of_date"]) & syr_days)
    assert len(syr_days) == len(sessions_between(first, LAST)) - 4


def test_only_one_window_is_replaced(core) -> None:
    assert core.materialize(FIRST, LAST).success
    before = _without_ingested_at(core.read("daily_prices", FIRST, LAST))
    assert core.materialize(dt.date(2025, 11, 20), dt.date(2025, 11, 20)).success
    after = _without_ingested_at(core.read("daily_prices", FIRST, LAST))
    pd.testing.assert_frame_equal(before, after)


def test_unfinished_session_fails_and_writes_nothing(core) -> None:
    # Two weeks of delay: the latest session up to today is unfinished on any day of the week
    # (a day's delay passed a Friday's session on the Sunday; no ASX break is 10 days long).
    delay = 14 * 24 * 60
    market_data = MarketDataResource(source="sample", universe="top:5", data_delay_minutes=delay)
    today = sessions_between(dt.date.today() - dt.timedelta(days=10), dt.date.today())[-1]
    result = core.materialize(today, today, market_data=market_data, raise_on_error=False)
    assert not result.success
    message = failure_text(result)
    assert f"{today.isoformat()} is not final yet: it can be materialised from " in message
    assert f"{delay} minutes after its" in message
    assert core.read("asx_symbols", today, today).empty


def test_universe_of_unknown_codes_is_refused(core) -> None:
    market_data = MarketDataResource(source="sample", universe="NOPE,ZZZZ")
    result = core.materialize(FIRST, FIRST, market_data=market_data, raise_on_error=False)
    assert not result.success
    message = failure_text(result)
    assert "ASX_UNIVERSE lists NOPE, ZZZZ, none of which is in the ASX directory" in message


class _FlakySample(SampleMarketData):
    """The sample source, but some tickers fail the way Yahoo's do."""

    def __init__(self, failing: set[str]) -> None:
        super().__init__()
        self.failing = failing

    def price_history(self, tickers, first, last, history_from=None) -> PriceHistory:
        ok = [t for t in tickers if t not in self.failing]
        history = super().price_history(ok, first, last, history_from)
        history.failed.update({t: "HTTP 404: symbol may be delisted" for t in self.failing})
        return history


class _FlakyMarketData(MarketDataResource):
    failing: list[str] = []

    def client(self):
        return _FlakySample(set(self.failing))


def test_some_failed_tickers_succeed_and_are_listed(core) -> None:
    market_data = _FlakyMarketData(source="sample", universe="BHP,CBA,CSL", failing=["CSL.AX"])
    result = core.materialize(FIRST, dt.date(2025, 10, 3), market_data=market_data)
    assert result.success
    metadata = next(
        m.materialization.metadata
        for m in result.get_asset_materialization_events()
        if m.asset_key.path == ["daily_prices"]
    )
    assert metadata["failed_symbols"].value == "- CSL: HTTP 404: symbol may be delisted"
    assert metadata["kept_previous_rows_for"].value == "CSL"
    assert metadata["symbols_received"].value == 2
    assert set(core.read("daily_prices", FIRST, dt.date(2025, 10, 3))["symbol"]) == {"BHP", "CBA"}


def test_nothing_fetched_fails_and_writes_nothing(core) -> None:
    assert core.materialize(FIRST, FIRST).success
    before = core.read("daily_prices", FIRST, FIRST)
    market_data = _FlakyMarketData(
        source="sample", universe="top:30", failing=[f"{s}.AX" for s in before["symbol"]]
    )
    result = core.materialize(FIRST, FIRST, market_data=market_data, raise_on_error=False)
    assert not result.success
    message = failure_text(result)
    assert "No prices could be fetched for 2025-10-01 from sample" in message
    assert "(30 of 30 tickers failed" in message
    pd.testing.assert_frame_equal(core.read("daily_prices", FIRST, FIRST), before)


@pytest.mark.parametrize("selection", [["daily_prices"], ["corporate_actions"]])
def test_either_output_can_be_materialised_alone(core, selection) -> None:
    assert core.materialize(FIRST, LAST).success
    result = materialize(
        [asx_symbols, market_bars],
        selection=[AssetKey(selection[0])],
        resources={
            "market_data": core.market_data,
            **warehouse_resources(DuckDBWarehouseResource(path=str(core.path))),
        },
        partition_key="2025-11-10",
        instance=core.instance,
    )
    assert result.success
    keys = {e.asset_key.path[0] for e in result.get_asset_materialization_events()}
    assert keys == set(selection)


def test_prices_refuse_a_window_where_some_sessions_have_no_symbols(core) -> None:
    assert core.materialize(dt.date(2025, 11, 3), dt.date(2025, 11, 5)).success
    before = _without_ingested_at(core.read("daily_prices", FIRST, LAST))
    result = materialize(
        [asx_symbols, market_bars],
        selection=[AssetKey("daily_prices"), AssetKey("corporate_actions")],
        resources={
            "market_data": core.market_data,
            **warehouse_resources(DuckDBWarehouseResource(path=str(core.path))),
        },
        tags=range_tags(dt.date(2025, 11, 3), dt.date(2025, 11, 7)),
        instance=core.instance,
        raise_on_error=False,
    )
    assert not result.success
    assert "asx_symbols has no rows for 2 session(s)" in failure_text(result)
    assert "2025-11-06, 2025-11-07" in failure_text(result)
    pd.testing.assert_frame_equal(
        _without_ingested_at(core.read("daily_prices", FIRST, LAST)), before
    )
