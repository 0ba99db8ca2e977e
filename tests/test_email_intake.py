"""Email intake: the inbound webhook, a real IMAP server (pymap), threading into cases,
loop guards and the once-per-thread acknowledgement."""

from __future__ import annotations

import hashlib
import hmac
import os
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime

import pytest
from conftest import CONFIG, drain, make_settings
from imapclient import IMAPClient

from intake.channels.email import poll_once
from intake.channels.email_parse import EmailLimits
from workers.runtime import build_runtime
from workers.web import create_app

SECRET = "inbound-secret-for-tests-0123456789"


def eml(subject: str, body: str, msgid: str | None, sender: str = "Quill Ambers <quill.ambers@example.org>",
        extra: str = "") -> bytes:
    head = (f"From: {sender}\r\nTo: help@example.org\r\nSubject: {subject}\r\n"
            "Date: Mon, 23 Nov 2026 10:00:00 -0500\r\n")
    if msgid:
        head += f"Message-ID: <{msgid}>\r\n"
    mime = "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
    return (head + extra + mime + body + "\r\n").encode()


@pytest.fixture
def mail(tmp_path, backend):
    config = tmp_path / "config.yaml"
    config.write_text(CONFIG.read_text().replace("  ack:\n    # Send one acknowledgement per new email thread "
                                                 "(never to auto-submitted mail).\n    enabled: false",
                                                 "  ack:\n    enabled: true"))
    settings = make_settings(tmp_path, backend, config=config, HOTLINE_EMAIL_INBOUND_SECRET=SECRET)
    assert settings.email.ack.enabled
    rt = build_runtime(settings)
    yield create_app(settings, rt).test_client(), rt
    rt.close()


def post_mail(client, raw: bytes, token: str | None = SECRET, signature: str | None = None):
    headers = {}
    if token:
        headers["X-Hotline-Email-Token"] = token
    if signature:
        headers["X-Hotline-Signature"] = signature
    return client.post("/email/inbound", data=raw, headers=headers, content_type="message/rfc822")


def test_inbound_email_becomes_a_routed_case_with_one_acknowledgement(mail):
    client, rt = mail
    resp = post_mail(client, eml("Question about services", "I need a lawyer for my T visa.", "a1@example.org"))
    assert resp.status_code == 202 and resp.get_json()["duplicate"] is False
    again = post_mail(client, eml("Question about services", "I need a lawyer for my T visa.", "a1@example.org"))
    assert again.get_json()["duplicate"] is True
    drain(rt)
    [row] = rt.store.recent_signals()
    assert row["channel"] == "email" and row["category"] == "referral" and row["sla_clock"] == "business"
    [ack] = rt.store.outbound_for()
    assert ack["to"] == "quill.ambers@example.org" and ack["status"] == "recorded" and "911" in ack["body"]


def test_a_reply_joins_the_case_and_gets_no_second_acknowledgement(mail):
    client, rt = mail
    post_mail(client, eml("Help", "I need a shelter for me and my kids.", "t1@example.org"))
    drain(rt)
    number = rt.store.recent_signals()[0]["case_number"]
    reply = eml("Re: Help", "Also, he took my passport.\r\n\r\n> I need a shelter for me and my kids.",
                "t2@example.org", extra="In-Reply-To: <t1@example.org>\r\nReferences: <t1@example.org>\r\n")
    post_mail(client, reply)
    by_number = eml(f"update on {number}", "Here is more information about my case.", "t3@example.org",
                    sender="Other Person <other.person@example.com>")
    post_mail(client, by_number)
    drain(rt)
    rows = rt.store.recent_signals()
    assert len(rows) == 3 and {r["case_number"] for r in rows} == {number}
    assert len(rt.store.outbound_for()) == 1


@pytest.mark.parametrize("extra", [
    "Auto-Submitted: auto-replied\r\n",
    "Precedence: bulk\r\n",
    "List-Id: <announce.example.org>\r\n",
])
def test_auto_submitted_mail_is_recorded_but_never_answered(mail, extra):
    client, rt = mail
    resp = post_mail(client, eml("Out of office", "I am away until Monday.", "auto@example.org", extra=extra))
    assert resp.status_code == 202 and resp.get_json()["auto_submitted"] is True
    drain(rt)
    assert rt.store.counts()["signals"] == 1
    assert rt.store.outbound_for() == []


def test_mailer_daemon_bounce_is_not_answered(mail):
    client, rt = mail
    post_mail(client, eml("Undelivered Mail Returned to Sender", "The message could not be delivered.",
                          "bounce@example.org", sender="MAILER-DAEMON@example.org"))
    drain(rt)
    assert rt.store.outbound_for() == []


def test_inbound_authentication_and_bad_input(mail):
    client, rt = mail
    raw = eml("Hi", "hello", "auth@example.org")
    assert post_mail(client, raw, token=None).status_code == 401
    assert post_mail(client, raw, token="wrong").status_code == 401
    good_sig = "sha256=" + hmac.new(SECRET.encode(), raw, hashlib.sha256).hexdigest()
    assert post_mail(client, raw, token=None, signature=good_sig).status_code == 202
    assert post_mail(client, raw, token=None, signature="sha256=00").status_code == 401
    empty = post_mail(client, b"")
    assert empty.status_code == 400 and "error" in empty.get_json()
    huge = post_mail(client, b"X-Pad: " + b"a" * (11 * 1024 * 1024))
    assert huge.status_code == 413 and "too large" in huge.get_json()["error"]
    assert rt.store.counts()["signals"] == 1


# ---- a real IMAP server ------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def imap_server():
    port = _free_port()
    proc = subprocess.Popen([os.path.join(os.path.dirname(sys.executable), "pymap"), "--host", "127.0.0.1",
                             "--port", str(port), "--no-tls", "dict", "--demo-user", "helpdesk",
                             "--demo-password", "mailbox-pass"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            time.sleep(0.1)
    yield port
    proc.terminate()
    proc.wait(10)


def _imap(port: int) -> IMAPClient:
    c = IMAPClient("127.0.0.1", port=port, ssl=False, timeout=10)
    c.login("helpdesk", "mailbox-pass")
    return c


def test_imap_poll_takes_each_message_once_and_survives_a_crash_before_marking(mail, imap_server):
    _client, rt = mail
    outside = _imap(imap_server)  # the outside world delivering mail
    for i in range(3):
        outside.append("INBOX", eml(f"Tip {i}", "I want to report a suspicious massage parlor on Elm St.",
                                    f"imap{i}@example.org"))
    outside.append("INBOX", eml("No id", "A message from an old mailer with no Message-ID.", None))
    limits = EmailLimits(max_bytes=rt.settings.email.max_bytes)

    poller = _imap(imap_server)
    report = poll_once(poller, "INBOX", rt.store, rt.sink, rt.detector, limits, datetime.now(UTC))
    assert (report.taken, report.duplicates, report.rejected) == (4, 0, [])
    poller.select_folder("INBOX")
    flags = poller.get_flags(poller.search(["ALL"]))
    assert all(b"\\Seen" in f for f in flags.values())
    assert poll_once(poller, "INBOX", rt.store, rt.sink, rt.detector, limits, datetime.now(UTC)).taken == 0

    # a crash after the commit but before the cursor moved: the next poll re-reads, nothing doubles
    rt.store.email_cursor_set("INBOX", rt.store.email_cursor_get("INBOX")[0], 0, datetime.now(UTC))
    again = poll_once(poller, "INBOX", rt.store, rt.sink, rt.detector, limits, datetime.now(UTC))
    assert (again.taken, again.duplicates) == (0, 4)
    assert rt.store.counts()["signals"] == 4
    drain(rt)
    assert {r["category"] for r in rt.store.recent_signals()} >= {"tip"}


def test_imap_too_large_or_unparseable_is_flagged_for_a_person_not_lost(mail, imap_server):
    _client, rt = mail
    outside = _imap(imap_server)
    outside.append("INBOX", eml("Big", "x" * 5000, "big@example.org"))
    outside.append("INBOX", eml("Fine", "I have a question about volunteering.", "fine@example.org"))
    poller = _imap(imap_server)
    report = poll_once(poller, "INBOX", rt.store, rt.sink, rt.detector, EmailLimits(max_bytes=2000),
                       datetime.now(UTC))
    assert report.taken == 1 and len(report.rejected) == 1 and "limit" in report.rejected[0]
    poller.select_folder("INBOX")
    flagged = poller.search(["FLAGGED"])
    assert len(flagged) == 1
