"""`asx_symbols`: the tracked universe of ASX companies, as known on each session."""


import datetime as dt

import pandas as pd
from dagster import AssetExecutionContext, Failure, Output

from asx_pipeline.assets.daily import daily_table_asset
from asx_pipeline.assets.metadata import names, preview, session_span
from asx_pipeline.calendar import sessions_in_window
from asx_pipeline.retries import yahoo_retry_policy
from asx_pipeline.sources.asx_directory import DirectoryError
from asx_pipeline.sources.market_data import MarketDataSource, yahoo_ticker
from asx_pipeline.sources.resource import MarketDataResource
from asx_pipeline.warehouse.io_manager import window_of
from asx_pipeline.warehouse.tables import ASX_SYMBOLS


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


def symbols_for_sessions(
    market_data: MarketDataResource, sessions: list[dt.date]
) -> tuple[pd.DataFrame, list[str]]:
    """The universe on every session, and the requested codes the directory did not have."""
    client = market_data.client()
    frames, unknown = [], set()
    for session in sessions:
        directory = _directory_on(client, session)
        chosen = select_universe(directory, market_data.universe)
        if market_data.universe != "all" and not market_data.universe.startswith("top:"):
            unknown |= set(market_data.universe.split(",")) - set(directory["symbol"])
        frames.append(chosen.assign(as_of_date=session))
    if not frames:
        return pd.DataFrame(columns=ASX_SYMBOLS.column_names), sorted(unknown)
    frame = pd.concat(frames, ignore_index=True)
    frame["yahoo_ticker"] = frame["symbol"].map(yahoo_ticker)
    return frame[ASX_SYMBOLS.column_names], sorted(unknown)


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
    retry_policy=yahoo_retry_policy(),
)
def asx_symbols(
    context: AssetExecutionContext, market_data: MarketDataResource
) -> Output[pd.DataFrame]:
    window = window_of(context.partition_time_window)
    sessions = sessions_in_window(window.start, window.end)
    market_data.ensure_final(sessions)
    frame, unknown = symbols_for_sessions(market_data, sessions)
    if frame.empty:
        raise Failure(
            f"The ASX directory gave no companies for {window}; nothing was written.",
            allow_retries=False,
        )
    if unknown:
        context.log.warning(f"ASX_UNIVERSE codes not in the ASX directory: {names(unknown)}")
    statuses = frame["status"].value_counts().to_dict()
    return Output(
        frame,
        metadata={
            "row_count": len(frame),
            "sessions": len(sessions),
            **session_span(sessions),
            "universe": market_data.universe,
            "symbols": int(frame["symbol"].nunique()),
            "suspended_rows": int(statuses.get("suspended", 0)),
            "unknown_codes": names(unknown),
            "preview": preview(frame),
        },
    )
