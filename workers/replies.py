"""Advocates' replies to a case's texter: through Twilio's REST API with a delivery status
callback, or recorded locally when no credentials are configured (the embedded default).
A number that texted STOP gets nothing until it texts START."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from intake.store import CaseRow

from .runtime import Runtime

log = logging.getLogger(__name__)

MAX_REPLY_CHARS = 1600
MAX_EMAIL_REPLY_CHARS = 20_000


class ReplyRefused(ValueError):
    """The reply cannot be sent (unknown case, opted out, empty); the message says why."""


def _checked(rt: Runtime, case_number: str, text: str, limit: int) -> tuple[str, CaseRow]:
    """The reply's text, stripped, and its case; ReplyRefused when either will not do."""
    text = (text or "").strip()
    if not text:
        raise ReplyRefused("the reply is empty")
    if len(text) > limit:
        raise ReplyRefused(f"the reply is {len(text)} characters; the limit is {limit}")
    case = rt.store.case_by_number(case_number)
    if case is None:
        raise ReplyRefused(f"no case {case_number}")
    return text, case


def send_sms_reply(rt: Runtime, case_number: str, text: str, author: str) -> dict[str, str | None]:
    text, case = _checked(rt, case_number, text, MAX_REPLY_CHARS)
    to = rt.store.latest_sender(case.id, "sms")
    if not to:
        raise ReplyRefused(f"case {case_number} has no texter to reply to")
    if rt.store.is_opted_out("phone", to):
        raise ReplyRefused(f"the texter of case {case_number} opted out (STOP); nothing was sent")
    now = datetime.now(UTC)
    outbound_id = rt.store.outbound_create(case.id, "sms", to, text, author, now)
    client = rt.notifier.twilio
    if client is None:
        rt.store.outbound_sent(outbound_id, "recorded", None, now)
        log.info("reply for case %s recorded (no Twilio credentials)", case.number)
        return {"id": outbound_id, "status": "recorded", "sid": None}
    base = rt.settings.service.public_base_url
    try:
        msg = client.messages.create(to=to, from_=rt.settings.sms.from_number, body=text,
                                     status_callback=f"{base}/twilio/sms/status" if base else None)
    except Exception as exc:  # the advocate sees the failure on the case; nothing is silently lost
        code = str(getattr(exc, "code", None) or exc.__class__.__name__)[:64]
        rt.store.outbound_sent(outbound_id, "failed", None, datetime.now(UTC), error_code=code)
        log.error("reply for case %s failed (%s)", case.number, exc.__class__.__name__)
        return {"id": outbound_id, "status": "failed", "sid": None}
    status = (getattr(msg, "status", None) or "queued").lower()
    rt.store.outbound_sent(outbound_id, status, msg.sid, datetime.now(UTC))
    return {"id": outbound_id, "status": status, "sid": msg.sid}


def send_email_reply(rt: Runtime, case_number: str, text: str, author: str) -> dict[str, str | None]:
    """Reply to the last email of a case's thread: In-Reply-To/References keep the thread, and the
    case number in the subject brings an answer back to the case."""
    from email.message import EmailMessage
    from email.utils import make_msgid

    from .mailer import deliver

    text, case = _checked(rt, case_number, text, MAX_EMAIL_REPLY_CHARS)
    last = next((s.signal for s in reversed(rt.store.case_signals(case.id))
                 if s.signal.channel.value == "email" and s.signal.sender), None)
    if last is None:
        raise ReplyRefused(f"case {case_number} has no email to reply to")
    sender = rt.settings.email.ack.from_address
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = last.sender
    subject = (last.subject or "").strip()
    subject = subject if subject.lower().startswith("re:") else f"Re: {subject}" if subject else "Re: your message"
    msg["Subject"] = subject if case.number in subject else f"{subject} [{case.number}]"
    msg["Message-ID"] = make_msgid(domain=sender.rsplit("@", 1)[-1] or "localhost")
    parent = last.raw.get("message_id")
    if parent:
        msg["In-Reply-To"] = f"<{str(parent).strip('<>')}>"
        msg["References"] = f"<{str(parent).strip('<>')}>"
    msg.set_content(text)
    now = datetime.now(UTC)
    outbound_id = rt.store.outbound_create(case.id, "email", last.sender, text, author, now)
    rt.store.email_remember(str(msg["Message-ID"]), now, case_id=case.id)
    status = deliver(rt, msg, outbound_id, what=f"email reply for case {case.number}")
    return {"id": outbound_id, "status": status, "sid": None}
