"""The instance's concurrency pools: the "yahoo" pool's limit, and steps Dagster leaves waiting.

- **A limit, set explicitly** (`ensure_yahoo_pool`): dagster.yaml's `pools.default_limit` is
  created lazily by the first run that meets the pool, and two runs meeting it at the same moment
  can both get in (or crash on Postgres, dagster issue 33552).
- **A lost wake-up, repaired** (`wake_stranded_claims`, `waking_stranded_claims`). A step that
  asks for a slot first looks whether one is free, then queues itself; a step that gives its slot
  back hands it to the first queued step. Neither happens under a lock (Dagster 1.13, SQLite and
  Postgres alike), so when the holder gives its slot back between the newcomer's look and its
  queueing, the slot goes to nobody and the newcomer waits for ever: nothing hands out a free
  slot except another give-back. Measured in `test_shell_safety.py` (four commands started
  together): one `asx-pipeline daily` waited with the pool's one slot free, spinning a core
  (Dagster re-checks its pending claims without sleeping, dagster PR 20367). So a free slot with
  steps queued for it is handed to the first of them: every 2 s by a thread of each run this
  package executes itself (`runs.run_job_range`), and every minute by the daemon's
  `asx_dead_runs` sensor for the runs of the daemon's run launcher.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from dagster import DagsterInstance

from asx_pipeline.dagster_compat import SqlEventLogStorage
from asx_pipeline.sources.resource import YAHOO_POOL

WAKE_INTERVAL_SECONDS = 2.0
logger = logging.getLogger(__name__)


def ensure_yahoo_pool(instance: DagsterInstance, limit: int = 1) -> None:
    """Give the instance an explicit limit for the "yahoo" pool unless one is set already.

    A limit someone set in the UI or with `dagster instance concurrency set` is left alone.
    """
    storage = instance.event_log_storage
    if not storage.supports_global_concurrency_limits:
        return  # an ephemeral instance: nothing to share with anyway
    current = {pool.name: pool for pool in storage.get_pool_limits()}.get(YAHOO_POOL)
    if current is None or current.from_default:
        storage.set_concurrency_slots(YAHOO_POOL, limit)


def wake_stranded_claims(instance: DagsterInstance) -> list[str]:
    """Hand each pool's free slots to the steps queued for them; "pool: run/step" of each step
    that was waiting on a free slot (usually none)."""
    storage = instance.event_log_storage
    # `assign_pending_steps` is SqlEventLogStorage's (SQLite, Postgres, in-memory), not on the
    # public EventLogStorage; another storage class is left to itself.
    if not isinstance(storage, SqlEventLogStorage):
        return []
    if not storage.supports_global_concurrency_limits:
        return []
    woken: list[str] = []
    for pool in sorted(storage.get_concurrency_keys()):
        info = storage.get_concurrency_info(pool)
        # A step keeps its assignment while it holds the slot, so assigned steps are the slots'
        # holders plus those about to claim one.
        free = info.slot_count - info.assigned_step_count
        waiting = sorted(
            (step for step in info.pending_steps if step.assigned_timestamp is None),
            key=lambda step: (-(step.priority or 0), step.enqueued_timestamp),
        )
        if free <= 0 or not waiting:
            continue
        stranded = waiting[:free]
        # Assigns one queued step per entry, in the order Dagster's own hand-over uses.
        storage.assign_pending_steps([pool] * len(stranded))
        woken += [f"{pool}: {step.run_id}/{step.step_key}" for step in stranded]
    return woken


@contextmanager
def waking_stranded_claims(
    instance: DagsterInstance, interval_seconds: float = WAKE_INTERVAL_SECONDS
) -> Iterator[None]:
    """While the block runs, `wake_stranded_claims` every `interval_seconds` in a thread."""
    stop = threading.Event()

    def watch() -> None:
        while not stop.wait(interval_seconds):
            try:
                for claim in wake_stranded_claims(instance):
                    logger.warning("A free pool slot given to a step left waiting: %s", claim)
            except Exception:  # a storage hiccup must never fail the run it watches
                logger.debug("Could not look at the pools' queues", exc_info=True)

    watcher = threading.Thread(target=watch, name="asx-pool-wake", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        stop.set()
        watcher.join()
