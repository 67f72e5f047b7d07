"""The production definitions on Dagster's default executor (a spawned Python per step).

Only for bench/refresh.py, which times it beside the executors ASX_EXECUTOR selects: the same
assets, checks, jobs and resources, with `multiprocess_executor` as Dagster ships it.
"""

from dagster import Definitions, multiprocess_executor

import asx_pipeline.definitions as production

# Reached through its module: a second Definitions object at this module's scope would make
# Dagster refuse to pick one.
defs = Definitions(
    assets=production.defs.assets,
    asset_checks=production.defs.asset_checks,
    jobs=production.defs.jobs,
    loggers=production.defs.loggers,
    resources=production.defs.resources,
    executor=multiprocess_executor,
)
