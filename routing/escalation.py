"""SLA checkpoints for a case and what each one does when it comes due. Pure."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

Point = Literal["ack", "warning", "breach"]
Action = Literal["nothing", "page_on_call", "warn", "breach"]


@dataclass(frozen=True)
class EscalationPolicy:
    crisis_unacknowledged_minutes: float
    acknowledge_urgencies: tuple[str, ...]
    warning_fraction: float
    breach_queue: str


def checkpoints(opened_at: datetime, deadline: datetime, urgency: str,
                policy: EscalationPolicy) -> list[tuple[Point, datetime]]:
    """When to look at a case again: unacknowledged (urgent cases), warning, breach."""
    from datetime import timedelta

    points: list[tuple[Point, datetime]] = []
    if urgency in policy.acknowledge_urgencies:
        ack_at = opened_at + timedelta(minutes=policy.crisis_unacknowledged_minutes)
        points.append(("ack", min(ack_at, deadline)))
    span = deadline - opened_at
    if span.total_seconds() > 0:
        points.append(("warning", opened_at + span * policy.warning_fraction))
    points.append(("breach", deadline))
    return points


def action_for(point: Point, case_status: str) -> Action:
    """A check on a case someone already took (acknowledged/closed) does nothing."""
    if case_status != "open":
        return "nothing"
    return {"ack": "page_on_call", "warning": "warn", "breach": "breach"}[point]
