"""The partition list is the ASX's sessions: pinned around holidays at chosen current times."""

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from asx_pipeline.calendar import (
    SessionNotFinalError,
    ensure_sessions_final,
    latest_final_session,
    session_close,
    sessions_between,
    trading_day_partitions,
)

SYDNEY = ZoneInfo("Australia/Sydney")


@pytest.fixture(scope="module")
def partitions():
    return trading_day_partitions(dt.date(2025, 1, 1))


def _keys_at(partitions, now: dt.datetime, last: int) -> list[str]:
    return partitions.get_partition_keys(current_time=now)[-last:]


def test_christmas_and_new_year_are_not_partitions(partitions) -> None:
    keys = partitions.get_partition_keys(current_time=dt.datetime(2026, 1, 7, 12, tzinfo=SYDNEY))
    window = [k for k in keys if "2025-12-19" <= k <= "2026-01-06"]
    assert window == [
        "2025-12-19", "2025-12-22", "2025-12-23", "2025-12-24", "2025-12-29",
        "2025-12-30", "2025-12-31", "2026-01-02", "2026-01-05", "2026-01-06",
    ]


def test_easter_2026_and_kings_birthday_are_not_partitions(partitions) -> None:
    keys = partitions.get_partition_keys(current_time=dt.datetime(2026, 6, 12, 12, tzinfo=SYDNEY))
    easter = [k for k in keys if "2026-04-01" <= k <= "2026-04-08"]
    assert easter == ["2026-04-01", "2026-04-02", "2026-04-07", "2026-04-08"]
    kings_birthday = [k for k in keys if "2026-06-05" <= k <= "2026-06-10"]
    assert kings_birthday == ["2026-06-05", "2026-06-09", "2026-06-10"]


def test_friday_window_is_one_day_not_until_monday(partitions) -> None:
    # dagster issue 17464: a 1-5 cron would make Friday's window end on Monday.
    window = partitions.time_window_for_partition_key("2025-11-21")
    assert window.start == dt.datetime(2025, 11, 21, tzinfo=SYDNEY)
    assert window.end == dt.datetime(2025, 11, 22, tzinfo=SYDNEY)


@pytest.mark.parametrize(
    ("now", "expected_tail"),
    [
        # An ordinary Friday evening: today's session is the last partition.
        (dt.datetime(2025, 11, 21, 18, 0), ["2025-11-19", "2025-11-20", "2025-11-21"]),
        # Friday morning: end_offset=1 already shows today's session before it closes.
        (dt.datetime(2025, 11, 21, 9, 0), ["2025-11-19", "2025-11-20", "2025-11-21"]),
        # Saturday: the next session (Monday) is exposed early; the guard refuses it.
        (dt.datetime(2025, 11, 22, 12, 0), ["2025-11-20", "2025-11-21", "2025-11-24"]),
        # Christmas Eve evening (an early close at 14:10).
        (dt.datetime(2025, 12, 24, 18, 0), ["2025-12-22", "2025-12-23", "2025-12-24"]),
        # Boxing Day evening: the last key jumps to Monday 29th (the trap the issue names).
        (dt.datetime(2025, 12, 26, 18, 0), ["2025-12-23", "2025-12-24", "2025-12-29"]),
        # Easter Monday evening: Tuesday the 7th is next.
        (dt.datetime(2026, 4, 6, 18, 0), ["2026-04-01", "2026-04-02", "2026-04-07"]),
    ],
)
def test_last_partitions_at_chosen_times(partitions, now, expected_tail) -> None:
    assert _keys_at(partitions, now.replace(tzinfo=SYDNEY), 3) == expected_tail


def test_first_partition_is_first_session_on_or_after_start() -> None:
    # 2025-01-01 is a holiday; the first session of 2025 is the 2nd.
    keys = trading_day_partitions(dt.date(2025, 1, 1)).get_partition_keys(
        current_time=dt.datetime(2025, 1, 10, 18, tzinfo=SYDNEY)
    )
    assert keys[:3] == ["2025-01-02", "2025-01-03", "2025-01-06"]


def test_every_partition_is_a_session_and_every_session_a_partition(partitions) -> None:
    now = dt.datetime(2026, 11, 20, 18, tzinfo=SYDNEY)
    keys = partitions.get_partition_keys(current_time=now)
    sessions = sessions_between(dt.date(2025, 1, 1), dt.date(2026, 11, 20))
    assert keys == [s.isoformat() for s in sessions]


def test_early_close_is_respected() -> None:
    assert session_close(dt.date(2025, 12, 24)).astimezone(SYDNEY).time() == dt.time(14, 10)
    assert session_close(dt.date(2025, 12, 23)).astimezone(SYDNEY).time() == dt.time(16, 0)


def test_session_not_final_is_refused_with_when() -> None:
    before = dt.datetime(2025, 11, 21, 16, 20, tzinfo=SYDNEY)
    with pytest.raises(SessionNotFinalError) as error:
        ensure_sessions_final([dt.date(2025, 11, 20), dt.date(2025, 11, 21)], before, 30)
    assert str(error.value) == (
        "2025-11-21 is not final yet: it can be materialised from 2025-11-21 16:30 AEDT "
        "(Australia/Sydney), 30 minutes after its 16:00 close (ASX_DATA_DELAY_MINUTES=30). "
        "Nothing was written."
    )
    ensure_sessions_final([dt.date(2025, 11, 21)], before.replace(minute=31), 30)


def test_session_not_final_on_an_early_close_gives_the_early_time() -> None:
    # Christmas Eve closes at 14:10; the message must not assume 16:00.
    morning = dt.datetime(2025, 12, 24, 9, tzinfo=SYDNEY)
    with pytest.raises(SessionNotFinalError) as error:
        ensure_sessions_final([dt.date(2025, 12, 24)], morning, 30)
    assert str(error.value) == (
        "2025-12-24 is not final yet: it can be materialised from 2025-12-24 14:40 AEDT "
        "(Australia/Sydney), 30 minutes after its 14:10 early close "
        "(ASX_DATA_DELAY_MINUTES=30). Nothing was written."
    )


def test_session_not_final_in_winter_is_in_aest_whatever_the_callers_zone() -> None:
    utc_now = dt.datetime(2025, 6, 2, 3, tzinfo=dt.UTC)  # 13:00 in Sydney
    with pytest.raises(SessionNotFinalError) as error:
        ensure_sessions_final([dt.date(2025, 6, 2), dt.date(2025, 6, 3)], utc_now, 45)
    assert str(error.value) == (
        "2 sessions are not final yet: 2025-06-02 can be materialised from 2025-06-02 16:45 "
        "AEST (Australia/Sydney), 45 minutes after its 16:00 close "
        "(ASX_DATA_DELAY_MINUTES=45); 2025-06-03 from 2025-06-03 16:45 AEST. Nothing was written."
    )


def test_many_sessions_not_final_are_summarised() -> None:
    sessions = sessions_between(dt.date(2025, 6, 2), dt.date(2025, 6, 13))
    with pytest.raises(SessionNotFinalError) as error:
        ensure_sessions_final(sessions, dt.datetime(2025, 6, 1, tzinfo=SYDNEY), 30)
    message = str(error.value)
    assert message.startswith(f"{len(sessions)} sessions are not final yet: 2025-06-02 can be")
    assert "; 2025-06-04 from 2025-06-04 16:30 AEST; and 6 later sessions. Nothing" in message


def test_latest_final_session_skips_weekend_and_unfinished_day() -> None:
    saturday = dt.datetime(2025, 11, 22, 12, tzinfo=SYDNEY)
    assert latest_final_session(saturday, 30) == dt.date(2025, 11, 21)
    friday_afternoon = dt.datetime(2025, 11, 21, 15, tzinfo=SYDNEY)
    assert latest_final_session(friday_afternoon, 30) == dt.date(2025, 11, 20)


def test_the_session_due_is_the_latest_whose_sydney_deadline_has_passed():
    from asx_pipeline.calendar import SYDNEY, latest_session_due

    deadline = dt.time(19, 30)
    before = dt.datetime(2025, 12, 23, 19, 29, tzinfo=SYDNEY)
    assert latest_session_due(before, deadline) == dt.date(2025, 12, 22)
    assert latest_session_due(before.replace(minute=31), deadline) == dt.date(2025, 12, 23)
    # Christmas and Boxing Day are holidays: the 24th is still the latest session due.
    assert latest_session_due(dt.datetime(2025, 12, 27, 9, tzinfo=SYDNEY), deadline) == (
        dt.date(2025, 12, 24)
    )


@pytest.mark.parametrize("day", ["2025-12-29", "2026-04-07", "2025-11-14"])
def test_a_look_back_mapping_is_the_sessions_before_the_day(partitions, day) -> None:
    """The indicators' and the report's look-backs walk the partitions backwards across
    weekends (one exclusion cron) and holidays (dates): exactly N sessions, ending on the day."""
    from dagster import TimeWindowPartitionMapping

    for sessions_back in (60, 260):
        mapping = TimeWindowPartitionMapping(start_offset=-(sessions_back - 1))
        upstream = mapping.get_upstream_mapped_partitions_result_for_partitions(
            partitions.subset_with_partition_keys([day]), partitions, partitions
        ).partitions_subset.get_partition_keys()
        expected = sessions_between(dt.date(2025, 1, 1), dt.date.fromisoformat(day))
        assert list(upstream) == [s.isoformat() for s in expected[-sessions_back:]]
