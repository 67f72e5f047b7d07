"""Screeners: the file's validation, ranking on a hand-checked frame, and the asset in Dagster."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from asx_pipeline.analytics.screener_config import (
    ScreenerConfigError,
    load_screeners,
    parse_screeners,
)
from asx_pipeline.analytics.screening import run_screeners
from asx_pipeline.definitions import build_definitions
from asx_pipeline.settings import load_settings
from asx_pipeline_tests.analytics.history import REPO_ROOT, copy_of, fill_core_tables

DAY = dt.date(2025, 11, 14)
DEFAULT_FILE = REPO_ROOT / "config" / "screeners.yml"


def _frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "trade_date": [DAY] * 5,
            "symbol": ["AAA", "BBB", "CCC", "DDD", "EEE"],
            "close": [10.0, 20.0, 5.0, 8.0, 3.0],
            "sma_200": [9.0, 18.0, 6.0, np.nan, 2.0],
            "rsi_14": [25.0, 28.0, 20.0, 10.0, 28.0],
            "market_cap": [5e9, 1e9, 2e9, 3e9, 1e8],
            "gics_industry_group": ["Banks", "Materials", "Banks", "Banks", "Materials"],
        }
    )


def _config(**screener: object) -> dict:
    spec = {
        "universe": "all",
        "filters": ["close > sma_200", "rsi_14 < 30"],
        "rank_by": "rsi_14",
        "order": "ascending",
        "top_n": 10,
        **screener,
    }
    return {
        "symbol_sets": {"banks": {"gics_industry_groups": ["Banks"]}},
        "screeners": {"oversold_uptrend": spec},
    }


def test_hand_checked_ranking_and_matched_values() -> None:
    config = parse_screeners(_config(), "inline.yml")
    hits = run_screeners(_frame(), config)
    # CCC is below its SMA, DDD has no SMA (null fails the filter); EEE and BBB tie on RSI 28,
    # broken by symbol.
    assert hits[["symbol", "rank", "score"]].values.tolist() == [
        ["AAA", 1, 25.0],
        ["BBB", 2, 28.0],
        ["EEE", 3, 28.0],
    ]
    assert json.loads(hits.iloc[0]["matched_values"]) == {
        "close": 10.0,
        "sma_200": 9.0,
        "rsi_14": 25.0,
    }


def test_universe_top_n_and_expressions() -> None:
    config = parse_screeners(
        _config(
            universe="banks",
            filters=["market_cap >= 2e9", "gics_industry_group == 'Banks'"],
            rank_by="close / market_cap * 1e9",
            order="descending",
            top_n=2,
        ),
        "inline.yml",
    )
    hits = run_screeners(_frame(), config)
    # Banks with a cap of at least 2e9: AAA 2.0, CCC 2.5, DDD 2.67; the top two, best first.
    assert hits.sort_values("rank")["symbol"].tolist() == ["DDD", "CCC"]
    assert hits["score"].tolist() == pytest.approx([8 / 3, 2.5])
    listed = parse_screeners(_config(universe=["eee", "AAA"]), "inline.yml")
    assert run_screeners(_frame(), listed)["symbol"].tolist() == ["AAA", "EEE"]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"filters": ["rsi_41 < 30"]}, "filter 'rsi_41 < 30': unknown column 'rsi_41'"),
        ({"filters": ["rsi_14"]}, "expected a comparison"),
        ({"filters": ["close >"]}, "is not an expression"),
        ({"rank_by": "__import__('os')"}, "unknown function '__import__'"),
        ({"universe": "gold"}, "universe 'gold' is not `all`"),
        ({"top_n": 0}, "top_n"),
        ({"colour": "red"}, "colour"),
        ({"filters": ["gics_industry_group > 'B'"]}, "text columns can only be compared"),
    ],
)
def test_bad_screeners_name_file_screener_and_expectation(change, expected) -> None:
    with pytest.raises(ScreenerConfigError) as error:
        parse_screeners(_config(**change), "config/broken.yml")
    message = str(error.value)
    assert message.startswith("config/broken.yml: screener 'oversold_uptrend'")
    assert expected in message


def test_malformed_file_is_refused_with_its_path(tmp_path) -> None:
    broken = tmp_path / "screeners.yml"
    broken.write_text("screeners: [unclosed\n")
    with pytest.raises(ScreenerConfigError, match=f"{broken}: not valid YAML"):
        load_screeners(broken)
    with pytest.raises(ScreenerConfigError, match="screeners file not found"):
        load_screeners(tmp_path / "missing.yml")


def test_definitions_refuse_to_load_a_bad_file(tmp_path) -> None:
    broken = tmp_path / "screeners.yml"
    broken.write_text("screeners:\n  bad:\n    filters: ['close > sma_201']\n    rank_by: close\n")
    settings = load_settings(asx_screeners_file=broken, asx_market_data="sample")
    with pytest.raises(ScreenerConfigError, match=r"screener 'bad'.*unknown column 'sma_201'"):
        build_definitions(settings)


def test_the_shipped_file_is_valid() -> None:
    names = [s.name for s in load_screeners(DEFAULT_FILE).screeners]
    assert {"oversold_uptrend", "breakout_52w", "momentum", "unusual_volume"} <= set(names)


def test_screener_results_through_dagster(tmp_path: Path) -> None:
    path = tmp_path / "core.duckdb"
    fill_core_tables(path, first=dt.date(2024, 11, 1))
    warehouse = copy_of(path, tmp_path / "run")
    selected = ["daily_indicators", "screener_results"]
    assert warehouse.materialize(selected, DAY, DAY).success
    hits = warehouse.read("screener_results", DAY, DAY)
    indicators = warehouse.read("daily_indicators", DAY, DAY).set_index("symbol")
    prices = warehouse.read("daily_prices", DAY, DAY).set_index("symbol")
    banks = hits[hits["screener"] == "banks_above_trend"].sort_values("rank")
    expected = (prices["close"] / indicators["sma_50"] - 1)[["CBA", "WBC", "NAB"]]
    expected = expected[expected > 0].sort_values(ascending=False)
    assert banks["symbol"].tolist() == expected.index.tolist()
    assert banks["score"].tolist() == pytest.approx(expected.tolist(), rel=1e-12)
    assert banks["rank"].tolist() == list(range(1, len(banks) + 1))
