"""The one module that imports Dagster's private API (`dagster._…`).

Everything else imports from `dagster` (or `dagster_shared`). What is here has no public
equivalent in the Dagster release pinned in pyproject.toml; each name says what it is for, so a
minor upgrade that moves one breaks this file alone, and the test suite says which.
"""

from dagster._core.definitions.dependency import NodeHandle
from dagster._core.definitions.reconstruct import ReconstructableRepository
from dagster._core.instance.ref import InstanceRef
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus
from dagster._core.storage.dagster_run import IN_PROGRESS_RUN_STATUSES
from dagster._core.storage.event_log.sql_event_log import SqlEventLogStorage
from dagster._core.storage.event_log.sqlite.sqlite_event_log import (
    INDEX_SHARD_NAME,
    SQLITE_BUSY_TIMEOUT_SECONDS,
    SqliteEventLogStorage,
)
from dagster._core.storage.runs.sqlite.sqlite_run_storage import SqliteRunStorage
from dagster._core.storage.schedules.sqlite.sqlite_schedule_storage import SqliteScheduleStorage
from dagster._core.storage.sqlite_storage import (
    DagsterSqliteStorage,
    _event_logs_directory,
    _runs_directory,
    _schedule_directory,
)
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
    MAX_RETRIES_TAG,
    PARTITION_NAME_TAG,
)
from dagster._core.utils import make_new_run_id
from dagster._serdes import ConfigurableClassData

__all__ = [
    # The tags a partitioned run carries: one partition, or a single-run range of them.
    "ASSET_PARTITION_RANGE_END_TAG",
    "ASSET_PARTITION_RANGE_START_TAG",
    # Dagster's SQLite instance storage, which instance_storage.py subclasses to keep its
    # connections open: the name of the index database, and the busy timeout Dagster uses.
    "INDEX_SHARD_NAME",
    "IN_PROGRESS_RUN_STATUSES",
    "MAX_RETRIES_TAG",
    "PARTITION_NAME_TAG",
    "SQLITE_BUSY_TIMEOUT_SECONDS",
    # Whether an asset check's latest execution failed (`asx-pipeline status`).
    "AssetCheckExecutionRecordStatus",
    # A configurable class's dagster.yaml config, as Dagster hands it to a storage.
    "ConfigurableClassData",
    # The SQLite storage classes instance_storage.py subclasses (see INDEX_SHARD_NAME).
    "DagsterSqliteStorage",
    # What dagster.yaml makes of an instance folder: its defaults, which LocalInstance extends.
    "InstanceRef",
    # Which asset a step materialises, for the JSON log lines.
    "NodeHandle",
    # A job of the definitions by module and name, for execute_job (an executor other than
    # in-process needs a job that its step processes and workers can load again).
    "ReconstructableRepository",
    # The SQL event log (SQLite, Postgres), whose queue of steps waiting for a pool slot
    # pools.py repairs (`assign_pending_steps` is not on the public EventLogStorage).
    "SqlEventLogStorage",
    "SqliteEventLogStorage",
    "SqliteRunStorage",
    "SqliteScheduleStorage",
    # Where DagsterSqliteStorage keeps runs, event logs and schedules under its base_dir.
    "_event_logs_directory",
    "_runs_directory",
    "_schedule_directory",
    # The id of a run submitted with `dagster job launch`, known before it is queued.
    "make_new_run_id",
]
