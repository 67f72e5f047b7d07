"""Explicit split and dividend adjustment, checked by hand."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from asx_pipeline.analytics.adjustment import adjustment_steps, factors_to_last

D = dt.date


def _bars() -> pd.DataFrame:
    days = [D(2025, 11, 5), D(2025, 11, 6), D(2025, 11, 7), D(2025, 11, 10), D(2025, 11, 11)]
    return pd.DataFrame(
        {
            "symbol": ["AAA"] * 5 + ["BBB"] * 2,
            "trade_date": days + days[:2],
            "close": [10.0, 10.0, 8.0, 4.0, 4.2, 2.0, 1.9],
        }
    )


def test_split_and_dividend_steps_land_on_their_ex_dates() -> None:
    actions = pd.DataFrame(
        {
            "ex_date": [D(2025, 11, 7), D(2025, 11, 10), D(2025, 11, 5)],
            "symbol": ["AAA", "AAA", "BBB"],
            "action": ["dividend", "split", "dividend"],
            "value": [0.5, 2.0, 0.1],
        }
    )
    steps = adjustment_steps(_bars(), actions)
    # A$0.50 on a previous close of 10: earlier prices x 0.95; 2:1 split: earlier prices x 0.5,
    # earlier volumes x 2; BBB's dividend is on its first bar: nothing before it to restate.
    np.testing.assert_array_equal(steps.price_step, [1, 1, 0.95, 0.5, 1, 1, 1])
    np.testing.assert_array_equal(steps.volume_step, [1, 1, 1, 2, 1, 1, 1])
    assert steps.actions_applied == 2


def test_an_action_on_a_day_without_a_bar_applies_at_the_next_bar() -> None:
    actions = pd.DataFrame(
        {"ex_date": [D(2025, 11, 8)], "symbol": ["AAA"], "action": ["split"], "value": [4.0]}
    )
    steps = adjustment_steps(_bars(), actions)  # 8 November is a Saturday
    assert steps.price_step[3] == 0.25 and steps.volume_step[3] == 4.0


def test_factors_multiply_every_later_step_up_to_the_row_end() -> None:
    steps = np.array([[9.0, 1.0, 0.95, 0.5, 1.0], [7.0, 0.5, 1.0, 1.0, 1.0]])  # 2nd row padded
    factors = factors_to_last(steps)
    np.testing.assert_allclose(factors[0], [0.475, 0.475, 0.5, 1.0, 1.0])
    np.testing.assert_allclose(factors[1], [0.5, 1.0, 1.0, 1.0, 1.0])


def test_an_unknown_action_is_refused() -> None:
    actions = pd.DataFrame(
        {"ex_date": [D(2025, 11, 7)], "symbol": ["AAA"], "action": ["spinoff"], "value": [1.0]}
    )
    with pytest.raises(ValueError, match="spinoff"):
        adjustment_steps(_bars(), actions)
