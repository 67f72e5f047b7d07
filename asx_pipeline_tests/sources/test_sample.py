"""The sample source: realistic, on the XASX calendar, and the same day always the same bar."""

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from asx_pipeline.analytics.adjustment import adjustment_steps, factors_to_last
from asx_pipeline.calendar import sessions_between
from asx_pipeline.sources.sample import SAMPLE_EPOCH, SAMPLE_HORIZON, SampleMarketData

SOURCE = SampleMarketData()
TICKERS = ["BHP.AX", "PME.AX", "SYR.AX", "AWC.AX", "ZIP.AX", "TLC.AX"]
SESSIONS_2025 = sessions_between(dt.date(2025, 1, 2), dt.date(2025, 12, 31))


@settings(max_examples=25, deadline=None)
@given(
    first=st.sampled_from(SESSIONS_2025),
    length=st.integers(min_value=1, max_value=40),
    pick=st.integers(min_value=0, max_value=39),
)
def test_a_day_alone_equals_the_same_day_inside_a_range(first, length, pick) -> None:
    sessions = [s for s in SESSIONS_2025 if s >= first][:length]
    day = sessions[min(pick, len(sessions) - 1)]
    ranged = SOURCE.price_history(TICKERS, sessions[0], sessions[-1])
    alone = SOURCE.price_history(TICKERS, day, day)
    from_range = ranged.prices[ranged.prices["trade_date"] == day].reset_index(drop=True)
    pd.testing.assert_frame_equal(alone.prices.reset_index(drop=True), from_range)
    actions_in_range = ranged.actions[ranged.actions["ex_date"] == day].reset_index(drop=True)
    pd.testing.assert_frame_equal(
        alone.actions.reset_index(drop=True), actions_in_range, check_dtype=False
    )


def test_bars_are_only_on_sessions_and_are_consistent() -> None:
    history = SOURCE.price_history(TICKERS, dt.date(2025, 1, 1), dt.date(2025, 12, 31))
    prices = history.prices
    assert set(prices["trade_date"]) <= set(SESSIONS_2025)
    assert (prices["low"] <= prices[["open", "close"]].min(axis=1)).all()
    assert (prices["high"] >= prices[["open", "close"]].max(axis=1)).all()
    assert (prices[["open", "high", "low", "close"]] > 0).all().all()
    assert (prices["volume"] > 0).all()
    assert not prices.duplicated(["trade_date", "yahoo_ticker"]).any()


def test_pme_split_halves_the_raw_price_and_is_an_action() -> None:
    history = SOURCE.price_history(["PME.AX"], dt.date(2025, 11, 7), dt.date(2025, 11, 10))
    before, after = history.prices["close"].tolist()
    assert 1.8 < before / after < 2.2
    assert history.actions.to_dict("records") == [
        {"ex_date": dt.date(2025, 11, 10), "yahoo_ticker": "PME.AX", "action": "split",
         "value": 2.0}
    ]
    # adj_close restates the bar before the split in post-split units: no jump at the split.
    adjusted = history.prices["adj_close"].tolist()
    assert 0.9 < adjusted[1] / adjusted[0] < 1.1


def test_dividends_lower_the_raw_price_by_about_their_amount() -> None:
    history = SOURCE.price_history(["BHP.AX", "CBA.AX"], dt.date(2025, 1, 2), dt.date(2025, 12, 31))
    dividends = history.actions[history.actions["action"] == "dividend"]
    assert len(dividends) >= 2
    assert (dividends["value"] > 0).all()


def test_syr_is_suspended_some_sessions_and_shows_as_suspended() -> None:
    history = SOURCE.price_history(["SYR.AX"], dt.date(2025, 1, 2), dt.date(2025, 12, 31))
    missing = sorted(set(SESSIONS_2025) - set(history.prices["trade_date"]))
    assert 10 <= len(missing) <= 25
    directory = SOURCE.directory(missing[0])
    syr = directory[directory["symbol"] == "SYR"].iloc[0]
    assert syr["status"] == "suspended" and pd.isna(syr["market_cap"])
    traded_day = SOURCE.directory(history.prices["trade_date"].iloc[0])
    assert traded_day.loc[traded_day["symbol"] == "SYR", "status"].item() == "active"


def test_awc_is_delisted_after_2025_10_31() -> None:
    history = SOURCE.price_history(["AWC.AX"], dt.date(2025, 10, 1), dt.date(2025, 11, 28))
    assert history.prices["trade_date"].max() == dt.date(2025, 10, 31)
    assert "AWC" in set(SOURCE.directory(dt.date(2025, 10, 31))["symbol"])
    assert "AWC" not in set(SOURCE.directory(dt.date(2025, 11, 3))["symbol"])


def test_unknown_ticker_is_reported_failed_not_invented() -> None:
    day = dt.date(2025, 11, 20)
    history = SOURCE.price_history(["BHP.AX", "NOPE.AX"], day, day)
    assert history.failed == {"NOPE.AX": "not in the sample universe"}
    assert history.prices["yahoo_ticker"].tolist() == ["BHP.AX"]


def test_directory_is_realistic() -> None:
    directory = SOURCE.directory(dt.date(2025, 11, 20))
    assert len(directory) >= 50
    bhp = directory[directory["symbol"] == "BHP"].iloc[0]
    assert bhp["company_name"] == "BHP GROUP LIMITED"
    assert bhp["gics_industry_group"] == "Materials"
    assert "CCON" in set(directory["symbol"])  # a 4-character code


@pytest.mark.parametrize("count", [10, 63, 500])
def test_universe_widens_to_any_size_deterministically(count) -> None:
    wide = SampleMarketData(symbols=count)
    directory = wide.directory(dt.date(2025, 11, 20))
    assert len(directory) == count - (1 if count > 52 else 0)  # AWC is delisted by then
    assert directory["symbol"].is_unique
    tickers = [f"{s}.AX" for s in directory["symbol"][-3:]]
    first = wide.price_history(tickers, dt.date(2025, 11, 3), dt.date(2025, 11, 20))
    again = SampleMarketData(symbols=count).price_history(
        tickers, dt.date(2025, 11, 3), dt.date(2025, 11, 20)
    )
    pd.testing.assert_frame_equal(first.prices, again.prices)


# Splits (PME, ZIP), dividends, SYR's suspensions, AWC's delisting and TLC's listing.
ADJUSTMENT_TICKERS = [*TICKERS, "CBA.AX", "WBC.AX", "COL.AX"]


def _bars_and_actions(history) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The source's rows in the shape analytics.adjustment reads from the warehouse."""
    bars = history.prices.assign(symbol=history.prices["yahoo_ticker"].str.removesuffix(".AX"))
    bars = bars.sort_values(["symbol", "trade_date"]).reset_index(drop=True)
    actions = history.actions.assign(symbol=history.actions["yahoo_ticker"].str.removesuffix(".AX"))
    return bars, actions


def test_adj_close_over_close_changes_exactly_on_ex_dates_by_yahoos_factor() -> None:
    history = SOURCE.price_history(ADJUSTMENT_TICKERS, SAMPLE_EPOCH, SAMPLE_HORIZON)
    bars, actions = _bars_and_actions(history)
    all_sessions = sessions_between(SAMPLE_EPOCH, SAMPLE_HORIZON)
    session_number = {day: n for n, day in enumerate(all_sessions)}
    moved, after_a_gap = set(), []
    for symbol, group in bars.groupby("symbol"):
        ratio = (group["adj_close"] / group["close"]).to_numpy()
        close = group["close"].to_numpy()
        days = group["trade_date"].tolist()
        row_of = {day: i for i, day in enumerate(days)}
        # What each bar's own actions do to the bar before it, by Yahoo's conventions: a split
        # divides by its ratio; a dividend d multiplies by 1 - d / the previous bar's raw close.
        factor = np.ones(len(days))
        own = actions[actions["symbol"] == symbol].sort_values(["ex_date", "action"])
        for action in own.itertuples():
            i = row_of[action.ex_date]
            assert i > 0, (symbol, action.ex_date)
            if action.action == "split":
                factor[i] *= 1.0 / action.value
            else:
                factor[i] *= 1.0 - action.value / close[i - 1]
            moved.add((symbol, action.ex_date))
            if session_number[days[i]] - session_number[days[i - 1]] > 1:
                after_a_gap.append((symbol, days[i]))
        # Constant between ex-dates, and the step of Yahoo's factor exactly on each of them.
        np.testing.assert_allclose(ratio[:-1] / ratio[1:], factor[1:], rtol=1e-12, atol=0,
                                   err_msg=symbol)
        assert (factor[1:] != 1.0).sum() == own["ex_date"].nunique()
        # Anchored at SAMPLE_HORIZON: from a symbol's last action on, adj_close is its close.
        after = group["trade_date"] >= (own["ex_date"].max() if len(own) else days[0])
        assert (group.loc[after, "adj_close"] == group.loc[after, "close"]).all(), symbol
    assert len(moved) == len(actions) > 100
    # SYR's dividend of 2023-02-21 comes after a suspension: the close it divides by is that of
    # the last bar before it (as in analytics.adjustment), not of the suspended session before.
    assert after_a_gap == [("SYR", dt.date(2023, 2, 21))]


def test_adj_close_ratios_equal_the_explicit_adjustment_of_the_same_rows() -> None:
    history = SOURCE.price_history(ADJUSTMENT_TICKERS, dt.date(2023, 1, 2), dt.date(2026, 12, 31))
    bars, actions = _bars_and_actions(history)
    splits = actions[actions["action"] == "split"]
    assert splits[["ex_date", "symbol", "value"]].values.tolist() == [
        [dt.date(2025, 11, 10), "PME", 2.0],
        [dt.date(2026, 9, 14), "ZIP", 0.1],
    ]
    assert (actions["action"] == "dividend").sum() >= 20
    steps = adjustment_steps(bars, actions)
    assert steps.actions_applied == len(actions)
    for symbol, rows in bars.groupby("symbol").indices.items():
        factors = factors_to_last(steps.price_step[rows][np.newaxis, :])[0]
        explicit = bars["close"].to_numpy()[rows] * factors
        adjusted = bars["adj_close"].to_numpy()[rows]
        # Every pair of sessions (D1, D2): adj_close[D1] / adj_close[D2] = explicit ratio.
        np.testing.assert_allclose(
            adjusted[:, np.newaxis] / adjusted[np.newaxis, :],
            explicit[:, np.newaxis] / explicit[np.newaxis, :],
            rtol=1e-12, atol=0, err_msg=symbol,
        )


def test_adj_close_does_not_depend_on_where_the_range_ends() -> None:
    short = SOURCE.price_history(TICKERS, dt.date(2025, 10, 1), dt.date(2025, 11, 7))
    long = SOURCE.price_history(TICKERS, dt.date(2025, 10, 1), dt.date(2027, 6, 30))
    in_long = long.prices[long.prices["trade_date"] <= dt.date(2025, 11, 7)]
    pd.testing.assert_frame_equal(short.prices, in_long.reset_index(drop=True))
