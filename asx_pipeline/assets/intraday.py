"""`intraday_quotes`: a snapshot of last price, change and volume every 15 minutes in market hours.

A snapshot is one run for one session (the partition) at one moment (`snapshot_at`, given by the
schedule, else now rounded down to the quarter hour). The table's replace scope is `snapshot_at`,
so a snapshot replaces only its own rows and the day's earlier snapshots stay.

The universe is the previous session's `asx_symbols` (today's is only materialised after the
close), falling back to the directory when that partition was never materialised.
"""

import datetime as dt

import pandas as pd
from dagster import (
    AssetExecutionContext,
    AssetIn,
    Config,
    Failure,
    Output,
    TimeWindowPartitionMapping,
)

from asx_pipeline.assets.daily import daily_table_asset
from asx_pipeline.assets.metadata import names, preview
from asx_pipeline.assets.symbols import select_universe
from asx_pipeline.calendar import SYDNEY, snapshot_times, span_of, sydney_today
from asx_pipeline.configured import YAHOO_RETRY_POLICY
from asx_pipeline.sources.market_data import IntradaySource, yahoo_ticker
from asx_pipeline.sources.resource import YAHOO_POOL, MarketDataResource
from asx_pipeline.warehouse.tables import INTRADAY_QUOTES


class IntradayConfig(Config):
    """Which moment to snapshot; the schedule sets it so that a late run keeps its slot."""

    snapshot_at: str = ""  # ISO 8601 with a UTC offset; empty: now, down to the quarter hour


def snapshot_moment(session: dt.date, requested: str, now: dt.datetime) -> dt.datetime:
    """The snapshot to take: the requested one, or the latest due by `now` in that session."""
    if requested:
        at = dt.datetime.fromisoformat(requested)
        if at.tzinfo is None:
            raise Failure(f"snapshot_at {requested!r} needs a UTC offset", allow_retries=False)
        if sydney_today(at) != session:
            raise Failure(
                f"snapshot_at {requested} is not during session {session}", allow_retries=False
            )
        return at.astimezone(dt.UTC)
    due = [moment for moment in snapshot_times(session) if moment <= now]
    if not due:
        raise Failure(
            f"The market has not opened yet for session {session}: the first snapshot is at "
            f"{snapshot_times(session)[0].astimezone(SYDNEY):%H:%M %Z}",
            allow_retries=False,
        )
    return due[-1]


def intraday_source(market_data: MarketDataResource) -> IntradaySource:
    """The sample source quotes itself; Yahoo quotes come from one batched request each."""
    if market_data.source == "sample":
        return market_data.client()  # type: ignore[return-value]
    from asx_pipeline.sources.yahoo_intraday import YahooIntradayQuotes

    return YahooIntradayQuotes(
        batch_size=market_data.yahoo_batch_size,
        requests_per_second=market_data.yahoo_requests_per_second,
        max_concurrency=market_data.yahoo_max_concurrency,
        max_retries=market_data.yahoo_max_retries,
    )


def universe_tickers(
    market_data: MarketDataResource, previous_symbols: pd.DataFrame, session: dt.date
) -> list[str]:
    if not previous_symbols.empty:
        return sorted(previous_symbols["yahoo_ticker"].unique())
    directory = market_data.client().directory(session)
    chosen = select_universe(directory, market_data.universe)
    return sorted(chosen["symbol"].map(yahoo_ticker))


@daily_table_asset(
    INTRADAY_QUOTES,
    "intraday",
    ins={
        "asx_symbols": AssetIn(
            partition_mapping=TimeWindowPartitionMapping(start_offset=-1, end_offset=-1)
        )
    },
    retry_policy=YAHOO_RETRY_POLICY,
    pool=YAHOO_POOL,
)
def intraday_quotes(
    context: AssetExecutionContext,
    config: IntradayConfig,
    market_data: MarketDataResource,
    asx_symbols: pd.DataFrame,
) -> Output[pd.DataFrame]:
    window, sessions = span_of(context.partition_time_window)
    if len(sessions) != 1:
        raise Failure(
            f"intraday_quotes snapshots one session at a time, not {window}", allow_retries=False
        )
    session = sessions[0]
    at = snapshot_moment(session, config.snapshot_at, dt.datetime.now(dt.UTC))
    tickers = universe_tickers(market_data, asx_symbols, session)
    source = intraday_source(market_data)
    context.log.info(f"Snapshot of {len(tickers)} tickers at {at.astimezone(SYDNEY):%H:%M %Z}")
    snapshot = source.intraday_snapshot(tickers, at)
    frame = snapshot.quotes.assign(
        trade_date=session,
        snapshot_at=pd.Timestamp(at),
        symbol=snapshot.quotes["yahoo_ticker"].str.removesuffix(".AX"),
        source=source.name,
    )[INTRADAY_QUOTES.column_names]
    if frame.empty:
        raise Failure(
            f"No intraday quotes for {session} at {at:%H:%M} UTC from {source.name} "
            f"({len(snapshot.failed)} failed: {names(snapshot.failed, limit=10)}). "
            "Nothing was written."
        )
    return Output(
        frame,
        metadata={
            "snapshot_at": at.astimezone(SYDNEY).isoformat(),
            "symbols_requested": len(tickers),
            "symbols_failed": names(snapshot.failed),
            "preview": preview(frame),
        },
    )
