"""Importing an archive of dated ASX directory files into `asx_directory_snapshots`.

The ASX publishes only today's directory, but copies of older ones exist (a scraper's history, a
folder of downloads). Each file becomes one snapshot, captured on the `YYYY-MM-DD` in its name
(or on `--as-of` for a single file). Importing is idempotent: a capture date already stored is
skipped whole, so importing the same folder twice adds nothing the second time.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from asx_pipeline.analytics.point_in_time import CodeChange, capture_date_in_name, code_changes
from asx_pipeline.sources.asx_directory import load_directory
from asx_pipeline.warehouse.backend import WarehouseBackend
from asx_pipeline.warehouse.frames import Window, conform_frame
from asx_pipeline.warehouse.tables import ASX_DIRECTORY_SNAPSHOTS


class ArchiveError(ValueError):
    """The files cannot be imported as they are; the message says which and what is expected."""


@dataclass
class ImportResult:
    added: dict[dt.date, int] = field(default_factory=dict)  # capture date -> companies
    already_stored: list[dt.date] = field(default_factory=list)
    companies: int = 0  # distinct ASX codes across the snapshots added
    code_changes: list[tuple[dt.date, CodeChange]] = field(default_factory=list)


def capture_dates(paths: Sequence[Path], as_of: dt.date | None) -> dict[Path, dt.date]:
    """Each file's capture date, or an ArchiveError naming the files that have none."""
    if as_of is not None:
        if len(paths) != 1:
            raise ArchiveError(
                f"--as-of gives one capture date, but {len(paths)} files were given; import "
                "files with a YYYY-MM-DD in their names, or one file at a time with --as-of"
            )
        return {paths[0]: as_of}
    dates = {path: capture_date_in_name(path) for path in paths}
    undated = [str(path) for path, day in dates.items() if day is None]
    if undated:
        raise ArchiveError(
            f"no capture date in the name of {', '.join(undated)}: expected exactly one "
            "YYYY-MM-DD in each file name (e.g. ASX_Listed_Companies_2024-05-31.csv), or "
            "--as-of YYYY-MM-DD for a single file"
        )
    by_date: dict[dt.date, list[str]] = {}
    for path, day in dates.items():
        by_date.setdefault(day, []).append(path.name)  # type: ignore[arg-type]
    twice = {day: files for day, files in by_date.items() if len(files) > 1}
    if twice:
        shown = "; ".join(f"{day}: {', '.join(files)}" for day, files in sorted(twice.items()))
        raise ArchiveError(f"more than one file for the same capture date ({shown}); keep one")
    return dates  # type: ignore[return-value]


def import_archive(
    warehouse: WarehouseBackend, paths: Sequence[Path], as_of: dt.date | None = None
) -> ImportResult:
    """Parse every file first (any bad file stops the import before anything is written), then
    append the snapshots whose capture dates are not stored yet, in one write."""
    dates = capture_dates(paths, as_of)
    directories = {
        day: load_directory(str(path)) for path, day in sorted(dates.items(), key=lambda i: i[1])
    }
    stored = set(warehouse.partition_values(ASX_DIRECTORY_SNAPSHOTS))
    result = ImportResult(already_stored=sorted(set(directories) & stored))
    new = {day: frame for day, frame in directories.items() if day not in stored}
    if new:
        names = {day: path.name for path, day in dates.items()}
        frame = pd.concat(
            [
                directory.assign(captured_on=day, origin=f"imported from {names[day]}")
                for day, directory in new.items()
            ],
            ignore_index=True,
        )[ASX_DIRECTORY_SNAPSHOTS.column_names]
        days = sorted(new)
        window = Window(days[0], days[-1] + dt.timedelta(days=1))
        warehouse.append_partitions(
            ASX_DIRECTORY_SNAPSHOTS, conform_frame(ASX_DIRECTORY_SNAPSHOTS, window, frame)
        )
        result.added = {day: len(new[day]) for day in days}
        result.companies = int(frame["symbol"].nunique())
    ordered = sorted(directories.items())
    for (_, before), (day, after) in itertools.pairwise(ordered):
        result.code_changes.extend((day, change) for change in code_changes(before, after))
    return result
