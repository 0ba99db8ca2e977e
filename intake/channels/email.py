"""Email channel: the help@ mailbox, read by an IMAP poller or posted raw by a mail provider.

Parsing (MIME, charsets, quoted replies, attachments, loop-guard headers) is in
email_parse.py; this module takes a parsed email in, exactly once, and does the I/O:
  POST /email/inbound   a raw RFC 5322 message, authenticated by a shared secret
                        (X-Hotline-Email-Token) or an HMAC-SHA256 of the body (X-Hotline-Signature)
  poll_once()           IMAP: new messages by UID; each is committed before it is marked seen,
                        so a crash re-reads and never loses (duplicates are absorbed by the
                        Message-ID, or a content hash when it is missing or reused)
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, Response, jsonify, request

from ..normalize import LanguageDetector
from ..signal import Signal
from ..sink import Sink
from ..store import Store
from .email_parse import EmailError, EmailLimits, ParsedEmail, parse_email

__all__ = ["EmailError", "EmailLimits", "ImapConfig", "InboundConfig", "make_blueprint", "poll_once", "take_in"]

log = logging.getLogger(__name__)

SEEN = b"\\Seen"
FLAGGED = b"\\Flagged"


@dataclass(frozen=True)
class TakenIn:
    signal_id: str
    created: bool
    auto_submitted: bool
    loop_reason: str | None


def signal_content_hash(signal: Signal) -> str:
    parts = [signal.sender or "", signal.subject or "", str(signal.raw.get("full_text") or signal.text)]
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()


def take_in(raw: bytes, store: Store, sink: Sink, detector: LanguageDetector, limits: EmailLimits,
            now: datetime) -> TakenIn:
    """Parse and accept one email (raises EmailError for unusable input)."""
    parsed: ParsedEmail = parse_email(raw, now, detector, limits)
    signal = parsed.signal
    accepted = sink.accept(signal)
    if not accepted.created:
        # Same Message-ID: a redelivery, or a different message reusing the id (broken mailers
        # do). Compare contents; a different message is taken in under its content hash.
        existing = store.load_signal(accepted.signal_id)
        if existing is not None and signal_content_hash(existing.signal) != signal_content_hash(signal):
            signal = signal.model_copy(update={"external_id": "sha256:" + signal_content_hash(signal),
                                               "id": signal.id})
            accepted = sink.accept(signal)
    if parsed.message_id:
        store.email_remember(parsed.message_id, now, signal_id=accepted.signal_id)
    if accepted.created:
        log.info("email: signal %s accepted%s", accepted.signal_id,
                 f" (auto-submitted: {parsed.loop_reason}; no reply will be sent)" if parsed.auto_submitted else "")
    return TakenIn(accepted.signal_id, accepted.created, parsed.auto_submitted, parsed.loop_reason)


# ---- the inbound webhook ----------------------------------------------------------------------


@dataclass(frozen=True)
class InboundConfig:
    secret: str | None
    limits: EmailLimits


def inbound_authorised(secret: str | None, body: bytes, token: str | None, signature: str | None) -> bool:
    if not secret:
        return False
    if token and hmac.compare_digest(token.encode(), secret.encode()):
        return True
    if signature:
        expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        given = signature.removeprefix("sha256=").strip().lower()
        # As bytes: compare_digest refuses str with non-ASCII characters (a TypeError, a 500).
        return hmac.compare_digest(expected.encode(), given.encode("utf-8", "replace"))
    return False


def make_blueprint(config: InboundConfig, store: Store, sink: Sink, detector: LanguageDetector,
                   clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> Blueprint:
    bp = Blueprint("email", __name__)

    def error(status: int, reason: str) -> Response:
        resp = jsonify(error=reason)
        resp.status_code = status
        return resp

    @bp.post("/email/inbound")
    def inbound() -> Response:
        if not config.secret:
            return error(503, "email intake is not configured (email.inbound_secret)")
        length = request.content_length
        limit = config.limits.max_bytes
        if length is not None and length > limit:
            log.warning("email: inbound message refused, %d bytes over the %d limit", length, limit)
            return error(413, f"message too large ({length} bytes; limit {limit})")
        body = request.stream.read(limit + 1)
        if len(body) > limit:
            log.warning("email: inbound message refused, over the %d byte limit", limit)
            return error(413, f"message too large (limit {limit} bytes)")
        if not inbound_authorised(config.secret, body, request.headers.get("X-Hotline-Email-Token"),
                                  request.headers.get("X-Hotline-Signature")):
            return error(401, "missing or invalid X-Hotline-Email-Token / X-Hotline-Signature")
        try:
            taken = take_in(body, store, sink, detector, config.limits, clock())
        except EmailError as exc:
            return error(400, str(exc))
        resp = jsonify(signal_id=taken.signal_id, duplicate=not taken.created,
                       auto_submitted=taken.auto_submitted)
        resp.status_code = 202
        return resp

    return bp


# ---- the IMAP poller ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ImapConfig:
    host: str
    port: int
    username: str
    password: str
    folder: str = "INBOX"
    use_ssl: bool = True
    processed_folder: str | None = None


@dataclass
class PollReport:
    taken: int = 0
    duplicates: int = 0
    rejected: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return f"taken={self.taken} duplicates={self.duplicates} rejected={len(self.rejected)}"


def connect_imap(cfg: ImapConfig) -> Any:
    from imapclient import IMAPClient

    context = ssl.create_default_context() if cfg.use_ssl else None
    client = IMAPClient(cfg.host, port=cfg.port, ssl=cfg.use_ssl, ssl_context=context, timeout=30)
    client.login(cfg.username, cfg.password)
    return client


def poll_once(client: Any, folder: str, store: Store, sink: Sink, detector: LanguageDetector,
              limits: EmailLimits, now: datetime, processed_folder: str | None = None) -> PollReport:
    """Take in every message newer than the cursor. Order per message: fetch (PEEK, so nothing
    is marked), commit the signal, then mark seen / move, then advance the cursor."""
    report = PollReport()
    info = client.select_folder(folder)
    uidvalidity = int(info.get(b"UIDVALIDITY", 0))
    cursor = store.email_cursor_get(folder)
    last_uid = cursor[1] if cursor and cursor[0] == uidvalidity else 0
    uids = sorted(u for u in client.search(["UID", f"{last_uid + 1}:*"]) if u > last_uid)
    if not uids:
        return report
    sizes = client.fetch(uids, ["RFC822.SIZE"])
    for uid in uids:
        size = int(sizes.get(uid, {}).get(b"RFC822.SIZE", 0))
        if size > limits.max_bytes:
            reason = f"uid {uid}: {size} bytes, over the {limits.max_bytes} byte limit"
            log.warning("email: not taken in (%s); flagged in the mailbox for a person", reason)
            client.add_flags([uid], [FLAGGED])
            report.rejected.append(reason)
            store.email_cursor_set(folder, uidvalidity, uid, now)
            continue
        raw = client.fetch([uid], ["BODY.PEEK[]"]).get(uid, {}).get(b"BODY[]", b"")
        try:
            taken = take_in(raw, store, sink, detector, limits, now)
        except EmailError as exc:
            log.warning("email: uid %s not taken in (%s); flagged in the mailbox for a person", uid, exc)
            client.add_flags([uid], [FLAGGED])
            report.rejected.append(f"uid {uid}: {exc}")
            store.email_cursor_set(folder, uidvalidity, uid, now)
            continue
        if taken.created:
            report.taken += 1
        else:
            report.duplicates += 1
        client.add_flags([uid], [SEEN])
        if processed_folder:
            client.move([uid], processed_folder)
        store.email_cursor_set(folder, uidvalidity, uid, now)
    return report
