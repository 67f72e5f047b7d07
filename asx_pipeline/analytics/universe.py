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
    tracked = set(zip(symbols["as_of_date"], symbols["symbol"], strict=True))
    known_sessions = set(symbols["as_of_date"])
    keep = [
        day not in known_sessions or (day, symbol) in tracked
        for day, symbol in zip(frame["trade_date"], frame["symbol"], strict=True)
    ]
    return frame[keep].reset_index(drop=True)
