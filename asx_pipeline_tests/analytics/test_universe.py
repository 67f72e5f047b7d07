"""Market-wide numbers use the session's universe, not every per-symbol row kept in storage."""

import datetime as dt

import pandas as pd

from asx_pipeline.analytics.breadth import compute_breadth
from asx_pipeline.analytics.universe import in_universe

D1, D2, D3 = dt.date(2025, 11, 10), dt.date(2025, 11, 11), dt.date(2025, 11, 12)


def _rows(pairs):
    return pd.DataFrame(
        [
            {"trade_date": d, "symbol": s, "return_1d": r, "sma_200": float("nan"),
             "high_52w": 2.0, "low_52w": 0.5}
            for d, s, r in pairs
        ]
    )


def test_rows_of_a_symbol_that_left_the_universe_are_not_counted():
    # OLD was tracked on D1 only; its D2 row is kept in storage from an earlier universe.
    indicators = _rows([(D1, "BHP", 0.01), (D1, "OLD", -0.02), (D2, "BHP", 0.02),
                        (D2, "OLD", -0.05), (D3, "BHP", -0.01)])
    symbols = pd.DataFrame(
        {"as_of_date": [D1, D1, D2], "symbol": ["BHP", "OLD", "BHP"]}
    )

    kept = in_universe(indicators, symbols)

    # D3 has no asx_symbols rows: nothing to hold it against, so it stays.
    assert list(zip(kept["trade_date"], kept["symbol"], strict=True)) == [
        (D1, "BHP"), (D1, "OLD"), (D2, "BHP"), (D3, "BHP")
    ]
    prices = pd.DataFrame(
        {"trade_date": kept["trade_date"], "symbol": kept["symbol"], "high": 1.0, "low": 1.0,
         "close": 1.0}
    )
    breadth = compute_breadth(kept, prices).set_index("trade_date")
    assert breadth.loc[D2, "decliners"] == 0 and breadth.loc[D2, "advancers"] == 1
