"""Each asset check passes on good data and fails on a planted defect; blocking ones stop
downstream assets in the same run."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import pandas as pd
import pytest
from dagster import AssetCheckSeverity, AssetSelection, DagsterInstance, materialize

from asx_pipeline.analytics import quality
from asx_pipeline.assets.indicators import daily_indicators
from asx_pipeline.assets.prices import market_bars
from asx_pipeline.assets.symbols import asx_symbols
from asx_pipeline.calendar import range_tags, sessions_between
from asx_pipeline.checks import ALL_CHECKS
from asx_pipeline.sources.market_data import PriceHistory
from asx_pipeline.sources.resource import MarketDataResource
from asx_pipeline.sources.sample import SampleMarketData
from asx_pipeline.warehouse.io_manager import warehouse_resources
from asx_pipeline.warehouse.resources import DuckDBWarehouseResource

FIRST, LAST = dt.date(2025, 11, 10), dt.date(2025, 11, 14)
UNIVERSE = "BHP,CBA,WBC,NAB,FMG,CSL,PME,SYR,WOW,QBE"
LATE_LISTINGS = ["SYR", "QBE"]
LISTED_ON = dt.date(2025, 11, 13)


class _Defective:
    """The sample source with one defect planted in what it returns."""

    name = "sample"
    point_in_time_directory = True
    directory_origin = "sample"

    def __init__(self, defect: str) -> None:
        self.source = SampleMarketData()
        self.defect = defect

    def directory(self, as_of: dt.date) -> pd.DataFrame:
        directory = self.source.directory(as_of)
        if self.defect == "listed_mid_range":
            # Today's directory used for past sessions: two companies listed inside the range.
            late = directory["symbol"].isin(LATE_LISTINGS)
            directory.loc[late, "listing_date"] = LISTED_ON
        return directory

    def price_history(
        self, tickers: Sequence[str], first: dt.date, last: dt.date, history_from=None
    ) -> PriceHistory:
        history = self.source.price_history(tickers, first, last, history_from)
        prices, actions = history.prices.copy(), history.actions.copy()
        bhp = prices["yahoo_ticker"] == "BHP.AX"
        if self.defect == "negative_price":
            prices.loc[bhp, "low"] = -1.0
        elif self.defect == "high_below_close":
            prices.loc[bhp, "high"] = prices.loc[bhp, "close"] * 0.9
        elif self.defect == "negative_volume":
            prices.loc[bhp, "volume"] = -5
        elif self.defect == "stale":
            prices.loc[bhp, ["open", "high", "low", "close"]] = 40.0
            prices.loc[bhp, "volume"] = 0
        elif self.defect == "low_coverage":
            prices = prices[prices["yahoo_ticker"].isin(["BHP.AX", "CBA.AX"])]
            missing = sorted(set(history.prices["yahoo_ticker"]) - {"BHP.AX", "CBA.AX"})
            failed = {ticker: "Yahoo answered HTTP 429 Too Many Requests" for ticker in missing}
            return PriceHistory(prices=prices, actions=actions, failed=failed)
        elif self.defect == "listed_mid_range":
            before = prices["yahoo_ticker"].isin([f"{s}.AX" for s in LATE_LISTINGS]) & (
                prices["trade_date"] < LISTED_ON
            )
            prices = prices[~before]
        elif self.defect == "huge_dividend":
            row = pd.DataFrame([[FIRST, "BHP.AX", "dividend", 500.0]], columns=actions.columns)
            actions = pd.concat([actions, row], ignore_index=True)
        return PriceHistory(prices=prices, actions=actions, failed=history.failed)


class PlantedMarketData(MarketDataResource):
    defect: str = "none"

    def client(self):  # type: ignore[override]
        return _Defective(self.defect)


def _run(tmp_path, defect: str):
    return materialize(
        [asx_symbols, market_bars, daily_indicators, *ALL_CHECKS],
        selection=AssetSelection.assets(
            "asx_symbols", "daily_prices", "corporate_actions", "daily_indicators"
        ),
        resources={
            "market_data": PlantedMarketData(source="sample", universe=UNIVERSE, defect=defect),
            **warehouse_resources(DuckDBWarehouseResource(path=str(tmp_path / "warehouse.duckdb"))),
        },
        tags=range_tags(FIRST, LAST),
        instance=DagsterInstance.ephemeral(),
        raise_on_error=False,
    )


def _outcomes(result) -> dict[str, tuple[bool, AssetCheckSeverity]]:
    return {e.check_name: (e.passed, e.severity) for e in result.get_asset_check_evaluations()}


def test_every_check_passes_on_good_data(tmp_path) -> None:
    result = _run(tmp_path, "none")
    assert result.success
    outcomes = _outcomes(result)
    assert set(outcomes) == {key.name for checks in ALL_CHECKS for key in checks.check_keys}
    assert all(passed for passed, _ in outcomes.values())
    assert result.asset_materializations_for_node("daily_indicators")


@pytest.mark.parametrize(
    ("defect", "check"),
    [
        ("negative_price", "daily_prices_positive"),
        ("high_below_close", "daily_prices_ohlc_consistent"),
        ("negative_volume", "daily_prices_volume_non_negative"),
        ("huge_dividend", "corporate_actions_plausible"),
    ],
)
def test_a_structural_defect_fails_its_check_and_blocks_downstream(tmp_path, defect, check):
    result = _run(tmp_path, defect)
    outcomes = _outcomes(result)
    assert outcomes[check] == (False, AssetCheckSeverity.ERROR)
    failed = [name for name, (passed, _) in outcomes.items() if not passed]
    assert failed == [check]
    # Blocking: the indicators never ran on the bad bars.
    assert not result.asset_materializations_for_node("daily_indicators")


def test_a_warning_fails_its_check_without_blocking(tmp_path) -> None:
    result = _run(tmp_path, "stale")
    assert _outcomes(result)["daily_prices_stale_quotes"] == (False, AssetCheckSeverity.WARN)
    assert result.asset_materializations_for_node("daily_indicators")


def test_low_coverage_blocks_downstream_and_names_the_failed_tickers(tmp_path) -> None:
    # 2 of 10 symbols received: far below ASX_MIN_COVERAGE (0.9).
    result = _run(tmp_path, "low_coverage")

    assert not result.success
    assert _outcomes(result)["daily_prices_coverage"] == (False, AssetCheckSeverity.ERROR)
    assert not result.asset_materializations_for_node("daily_indicators")
    (evaluation,) = [
        e for e in result.get_asset_check_evaluations() if e.check_name == "daily_prices_coverage"
    ]
    assert evaluation.metadata["summary"].value == (
        "5 session(s) below 90% coverage (lowest 20.0%)"
    )
    assert evaluation.metadata["failed_symbols"].value == "\n".join(
        f"- {symbol}: Yahoo answered HTTP 429 Too Many Requests"
        for symbol in ["CSL", "FMG", "NAB", "PME", "QBE", "SYR", "WBC", "WOW"]
    )
    # The two that were received are stored all the same.
    prices = [
        e for e in result.get_asset_materialization_events() if e.asset_key.path == ["daily_prices"]
    ]
    assert prices and prices[0].materialization.metadata["symbols_received"].value == 2


def test_companies_listed_after_a_session_do_not_count_against_it(tmp_path) -> None:
    # 8 of 10 on 11-10..11-12 would be 80%; the two had not listed yet, so it is 100%.
    result = _run(tmp_path, "listed_mid_range")

    assert result.success
    assert _outcomes(result)["daily_prices_coverage"] == (True, AssetCheckSeverity.ERROR)
    assert result.asset_materializations_for_node("daily_indicators")


def test_coverage_at_the_threshold_passes(tmp_path) -> None:
    result = _run(tmp_path, "none")
    assert _outcomes(result)["daily_prices_coverage"] == (True, AssetCheckSeverity.ERROR)


def _bars() -> pd.DataFrame:
    days = sessions_between(FIRST, LAST)
    return pd.DataFrame(
        {
            "trade_date": days * 2,
            "symbol": ["AAA"] * 5 + ["BBB"] * 5,
            "open": [1.0] * 10,
            "high": [1.2] * 10,
            "low": [0.9] * 10,
            "close": [1.1] * 10,
            "volume": [100] * 10,
        }
    )


def test_rules_on_hand_made_frames() -> None:
    good = _bars()
    for rule in (
        quality.non_positive_prices,
        quality.inconsistent_ohlc,
        quality.negative_volume,
    ):
        assert rule(good).passed
    stale = good.assign(volume=[0] * 5 + [100] * 5)
    assert quality.stale_quotes(stale, [LAST]).rows["symbol"].tolist() == ["AAA"]
    assert quality.stale_quotes(stale.iloc[1:], [LAST]).passed  # only four quiet sessions
    assert quality.stale_quotes(good, [LAST]).passed


def test_corporate_action_rules() -> None:
    bars = _bars()
    actions = pd.DataFrame(
        {
            "ex_date": [FIRST, FIRST, FIRST, FIRST],
            "symbol": ["AAA", "BBB", "AAA", "BBB"],
            "action": ["dividend", "dividend", "split", "split"],
            "value": [0.0, 0.6, 2.0, 1.0],
        }
    )
    finding = quality.implausible_actions(actions, bars)
    # A zero dividend restates nothing and passes; 0.6 on a 1.1 close and a 1:1 split do not.
    assert finding.rows[["symbol", "action", "value"]].values.tolist() == [
        ["BBB", "dividend", 0.6],
        ["BBB", "split", 1.0],
    ]
