"""SQLAlchemy tables and the few queries the app needs.

Message text, contact identifiers, location details and raw payloads are stored encrypted
(FieldCipher); the sender is linked across messages by a keyed hash, never the raw number.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Engine,
    Float,
    ForeignKey,
    Index,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    create_engine,
    event,
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


metadata = MetaData()

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


def make_engine(url: str) -> Engine:
    """Engine with the settings each backend needs to be safe under several processes."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            # WAL: readers never block the writer and commits are ~2.4x faster (measured);
            # synchronous=FULL keeps every acknowledged webhook on disk through a power cut.
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=FULL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10)


@dataclass(frozen=True)
class Accepted:
    """What the sink needs to know after storing a signal."""

    signal_id: str
    created: bool
    status: str
    language: str


@dataclass(frozen=True)
class CaseLink:
    """Join an existing case; `escalate` holds the case columns to raise, if any."""

    case_id: str
    number: str
    escalate: dict[str, Any] | None = None


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

    @classmethod
    def from_row(cls, row: Any) -> CaseRow:
        return cls(row.id, row.number, row.status, row.category, row.urgency, row.queue, row.deadline,
                   row.sla_clock)


@dataclass(frozen=True)
class StoredSignal:
    signal: Signal
    status: str
    case_id: str | None


class Store:
    def __init__(self, engine: Engine, cipher: FieldCipher) -> None:
        self.engine = engine
        self.cipher = cipher

    def create_schema(self) -> None:
        metadata.create_all(self.engine, checkfirst=True)

    @contextmanager
    def begin(self) -> Iterator[Any]:
        with self.engine.begin() as conn:
            yield conn

    # ---- signals -------------------------------------------------------------------------

    def _signal_row(self, s: Signal, now: datetime) -> dict[str, Any]:
        c = self.cipher
        kind = "email" if s.channel == Channel.EMAIL else "phone"
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
            "state": s.location.state,
            "location_enc": c.encrypt_json(loc) if loc else None,
            "text_enc": c.encrypt(s.text) or "",
            "subject_enc": c.encrypt(s.subject),
            "language": s.language,
            "language_confidence": s.language_confidence,
            "raw_enc": c.encrypt_json(s.raw),
            "status": "accepted",
        }

    def insert_signal(self, s: Signal, now: datetime) -> Accepted:
        """Commit the signal; a second delivery of (channel, external_id) returns the first."""
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(signals).values(**self._signal_row(s, now)))
            return Accepted(s.id, True, "accepted", s.language)
        except IntegrityError:
            existing = self.find_by_external_id(s.channel.value, s.external_id)
            if existing is None:  # the conflict was something else: let it surface
                raise
            return existing

    def find_by_external_id(self, channel: str, external_id: str) -> Accepted | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(signals.c.id, signals.c.status, signals.c.language).where(
                    signals.c.channel == channel, signals.c.external_id == external_id
                )
            ).first()
        return Accepted(row.id, False, row.status, row.language) if row else None

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
                select(signals.c.sender_hash, signals.c.channel, signals.c.accepted_at)
                .where(signals.c.id == signal_id)
            ).first()
            if me is None or me.sender_hash is None:
                return me is not None
            earlier = conn.execute(
                select(func.count()).select_from(signals).where(
                    signals.c.sender_hash == me.sender_hash,
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

    def save_outcome(
        self,
        signal_id: str,
        triage: dict[str, Any],
        route: dict[str, Any],
        new_case_number: Callable[[], str],
        new_case_id: Callable[[], str],
        now: datetime,
        link: CaseLink | None = None,
    ) -> str | None:
        """Persist triage result, case and route in one transaction.

        Without `link` a new case is opened; with it the signal joins that case, whose
        category, urgency, queue and deadline are replaced by `link.escalate` when given
        (a more severe later message; never a milder one).
        Returns the case number, or None when the signal had already been triaged (a re-run
        or a concurrent duplicate job): the unique key on triage_results makes that exact.
        """
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
            conn.execute(
                update(signals)
                .where(signals.c.id == signal_id)
                .values(status="triaged", triaged_at=now, case_id=case_id)
            )
        return number

    # ---- cases and conversations ------------------------------------------------------------

    def case_by_number(self, number: str) -> CaseRow | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(cases).where(cases.c.number == number)).first()
        return CaseRow.from_row(row) if row else None

    def case_by_id(self, case_id: str) -> CaseRow | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(cases).where(cases.c.id == case_id)).first()
        return CaseRow.from_row(row) if row else None

    def conversation_before(self, signal: Signal, window: timedelta) -> list[StoredSignal]:
        """Earlier signals from the same sender on the same channel, each within `window` of
        the next (a conversation continues while the texter keeps writing), oldest first."""
        kind = "email" if signal.channel == Channel.EMAIL else "phone"
        sender_hash = self.cipher.identity_hash(kind, signal.sender)
        if sender_hash is None:
            return []
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(signals)
                .where(signals.c.sender_hash == sender_hash, signals.c.channel == signal.channel.value,
                       signals.c.id != signal.id, signals.c.received_at <= signal.received_at)
                .order_by(signals.c.received_at.desc())
                .limit(50)
            ).all()
        out: list[StoredSignal] = []
        edge = signal.received_at
        for row in rows:
            if edge - row.received_at > window:
                break
            out.append(StoredSignal(self._to_signal(row), row.status, row.case_id))
            edge = row.received_at
        return list(reversed(out))

    # ---- read models ----------------------------------------------------------------------

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
