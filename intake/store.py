"""SQLAlchemy tables and the few queries the app needs.

Message text, contact identifiers, location details and raw payloads are stored encrypted
(FieldCipher); the sender is linked across messages by a keyed hash, never the raw number.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Engine,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    false,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.types import TypeDecorator

from .crypto import FieldCipher
from .signal import Channel, Location, Signal


class UTCDateTime(TypeDecorator):
    """Timezone-aware in Python, UTC in the database (SQLite keeps no offsets)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; use timezone-aware UTC")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# Named constraints, so that a migration can drop or alter one by name on every database
# (PostgreSQL and SQLite would otherwise each invent their own names, or none).
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
metadata = MetaData(naming_convention=NAMING_CONVENTION)

signals = Table(
    "signals",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("channel", String(16), nullable=False),
    Column("external_id", String(255), nullable=False),
    Column("received_at", UTCDateTime(), nullable=False),
    Column("accepted_at", UTCDateTime(), nullable=False),
    Column("sender_hash", String(64), index=True),
    Column("sender_enc", Text),
    Column("sender_region", String(8)),
    Column("state", String(8)),
    Column("location_enc", Text),
    Column("text_enc", Text, nullable=False),
    Column("subject_enc", Text),
    Column("language", String(16), nullable=False),
    Column("language_confidence", Float, nullable=False),
    Column("raw_enc", Text, nullable=False),
    Column("flags", JSON, nullable=False, default=list),
    Column("status", String(16), nullable=False, default="accepted"),
    Column("triaged_at", UTCDateTime()),
    Column("case_id", String(32), ForeignKey("cases.id")),
    UniqueConstraint("channel", "external_id", name="uq_signals_channel_external_id"),
    Index("ix_signals_status_accepted", "status", "accepted_at"),
)

cases = Table(
    "cases",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("number", String(24), nullable=False, unique=True),
    Column("opened_at", UTCDateTime(), nullable=False),
    Column("status", String(16), nullable=False, default="open"),
    Column("category", String(16), nullable=False),
    Column("urgency", String(16), nullable=False),
    Column("queue", String(64), nullable=False),
    Column("deadline", UTCDateTime(), nullable=False),
    Column("sla_clock", String(16), nullable=False),
    Column("updated_at", UTCDateTime()),
    # Retention (workers/retention.py): when the case was last closed, whether a legal hold
    # keeps it from the purge (`hotline cases hold`), and when its contact data was blanked.
    Column("closed_at", UTCDateTime()),
    Column("legal_hold", Boolean, nullable=False, default=False, server_default=false()),
    Column("purged_at", UTCDateTime()),
)

triage_results = Table(
    "triage_results",
    metadata,
    Column("signal_id", String(32), ForeignKey("signals.id"), primary_key=True),
    Column("category", String(16), nullable=False),
    Column("urgency", String(16), nullable=False),
    Column("language", String(16), nullable=False),
    Column("minor_involved", Boolean, nullable=False),
    Column("trafficking_type", String(16), nullable=False),
    Column("imminent_danger", Boolean, nullable=False, default=False),
    Column("matched", JSON, nullable=False),
    Column("spans", JSON, nullable=False, default=list),
    Column("details", JSON, nullable=False, default=dict),
    Column("explanation", Text, nullable=False),
    Column("ruleset", String(128), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    # The place the message names (triage's location indicator), encrypted: it is the contact's
    # words. `details` holds no location (Store._triage_values moves it here).
    Column("location_enc", Text),
)

routes = Table(
    "routes",
    metadata,
    Column("signal_id", String(32), ForeignKey("signals.id"), primary_key=True),
    Column("case_id", String(32), ForeignKey("cases.id"), nullable=False),
    Column("queue", String(64), nullable=False),
    Column("deadline", UTCDateTime(), nullable=False),
    Column("sla_clock", String(16), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
)

case_steps = Table(
    "case_steps",
    metadata,
    Column("case_id", String(32), ForeignKey("cases.id"), primary_key=True),
    Column("protocol", String(32), primary_key=True),
    Column("step_id", String(64), primary_key=True),
    Column("agency", Text, nullable=False),
    Column("action", Text, nullable=False),
    Column("due_at", UTCDateTime(), nullable=False),
    Column("consent", Boolean, nullable=False, default=False),
    Column("done_at", UTCDateTime()),
    Column("done_by", String(128)),
)

# Audit trail of everything that happens to a case: who, when, what, why.
case_events = Table(
    "case_events",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("case_id", String(32), ForeignKey("cases.id"), nullable=False, index=True),
    Column("at", UTCDateTime(), nullable=False),
    Column("actor", String(128), nullable=False),
    Column("action", String(32), nullable=False),
    Column("detail", JSON, nullable=False, default=dict),
    # A reason a person typed (close, reopen, reclassify, move, legal hold), encrypted: it may
    # hold what a contact said. Older rows have it in detail["reason"] until `hotline keys rotate`.
    Column("reason_enc", Text, nullable=True),
)

# Transactional outbox: route events are written in the same transaction as the route and
# published to the broker afterwards, so a broker outage delays events but never loses one.
outbox = Table(
    "outbox",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("routing_key", String(64), nullable=False),
    Column("body", JSON, nullable=False),
    Column("published_at", UTCDateTime()),
    Column("attempts", Integer, nullable=False, default=0),
    Index("ix_outbox_unpublished", "published_at", "created_at"),
)

# SLA checkpoints per case; the database is the record, rq's scheduler the alarm clock.
sla_checks = Table(
    "sla_checks",
    metadata,
    Column("case_id", String(32), ForeignKey("cases.id"), primary_key=True),
    Column("point", String(16), primary_key=True),
    Column("due_at", UTCDateTime(), nullable=False),
    Column("done_at", UTCDateTime()),
    Column("outcome", String(32)),
    Index("ix_sla_checks_due", "done_at", "due_at"),
)

# Every outbound notification (page, webhook): sent, or recorded when no credentials exist.
notifications = Table(
    "notifications",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("case_id", String(32), ForeignKey("cases.id")),
    Column("kind", String(16), nullable=False),
    Column("target_enc", Text),
    Column("body_enc", Text),
    Column("status", String(16), nullable=False),
    Column("dedupe_key", String(128), unique=True),
    Column("provider_id", String(64)),
    Column("error", Text),
)

# One row per phone call while it happens: callbacks arrive in any order and more than once;
# each fills in what it knows. When the call is over (and its transcript is in, or waited for
# long enough) the row becomes one voice Signal.
calls = Table(
    "calls",
    metadata,
    Column("call_sid", String(64), primary_key=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Column("from_enc", Text),
    Column("location_enc", Text),
    Column("lang", String(8)),
    Column("digits", String(64), nullable=False, default=""),
    Column("choice", String(16)),
    Column("queue_result", String(32)),
    Column("voicemail_offered", Boolean, nullable=False, default=False),
    Column("recording_sid", String(64)),
    Column("recording_url_enc", Text),
    Column("recording_duration", Integer),
    Column("transcript_enc", Text),
    Column("transcription_status", String(16)),
    Column("call_status", String(16)),
    Column("finalised_at", UTCDateTime()),
    Column("signal_id", String(32)),
    Index("ix_calls_open", "finalised_at", "updated_at"),
)

# Per texter (keyed identity hash, never the number): opted out by STOP, or quiet after the
# safe word until the conversation ends.
textline_state = Table(
    "textline_state",
    metadata,
    Column("sender_hash", String(64), primary_key=True),
    Column("opted_out", Boolean, nullable=False, default=False),
    Column("silenced_until", UTCDateTime()),
    Column("updated_at", UTCDateTime(), nullable=False),
    # "kind:address", encrypted: lets `hotline keys rotate` re-hash the row under a new key
    # (an opt-out must survive key rotation and the purge of the texter's messages).
    Column("identity_enc", Text),
)

# Messages the hotline sends (advocates' replies): recorded before they are sent, updated by
# Twilio's delivery status callbacks.
outbound = Table(
    "outbound",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Column("case_id", String(32), ForeignKey("cases.id")),
    Column("channel", String(16), nullable=False),
    Column("to_enc", Text, nullable=False),
    Column("body_enc", Text, nullable=False),
    Column("author", String(128), nullable=False),
    Column("status", String(16), nullable=False),
    Column("provider_sid", String(64), unique=True),
    Column("error_code", String(64)),
    Column("flagged", Boolean, nullable=False, default=False),
)

# Delivery callbacks for a MessageSid we do not know (yet): kept, never dropped.
delivery_orphans = Table(
    "delivery_orphans",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("received_at", UTCDateTime(), nullable=False),
    Column("provider_sid", String(64), nullable=False, index=True),
    Column("status", String(16), nullable=False),
    Column("error_code", String(64)),
)

DELIVERY_RANK = {"accepted": 0, "scheduled": 0, "queued": 1, "sending": 2, "sent": 3, "recorded": 3,
                 "delivered": 4, "read": 5, "undelivered": 6, "failed": 6, "canceled": 6}

# Message-IDs (hashed: they can name a sender's domain) of every email we took in or sent, so
# a reply (In-Reply-To / References) finds its case.
email_ids = Table(
    "email_ids",
    metadata,
    Column("id_hash", String(64), primary_key=True),
    Column("signal_id", String(32)),
    Column("case_id", String(32)),
    Column("created_at", UTCDateTime(), nullable=False),
)

# Where the IMAP poller got to, per mailbox folder (UIDVALIDITY resets it).
email_cursor = Table(
    "email_cursor",
    metadata,
    Column("folder", String(255), primary_key=True),
    # IMAP UIDVALIDITY and UIDs are unsigned 32-bit: past PostgreSQL's INTEGER.
    Column("uidvalidity", BigInteger, nullable=False),
    Column("last_uid", BigInteger, nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
)

# What the worker learned by fetching an MMS attachment (never the content itself).
attachments = Table(
    "attachments",
    metadata,
    Column("signal_id", String(32), ForeignKey("signals.id"), primary_key=True),
    Column("idx", Integer, primary_key=True),
    Column("content_type", String(128)),
    Column("size", Integer),
    Column("sha256", String(64)),
    Column("status", String(32), nullable=False),
    Column("fetched_at", UTCDateTime(), nullable=False),
)


def email_id_hash(message_id: str) -> str:
    return hashlib.sha256(message_id.strip().strip("<>").lower().encode()).hexdigest()


def make_engine(url: str) -> Engine:
    """Engine with the settings each backend needs to be safe under several processes.

    hide_parameters: statement parameters never reach a log line (SQLAlchemy's statement log,
    if someone turns it on) or an exception message (which a traceback would log)."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False}, hide_parameters=True)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA busy_timeout=30000")
            # WAL: readers never block the writer and commits are ~2.4x faster (measured);
            # synchronous=FULL keeps every acknowledged webhook on disk through a power cut.
            # Switching a new database to WAL needs it to itself for a moment and does not wait
            # for the busy timeout: processes starting together retry (a no-op once it is WAL).
            for attempt in range(100):
                try:
                    cur.execute("PRAGMA journal_mode=WAL")
                    break
                except sqlite3.OperationalError as exc:
                    if "locked" not in str(exc) or attempt == 99:
                        raise
                    time.sleep(0.05)
            cur.execute("PRAGMA synchronous=FULL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10, hide_parameters=True)


@dataclass(frozen=True)
class Accepted:
    """What the sink needs to know after storing a signal."""

    signal_id: str
    created: bool
    status: str
    language: str
    received_at: datetime | None = None


@dataclass(frozen=True)
class CaseLink:
    """Join an existing case; `escalate` holds the case columns to raise, if any."""

    case_id: str
    number: str
    escalate: dict[str, Any] | None = None


@dataclass(frozen=True)
class CasePlan:
    """What else the routing of one signal writes, in the same transaction.

    steps: protocol checklist rows (protocol, step_id, agency, action, due_at, consent)
    checks: SLA checkpoints (point, due_at); on an escalated case they replace pending ones
    event: (routing_key, body) for the outbox; body never holds contact data
    """

    steps: tuple[dict[str, Any], ...] = ()
    checks: tuple[tuple[str, datetime], ...] = ()
    event: tuple[str, dict[str, Any]] | None = None
    actor: str = "system"


@dataclass(frozen=True)
class CaseRow:
    id: str
    number: str
    status: str
    category: str
    urgency: str
    queue: str
    deadline: datetime
    sla_clock: str
    opened_at: datetime

    @classmethod
    def from_row(cls, row: Any) -> CaseRow:
        return cls(row.id, row.number, row.status, row.category, row.urgency, row.queue, row.deadline,
                   row.sla_clock, row.opened_at)


def identity_kind(channel: str, sender: str | None) -> str:
    """What kind of address a sender is, for the identity hash: 'email' or 'phone'."""
    return "email" if channel == Channel.EMAIL.value or "@" in (sender or "") else "phone"


@dataclass(frozen=True)
class Identity:
    """A contact's address and its keyed hashes: under the current key first, then under each
    previous key (rows written before a key change match until `hotline keys rotate`)."""

    kind: str
    address: str
    hashes: tuple[str, ...]

    @property
    def current(self) -> str:
        return self.hashes[0]


@dataclass(frozen=True)
class StoredSignal:
    signal: Signal
    status: str
    case_id: str | None


class Store:
    def __init__(self, engine: Engine, cipher: FieldCipher) -> None:
        self.engine = engine
        self.cipher = cipher

    @contextmanager
    def begin(self) -> Iterator[Any]:
        with self.engine.begin() as conn:
            yield conn

    # ---- signals -------------------------------------------------------------------------

    def _signal_row(self, s: Signal, now: datetime) -> dict[str, Any]:
        c = self.cipher
        kind = identity_kind(s.channel.value, s.sender)
        loc = s.location.model_dump(exclude_none=True)
        return {
            "id": s.id,
            "channel": s.channel.value,
            "external_id": s.external_id,
            "received_at": s.received_at,
            "accepted_at": now,
            "sender_hash": c.identity_hash(kind, s.sender),
            "sender_enc": c.encrypt(s.sender),
            "sender_region": s.sender_region,
            # The plain column is for statistics and holds a state code; anything longer (a carrier's odd
            # FromState) would overflow VARCHAR(8) on PostgreSQL and lose the contact. It stays in location_enc.
            "state": s.location.state if s.location.state and len(s.location.state) <= 8 else None,
            "location_enc": c.encrypt_json(loc) if loc else None,
            "text_enc": c.encrypt(s.text) or "",
            "subject_enc": c.encrypt(s.subject),
            "language": s.language,
            "language_confidence": s.language_confidence,
            "raw_enc": c.encrypt_json(s.raw),
            "flags": list(s.flags),
            "status": "accepted",
        }

    def insert_signal(self, s: Signal, now: datetime) -> Accepted:
        """Commit the signal; a second delivery of (channel, external_id) returns the first."""
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(signals).values(**self._signal_row(s, now)))
            return Accepted(s.id, True, "accepted", s.language, s.received_at)
        except IntegrityError:
            existing = self.find_by_external_id(s.channel.value, s.external_id)
            if existing is None:  # the conflict was something else: let it surface
                raise
            return existing

    def find_by_external_id(self, channel: str, external_id: str) -> Accepted | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(signals.c.id, signals.c.status, signals.c.language, signals.c.received_at).where(
                    signals.c.channel == channel, signals.c.external_id == external_id
                )
            ).first()
        return Accepted(row.id, False, row.status, row.language, row.received_at) if row else None

    def _to_signal(self, row: Any) -> Signal:
        c = self.cipher
        loc = c.decrypt_json(row.location_enc) if row.location_enc else {}
        return Signal(
            id=row.id,
            channel=Channel(row.channel),
            external_id=row.external_id,
            received_at=row.received_at,
            sender=c.decrypt(row.sender_enc),
            sender_region=row.sender_region,
            location=Location(**loc),
            text=c.decrypt(row.text_enc) or "",
            subject=c.decrypt(row.subject_enc),
            language=row.language,
            language_confidence=row.language_confidence,
            raw=c.decrypt_json(row.raw_enc) or {},
            flags=tuple(row.flags or ()),
        )

    def load_signal(self, signal_id: str) -> StoredSignal | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(signals).where(signals.c.id == signal_id)).first()
        if row is None:
            return None
        return StoredSignal(self._to_signal(row), row.status, row.case_id)

    def opens_conversation(self, signal_id: str, window: timedelta) -> bool:
        """True if no earlier signal from the same sender on the same channel arrived within
        `window` before this one. Decided from stored rows, so a redelivery answers the same."""
        with self.engine.connect() as conn:
            me = conn.execute(
                select(signals.c.sender_hash, signals.c.sender_enc, signals.c.channel, signals.c.accepted_at)
                .where(signals.c.id == signal_id)
            ).first()
            if me is None or me.sender_hash is None:
                return me is not None
            sender = self.cipher.decrypt(me.sender_enc)
            hashes = self.cipher.identity_hashes(identity_kind(me.channel, sender), sender) or (me.sender_hash,)
            earlier = conn.execute(
                select(func.count()).select_from(signals).where(
                    signals.c.sender_hash.in_(hashes),
                    signals.c.channel == me.channel,
                    signals.c.id != signal_id,
                    signals.c.accepted_at <= me.accepted_at,
                    signals.c.accepted_at > me.accepted_at - window,
                )
            ).scalar_one()
        return earlier == 0

    def untriaged_ids(self, accepted_before: datetime, limit: int = 500) -> list[str]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(signals.c.id)
                .where(signals.c.status == "accepted", signals.c.accepted_at <= accepted_before)
                .order_by(signals.c.accepted_at)
                .limit(limit)
            ).all()
        return [r.id for r in rows]

    # ---- outcome of triage + routing ------------------------------------------------------

    def _triage_values(self, triage: dict[str, Any]) -> dict[str, Any]:
        """A triage row as stored: the location it found in the text encrypted, not in details."""
        details = dict(triage.get("details") or {})
        loc = details.pop("location", None)
        return {**triage, "details": details, "location_enc": self.cipher.encrypt_json(loc) if loc else None}

    def save_outcome(
        self,
        signal_id: str,
        triage: dict[str, Any],
        route: dict[str, Any],
        new_case_number: Callable[[], str],
        new_case_id: Callable[[], str],
        now: datetime,
        link: CaseLink | None = None,
        plan: CasePlan | None = None,
        siblings: tuple[str, ...] = (),
    ) -> str | None:
        """Persist triage result, case and route in one transaction.

        Without `link` a new case is opened; with it the signal joins that case, whose
        category, urgency, queue and deadline are replaced by `link.escalate` when given
        (a more severe later message; never a milder one).
        Returns the case number, or None when the signal had already been triaged (a re-run
        or a concurrent duplicate job): the unique key on triage_results makes that exact.
        """
        triage = self._triage_values(triage)
        with self.engine.begin() as conn:
            try:
                with conn.begin_nested():
                    conn.execute(insert(triage_results).values(signal_id=signal_id, created_at=now, **triage))
            except IntegrityError:
                return None
            if link is not None:
                case_id, number = link.case_id, link.number
                if link.escalate:
                    conn.execute(update(cases).where(cases.c.id == case_id).values(updated_at=now, **link.escalate))
            else:
                case_id, number = new_case_id(), ""
                for _attempt in range(10):
                    number = new_case_number()
                    try:
                        with conn.begin_nested():
                            conn.execute(insert(cases).values(
                                id=case_id, number=number, opened_at=now, status="open",
                                category=triage["category"], urgency=triage["urgency"],
                                queue=route["queue"], deadline=route["deadline"],
                                sla_clock=route["sla_clock"], updated_at=now,
                            ))
                        break
                    except IntegrityError:
                        continue
                else:  # pragma: no cover - 40 bits of randomness colliding ten times
                    raise RuntimeError("could not allocate a unique case number")
            conn.execute(insert(routes).values(signal_id=signal_id, case_id=case_id, created_at=now, **route))
            for sib in siblings:
                # The rest of a conversation read together with this signal: same result, same case.
                try:
                    with conn.begin_nested():
                        conn.execute(insert(triage_results).values(signal_id=sib, created_at=now, **triage))
                        conn.execute(insert(routes).values(signal_id=sib, case_id=case_id, created_at=now, **route))
                        conn.execute(update(signals).where(signals.c.id == sib)
                                     .values(status="triaged", triaged_at=now, case_id=case_id))
                except IntegrityError:
                    continue
            self._apply_plan(conn, case_id, number, plan or CasePlan(), now,
                             opened=link is None, escalated=bool(link and link.escalate), signal_id=signal_id)
            conn.execute(
                update(signals)
                .where(signals.c.id == signal_id)
                .values(status="triaged", triaged_at=now, case_id=case_id)
            )
        return number

    @staticmethod
    def _merge_plan(conn: Any, case_id: str, plan: CasePlan, replace_checks: bool) -> list[dict[str, Any]]:
        """Add the plan's protocol steps the case lacks and, with `replace_checks`, put the plan's
        SLA checks in place of the pending ones (a point already done is not redone). Returns the
        steps added."""
        have = {(r.protocol, r.step_id) for r in conn.execute(
            select(case_steps.c.protocol, case_steps.c.step_id).where(case_steps.c.case_id == case_id))}
        added = [s for s in plan.steps if (s["protocol"], s["step_id"]) not in have]
        for step in added:
            conn.execute(insert(case_steps).values(case_id=case_id, **step))
        if replace_checks:
            conn.execute(sla_checks.delete().where(sla_checks.c.case_id == case_id, sla_checks.c.done_at.is_(None)))
            done = {r.point for r in conn.execute(select(sla_checks.c.point).where(sla_checks.c.case_id == case_id))}
            for point, due in plan.checks:
                if point not in done:
                    conn.execute(insert(sla_checks).values(case_id=case_id, point=point, due_at=due))
        return added

    def _apply_plan(self, conn: Any, case_id: str, number: str, plan: CasePlan, now: datetime, opened: bool,
                    escalated: bool, signal_id: str) -> None:
        self._merge_plan(conn, case_id, plan, replace_checks=opened or escalated)
        action = "opened" if opened else "escalated" if escalated else "linked"
        conn.execute(insert(case_events).values(id=uuid.uuid4().hex, case_id=case_id, at=now, actor=plan.actor,
                                                action=action, detail={"signal_id": signal_id}))
        if plan.event is not None:
            key, body = plan.event
            conn.execute(insert(outbox).values(id=uuid.uuid4().hex, created_at=now, routing_key=key,
                                               body={**body, "case_number": number, "case_action": action},
                                               attempts=0))

    def retriage(self, signal_id: str, triage: dict[str, Any], link: CaseLink, plan: CasePlan,
                 now: datetime) -> None:
        """A signal's text grew (a late transcript): replace its triage result and, when the new
        one is more severe, raise its case - in one transaction."""
        triage = self._triage_values(triage)
        with self.engine.begin() as conn:
            conn.execute(update(triage_results).where(triage_results.c.signal_id == signal_id).values(**triage))
            if link.escalate:
                conn.execute(update(cases).where(cases.c.id == link.case_id).values(updated_at=now, **link.escalate))
            self._apply_plan(conn, link.case_id, link.number, plan, now, opened=False,
                             escalated=bool(link.escalate), signal_id=signal_id)

    def replan(self, case_id: str, plan: CasePlan, now: datetime) -> None:
        """A person changed the case's category/urgency: add the protocol steps it now needs and
        replace its pending SLA checks (when it is still open), in one transaction."""
        with self.engine.begin() as conn:
            row = conn.execute(select(cases).where(cases.c.id == case_id)).first()
            if row is None:
                raise LookupError(f"no case {case_id}")
            added = self._merge_plan(conn, case_id, plan, replace_checks=row.status == "open")
            conn.execute(insert(case_events).values(
                id=uuid.uuid4().hex, case_id=case_id, at=now, actor=plan.actor, action="replanned",
                detail={"steps_added": [f"{s['protocol']}/{s['step_id']}" for s in added]}))

    # ---- case lifecycle -----------------------------------------------------------------------

    def set_case_status(self, number: str, status: str, actor: str, reason: str | None, now: datetime,
                        allowed_from: tuple[str, ...]) -> CaseRow:
        """Move a case along open -> acknowledged -> closed, with an audit entry.

        Raises LookupError for an unknown case and ValueError for a move not allowed from
        its current status. Pending SLA checks are cancelled when it leaves 'open'."""
        with self.engine.begin() as conn:
            row = conn.execute(select(cases).where(cases.c.number == number)).first()
            if row is None:
                raise LookupError(f"no case {number}")
            if row.status not in allowed_from:
                raise ValueError(f"case {number} is {row.status}; cannot become {status}")
            conn.execute(update(cases).where(cases.c.id == row.id).values(
                status=status, updated_at=now, closed_at=now if status == "closed" else None))
            conn.execute(insert(case_events).values(id=uuid.uuid4().hex, case_id=row.id, at=now, actor=actor,
                                                    action=status, detail={},
                                                    reason_enc=self.cipher.encrypt(reason) if reason else None))
            if status in ("acknowledged", "closed"):
                # Someone has the case: its pending SLA checks are cancelled.
                conn.execute(update(sla_checks)
                             .where(sla_checks.c.case_id == row.id, sla_checks.c.done_at.is_(None))
                             .values(done_at=now, outcome=f"cancelled:{status}"))
            row = conn.execute(select(cases).where(cases.c.id == row.id)).first()
        return CaseRow.from_row(row)

    def case_audit(self, case_id: str) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(case_events).where(case_events.c.case_id == case_id)
                                .order_by(case_events.c.at, case_events.c.id)).all()
        return [{"at": r.at.isoformat(), "actor": r.actor, "action": r.action, "detail": self.event_detail(r)}
                for r in rows]

    def event_detail(self, row: Any) -> dict[str, Any]:
        """A case event's detail with its reason readable (decrypted from reason_enc, or the
        plaintext of a row written before reasons were encrypted)."""
        detail = dict(row.detail) if isinstance(row.detail, dict) else {}
        if row.reason_enc:
            detail["reason"] = self.cipher.decrypt(row.reason_enc)
        return detail

    def case_steps(self, case_id: str) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(case_steps).where(case_steps.c.case_id == case_id)
                                .order_by(case_steps.c.due_at, case_steps.c.protocol, case_steps.c.step_id)).all()
        return [{"protocol": r.protocol, "step_id": r.step_id, "agency": r.agency, "action": r.action,
                 "due_at": r.due_at.isoformat(), "consent": r.consent,
                 "done_at": r.done_at.isoformat() if r.done_at else None} for r in rows]

    # ---- SLA checks ---------------------------------------------------------------------------

    def pending_checks(self, case_id: str | None = None, due_before: datetime | None = None
                       ) -> list[tuple[str, str, datetime]]:
        q = select(sla_checks.c.case_id, sla_checks.c.point, sla_checks.c.due_at).where(sla_checks.c.done_at.is_(None))
        if case_id:
            q = q.where(sla_checks.c.case_id == case_id)
        if due_before:
            q = q.where(sla_checks.c.due_at <= due_before)
        with self.engine.connect() as conn:
            return [(r.case_id, r.point, r.due_at) for r in conn.execute(q.order_by(sla_checks.c.due_at))]

    def finish_check(self, case_id: str, point: str, outcome: str, now: datetime,
                     escalate_to_queue: str | None = None, actor: str = "sla",
                     event: tuple[str, dict[str, Any]] | None = None) -> bool:
        """Mark a check done (once: False if it already was), record what it did and queue
        its event, in one transaction."""
        with self.engine.begin() as conn:
            res = conn.execute(update(sla_checks)
                               .where(sla_checks.c.case_id == case_id, sla_checks.c.point == point,
                                      sla_checks.c.done_at.is_(None))
                               .values(done_at=now, outcome=outcome))
            if res.rowcount != 1:
                return False
            if escalate_to_queue:
                conn.execute(update(cases).where(cases.c.id == case_id).values(queue=escalate_to_queue, updated_at=now))
            conn.execute(insert(case_events).values(id=uuid.uuid4().hex, case_id=case_id, at=now, actor=actor,
                                                    action=f"sla_{point}", detail={"outcome": outcome}))
            if event is not None:
                conn.execute(insert(outbox).values(id=uuid.uuid4().hex, created_at=now, routing_key=event[0],
                                                   body=event[1], attempts=0))
        return True

    # ---- outbox -------------------------------------------------------------------------------

    def unpublished_events(self, limit: int = 100) -> list[tuple[str, str, dict[str, Any]]]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(outbox.c.id, outbox.c.routing_key, outbox.c.body)
                                .where(outbox.c.published_at.is_(None))
                                .order_by(outbox.c.created_at, outbox.c.id).limit(limit)).all()
        return [(r.id, r.routing_key, r.body) for r in rows]

    def mark_published(self, event_ids: list[str], now: datetime) -> None:
        if event_ids:
            with self.engine.begin() as conn:
                conn.execute(update(outbox).where(outbox.c.id.in_(event_ids)).values(published_at=now))

    def note_publish_failure(self, event_ids: list[str]) -> None:
        if event_ids:
            with self.engine.begin() as conn:
                conn.execute(update(outbox).where(outbox.c.id.in_(event_ids))
                             .values(attempts=outbox.c.attempts + 1))

    def add_event(self, routing_key: str, body: dict[str, Any], now: datetime) -> None:
        with self.engine.begin() as conn:
            conn.execute(insert(outbox).values(id=uuid.uuid4().hex, created_at=now, routing_key=routing_key,
                                               body=body, attempts=0))

    # ---- notifications ------------------------------------------------------------------------

    def record_notification(self, case_id: str | None, kind: str, target: str | None, body: str, status: str,
                            dedupe_key: str, now: datetime, provider_id: str | None = None,
                            error: str | None = None) -> bool:
        """Store a notification once per dedupe_key; False if it was already recorded."""
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(notifications).values(
                    id=uuid.uuid4().hex, created_at=now, case_id=case_id, kind=kind,
                    target_enc=self.cipher.encrypt(target), body_enc=self.cipher.encrypt(body), status=status,
                    dedupe_key=dedupe_key, provider_id=provider_id, error=error))
        except IntegrityError:
            return False
        return True

    def notifications_for(self, case_id: str | None = None) -> list[dict[str, Any]]:
        q = select(notifications).order_by(notifications.c.created_at)
        if case_id:
            q = q.where(notifications.c.case_id == case_id)
        with self.engine.connect() as conn:
            rows = conn.execute(q).all()
        return [{"kind": r.kind, "status": r.status, "target": self.cipher.decrypt(r.target_enc),
                 "body": self.cipher.decrypt(r.body_enc), "dedupe_key": r.dedupe_key,
                 "provider_id": r.provider_id, "error": r.error, "case_id": r.case_id} for r in rows]

    # ---- calls --------------------------------------------------------------------------------

    def call_touch(self, call_sid: str, now: datetime, **fields: Any) -> None:
        """Create the call's row if new, then set the given fields (None values are skipped).
        Sensitive fields (from, location, recording_url, transcript) are encrypted here."""
        enc = {}
        for key in ("from", "recording_url", "transcript"):
            if fields.get(key) is not None:
                enc[f"{key}_enc"] = self.cipher.encrypt(fields.pop(key))
            fields.pop(key, None)
        if fields.get("location") is not None:
            enc["location_enc"] = self.cipher.encrypt_json(fields.pop("location"))
        fields.pop("location", None)
        values = {k: v for k, v in {**fields, **enc}.items() if v is not None}
        with self.engine.begin() as conn:
            exists = conn.execute(select(calls.c.call_sid).where(calls.c.call_sid == call_sid)).first()
            if exists is None:
                try:
                    with conn.begin_nested():
                        conn.execute(insert(calls).values(
                            **{"call_sid": call_sid, "created_at": now, "updated_at": now, "digits": "",
                               "voicemail_offered": False, **values}))
                    return
                except IntegrityError:
                    pass  # a concurrent callback created it first: update below
            conn.execute(update(calls).where(calls.c.call_sid == call_sid).values(updated_at=now, **values))

    def call_add_digits(self, call_sid: str, digits: str, now: datetime) -> None:
        with self.engine.begin() as conn:
            row = conn.execute(select(calls.c.digits).where(calls.c.call_sid == call_sid)).first()
            if row is not None:
                conn.execute(update(calls).where(calls.c.call_sid == call_sid)
                             .values(digits=(row.digits + digits)[-64:], updated_at=now))

    def call_get(self, call_sid: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(calls).where(calls.c.call_sid == call_sid)).first()
        if row is None:
            return None
        c = self.cipher
        d = dict(row._mapping)
        d["from"] = c.decrypt(d.pop("from_enc"))
        d["location"] = c.decrypt_json(d.pop("location_enc")) if d.get("location_enc") else {}
        d["recording_url"] = c.decrypt(d.pop("recording_url_enc"))
        d["transcript"] = c.decrypt(d.pop("transcript_enc"))
        return d

    def call_mark_finalised(self, call_sid: str, signal_id: str, now: datetime) -> bool:
        """Claim the call's finalisation; False if another callback already did it."""
        with self.engine.begin() as conn:
            res = conn.execute(update(calls).where(calls.c.call_sid == call_sid, calls.c.finalised_at.is_(None))
                               .values(finalised_at=now, signal_id=signal_id, updated_at=now))
        return res.rowcount == 1

    def calls_waiting(self, updated_before: datetime) -> list[str]:
        """Calls not yet turned into a signal whose last callback is older than the cut-off."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(calls.c.call_sid).where(calls.c.finalised_at.is_(None),
                                                               calls.c.updated_at <= updated_before)).all()
        return [r.call_sid for r in rows]

    def attach_transcript(self, signal_id: str, transcript: str, now: datetime) -> str | None:
        """A transcript that arrived after its call became a signal: add it to the signal's text.
        Returns the case id the signal belongs to (for re-triage), if any."""
        with self.engine.begin() as conn:
            row = conn.execute(select(signals.c.text_enc, signals.c.case_id).where(signals.c.id == signal_id)).first()
            if row is None:
                return None
            old = self.cipher.decrypt(row.text_enc) or ""
            if transcript in old:
                return row.case_id
            text = (old + "\n" + transcript).strip()
            conn.execute(update(signals).where(signals.c.id == signal_id).values(text_enc=self.cipher.encrypt(text)))
            if row.case_id:
                conn.execute(insert(case_events).values(id=uuid.uuid4().hex, case_id=row.case_id, at=now,
                                                        actor="system", action="transcript_added",
                                                        detail={"signal_id": signal_id}))
        return row.case_id

    # ---- textline ------------------------------------------------------------------------------

    def sender_key(self, signal: Signal) -> str | None:
        return self.cipher.identity_hash(identity_kind(signal.channel.value, signal.sender), signal.sender)

    def identity(self, signal: Signal) -> Identity | None:
        """The sender's identity with its hashes under every configured key (None: no sender)."""
        return self._identity(identity_kind(signal.channel.value, signal.sender), signal.sender)

    def _identity(self, kind: str, address: str | None) -> Identity | None:
        hashes = self.cipher.identity_hashes(kind, address)
        return Identity(kind, (address or "").strip().lower(), hashes) if hashes and address else None

    @staticmethod
    def _textline_merge(rows: list[Any]) -> tuple[bool, datetime | None]:
        """State of one texter kept under several hashes (before/after a key change): the most
        recent opt-out decision and the latest silence win."""
        if not rows:
            return False, None
        newest = max(rows, key=lambda r: r.updated_at)
        silences = [r.silenced_until for r in rows if r.silenced_until is not None]
        return bool(newest.opted_out), max(silences) if silences else None

    def textline_get(self, key: str | Identity) -> tuple[bool, datetime | None]:
        hashes = key.hashes if isinstance(key, Identity) else (key,)
        with self.engine.connect() as conn:
            rows = conn.execute(select(textline_state).where(textline_state.c.sender_hash.in_(hashes))).all()
        return self._textline_merge(list(rows))

    def textline_set(self, key: str | Identity, now: datetime, opted_out: bool | None = None,
                     silenced_until: datetime | bool | None = False) -> None:
        """Upsert a texter's state; silenced_until=False leaves it as it is. Given an Identity,
        the row is kept under the current key's hash (state found under an older key's hash is
        carried over and that row removed) with the identity encrypted beside it."""
        values: dict[str, Any] = {"updated_at": now}
        if opted_out is not None:
            values["opted_out"] = opted_out
        if silenced_until is not False:
            values["silenced_until"] = silenced_until
        sender_hash = key.current if isinstance(key, Identity) else key
        with self.engine.begin() as conn:
            if isinstance(key, Identity):
                values["identity_enc"] = self.cipher.encrypt(f"{key.kind}:{key.address}")
                legacy = conn.execute(select(textline_state).where(
                    textline_state.c.sender_hash.in_(key.hashes[1:]))).all() if len(key.hashes) > 1 else []
                if legacy:
                    current = conn.execute(select(textline_state).where(
                        textline_state.c.sender_hash == sender_hash)).all()
                    was_out, was_silenced = self._textline_merge([*legacy, *current])
                    values = {"opted_out": was_out, "silenced_until": was_silenced, **values}
                    conn.execute(textline_state.delete().where(
                        textline_state.c.sender_hash.in_([r.sender_hash for r in legacy])))
            res = conn.execute(update(textline_state).where(textline_state.c.sender_hash == sender_hash)
                               .values(**values))
            if res.rowcount == 0:
                try:
                    with conn.begin_nested():
                        conn.execute(insert(textline_state).values(
                            sender_hash=sender_hash, opted_out=bool(values.get("opted_out", False)),
                            silenced_until=values.get("silenced_until"), updated_at=now,
                            identity_enc=values.get("identity_enc")))
                except IntegrityError:
                    conn.execute(update(textline_state).where(textline_state.c.sender_hash == sender_hash)
                                 .values(**values))

    def is_opted_out(self, channel_kind: str, address: str) -> bool:
        ident = self._identity(channel_kind, address)
        return ident is not None and self.textline_get(ident)[0]

    # ---- outbound messages --------------------------------------------------------------------

    def outbound_create(self, case_id: str | None, channel: str, to: str, body: str, author: str,
                        now: datetime) -> str:
        oid = uuid.uuid4().hex
        with self.engine.begin() as conn:
            conn.execute(insert(outbound).values(
                id=oid, created_at=now, updated_at=now, case_id=case_id, channel=channel,
                to_enc=self.cipher.encrypt(to), body_enc=self.cipher.encrypt(body), author=author,
                status="created", flagged=False))
            if case_id:
                conn.execute(insert(case_events).values(id=uuid.uuid4().hex, case_id=case_id, at=now, actor=author,
                                                        action="reply", detail={"outbound_id": oid}))
        return oid

    def outbound_sent(self, outbound_id: str, status: str, provider_sid: str | None, now: datetime,
                      error_code: str | None = None) -> None:
        flagged = status in ("failed", "undelivered")
        with self.engine.begin() as conn:
            conn.execute(update(outbound).where(outbound.c.id == outbound_id).values(
                status=status, provider_sid=provider_sid, updated_at=now, error_code=error_code, flagged=flagged))
            if provider_sid:
                # A status callback may have come before we stored the sid: apply it now.
                orphans = conn.execute(select(delivery_orphans).where(delivery_orphans.c.provider_sid == provider_sid)
                                       .order_by(delivery_orphans.c.received_at)).all()
                for o in orphans:
                    self._apply_delivery(conn, provider_sid, o.status, o.error_code, now)
                conn.execute(delivery_orphans.delete().where(delivery_orphans.c.provider_sid == provider_sid))

    def delivery_status(self, provider_sid: str, status: str, error_code: str | None, now: datetime) -> str:
        """Apply a delivery callback. Returns 'updated', 'stale' (older than what we know) or
        'orphan' (unknown sid, kept for when it becomes known)."""
        with self.engine.begin() as conn:
            return self._apply_delivery(conn, provider_sid, status, error_code, now)

    def _apply_delivery(self, conn: Any, provider_sid: str, status: str, error_code: str | None,
                        now: datetime) -> str:
        row = conn.execute(select(outbound).where(outbound.c.provider_sid == provider_sid)).first()
        if row is None:
            conn.execute(insert(delivery_orphans).values(id=uuid.uuid4().hex, received_at=now,
                                                         provider_sid=provider_sid, status=status,
                                                         error_code=error_code))
            return "orphan"
        if DELIVERY_RANK.get(status, 0) < DELIVERY_RANK.get(row.status, 0):
            return "stale"  # callbacks can arrive out of order: never go back from delivered to sent
        failed = status in ("failed", "undelivered")
        conn.execute(update(outbound).where(outbound.c.id == row.id).values(
            status=status, error_code=error_code or row.error_code, updated_at=now, flagged=row.flagged or failed))
        if failed and not row.flagged and row.case_id:
            conn.execute(insert(case_events).values(id=uuid.uuid4().hex, case_id=row.case_id, at=now,
                                                    actor="twilio", action="reply_failed",
                                                    detail={"outbound_id": row.id, "error_code": error_code}))
        return "updated"

    def outbound_for(self, case_id: str | None = None) -> list[dict[str, Any]]:
        q = select(outbound).order_by(outbound.c.created_at)
        if case_id:
            q = q.where(outbound.c.case_id == case_id)
        with self.engine.connect() as conn:
            rows = conn.execute(q).all()
        return [{"id": r.id, "to": self.cipher.decrypt(r.to_enc), "body": self.cipher.decrypt(r.body_enc),
                 "status": r.status, "provider_sid": r.provider_sid, "flagged": r.flagged,
                 "error_code": r.error_code, "author": r.author, "case_id": r.case_id} for r in rows]

    def latest_sender(self, case_id: str, channel: str) -> str | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(signals.c.sender_enc).where(signals.c.case_id == case_id,
                                                                  signals.c.channel == channel)
                               .order_by(signals.c.received_at.desc()).limit(1)).first()
        return self.cipher.decrypt(row.sender_enc) if row else None

    def delivery_orphan_count(self) -> int:
        with self.engine.connect() as conn:
            return conn.execute(select(func.count()).select_from(delivery_orphans)).scalar_one()

    # ---- attachments ----------------------------------------------------------------------------

    def attachment_record(self, signal_id: str, idx: int, status: str, now: datetime,
                          content_type: str | None = None, size: int | None = None, sha256: str | None = None) -> None:
        with self.engine.begin() as conn:
            conn.execute(attachments.delete().where(attachments.c.signal_id == signal_id, attachments.c.idx == idx))
            conn.execute(insert(attachments).values(signal_id=signal_id, idx=idx, status=status, fetched_at=now,
                                                    content_type=content_type, size=size, sha256=sha256))

    def attachments_of(self, signal_id: str) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(attachments).where(attachments.c.signal_id == signal_id)
                                .order_by(attachments.c.idx)).all()
        return [{"idx": r.idx, "status": r.status, "content_type": r.content_type, "size": r.size,
                 "sha256": r.sha256} for r in rows]

    # ---- email threads and the poller's cursor ------------------------------------------------

    def email_remember(self, message_id: str, now: datetime, signal_id: str | None = None,
                       case_id: str | None = None) -> None:
        h = email_id_hash(message_id)
        with self.engine.begin() as conn:
            if conn.execute(select(email_ids.c.id_hash).where(email_ids.c.id_hash == h)).first() is None:
                try:
                    with conn.begin_nested():
                        conn.execute(insert(email_ids).values(id_hash=h, signal_id=signal_id, case_id=case_id,
                                                              created_at=now))
                    return
                except IntegrityError:
                    pass
            values = {k: v for k, v in (("signal_id", signal_id), ("case_id", case_id)) if v}
            if values:
                conn.execute(update(email_ids).where(email_ids.c.id_hash == h).values(**values))

    def case_for_email_ids(self, message_ids: list[str]) -> str | None:
        """The case of the most recent known message among `message_ids` (a reply's
        In-Reply-To and References), via the signal when its case was not recorded."""
        hashes = [email_id_hash(m) for m in message_ids if m]
        if not hashes:
            return None
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(email_ids.c.case_id, signals.c.case_id.label("signal_case"))
                .select_from(email_ids.outerjoin(signals, signals.c.id == email_ids.c.signal_id))
                .where(email_ids.c.id_hash.in_(hashes))
                .order_by(email_ids.c.created_at.desc())
            ).all()
        for r in rows:
            if r.case_id or r.signal_case:
                return r.case_id or r.signal_case
        return None

    def email_cursor_get(self, folder: str) -> tuple[int, int] | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(email_cursor).where(email_cursor.c.folder == folder)).first()
        return (row.uidvalidity, row.last_uid) if row else None

    def email_cursor_set(self, folder: str, uidvalidity: int, last_uid: int, now: datetime) -> None:
        with self.engine.begin() as conn:
            res = conn.execute(update(email_cursor).where(email_cursor.c.folder == folder)
                               .values(uidvalidity=uidvalidity, last_uid=last_uid, updated_at=now))
            if res.rowcount == 0:
                conn.execute(insert(email_cursor).values(folder=folder, uidvalidity=uidvalidity,
                                                         last_uid=last_uid, updated_at=now))

    # ---- cases and conversations ------------------------------------------------------------

    def case_by_number(self, number: str) -> CaseRow | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(cases).where(cases.c.number == number)).first()
        return CaseRow.from_row(row) if row else None

    def case_by_id(self, case_id: str) -> CaseRow | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(cases).where(cases.c.id == case_id)).first()
        return CaseRow.from_row(row) if row else None

    def case_signals(self, case_id: str) -> list[StoredSignal]:
        """Every signal of a case, oldest first (decrypted: for the console's case view)."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(signals).where(signals.c.case_id == case_id)
                                .order_by(signals.c.received_at, signals.c.id)).all()
        return [StoredSignal(self._to_signal(r), r.status, r.case_id) for r in rows]

    def case_triage(self, case_id: str) -> list[dict[str, Any]]:
        """The triage results of a case's signals (no text): indicators and details."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(triage_results.c.minor_involved, triage_results.c.trafficking_type,
                       triage_results.c.imminent_danger, triage_results.c.details)
                .select_from(triage_results.join(signals, signals.c.id == triage_results.c.signal_id))
                .where(signals.c.case_id == case_id)).all()
        return [{"minor_involved": bool(r.minor_involved), "trafficking_type": r.trafficking_type,
                 "imminent_danger": bool(r.imminent_danger),
                 "details": r.details if isinstance(r.details, dict) else {}} for r in rows]

    def conversation(self, signal: Signal, timeout: timedelta) -> list[StoredSignal]:
        """The whole conversation `signal` belongs to, so far: the same sender on the same channel,
        each message within `timeout` of the one before. Oldest first, `signal` included."""
        ident = self.identity(signal)
        if ident is None:
            return []
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(signals)
                .where(signals.c.sender_hash.in_(ident.hashes), signals.c.channel == signal.channel.value,
                       signals.c.received_at >= signal.received_at - timeout * 50)
                .order_by(signals.c.received_at, signals.c.id)
                .limit(500)
            ).all()
        idx = next((i for i, r in enumerate(rows) if r.id == signal.id), None)
        if idx is None:
            return []
        lo = idx
        while lo > 0 and rows[lo].received_at - rows[lo - 1].received_at <= timeout:
            lo -= 1
        hi = idx
        while hi + 1 < len(rows) and rows[hi + 1].received_at - rows[hi].received_at <= timeout:
            hi += 1
        return [StoredSignal(self._to_signal(r), r.status, r.case_id) for r in rows[lo:hi + 1]]

    def recent_signals(self, limit: int = 50) -> list[dict[str, Any]]:
        """Recent signals with their triage and route; no contact data."""
        q = (
            select(
                signals.c.id, signals.c.channel, signals.c.received_at, signals.c.status,
                signals.c.language, signals.c.state,
                triage_results.c.category, triage_results.c.urgency, triage_results.c.matched,
                triage_results.c.minor_involved, triage_results.c.trafficking_type,
                triage_results.c.explanation, triage_results.c.ruleset, triage_results.c.imminent_danger,
                triage_results.c.details, triage_results.c.spans,
                routes.c.queue, routes.c.deadline, routes.c.sla_clock, cases.c.number,
            )
            .select_from(
                signals.outerjoin(triage_results, triage_results.c.signal_id == signals.c.id)
                .outerjoin(routes, routes.c.signal_id == signals.c.id)
                .outerjoin(cases, cases.c.id == routes.c.case_id)
            )
            .order_by(signals.c.accepted_at.desc())
            .limit(limit)
        )
        out = []
        with self.engine.connect() as conn:
            for r in conn.execute(q):
                out.append({
                    "id": r.id,
                    "channel": r.channel,
                    "received_at": r.received_at.isoformat(),
                    "status": r.status,
                    "language": r.language,
                    "state": r.state,
                    "category": r.category,
                    "urgency": r.urgency,
                    "queue": r.queue,
                    "deadline": r.deadline.isoformat() if r.deadline else None,
                    "sla_clock": r.sla_clock,
                    "case_number": r.number,
                    "indicators": None if r.category is None else {
                        "minor_involved": bool(r.minor_involved),
                        "trafficking_type": r.trafficking_type,
                        "imminent_danger": bool(r.imminent_danger),
                    },
                    "spans": r.spans,
                    "details": r.details,
                    "matched": r.matched if r.matched is None or isinstance(r.matched, list)
                    else json.loads(r.matched),
                    "explanation": r.explanation,
                    "ruleset": r.ruleset,
                })
        return out

    def counts(self) -> dict[str, int]:
        with self.engine.connect() as conn:
            return {
                "signals": conn.execute(select(func.count()).select_from(signals)).scalar_one(),
                "triaged": conn.execute(
                    select(func.count()).select_from(signals).where(signals.c.status == "triaged")
                ).scalar_one(),
                "triage_results": conn.execute(select(func.count()).select_from(triage_results)).scalar_one(),
                "routes": conn.execute(select(func.count()).select_from(routes)).scalar_one(),
                "cases": conn.execute(select(func.count()).select_from(cases)).scalar_one(),
            }
