"""The local Dagster instance's SQLite storage, with each process keeping its connections open.

Dagster's SQLite storages (runs, event logs, schedules) build a new SQLAlchemy engine for every
statement, open a connection, and close both after it (`NullPool`). Closing the last connection
to a WAL-mode database makes SQLite checkpoint the WAL into the database file, with its fsyncs:
storing one event costs ~7 ms that way against ~1.3 ms on a connection that stays open
(2026-12-08, this box). A run writes an event for every step start, input, output,
materialisation, check and log line: ~100 for the evening refresh, ~1,800 for `make demo`.

`LocalInstance` (dagster.yaml's `instance_class`) stores in `PooledSqliteStorage`: Dagster's
`DagsterSqliteStorage`, files and layout unchanged (an instance made by either opens with the
other), whose three storages keep one engine per database file and process, with a small
connection pool:

- Durability is the same: every write still commits in its own transaction, and in WAL mode
  SQLite syncs the WAL on commit; the WAL is still checkpointed when it reaches SQLite's
  automatic threshold, and when the process closes the storage.
- Other processes are not locked out: an idle connection holds no lock, in WAL mode readers and
  the writer do not block each other, and writers queue on SQLite's busy timeout as before.
- A forked child never uses its parent's connections (SQLite forbids carrying them across
  fork): the engines are per process id, and the parent's are left alone in the child.
- A long-lived process (daemon, webserver) keeps the engines of the few run databases it used
  last, not one per run it ever read.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from dagster import DagsterInstance
from sqlalchemy import create_engine
from sqlalchemy.engine import Connection, Engine

from asx_pipeline.dagster_compat import (
    INDEX_SHARD_NAME,
    SQLITE_BUSY_TIMEOUT_SECONDS,
    ConfigurableClassData,
    DagsterSqliteStorage,
    InstanceRef,
    SqliteEventLogStorage,
    SqliteRunStorage,
    SqliteScheduleStorage,
    _event_logs_directory,
    _runs_directory,
    _schedule_directory,
)

# Run databases whose engines a process keeps besides the index: a run writes to its own and
# the index; the webserver and daemon move from run to run.
KEPT_RUN_DATABASES = 8
# Besides the pooled connection, threads (the webserver's, a run's pool-watch thread) may open
# more at once; those are closed when returned, and never waited for.
_UNLIMITED_OVERFLOW = -1


class EnginesPerProcess:
    """One engine per connection string for the current process, the least recently used
    dropped (and disposed) beyond `keep`, and none inherited across fork."""

    def __init__(self, keep: int | None = None) -> None:
        self._keep = keep
        self._pid = os.getpid()
        self._engines: OrderedDict[str, Engine] = OrderedDict()
        # The parent's engines in a forked child: referenced, so that garbage collection never
        # closes the parent's SQLite connections from the child.
        self._inherited: list[Engine] = []
        self._lock = threading.Lock()

    def get(self, conn_string: str) -> Engine:
        with self._lock:
            if os.getpid() != self._pid:
                self._inherited.extend(self._engines.values())
                self._engines = OrderedDict()
                self._pid = os.getpid()
            engine = self._engines.get(conn_string)
            if engine is None:
                engine = create_engine(
                    conn_string,
                    pool_size=1,
                    max_overflow=_UNLIMITED_OVERFLOW,
                    connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS},
                )
                self._engines[conn_string] = engine
            self._engines.move_to_end(conn_string)
            while self._keep is not None and len(self._engines) > self._keep:
                _, oldest = self._engines.popitem(last=False)
                oldest.dispose()
            return engine

    def dispose(self) -> None:
        """Close this process's connections (the last close checkpoints each WAL)."""
        with self._lock:
            if os.getpid() == self._pid:
                for engine in self._engines.values():
                    engine.dispose()
            self._engines = OrderedDict()


@contextmanager
def _transaction(engine: Engine) -> Iterator[Connection]:
    with engine.connect() as conn, conn.begin():
        yield conn


class _KeptEngine:
    """Dagster's one-file SQLite storages (runs, schedules), connecting through a kept engine."""

    _conn_string: str

    def __init__(self, conn_string: str, inst_data: ConfigurableClassData | None = None):
        self._engines = EnginesPerProcess()
        super().__init__(conn_string, inst_data)

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        with _transaction(self._engines.get(self._conn_string)) as conn:
            yield conn

    def dispose(self) -> None:
        super().dispose()
        self._engines.dispose()


class PooledSqliteRunStorage(_KeptEngine, SqliteRunStorage):
    pass


class PooledSqliteScheduleStorage(_KeptEngine, SqliteScheduleStorage):
    pass


class PooledSqliteEventLogStorage(SqliteEventLogStorage):
    def __init__(self, base_dir: str, inst_data: ConfigurableClassData | None = None):
        # Before Dagster's __init__, which already connects (a fresh index is created there).
        self._index_engines = EnginesPerProcess()
        self._run_engines = EnginesPerProcess(keep=KEPT_RUN_DATABASES)
        super().__init__(base_dir, inst_data)

    @contextmanager
    def _connect(self, shard: str) -> Iterator[Connection]:
        # Dagster's own `_connect`, with a kept engine instead of a new one per statement.
        with self._db_lock:
            engines = self._index_engines if shard == INDEX_SHARD_NAME else self._run_engines
            engine = engines.get(self.conn_string_for_shard(shard))
            if shard not in self._initialized_dbs:
                self._initdb(engine)
                self._initialized_dbs.add(shard)
            with _transaction(engine) as conn:
                yield conn

    def wipe(self) -> None:
        # Dagster's wipe deletes the database files: close them first.
        self._dispose_engines()
        super().wipe()

    def dispose(self) -> None:
        super().dispose()
        self._dispose_engines()

    def _dispose_engines(self) -> None:
        with self._db_lock:
            self._run_engines.dispose()
            self._index_engines.dispose()


class PooledSqliteStorage(DagsterSqliteStorage):
    """Dagster's `DagsterSqliteStorage` in `base_dir`, with the pooled storages."""

    def __init__(self, base_dir: str, inst_data: ConfigurableClassData | None = None):
        # Dagster's __init__ with the pooled storages, in Dagster's folders.
        self.base_dir = base_dir
        self._run_storage = PooledSqliteRunStorage.from_local(_runs_directory(base_dir))
        self._event_log_storage = PooledSqliteEventLogStorage(_event_logs_directory(base_dir))
        self._schedule_storage = PooledSqliteScheduleStorage.from_local(
            _schedule_directory(base_dir)
        )
        self._inst_data = inst_data
        super(DagsterSqliteStorage, self).__init__()

    @classmethod
    def from_config_value(
        cls, inst_data: ConfigurableClassData | None, config_value: dict[str, Any]
    ) -> PooledSqliteStorage:
        # Dagster's names DagsterSqliteStorage itself rather than `cls`.
        return cls.from_local(inst_data=inst_data, **config_value)


class LocalInstance(DagsterInstance):
    """Dagster's instance whose storage, when dagster.yaml names none, is `PooledSqliteStorage`
    where Dagster's default SQLite storage keeps it (`history/` and `schedules/` in the instance
    folder).

    Chosen in dagster.yaml with `instance_class` rather than a `storage:` section, because the
    storage's folder is then the folder the instance is opened from (Dagster passes it to
    `config_defaults`); a `storage:` section could only name a fixed path, or DAGSTER_HOME.
    A `storage:` section (deploy/dagster.yaml's Postgres) still takes precedence.
    """

    @classmethod
    def config_schema(cls) -> dict[str, Any]:
        return {}

    def dispose(self) -> None:
        super().dispose()
        # Dagster's dispose leaves the schedule storage, whose connection is now kept.
        if self.schedule_storage is not None:
            self.schedule_storage.dispose()

    @staticmethod
    def config_defaults(base_dir: str) -> Mapping[str, ConfigurableClassData | None]:
        defaults = InstanceRef.config_defaults(base_dir)
        # Dagster's own default storage config (its folders), with the pooled class.
        config_yaml = defaults["storage"].config_yaml
        storage = ConfigurableClassData(__name__, "PooledSqliteStorage", config_yaml)
        return {**defaults, "storage": storage}
