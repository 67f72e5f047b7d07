"""Running validated screeners over a session's rows (indicators + prices + symbol columns).

A null in any column a filter reads fails that filter (pandas comparisons with NaN are False),
so a symbol with too little history never passes a screener that needs the history. Ties in the
ranking are broken by symbol, so the same data always gives the same ranks.
"""

from __future__ import annotations

import ast
import json
import math
import operator
from collections.abc import Callable

import numpy as np
import pandas as pd

from asx_pipeline.analytics.screener_config import Screener, ScreenerSet

RESULT_COLUMNS = ["trade_date", "screener", "symbol", "rank", "score", "close", "matched_values"]

_BINARY: dict[type, Callable] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
}
_COMPARE: dict[type, Callable] = {
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
}


def screening_frame(
    indicators: pd.DataFrame, prices: pd.DataFrame, symbols: pd.DataFrame
) -> pd.DataFrame:
    """One row per (trade_date, symbol) with every column a screener may read."""
    bars = prices[["trade_date", "symbol", "open", "high", "low", "close", "adj_close", "volume"]]
    listed = symbols.rename(columns={"as_of_date": "trade_date"})[
        ["trade_date", "symbol", "market_cap", "gics_industry_group", "status", "company_name"]
    ]
    frame = indicators.merge(bars, on=["trade_date", "symbol"], how="left")
    frame = frame.merge(listed, on=["trade_date", "symbol"], how="left")
    frame["volume"] = frame["volume"].astype("float64")
    return frame


def run_screeners(frame: pd.DataFrame, config: ScreenerSet) -> pd.DataFrame:
    """Every screener on every session of `frame`, as screener_results rows (per session, the
    screeners in file order, each by rank)."""
    results = [run_screener(screener, config, frame) for screener in config.screeners]
    results = [r for r in results if not r.empty]
    if not results:
        return pd.DataFrame(columns=RESULT_COLUMNS)
    # A stable sort by session keeps the file order of the screeners and the ranks within it.
    combined = pd.concat(results, ignore_index=True)
    return combined.sort_values("trade_date", kind="stable", ignore_index=True)[RESULT_COLUMNS]


def run_screener(screener: Screener, config: ScreenerSet, sessions: pd.DataFrame) -> pd.DataFrame:
    """One screener on the rows of one or many sessions: per session, the top_n passing rows,
    ranked from 1.

    Filters and scores are row by row, so the whole range is judged in one pass (a range run
    costs one evaluation per screener, not one per session) and each session ranks alone.
    """
    rows = sessions[_in_universe(screener, config, sessions)]
    passed = np.ones(len(rows), dtype=bool)
    for _, tree in screener.filters:
        passed &= np.asarray(evaluate(tree, rows), dtype=bool)
    rows = rows[passed]
    rows = rows.assign(score=_as_series(evaluate(screener.rank_by[1], rows), rows))
    rows = rows[np.isfinite(rows["score"].astype("float64"))]
    ordered = rows.sort_values(
        ["trade_date", "score", "symbol"],
        ascending=[True, screener.ascending, True],
        kind="stable",
    )
    rank = ordered.groupby("trade_date", sort=False).cumcount().to_numpy() + 1
    keep = rank <= screener.top_n
    ranked, rank = ordered[keep], rank[keep]
    columns = screener.columns
    return pd.DataFrame(
        {
            "trade_date": ranked["trade_date"].to_numpy(),
            "screener": screener.name,
            "symbol": ranked["symbol"].to_numpy(),
            "rank": rank,
            "score": ranked["score"].astype("float64").to_numpy(),
            "close": ranked["close"].to_numpy(dtype="float64", na_value=np.nan),
            "matched_values": [
                _matched(row, columns) for row in ranked[columns].to_dict("records")
            ],
        }
    )


def _in_universe(screener: Screener, config: ScreenerSet, rows: pd.DataFrame) -> pd.Series:
    universe = screener.universe
    if universe == "all":
        return pd.Series(True, index=rows.index)
    if isinstance(universe, tuple):
        return rows["symbol"].isin(universe)
    members = config.symbol_sets[universe]
    return rows["symbol"].isin(members.symbols) | rows["gics_industry_group"].isin(
        members.gics_industry_groups
    )


def evaluate(node: ast.expr, rows: pd.DataFrame) -> pd.Series | float | str:
    """The value of a validated expression over `rows` (a Series, or a constant)."""
    if isinstance(node, ast.Name):
        return rows[node.id]
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.BinOp):
        return _BINARY[type(node.op)](evaluate(node.left, rows), evaluate(node.right, rows))
    if isinstance(node, ast.UnaryOp):
        value = evaluate(node.operand, rows)
        return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.Call):
        return abs(evaluate(node.args[0], rows))
    if isinstance(node, ast.Compare):
        operands = [evaluate(n, rows) for n in (node.left, *node.comparators)]
        result = pd.Series(True, index=rows.index)
        for op, left, right in zip(node.ops, operands, operands[1:], strict=False):
            result &= _as_series(_COMPARE[type(op)](left, right), rows).fillna(False).astype(bool)
        return result
    raise ValueError(f"Unvalidated expression {ast.unparse(node)!r}")


def _as_series(value: object, rows: pd.DataFrame) -> pd.Series:
    if isinstance(value, pd.Series):
        return value
    return pd.Series(value, index=rows.index)


def _matched(row: dict[str, object], columns: list[str]) -> str:
    """The values a hit was judged on, as JSON (nulls as null, floats rounded for reading)."""
    values = {}
    for column in columns:
        value = row[column]
        if isinstance(value, float | np.floating):
            values[column] = None if math.isnan(value) else round(float(value), 6)
        elif isinstance(value, np.integer):
            values[column] = int(value)
        else:
            values[column] = None if pd.isna(value) else value
    return json.dumps(values, sort_keys=False)
