"""Schedules and sensors (follow-up), evaluated by Dagster at chosen moments of 2025."""

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from dagster import AssetKey, DagsterRun, RunRequest, SkipReason, build_schedule_context

from asx_pipeline.calendar import non_session_reason
from asx_pipeline.definitions import defs
from asx_pipeline.report_mail import MAIL_REPORT_TAG
from asx_pipeline.schedules import daily_refresh_schedule
from asx_pipeline.sensors import follow_request
from asx_pipeline.settings import load_settings

SYDNEY = ZoneInfo("Australia/Sydney")


def _evaluate(schedule_name: str, moment: dt.datetime):
    schedule = defs.get_repository_def().get_schedule_def(schedule_name)
    context = build_schedule_context(
        scheduled_execution_time=moment, repository_def=defs.get_repository_def()
    )
    return schedule.evaluate_tick(context)


def _at(day: str, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime.combine(dt.date.fromisoformat(day), dt.time(hour, minute), tzinfo=SYDNEY)


# Christmas week 2025: three sessions, two holidays, a weekend; then Monday again.
CHRISTMAS_WEEK = {
    "2025-12-22": None,
    "2025-12-23": None,
    "2025-12-24": None,
    "2025-12-25": "Thursday 2025-12-25 is an ASX holiday (Christmas): no session, "
    "nothing to refresh.",
    "2025-12-26": "Friday 2025-12-26 is an ASX holiday (Boxing Day): no session, "
    "nothing to refresh.",
    "2025-12-27": "Saturday 2025-12-27 is a weekend: the ASX is closed, nothing to refresh.",
    "2025-12-28": "Sunday 2025-12-28 is a weekend: the ASX is closed, nothing to refresh.",
    "2025-12-29": None,
}


@pytest.mark.parametrize(("day", "skip"), CHRISTMAS_WEEK.items())
def test_daily_schedule_runs_on_sessions_and_names_what_closed_the_asx(day, skip):
    result = _evaluate("asx_daily_refresh_schedule", _at(day, 18))
    if skip is None:
        (request,) = result.run_requests
        assert request.partition_key == day
        assert request.run_key == f"asx_daily_refresh:{day}"
        # The evening refresh of the day's session: its report is mailed (ASX_REPORT_EMAIL).
        assert request.tags[MAIL_REPORT_TAG] == "true"
        assert result.skip_message is None
    else:
        assert result.run_requests == []
        assert result.skip_message == skip


def test_daily_schedule_fires_at_the_configured_sydney_time():
    schedule = daily_refresh_schedule(
        load_settings(asx_daily_refresh_time="18:45").asx_daily_refresh_time
    )
    assert schedule.cron_schedule == "45 18 * * *"
    assert schedule.execution_timezone == "Australia/Sydney"
    assert _repo_schedule("asx_daily_refresh_schedule").cron_schedule == "0 18 * * *"


def test_holiday_names_come_from_the_calendar():
    assert "King's Birthday" in non_session_reason(dt.date(2025, 6, 9))
    assert "Good Friday" in non_session_reason(dt.date(2025, 4, 18))
    anzac = non_session_reason(dt.date(2025, 4, 25))
    assert anzac.startswith("Friday 2025-04-25 is an ASX holiday")


def _intraday_ticks(day: str) -> list[dt.datetime]:
    """Every tick of the cron `*/15 10-16 * * *` on `day`."""
    return [_at(day, hour, minute) for hour in range(10, 17) for minute in (0, 15, 30, 45)]


def _snapshots(day: str) -> tuple[list[str], list[str]]:
    taken, skipped = [], []
    for tick in _intraday_ticks(day):
        result = _evaluate("asx_intraday_schedule", tick)
        if result.run_requests:
            (request,) = result.run_requests
            assert request.partition_key == day
            at = request.run_config["ops"]["intraday_quotes"]["config"]["snapshot_at"]
            assert dt.datetime.fromisoformat(at) == tick
            taken.append(f"{tick:%H:%M}")
        else:
            skipped.append(result.skip_message)
    return taken, skipped


def test_intraday_snapshots_every_quarter_hour_to_a_quarter_after_the_close():
    taken, skipped = _snapshots("2025-12-23")
    assert taken[0] == "10:00" and taken[-1] == "16:15" and len(taken) == 26
    assert skipped == [
        f"16:{m} is outside the snapshots of 2025-12-23 (10:00-16:15 Sydney: the open to 15 "
        "minutes after the close)."
        for m in ("30", "45")
    ]


def test_intraday_snapshots_respect_the_christmas_eve_early_close():
    taken, skipped = _snapshots("2025-12-24")
    # The ASX closes at 14:10 on Christmas Eve: the last snapshot is the 14:15 one.
    assert taken[-1] == "14:15" and len(taken) == 18
    assert len(skipped) == 10
    assert skipped[0] == (
        "14:30 is outside the snapshots of 2025-12-24 (10:00-14:15 Sydney: the open to 15 "
        "minutes after the close)."
    )


def test_intraday_skips_a_holiday_with_its_name():
    taken, skipped = _snapshots("2025-12-25")
    assert taken == []
    assert set(skipped) == {
        "Thursday 2025-12-25 is an ASX holiday (Christmas): no session, no intraday snapshot."
    }


PRICES, ACTIONS = AssetKey("daily_prices"), AssetKey("corporate_actions")
INDICATORS, BREADTH = AssetKey("daily_indicators"), AssetKey("market_breadth")


def _run(**tags: str) -> DagsterRun:
    return DagsterRun(job_name="__ASSET_JOB", run_id="run-1", tags=tags)


def test_a_prices_only_rerun_is_followed_by_its_dependants_for_the_same_session():
    downstream = {PRICES: {INDICATORS, BREADTH}, ACTIONS: {INDICATORS}}
    request = follow_request(_run(**{"dagster/partition": "2025-12-24"}), {PRICES}, downstream)
    assert isinstance(request, RunRequest)
    assert request.asset_selection == [INDICATORS, BREADTH]
    assert request.partition_key == "2025-12-24"
    assert request.tags == {"asx/follows_run": "run-1"}
    assert request.run_key == "follow:run-1"


def test_a_range_rerun_is_followed_over_the_same_range():
    tags = {
        "dagster/asset_partition_range_start": "2025-12-22",
        "dagster/asset_partition_range_end": "2025-12-31",
    }
    request = follow_request(_run(**tags), {PRICES, INDICATORS}, {PRICES: {INDICATORS, BREADTH}})
    assert request.asset_selection == [BREADTH]
    assert request.tags == {**tags, "asx/follows_run": "run-1"}


def test_no_follow_up_when_the_run_already_refreshed_everything_or_no_prices():
    downstream = {PRICES: {INDICATORS}}
    done = follow_request(_run(), {PRICES, INDICATORS}, downstream)
    assert isinstance(done, SkipReason)
    assert isinstance(follow_request(_run(), {AssetKey("asx_symbols")}, downstream), SkipReason)


def test_the_daily_job_selects_every_daily_asset_but_not_intraday():
    job = defs.get_repository_def().get_job("asx_daily_refresh")
    selected = job.asset_layer.selected_asset_keys
    assert {AssetKey("asx_symbols"), PRICES, ACTIONS} <= selected
    assert AssetKey("intraday_quotes") not in selected
    everything = defs.get_repository_def().asset_graph.materializable_asset_keys
    assert selected == everything - {AssetKey("intraday_quotes")}


def _repo_schedule(name: str):
    return defs.get_repository_def().get_schedule_def(name)
