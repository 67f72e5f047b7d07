"""The schedules: when the daily refresh and the intraday snapshots run.

- `asx_daily_refresh_schedule` fires at ASX_DAILY_REFRESH_TIME (18:00 Australia/Sydney by default:
  prices are final on Yahoo 30-60 minutes after the 16:00 close) every day, and on a day that is
  not an XASX session returns a `SkipReason` that names the weekend or the holiday (from
  exchange_calendars' holiday names), which the UI shows on the tick. A cron of `* * 1-5` is not
  used: it cannot know ASX holidays, and the skip reason is what tells a person why nothing ran.
- `asx_intraday_schedule` runs every 15 minutes from the open to 15 minutes after the close on
  sessions (10:00-16:15 on a normal day, 10:00-14:15 on a 14:10 early close). The cron is
  `*/15 10-16 * * *`; the schedule skips ticks outside that session's hours with a reason. Each
  tick passes its own time as `snapshot_at`, so a late-starting run still fills its slot.
- The daily refresh's runs carry `MAIL_REPORT_TAG`, so the report of that session is mailed to
  ASX_REPORT_EMAIL (report_mail.py); the intraday runs and backfills do not.
- Both are on by default (`DefaultScheduleStatus.RUNNING`), so starting the daemon is enough;
  they can be switched off in the UI.
"""

import datetime as dt

from dagster import (
    DefaultScheduleStatus,
    RunRequest,
    ScheduleDefinition,
    ScheduleEvaluationContext,
    SkipReason,
    schedule,
)

from asx_pipeline.calendar import (
    ASX_TIMEZONE,
    SYDNEY,
    non_session_reason,
    partition_key,
    snapshot_times,
    sydney_today,
)
from asx_pipeline.configured import DAILY_REFRESH_TIME
from asx_pipeline.jobs import DAILY_JOB, INTRADAY_JOB, asx_daily_refresh, asx_intraday_snapshot
from asx_pipeline.report_mail import MAIL_REPORT_TAG


def daily_refresh_request(moment: dt.datetime) -> RunRequest | SkipReason:
    day = sydney_today(moment)
    reason = non_session_reason(day)
    if reason:
        return SkipReason(reason)
    key = partition_key(day)
    # The evening refresh of the latest session: its report is mailed (if ASX_REPORT_EMAIL is set).
    return RunRequest(
        run_key=f"{DAILY_JOB}:{key}", partition_key=key, tags={MAIL_REPORT_TAG: "true"}
    )


def intraday_request(moment: dt.datetime) -> RunRequest | SkipReason:
    day = sydney_today(moment)
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


def daily_refresh_schedule(at: dt.time) -> ScheduleDefinition:
    """The daily refresh at `at`, Sydney time, on XASX sessions."""

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


asx_daily_refresh_schedule = daily_refresh_schedule(DAILY_REFRESH_TIME)


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


SCHEDULES = [asx_daily_refresh_schedule, asx_intraday_schedule]
