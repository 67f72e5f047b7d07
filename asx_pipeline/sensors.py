"""The sensors: what follows a run, what is late, and runs whose process died.

- Downstream assets follow a late prices rerun through a sensor, not declarative automation.
  When a successful run materialised `daily_prices` or `corporate_actions` but not everything
  downstream of them (someone re-materialised prices from the UI, or `asx-pipeline backfill`
  ran only the core), `asx_follow_prices` launches `asx_daily_refresh` for exactly those
  sessions and exactly the missing downstream assets. `AutomationCondition.eager()` was rejected:
  the partitions use `end_offset=1`, which exposes the next session early, and eager would ask
  for that not-yet-final partition (and a TimeWindowPartitionMapping with a look-back fans one
  changed day out to later ones), so it would launch runs that can only fail.
- Alerts: `asx_run_failure_alerts` (a run-failure sensor) mails and/or posts job, partition,
  failed step, the error's first lines and a link to the run; `asx_prices_freshness` alerts once
  per session when `daily_prices` has no materialisation for today's session by
  ASX_FRESHNESS_DEADLINE (19:30 Sydney). Both only notify; neither launches runs. What they say
  is in notify.py, where they send it is the `alerts` resource.
- `asx_dead_runs` marks failed a started run whose process is gone (instance.py), and gives a
  free pool slot to a step Dagster left waiting for it (pools.py).
- All are on by default (`DefaultSensorStatus.RUNNING`), so starting the daemon is enough.
"""

import datetime as dt

from dagster import (
    AssetKey,
    AssetSelection,
    DagsterEventType,
    DagsterInstance,
    DagsterRun,
    DagsterRunStatus,
    DefaultSensorStatus,
    RunFailureSensorContext,
    RunRequest,
    RunStatusSensorContext,
    SensorEvaluationContext,
    SkipReason,
    run_failure_sensor,
    run_status_sensor,
    sensor,
)

from asx_pipeline.calendar import (
    SYDNEY,
    is_session,
    parse_partition_key,
    partition_key,
    partition_range,
    range_tags,
    sydney_today,
)
from asx_pipeline.configured import FRESHNESS_DEADLINE
from asx_pipeline.dagster_compat import PARTITION_NAME_TAG
from asx_pipeline.instance import fail_dead_runs
from asx_pipeline.jobs import DAILY_JOB, INTRADAY_ASSET, PRICE_ASSETS, asx_daily_refresh
from asx_pipeline.notify import (
    Alert,
    AlertsResource,
    error_summary,
    failure_alert,
    late_prices_alert,
)
from asx_pipeline.pools import wake_stranded_claims
from asx_pipeline.runs import failed_symbols_of_run

# --- alerts ---------------------------------------------------------------------------------


@run_failure_sensor(
    name="asx_run_failure_alerts",
    default_status=DefaultSensorStatus.RUNNING,
    description="Email and/or webhook when any run of this code location fails.",
)
def asx_run_failure_alerts(context: RunFailureSensorContext, alerts: AlertsResource) -> None:
    failures = [
        (event.step_key or "?", error_summary(event.event_specific_data.error))
        for event in context.get_step_failure_events()
        if event.event_specific_data is not None and event.event_specific_data.error
    ]
    run = context.dagster_run
    alert = failure_alert(
        run,
        failures,
        context.failure_event.message or "",
        failed_symbols_of_run(context.instance, run.run_id),
        link=alerts.link(f"runs/{run.run_id}"),
    )
    delivered = alerts.notifier().send(alert)
    context.log.info(f"Failure alert for {run.run_id}: sent by {delivered}")


def freshness_alert(
    alerts: AlertsResource, instance: DagsterInstance, now: dt.datetime, deadline: dt.time
) -> tuple[dt.date | None, Alert | None]:
    """(session, alert) when today's daily_prices is missing after the deadline, else (s, None).

    The session is None when no check applies (not a session, or before the deadline).
    """
    session = sydney_today(now)
    if not is_session(session) or now.astimezone(SYDNEY).time() < deadline:
        return None, None
    materialised = instance.get_materialized_partitions(AssetKey("daily_prices"))
    if partition_key(session) in materialised:
        return session, None
    return session, late_prices_alert(session, deadline, now, DAILY_JOB, alerts.link("runs"))


@sensor(
    name="asx_prices_freshness",
    minimum_interval_seconds=300,
    default_status=DefaultSensorStatus.RUNNING,
    description=f"Alerts once per session when daily_prices is missing at "
    f"{FRESHNESS_DEADLINE:%H:%M} Sydney.",
)
def asx_prices_freshness(context: SensorEvaluationContext, alerts: AlertsResource) -> SkipReason:
    session, alert = freshness_alert(alerts, context.instance, alerts.now(), FRESHNESS_DEADLINE)
    if session is None:
        return SkipReason("No freshness check due: not a session, or before the deadline.")
    if alert is None:
        return SkipReason(f"daily_prices for {session} is there.")
    # The cursor remembers the session already alerted about: one message per late day.
    if context.cursor == session.isoformat():
        return SkipReason(f"Already alerted that daily_prices for {session} is late.")
    delivered = alerts.notifier().send(alert)
    context.update_cursor(session.isoformat())
    return SkipReason(f"daily_prices for {session} is late; alert sent by {delivered}.")


# --- downstream follows a rerun of prices ---------------------------------------------------


def materialised_assets(instance: DagsterInstance, run_id: str) -> set[AssetKey]:
    records = instance.get_records_for_run(
        run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION
    ).records
    return {record.event_log_entry.dagster_event.asset_key for record in records}


def follow_request(
    run: DagsterRun, materialised: set[AssetKey], downstream_of: dict[AssetKey, set[AssetKey]]
) -> RunRequest | SkipReason:
    changed = materialised & PRICE_ASSETS
    if not changed:
        return SkipReason(f"Run {run.run_id} did not change prices.")
    downstream = set().union(*(downstream_of.get(key, set()) for key in changed))
    missing = downstream - materialised - PRICE_ASSETS - {INTRADAY_ASSET}
    if not missing:
        return SkipReason(f"Run {run.run_id} already refreshed everything downstream of prices.")
    # One session: an ordinary partitioned request; a range: the same single-run range tags.
    single = run.tags.get(PARTITION_NAME_TAG)
    keys = partition_range(run.tags)
    tags = range_tags(*(parse_partition_key(key) for key in keys)) if keys and not single else {}
    return RunRequest(
        run_key=f"follow:{run.run_id}",
        asset_selection=sorted(missing, key=lambda key: key.to_user_string()),
        partition_key=single,
        tags={**tags, "asx/follows_run": run.run_id},
    )


@run_status_sensor(
    run_status=DagsterRunStatus.SUCCESS,
    name="asx_follow_prices",
    request_job=asx_daily_refresh,
    default_status=DefaultSensorStatus.RUNNING,
    description="After a run that changed prices but not what depends on them, refresh the "
    "dependants for the same sessions.",
)
def asx_follow_prices(context: RunStatusSensorContext) -> RunRequest | SkipReason:
    run = context.dagster_run
    graph = context.repository_def.asset_graph if context.repository_def else None
    if graph is None:
        return SkipReason("No asset graph available.")
    downstream_of = {
        key: AssetSelection.assets(key).downstream(include_self=False).resolve(graph)
        for key in PRICE_ASSETS
        if graph.has(key)
    }
    return follow_request(run, materialised_assets(context.instance, run.run_id), downstream_of)


# --- runs whose process died ----------------------------------------------------------------


@sensor(
    name="asx_dead_runs",
    minimum_interval_seconds=60,
    default_status=DefaultSensorStatus.RUNNING,
    description="Marks failed a started run whose process is gone (killed, OOM, reboot), so it "
    "never blocks its sessions; the failure alert then says so. Also gives a free pool slot to a "
    "step Dagster left waiting for it (pools.py).",
)
def asx_dead_runs(context: SensorEvaluationContext) -> SkipReason:
    failed = fail_dead_runs(context.instance, include_untagged=True)
    for message in failed:
        context.log.warning(message)
    # After failing dead runs, whose slots that frees may be what a waiting step needs.
    woken = wake_stranded_claims(context.instance)
    for claim in woken:
        context.log.warning(f"A free pool slot given to a step left waiting: {claim}")
    said = [*failed, *(f"woke {claim}" for claim in woken)]
    return SkipReason("; ".join(said) if said else "every started run's process is alive")


SENSORS = [asx_run_failure_alerts, asx_prices_freshness, asx_follow_prices, asx_dead_runs]
