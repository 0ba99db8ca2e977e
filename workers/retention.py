"""Retention: `hotline purge` blanks or deletes contact data past its period; a legal hold on a
case (`hotline cases hold`) keeps the purge away from it.

What a purge of a closed case does (each case in one transaction, with a `purged` audit event):

* blanked, rows kept (they feed the statistics, which count contacts by category, channel,
  language, state and month): signals lose sender, sender hash, text, subject, location, raw
  payload and provider id (external_id becomes `purged:<signal id>`); triage_results lose the
  matched spans, extracted details and location, and explanation (category, urgency,
  indicators stay);
  outbound replies and notifications lose recipient, text and provider ids; reclassifications
  and audit events lose their free-text reasons (who, when, what stay);
* deleted (nothing in them is needed once the content is gone): advocates' notes, the call
  records and attachment metadata of its contacts, and the email Message-ID hashes that thread
  replies into it.
The case row, its routes, protocol steps, SLA checks and audit trail stay. A purged contact
stays in the statistics as a count; nothing in the database can tell who it was or what it said.

Never touched: an open or acknowledged case, a case on legal hold, and a case with a contact
newer than the cut-off (a reply that joined it after it was closed). Also purged:

* contacts that never reached a case (triage never finished) past unrouted_signal_days:
  blanked as above and marked `purged` (so the sweeper never triages an empty text);
  abandoned call records that never became a contact are deleted;
* notifications past notification_days (not those of an open or held case), and delivery
  callbacks never matched to a message;
* the console's audit log past audit_days;
* texter rows that hold no state (not opted out, no silence running) untouched that long.
  An opt-out (STOP) is a standing instruction and is kept.

`--dry-run` runs the same counting queries and changes nothing. Safe to run at any time and as
often as wanted (cron, e.g. daily); a second run finds nothing new.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Engine,
    Select,
    and_,
    delete,
    exists,
    func,
    insert,
    literal,
    not_,
    or_,
    select,
    update,
)

from console.models import audit_log, case_notes, reclassifications
from intake.store import (
    Store,
    attachments,
    calls,
    case_events,
    cases,
    delivery_orphans,
    email_ids,
    notifications,
    outbound,
    signals,
    textline_state,
    triage_results,
)

from .settings import RetentionSettings

# Keys of case_events.detail that held free text a person typed, in rows written before
# reasons were encrypted (case_events.reason_enc).
FREE_TEXT_KEYS = ("reason",)

BLANK_SIGNAL: dict[str, Any] = {"sender_hash": None, "sender_enc": None, "location_enc": None, "text_enc": "",
                                "subject_enc": None, "raw_enc": ""}


class HoldError(Exception):
    """A hold/unhold request that cannot be done (unknown case, no reason)."""


@dataclass
class PurgeReport:
    dry_run: bool
    cutoffs: dict[str, datetime]
    cases: int = 0
    counts: dict[str, dict[str, int]] = field(default_factory=dict)  # table -> {blanked|deleted: n}

    def add(self, table: str, what: str, n: int) -> None:
        if n:
            per = self.counts.setdefault(table, {})
            per[what] = per.get(what, 0) + n

    def lines(self) -> list[str]:
        would = "would be " if self.dry_run else ""
        out = [f"closed cases past retention: {self.cases} {would}purged"]
        for table in sorted(self.counts):
            parts = [f"{n} {would}{what}" for what, n in sorted(self.counts[table].items())]
            out.append(f"  {table}: {', '.join(parts)}")
        if not self.counts:
            out.append("  nothing to purge")
        return out


# ---- legal hold -----------------------------------------------------------------------------------


def set_legal_hold(store: Store, number: str, held: bool, reason: str, actor: str, now: datetime) -> str:
    """Put a case on legal hold or release it, with an audit event (the reason encrypted).
    Returns what happened: 'held', 'released', 'already held' or 'not held'."""
    reason, actor = (reason or "").strip(), (actor or "").strip()
    if not reason:
        raise HoldError("--reason: say why (it is kept in the case's audit trail)")
    if not actor:
        raise HoldError("--by: say who (a username)")
    with store.engine.begin() as conn:
        row = conn.execute(select(cases.c.id, cases.c.legal_hold).where(cases.c.number == number)).first()
        if row is None:
            raise HoldError(f"no case {number}")
        if bool(row.legal_hold) == held:
            return "already held" if held else "not held"
        conn.execute(update(cases).where(cases.c.id == row.id).values(legal_hold=held, updated_at=now))
        conn.execute(insert(case_events).values(
            id=uuid.uuid4().hex, case_id=row.id, at=now, actor=actor[:128],
            action="legal_hold" if held else "legal_hold_released", detail={},
            reason_enc=store.cipher.encrypt(reason[:2000])))
    return "held" if held else "released"


def is_held(engine: Engine, number: str) -> bool:
    with engine.connect() as conn:
        return bool(conn.execute(select(cases.c.legal_hold).where(cases.c.number == number)).scalar())


# ---- purge ----------------------------------------------------------------------------------------


def _keyset(engine: Engine, query: Select[Any], key: Any, size: int) -> Iterator[list[str]]:
    """Ids from `query` in `key` order, `size` at a time; stable whether or not the caller
    changes the rows (so a dry run, which changes nothing, still ends)."""
    last: str | None = None
    while True:
        q = query.order_by(key).limit(size)
        if last is not None:
            q = q.where(key > last)
        with engine.connect() as conn:
            ids = [r[0] for r in conn.execute(q)]
        if not ids:
            return
        yield ids
        last = ids[-1]


class Purger:
    def __init__(self, engine: Engine, retention: RetentionSettings, now: datetime, dry_run: bool,
                 batch: int = 200) -> None:
        self.engine = engine
        self.now = now
        self.dry_run = dry_run
        self.batch = batch
        self.cut = {
            "closed_case": now - timedelta(days=retention.closed_case_days),
            "unrouted_signal": now - timedelta(days=retention.unrouted_signal_days),
            "notification": now - timedelta(days=retention.notification_days),
            "audit": now - timedelta(days=retention.audit_days),
        }
        self.report = PurgeReport(dry_run, dict(self.cut))

    # one step: count (dry run) or do (real run), the same WHERE either way
    def _update(self, conn: Any, table: Any, where: ColumnElement[bool], values: dict[str, Any]) -> None:
        if self.dry_run:
            n = conn.execute(select(func.count()).select_from(table).where(where)).scalar_one()
        else:
            n = conn.execute(update(table).where(where).values(**values)).rowcount
        self.report.add(table.name, "blanked", n)

    def _delete(self, conn: Any, table: Any, where: ColumnElement[bool]) -> None:
        if self.dry_run:
            n = conn.execute(select(func.count()).select_from(table).where(where)).scalar_one()
        else:
            n = conn.execute(delete(table).where(where)).rowcount
        self.report.add(table.name, "deleted", n)

    def _signals(self, conn: Any, signal_ids: list[str], status: str | None = None) -> None:
        """Blank contacts and what hangs off them."""
        in_ids = signals.c.id.in_(signal_ids)
        values = {**BLANK_SIGNAL, "external_id": literal("purged:") + signals.c.id}
        if status:
            values["status"] = status
        self._update(conn, signals, in_ids, values)
        self._update(conn, triage_results, triage_results.c.signal_id.in_(signal_ids),
                     {"spans": [], "details": {}, "explanation": "", "location_enc": None})
        self._delete(conn, calls, calls.c.signal_id.in_(signal_ids))
        self._delete(conn, attachments, attachments.c.signal_id.in_(signal_ids))

    def _cases(self, conn: Any, case_ids: list[str]) -> None:
        sig_ids = [r[0] for r in conn.execute(select(signals.c.id).where(signals.c.case_id.in_(case_ids)))]
        if sig_ids:
            self._signals(conn, sig_ids)
        self._delete(conn, email_ids, or_(email_ids.c.case_id.in_(case_ids), email_ids.c.signal_id.in_(sig_ids)))
        self._delete(conn, case_notes, case_notes.c.case_id.in_(case_ids))
        self._update(conn, outbound, outbound.c.case_id.in_(case_ids),
                     {"to_enc": "", "body_enc": "", "provider_sid": None})
        self._update(conn, notifications, notifications.c.case_id.in_(case_ids),
                     {"target_enc": None, "body_enc": None, "provider_id": None})
        self._update(conn, reclassifications, reclassifications.c.case_id.in_(case_ids),
                     {"reason": "", "reason_enc": None})
        events = conn.execute(select(case_events.c.id, case_events.c.detail, case_events.c.reason_enc)
                              .where(case_events.c.case_id.in_(case_ids))).all()
        typed = [e for e in events if e.reason_enc
                 or (isinstance(e.detail, dict) and any(e.detail.get(k) for k in FREE_TEXT_KEYS))]
        for e in typed:
            if not self.dry_run:
                detail = e.detail if isinstance(e.detail, dict) else {}
                conn.execute(update(case_events).where(case_events.c.id == e.id).values(
                    detail={k: ("" if k in FREE_TEXT_KEYS else v) for k, v in detail.items()}, reason_enc=None))
        self.report.add("case_events", "blanked", len(typed))
        self.report.cases += len(case_ids)
        if not self.dry_run:
            conn.execute(update(cases).where(cases.c.id.in_(case_ids)).values(purged_at=self.now))
            for cid in case_ids:
                conn.execute(insert(case_events).values(id=uuid.uuid4().hex, case_id=cid, at=self.now,
                                                        actor="retention", action="purged", detail={}))

    def purgeable_cases(self) -> Select[Any]:
        cut = self.cut["closed_case"]
        recent = exists().where(signals.c.case_id == cases.c.id, signals.c.accepted_at >= cut)
        return select(cases.c.id).where(
            cases.c.status == "closed",
            cases.c.legal_hold.is_(False),
            cases.c.purged_at.is_(None),
            func.coalesce(cases.c.closed_at, cases.c.updated_at, cases.c.opened_at) < cut,
            not_(recent),
        )

    def run(self) -> PurgeReport:
        for ids in _keyset(self.engine, self.purgeable_cases(), cases.c.id, self.batch):
            with self.engine.begin() as conn:
                self._cases(conn, ids)
        unrouted = select(signals.c.id).where(signals.c.case_id.is_(None),
                                              signals.c.accepted_at < self.cut["unrouted_signal"],
                                              signals.c.status != "purged")
        for ids in _keyset(self.engine, unrouted, signals.c.id, self.batch):
            with self.engine.begin() as conn:
                self._signals(conn, ids, status="purged")
                self._delete(conn, email_ids, email_ids.c.signal_id.in_(ids))
        with self.engine.begin() as conn:
            self._delete(conn, calls, and_(calls.c.signal_id.is_(None),
                                           calls.c.updated_at < self.cut["unrouted_signal"]))
            protected = select(cases.c.id).where(or_(cases.c.status != "closed", cases.c.legal_hold.is_(True)))
            self._delete(conn, notifications, and_(
                notifications.c.created_at < self.cut["notification"],
                or_(notifications.c.case_id.is_(None), notifications.c.case_id.not_in(protected))))
            self._delete(conn, delivery_orphans, delivery_orphans.c.received_at < self.cut["notification"])
            self._delete(conn, audit_log, audit_log.c.at < self.cut["audit"])
            self._delete(conn, textline_state, and_(
                textline_state.c.opted_out.is_(False),
                or_(textline_state.c.silenced_until.is_(None), textline_state.c.silenced_until < self.now),
                textline_state.c.updated_at < self.cut["unrouted_signal"]))
        return self.report


def purge(engine: Engine, retention: RetentionSettings, now: datetime, dry_run: bool = False,
          batch: int = 200) -> PurgeReport:
    return Purger(engine, retention, now, dry_run, batch).run()
