"""`asx_symbols`: the tracked universe of ASX companies on each session, point in time.

Every directory the source gives is stored once in `asx_directory_snapshots` (append-only); a
session's universe comes from the snapshot analytics/point_in_time.py chooses for it.
"""

import datetime as dt
from dataclasses import dataclass

import pandas as pd
from dagster import AssetExecutionContext, Failure, Output

from asx_pipeline.analytics.point_in_time import choose_snapshot
from asx_pipeline.assets.daily import daily_table_asset
from asx_pipeline.assets.metadata import names, preview, session_span
from asx_pipeline.calendar import session_before, span_of, sydney_today
from asx_pipeline.configured import YAHOO_RETRY_POLICY
from asx_pipeline.sources.asx_directory import DirectoryError
from asx_pipeline.sources.market_data import DIRECTORY_COLUMNS, MarketDataSource, yahoo_ticker
from asx_pipeline.sources.resource import MarketDataResource
from asx_pipeline.warehouse.backend import WarehouseBackend
from asx_pipeline.warehouse.frames import Window, conform_frame, empty_frame
from asx_pipeline.warehouse.resources import WarehouseResource
from asx_pipeline.warehouse.tables import ASX_DIRECTORY_SNAPSHOTS, ASX_SYMBOLS


def select_universe(directory: pd.DataFrame, universe: str) -> pd.DataFrame:
    """The companies ASX_UNIVERSE asks for: `all`, `top:N` by market cap, or a list of codes.

    `top:N` ranks by market cap with companies that have none (suspended) last, so a universe
    does not shrink on the day a large company is suspended.
    """
    if universe == "all":
        return directory
    if universe.startswith("top:"):
        count = int(universe.removeprefix("top:"))
        ranked = directory.sort_values(
            ["market_cap", "symbol"], ascending=[False, True], na_position="last"
        )
        return ranked.head(count)
    wanted = universe.split(",")
    unknown = sorted(set(wanted) - set(directory["symbol"]))
    if len(unknown) == len(wanted):
        raise Failure(
            f"ASX_UNIVERSE lists {names(unknown)}, none of which is in the ASX directory; "
            "expected ASX codes such as BHP,CBA,CSL",
            allow_retries=False,
        )
    return directory[directory["symbol"].isin(wanted)]


def store_directory_snapshots(
    client: MarketDataSource,
    warehouse: WarehouseBackend,
    sessions: list[dt.date],
    today: dt.date,
) -> dict[dt.date, int]:
    """Store the directories the source can give for `sessions`; capture date -> rows added.

    A point-in-time source (the sample one) gives each session its own directory. The ASX gives
    only today's, so it is fetched when the run reaches today, or when no snapshot exists at all;
    a past session is resolved from the snapshots already stored (a daily run's, or an imported
    archive), so a backfill never needs the ASX and never replaces what a daily run saw.
    """
    stored = set(warehouse.partition_values(ASX_DIRECTORY_SNAPSHOTS))
    if client.point_in_time_directory:
        wanted = [session for session in sessions if session not in stored]
    elif today not in stored and (sessions[-1] >= today or not stored):
        wanted = [today]
    else:
        wanted = []
    if not wanted:
        return {}
    origin = client.directory_origin
    frame = pd.concat(
        [snapshot_frame(_directory_on(client, day), day, origin) for day in wanted],
        ignore_index=True,
    )
    conformed = conform_frame(
        ASX_DIRECTORY_SNAPSHOTS, Window(wanted[0], wanted[-1] + dt.timedelta(days=1)), frame
    )
    warehouse.append_partitions(ASX_DIRECTORY_SNAPSHOTS, conformed)
    return {day: int((frame["captured_on"] == day).sum()) for day in wanted}


def snapshot_frame(directory: pd.DataFrame, captured_on: dt.date, origin: str) -> pd.DataFrame:
    """A directory (DIRECTORY_COLUMNS) as rows of asx_directory_snapshots."""
    frame = directory.assign(captured_on=captured_on, origin=origin)
    return frame[ASX_DIRECTORY_SNAPSHOTS.column_names]


@dataclass
class Universe:
    """The universe on some sessions, from the snapshots the point-in-time rule chose."""

    frame: pd.DataFrame  # rows of asx_symbols
    unknown: list[str]  # codes of a listed ASX_UNIVERSE that the chosen snapshots lack
    directories: dict[dt.date, pd.DataFrame]  # the chosen snapshots, by capture date

    def on(self, session: dt.date) -> set[str]:
        return set(self.frame.loc[self.frame["as_of_date"] == session, "symbol"])

    def snapshot_of(self, session: dt.date) -> dt.date | None:
        rows = self.frame.loc[self.frame["as_of_date"] == session, "snapshot_captured_on"]
        return rows.iloc[0] if not rows.empty else None


def symbols_for_sessions(
    market_data: MarketDataResource,
    warehouse: WarehouseBackend,
    sessions: list[dt.date],
    today: dt.date | None = None,
) -> tuple[Universe, dict[dt.date, int]]:
    """Store what the source's directory gives for `sessions`, then each session's universe.

    Returns the universe and the snapshots stored (capture date -> companies). The session
    before the first is covered too: market_bars compares with it to find joining symbols.
    """
    previous = session_before(sessions[0])
    around = ([previous] if previous is not None else []) + sessions
    added = store_directory_snapshots(
        market_data.client(), warehouse, around, today or sydney_today()
    )
    return universe_on(warehouse, market_data.universe, sessions), added


def universe_on(
    warehouse: WarehouseBackend, universe: str, sessions: list[dt.date]
) -> Universe:
    """Each session's universe from its snapshot: the latest captured on or before it, else
    the earliest after it (marked `snapshot_after_session`); `top:N` ranks by that snapshot."""
    captured = warehouse.partition_values(ASX_DIRECTORY_SNAPSHOTS)
    choices = {session: choose_snapshot(session, captured) for session in sessions}
    if not captured:
        raise Failure(
            "asx_directory_snapshots is empty: materialise asx_symbols for today's session "
            "(it stores the ASX directory), or import an archive with "
            "`asx-pipeline directory import FILE...`. Nothing was written.",
            allow_retries=False,
        )
    directories = read_snapshots(warehouse, sorted({c.captured_on for c in choices.values()}))
    frames, unknown = [], set()
    for session, choice in choices.items():
        directory = directories[choice.captured_on]
        chosen = select_universe(directory, universe)
        if universe != "all" and not universe.startswith("top:"):
            unknown |= set(universe.split(",")) - set(directory["symbol"])
        frames.append(
            chosen.assign(
                as_of_date=session,
                snapshot_captured_on=choice.captured_on,
                snapshot_after_session=choice.after_session,
            )
        )
    frame = pd.concat(frames, ignore_index=True) if frames else empty_frame(ASX_SYMBOLS)
    frame["yahoo_ticker"] = frame["symbol"].map(yahoo_ticker)
    return Universe(frame[ASX_SYMBOLS.column_names], sorted(unknown), directories)


def read_snapshots(
    warehouse: WarehouseBackend, days: list[dt.date]
) -> dict[dt.date, pd.DataFrame]:
    """The stored snapshots of `days`, each as a DIRECTORY_COLUMNS frame, in one read."""
    if not days:
        return {}
    stored = warehouse.read_window(
        ASX_DIRECTORY_SNAPSHOTS, Window(days[0], days[-1] + dt.timedelta(days=1))
    )
    wanted = set(days)
    return {
        day: rows[DIRECTORY_COLUMNS].reset_index(drop=True)
        for day, rows in stored.groupby("captured_on", sort=True)
        if day in wanted
    }


def _directory_on(client: MarketDataSource, session: dt.date) -> pd.DataFrame:
    """The source's directory; a problem that waiting cannot fix fails the step at once."""
    try:
        return client.directory(session)
    except DirectoryError as error:
        if error.retryable:
            raise  # a network failure: the step's RetryPolicy tries again later
        # A Failure shows its description as-is in the UI; allow_retries=False skips the
        # RetryPolicy, which would wait minutes for the same bad file.
        raise Failure(str(error), allow_retries=False) from None


@daily_table_asset(
    ASX_SYMBOLS,
    "market_data",
    retry_policy=YAHOO_RETRY_POLICY,
)
def asx_symbols(
    context: AssetExecutionContext,
    market_data: MarketDataResource,
    warehouse: WarehouseResource,
) -> Output[pd.DataFrame]:
    window, sessions = span_of(context.partition_time_window)
    market_data.ensure_final(sessions)
    result, added = symbols_for_sessions(market_data, warehouse.open(), sessions)
    if added:
        days = sorted(added)
        context.log.info(
            f"Stored {len(days)} ASX directory snapshot(s), {sum(added.values())} companies in "
            f"all: {names((d.isoformat() for d in days), limit=5)}"
        )
    frame = result.frame
    if frame.empty:
        raise Failure(
            f"The ASX directory gave no companies for {window}; nothing was written.",
            allow_retries=False,
        )
    if result.unknown:
        context.log.warning(
            f"ASX_UNIVERSE codes not in the ASX directory: {names(result.unknown)}"
        )
    later = sorted(set(frame.loc[frame["snapshot_after_session"], "as_of_date"]))
    if later:
        context.log.warning(
            f"{len(later)} session(s) of {window} are older than every stored directory snapshot "
            f"and take the earliest one after them (survivorship bias): "
            f"{names(d.isoformat() for d in later)}. Import an archive of older directories with "
            "`asx-pipeline directory import` to fix them."
        )
    statuses = frame["status"].value_counts().to_dict()
    snapshots = sorted(set(frame["snapshot_captured_on"]))
    return Output(
        frame,
        metadata={
            "sessions": len(sessions),
            **session_span(sessions),
            "universe": market_data.universe,
            "symbols": int(frame["symbol"].nunique()),
            "suspended_rows": int(statuses.get("suspended", 0)),
            "unknown_codes": names(result.unknown),
            "snapshots_used": names(d.isoformat() for d in snapshots),
            "sessions_on_a_later_snapshot": len(later),
            "snapshots_stored": names(d.isoformat() for d in added),
            "preview": preview(frame),
        },
    )
