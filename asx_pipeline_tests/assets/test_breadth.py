"""market_breadth on a small hand-checked frame, and through Dagster on sample data."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from asx_pipeline.analytics.breadth import compute_breadth
from asx_pipeline_tests.analytics.history import copy_of, fill_core_tables

DAY = dt.date(2025, 11, 14)
NAN = np.nan


def _hand_frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    indicators = pd.DataFrame(
        {
            "trade_date": [DAY] * 5,
            "symbol": ["AAA", "BBB", "CCC", "DDD", "EEE"],
            "return_1d": [0.02, -0.01, 0.0, 0.05, NAN],
            "sma_200": [9.0, 11.0, NAN, 4.0, NAN],
            "high_52w": [10.5, 20.0, NAN, 6.0, NAN],
            "low_52w": [5.0, 9.5, NAN, 2.0, NAN],
        }
    )
    prices = pd.DataFrame(
        {
            "trade_date": [DAY] * 5,
            "symbol": ["AAA", "BBB", "CCC", "DDD", "EEE"],
            "high": [10.5, 10.2, 3.0, 5.5, 1.0],
            "low": [10.0, 9.5, 2.9, 5.0, 0.9],
            "close": [10.2, 10.0, 3.0, 5.4, 1.0],
        }
    )
    return indicators, prices


def test_breadth_on_a_hand_checked_frame() -> None:
    row = compute_breadth(*_hand_frames()).iloc[0]
    # EEE has no previous bar: not an advancer, decliner or unchanged.
    assert (row["advancers"], row["decliners"], row["unchanged"]) == (2, 1, 1)
    # AAA's high reaches its 52-week high; BBB's low touches its 52-week low.
    assert (row["new_highs_52w"], row["new_lows_52w"]) == (1, 1)
    # Of AAA, BBB, DDD (the ones with a 200-day SMA) AAA and DDD close above it.
    assert row["pct_above_sma_200"] == pytest.approx(200 / 3)
    assert row["median_return"] == pytest.approx(0.01)
    assert row["symbols"] == 5


def test_no_indicators_no_rows() -> None:
    indicators, prices = _hand_frames()
    assert compute_breadth(indicators.iloc[0:0], prices).empty


def test_market_breadth_through_dagster(tmp_path) -> None:
    path = tmp_path / "core.duckdb"
    fill_core_tables(path, first=dt.date(2024, 11, 1))
    warehouse = copy_of(path, tmp_path / "run")
    first, last = dt.date(2025, 11, 10), dt.date(2025, 11, 14)
    result = warehouse.materialize(["daily_indicators", "market_breadth"], first, last)
    assert result.success
    breadth = warehouse.read("market_breadth", first, last)
    indicators = warehouse.read("daily_indicators", first, last)
    assert list(breadth["trade_date"]) == sorted(set(indicators["trade_date"]))
    for row in breadth.itertuples():
        day = indicators[indicators["trade_date"] == row.trade_date]
        assert row.advancers == int((day["return_1d"] > 0).sum())
        assert row.decliners == int((day["return_1d"] < 0).sum())
        assert row.median_return == pytest.approx(day["return_1d"].median())
        assert row.symbols == len(day) == 11
