"""The warehouse schema: a contract, because a web app reads these tables.

Every table's first column is its partition column and every table has a primary key, so that a
rerun can replace a window but never duplicate a row. Column types are logical; `sql_type` names
each one's SQL type in the two SQL dialects the backends write (Postgres and DuckDB).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

ColumnType = Literal["date", "text", "double", "bigint", "integer", "timestamp", "boolean"]
SqlDialect = Literal["postgres", "duckdb"]

# The same SQL types in both dialects, spelled as each backend's DDL has always written them. The
# Postgres spellings are those of the migration files (test_migrations.py compares the DDL it
# renders with them); the DuckDB ones are DuckDB's own names, which DESCRIBE shows (it would take
# the Postgres spellings too, and store text as VARCHAR, double precision as DOUBLE either way).
_SQL_TYPES: dict[ColumnType, dict[SqlDialect, str]] = {
    "date": {"postgres": "date", "duckdb": "DATE"},
    "text": {"postgres": "text", "duckdb": "VARCHAR"},
    "double": {"postgres": "double precision", "duckdb": "DOUBLE"},
    "bigint": {"postgres": "bigint", "duckdb": "BIGINT"},
    "integer": {"postgres": "integer", "duckdb": "INTEGER"},
    "timestamp": {"postgres": "timestamp with time zone", "duckdb": "TIMESTAMPTZ"},
    "boolean": {"postgres": "boolean", "duckdb": "BOOLEAN"},
}


def sql_type(column_type: ColumnType, dialect: SqlDialect) -> str:
    """The SQL type a column of `column_type` has in `dialect`'s DDL."""
    return _SQL_TYPES[column_type][dialect]


@dataclass(frozen=True)
class Column:
    name: str
    type: ColumnType
    nullable: bool = True


@dataclass(frozen=True)
class TableSpec:
    """One warehouse table: its columns (partition column first) and primary key.

    `replace_scope` says which stored rows of a window a write replaces. Empty: every row of the
    window, so the frame *is* the window (tables derived whole from their inputs, such as
    market_breadth). Otherwise only the stored rows whose values in those columns occur in the
    incoming frame are deleted; the rest of the window stays. The per-symbol tables use it so that
    nothing stored is lost to a partial failure: a ticker Yahoo could not serve this time, a bar
    refused as junk or a session missing from the answer is simply absent from the frame, and an
    absent row must mean "no news", not "delete". Intraday snapshots use ("snapshot_at",), so a
    snapshot never deletes the day's earlier ones.
    """

    name: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]
    description: str = ""
    # Every backend narrows its DELETE to the distinct scope tuples of the incoming rows (DuckDB
    # and Postgres directly, the REST backend through the SQL functions that migrations.py
    # renders); changing a scope therefore needs a migration (test_migrations.py checks it).
    replace_scope: tuple[str, ...] = ()
    # An append-only table is never replaced: a write adds the partitions (values of the
    # partition column) not stored yet, whole, and skips the ones already stored. Such a table has
    # no window functions; the REST backend appends through `append_<table>` instead.
    append_only: bool = False
    # Stored on Postgres as one range partition per calendar month of the partition column
    # (asx_private.<table>_pYYYYMM), so that a write which covers a month's stored rows can build
    # that month afresh and swap it in, at the cost of COPY into an empty table, instead of
    # rewriting each row in place (postgres_backend.py). Only for a table whose replace_scope
    # covers its key: a rebuilt month keeps every stored row the frame does not bring, the rule
    # the row-by-row path follows too. DuckDB ignores it.
    monthly_partitions: bool = False

    def __post_init__(self) -> None:
        if self.monthly_partitions and not set(self.key) <= set(self.replace_scope):
            raise ValueError(
                f"{self.name}: monthly_partitions needs a replace_scope that covers the key "
                f"{self.key}, got {self.replace_scope}"
            )

    @property
    def partition_column(self) -> str:
        return self.columns[0].name

    @property
    def column_names(self) -> list[str]:
        return [column.name for column in self.columns]

    def column(self, name: str) -> Column:
        return next(column for column in self.columns if column.name == name)


def _key(*names: str) -> tuple[Column, ...]:
    return tuple(Column(name, "text", nullable=False) for name in names)


# A company as the ASX directory describes it (sources/market_data.py DIRECTORY_COLUMNS).
_COMPANY = (
    Column("company_name", "text"),
    Column("gics_industry_group", "text"),
    Column("listing_date", "date"),
    Column("market_cap", "double"),
    Column("status", "text", nullable=False),
)

ASX_DIRECTORY_SNAPSHOTS = TableSpec(
    name="asx_directory_snapshots",
    columns=(
        Column("captured_on", "date", nullable=False),
        *_key("symbol"),
        *_COMPANY,
        Column("origin", "text", nullable=False),
    ),
    key=("captured_on", "symbol"),
    description="Every ASX company directory fetched or imported, once each, as published on "
    "its capture date; origin says where it came from. Append-only.",
    # The ASX publishes only today's list: a stored snapshot is the only record of an old one,
    # so nothing ever replaces or deletes it.
    append_only=True,
)

ASX_SYMBOLS = TableSpec(
    name="asx_symbols",
    columns=(
        Column("as_of_date", "date", nullable=False),
        *_key("symbol", "yahoo_ticker"),
        *_COMPANY,
        # The directory snapshot the row was chosen from, and whether that snapshot was captured
        # after the session (no earlier one exists: such a session has today's survivors). Null
        # only on rows written before snapshots were kept.
        Column("snapshot_captured_on", "date"),
        Column("snapshot_after_session", "boolean"),
    ),
    key=("as_of_date", "symbol"),
    description="The tracked universe of ASX companies on each session, from the latest "
    "directory snapshot captured on or before it.",
)

DAILY_PRICES = TableSpec(
    name="daily_prices",
    columns=(
        Column("trade_date", "date", nullable=False),
        *_key("symbol"),
        Column("open", "double"),
        Column("high", "double"),
        Column("low", "double"),
        Column("close", "double", nullable=False),
        Column("adj_close", "double"),
        Column("volume", "bigint"),
        Column("source", "text", nullable=False),
        Column("ingested_at", "timestamp", nullable=False),
    ),
    key=("trade_date", "symbol"),
    description="End-of-day bars, raw (as traded) plus adj_close.",
    # A bar is replaced only by a bar of the same session and symbol: a failed ticker, a junk bar
    # that was refused, or a session Yahoo left out this time keeps the row stored before.
    replace_scope=("trade_date", "symbol"),
    # The largest table by far, and the one a refetch rewrites whole (a new ingested_at on
    # every bar): see postgres_backend.py's month rebuild.
    monthly_partitions=True,
)

CORPORATE_ACTIONS = TableSpec(
    name="corporate_actions",
    columns=(
        Column("ex_date", "date", nullable=False),
        *_key("symbol", "action"),
        Column("value", "double", nullable=False),
        Column("source", "text", nullable=False),
    ),
    key=("ex_date", "symbol", "action"),
    description="Dividends (cash per share) and splits (ratio new/old) by ex-date.",
    # Per symbol, not per ex-date: Yahoo answers with a symbol's every action in the range, so a
    # symbol in the frame has its window's actions replaced (a withdrawn dividend disappears).
    # A symbol not in the frame keeps its actions; a received symbol with no action in the
    # window is not in the frame either, so its stored actions stay as well.
    replace_scope=("symbol",),
)

INTRADAY_QUOTES = TableSpec(
    name="intraday_quotes",
    columns=(
        Column("trade_date", "date", nullable=False),
        Column("snapshot_at", "timestamp", nullable=False),
        *_key("symbol"),
        Column("last", "double", nullable=False),
        Column("change_pct", "double"),
        Column("volume", "bigint"),
        Column("source", "text", nullable=False),
    ),
    key=("trade_date", "snapshot_at", "symbol"),
    description="15-minute snapshots in market hours: last price, % change on the previous "
    "close, and volume so far.",
    # A snapshot replaces only its own rows: the day's earlier snapshots stay.
    replace_scope=("snapshot_at",),
)

DAILY_INDICATORS = TableSpec(
    name="daily_indicators",
    columns=(
        Column("trade_date", "date", nullable=False),
        *_key("symbol"),
        *(
            Column(name, "double")
            for name in (
                "return_1d", "sma_20", "sma_50", "sma_200", "ema_12", "ema_26", "macd",
                "macd_signal", "rsi_14", "atr_14", "volatility_20d", "high_52w", "low_52w",
                "avg_volume_20d", "relative_volume",
            )
        ),
        Column("lookback_bars", "integer", nullable=False),
    ),
    key=("trade_date", "symbol"),
    description="Technical indicators (TA-Lib conventions) on split- and dividend-adjusted "
    "prices, in the units of the session's own raw prices; null where history is too short.",
    # As daily_prices: a (session, symbol) the frame does not bring keeps its stored row. The
    # asset computes a row for every stored bar, so a ticker whose fetch failed still has its
    # indicators recomputed, from the bars daily_prices kept.
    replace_scope=("trade_date", "symbol"),
)

MARKET_BREADTH = TableSpec(
    name="market_breadth",
    columns=(
        Column("trade_date", "date", nullable=False),
        Column("symbols", "integer", nullable=False),
        Column("advancers", "integer", nullable=False),
        Column("decliners", "integer", nullable=False),
        Column("unchanged", "integer", nullable=False),
        Column("new_highs_52w", "integer", nullable=False),
        Column("new_lows_52w", "integer", nullable=False),
        Column("pct_above_sma_200", "double"),
        Column("median_return", "double"),
    ),
    key=("trade_date",),
    description="Market breadth per session: advancers/decliners on adjusted returns, new "
    "52-week highs/lows, percent of symbols above their 200-day SMA, median return.",
)

SCREENER_RESULTS = TableSpec(
    name="screener_results",
    columns=(
        Column("trade_date", "date", nullable=False),
        *_key("screener", "symbol"),
        Column("rank", "integer", nullable=False),
        Column("score", "double"),
        Column("close", "double"),
        Column("matched_values", "text", nullable=False),
    ),
    key=("trade_date", "screener", "symbol"),
    description="Each screener's hits per session, ranked; matched_values is a JSON object of "
    "the columns its filters and ranking used.",
)

DAILY_REPORT = TableSpec(
    name="daily_report",
    columns=(
        Column("trade_date", "date", nullable=False),
        Column("title", "text", nullable=False),
        Column("markdown", "text", nullable=False),
        Column("html_path", "text", nullable=False),
    ),
    key=("trade_date",),
    description="The daily market report: Markdown text and the path of its HTML rendering.",
)

TABLES: dict[str, TableSpec] = {
    spec.name: spec
    for spec in (
        ASX_DIRECTORY_SNAPSHOTS,
        ASX_SYMBOLS,
        DAILY_PRICES,
        CORPORATE_ACTIONS,
        INTRADAY_QUOTES,
        DAILY_INDICATORS,
        MARKET_BREADTH,
        SCREENER_RESULTS,
        DAILY_REPORT,
    )
}


def table_for(name: str) -> TableSpec:
    try:
        return TABLES[name]
    except KeyError:
        known = ", ".join(sorted(TABLES))
        raise KeyError(f"No warehouse table named {name!r}; known tables: {known}") from None
