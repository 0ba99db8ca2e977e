"""rq jobs. Each takes ids only and is idempotent: running it twice changes nothing."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from intake.signal import Channel
from intake.store import CaseLink, CaseRow
from routing.cases import new_case_id, new_case_number
from routing.router import Route, route
from triage.engine import analysed_text, classify, classify_conversation
from triage.result import CATEGORY_SEVERITY, URGENCY_RANK, TriageResult

from . import context
from .runtime import Runtime

log = logging.getLogger(__name__)


def _severity(category: str, urgency: str) -> tuple[int, int]:
    return (URGENCY_RANK[urgency], len(CATEGORY_SEVERITY) - CATEGORY_SEVERITY.index(category))  # type: ignore[arg-type]


def plan_case_link(case: CaseRow, result: TriageResult, r: Route) -> CaseLink:
    """Join `case`; raise it to this result's category/urgency if that is more severe. Pure."""
    if _severity(result.category, result.urgency) > _severity(case.category, case.urgency):
        return CaseLink(case.id, case.number, escalate={
            "category": result.category, "urgency": result.urgency, "queue": r.queue,
            "deadline": min(case.deadline, r.deadline), "sla_clock": r.sla_clock,
        })
    return CaseLink(case.id, case.number)


def process_signal(rt: Runtime, signal_id: str, now: datetime | None = None) -> str:
    """Triage and route one signal. Returns 'routed', 'linked', 'already' or 'missing'."""
    now = now or datetime.now(UTC)
    stored = rt.store.load_signal(signal_id)
    if stored is None:
        log.error("triage: signal %s not found", signal_id)
        return "missing"
    if stored.status == "triaged":
        log.info("triage: signal %s already triaged", signal_id)
        return "already"
    signal = stored.signal
    link_case: CaseRow | None = None
    if signal.channel == Channel.SMS:
        # Short texts are read together with the texter's earlier messages in this conversation.
        window = timedelta(hours=rt.settings.sms.conversation_window_hours)
        earlier = rt.store.conversation_before(signal, window)
        result = classify_conversation([analysed_text(s.signal.subject, s.signal.text) for s in earlier]
                                       + [analysed_text(signal.subject, signal.text)],
                                       signal.language, rt.ruleset)
        case_ids = [s.case_id for s in earlier if s.case_id]
        if case_ids:
            link_case = rt.store.case_by_id(case_ids[-1])
            if link_case and link_case.status == "closed":
                link_case = None
    else:
        result = classify(signal, rt.ruleset)
    if result.indicators.case_number:
        # A contact quoting a case number joins that case instead of opening a new one.
        quoted = rt.store.case_by_number(result.indicators.case_number)
        if quoted is not None:
            link_case = quoted
    r = route(signal, result, rt.sla_rules, rt.calendar)
    link = plan_case_link(link_case, result, r) if link_case else None
    number = rt.store.save_outcome(
        signal_id,
        triage={
            "category": result.category,
            "urgency": result.urgency,
            "language": result.language,
            "minor_involved": result.indicators.minor_involved,
            "trafficking_type": result.indicators.trafficking_type,
            "imminent_danger": result.indicators.imminent_danger,
            "matched": list(result.matched),
            "spans": [s.model_dump() for s in result.spans],
            "details": {
                "scores": result.scores,
                "location": result.indicators.location.model_dump(exclude_none=True)
                if result.indicators.location else None,
                "case_number_quoted": result.indicators.case_number,
            },
            "explanation": result.explanation,
            "ruleset": result.ruleset,
        },
        route={"queue": r.queue, "deadline": r.deadline, "sla_clock": r.sla_clock},
        new_case_number=new_case_number,
        new_case_id=new_case_id,
        now=now,
        link=link,
    )
    if number is None:
        log.info("triage: signal %s already triaged (concurrent run)", signal_id)
        return "already"
    log.info("triage: signal %s -> %s/%s queue=%s%s", signal_id, result.category, result.urgency, r.queue,
             " (joined existing case)" if link else "")
    return "linked" if link else "routed"


def triage_and_route(signal_id: str) -> str:
    """rq entry point: the bound runtime does the work."""
    return process_signal(context.current(), signal_id)
