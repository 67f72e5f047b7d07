"""A run of the Yahoo-calling assets on the instance of DAGSTER_HOME, for the pool test.

`python -m asx_pipeline_tests.pool_runs MODE PARTITION`, with ASX_POOL_PORT (the fake Yahoo),
ASX_POOL_DIR (directory.csv, the DuckDB file, caches) and ASX_POOL_UNIVERSE in the environment.
MODE `inprocess` runs as `asx-pipeline daily` does (`materialize` in this process); `multiprocess`
runs as a run worker launched by the daemon does (`execute_job` with the multiprocess executor,
each step in a child process). Prints the run id and exits 0 when the run succeeded.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from dagster import (
    DagsterInstance,
    Definitions,
    define_asset_job,
    execute_job,
    materialize,
    multiprocess_executor,
    reconstructable,
)

from asx_pipeline.assets.prices import market_bars
from asx_pipeline.assets.symbols import asx_symbols
from asx_pipeline.warehouse.io_manager import warehouse_resources
from asx_pipeline.warehouse.resources import DuckDBWarehouseResource
from asx_pipeline_tests.loopback_yahoo import LoopbackYahooResource

PARTITION_TAG = "dagster/partition"


def _resources() -> dict[str, Any]:
    folder = Path(os.environ["ASX_POOL_DIR"])
    return {
        "market_data": LoopbackYahooResource(
            source="yahoo",
            universe=os.environ["ASX_POOL_UNIVERSE"],
            data_dir=str(folder / "data"),
            directory_source=str(folder / "directory.csv"),
            port=int(os.environ["ASX_POOL_PORT"]),
            timeout_seconds=30.0,
        ),
        **warehouse_resources(DuckDBWarehouseResource(path=str(folder / "warehouse.duckdb"))),
    }


defs = Definitions(
    assets=[asx_symbols, market_bars],
    resources=_resources() if "ASX_POOL_DIR" in os.environ else {},
    jobs=[define_asset_job("pool_probe", executor_def=multiprocess_executor)],
)


def pool_probe_job():
    return defs.resolve_job_def("pool_probe")


def main(mode: str, partition: str) -> int:
    instance = DagsterInstance.get()
    if mode == "multiprocess":
        with execute_job(
            reconstructable(pool_probe_job), instance=instance, tags={PARTITION_TAG: partition}
        ) as result:
            print(result.run_id)
            return 0 if result.success else 1
    result = materialize(
        [asx_symbols, market_bars],
        resources=_resources(),
        partition_key=partition,
        instance=instance,
        raise_on_error=False,
    )
    print(result.run_id)
    return 0 if result.success else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1], sys.argv[2]))
