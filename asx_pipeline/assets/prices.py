"""`daily_prices` and `corporate_actions`: one fetch of the market-data source feeds both.

They are one multi-asset so that a session (or a two-year backfill) asks Yahoo once per batch of
symbols for the whole range, and the bars and the dividends/splits of that answer land together.
Either can still be materialised alone (`can_subset`).
"""


import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass

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

from asx_pipeline.analytics.point_in_time import Joiner, joiners
from asx_pipeline.assets.daily import table_metadata
from asx_pipeline.assets.metadata import (
    FAILED_SYMBOLS,
    REFUSED_BARS,
    names,
    preview,
    session_span,
)
from asx_pipeline.assets.symbols import read_snapshots, universe_on
from asx_pipeline.calendar import session_before, sessions_between, span_of
from asx_pipeline.configured import DAILY_PARTITIONS, YAHOO_RETRY_POLICY
from asx_pipeline.sources.market_data import PriceHistory, yahoo_ticker
from asx_pipeline.sources.resource import YAHOO_POOL, MarketDataResource
from asx_pipeline.warehouse.backend import WarehouseBackend
from asx_pipeline.warehouse.frames import Window, conform_frame
from asx_pipeline.warehouse.resources import WarehouseResource
from asx_pipeline.warehouse.tables import CORPORATE_ACTIONS, DAILY_PRICES


def prices_frame(
    history: PriceHistory,
    symbols: pd.DataFrame,
    source: str,
    ingested_at: dt.datetime,
    history_from: dict[str, dt.date] | None = None,
) -> pd.DataFrame:
    """Bars keyed by (trade_date, symbol), kept only where the symbol was tracked that session,
    except for the tickers of `history_from` (joining the universe): all of theirs from there."""
    tracked = symbols[["as_of_date", "symbol", "yahoo_ticker"]].rename(
        columns={"as_of_date": "trade_date"}
    )
    bars = history.prices.merge(tracked, on=["trade_date", "yahoo_ticker"], how="inner")
    if history_from:
        joining = history.prices[history.prices["yahoo_ticker"].isin(list(history_from))]
        starts = joining["yahoo_ticker"].map(history_from)
        # Only ASX sessions: a stray bar Yahoo stamps on a holiday has no universe to check.
        last = max(joining["trade_date"], default=dt.date.min)
        on_session = joining["trade_date"].isin(
            set(sessions_between(min(history_from.values()), last))
        )
        joining = joining[(joining["trade_date"] >= starts) & on_session].assign(
            symbol=lambda f: f["yahoo_ticker"].str.removesuffix(".AX")
        )
        bars = pd.concat([bars, joining], ignore_index=True).drop_duplicates(
            ["trade_date", "yahoo_ticker"]
        )
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
            is_required=False,
            description=DAILY_PRICES.description,
            metadata=table_metadata(DAILY_PRICES),
            kinds={"pandas"},
        ),
        "corporate_actions": AssetOut(
            is_required=False,
            description=CORPORATE_ACTIONS.description,
            metadata=table_metadata(CORPORATE_ACTIONS),
            kinds={"pandas"},
        ),
    },
    ins={"asx_symbols": AssetIn()},
    partitions_def=DAILY_PARTITIONS,
    backfill_policy=BackfillPolicy.single_run(),
    group_name="market_data",
    can_subset=True,
    retry_policy=YAHOO_RETRY_POLICY,
    # One Yahoo caller at a time across runs: the daily tick, a backfill, intraday snapshots.
    pool=YAHOO_POOL,
)
def market_bars(
    context: AssetExecutionContext,
    market_data: MarketDataResource,
    warehouse: WarehouseResource,
    asx_symbols: pd.DataFrame,
) -> Iterator[Output[pd.DataFrame]]:
    window, sessions = span_of(context.partition_time_window)
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
    backend = warehouse.open()
    load = plan_history(market_data, backend, asx_symbols, sessions)
    history_from = load.history_from if load else {}
    joining = f", {len(history_from)} of them from {load.start} (joining)" if load else ""
    context.log.info(f"Fetching {len(tickers)} tickers for {window} from {client.name}{joining}")
    history = client.price_history(tickers, sessions[0], sessions[-1], history_from)
    now = dt.datetime.now(dt.UTC)
    all_prices = prices_frame(history, asx_symbols, client.name, now, history_from)
    all_actions = actions_frame(history, asx_symbols, client.name)
    prices, early_prices = _split_at(all_prices, "trade_date", window.start)
    actions, early_actions = _split_at(all_actions, "ex_date", window.start)
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
    written = {}
    if load is not None:
        written = write_history(backend, load, window, selected, early_prices, early_actions)
        for line in load.lines(all_prices):
            context.log.info(f"History loaded: {line}")
    if "daily_prices" in selected:
        yield Output(
            prices,
            output_name="daily_prices",
            metadata={
                **_prices_metadata(prices, tickers, history),
                **_history_metadata(load, all_prices, written.get("daily_prices", 0)),
            },
        )
    if "corporate_actions" in selected:
        yield Output(
            actions,
            output_name="corporate_actions",
            metadata={
                "dividends": int((actions["action"] == "dividend").sum()),
                "splits": int((actions["action"] == "split").sum()),
                "kept_previous_rows_for": names(_symbol(t) for t in history.failed),
                "history_rows_written": written.get("corporate_actions", 0),
                **session_span(sessions),
                "preview": preview(actions),
            },
        )


@dataclass
class HistoryLoad:
    """Companies that join the universe in a run, and where their history is fetched from."""

    start: dt.date
    joiners: list[Joiner]

    @property
    def history_from(self) -> dict[str, dt.date]:
        # One start for all (the earliest any of them needs): scope-limited writes below delete
        # only what the fetch brings back, and one start keeps that true per table.
        return {yahoo_ticker(joiner.symbol): self.start for joiner in self.joiners}

    def lines(self, prices: pd.DataFrame) -> list[str]:
        """One line per joiner: what it is, why it joined, how many bars it got."""
        counts = prices["symbol"].value_counts().to_dict() if not prices.empty else {}
        return [
            f"{j.symbol} joins on {j.session}: {j.reason}; {counts.get(j.symbol, 0)} bars "
            f"from {self.start}"
            for j in self.joiners
        ]


def plan_history(
    market_data: MarketDataResource,
    warehouse: WarehouseBackend,
    asx_symbols: pd.DataFrame,
    sessions: list[dt.date],
) -> HistoryLoad | None:
    """The symbols of the window that need their history (see MarketDataResource.history_from);
    None when there are none.

    On the window's first session: every symbol with no stored bar on the session before, so a
    company that joins today, and one whose history load failed yesterday, both get it, while a
    symbol whose bars are stored never reloads. Later in the window: every symbol that was not
    in the universe on the session before. Before the first partition nobody joins: there is no
    history to load.
    """
    previous = session_before(sessions[0])
    start = dt.date.fromisoformat(market_data.start_date) if market_data.start_date else None
    if previous is None or (start is not None and previous < start):
        # The window opens on the first partition: its universe joins nothing.
        first = asx_symbols.loc[asx_symbols["as_of_date"] == sessions[0], "symbol"]
        before, before_snapshot, directories = set(first), None, {}
        with_bars = before
    else:
        before, before_snapshot, directories = _universe_before(market_data, warehouse, previous)
        stored = warehouse.read_window(DAILY_PRICES, Window.single(previous), ["symbol"])
        with_bars = set(stored["symbol"])
    used = sorted(set(asx_symbols["snapshot_captured_on"].dropna()) - set(directories))
    directories = {**directories, **read_snapshots(warehouse, used)}
    found = joiners(asx_symbols, before & with_bars, before_snapshot, directories)
    found = [
        Joiner(j.symbol, j.session, f"no bar stored for {previous}: history loaded again")
        if j.symbol in before and j.session == sessions[0]
        else j
        for j in found
    ]
    starts = {j.symbol: market_data.history_from(j.session) for j in found}
    loading = [j for j in found if starts[j.symbol] is not None]
    if not loading:
        return None
    return HistoryLoad(min(starts[j.symbol] for j in loading), loading)


def _universe_before(
    market_data: MarketDataResource, warehouse: WarehouseBackend, previous: dt.date
) -> tuple[set[str], dt.date | None, dict[dt.date, pd.DataFrame]]:
    """The universe of the session before the window, by the point-in-time rule; empty when it
    has none (no snapshot stored yet, or none of ASX_UNIVERSE's codes listed then)."""
    try:
        earlier = universe_on(warehouse, market_data.universe, [previous])
    except Failure:
        return set(), None, {}
    return earlier.on(previous), earlier.snapshot_of(previous), earlier.directories


def write_history(
    warehouse: WarehouseBackend,
    load: HistoryLoad,
    window: Window,
    selected: set[str],
    prices: pd.DataFrame,
    actions: pd.DataFrame,
) -> dict[str, int]:
    """Write the joiners' rows from before the window; table -> rows written.

    Only those symbols' rows are touched: daily_prices replaces by (trade_date, symbol), so every
    other stored row of those sessions stays. corporate_actions replaces by symbol, which would
    drop a stored action that this answer lacks (Yahoo's older history is not always complete),
    so the stored actions of those symbols are written back under the new ones: a history load
    adds and refreshes actions and never removes one.
    """
    if load.start >= window.start:
        return {}
    earlier = Window(load.start, window.start)
    written = {}
    if "daily_prices" in selected and not prices.empty:
        conformed = conform_frame(DAILY_PRICES, earlier, prices)
        written["daily_prices"] = warehouse.replace_window(DAILY_PRICES, earlier, conformed)
    if "corporate_actions" in selected and not actions.empty:
        stored = warehouse.read_window(CORPORATE_ACTIONS, earlier)
        stored = stored[stored["symbol"].isin(set(actions["symbol"]))]
        merged = pd.concat([stored, actions], ignore_index=True).drop_duplicates(
            list(CORPORATE_ACTIONS.key), keep="last"
        )
        conformed = conform_frame(CORPORATE_ACTIONS, earlier, merged)
        written["corporate_actions"] = warehouse.replace_window(
            CORPORATE_ACTIONS, earlier, conformed
        )
    return written


def _split_at(
    frame: pd.DataFrame, column: str, start: dt.date
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(rows on or after `start`, rows before it)."""
    early = frame[column] < start
    return frame[~early].reset_index(drop=True), frame[early].reset_index(drop=True)


def _history_metadata(
    load: HistoryLoad | None, prices: pd.DataFrame, written: int
) -> dict[str, object]:
    if load is None:
        return {"history_loaded_for": "none", "history_rows_written": 0}
    return {
        "history_loaded_for": MetadataValue.md(_bullets(load.lines(prices))),
        "history_symbols": len(load.joiners),
        "history_from": load.start.isoformat(),
        "history_rows_written": written,
    }


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
