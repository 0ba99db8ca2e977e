"""SLA deadlines as a table: weekends, federal holidays, DST changes, after-hours arrivals."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from routing.sla import BusinessCalendar, SlaRule, deadline_for

NY = ZoneInfo("America/New_York")
CAL = BusinessCalendar("America/New_York", "US", time(9), time(17))


def local(*args: int) -> datetime:
    return datetime(*args, tzinfo=NY)


@pytest.mark.parametrize(("arrival", "days", "due"), [
    # ordinary week
    (local(2026, 11, 17, 9, 0), 1, local(2026, 11, 18, 17, 0)),
    (local(2026, 11, 17, 16, 59), 1, local(2026, 11, 18, 17, 0)),
    (local(2026, 11, 17, 17, 0), 1, local(2026, 11, 19, 17, 0)),       # at closing time: counts from tomorrow
    (local(2026, 11, 17, 6, 0), 2, local(2026, 11, 19, 17, 0)),        # before opening: today counts
    (local(2026, 11, 20, 12, 0), 1, local(2026, 11, 23, 17, 0)),       # Friday -> Monday
    (local(2026, 11, 21, 12, 0), 1, local(2026, 11, 24, 17, 0)),       # Saturday: starts Monday
    (local(2026, 11, 22, 23, 59), 3, local(2026, 11, 26, 17, 0) + timedelta(days=1)),  # over Thanksgiving
    # federal holidays (observed dates)
    (local(2026, 12, 31, 10, 0), 1, local(2027, 1, 4, 17, 0)),         # New Year's Day Fri, weekend
    (local(2026, 7, 2, 10, 0), 1, local(2026, 7, 6, 17, 0)),           # July 4 on Sat, observed Fri Jul 3
    (local(2027, 1, 15, 12, 0), 1, local(2027, 1, 19, 17, 0)),         # MLK Day Mon Jan 18
    # DST: clocks go back Sun Nov 1 2026 and forward Sun Mar 8 2026
    (local(2026, 10, 30, 16, 0), 1, local(2026, 11, 2, 17, 0)),        # due after the change, 17:00 EST
    (local(2026, 3, 6, 16, 0), 1, local(2026, 3, 9, 17, 0)),           # due after spring forward, 17:00 EDT
])
def test_business_day_deadlines(arrival, days, due):
    got = CAL.add_business_days(arrival.astimezone(UTC), days)
    assert got == due
    assert got.astimezone(NY).hour == 17


def test_dst_offsets_are_right_on_both_sides():
    assert CAL.add_business_days(local(2026, 10, 30, 16, 0), 1).utcoffset() == timedelta(hours=-5)
    assert CAL.add_business_days(local(2026, 3, 6, 16, 0), 1).utcoffset() == timedelta(hours=-4)


@pytest.mark.parametrize(("arrival_utc", "minutes"), [
    (datetime(2026, 11, 1, 5, 50, tzinfo=UTC), 60),    # 01:50 EDT, the hour that repeats
    (datetime(2026, 3, 8, 6, 55, tzinfo=UTC), 10),     # 01:55 EST, just before the hour that is skipped
    (datetime(2026, 11, 28, 3, 0, tzinfo=UTC), 5),     # Saturday night
    (datetime(2026, 12, 25, 15, 0, tzinfo=UTC), 5),    # Christmas Day
])
def test_wall_clock_deadlines_are_real_minutes_whatever_the_calendar(arrival_utc, minutes):
    rule = SlaRule("crisis", "*", None, "crisis_line", minutes, None)
    due, clock = deadline_for(rule, arrival_utc, CAL)
    assert clock == "wall"
    assert (due - arrival_utc) == timedelta(minutes=minutes)


def test_one_to_three_business_days_is_never_more_than_a_week_even_at_year_end():
    for offset in range(0, 400, 7):
        arrival = local(2026, 1, 1, 12, 0) + timedelta(days=offset, hours=offset % 13)
        due = CAL.add_business_days(arrival.astimezone(UTC), 3)
        assert timedelta(days=1) < due - arrival < timedelta(days=8)
