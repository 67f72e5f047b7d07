"""When things run: jobs, schedules and sensors.

Decisions (the README's "Running it every day" repeats them):

- `asx_daily_refresh` materialises *every* daily asset for one session: the selection is all assets
  minus `intraday_quotes`, so assets added later (indicators, breadth, screeners, reports) join
  the daily run without touching this file. One run per session keeps the day consistent: Dagster
  orders the steps by the asset graph, and a step whose upstream failed is not run.
- `asx_daily_refresh_schedule` fires at ASX_DAILY_REFRESH_TIME (18:00 Australia/Sydney by default:
  prices are final on Yahoo 30-60 minutes after the 16:00 close) every day, and on a day that is
  not an XASX session returns a `SkipReason` that names the weekend or the holiday (from
  exchange_calendars' holiday names), which the UI shows on the tick. A cron of `* * 1-5` is not
  used: it cannot know ASX holidays, and the skip reason is what tells a person why nothing ran.
- Downstream assets follow a late prices rerun through a sensor, not declarative automation.
  When a successful run materialised `daily_prices` or `corporate_actions` but not everything
  downstream of them (someone re-materialised prices from the UI, or `asx-pipeline backfill`
  ran only the core), `asx_follow_prices` launches `asx_daily_refresh` for exactly those
  sessions and exactly the missing downstream assets. `AutomationCondition.eager()` was rejected:
  the partitions use `end_offset=1`, which exposes the next session early, and eager would ask
  for that not-yet-final partition (and a TimeWindowPartitionMapping with a look-back fans one
  changed day out to later ones), so it would launch runs that can only fail.
- `intraday_quotes` runs every 15 minutes from the open to 15 minutes after the close on sessions
  (10:00-16:15 on a normal day, 10:00-14:15 on a 14:10 early close). The cron is
  `*/15 10-16 * * *`; the schedule skips ticks outside that session's hours with a reason. Each
  tick passes its own time as `snapshot_at`, so a late-starting run still fills its slot.
- Alerts: `asx_run_failure_alerts` (a run-failure sensor) mails and/or posts job, partition,
  failed step, the error's first lines and a link to the run; `asx_prices_freshness` alerts once
  per session when `daily_prices` has no materialisation for today's session by
  ASX_FRESHNESS_DEADLINE (19:30 Sydney). Both only notify; neither launches runs.
- All schedules and sensors are on by default (`DefaultScheduleStatus.RUNNING`), so starting the
  daemon is enough; they can be switched off in the UI.
- Retries (retries.py) and concurrency (dagster.yaml): steps that call Yahoo retry with
  exponential backoff and jitter; the run queue allows one run per partition key at a time and
  one backfill run at a time.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable

import pandas as pd
from dagster import (
    AssetKey,
    AssetSelection,
    DagsterEventType,
    DagsterInstance,
    DagsterRunStatus,
    DefaultScheduleStatus,
    DefaultSensorStatus,
    RunFailureSensorContext,
    RunRequest,
    RunStatusSensorContext,
    ScheduleDefinition,
    ScheduleEvaluationContext,
    SensorDefinition,
    SensorEvaluationContext,
    SkipReason,
    define_asset_job,
    run_failure_sensor,
    run_status_sensor,
    schedule,
    sensor,
)
from dagster._core.definitions.unresolved_asset_job_definition import (
    UnresolvedAssetJobDefinition,
)
from dagster._core.storage.dagster_run import DagsterRun
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
    PARTITION_NAME_TAG,
)
from dagster._utils.error import SerializableErrorInfo

from asx_pipeline.assets.intraday import snapshot_times
from asx_pipeline.calendar import (
    ASX_TIMEZONE,
    SYDNEY,
    asx_calendar,
    is_session,
    partition_key,
)
from asx_pipeline.instance import fail_dead_runs
from asx_pipeline.logging_config import partition_of
from asx_pipeline.notify import Alert, Notifier
from asx_pipeline.runs import failed_symbols_of_run
from asx_pipeline.settings import Settings

DAILY_JOB = "asx_daily_refresh"
INTRADAY_JOB = "asx_intraday_snapshot"
INTRADAY_ASSET = AssetKey("intraday_quotes")
PRICE_ASSETS = frozenset({AssetKey("daily_prices"), AssetKey("corporate_actions")})
ERROR_LINES = 8

DAILY_ASSETS = AssetSelection.all() - AssetSelection.assets(INTRADAY_ASSET)

# The core tables alone: the demo's history load, and loading prices for a range by hand.
asx_core = define_asset_job(
    name="asx_core",
    selection=AssetSelection.assets("asx_symbols", "daily_prices", "corporate_actions"),
    description="The ASX directory, daily prices and corporate actions for a range of sessions.",
)
asx_daily_refresh = define_asset_job(
    name=DAILY_JOB,
    selection=DAILY_ASSETS,
    description="Every daily asset (all but intraday_quotes) for one session or a range.",
)
asx_intraday_snapshot = define_asset_job(
    name=INTRADAY_JOB,
    selection=AssetSelection.assets(INTRADAY_ASSET),
    description="One intraday snapshot of last price, change and volume.",
)


# --- the ASX calendar, in words ---------------------------------------------------------------


def holiday_name(day: dt.date) -> str | None:
    """exchange_calendars' name for an ASX holiday on `day` (None if it has none)."""
    calendar = asx_calendar()
    stamp = pd.Timestamp(day)
    named = calendar.regular_holidays.holidays(stamp, stamp, return_name=True)
    if len(named):
        # exchange_calendars 4.x spells it "Kings's Birthday".
        return str(named.iloc[0]).replace("Kings's", "King's")
    if stamp in set(calendar.adhoc_holidays):
        return "a special ASX closure"
    return None


def non_session_reason(day: dt.date) -> str | None:
    """Why `day` is not an XASX session, for a person reading the UI; None on a session."""
    if is_session(day):
        return None
    label = f"{day:%A} {day.isoformat()}"
    holiday = holiday_name(day)
    if asx_calendar().weekmask[day.weekday()] == "0":
        also = f" ({holiday})" if holiday else ""
        return f"{label} is a weekend{also}: the ASX is closed, nothing to refresh."
    return f"{label} is an ASX holiday ({holiday or 'unnamed'}): no session, nothing to refresh."


def _sydney_day(moment: dt.datetime) -> dt.date:
    return moment.astimezone(SYDNEY).date()


# --- schedules ------------------------------------------------------------------------------


def daily_refresh_request(moment: dt.datetime) -> RunRequest | SkipReason:
    day = _sydney_day(moment)
    reason = non_session_reason(day)
    if reason:
        return SkipReason(reason)
    key = partition_key(day)
    return RunRequest(run_key=f"{DAILY_JOB}:{key}", partition_key=key)


def intraday_request(moment: dt.datetime) -> RunRequest | SkipReason:
    day = _sydney_day(moment)
    reason = non_session_reason(day)
    if reason:
        return SkipReason(reason.replace("nothing to refresh", "no intraday snapshot"))
    times = snapshot_times(day)
    if moment not in times:
        first, last = (t.astimezone(SYDNEY) for t in (times[0], times[-1]))
        return SkipReason(
            f"{moment.astimezone(SYDNEY):%H:%M} is outside the snapshots of {day} "
            f"({first:%H:%M}-{last:%H:%M} Sydney: the open to 15 minutes after the close)."
        )
    at = moment.astimezone(dt.UTC).isoformat()
    return RunRequest(
        run_key=f"{INTRADAY_JOB}:{at}",
        partition_key=partition_key(day),
        run_config={"ops": {"intraday_quotes": {"config": {"snapshot_at": at}}}},
        tags={"asx/snapshot_at": at},
    )


def daily_refresh_schedule(settings: Settings) -> ScheduleDefinition:
    at = settings.asx_daily_refresh_time

    @schedule(
        name="asx_daily_refresh_schedule",
        cron_schedule=f"{at.minute} {at.hour} * * *",
        execution_timezone=ASX_TIMEZONE,
        job=asx_daily_refresh,
        default_status=DefaultScheduleStatus.RUNNING,
        description=f"The daily refresh at {at:%H:%M} Sydney on XASX sessions; skips other days.",
    )
    def _daily(context: ScheduleEvaluationContext) -> RunRequest | SkipReason:
        return daily_refresh_request(context.scheduled_execution_time)

    return _daily


@schedule(
    name="asx_intraday_schedule",
    cron_schedule="*/15 10-16 * * *",
    execution_timezone=ASX_TIMEZONE,
    job=asx_intraday_snapshot,
    default_status=DefaultScheduleStatus.RUNNING,
    description="An intraday snapshot every 15 minutes from the open to 15 minutes after the "
    "close, on XASX sessions (early closes respected).",
)
def asx_intraday_schedule(context: ScheduleEvaluationContext) -> RunRequest | SkipReason:
    return intraday_request(context.scheduled_execution_time)


# --- alerts ---------------------------------------------------------------------------------


def run_link(settings: Settings, run_id: str) -> str:
    return f"{str(settings.asx_webserver_url).rstrip('/')}/runs/{run_id}"


def first_lines(text: str, count: int = ERROR_LINES) -> list[str]:
    lines = [line.rstrip() for line in text.strip().splitlines() if line.strip()]
    return lines[:count] + (["..."] if len(lines) > count else [])


def error_summary(error: SerializableErrorInfo) -> str:
    """The error and its causes, without stack traces: what a person reads first.

    When step retries ran out, Dagster's own message says only "Exceeded max_retries of N"; the
    last attempt's error (its cause) is what says why, so that line is left out.
    """
    return "\n".join(_messages(error))


def failure_reason(error: SerializableErrorInfo | None) -> str:
    """One line: the first line of the error and of each cause, outermost first."""
    if error is None:
        return "unknown error"
    lines = [message.splitlines()[0] for message in _messages(error) if message]
    return " <- ".join(lines) or error.message.strip().splitlines()[0]


def _messages(error: SerializableErrorInfo) -> list[str]:
    messages = []
    current: SerializableErrorInfo | None = error
    while current is not None:
        message = current.message.strip()
        if message and not (message.startswith("Exceeded max_retries") and current.cause):
            messages.append(message)
        current = current.cause
    return messages


def failure_alert(
    settings: Settings,
    run: DagsterRun,
    step_failures: Iterable[tuple[str, str]],
    run_error: str,
    failed_symbols: str = "",
) -> Alert:
    """What a person needs to act on a failed run: which job, day, step and error, the tickers
    Yahoo did not serve (with why), and a link."""
    failures = list(step_failures)
    partition = partition_of(run.tags) or "none"
    steps = ", ".join(step for step, _ in failures) or "none (the run itself failed)"
    error = failures[0][1] if failures else run_error
    lines = (
        f"Job: {run.job_name}",
        f"Partition: {partition}",
        f"Failed step: {steps}",
        f"Run id: {run.run_id}",
        "Error:",
        *(f"  {line}" for line in first_lines(error)),
        *(
            ["Tickers not fetched (their stored rows are kept):", *failed_symbols.splitlines()]
            if failed_symbols
            else []
        ),
    )
    return Alert(
        subject=f"Run failed: {run.job_name} {partition}",
        lines=lines,
        link=run_link(settings, run.run_id),
    )


def run_failure_alerts(settings: Settings) -> SensorDefinition:
    @run_failure_sensor(
        name="asx_run_failure_alerts",
        default_status=DefaultSensorStatus.RUNNING,
        description="Email and/or webhook when any run of this code location fails.",
    )
    def _alerts(context: RunFailureSensorContext) -> None:
        failures = [
            (event.step_key or "?", error_summary(event.event_specific_data.error))
            for event in context.get_step_failure_events()
            if event.event_specific_data is not None and event.event_specific_data.error
        ]
        alert = failure_alert(
            settings,
            context.dagster_run,
            failures,
            context.failure_event.message or "",
            failed_symbols_of_run(context.instance, context.dagster_run.run_id),
        )
        delivered = Notifier(settings).send(alert)
        context.log.info(f"Failure alert for {context.dagster_run.run_id}: sent by {delivered}")

    return _alerts


def freshness_alert(
    settings: Settings, instance: DagsterInstance, now: dt.datetime
) -> tuple[dt.date | None, Alert | None]:
    """(session, alert) when today's daily_prices is missing after the deadline, else (s, None).

    The session is None when no check applies (not a session, or before the deadline).
    """
    local = now.astimezone(SYDNEY)
    session = local.date()
    if not is_session(session) or local.time() < settings.asx_freshness_deadline:
        return None, None
    key = partition_key(session)
    materialised = instance.get_materialized_partitions(AssetKey("daily_prices"))
    if key in materialised:
        return session, None
    deadline = settings.asx_freshness_deadline
    alert = Alert(
        subject=f"daily_prices is late for {key}",
        lines=(
            f"daily_prices has no data for the ASX session {key}, due by {deadline:%H:%M} "
            f"Sydney (ASX_FRESHNESS_DEADLINE).",
            f"Checked at {local:%Y-%m-%d %H:%M %Z}.",
            f"Look at the latest {DAILY_JOB} runs, or run `asx-pipeline daily --date {key}`.",
        ),
        link=f"{str(settings.asx_webserver_url).rstrip('/')}/runs",
    )
    return session, alert


def prices_freshness_sensor(
    settings: Settings, clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC)
) -> SensorDefinition:
    """`clock` is injectable so tests can stand at 19:31 on a 2025 session."""

    @sensor(
        name="asx_prices_freshness",
        minimum_interval_seconds=300,
        default_status=DefaultSensorStatus.RUNNING,
        description=f"Alerts once per session when daily_prices is missing at "
        f"{settings.asx_freshness_deadline:%H:%M} Sydney.",
    )
    def _freshness(context: SensorEvaluationContext) -> SkipReason:
        session, alert = freshness_alert(settings, context.instance, clock())
        if session is None:
            return SkipReason("No freshness check due: not a session, or before the deadline.")
        if alert is None:
            return SkipReason(f"daily_prices for {session} is there.")
        # The cursor remembers the session already alerted about: one message per late day.
        if context.cursor == session.isoformat():
            return SkipReason(f"Already alerted that daily_prices for {session} is late.")
        delivered = Notifier(settings).send(alert)
        context.update_cursor(session.isoformat())
        return SkipReason(f"daily_prices for {session} is late; alert sent by {delivered}.")

    return _freshness


# --- downstream follows a rerun of prices ---------------------------------------------------


def materialised_assets(instance: DagsterInstance, run_id: str) -> set[AssetKey]:
    records = instance.get_records_for_run(
        run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION
    ).records
    return {record.event_log_entry.dagster_event.asset_key for record in records}


def partition_tags(run: DagsterRun) -> dict[str, str]:
    """The run's partition tags, so the follow-up covers exactly the same sessions."""
    keys = (PARTITION_NAME_TAG, ASSET_PARTITION_RANGE_START_TAG, ASSET_PARTITION_RANGE_END_TAG)
    return {key: run.tags[key] for key in keys if key in run.tags}


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
    tags = partition_tags(run)
    return RunRequest(
        run_key=f"follow:{run.run_id}",
        asset_selection=sorted(missing, key=lambda key: key.to_user_string()),
        # One session: an ordinary partitioned request; a range: the single-run range tags.
        partition_key=tags.pop(PARTITION_NAME_TAG, None),
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


@sensor(
    name="asx_dead_runs",
    minimum_interval_seconds=60,
    default_status=DefaultSensorStatus.RUNNING,
    description="Marks failed a started run whose process is gone (killed, OOM, reboot), so it "
    "never blocks its sessions; the failure alert then says so.",
)
def asx_dead_runs(context: SensorEvaluationContext) -> SkipReason:
    failed = fail_dead_runs(context.instance, include_untagged=True)
    for message in failed:
        context.log.warning(message)
    return SkipReason("; ".join(failed) if failed else "every started run's process is alive")


def build_automation(
    settings: Settings,
) -> tuple[list[UnresolvedAssetJobDefinition], list[ScheduleDefinition], list[SensorDefinition]]:
    """The jobs, schedules and sensors that definitions.py registers."""
    return (
        [asx_core, asx_daily_refresh, asx_intraday_snapshot],
        [daily_refresh_schedule(settings), asx_intraday_schedule],
        [
            run_failure_alerts(settings),
            prices_freshness_sensor(settings),
            asx_follow_prices,
            asx_dead_runs,
        ],
    )
