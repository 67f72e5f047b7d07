"""The warehouse schema: a contract, because a web app reads these tables.

Every table's first column is its partition column and every table has a primary key, so that a
rerun can replace a window but never duplicate a row. Column types are logical; each backend maps
them to its own SQL types.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

ColumnType = Literal["date", "text", "double", "bigint", "integer", "timestamp", "boolean"]


@dataclass(frozen=True)
class Column:
    name: str
    type: ColumnType
    nullable: bool = True


@dataclass(frozen=True)
class TableSpec:
    """One warehouse table: its columns (partition column first) and primary key."""

    name: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]
    description: str = ""

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


ASX_SYMBOLS = TableSpec(
    name="asx_symbols",
    columns=(
        Column("as_of_date", "date", nullable=False),
        *_key("symbol", "yahoo_ticker"),
        Column("company_name", "text"),
        Column("gics_industry_group", "text"),
        Column("listing_date", "date"),
        Column("market_cap", "double"),
        Column("status", "text", nullable=False),
    ),
    key=("as_of_date", "symbol"),
    description="The tracked universe of ASX companies as known on each session.",
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
)

TABLES: dict[str, TableSpec] = {
    spec.name: spec for spec in (ASX_SYMBOLS, DAILY_PRICES, CORPORATE_ACTIONS)
}


def table_for(name: str) -> TableSpec:
    try:
        return TABLES[name]
    except KeyError:
        known = ", ".join(sorted(TABLES))
        raise KeyError(f"No warehouse table named {name!r}; known tables: {known}") from None
