"""Every channel end to end through a real HTTP server, with every logger at DEBUG: the logs hold
no phone number, email address, name or message text that came in.

The app runs in werkzeug's threaded server (so werkzeug's request log is in it too); requests go
over TCP like Twilio's, a mail relay's, a browser's and an advocate's: SMS (texts, STOP, a forged
signature, a delivery callback), voice (call, menu, voicemail, recording and transcription
callbacks, status), email (accepted and refused), the tip form and the tips API (accepted and
refused), and the console (a failed and a good login, the case, revealing the contact, a note, a
reply, closing). The worker triages everything in this process. One handler on the root logger
catches every record raw - before any redaction filter - with its traceback, from our modules,
werkzeug, rq, SQLAlchemy (statements, parameters and rows), alembic and urllib3.
"""

from __future__ import annotations

import logging
import re
import secrets
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests
from conftest import TEST_TOKEN, Backend, drain, make_settings
from werkzeug.serving import make_server

from console.users import UserStore
from intake.twilio_auth import sign
from workers.runtime import Runtime, build_runtime
from workers.web import create_app

INBOUND_SECRET = "inbound-secret-for-log-test-0123456789"
PASSWORD = "lantern orchard copper 42"

TEXTER = "+15555550171"
CALLER = "+15555550172"
STOPPER = "+15555550173"
TIPSTER_PHONE = "(555) 555-0174"
API_PHONE = "+1 555-555-0175"
MAIL_FROM = "odalys.brightwater@example.org"
TIP_EMAIL = "p.lindqvist@example.org"
API_EMAIL = "halden.roux@example.org"
SMS_TEXT = "Marisol Quenby here, the orchard boss keeps our passports and we cannot leave"
SMS_TEXT2 = "he says Ysolde Farrant will drive us to the next farm on friday"
TRANSCRIPT = "This is Tobias Wrenfield, they locked us in the packing shed and he has a gun"
MAIL_SUBJECT = "Help for my cousin Renata Ilves"
MAIL_BODY = "My cousin Renata Ilves works at a nail salon, the owner Corvin Ashdale holds her documents."
TIP_TEXT = "Anselm Gravenor brings girls to the Bluefinch motel every weekend, they look fourteen."
TIP_NAME = "Perpetua Lindqvist"
API_TEXT = "Workers at the Quarrytown bakery sleep in the basement, the manager Ilsabet Morrow locks it."
NOTE = "Spoke with Marisol Quenby; safe to text after 6 pm, never call."
REPLY = "Marisol, we are here. Reply SAFE when you can talk."

# What must never reach a log: every number in the forms it came in and in E.164, every address,
# every name, every message (whole, and words distinctive enough to find in a fragment).
SECRETS = [
    TEXTER, CALLER, STOPPER, "5555550171", "5555550172", "5555550173", TIPSTER_PHONE, "555-0174", "5555550174",
    API_PHONE, "5555550175", MAIL_FROM, TIP_EMAIL, API_EMAIL, "brightwater", "lindqvist", "halden",
    "Marisol", "Quenby", "Ysolde", "Farrant", "Tobias", "Wrenfield", "Renata", "Ilves", "Corvin", "Ashdale",
    "Anselm", "Gravenor", "Perpetua", "Ilsabet", "Bluefinch", "Quarrytown", "packing shed",
    SMS_TEXT, SMS_TEXT2, TRANSCRIPT, MAIL_SUBJECT, MAIL_BODY, TIP_TEXT, API_TEXT, NOTE, REPLY, PASSWORD,
]


class Capture(logging.Handler):
    """Every record, formatted with its traceback, as the code logged it (no filter applied)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
        self.lines: list[str] = []
        self.names: set[str] = set()
        self._lock_lines = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except Exception as exc:  # a record that cannot be formatted is still evidence
            line = f"{record.name} UNFORMATTABLE {record.msg!r} {record.args!r} ({exc})"
        with self._lock_lines:
            self.lines.append(line)
            self.names.add(record.name)


@pytest.fixture
def capture() -> Iterator[Capture]:
    """Root and every logger that exists at DEBUG, propagating to one capturing handler;
    loggers made later inherit DEBUG from the root."""
    root = logging.getLogger()
    handler = Capture()
    loggers = [lg for lg in logging.root.manager.loggerDict.values() if isinstance(lg, logging.Logger)]
    for name in ("sqlalchemy", "sqlalchemy.engine", "sqlalchemy.pool", "werkzeug", "rq", "alembic", "urllib3"):
        loggers.append(logging.getLogger(name))
    saved = [(lg, lg.level, lg.propagate, lg.disabled) for lg in loggers]
    root_level = root.level
    for lg in loggers:
        lg.setLevel(logging.DEBUG)
        lg.propagate = True
        lg.disabled = False
    root.setLevel(logging.DEBUG)
    root.addHandler(handler)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(root_level)
        for lg, level, propagate, disabled in saved:
            lg.setLevel(level)
            lg.propagate = propagate
            lg.disabled = disabled


class Server:
    """The web app in werkzeug's threaded server on a free port."""

    def __init__(self, app: Any) -> None:
        self.httpd = make_server("127.0.0.1", 0, app, threaded=True)
        self.base = f"http://127.0.0.1:{self.httpd.server_port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def twilio(self, path: str, params: dict[str, str], token: str = TEST_TOKEN) -> requests.Response:
        url = self.base + path
        return requests.post(url, data=params, headers={"X-Twilio-Signature": sign(token, url, params)}, timeout=30)

    def stop(self) -> None:
        self.httpd.shutdown()
        self.thread.join(10)


@pytest.fixture
def line(tmp_path: Path, backend: Backend, capture: Capture) -> Iterator[tuple[Server, Runtime]]:
    settings = make_settings(tmp_path, backend, HOTLINE_EMAIL_INBOUND_SECRET=INBOUND_SECRET)
    rt = build_runtime(settings)
    app = create_app(settings, rt)
    server = Server(app)
    yield server, rt
    server.stop()
    rt.close()


def sms(server: Server, body: str, from_: str, **extra: str) -> requests.Response:
    params = {"MessageSid": "SM" + secrets.token_hex(16), "AccountSid": "AC" + "0" * 32, "From": from_,
              "To": "233733", "Body": body, "NumMedia": "0", "FromCountry": "US", "FromCity": "SPRINGFIELD",
              "FromZip": "62701", **extra}
    return server.twilio("/twilio/sms", params)


def voice(server: Server, path: str, sid: str, **extra: str) -> requests.Response:
    params = {"CallSid": sid, "AccountSid": "AC" + "0" * 32, "From": CALLER, "Caller": CALLER,
              "To": "+18005550100", "CallStatus": "in-progress", "FromState": "OH", "FromZip": "43604", **extra}
    return server.twilio(path, params)


def email(sender: str, subject: str, body: str) -> bytes:
    return (f"From: Odalys Brightwater <{sender}>\r\nTo: help@example.org\r\nSubject: {subject}\r\n"
            f"Date: Mon, 23 Nov 2026 10:00:00 -0500\r\nMessage-ID: <{secrets.token_hex(8)}@example.org>\r\n"
            "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" + body + "\r\n").encode()


CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
FORM_FIELD = re.compile(r'name="(csrf_token|submission_token|lang)" value="([^"]*)"')


def form_tokens(session: requests.Session, url: str) -> dict[str, str]:
    page = session.get(url, timeout=30)
    assert page.status_code == 200
    return dict(FORM_FIELD.findall(page.text))


def drive_every_channel(server: Server, rt: Runtime) -> str:
    # ---- SMS: a conversation, a STOP, a forged request, a delivery callback --------------------
    assert sms(server, SMS_TEXT, TEXTER).status_code == 200
    assert sms(server, SMS_TEXT2, TEXTER).status_code == 200
    assert sms(server, "STOP", STOPPER).status_code == 200
    forged = requests.post(server.base + "/twilio/sms", data={"From": TEXTER, "Body": SMS_TEXT},
                           headers={"X-Twilio-Signature": "forged"}, timeout=30)
    assert forged.status_code == 403
    status = server.twilio("/twilio/sms/status", {"MessageSid": "SM" + "9" * 32, "MessageStatus": "delivered",
                                                  "To": TEXTER, "From": "233733"})
    assert status.status_code == 204
    # ---- voice: menu, voicemail, recording, transcription, end of call ------------------------
    sid = "CA" + secrets.token_hex(16)
    rec = {"RecordingSid": "RE" + sid[2:], "RecordingUrl": f"https://api.twilio.example/{sid}",
           "RecordingDuration": "42"}
    for path, extra in (("/twilio/voice", {}), ("/twilio/voice/menu", {"Digits": "1"}),
                        ("/twilio/voice/queue?lang=en", {"QueueResult": "leave"}),
                        ("/twilio/voice/recorded?lang=en", rec),
                        ("/twilio/voice/recording", {"RecordingStatus": "completed", **rec}),
                        ("/twilio/voice/transcription", {"RecordingSid": rec["RecordingSid"],
                                                         "TranscriptionText": TRANSCRIPT,
                                                         "TranscriptionStatus": "completed"}),
                        ("/twilio/voice/status", {"CallStatus": "completed", "CallDuration": "95"})):
        assert voice(server, path, sid, **extra).status_code in (200, 204), path
    # ---- email: accepted, and refused without the token ----------------------------------------
    raw = email(MAIL_FROM, MAIL_SUBJECT, MAIL_BODY)
    ok = requests.post(server.base + "/email/inbound", data=raw, timeout=30,
                       headers={"Content-Type": "message/rfc822", "X-Hotline-Email-Token": INBOUND_SECRET})
    assert ok.status_code in (200, 201, 202), ok.text
    refused = requests.post(server.base + "/email/inbound", data=raw, timeout=30,
                            headers={"Content-Type": "message/rfc822", "X-Hotline-Email-Token": "wrong"})
    assert refused.status_code in (401, 403)
    # ---- the tip form (with contact details, and one with a mistake) and the API ---------------
    browser = requests.Session()
    tokens = form_tokens(browser, server.base + "/tip")
    bad = browser.post(server.base + "/tip", timeout=30, data={
        **tokens, "website": "", "danger_now": "no", "what_happened": TIP_TEXT, "contact_consent": "yes",
        "contact_name": TIP_NAME, "contact_email": "not an address " + TIP_EMAIL, "city": "Bluefinch"})
    assert bad.status_code == 400
    tokens = form_tokens(browser, server.base + "/tip")
    tip = browser.post(server.base + "/tip", timeout=30, allow_redirects=False, data={
        **tokens, "website": "", "danger_now": "no", "what_happened": TIP_TEXT, "contact_consent": "yes",
        "contact_name": TIP_NAME, "contact_phone": TIPSTER_PHONE, "contact_email": TIP_EMAIL,
        "contact_safe_time": "after 6 pm, ask for Perpetua", "city": "Bluefinch", "state": "IL"})
    assert tip.status_code == 303, tip.text[:300]
    assert browser.get(server.base + tip.headers["Location"], timeout=30).status_code == 200
    api = requests.post(server.base + "/api/tips", timeout=30, json={
        "danger_now": "no", "what_happened": API_TEXT, "contact_consent": True, "contact_phone": API_PHONE,
        "contact_email": API_EMAIL, "city": "Quarrytown", "state": "TX"})
    assert api.status_code == 201, api.text
    api_bad = requests.post(server.base + "/api/tips", timeout=30, json={
        "danger_now": "maybe", "what_happened": API_TEXT, "contact_consent": True, "contact_email": API_EMAIL})
    assert api_bad.status_code == 400
    # ---- the worker ------------------------------------------------------------------------------
    drain(rt)
    numbers = {s["case_number"] for s in rt.store.recent_signals(50) if s["case_number"]}
    assert len(numbers) >= 4  # texter, caller, email, two tips (a STOP may join its own case)
    [texter_case] = {s["case_number"] for s in rt.store.recent_signals(50)
                     if s["channel"] == "sms" and (rt.store.load_signal(s["id"]).signal.sender == TEXTER)}  # type: ignore[union-attr]
    # ---- the console: a failed login (an address typed as the name), a good one, the case, ------
    # ---- the contact revealed, a note, a reply, closing ---------------------------------------
    UserStore(rt.store.engine).add("advocate.kim", "advocate", PASSWORD, datetime.now(UTC))
    staff = requests.Session()
    login = server.base + "/console/login"
    wrong = staff.post(login, timeout=30, data={"csrf_token": CSRF.findall(staff.get(login, timeout=30).text)[0],
                                                "username": MAIL_FROM, "password": PASSWORD})
    assert wrong.status_code in (200, 401, 403)
    good = staff.post(login, timeout=30, allow_redirects=False, data={
        "csrf_token": CSRF.findall(staff.get(login, timeout=30).text)[0], "username": "advocate.kim",
        "password": PASSWORD})
    assert good.status_code == 303, good.text[:300]
    case_url = f"{server.base}/console/cases/{texter_case}"
    page = staff.get(case_url, timeout=30)
    assert page.status_code == 200 and "orchard" in page.text
    tok = CSRF.findall(page.text)[0]
    contact = staff.post(case_url + "/contact", data={"csrf_token": tok}, timeout=30)
    assert contact.status_code == 200 and TEXTER in contact.text
    for action, data in (("notes", {"body": NOTE}), ("reply", {"channel": "sms", "text": REPLY}),
                         ("status", {"to": "closed", "reason": "Safe with family; referred to legal aid"})):
        resp = staff.post(f"{case_url}/{action}", data={"csrf_token": tok, **data}, timeout=30,
                          allow_redirects=False)
        assert resp.status_code == 303, f"{action}: {resp.status_code} {resp.text[:300]}"
    assert staff.get(f"{server.base}/console/queues", timeout=30).status_code == 200
    assert NOTE in staff.get(case_url, timeout=30).text  # read back: notes, replies, audit trail
    drain(rt)
    return texter_case


def test_no_contact_data_in_any_log_from_any_channel(line: tuple[Server, Runtime], capture: Capture) -> None:
    server, rt = line
    number = drive_every_channel(server, rt)
    case = rt.store.case_by_number(number)
    assert case is not None and case.status == "closed"

    logged = "\n".join(capture.lines)
    # The test sees the logs it is checking: ours, the web server's, the queue's and the database's.
    assert "accepted channel=sms" in logged and "accepted channel=voice" in logged
    assert "POST /twilio/sms" in logged and "POST /console/login" in logged  # werkzeug's request log
    assert {"werkzeug", "intake.sink", "workers.jobs"} <= capture.names
    assert any(n.startswith("rq.") for n in capture.names)
    assert any(n.startswith("sqlalchemy.engine") for n in capture.names)
    leaks = [f"{s!r} in: {ln[:300]}" for s in SECRETS for ln in capture.lines if s.lower() in ln.lower()]
    assert not leaks, f"{len(leaks)} log lines hold contact data:\n" + "\n".join(leaks[:40])


def test_places_named_in_tips_and_messages_are_not_stored_in_plaintext(line: tuple[Server, Runtime]) -> None:
    # Found by the test above: triage's location indicator sat in plaintext in triage_results.
    server, rt = line
    assert sms(server, "they keep us at the Bluefinch motel in Quarrytown, Texas", TEXTER).status_code == 200
    assert requests.post(server.base + "/api/tips", timeout=30, json={
        "danger_now": "no", "what_happened": API_TEXT, "city": "Quarrytown", "state": "TX"}).status_code == 201
    drain(rt)
    from sqlalchemy import JSON, String, Text, select

    from workers.schema import target_metadata

    stored: list[str] = []
    with rt.store.engine.connect() as conn:
        for table in target_metadata().tables.values():
            cols = [c for c in table.columns if isinstance(c.type, (String, Text, JSON))]
            for row in conn.execute(select(*cols)) if cols else []:
                stored += [repr(v) for v in row if v is not None]
    assert len(stored) > 20
    assert not [v for v in stored if "Quarrytown" in v or "Bluefinch" in v]
    for sig in rt.store.recent_signals():
        if sig["channel"] == "webform":
            assert rt.store.load_signal(sig["id"]).signal.location.city == "Quarrytown"  # type: ignore[union-attr]
