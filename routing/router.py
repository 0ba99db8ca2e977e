"""TriageResult + Signal -> Route: team queue and SLA deadline. Pure."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from pydantic import BaseModel, ConfigDict

from intake.signal import Signal
from triage.result import TriageResult

from .sla import BusinessCalendar, SlaRule, deadline_for, find_rule


class Route(BaseModel):
    model_config = ConfigDict(frozen=True)

    queue: str
    deadline: datetime
    sla_clock: str


def route(signal: Signal, result: TriageResult, rules: Sequence[SlaRule],
          calendar: BusinessCalendar) -> Route:
    rule = find_rule(rules, result.category, result.urgency, signal.channel.value)
    deadline, clock = deadline_for(rule, signal.received_at, calendar)
    return Route(queue=rule.queue, deadline=deadline, sla_clock=clock)
