"""The one automatic email: an acknowledgement per new email thread (RFC 3834 auto-reply).

Never sent to auto-submitted mail (bounces, auto-replies, lists), carries Auto-Submitted so
other robots do not answer it, and names the case number in the subject so a reply joins the
case. Without an SMTP server configured it is recorded locally, like every outbound message.
"""

from __future__ import annotations

import logging
import smtplib
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import make_msgid

from intake.signal import Signal
from intake.store import CaseRow

from .runtime import Runtime

log = logging.getLogger(__name__)


def build_ack(rt: Runtime, case: CaseRow, to: str, in_reply_to: str | None) -> EmailMessage:
    ack = rt.settings.email.ack
    msg = EmailMessage()
    msg["From"] = ack.from_address
    msg["To"] = to
    msg["Subject"] = f"Your message to {rt.settings.service.name} [{case.number}]"
    msg["Auto-Submitted"] = "auto-replied"
    msg["X-Auto-Response-Suppress"] = "All"
    domain = ack.from_address.rsplit("@", 1)[-1] or "localhost"
    msg["Message-ID"] = make_msgid(domain=domain)
    if in_reply_to:
        msg["In-Reply-To"] = f"<{in_reply_to.strip('<>')}>"
        msg["References"] = f"<{in_reply_to.strip('<>')}>"
    msg.set_content(ack.text.replace("{voice}", rt.settings.service.voice_number))
    return msg


def send_ack(rt: Runtime, case: CaseRow, signal: Signal) -> str | None:
    """Acknowledge a new email thread once. Returns the status, or None when none is due."""
    cfg = rt.settings.email
    if not cfg.ack.enabled or "auto_submitted" in signal.flags or not signal.sender:
        return None
    msg = build_ack(rt, case, signal.sender, signal.raw.get("message_id"))
    now = datetime.now(UTC)
    outbound_id = rt.store.outbound_create(case.id, "email", signal.sender, msg.get_content(), "auto-ack", now)
    rt.store.email_remember(str(msg["Message-ID"]), now, case_id=case.id)
    return deliver(rt, msg, outbound_id, what=f"email ack for case {case.number}")


def deliver(rt: Runtime, msg: EmailMessage, outbound_id: str, what: str) -> str:
    """Send through the configured SMTP server, or record it when none is configured; the
    outbound row gets the outcome (recorded, sent or failed). Returns that status."""
    cfg = rt.settings.email
    now = datetime.now(UTC)
    if not cfg.smtp.host:
        rt.store.outbound_sent(outbound_id, "recorded", None, now)
        return "recorded"
    try:
        with smtplib.SMTP(cfg.smtp.host, cfg.smtp.port, timeout=20) as smtp:
            if cfg.smtp.starttls:
                smtp.starttls()
            if cfg.smtp.username and cfg.smtp.password:
                smtp.login(cfg.smtp.username, cfg.smtp.password)
            smtp.send_message(msg)
    except (OSError, smtplib.SMTPException) as exc:
        rt.store.outbound_sent(outbound_id, "failed", None, datetime.now(UTC), error_code=exc.__class__.__name__)
        log.error("%s failed (%s)", what, exc.__class__.__name__)
        return "failed"
    rt.store.outbound_sent(outbound_id, "sent", str(msg["Message-ID"])[:64], datetime.now(UTC))
    return "sent"
