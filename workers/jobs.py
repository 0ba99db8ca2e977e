"""rq jobs. Each takes ids only and is idempotent: running it twice changes nothing."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from routing.cases import new_case_id, new_case_number
from routing.router import route
from triage.engine import classify

from . import context
from .runtime import Runtime

log = logging.getLogger(__name__)


def process_signal(rt: Runtime, signal_id: str, now: datetime | None = None) -> str:
    """Triage and route one signal. Returns 'routed', 'already' or 'missing'."""
    now = now or datetime.now(UTC)
    stored = rt.store.load_signal(signal_id)
    if stored is None:
        log.error("triage: signal %s not found", signal_id)
        return "missing"
    if stored.status == "triaged":
        log.info("triage: signal %s already triaged", signal_id)
        return "already"
    result = classify(stored.signal, rt.ruleset)
    r = route(stored.signal, result, rt.sla_rules, rt.calendar)
    number = rt.store.save_outcome(
        signal_id,
        triage={
            "category": result.category,
            "urgency": result.urgency,
            "language": result.language,
            "minor_involved": result.indicators.minor_involved,
            "trafficking_type": result.indicators.trafficking_type,
            "matched": list(result.matched),
            "explanation": result.explanation,
            "ruleset": result.ruleset,
        },
        route={"queue": r.queue, "deadline": r.deadline, "sla_clock": r.sla_clock},
        new_case_number=new_case_number,
        new_case_id=new_case_id,
        now=now,
    )
    if number is None:
        log.info("triage: signal %s already triaged (concurrent run)", signal_id)
        return "already"
    log.info("triage: signal %s -> %s/%s queue=%s", signal_id, result.category, result.urgency, r.queue)
    return "routed"


def triage_and_route(signal_id: str) -> str:
    """rq entry point: the bound runtime does the work."""
    return process_signal(context.current(), signal_id)
