"""The one module that imports Dagster's private API (`dagster._…`).

Everything else imports from `dagster` (or `dagster_shared`). What is here has no public
equivalent in the Dagster release pinned in pyproject.toml; each name says what it is for, so a
minor upgrade that moves one breaks this file alone, and the test suite says which.
"""

from dagster._core.definitions.dependency import NodeHandle
from dagster._core.definitions.reconstruct import ReconstructableRepository
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus
from dagster._core.storage.dagster_run import IN_PROGRESS_RUN_STATUSES
from dagster._core.storage.event_log.sql_event_log import SqlEventLogStorage
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
    MAX_RETRIES_TAG,
    PARTITION_NAME_TAG,
)
from dagster._core.utils import make_new_run_id

__all__ = [
    # The tags a partitioned run carries: one partition, or a single-run range of them.
    "ASSET_PARTITION_RANGE_END_TAG",
    "ASSET_PARTITION_RANGE_START_TAG",
    "IN_PROGRESS_RUN_STATUSES",
    "MAX_RETRIES_TAG",
    "PARTITION_NAME_TAG",
    # Whether an asset check's latest execution failed (`asx-pipeline status`).
    "AssetCheckExecutionRecordStatus",
    # Which asset a step materialises, for the JSON log lines.
    "NodeHandle",
    # A job of the definitions by module and name, for execute_job (an executor other than
    # in-process needs a job that its step processes and workers can load again).
    "ReconstructableRepository",
    # The SQL event log (SQLite, Postgres), whose queue of steps waiting for a pool slot
    # pools.py repairs (`assign_pending_steps` is not on the public EventLogStorage).
    "SqlEventLogStorage",
    # The id of a run submitted with `dagster job launch`, known before it is queued.
    "make_new_run_id",
]
