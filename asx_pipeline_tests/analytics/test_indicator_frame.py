"""compute_indicators on a real series with its dividend, against an independent reference."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pandas as pd
import pytest

from asx_pipeline.analytics.indicators import compute_indicators
from asx_pipeline_tests.analytics.reference import reference_row


def _aapl(fixtures_dir) -> tuple[pd.DataFrame, pd.DataFrame]:
    path = fixtures_dir / "yahoo-chart" / "chart-AAPL-2020-08-31-to-2020-11-07.json"
    result = json.loads(path.read_text())["response"]["bodyJson"]["chart"]["result"][0]
    quote = result["indicators"]["quote"][0]
    stamps = pd.to_datetime(result["timestamp"], unit="s", utc=True).tz_convert("America/New_York")
    bars = pd.DataFrame({k: quote[k] for k in ("open", "high", "low", "close", "volume")})
    bars = bars.assign(symbol="AAPL", trade_date=stamps.date)
    dividend = result["events"]["dividends"]["1604673000"]
    ex_date = pd.Timestamp(dividend["date"], unit="s", tz="UTC").tz_convert("America/New_York")
    actions = pd.DataFrame(
        {
            "ex_date": [ex_date.date()],
            "symbol": ["AAPL"],
            "action": ["dividend"],
            "value": [dividend["amount"]],
        }
    )
    return bars, actions


def test_real_series_with_a_dividend_matches_talib_on_adjusted_prices(fixtures_dir) -> None:
    bars, actions = _aapl(fixtures_dir)
    # The fixture is American: its own trading days are the sessions.
    sessions = np.array(sorted(bars["trade_date"]), dtype="datetime64[D]")
    last = bars["trade_date"].iloc[-1]
    run = compute_indicators(bars, actions, sessions, last, last)
    assert run.actions_applied == 1  # the 0.205 dividend on 2020-11-06
    row = run.frame.iloc[0]
    expected = reference_row(bars, actions, last)
    for column, value in expected.items():
        if np.isnan(value):
            assert np.isnan(row[column]), column
        else:
            assert row[column] == pytest.approx(value, rel=1e-9), column
    # 49 bars: no 50-/200-day SMA and no 52-week range, rather than numbers from a short series.
    assert np.isnan(row["sma_50"]) and np.isnan(row["sma_200"]) and np.isnan(row["high_52w"])
    assert row["lookback_bars"] == 49


def test_the_dividend_is_explicit_not_silent(fixtures_dir) -> None:
    bars, actions = _aapl(fixtures_dir)
    sessions = np.array(sorted(bars["trade_date"]), dtype="datetime64[D]")
    last = bars["trade_date"].iloc[-1]
    with_dividend = compute_indicators(bars, actions, sessions, last, last).frame.iloc[0]
    without = compute_indicators(bars, actions.iloc[0:0], sessions, last, last).frame.iloc[0]
    # Earlier prices are restated down by 0.205 / previous close (about 0.17%).
    ratio = with_dividend["sma_20"] / without["sma_20"]
    assert 0.998 < ratio < 1.0
    assert with_dividend["ema_12"] != without["ema_12"]


def test_empty_input_gives_no_rows() -> None:
    empty = pd.DataFrame(columns=["trade_date", "symbol", "high", "low", "close", "volume"])
    actions = pd.DataFrame(columns=["ex_date", "symbol", "action", "value"])
    sessions = np.array(["2025-11-03"], dtype="datetime64[D]")
    day = dt.date(2025, 11, 3)
    assert compute_indicators(empty, actions, sessions, day, day).frame.empty
