"""`daily_prices` and `corporate_actions`: one fetch of the market-data source feeds both.

They are one multi-asset so that a session (or a two-year backfill) asks Yahoo once per batch of
symbols for the whole range, and the bars and the dividends/splits of that answer land together.
Either can still be materialised alone (`can_subset`).
"""


import datetime as dt
from collections.abc import Iterator

import pandas as pd
from dagster import (
    AssetExecutionContext,
    AssetIn,
    AssetOut,
    BackfillPolicy,
    Failure,
    MetadataValue,
    Output,
    multi_asset,
)

from asx_pipeline.assets.metadata import (
    FAILED_SYMBOLS,
    REFUSED_BARS,
    names,
    preview,
    session_span,
)
from asx_pipeline.calendar import asx_trading_days, sessions_in_window
from asx_pipeline.retries import yahoo_retry_policy
from asx_pipeline.sources.market_data import PriceHistory
from asx_pipeline.sources.resource import YAHOO_POOL, MarketDataResource
from asx_pipeline.warehouse.io_manager import window_of
from asx_pipeline.warehouse.tables import CORPORATE_ACTIONS, DAILY_PRICES


def prices_frame(
    history: PriceHistory, symbols: pd.DataFrame, source: str, ingested_at: dt.datetime
) -> pd.DataFrame:
    """Bars keyed by (trade_date, symbol), kept only where the symbol was tracked that session."""
    tracked = symbols[["as_of_date", "symbol", "yahoo_ticker"]].rename(
        columns={"as_of_date": "trade_date"}
    )
    bars = history.prices.merge(tracked, on=["trade_date", "yahoo_ticker"], how="inner")
    bars = bars.assign(source=source, ingested_at=pd.Timestamp(ingested_at))
    return bars[DAILY_PRICES.column_names]


def actions_frame(history: PriceHistory, symbols: pd.DataFrame, source: str) -> pd.DataFrame:
    """Dividends and splits keyed by (ex_date, symbol, action) within the tracked universe."""
    tickers = symbols[["symbol", "yahoo_ticker"]].drop_duplicates()
    actions = history.actions.merge(tickers, on="yahoo_ticker", how="inner")
    actions = actions.assign(source=source)
    return actions[CORPORATE_ACTIONS.column_names]


@multi_asset(
    outs={
        "daily_prices": AssetOut(
            io_manager_key="warehouse_io_manager",
            is_required=False,
            description=DAILY_PRICES.description,
            kinds={"pandas"},
        ),
        "corporate_actions": AssetOut(
            io_manager_key="warehouse_io_manager",
            is_required=False,
            description=CORPORATE_ACTIONS.description,
            kinds={"pandas"},
        ),
    },
    ins={"asx_symbols": AssetIn()},
    partitions_def=asx_trading_days(),
    backfill_policy=BackfillPolicy.single_run(),
    group_name="market_data",
    can_subset=True,
    retry_policy=yahoo_retry_policy(),
    # One Yahoo caller at a time across runs: the daily tick, a backfill, intraday snapshots.
    pool=YAHOO_POOL,
)
def market_bars(
    context: AssetExecutionContext, market_data: MarketDataResource, asx_symbols: pd.DataFrame
) -> Iterator[Output[pd.DataFrame]]:
    window = window_of(context.partition_time_window)
    sessions = sessions_in_window(window.start, window.end)
    market_data.ensure_final(sessions)
    if asx_symbols.empty:
        raise Failure(
            f"asx_symbols has no rows for {window}: materialise asx_symbols for these sessions "
            "first. Nothing was written.",
            allow_retries=False,
        )
    missing = sorted(set(sessions) - set(asx_symbols["as_of_date"]))
    if missing:
        # Without them the join below would silently drop those sessions' bars.
        raise Failure(
            f"asx_symbols has no rows for {len(missing)} session(s) of {window}: "
            f"{names(d.isoformat() for d in missing)}; materialise asx_symbols for them first. "
            "Nothing was written.",
            allow_retries=False,
        )
    tickers = sorted(asx_symbols["yahoo_ticker"].unique())
    client = market_data.client()
    context.log.info(f"Fetching {len(tickers)} tickers for {window} from {client.name}")
    history = client.price_history(tickers, sessions[0], sessions[-1])
    prices = prices_frame(history, asx_symbols, client.name, dt.datetime.now(dt.UTC))
    if prices.empty:
        refused = f"; {len(history.refused)} bar(s) refused as junk" if history.refused else ""
        raise Failure(
            f"No prices could be fetched for {window} from {client.name} "
            f"({len(history.failed)} of {len(tickers)} tickers failed: "
            f"{names(_reasons(history.failed), limit=10)}{refused}). Nothing was written.",
            metadata={"failed": names(_reasons(history.failed))},
            # Worth a step retry minutes later only when Yahoo or the network was down for
            # every ticker; "no such data" or junk would be the same answer again.
            allow_retries=bool(history.failed)
            and set(history.failed) == set(history.retries_exhausted),
        )
    for ticker, reason in history.failed.items():
        context.log.warning(f"{ticker} not fetched, its stored rows are kept: {reason}")
    for bar in history.refused:
        context.log.warning(f"Refused {bar}; any stored row for it is kept")
    selected = {key.path[-1] for key in context.selected_asset_keys}
    if "daily_prices" in selected:
        yield Output(
            prices,
            output_name="daily_prices",
            metadata=_prices_metadata(prices, tickers, history),
        )
    if "corporate_actions" in selected:
        actions = actions_frame(history, asx_symbols, client.name)
        yield Output(
            actions,
            output_name="corporate_actions",
            metadata={
                "row_count": len(actions),
                "dividends": int((actions["action"] == "dividend").sum()),
                "splits": int((actions["action"] == "split").sum()),
                "kept_previous_rows_for": names(_symbol(t) for t in history.failed),
                **session_span(sessions),
                "preview": preview(actions),
            },
        )


def _symbol(ticker: str) -> str:
    return ticker.removesuffix(".AX")


def _reasons(failed: dict[str, str]) -> list[str]:
    return [f"{_symbol(ticker)}: {reason}" for ticker, reason in failed.items()]


def _prices_metadata(
    prices: pd.DataFrame, tickers: list[str], history: PriceHistory
) -> dict[str, object]:
    received = set(prices["symbol"])
    requested = {_symbol(ticker) for ticker in tickers}
    failed = {_symbol(ticker) for ticker in history.failed}
    refused = [f"{_symbol(bar.ticker)} {bar.session}: {bar.reason}" for bar in history.refused]
    kept = failed | {f"{_symbol(bar.ticker)} {bar.session}" for bar in history.refused}
    return {
        "row_count": len(prices),
        "symbols_requested": len(requested),
        "symbols_received": len(received),
        "coverage": round(len(received) / len(requested), 4) if requested else 0.0,
        "symbols_failed": len(failed),
        FAILED_SYMBOLS: MetadataValue.md(_bullets(_reasons(history.failed))),
        "bars_refused": len(refused),
        REFUSED_BARS: MetadataValue.md(_bullets(refused)),
        "kept_previous_rows_for": names(kept),
        "symbols_without_bars": names(requested - received - failed),
        **session_span(prices["trade_date"]),
        "preview": preview(prices),
    }


def _bullets(lines: list[str]) -> str:
    return "\n".join(f"- {line}" for line in lines) or "none"
