"""What every warehouse backend does; the IO manager only ever talks to this."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Protocol

import pandas as pd

from asx_pipeline.warehouse.frames import Window
from asx_pipeline.warehouse.tables import TableSpec


class WarehouseBackend(Protocol):
    """Stores table windows. Every implementation gives the same rows for the same calls."""

    name: str

    def replace_window(self, table: TableSpec, window: Window, frame: pd.DataFrame) -> int:
        """Atomically replace every row of `table` in `window` with `frame`; return rows written.

        `frame` has already been conformed (see `frames.conform_frame`). After a crash at any
        point the window holds the old rows or the new ones, never a mixture.
        """
        ...

    def read_window(
        self, table: TableSpec, window: Window, columns: Sequence[str] | None = None
    ) -> pd.DataFrame:
        """Exactly the rows of `table` in `window`, ordered by the table's key."""
        ...

    def append_partitions(self, table: TableSpec, frame: pd.DataFrame) -> int:
        """Add the partitions of `frame` that `table` does not hold yet; return rows added.

        For append-only tables (`TableSpec.append_only`). A partition (one value of the partition
        column) already stored is skipped whole, never merged into or replaced, so appending the
        same frame twice adds nothing the second time. Atomic like `replace_window`.
        """
        ...

    def partition_values(self, table: TableSpec) -> list[dt.date]:
        """The distinct values of `table`'s partition column that are stored, ascending."""
        ...

    def describe(self) -> str:
        """Where the data lives, for people (never a password or key)."""
        ...
