"""daily_indicators through Dagster's `materialize`, read back from a DuckDB warehouse."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from asx_pipeline.analytics.indicators import LOOKBACK_SESSIONS
from asx_pipeline.calendar import sessions_between
from asx_pipeline_tests.analytics.history import copy_of, fill_core_tables
from asx_pipeline_tests.analytics.reference import reference_row

SPLIT_WEEK = sessions_between(dt.date(2025, 11, 6), dt.date(2025, 11, 12))  # PME 2:1 on the 10th


@pytest.fixture(scope="module")
def filled(tmp_path_factory):
    path = tmp_path_factory.mktemp("history") / "warehouse.duckdb"
    frames = fill_core_tables(path)
    return path, frames


def _window_bars(frames, symbol: str, day: dt.date):
    """The symbol's bars in the LOOKBACK_SESSIONS sessions ending at `day`, and its actions."""
    first = sessions_between(day - dt.timedelta(days=400), day)[-LOOKBACK_SESSIONS]
    prices, actions = frames["daily_prices"], frames["corporate_actions"]
    bars = prices[(prices["symbol"] == symbol) & prices["trade_date"].between(first, day)]
    acts = actions[(actions["symbol"] == symbol) & actions["ex_date"].between(first, day)]
    return bars.sort_values("trade_date"), acts.sort_values(["ex_date", "action"])


def test_range_run_equals_day_by_day_runs_across_a_split(filled, tmp_path) -> None:
    path, _ = filled
    ranged = copy_of(path, tmp_path / "range")
    assert ranged.materialize(["daily_indicators"], SPLIT_WEEK[0], SPLIT_WEEK[-1]).success
    assert len(ranged.instance.get_run_records()) == 1
    daily = copy_of(path, tmp_path / "daily")
    for day in SPLIT_WEEK:
        assert daily.materialize(["daily_indicators"], day, day).success
    one_run = ranged.read("daily_indicators", SPLIT_WEEK[0], SPLIT_WEEK[-1])
    day_by_day = daily.read("daily_indicators", SPLIT_WEEK[0], SPLIT_WEEK[-1])
    assert len(one_run) == 5 * 11  # AWC was delisted on 2025-10-31; 11 symbols remain
    pd.testing.assert_frame_equal(one_run, day_by_day, check_exact=True)


@pytest.mark.parametrize("day", [dt.date(2025, 11, 7), dt.date(2025, 11, 12)])
@pytest.mark.parametrize("symbol", ["PME", "BHP", "SYR"])
def test_values_equal_talib_on_explicitly_adjusted_sample_prices(
    filled, tmp_path, symbol, day
) -> None:
    path, frames = filled
    warehouse = copy_of(path, tmp_path)
    assert warehouse.materialize(["daily_indicators"], day, day).success
    stored = warehouse.read("daily_indicators", day, day).set_index("symbol").loc[symbol]
    bars, actions = _window_bars(frames, symbol, day)
    for column, value in reference_row(bars, actions, day).items():
        assert stored[column] == pytest.approx(value, rel=1e-9, abs=1e-12), column
    assert stored["lookback_bars"] == len(bars)
    span = sessions_between(day - dt.timedelta(days=400), day)[-252]
    adjusted_highs = _adjusted(bars, actions)
    assert stored["high_52w"] == pytest.approx(
        adjusted_highs[adjusted_highs["trade_date"] >= span]["high"].max(), rel=1e-12
    )


def _adjusted(bars, actions):
    from asx_pipeline_tests.analytics.reference import adjusted_window

    return adjusted_window(bars, actions)


def test_the_split_restates_history_in_the_new_units(filled, tmp_path) -> None:
    path, _ = filled
    warehouse = copy_of(path, tmp_path)
    assert warehouse.materialize(["daily_indicators"], SPLIT_WEEK[0], SPLIT_WEEK[-1]).success
    pme = warehouse.read("daily_indicators", SPLIT_WEEK[0], SPLIT_WEEK[-1])
    pme = pme[pme["symbol"] == "PME"].set_index("trade_date")
    before, after = pme.loc[dt.date(2025, 11, 7)], pme.loc[dt.date(2025, 11, 10)]
    # Raw prices halve on the split; the indicators follow, and return_1d ignores the split.
    assert 0.49 < after["sma_200"] / before["sma_200"] < 0.51
    assert 0.49 < after["high_52w"] / before["high_52w"] < 0.51
    assert abs(after["return_1d"]) < 0.1
    assert 1.8 < after["avg_volume_20d"] / before["avg_volume_20d"] < 2.2


def test_short_history_gives_nulls_not_numbers(tmp_path) -> None:
    path = tmp_path / "short.duckdb"
    fill_core_tables(path, first=dt.date(2025, 6, 2), last=dt.date(2025, 11, 14))
    warehouse = copy_of(path, tmp_path / "run")
    day = dt.date(2025, 11, 14)
    assert warehouse.materialize(["daily_indicators"], day, day).success
    rows = warehouse.read("daily_indicators", day, day)
    assert rows["lookback_bars"].max() == len(sessions_between(dt.date(2025, 6, 2), day))
    assert rows["sma_200"].isna().all() and rows["high_52w"].isna().all()
    assert rows["sma_50"].notna().all() and rows["rsi_14"].notna().all()
    assert np.isfinite(rows["macd_signal"]).all()
