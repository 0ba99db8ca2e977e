"""What the console reads and changes about cases. Decisions are pure functions (time_state,
check_reclassification); the rest is database I/O through the intake store's tables.

Every change to a case writes a row in case_events (who, when, what, why) in the same
transaction, and so does every view of contact details."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update

from intake.store import (
    CaseRow,
    Store,
    attachments,
    case_events,
    case_steps,
    cases,
    routes,
    signals,
    triage_results,
)
from routing.sla import BusinessCalendar, SlaRule, deadline_for, find_rule
from triage.result import CATEGORIES, URGENCIES

from .models import audit_log, case_assignments, case_notes, reclassifications

OPEN_STATUSES = ("open", "acknowledged")
MAX_REASON = 1000
MAX_NOTE = 10_000


class CaseActionError(ValueError):
    """A case action that cannot be done as asked; the message says why."""


def time_state(opened_at: datetime, deadline: datetime, now: datetime, amber_fraction: float) -> tuple[str, int]:
    """('ok'|'amber'|'red', seconds left): amber when less than `amber_fraction` of the SLA
    window remains, red once the deadline has passed."""
    left = int((deadline - now).total_seconds())
    if left < 0:
        return "red", left
    window = max((deadline - opened_at).total_seconds(), 1.0)
    return ("amber" if left < window * amber_fraction else "ok"), left


def format_left(seconds: int) -> str:
    sign = "-" if seconds < 0 else ""
    s = abs(seconds)
    d, rem = divmod(s, 86400)
    h, rem = divmod(rem, 3600)
    m = rem // 60
    if d:
        return f"{sign}{d}d {h}h"
    if h:
        return f"{sign}{h}h {m:02d}m"
    return f"{sign}{m}m"


def check_reclassification(category: str, urgency: str, reason: str) -> tuple[str, str, str]:
    category, urgency, reason = (category or "").strip(), (urgency or "").strip(), (reason or "").strip()
    if category not in CATEGORIES:
        raise CaseActionError(f"category: choose one of {', '.join(CATEGORIES)}")
    if urgency not in URGENCIES:
        raise CaseActionError(f"urgency: choose one of {', '.join(URGENCIES)}")
    if not reason:
        raise CaseActionError("reason: say why the category or urgency changes (required)")
    if len(reason) > MAX_REASON:
        raise CaseActionError(f"reason: at most {MAX_REASON} characters ({len(reason)} given)")
    return category, urgency, reason


@dataclass(frozen=True)
class Routing:
    """The SLA table and calendar, to re-route a case whose category a person changed."""

    rules: Sequence[SlaRule]
    calendar: BusinessCalendar


class Casework:
    def __init__(self, store: Store, routing: Routing, new_case_number: Callable[[], str]) -> None:
        self.store = store
        self.engine = store.engine
        self.cipher = store.cipher
        self.routing = routing
        self.new_case_number = new_case_number

    # ---- reading ----------------------------------------------------------------------------

    def queue(self, queue: str | None, now: datetime, amber_fraction: float, limit: int = 500
              ) -> list[dict[str, Any]]:
        """Open and acknowledged cases, most pressing deadline first. No message text, no contact data."""
        q = select(cases).where(cases.c.status.in_(OPEN_STATUSES)).order_by(cases.c.deadline, cases.c.number)
        if queue:
            q = q.where(cases.c.queue == queue)
        with self.engine.connect() as conn:
            rows = conn.execute(q.limit(limit)).all()
            ids = [r.id for r in rows]
            sigs = conn.execute(
                select(signals.c.case_id, signals.c.channel, signals.c.language, signals.c.received_at,
                       triage_results.c.minor_involved, triage_results.c.imminent_danger)
                .select_from(signals.outerjoin(triage_results, triage_results.c.signal_id == signals.c.id))
                .where(signals.c.case_id.in_(ids)).order_by(signals.c.received_at)
            ).all() if ids else []
            assigned = {r.case_id: r.assignee for r in conn.execute(
                select(case_assignments).where(case_assignments.c.case_id.in_(ids)))} if ids else {}
        per: dict[str, list[Any]] = {}
        for s in sigs:
            per.setdefault(s.case_id, []).append(s)
        out = []
        for r in rows:
            ss = per.get(r.id, [])
            state, left = time_state(r.opened_at, r.deadline, now, amber_fraction)
            out.append({
                "number": r.number, "status": r.status, "category": r.category, "urgency": r.urgency,
                "queue": r.queue, "deadline": r.deadline.isoformat(), "opened_at": r.opened_at.isoformat(),
                "time_state": state, "seconds_left": left, "time_left": format_left(left),
                "channels": sorted({s.channel for s in ss}), "languages": sorted({s.language for s in ss}),
                "signals": len(ss), "minor": any(bool(s.minor_involved) for s in ss),
                "danger": any(bool(s.imminent_danger) for s in ss),
                "assignee": assigned.get(r.id),
                "last_contact": ss[-1].received_at.isoformat() if ss else None,
            })
        return out

    def queue_counts(self, now: datetime) -> dict[str, dict[str, int]]:
        """Per queue: open, acknowledged, breached (past deadline and not acknowledged)."""
        out: dict[str, dict[str, int]] = {}
        with self.engine.connect() as conn:
            for r in conn.execute(select(cases.c.queue, cases.c.status, cases.c.deadline)
                                  .where(cases.c.status.in_(OPEN_STATUSES))):
                c = out.setdefault(r.queue, {"open": 0, "acknowledged": 0, "breached": 0})
                c[r.status] += 1
                if r.status == "open" and r.deadline < now:
                    c["breached"] += 1
        return out

    def unacknowledged_crises(self, now: datetime) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(cases).where(cases.c.status == "open", cases.c.category == "crisis")
                                .order_by(cases.c.opened_at)).all()
        return [{"number": r.number, "queue": r.queue, "opened_at": r.opened_at.isoformat(),
                 "minutes_waiting": int((now - r.opened_at).total_seconds() // 60)} for r in rows]

    def breaches(self, now: datetime, limit: int = 200) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(cases).where(cases.c.status == "open", cases.c.deadline < now)
                                .order_by(cases.c.deadline).limit(limit)).all()
        return [{"number": r.number, "queue": r.queue, "category": r.category, "urgency": r.urgency,
                 "overdue": format_left(int((r.deadline - now).total_seconds()))} for r in rows]

    def audit_entries(self, limit: int = 300) -> list[dict[str, Any]]:
        """The newest `limit` things people did: console actions (logins, exports, retries, user
        changes) and case actions (every event not written by the system), newest first."""
        with self.engine.connect() as conn:
            console_rows = conn.execute(select(audit_log).order_by(audit_log.c.at.desc()).limit(limit)).all()
            case_rows = conn.execute(
                select(case_events.c.at, case_events.c.actor, case_events.c.action, case_events.c.detail,
                       case_events.c.reason_enc, cases.c.number)
                .select_from(case_events.join(cases, cases.c.id == case_events.c.case_id))
                .where(case_events.c.actor != "system")
                .order_by(case_events.c.at.desc()).limit(limit)).all()
        entries = [{"at": r.at, "actor": r.actor, "action": r.action, "case": None, "detail": r.detail}
                   for r in console_rows]
        entries += [{"at": r.at, "actor": r.actor, "action": r.action, "case": r.number,
                     "detail": self.store.event_detail(r)} for r in case_rows]
        entries.sort(key=lambda e: e["at"], reverse=True)
        return entries[:limit]

    def case(self, number: str) -> CaseRow:
        row = self.store.case_by_number(number)
        if row is None:
            raise LookupError(f"no case {number}")
        return row

    def _triage_location(self, t: Any) -> Any:
        """The place triage found in the text: encrypted (location_enc), or in details on rows
        written before it was (until `hotline keys rotate` moves it)."""
        if t.location_enc:
            return self.cipher.decrypt_json(t.location_enc)
        return (t.details or {}).get("location") if isinstance(t.details, dict) else None

    def detail(self, number: str, now: datetime, amber_fraction: float) -> dict[str, Any]:
        """Everything an advocate needs on one page, contact details excepted (see contact())."""
        case = self.case(number)
        stored = self.store.case_signals(case.id)
        ids = [s.signal.id for s in stored]
        with self.engine.connect() as conn:
            results = {r.signal_id: r for r in conn.execute(
                select(triage_results).where(triage_results.c.signal_id.in_(ids)))} if ids else {}
            att = {}
            if ids:
                for a in conn.execute(select(attachments).where(attachments.c.signal_id.in_(ids))):
                    att.setdefault(a.signal_id, []).append({"content_type": a.content_type, "size": a.size,
                                                            "status": a.status})
            notes = conn.execute(select(case_notes).where(case_notes.c.case_id == case.id)
                                 .order_by(case_notes.c.at)).all()
            assignment = conn.execute(select(case_assignments)
                                      .where(case_assignments.c.case_id == case.id)).first()
            recl = conn.execute(select(reclassifications).where(reclassifications.c.case_id == case.id)
                                .order_by(reclassifications.c.at)).all()
        timeline = []
        for st in stored:
            s = st.signal
            t = results.get(s.id)
            timeline.append({
                "id": s.id, "channel": s.channel.value, "received_at": s.received_at.isoformat(),
                "language": s.language, "subject": s.subject, "text": s.text, "flags": list(s.flags),
                "status": st.status, "attachments": att.get(s.id, []),
                "triage": None if t is None else {
                    "category": t.category, "urgency": t.urgency, "matched": list(t.matched or []),
                    "spans": _span_texts(s.subject, s.text, t.spans or []),
                    "explanation": t.explanation, "ruleset": t.ruleset,
                    "minor_involved": t.minor_involved, "trafficking_type": t.trafficking_type,
                    "imminent_danger": t.imminent_danger,
                    "location": self._triage_location(t),
                },
            })
        state, left = time_state(case.opened_at, case.deadline, now, amber_fraction)
        needs = _needs(timeline)
        return {
            "number": case.number, "status": case.status, "category": case.category, "urgency": case.urgency,
            "queue": case.queue, "deadline": case.deadline.isoformat(), "opened_at": case.opened_at.isoformat(),
            "sla_clock": case.sla_clock, "time_state": state, "time_left": format_left(left),
            "assignee": assignment.assignee if assignment else None,
            "timeline": timeline,
            "steps": self.store.case_steps(case.id),
            "audit": self.store.case_audit(case.id),
            "notes": [{"at": n.at.isoformat(), "author": n.author, "body": self.cipher.decrypt(n.body_enc)}
                      for n in notes],
            "outbound": [{k: v for k, v in o.items() if k != "to"} for o in self.store.outbound_for(case.id)],
            "reclassifications": [{"at": r.at.isoformat(), "actor": r.actor,
                                   "from": f"{r.old_category}/{r.old_urgency}",
                                   "to": f"{r.new_category}/{r.new_urgency}",
                                   "reason": self.cipher.decrypt(r.reason_enc) if r.reason_enc else r.reason}
                                  for r in recl],
            "referral_prefill": _prefill(stored, timeline, needs),
            "reply_channels": sorted({t["channel"] for t in timeline} & {"sms", "email"}),
        }

    def contact(self, number: str, actor: str, now: datetime) -> list[dict[str, Any]]:
        """Contact details of a case's signals. Every call is written to the case's audit log."""
        case = self.case(number)
        stored = self.store.case_signals(case.id)
        with self.engine.begin() as conn:
            conn.execute(insert(case_events).values(id=uuid.uuid4().hex, case_id=case.id, at=now, actor=actor,
                                                    action="viewed_contact", detail={"signals": len(stored)}))
        return [{"channel": s.signal.channel.value, "received_at": s.signal.received_at.isoformat(),
                 "sender": s.signal.sender, "location": s.signal.location.model_dump(exclude_none=True)}
                for s in stored]

    # ---- changing -----------------------------------------------------------------------------

    def _event(self, conn: Any, case_id: str, now: datetime, actor: str, action: str, reason: str | None = None,
               **detail: Any) -> None:
        """Audit a case action; a typed reason is stored encrypted (it may hold what a contact said)."""
        conn.execute(insert(case_events).values(id=uuid.uuid4().hex, case_id=case_id, at=now, actor=actor,
                                                action=action, detail=detail,
                                                reason_enc=self.cipher.encrypt(reason) if reason else None))

    def set_status(self, number: str, status: str, actor: str, reason: str | None, now: datetime) -> CaseRow:
        allowed = {"acknowledged": ("open",), "closed": ("open", "acknowledged"), "open": ("closed",)}[status]
        if status == "closed" and not (reason or "").strip():
            raise CaseActionError("reason: say why the case is closed (required)")
        if status == "open" and not (reason or "").strip():
            raise CaseActionError("reason: say why the case is reopened (required)")
        try:
            return self.store.set_case_status(number, status, actor, (reason or "").strip()[:MAX_REASON] or None,
                                              now, allowed)
        except ValueError as exc:
            raise CaseActionError(str(exc)) from exc

    def assign(self, number: str, assignee: str, actor: str, now: datetime) -> None:
        case = self.case(number)
        with self.engine.begin() as conn:
            had = conn.execute(select(case_assignments).where(case_assignments.c.case_id == case.id)).first()
            if had:
                conn.execute(update(case_assignments).where(case_assignments.c.case_id == case.id)
                             .values(assignee=assignee, assigned_at=now, assigned_by=actor))
            else:
                conn.execute(insert(case_assignments).values(case_id=case.id, assignee=assignee, assigned_at=now,
                                                             assigned_by=actor))
            self._event(conn, case.id, now, actor, "assigned", to=assignee,
                        previous=had.assignee if had else None)

    def add_note(self, number: str, body: str, actor: str, now: datetime) -> None:
        body = (body or "").strip()
        if not body:
            raise CaseActionError("note: empty")
        if len(body) > MAX_NOTE:
            raise CaseActionError(f"note: at most {MAX_NOTE} characters ({len(body)} given)")
        case = self.case(number)
        nid = uuid.uuid4().hex
        with self.engine.begin() as conn:
            conn.execute(insert(case_notes).values(id=nid, case_id=case.id, at=now, author=actor,
                                                   body_enc=self.cipher.encrypt(body)))
            self._event(conn, case.id, now, actor, "note", note_id=nid)

    def complete_step(self, number: str, protocol: str, step_id: str, actor: str, now: datetime) -> None:
        case = self.case(number)
        with self.engine.begin() as conn:
            res = conn.execute(update(case_steps).where(
                case_steps.c.case_id == case.id, case_steps.c.protocol == protocol,
                case_steps.c.step_id == step_id, case_steps.c.done_at.is_(None)).values(done_at=now, done_by=actor))
            if res.rowcount != 1:
                raise CaseActionError(f"step {protocol}/{step_id}: not an open step of case {number}")
            self._event(conn, case.id, now, actor, "step_done", protocol=protocol, step_id=step_id)

    def reclassify(self, number: str, category: str, urgency: str, reason: str, actor: str,
                   now: datetime) -> CaseRow:
        """A person's category/urgency for the case: re-routed to the matching queue and deadline,
        recorded with who and why, and kept as the label triage quality is measured against."""
        category, urgency, reason = check_reclassification(category, urgency, reason)
        case = self.case(number)
        if (category, urgency) == (case.category, case.urgency):
            raise CaseActionError(f"case {number} is already {category}/{urgency}")
        with self.engine.begin() as conn:
            first = conn.execute(select(signals.c.channel, signals.c.received_at)
                                 .where(signals.c.case_id == case.id)
                                 .order_by(signals.c.received_at).limit(1)).first()
            earlier = conn.execute(select(reclassifications.c.machine_category, reclassifications.c.machine_urgency)
                                   .where(reclassifications.c.case_id == case.id)
                                   .order_by(reclassifications.c.at).limit(1)).first()
            machine = (earlier.machine_category, earlier.machine_urgency) if earlier else (case.category, case.urgency)
            channel = first.channel if first else "sms"
            rule = find_rule(self.routing.rules, category, urgency, channel)
            deadline, clock = deadline_for(rule, first.received_at if first else now, self.routing.calendar)
            conn.execute(update(cases).where(cases.c.id == case.id).values(
                category=category, urgency=urgency, queue=rule.queue, deadline=deadline, sla_clock=clock,
                updated_at=now))
            conn.execute(insert(reclassifications).values(
                id=uuid.uuid4().hex, case_id=case.id, at=now, actor=actor,
                machine_category=machine[0], machine_urgency=machine[1],
                old_category=case.category, old_urgency=case.urgency,
                new_category=category, new_urgency=urgency, reason="", reason_enc=self.cipher.encrypt(reason)))
            self._event(conn, case.id, now, actor, "reclassified", reason=reason,
                        **{"from": f"{case.category}/{case.urgency}", "to": f"{category}/{urgency}",
                           "queue": rule.queue})
        return self.case(number)

    def move_signal(self, number: str, signal_id: str, target: str | None, actor: str, now: datetime,
                    reason: str) -> str:
        """Link a signal of case `number` to case `target`, or (target None) unlink it into a new
        case of its own. Returns the number of the case the signal is now in."""
        reason = (reason or "").strip()
        if not reason:
            raise CaseActionError("reason: say why the contact moves (required)")
        case = self.case(number)
        with self.engine.begin() as conn:
            sig = conn.execute(select(signals.c.id, signals.c.received_at).where(
                signals.c.id == signal_id, signals.c.case_id == case.id)).first()
            if sig is None:
                raise CaseActionError(f"contact {signal_id}: not part of case {number}")
            count = conn.execute(select(signals.c.id).where(signals.c.case_id == case.id)).all()
            if target is None:
                if len(count) < 2:
                    raise CaseActionError(f"case {number} has only this contact; nothing to unlink it from")
                dest_id, dest_number = uuid.uuid4().hex, ""
                for _ in range(10):
                    dest_number = self.new_case_number()
                    if conn.execute(select(cases.c.id).where(cases.c.number == dest_number)).first() is None:
                        break
                conn.execute(insert(cases).values(
                    id=dest_id, number=dest_number, opened_at=now, status="open", category=case.category,
                    urgency=case.urgency, queue=case.queue, deadline=case.deadline, sla_clock=case.sla_clock,
                    updated_at=now))
                self._event(conn, dest_id, now, actor, "opened", signal_id=signal_id, split_from=number,
                            reason=reason)
            else:
                dest = conn.execute(select(cases).where(cases.c.number == target)).first()
                if dest is None:
                    raise CaseActionError(f"case {target}: no such case")
                if dest.id == case.id:
                    raise CaseActionError("the contact is already in that case")
                dest_id, dest_number = dest.id, dest.number
                self._event(conn, dest_id, now, actor, "linked", signal_id=signal_id, from_case=number,
                            reason=reason)
            conn.execute(update(signals).where(signals.c.id == signal_id).values(case_id=dest_id))
            conn.execute(update(routes).where(routes.c.signal_id == signal_id).values(case_id=dest_id))
            self._event(conn, case.id, now, actor, "unlinked", signal_id=signal_id, to_case=dest_number,
                        reason=reason)
        return dest_number


def _span_texts(subject: str | None, text: str, spans: list[Any]) -> list[dict[str, str]]:
    """The words each rule fired on (offsets are into subject + newline + text)."""
    analysed = f"{subject}\n{text}" if subject else text
    out = []
    for sp in spans[:50]:
        try:
            rule, start, end = sp["rule"], int(sp["start"]), int(sp["end"])
        except (KeyError, TypeError, ValueError):
            continue
        if 0 <= start < end <= len(analysed):
            out.append({"rule": str(rule), "text": analysed[start:end][:200]})
    return out


# Words in a case's messages that suggest which services to search the directory for.
NEED_WORDS = {
    "shelter": "shelter_emergency", "place to stay": "shelter_emergency", "refugio": "shelter_emergency",
    "lawyer": "legal", "legal": "legal", "abogado": "legal", "visa": "legal_immigration",
    "immigration": "legal_immigration", "inmigración": "legal_immigration", "counsel": "mental_health",
    "therapy": "mental_health", "doctor": "medical", "medical": "medical", "médico": "medical",
    "interpreter": "interpretation", "job training": "job_training",
}


def _prefill(stored: list[Any], timeline: list[dict[str, Any]], needs: list[str]) -> dict[str, Any]:
    """Referral search fields from what the case says: place (ZIP, else city), needs, language,
    minors, trafficking type."""
    zip_, city = "", ""
    for st, t in zip(stored, timeline, strict=True):
        loc = dict(st.signal.location.model_dump(exclude_none=True))
        hint = (t["triage"] or {}).get("location") or {}
        if isinstance(hint, dict):
            loc = {**hint, **{k: v for k, v in loc.items() if v}}
        zip_ = zip_ or str(loc.get("zip") or "")
        if not city and loc.get("city"):
            city = f"{loc['city']}, {loc['state']}" if loc.get("state") else str(loc["city"])
    types = {(t["triage"] or {}).get("trafficking_type") for t in timeline}
    ttype = next((x for x in ("both", "sex", "labor") if x in types), "")
    return {"zip": zip_, "city": "" if zip_ else city, "services": needs,
            "language": timeline[-1]["language"] if timeline and timeline[-1]["language"] != "und" else "",
            "age_group": "minors" if any((t["triage"] or {}).get("minor_involved") for t in timeline) else "",
            "trafficking_type": ttype}


def _needs(timeline: list[dict[str, Any]]) -> list[str]:
    words = " ".join((t["text"] or "").lower() for t in timeline)
    return sorted({need for w, need in NEED_WORDS.items() if w in words})
