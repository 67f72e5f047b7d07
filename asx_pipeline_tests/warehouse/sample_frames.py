"""Synthetic frames for any TableSpec, so the warehouse tests cover every table of tables.py."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from asx_pipeline.warehouse.frames import Window, coerce_types
from asx_pipeline.warehouse.tables import TableSpec

BASE_DAY = dt.date(2025, 11, 3)
BASE_TIME = pd.Timestamp("2025-11-03T06:30:00.123456Z")


def window_of(first_day_offset: int, days: int) -> Window:
    start = BASE_DAY + dt.timedelta(days=first_day_offset)
    return Window(start, start + dt.timedelta(days=days))


def make_frame(
    table: TableSpec, window: Window, rows_per_day: int, version: int = 0
) -> pd.DataFrame:
    """`rows_per_day` rows on each day of `window`; `version` changes every non-key value.

    Nullable columns get a missing value every 7th row; key columns are unique per day. Tables
    keyed by the partition column alone get one row per day.
    """
    if table.key == (table.partition_column,):
        rows_per_day = 1  # one row per session, e.g. market_breadth
    days = pd.date_range(window.start, window.end - dt.timedelta(days=1), freq="D").date
    count = len(days) * rows_per_day
    index = np.tile(np.arange(rows_per_day), len(days))
    data: dict[str, object] = {table.partition_column: np.repeat(days, rows_per_day)}
    for position, column in enumerate(table.columns[1:], start=1):
        if column.name in table.key:
            data[column.name] = _key_values(column.name, column.type, index)
            continue
        values = _values(column.type, count, seed=position * 101 + version)
        if column.nullable:
            values = pd.Series(values).astype(object)
            values[np.arange(count) % 7 == position % 7] = None
        data[column.name] = values
    return coerce_types(table, pd.DataFrame(data))


def _key_values(name: str, column_type: str, index: np.ndarray) -> object:
    """Distinct per row of a day, whatever the key column's type."""
    if column_type == "text":
        return [f"{name[:3].upper()}{i:05d}" for i in index]
    if column_type == "timestamp":
        return BASE_TIME + pd.to_timedelta(index * 900, unit="s")
    if column_type == "date":
        return [BASE_DAY - dt.timedelta(days=int(i)) for i in index]
    if column_type in ("bigint", "integer"):
        return index
    raise AssertionError(f"no sample key values for column type {column_type}")


def _values(column_type: str, count: int, seed: int) -> object:
    rng = np.random.default_rng(seed)
    steps = np.arange(count)
    if column_type == "double":
        return np.round(rng.uniform(0.01, 500.0, count), 6)
    if column_type in ("bigint", "integer"):
        return rng.integers(0, 2**31 - 1 if column_type == "integer" else 2**40, count)
    if column_type == "text":
        return [f"v{seed}-{i}" for i in steps]
    if column_type == "date":
        return [BASE_DAY - dt.timedelta(days=int(d)) for d in rng.integers(0, 9000, count)]
    if column_type == "timestamp":
        # Microseconds: the precision every backend stores.
        return BASE_TIME + pd.to_timedelta(rng.integers(0, 10**12, count), unit="us")
    if column_type == "boolean":
        return rng.integers(0, 2, count).astype(bool)
    raise AssertionError(f"no sample values for column type {column_type}")
