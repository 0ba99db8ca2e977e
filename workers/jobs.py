"""rq jobs. Each takes ids only and is idempotent: running it twice changes nothing."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from redis.exceptions import RedisError
from rq.exceptions import DuplicateJobError

from intake.signal import Channel, Signal
from intake.store import CaseLink, CasePlan, CaseRow
from routing.cases import new_case_id, new_case_number
from routing.escalation import action_for, checkpoints
from routing.events import routing_key
from routing.protocols import PlannedStep, plan_steps, resolve_state
from routing.router import Route, route
from triage.engine import analysed_text, classify, classify_conversation
from triage.result import TriageResult, severity

from . import context
from .metrics import observe_triage_latency
from .runtime import Runtime

log = logging.getLogger(__name__)

OUTBOX_LOCK = "hotline:outbox:lock"
SLA_JOB = "workers.jobs.sla_check"


def plan_case_link(case: CaseRow, result: TriageResult, r: Route) -> CaseLink:
    """Join `case`; raise it to this result's category/urgency if that is more severe. Pure."""
    if result.severity() > severity(case.category, case.urgency):
        return CaseLink(case.id, case.number, escalate={
            "category": result.category, "urgency": result.urgency, "queue": r.queue,
            "deadline": min(case.deadline, r.deadline), "sla_clock": r.sla_clock,
        })
    return CaseLink(case.id, case.number)


def route_event(signal: Signal, result: TriageResult, r: Route, state: str | None,
                now: datetime) -> tuple[str, dict[str, Any]]:
    """The route event: ids, categories, deadline. No text, no contact identifiers."""
    return routing_key(result.category, result.urgency), {
        "event": "signal.routed",
        "signal_id": signal.id,
        "channel": signal.channel.value,
        "category": result.category,
        "urgency": result.urgency,
        "queue": r.queue,
        "deadline": r.deadline.isoformat(),
        "sla_clock": r.sla_clock,
        "language": result.language,
        "minor_involved": result.indicators.minor_involved,
        "trafficking_type": result.indicators.trafficking_type,
        "state": state,
        "ruleset": result.ruleset,
        "at": now.isoformat(),
    }


def _state(rt: Runtime, signal: Signal, result: TriageResult) -> tuple[str | None, str]:
    text_state = result.indicators.location.state if result.indicators.location else None
    return resolve_state(rt.protocols, text_state, signal.location.state, signal.sender)


def _triage_row(result: TriageResult, state: str | None, state_source: str) -> dict[str, Any]:
    return {
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
            "state": state,
            "state_source": state_source,
        },
        "explanation": result.explanation,
        "ruleset": result.ruleset,
    }


def _step_rows(steps: Sequence[PlannedStep]) -> tuple[dict[str, Any], ...]:
    """Protocol steps as case_steps rows."""
    return tuple({"protocol": s.protocol, "step_id": s.step_id, "agency": s.agency, "action": s.action,
                  "due_at": s.due_at, "consent": s.consent} for s in steps)


def _plan(rt: Runtime, signal: Signal, result: TriageResult, r: Route, state: str | None, deadline: datetime,
          now: datetime) -> CasePlan:
    steps = plan_steps(rt.protocols, result.category, result.indicators.minor_involved,
                       result.indicators.trafficking_type, state, now)
    return CasePlan(
        steps=_step_rows(steps),
        checks=tuple(checkpoints(now, deadline, result.urgency, rt.escalation)),
        event=route_event(signal, result, r, state, now),
    )


def _after_routing(rt: Runtime, case: CaseRow | None, result: TriageResult, opened_or_raised: bool) -> None:
    if case is not None:
        schedule_checks(rt, case.id)
        if result.category == "crisis" and opened_or_raised:
            # A crisis pages on-call at once; the 'ack' check pages again if nobody takes it.
            text = f"Hotline: CRISIS case {case.number} in queue {case.queue}. Open the console now."
            rt.notifier.page(case.id, case.number, "crisis", text, voice=False)
    publish_outbox(rt)


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
    siblings: tuple[str, ...] = ()
    if signal.channel == Channel.SMS:
        # A texter's messages are read as one conversation: the untriaged ones are triaged
        # together, once; a later message re-reads the whole and can only raise the case.
        timeout = timedelta(minutes=rt.settings.sms.conversation_timeout_minutes)
        conversation = rt.store.conversation(signal, timeout) or [stored]
        result = classify_conversation([analysed_text(s.signal.subject, s.signal.text) for s in conversation],
                                       signal.language, rt.ruleset)
        siblings = tuple(s.signal.id for s in conversation if s.status == "accepted" and s.signal.id != signal_id)
        case_ids = [s.case_id for s in conversation if s.case_id]
        if case_ids:
            link_case = rt.store.case_by_id(case_ids[-1])
            if link_case and link_case.status == "closed":
                link_case = None
    else:
        result = classify(signal, rt.ruleset)
    if signal.channel == Channel.EMAIL:
        # A reply joins the case of the message it answers (In-Reply-To, References).
        thread = [signal.raw.get("in_reply_to") or "", *(signal.raw.get("references") or [])]
        thread_case = rt.store.case_for_email_ids([m for m in thread if isinstance(m, str) and m])
        if thread_case:
            link_case = rt.store.case_by_id(thread_case)
    if result.indicators.case_number:
        # A contact quoting a case number joins that case instead of opening a new one.
        quoted = rt.store.case_by_number(result.indicators.case_number)
        if quoted is not None:
            link_case = quoted
    r = route(signal, result, rt.sla_rules, rt.calendar)
    link = plan_case_link(link_case, result, r) if link_case else None
    state, state_source = _state(rt, signal, result)
    deadline = link.escalate["deadline"] if link and link.escalate else r.deadline
    number = rt.store.save_outcome(
        signal_id,
        triage=_triage_row(result, state, state_source),
        route={"queue": r.queue, "deadline": r.deadline, "sla_clock": r.sla_clock},
        new_case_number=new_case_number,
        new_case_id=new_case_id,
        now=now,
        link=link,
        plan=_plan(rt, signal, result, r, state, deadline, now),
        siblings=siblings,
    )
    if number is None:
        log.info("triage: signal %s already triaged (concurrent run)", signal_id)
        return "already"
    log.info("triage: signal %s -> %s/%s queue=%s%s", signal_id, result.category, result.urgency, r.queue,
             " (joined existing case)" if link else "")
    # Shared by all workers through Redis, so any web process's /metrics shows it (workers/metrics.py).
    observe_triage_latency(rt.redis, result.urgency, (datetime.now(UTC) - signal.received_at).total_seconds())
    case = rt.store.case_by_number(number)
    if signal.channel == Channel.SMS and signal.raw.get("media") and rt.settings.sms.fetch_media:
        try:
            rt.queue.enqueue("workers.jobs.media", signal_id, job_id=f"media-{signal_id}", unique=True,
                             job_timeout=rt.policy.timeout, failure_ttl=rt.policy.failure_ttl)
        except (DuplicateJobError, RedisError):
            log.warning("media: fetch for signal %s not enqueued", signal_id)
    if signal.channel == Channel.EMAIL and case is not None:
        if signal.raw.get("message_id"):
            rt.store.email_remember(str(signal.raw["message_id"]), now, signal_id=signal_id, case_id=case.id)
        if link is None:
            from .mailer import send_ack

            send_ack(rt, case, signal)
    _after_routing(rt, case, result, link is None or bool(link.escalate))
    return "linked" if link else "routed"


def retriage_signal(rt: Runtime, signal_id: str, now: datetime | None = None) -> str:
    """Classify a signal again after its text grew (a late voicemail transcript). The case is
    raised if the new result is more severe, never lowered. Returns 'raised', 'same' or 'missing'."""
    now = now or datetime.now(UTC)
    stored = rt.store.load_signal(signal_id)
    if stored is None or stored.case_id is None:
        return "missing"
    case = rt.store.case_by_id(stored.case_id)
    if case is None:
        return "missing"
    result = classify(stored.signal, rt.ruleset)
    r = route(stored.signal, result, rt.sla_rules, rt.calendar)
    link = plan_case_link(case, result, r)
    state, state_source = _state(rt, stored.signal, result)
    deadline = link.escalate["deadline"] if link.escalate else case.deadline
    rt.store.retriage(signal_id, _triage_row(result, state, state_source), link,
                      _plan(rt, stored.signal, result, r, state, deadline, now), now)
    _after_routing(rt, rt.store.case_by_id(case.id), result, bool(link.escalate))
    log.info("retriage: signal %s -> %s/%s%s", signal_id, result.category, result.urgency,
             " (case raised)" if link.escalate else "")
    return "raised" if link.escalate else "same"


def replan_case(rt: Runtime, case_id: str, actor: str, now: datetime | None = None) -> list[str]:
    """After a person re-classified a case: the protocol steps its new category needs (minors ->
    NCMEC/FBI/...), and SLA checks for its new deadline and urgency, written to the database at
    once and scheduled on rq (if Redis is down, the sweeper runs overdue checks from the database).
    Returns the steps added."""
    now = now or datetime.now(UTC)
    case = rt.store.case_by_id(case_id)
    if case is None:
        raise LookupError(f"no case {case_id}")
    minor, ttypes, state = False, set[str](), None
    for row in rt.store.case_triage(case_id):
        minor = minor or bool(row["minor_involved"])
        ttypes.add(row["trafficking_type"])
        state = state or (row["details"] or {}).get("state")
    ttype = next((t for t in ("both", "sex", "labor", "none") if t in ttypes), "unknown")
    steps = plan_steps(rt.protocols, case.category, minor, ttype, state, now)
    plan = CasePlan(
        steps=_step_rows(steps),
        checks=tuple(checkpoints(now, case.deadline, case.urgency, rt.escalation)),
        actor=actor,
    )
    rt.store.replan(case_id, plan, now)
    schedule_checks(rt, case_id)
    return [f"{s.protocol}/{s.step_id}" for s in steps]


def schedule_checks(rt: Runtime, case_id: str) -> int:
    """Ask rq's scheduler to run each pending SLA check when due. The database holds the
    checks; if Redis loses the schedule, the sweeper enqueues overdue checks."""
    scheduled = 0
    for cid, point, due in rt.store.pending_checks(case_id=case_id):
        try:
            rt.queue.enqueue_at(due, SLA_JOB, cid, point, int(due.timestamp()), job_id=sla_job_id(cid, point, due),
                                unique=True, job_timeout=rt.policy.timeout, failure_ttl=rt.policy.failure_ttl)
            scheduled += 1
        except DuplicateJobError:
            pass
        except RedisError as exc:
            log.warning("sla: could not schedule %s check for case %s (%s); the sweeper will run it",
                        point, cid, exc.__class__.__name__)
    return scheduled


def sla_job_id(case_id: str, point: str, due: datetime) -> str:
    return f"sla-{case_id}-{point}-{int(due.timestamp())}"


def run_sla_check(rt: Runtime, case_id: str, point: str, now: datetime | None = None,
                  due_ts: int | None = None) -> str:
    """One SLA checkpoint for one case. Returns what it did. `due_ts` is the due time the job
    was scheduled for: a job for a time the case's check no longer has (re-planned after a
    re-classification moved the deadline) does nothing; the check's new job will run it."""
    now = now or datetime.now(UTC)
    case = rt.store.case_by_id(case_id)
    if case is None:
        return "missing"
    pending = {p: due for _, p, due in rt.store.pending_checks(case_id=case_id)}
    if point not in pending:
        return "done"
    if due_ts is not None and int(pending[point].timestamp()) != due_ts:
        return "stale"
    action = action_for(point, case.status)  # type: ignore[arg-type]
    body = {"event": f"sla.{point}", "case_number": case.number, "category": case.category,
            "urgency": case.urgency, "queue": case.queue, "deadline": case.deadline.isoformat(),
            "at": now.isoformat()}
    if action == "nothing":
        rt.store.finish_check(case_id, point, f"skipped:{case.status}", now)
        return "skipped"
    if action == "page_on_call":
        minutes = rt.escalation.crisis_unacknowledged_minutes
        text = (f"Hotline: case {case.number} ({case.category}) unacknowledged for {minutes:g} min. "
                "Take it in the console now.")
        rt.notifier.page(case_id, case.number, point, text, voice=True)
        rt.notifier.webhook(case_id, point, body)
        rt.store.finish_check(case_id, point, "paged", now, event=("escalation.unacknowledged", body))
        log.warning("sla: case %s unacknowledged; on-call paged", case.number)
        return "paged"
    if action == "warn":
        rt.store.finish_check(case_id, point, "warned", now, event=("sla.warning", body))
        return "warned"
    text = f"Hotline: case {case.number} ({case.category}/{case.urgency}) passed its SLA deadline."
    rt.notifier.page(case_id, case.number, point, text, voice=False)
    rt.notifier.webhook(case_id, point, body)
    rt.store.finish_check(case_id, point, "breached", now, escalate_to_queue=rt.escalation.breach_queue,
                          event=("sla.breach", {**body, "moved_to": rt.escalation.breach_queue}))
    log.warning("sla: case %s breached its deadline; moved to %s", case.number, rt.escalation.breach_queue)
    publish_outbox(rt)
    return "breached"


def publish_outbox(rt: Runtime, max_batches: int = 10) -> int:
    """Publish pending route events; one publisher at a time across all workers."""
    token = secrets.token_hex(8)
    try:
        if not rt.redis.set(OUTBOX_LOCK, token, nx=True, px=10_000):
            return 0
    except RedisError:
        return 0
    total = 0
    try:
        for _ in range(max_batches):
            batch = rt.store.unpublished_events(limit=100)
            if not batch:
                break
            sent = rt.publisher.publish(batch, lambda ids: rt.store.mark_published(ids, datetime.now(UTC)))
            total += sent
            if sent < len(batch):
                rt.store.note_publish_failure([e[0] for e in batch[sent:sent + 1]])
                break
    finally:
        try:
            if rt.redis.get(OUTBOX_LOCK) == token.encode():
                rt.redis.delete(OUTBOX_LOCK)
        except RedisError:
            pass
    return total


def triage_and_route(signal_id: str) -> str:
    """rq entry point: the bound runtime does the work."""
    return process_signal(context.current(), signal_id)


def media(signal_id: str) -> int:
    """rq entry point: fetch an MMS signal's media (only when sms.fetch_media is on)."""
    from .media import fetch_media

    return fetch_media(context.current(), signal_id)


def retriage(signal_id: str) -> str:
    """rq entry point: a signal's text changed."""
    return retriage_signal(context.current(), signal_id)


def sla_check(case_id: str, point: str, due_ts: int | None = None) -> str:
    """rq entry point for a scheduled SLA checkpoint (jobs from before due_ts existed have none)."""
    return run_sla_check(context.current(), case_id, point, due_ts=due_ts)
