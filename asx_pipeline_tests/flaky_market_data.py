"""A market-data source that fails like Yahoo under load, for the retry test.

Run as `python -m asx_pipeline_tests.flaky_market_data DIR`: materialises the core assets for
2025-12-24 into DIR/warehouse.duckdb, in the instance of DAGSTER_HOME, with price requests failing
twice (HTTP 429) before they succeed. It runs in its own process because the step RetryPolicy is
built from settings when the assets are imported (ASX_STEP_RETRY_DELAY_SECONDS, made short here).
"""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Sequence
from pathlib import Path

from dagster import DagsterInstance, materialize

from asx_pipeline.sources.market_data import MarketDataError, MarketDataSource, PriceHistory
from asx_pipeline.sources.resource import MarketDataResource
from asx_pipeline.sources.sample import SampleMarketData

FAILURES = 2


class FlakyMarketData:
    """The sample source, except that the first FAILURES price requests are throttled."""

    name = "sample"
    point_in_time_directory = True
    directory_origin = "sample"

    def __init__(self, attempts_file: Path) -> None:
        self._inner = SampleMarketData()
        self._attempts_file = attempts_file

    def directory(self, as_of: dt.date):
        return self._inner.directory(as_of)

    def price_history(
        self, tickers: Sequence[str], first: dt.date, last: dt.date, history_from=None
    ) -> PriceHistory:
        # Counted in a file: Dagster may build a fresh resource for each attempt of the step.
        attempts = int(self._attempts_file.read_text() or 0) if self._attempts_file.exists() else 0
        self._attempts_file.write_text(str(attempts + 1))
        if attempts < FAILURES:
            raise MarketDataError(f"HTTP 429 Too Many Requests (attempt {attempts + 1})")
        return self._inner.price_history(tickers, first, last, history_from)


class FlakyMarketDataResource(MarketDataResource):
    attempts_file: str = ""

    def _build_client(self) -> MarketDataSource:
        return FlakyMarketData(Path(self.attempts_file))


def main(folder: Path) -> int:
    from asx_pipeline.assets.prices import market_bars
    from asx_pipeline.assets.symbols import asx_symbols
    from asx_pipeline.warehouse.io_manager import warehouse_resources
    from asx_pipeline.warehouse.resources import DuckDBWarehouseResource

    result = materialize(
        [asx_symbols, market_bars],
        partition_key="2025-12-24",
        resources={
            "market_data": FlakyMarketDataResource(
                source="sample", universe="top:5", attempts_file=str(folder / "attempts")
            ),
            **warehouse_resources(DuckDBWarehouseResource(path=str(folder / "warehouse.duckdb"))),
        },
        instance=DagsterInstance.get(),
        raise_on_error=False,
    )
    print(result.run_id)
    return 0 if result.success else 1


if __name__ == "__main__":
    raise SystemExit(main(Path(sys.argv[1])))
