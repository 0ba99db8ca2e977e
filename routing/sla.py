"""SLA table lookup and deadlines: wall-clock minutes or business days on a holiday calendar."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import holidays


@dataclass(frozen=True)
class SlaRule:
    category: str
    urgency: str
    channel: str | None
    queue: str
    minutes: int | None
    business_days: int | None


class BusinessCalendar:
    """Working days (Mon-Fri, not a public holiday) and working hours in one time zone."""

    def __init__(self, tz: str, country: str, start: time, end: time) -> None:
        self.tz = ZoneInfo(tz)
        self.start = start
        self.end = end
        self._holidays = holidays.country_holidays(country)

    def is_business_day(self, d: date) -> bool:
        return d.weekday() < 5 and d not in self._holidays

    def add_business_days(self, moment: datetime, days: int) -> datetime:
        """End of the working day `days` business days after the day work can start.

        A contact at 10:00 Monday with 1 business day is due Tuesday 17:00; one arriving on
        Saturday or after hours starts counting from the next business day.
        """
        local = moment.astimezone(self.tz)
        d = local.date()
        # Work on the arrival day only counts if it arrives before the end of that day's hours.
        if not (self.is_business_day(d) and local.time() < self.end):
            d = self._next_business_day(d)
        for _ in range(days):
            d = self._next_business_day(d)
        return datetime.combine(d, self.end, tzinfo=self.tz)

    def _next_business_day(self, d: date) -> date:
        d += timedelta(days=1)
        while not self.is_business_day(d):
            d += timedelta(days=1)
        return d


def find_rule(rules: Sequence[SlaRule], category: str, urgency: str, channel: str) -> SlaRule:
    for r in rules:
        if r.category in ("*", category) and r.urgency in ("*", urgency) and r.channel in (None, channel):
            return r
    raise LookupError(f"no SLA route for category={category} urgency={urgency} channel={channel}")


def deadline_for(rule: SlaRule, received_at: datetime, calendar: BusinessCalendar) -> tuple[datetime, str]:
    """(deadline, clock) where clock is 'wall' or 'business'."""
    if rule.minutes is not None:
        return received_at + timedelta(minutes=rule.minutes), "wall"
    assert rule.business_days is not None
    return calendar.add_business_days(received_at, rule.business_days), "business"
