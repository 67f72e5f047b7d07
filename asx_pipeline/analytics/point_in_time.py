"""The point-in-time rule: which directory snapshot a session's universe comes from.

The ASX publishes only today's company directory, so every directory the pipeline ever sees is
kept as a snapshot (`asx_directory_snapshots`) and a session's universe is taken from the latest
snapshot captured on or before it. Only a session older than every snapshot takes the earliest one
after it, and says so: such a session holds the companies that survived until that capture
(survivorship bias), which no free source can undo.

Pure functions of frames and dates; the Dagster assets in assets/symbols.py and assets/prices.py
call them.
"""

from __future__ import annotations

import bisect
import datetime as dt
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

_CAPTURE_DATE = re.compile(r"(\d{4}-\d{2}-\d{2})")


@dataclass(frozen=True)
class SnapshotChoice:
    """The snapshot a session's universe is taken from."""

    captured_on: dt.date
    # True when no snapshot was captured on or before the session and a later one stands in.
    after_session: bool


def choose_snapshot(session: dt.date, captured: Sequence[dt.date]) -> SnapshotChoice | None:
    """The latest capture on or before `session`, else the earliest after it; None if none.

    `captured` must be sorted ascending (as `WarehouseBackend.partition_values` returns it).
    """
    if not captured:
        return None
    index = bisect.bisect_right(captured, session)
    if index > 0:
        return SnapshotChoice(captured[index - 1], after_session=False)
    return SnapshotChoice(captured[0], after_session=True)


def capture_date_in_name(path: Path) -> dt.date | None:
    """The `YYYY-MM-DD` in a file name (`ASX_Listed_Companies_2024-05-31.csv`), if exactly one."""
    found = _CAPTURE_DATE.findall(path.name)
    if len(found) != 1:
        return None
    try:
        return dt.date.fromisoformat(found[0])
    except ValueError:
        return None


@dataclass(frozen=True)
class CodeChange:
    """A company that left the directory under one code and came back under another."""

    old: str
    new: str
    matched_on: str  # what made the two codes one company: "company name" or "listing date"

    def __str__(self) -> str:
        return f"{self.old} -> {self.new} (same {self.matched_on})"


def code_changes(before: pd.DataFrame, after: pd.DataFrame) -> list[CodeChange]:
    """Codes that changed between two directories (DIRECTORY_COLUMNS frames).

    A code that left and a code that joined are one company when they have the same company name,
    or the same listing date and GICS industry group (a rename: IPL Incitec Pivot became DNL Dyno
    Nobel on 28/07/2003's listing). Only a pairing that is unique on its side is taken, so two
    companies listed on the same day are never merged by guesswork.
    """
    left = before[~before["symbol"].isin(after["symbol"])]
    joined = after[~after["symbol"].isin(before["symbol"])]
    changes: dict[str, CodeChange] = {}
    by_name = _unique_pairs(left, joined, lambda f: f["company_name"].map(_name_key))
    for old, new in by_name:
        changes[old] = CodeChange(old, new, "company name")
    taken_new = {change.new for change in changes.values()}
    rest_left = left[~left["symbol"].isin(list(changes))]
    rest_joined = joined[~joined["symbol"].isin(list(taken_new))]
    by_listing = _unique_pairs(
        rest_left,
        rest_joined,
        lambda f: f["listing_date"].astype(str) + "|" + f["gics_industry_group"].astype(str),
        valid=lambda f: f["listing_date"].notna(),
    )
    for old, new in by_listing:
        changes[old] = CodeChange(old, new, "listing date")
    return sorted(changes.values(), key=lambda change: change.old)


def _name_key(name: object) -> str:
    # "DYNO NOBEL LIMITED." and "Dyno Nobel Limited" are the same name.
    return re.sub(r"[^A-Z0-9]", "", str(name or "").upper())


def _unique_pairs(
    left: pd.DataFrame,
    joined: pd.DataFrame,
    key: Callable[[pd.DataFrame], pd.Series],
    valid: Callable[[pd.DataFrame], pd.Series] | None = None,
) -> list[tuple[str, str]]:
    if left.empty or joined.empty:
        return []
    if valid is not None:
        left, joined = left[valid(left)], joined[valid(joined)]
    left_keys = pd.Series(key(left).to_numpy(), index=left["symbol"].to_numpy())
    joined_keys = pd.Series(key(joined).to_numpy(), index=joined["symbol"].to_numpy())
    left_unique = left_keys[~left_keys.duplicated(keep=False) & (left_keys != "")]
    joined_unique = joined_keys[~joined_keys.duplicated(keep=False) & (joined_keys != "")]
    by_key = {value: symbol for symbol, value in joined_unique.items()}
    return [(old, by_key[value]) for old, value in left_unique.items() if value in by_key]


@dataclass(frozen=True)
class Joiner:
    """A symbol that enters the universe on a session, and why."""

    symbol: str
    session: dt.date
    reason: str


def joiners(
    universe: pd.DataFrame,
    previous: Iterable[str],
    previous_snapshot: dt.date | None = None,
    directories: dict[dt.date, pd.DataFrame] | None = None,
) -> list[Joiner]:
    """Symbols of `universe` (as_of_date, symbol, snapshot_captured_on, listing_date) that were
    not in it on the session before, with the earliest session each one joins on.

    `previous` is the universe of the session before the first one of `universe`, taken from
    `previous_snapshot`. `directories`
    (snapshot date -> directory) lets the reason say whether the company is new to the ASX
    directory, a code change, or rose into a ranked universe.
    """
    found: dict[str, Joiner] = {}
    before = set(previous)
    before_snapshot = previous_snapshot
    for session, rows in universe.sort_values("as_of_date").groupby("as_of_date", sort=True):
        now = set(rows["symbol"])
        snapshot = rows["snapshot_captured_on"].iloc[0]
        for symbol in sorted(now - before):
            if symbol not in found:
                found[symbol] = Joiner(
                    symbol, session, _join_reason(symbol, rows, before_snapshot, directories)
                )
        before, before_snapshot = now, snapshot
    return sorted(found.values(), key=lambda joiner: (joiner.session, joiner.symbol))


def _join_reason(
    symbol: str,
    rows: pd.DataFrame,
    before_snapshot: dt.date | None,
    directories: dict[dt.date, pd.DataFrame] | None,
) -> str:
    listed = rows.loc[rows["symbol"] == symbol, "listing_date"].iloc[0]
    listing = f", listed {listed}" if pd.notna(listed) else ""
    earlier = (directories or {}).get(before_snapshot) if before_snapshot else None
    if earlier is None:
        return f"joined the universe{listing}"
    if symbol in set(earlier["symbol"]):
        return f"rose into the universe{listing}"
    current = (directories or {}).get(rows["snapshot_captured_on"].iloc[0])
    if current is not None:
        for change in code_changes(earlier, current):
            if change.new == symbol:
                return f"new code of {change.old} (same {change.matched_on}){listing}"
    return f"new in the ASX directory{listing}"
