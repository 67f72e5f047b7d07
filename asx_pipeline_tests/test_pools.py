"""A step Dagster leaves waiting with the pool's slot free gets it (pools.py).

The lost wake-up is set up with Dagster's own storage calls in the order two runs interleave
them: run B looks for a free slot while run A holds it, A gives it back (handing it to nobody,
since B is not queued yet), then B queues itself as "not assigned". Dagster alone then keeps B
waiting for ever; `wake_stranded_claims`, its thread in every run this package executes and the
daemon's `asx_dead_runs` sensor give B the slot. The same scenario on Postgres storage is in
warehouse/test_instance_storage.py.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from dagster import DagsterInstance, build_sensor_context

from asx_pipeline.cli import REPO_DAGSTER_YAML
from asx_pipeline.pools import ensure_yahoo_pool, wake_stranded_claims, waking_stranded_claims
from asx_pipeline.sensors import asx_dead_runs
from asx_pipeline.sources.resource import YAHOO_POOL

STEP = "market_bars"


@pytest.fixture
def instance(tmp_path: Path) -> Iterator[DagsterInstance]:
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copyfile(REPO_DAGSTER_YAML, home / "dagster.yaml")
    with DagsterInstance.from_config(str(home)) as instance:
        ensure_yahoo_pool(instance)
        yield instance


def strand_a_claim(instance: DagsterInstance, holder: str, waiter: str) -> None:
    """Leave `waiter` queued for the "yahoo" pool's one slot, unassigned, with the slot free."""
    storage = instance.event_log_storage
    assert storage.claim_concurrency_slot(YAHOO_POOL, holder, STEP).is_claimed
    # What claim_concurrency_slot looks at before queueing the waiter: the holder has the slot.
    assert not storage.has_unassigned_slots(YAHOO_POOL)
    storage.free_concurrency_slot_for_step(holder, STEP)
    # ...and the waiter queues itself as that stale look says: not assigned.
    storage.add_pending_step(YAHOO_POOL, waiter, STEP, should_assign=False)
    # Dagster alone never hands it the free slot, however often the waiter asks.
    for _ in range(3):
        assert not storage.claim_concurrency_slot(YAHOO_POOL, waiter, STEP).is_claimed
    info = storage.get_concurrency_info(YAHOO_POOL)
    assert (info.slot_count, info.active_slot_count, info.pending_step_count) == (1, 0, 1)


def assert_wakes_the_waiter_only(instance: DagsterInstance) -> None:
    storage = instance.event_log_storage
    strand_a_claim(instance, "run-a", "run-b")

    assert wake_stranded_claims(instance) == [f"{YAHOO_POOL}: run-b/{STEP}"]
    assert storage.claim_concurrency_slot(YAHOO_POOL, "run-b", STEP).is_claimed
    # Nothing more to do, and a step queued behind the new holder waits as it should.
    assert wake_stranded_claims(instance) == []
    assert not storage.claim_concurrency_slot(YAHOO_POOL, "run-c", STEP).is_claimed
    assert wake_stranded_claims(instance) == []
    assert not storage.claim_concurrency_slot(YAHOO_POOL, "run-c", STEP).is_claimed
    # When the holder gives the slot back, Dagster's own hand-over reaches the queued step.
    storage.free_concurrency_slot_for_step("run-b", STEP)
    assert storage.claim_concurrency_slot(YAHOO_POOL, "run-c", STEP).is_claimed


def test_a_stranded_step_gets_the_free_slot_and_no_one_else_does(instance):
    assert_wakes_the_waiter_only(instance)


def test_the_watch_thread_of_a_run_wakes_stranded_steps_while_it_runs(instance):
    strand_a_claim(instance, "run-a", "run-b")
    storage = instance.event_log_storage
    with waking_stranded_claims(instance, interval_seconds=0.05):
        deadline = time.monotonic() + 10
        while not storage.claim_concurrency_slot(YAHOO_POOL, "run-b", STEP).is_claimed:
            assert time.monotonic() < deadline, "the stranded step never got the free slot"
            time.sleep(0.05)


def test_the_daemons_sensor_wakes_stranded_steps_of_the_daemons_runs(instance):
    strand_a_claim(instance, "run-a", "run-b")

    skipped = asx_dead_runs(build_sensor_context(instance=instance))

    assert skipped.skip_message == f"woke {YAHOO_POOL}: run-b/{STEP}"
    assert instance.event_log_storage.claim_concurrency_slot(YAHOO_POOL, "run-b", STEP).is_claimed
