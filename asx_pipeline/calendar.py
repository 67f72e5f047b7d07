"""ASX trading sessions and the daily partitions built on them.

Trading days come from exchange_calendars' "XASX" calendar, never from `weekday()`: one partition
per session, keyed `YYYY-MM-DD` in Australia/Sydney, with weekends and ASX holidays excluded.

Two Dagster traps shape this module:
- a `"0 0 * * 1-5"` cron makes Friday's window end on Monday (dagster issue 17464), so the cron is
  daily and non-sessions are *excluded*, which keeps every window exactly one day long;
- the evening refresh needs today's session to be a partition before midnight, so the definition
  uses `end_offset=1`. With exclusions that also exposes the *next* session early (at 2025-12-26
  18:00 the last key is 2025-12-29), so `ensure_sessions_final` refuses a session whose data
  cannot be final yet, before anything is fetched or written.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache
from typing import NamedTuple
from zoneinfo import ZoneInfo

import exchange_calendars as xcals
import pandas as pd
from dagster import TimeWindow, TimeWindowPartitionsDefinition

from asx_pipeline.dagster_compat import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
    PARTITION_NAME_TAG,
)
from asx_pipeline.warehouse.frames import Window

ASX_TIMEZONE = "Australia/Sydney"
SYDNEY = ZoneInfo(ASX_TIMEZONE)
PARTITION_FORMAT = "%Y-%m-%d"
CALENDAR_START = dt.date(2000, 1, 3)
# The calendar reaches at least this far so that sample data (indexed by session) never depends on
# today's date; it reaches further when today is closer than a year to it.
CALENDAR_MIN_END = dt.date(2031, 12, 31)

# Intraday snapshots: every quarter hour from the open, and one after the close that catches the
# closing auction's price (16:10 on a normal day).
SNAPSHOT_INTERVAL = dt.timedelta(minutes=15)
AFTER_CLOSE = dt.timedelta(minutes=15)

# exchange_calendars' weekmask starts on Monday; cron's day-of-week counts from Sunday = 0.
_CRON_DAY_OF_WEEK = [1, 2, 3, 4, 5, 6, 0]


class SessionNotFinalError(ValueError):
    """A session was asked for before its data can be final."""


@lru_cache(maxsize=1)
def asx_calendar() -> xcals.ExchangeCalendar:
    """The XASX calendar, from 2000 to at least a year ahead."""
    end = max(CALENDAR_MIN_END, dt.date.today() + dt.timedelta(days=400))
    return xcals.get_calendar("XASX", start=CALENDAR_START.isoformat(), end=end.isoformat())


def is_session(day: dt.date) -> bool:
    return bool(asx_calendar().is_session(pd.Timestamp(day)))


def sessions_between(first: dt.date, last: dt.date) -> list[dt.date]:
    """Every session from `first` to `last`, both included."""
    if last < first:
        return []
    sessions = asx_calendar().sessions_in_range(pd.Timestamp(first), pd.Timestamp(last))
    return [ts.date() for ts in sessions]


def sessions_in_window(start: dt.date, end: dt.date) -> list[dt.date]:
    """Every session in the half-open window [start, end), the shape of a partition time window."""
    return sessions_between(start, end - dt.timedelta(days=1))


def sydney_today(now: dt.datetime | None = None) -> dt.date:
    """The date in Sydney at `now` (default: now): the ASX's own idea of "today"."""
    return (now or dt.datetime.now(dt.UTC)).astimezone(SYDNEY).date()


# --- the sessions a run covers ------------------------------------------------------------


class RunSpan(NamedTuple):
    """What a run covers: its date window (half-open, as Dagster's partition time window) and
    the ASX sessions in it. Unpacks as `window, sessions = span_of(...)`."""

    window: Window
    sessions: list[dt.date]


def window_of(time_window: TimeWindow) -> Window:
    """Partition time windows start and end at Sydney midnight; the dates are the window."""
    return Window(time_window.start.date(), time_window.end.date())


def span_of(time_window: TimeWindow) -> RunSpan:
    """The window and sessions of a run's partition time window (`context.partition_time_window`,
    one session or a whole single-run range)."""
    window = window_of(time_window)
    return RunSpan(window, sessions_in_window(window.start, window.end))


def partition_range(tags: Mapping[str, str]) -> tuple[str, str] | None:
    """The first and last partition key in a run's tags (None for an unpartitioned run)."""
    if PARTITION_NAME_TAG in tags:
        return tags[PARTITION_NAME_TAG], tags[PARTITION_NAME_TAG]
    start, end = tags.get(ASSET_PARTITION_RANGE_START_TAG), tags.get(ASSET_PARTITION_RANGE_END_TAG)
    return (start, end) if start and end else None


def partition_label(tags: Mapping[str, str]) -> str | None:
    """The run's partition key, or `first...last` for a single-run range (logs and alerts)."""
    if PARTITION_NAME_TAG in tags:
        return tags[PARTITION_NAME_TAG]
    keys = partition_range(tags)
    return f"{keys[0]}...{keys[1]}" if keys else None


def range_tags(first: dt.date, last: dt.date) -> dict[str, str]:
    """Tags that make one run cover every partition from first to last (single-run backfill)."""
    return {
        ASSET_PARTITION_RANGE_START_TAG: partition_key(first),
        ASSET_PARTITION_RANGE_END_TAG: partition_key(last),
    }


# --- the calendar, in words -----------------------------------------------------------------


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


def session_before(day: dt.date, count: int = 1) -> dt.date | None:
    """The session `count` sessions before `day` (a session or not); None before the calendar."""
    sessions = asx_calendar().sessions
    index = int(sessions.searchsorted(pd.Timestamp(day))) - count
    return sessions[index].date() if index >= 0 else None


def session_open(session: dt.date) -> dt.datetime:
    """When the session opens, in UTC."""
    return asx_calendar().session_open(pd.Timestamp(session)).to_pydatetime()


def snapshot_times(session: dt.date) -> list[dt.datetime]:
    """Every intraday snapshot of a session: each quarter hour from the open to 15 minutes after
    the close, so an early close (14:10 on Christmas Eve) ends at 14:15, a normal day at 16:15."""
    first, last = session_open(session), session_close(session) + AFTER_CLOSE
    times = []
    moment = first
    while moment <= last:
        times.append(moment)
        moment += SNAPSHOT_INTERVAL
    return times


def session_close(session: dt.date) -> dt.datetime:
    """When the session closes, in UTC (early closes, such as Christmas Eve, included)."""
    return asx_calendar().session_close(pd.Timestamp(session)).to_pydatetime()


def session_final_at(session: dt.date, delay_minutes: int) -> dt.datetime:
    """When a session's end-of-day data can be trusted: the close plus the source's delay."""
    return session_close(session) + dt.timedelta(minutes=delay_minutes)


def ensure_sessions_final(
    sessions: Sequence[dt.date], now: dt.datetime, delay_minutes: int
) -> None:
    """Refuse sessions whose data cannot be final yet, naming them and when they will be."""
    pending = [s for s in sessions if session_final_at(s, delay_minutes) > now]
    if pending:
        raise SessionNotFinalError(_not_final_message(pending, delay_minutes))


# A range can only reach a session or two past today (end_offset=1), but callers may pass any list.
_PENDING_SHOWN = 3


def _not_final_message(pending: Sequence[dt.date], delay_minutes: int) -> str:
    """E.g. '2025-12-24 is not final yet: it can be materialised from 2025-12-24 14:40 AEDT
    (Australia/Sydney), 30 minutes after its 14:10 early close (ASX_DATA_DELAY_MINUTES)'."""
    first, *later = pending
    when = _final_from(first, delay_minutes)
    if not later:
        head = f"{first.isoformat()} is not final yet: it can be materialised from {when}"
    else:
        head = (
            f"{len(pending)} sessions are not final yet: {first.isoformat()} can be "
            f"materialised from {when}"
        )
        shown = [
            f"{session.isoformat()} from {_ready_in_sydney(session, delay_minutes)}"
            for session in later[: _PENDING_SHOWN - 1]
        ]
        hidden = len(later) - len(shown)
        head += "; " + "; ".join(shown) + (f"; and {hidden} later sessions" if hidden else "")
    return f"{head}. Nothing was written."


def _final_from(session: dt.date, delay_minutes: int) -> str:
    """'2025-12-24 14:40 AEDT (Australia/Sydney), 30 minutes after its 14:10 early close ...'."""
    close = session_close(session).astimezone(SYDNEY)
    early = "early " if pd.Timestamp(session) in asx_calendar().early_closes else ""
    after = f"{delay_minutes} minutes after" if delay_minutes else "at"
    return (
        f"{_ready_in_sydney(session, delay_minutes)} ({ASX_TIMEZONE}), {after} its "
        f"{close:%H:%M} {early}close (ASX_DATA_DELAY_MINUTES={delay_minutes})"
    )


def _ready_in_sydney(session: dt.date, delay_minutes: int) -> str:
    # Formatted from an aware Sydney datetime so that %Z gives AEST or AEDT as of that day.
    ready = session_final_at(session, delay_minutes).astimezone(SYDNEY)
    return f"{ready:%Y-%m-%d %H:%M %Z}"


def latest_final_session(now: dt.datetime, delay_minutes: int) -> dt.date:
    """The most recent session whose data is final at `now`."""
    return latest_session_ready(now, lambda session: session_final_at(session, delay_minutes))


def latest_session_due(now: dt.datetime, deadline: dt.time) -> dt.date:
    """The latest session whose data should be in by `now`: its Sydney `deadline` has passed."""
    return latest_session_ready(
        now, lambda session: dt.datetime.combine(session, deadline, tzinfo=SYDNEY)
    )


def latest_session_ready(
    now: dt.datetime, ready_at: Callable[[dt.date], dt.datetime]
) -> dt.date:
    """The most recent session (within 30 days) whose `ready_at` time has passed at `now`."""
    today = sydney_today(now)
    for session in reversed(sessions_between(today - dt.timedelta(days=30), today)):
        if ready_at(session) <= now:
            return session
    raise SessionNotFinalError(f"No ready ASX session in the 30 days before {today}")


def trading_day_partitions(start: dt.date) -> TimeWindowPartitionsDefinition:
    """One partition per XASX session from the first session on or after `start`."""
    calendar = asx_calendar()
    first = calendar.date_to_session(pd.Timestamp(start), direction="next").date()
    return TimeWindowPartitionsDefinition(
        cron_schedule="0 0 * * *",
        start=dt.datetime.combine(first, dt.time()),
        timezone=ASX_TIMEZONE,
        fmt=PARTITION_FORMAT,
        end_offset=1,
        exclusions=[*_non_trading_weekdays_cron(), *_holidays_on_trading_weekdays(first)],
    )


def _non_trading_weekdays_cron() -> list[str]:
    """One cron for every weekday the ASX never trades (["0 0 * * 0,6"]): Dagster walks a
    look-back one partition at a time and builds an iterator per exclusion cron at each step, so
    one cron instead of one per day makes the indicators' 260-session mapping a third cheaper."""
    weekmask = asx_calendar().weekmask
    days = sorted(_CRON_DAY_OF_WEEK[i] for i, flag in enumerate(weekmask) if flag == "0")
    return [f"0 0 * * {','.join(map(str, days))}"] if days else []


def _holidays_on_trading_weekdays(first: dt.date) -> list[dt.datetime]:
    """Days the weekmask would trade on that are not sessions: the ASX's holidays."""
    calendar = asx_calendar()
    weekdays = pd.bdate_range(
        pd.Timestamp(first), calendar.last_session, freq="C", weekmask=calendar.weekmask
    )
    sessions = calendar.sessions_in_range(pd.Timestamp(first), calendar.last_session)
    return [dt.datetime.combine(day.date(), dt.time()) for day in weekdays.difference(sessions)]


def partition_key(session: dt.date) -> str:
    return session.strftime(PARTITION_FORMAT)


def parse_partition_key(key: str) -> dt.date:
    return dt.datetime.strptime(key, PARTITION_FORMAT).date()
