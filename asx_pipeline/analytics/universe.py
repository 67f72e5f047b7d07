"""Which stored rows belong to a session's universe.

Per-symbol tables keep the rows of a symbol that left the universe (nothing stored is lost), so
market-wide numbers (breadth, screeners, the report) must be computed over the symbols the
session's `asx_symbols` tracks, not over whatever per-symbol rows are stored for it.
"""

from __future__ import annotations

import pandas as pd


def in_universe(frame: pd.DataFrame, symbols: pd.DataFrame) -> pd.DataFrame:
    """Rows of `frame` (trade_date, symbol, ...) whose symbol `symbols` tracks on that session.

    A session with no `asx_symbols` rows at all (not materialised) keeps its rows: there is no
    universe to hold them against.
    """
    if frame.empty or symbols.empty:
        return frame
    # Hash lookups of (session, symbol) pairs, for all rows at once.
    rows = pd.MultiIndex.from_arrays([frame["trade_date"], frame["symbol"]])
    tracked = pd.MultiIndex.from_arrays([symbols["as_of_date"], symbols["symbol"]])
    keep = rows.isin(tracked) | ~frame["trade_date"].isin(symbols["as_of_date"]).to_numpy()
    return frame[keep].reset_index(drop=True)
