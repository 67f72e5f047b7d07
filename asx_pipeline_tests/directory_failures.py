"""Runs `asx_symbols` through Dagster against bad ASX directory sources, for the failure tests.

Run as `python -m asx_pipeline_tests.directory_failures DIR CASES_JSON`, where CASES_JSON maps a
case name to `{"source": ASX_DIRECTORY_SOURCE}` (read through the real Yahoo source's directory
loader) or `{"now": ISO_TIME}` (the sample source, with the clock at that time, to see a session
that is not final). Each case is one run of the 2025-12-24 partition in the instance of
DAGSTER_HOME, into DIR/<case>.duckdb; the last stdout line is a JSON object of case -> run id.
It runs in its own process because the step RetryPolicy is built from settings when the assets
are imported (ASX_STEP_RETRY_DELAY_SECONDS is made short here, so a wrong retry costs little).
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path

from dagster import DagsterInstance, materialize

from asx_pipeline.sources.resource import MarketDataResource

PARTITION = "2025-12-24"


class FixedClockMarketDataResource(MarketDataResource):
    """The market-data resource with `ensure_final` judged at a fixed time instead of now."""

    now: str = ""

    def ensure_final(self, sessions: list[dt.date], now: dt.datetime | None = None) -> None:
        super().ensure_final(sessions, now or dt.datetime.fromisoformat(self.now))


def market_data_for(case: dict[str, str], folder: Path) -> MarketDataResource:
    if "now" in case:
        return FixedClockMarketDataResource(source="sample", universe="top:5", now=case["now"])
    return MarketDataResource(
        source="yahoo",
        universe="all",
        directory_source=case["source"],
        data_dir=str(folder / "data"),
    )


def main(folder: Path, cases: dict[str, dict[str, str]]) -> int:
    from asx_pipeline.assets.symbols import asx_symbols
    from asx_pipeline.warehouse.io_manager import warehouse_resources
    from asx_pipeline.warehouse.resources import DuckDBWarehouseResource

    run_ids = {}
    with DagsterInstance.get() as instance:
        for name, case in cases.items():
            result = materialize(
                [asx_symbols],
                partition_key=PARTITION,
                resources={
                    "market_data": market_data_for(case, folder),
                    **warehouse_resources(
                        DuckDBWarehouseResource(path=str(folder / f"{name}.duckdb"))
                    ),
                },
                instance=instance,
                raise_on_error=False,
            )
            run_ids[name] = result.run_id
    print(json.dumps(run_ids))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(Path(sys.argv[1]), json.loads(sys.argv[2])))
