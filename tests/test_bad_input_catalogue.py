"""The bad-input catalogue (issue 11; the guide's rule 4), as one table.

Every entry point - the Twilio SMS, status and voice webhooks, the email webhook, the tip form and
its JSON API, the referral API, the operator console, the configuration file, the `hotline`
commands and the triage rule files - meets hostile or malformed input with its documented
answer: a status or exit code, a message that says what was wrong and where, nothing stored that
should not be (signals counted before and after), everything already accepted kept (the form's
answers shown again, the good JSON lines still classified), no traceback, and none of the
contact's words or numbers echoed back in an error.

Each row is one input. Read a row as: "<entry point>: <input> -> <code>, says <text>, stores <n>".
Webhook, form, API and console rows run on the embedded default and on the machine's PostgreSQL +
Redis (several of the bugs this table found were PostgreSQL-only); the others run once.
Rows marked "fixed:" were wrong before this table existed (a 500, a traceback or an exit 1).
"""

from __future__ import annotations

import json
import re
import secrets
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from conftest import CONFIG, make_settings, post_signed, settings_env, sms_params

from console.users import UserStore
from triage.engine import default_rules_dir
from workers.runtime import Runtime
from workers.settings import Settings

# Invented contact data: a fictional 555-01xx number and words no real message holds.
PHONE = "+15555550142"
WORDS = "locked in the back room behind the Alder Lane laundromat"
SECRETS = (PHONE, "555-0142", "5550142", WORDS, "Alder Lane")
EMAIL_SECRET = "catalogue-inbound-secret-0123456789"
PASSWORD = "correct horse battery staple"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
SUBMISSION = re.compile(r'name="submission_token" value="([^"]+)"')


@dataclass(frozen=True)
class Reply:
    code: int
    text: str


class Env:
    """What a row may use; the app and its runtime come from conftest's fixtures, made on first use."""

    def __init__(self, request: pytest.FixtureRequest, tmp_path: Path) -> None:
        self.request = request
        self.tmp = tmp_path

    @cached_property
    def runtime(self) -> Runtime:
        return self.request.getfixturevalue("runtime")

    @cached_property
    def client(self) -> Any:
        return self.request.getfixturevalue("client")

    def signals(self) -> int:
        return int(self.runtime.store.counts()["signals"])

    def cli(self, *args: str, stdin: bytes | None = None) -> Reply:
        """`hotline …` in process (CliRunner), against this test's database and Redis."""
        from workers.cli import cli
        from workers.email_cli import email

        cli.add_command(email)
        backend = self.request.getfixturevalue("backend")
        result = CliRunner().invoke(cli, list(args), input=stdin, env=settings_env(self.tmp, backend),
                                    prog_name="hotline")
        # Anything but a deliberate exit is an exception that escaped the command's guard.
        assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
        return Reply(result.exit_code, result.stdout + result.stderr)

    def file(self, name: str, data: bytes | str) -> str:
        path = self.tmp / name
        path.write_bytes(data.encode() if isinstance(data, str) else data)
        return str(path)


def http(resp: Any) -> Reply:
    return Reply(resp.status_code, resp.get_data(as_text=True))


# ---- how each entry point is driven ------------------------------------------------------------

def sms(**extra: str) -> Callable[[Env], Reply]:
    def send(env: Env) -> Reply:
        params = sms_params(WORDS, from_=PHONE)
        params.update(extra)
        return http(post_signed(env.client, {k: v for k, v in params.items() if v is not None}))
    return send


def sms_without(name: str) -> Callable[[Env], Reply]:
    def send(env: Env) -> Reply:
        params = sms_params(WORDS, from_=PHONE)
        del params[name]
        return http(post_signed(env.client, params))
    return send


def raw_post(path: str, body: bytes, content_type: str = "application/x-www-form-urlencoded",
             **headers: str) -> Callable[[Env], Reply]:
    return lambda env: http(env.client.post(path, data=body, content_type=content_type,
                                            headers={k.replace("_", "-"): v for k, v in headers.items()}))


def status_callback(**params: str) -> Callable[[Env], Reply]:
    return lambda env: http(post_signed(env.client, params, path="/twilio/sms/status"))


def voice(path: str, **extra: str) -> Callable[[Env], Reply]:
    def send(env: Env) -> Reply:
        params = {"CallSid": "CA" + secrets.token_hex(16), "AccountSid": "AC" + "0" * 32, "From": PHONE,
                  "To": "+18005550100", "Direction": "inbound", "CallStatus": "in-progress"}
        params.update(extra)
        return http(post_signed(env.client, {k: v for k, v in params.items() if v is not None}, path=path))
    return send


def email(raw: bytes, **headers: str) -> Callable[[Env], Reply]:
    headers = headers or {"X-Hotline-Email-Token": EMAIL_SECRET}
    return lambda env: http(env.client.post("/email/inbound", data=raw, content_type="message/rfc822",
                                            headers=headers))


def eml(headers: str = "", body: str = WORDS, charset: str = "utf-8") -> bytes:
    return (f"From: Quill Ambers <quill.ambers@example.org>\r\nTo: help@example.org\r\nSubject: A question\r\n"
            f"Date: Tue, 24 Nov 2026 10:00:00 -0500\r\nMessage-ID: <{secrets.token_hex(8)}@example.org>\r\n"
            f"{headers}MIME-Version: 1.0\r\nContent-Type: text/plain; charset={charset}\r\n\r\n{body}\r\n"
            ).encode("utf-8", "surrogateescape")


def nested_rfc822(depth: int) -> bytes:
    inner = eml()
    for _ in range(depth):
        inner = (b"From: a@example.org\r\nSubject: fwd\r\nMIME-Version: 1.0\r\n"
                 b"Content-Type: message/rfc822\r\n\r\n" + inner)
    return inner


def tip_form(drop: str | None = None, **fields: str) -> Callable[[Env], Reply]:
    """POST /tip as a browser sends it: tokens from the form just shown, then the answers."""
    def send(env: Env) -> Reply:
        page = env.client.get("/tip").get_data(as_text=True)
        data = {"csrf_token": CSRF.search(page).group(1), "submission_token": SUBMISSION.search(page).group(1),
                "lang": "en", "website": "", "danger_now": "no", "what_happened": WORDS, **fields}
        if drop:
            del data[drop]
        return http(env.client.post("/tip", data=data))
    return send


def api(payload: Any = None, raw: bytes | None = None, content_type: str = "application/json",
        **headers: str) -> Callable[[Env], Reply]:
    body = raw if raw is not None else json.dumps(payload).encode()
    return lambda env: http(env.client.post("/api/tips", data=body, content_type=content_type,
                                            headers={k.replace("_", "-"): v for k, v in headers.items()}))


def get(path: str) -> Callable[[Env], Reply]:
    return lambda env: http(env.client.get(path))


def console_login(username: str, password: str, with_csrf: bool = True) -> Callable[[Env], Reply]:
    def send(env: Env) -> Reply:
        UserStore(env.runtime.store.engine).add("advocate1", "advocate", PASSWORD, datetime.now(UTC))
        data = {"username": username, "password": password}
        if with_csrf:
            data["csrf_token"] = CSRF.search(env.client.get("/console/login").get_data(as_text=True)).group(1)
        return http(env.client.post("/console/login", data=data))
    return send


def console(method: str, path: str, **form: str) -> Callable[[Env], Reply]:
    """Logged in as an advocate, then one request (a POST carries the page's CSRF token unless
    the row sets csrf_token itself)."""
    def send(env: Env) -> Reply:
        assert console_login("advocate1", PASSWORD)(env).code == 303
        if method == "GET":
            return http(env.client.get(path))
        data = dict(form)
        if "csrf_token" not in data:
            data["csrf_token"] = CSRF.search(env.client.get("/console/queues").get_data(as_text=True)).group(1)
        return http(env.client.post(path, data={k: v for k, v in data.items() if v is not None}))
    return send


def config(old: str, new: str) -> Callable[[Env], Reply]:
    """`hotline --config bad.yaml rules check`: the shipped config with one change."""
    def send(env: Env) -> Reply:
        text = CONFIG.read_text()
        assert old in text, f"the shipped config.yaml no longer holds {old!r}"
        return env.cli("--config", env.file("bad.yaml", text.replace(old, new, 1)), "rules", "check")
    return send


def config_text(text: str) -> Callable[[Env], Reply]:
    return lambda env: env.cli("--config", env.file("bad.yaml", text), "rules", "check")


def hotline(*args: str, stdin: bytes | None = None, files: dict[str, bytes | str] | None = None
            ) -> Callable[[Env], Reply]:
    """A `hotline` command; "{tmp}" in an argument is this test's temporary directory."""
    def send(env: Env) -> Reply:
        for name, data in (files or {}).items():
            env.file(name, data)
        return env.cli(*(a.replace("{tmp}", str(env.tmp)) for a in args), stdin=stdin)
    return send


def rules_check(broken: str | bytes) -> Callable[[Env], Reply]:
    """`hotline rules check DIR` on a copy of the shipped rules plus one broken file."""
    def send(env: Env) -> Reply:
        rules = env.tmp / "rules"
        shutil.copytree(default_rules_dir(), rules)
        (rules / "zz_broken.yaml").write_bytes(broken.encode() if isinstance(broken, str) else broken)
        return env.cli("rules", "check", str(rules))
    return send


def jsonl(*items: Any) -> bytes:
    return b"".join((i if isinstance(i, bytes) else json.dumps(i).encode()) + b"\n" for i in items)


OK_LINE = {"id": "ok-1", "channel": "sms", "text": "What is human trafficking?"}
OK_LINE_2 = {"id": "ok-2", "channel": "email", "text": "I need a lawyer for my visa", "subject": "visa"}
LABELLED = {"id": "g-1", "text": "What is human trafficking?", "category": "general", "urgency": "low"}


# ---- the catalogue ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Row:
    id: str
    send: Callable[[Env], Reply]
    code: int  # HTTP status, or the command's exit code
    says: str  # a piece of the answer that names what was wrong and where ("" when the answer is just the code)
    stored: int = 0  # signals this input leaves in the database
    kept: tuple[str, ...] = ()  # what must still come back: answers shown again, good lines still classified

    @property
    def web(self) -> bool:
        return not self.id.startswith(("config", "cli", "rules"))


ROWS: list[Row] = [
    # -- Twilio SMS webhook: POST /twilio/sms --------------------------------------------------------
    Row("sms-forged-signature", lambda env: http(post_signed(env.client, sms_params(WORDS, from_=PHONE),
                                                             signature="bm90IGEgcmVhbCBzaWduYXR1cmU=")),
        403, "invalid or missing X-Twilio-Signature"),
    Row("sms-signed-with-another-token", lambda env: http(post_signed(env.client, sms_params(WORDS, from_=PHONE),
                                                                      token="another-account-token-0000000")),
        403, "X-Twilio-Signature"),
    Row("sms-missing-From", sms_without("From"), 400, "missing required parameter 'From'"),
    Row("sms-missing-MessageSid", sms_without("MessageSid"), 400, "missing required parameter 'MessageSid'"),
    Row("sms-invalid-utf8-body", raw_post("/twilio/sms", b"MessageSid=SM1&From=%2B15555550142&Body=\xff\xfe",
                                          X_Twilio_Signature="x"), 400, "not valid UTF-8 (byte"),
    Row("sms-percent-encoded-invalid-utf8", raw_post("/twilio/sms", b"MessageSid=SM1&Body=%FF%FE",
                                                     X_Twilio_Signature="x"), 400, "not valid UTF-8"),
    Row("sms-2MB-body", sms(Body="x" * (2 * 1024 * 1024)), 413, "request body too large"),
    Row("sms-get-instead-of-post", get("/twilio/sms"), 405, "Method Not Allowed"),
    Row("sms-nul-and-control-characters", sms(Body=f"help\x00\x07 {WORDS}\x1b[31m", FromCity="Hou\x00ston"),
        200, "<Response", stored=1),  # fixed: a NUL anywhere was a 500 on PostgreSQL
    Row("sms-5000-char-MessageSid", sms(MessageSid="SM" + "a" * 5000), 200, "<Response", stored=1),
    Row("sms-absurd-NumMedia-and-script-url", sms(NumMedia="9" * 30, MediaUrl0="javascript:alert(1)"),
        200, "<Response", stored=1),
    Row("sms-FromState-not-a-state-code", sms(FromState="T" * 50), 200, "<Response", stored=1),
    # ^ fixed: overflowed signals.state VARCHAR(8) on PostgreSQL: a 500 on every retry, the text never taken in

    # -- SMS status callback: POST /twilio/sms/status --------------------------------------------------
    Row("sms-status-missing-MessageStatus", status_callback(MessageSid="SM" + "1" * 32), 400,
        "missing required parameter 'MessageSid' or 'MessageStatus'"),
    Row("sms-status-forged", lambda env: http(post_signed(env.client, {"MessageSid": "SM1", "MessageStatus": "sent"},
                                                          path="/twilio/sms/status", signature="Zm9yZ2Vk")),
        403, "X-Twilio-Signature"),
    Row("sms-status-unknown-message-huge-fields", status_callback(
        MessageSid="SM" + "9" * 300, MessageStatus="delivered" * 20, ErrorCode="3" * 500), 204, ""),
    Row("sms-status-nul-in-sid", status_callback(MessageSid="SM\x00" + "1" * 31, MessageStatus="failed"), 204, ""),
    # ^ fixed: a 500 on PostgreSQL

    # -- voice webhooks: POST /twilio/voice and its callbacks ---------------------------------------
    Row("voice-missing-CallSid", voice("/twilio/voice", CallSid=None), 400, "missing required parameter 'CallSid'"),
    Row("voice-forged-signature", lambda env: http(post_signed(env.client, {"CallSid": "CA1", "From": PHONE},
                                                               path="/twilio/voice", signature="Zm9yZ2Vk")),
        403, "X-Twilio-Signature"),
    Row("voice-CallSid-too-long", voice("/twilio/voice", CallSid="CA" + "1" * 100), 400,
        "parameter 'CallSid' is too long (102 characters; at most 64)"),  # fixed: 500 on PostgreSQL
    Row("voice-menu-junk-digits", voice("/twilio/voice/menu", Digits="#*" * 3000), 200, "not an option"),
    Row("voice-wait-non-numeric-QueueTime", voice("/twilio/voice/wait?lang=xx", QueueTime="soon"), 200,
        "Thank you for waiting"),
    Row("voice-recording-absurd-duration", voice("/twilio/voice/recording", RecordingSid="RE1",
                                                 RecordingDuration="9" * 400), 200, "<Response"),
    # ^ fixed: an int too large for INTEGER was a 500 on both databases
    Row("voice-recording-RecordingSid-too-long", voice("/twilio/voice/recording", RecordingSid="RE" + "1" * 100),
        200, "<Response"),  # fixed: 500 on PostgreSQL
    Row("voice-status-FromState-not-a-state-code", voice("/twilio/voice/status", CallStatus="no-answer",
                                                         FromState="T" * 100), 200, "<Response", stored=1),
    # ^ the missed call still becomes a call-back signal (fixed: 500 on PostgreSQL)
    Row("voice-transcription-oversize", voice("/twilio/voice/transcription", TranscriptionText="x" * 70_000),
        413, "request body too large"),

    # -- email: POST /email/inbound (raw MIME) -----------------------------------------------------
    Row("email-no-credentials", email(eml(), X_Unrelated="1"), 401,
        "missing or invalid X-Hotline-Email-Token / X-Hotline-Signature"),
    Row("email-non-ascii-signature", email(eml(), **{"X-Hotline-Signature": "sha256=\u00e9\u00e9"}), 401,
        "X-Hotline-Signature"),  # fixed: hmac.compare_digest raised TypeError, a 500
    Row("email-binary-junk", email(bytes(range(256)) * 8), 400, "not an email: binary data in the header block"),
    Row("email-empty", email(b"\r\n \r\n"), 400, "empty message"),
    Row("email-outlook-msg-file", email(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 512), 400,
        "Outlook .msg"),
    Row("email-body-without-headers", email(f"{WORDS}\r\ncall me at {PHONE}\r\n".encode()), 400,
        "not an email: no message headers found"),
    Row("email-over-the-size-limit", email(eml(body="x" * (10 * 1024 * 1024 + 10))), 413, "message too large"),
    Row("email-huge-header-and-unknown-charset", email(eml(headers="X-Junk: " + "a" * 200_000 + "\r\n",
                                                           charset="x-no-such-charset")), 202, "signal_id",
        stored=1),  # degrades: read as UTF-8/cp1252, never refused for a charset
    Row("email-forwarded-100-deep", email(nested_rfc822(100)), 202, "signal_id", stored=1),

    # -- web tip form: GET/POST /tip ---------------------------------------------------------------
    Row("tip-without-csrf-token", tip_form(drop="csrf_token"), 400,
        "This form has expired or could not be verified", kept=(WORDS,)),
    Row("tip-bad-state-and-zip", tip_form(state="ZZ", zip="12ab5"), 400, "Choose a state from the list",
        kept=(WORDS, "Enter a 5-digit ZIP code")),
    Row("tip-over-the-size-limit", tip_form(what_happened="x" * 300_000), 413, "too long to send in one piece"),
    Row("tip-bot-filled-honeypot", tip_form(website="https://spam.example.org"), 303, ""),
    # ^ answered exactly like a tip, so the bot learns nothing; nothing kept
    Row("tip-path-in-language-parameter", get("/tip?lang=../../etc/passwd"), 200, '<html lang="en">'),

    # -- JSON API: POST /api/tips, GET /api/referrals ----------------------------------------------
    Row("api-malformed-json", api(raw=b'{"what_happened": "x",'), 400, "The body must be a JSON object."),
    Row("api-json-nested-100000-deep", api(raw=b"[" * 100_000 + b"]" * 100_000), 400,
        "The body must be a JSON object."),  # fixed: RecursionError, a 500
    Row("api-form-encoded-body", api(raw=b"what_happened=x", content_type="application/x-www-form-urlencoded"),
        415, "Content-Type: application/json"),
    Row("api-unknown-field-and-wrong-type", api({"what_happened": 5, "danger_now": "no", "ssn": "x"}), 400,
        '"what_happened":"Must be a string."', kept=('"ssn":"Unknown field."',)),
    Row("api-bad-idempotency-key", api({"what_happened": WORDS, "danger_now": "no"}, Idempotency_Key="../x"),
        400, '"Idempotency-Key":"Must be 16 to 200 characters'),
    Row("api-lone-surrogate-in-text", api(raw=b'{"what_happened": "help \\ud800 ' + WORDS.encode()
                                          + b'", "danger_now": "no"}'), 201, '"reference":"TIP-', stored=1),
    # ^ fixed: a 503 "retry" for input that could never be stored (UTF-8 cannot encode a lone surrogate)
    Row("api-over-the-size-limit", api({"what_happened": "x" * 300_000, "danger_now": "no"}), 413,
        "The request is larger than 262144 bytes."),
    Row("referrals-limit-unicode-digit", get("/api/referrals?limit=%C2%B2"), 400,
        "limit must be a whole number from 1 to 100"),  # fixed: "²".isdigit() but int("²") raised, a 500
    Row("referrals-unknown-parameter", get("/api/referrals?zip=77002&phone=%2B15555550142"), 400,
        "unknown parameter 'phone'"),
    Row("referrals-not-a-number", get("/api/referrals?lat=nan&lon=1"), 400, "lat must be a finite number"),

    # -- operator console: /console/... ------------------------------------------------------------
    Row("console-login-without-csrf", console_login("advocate1", PASSWORD, with_csrf=False), 400,
        "This form has expired or was not sent from the console"),
    Row("console-login-oversize-junk", console_login("a" * 100_000 + "'; --", "b" * 100_000), 401,
        "Wrong username or password."),
    Row("console-login-nul-in-username", console_login("advocate\x001", PASSWORD), 401,
        "Wrong username or password."),  # fixed: a 500 on PostgreSQL
    Row("console-login-2MB-body", console_login("advocate1", "p" * 2_000_000), 413, "Request Entity Too Large"),
    Row("console-case-path-traversal", console("GET", "/console/cases/..%2F..%2Fetc%2Fpasswd"), 404, "Not Found"),
    Row("console-unknown-case-number", console("GET", "/console/api/cases/HT-0000-0000-0"), 404, "no such case"),
    Row("console-post-without-csrf", console("POST", "/console/cases/HT-0000-0000-0/notes", text="x",
                                             csrf_token=None), 400, "This form has expired"),

    # -- config file: hotline --config bad.yaml rules check ----------------------------------------
    Row("config-broken-yaml", config_text("service:\n  port: [1, 2\n"), 2, "bad.yaml: line 3, column 1"),
    Row("config-unknown-key", config("  port: 5000", "  port: 5000\n  prot: 1"), 2,
        "bad.yaml: service.prot: unknown key"),
    Row("config-wrong-type", config("  port: 5000", "  port: five"), 2,
        "bad.yaml: service.port: Input should be a valid integer"),
    Row("config-bad-time-zone", config('  timezone: "America/New_York"', '  timezone: "Mars/Olympus"'), 2,
        "bad.yaml: sms.hours.timezone: unknown time zone 'Mars/Olympus'"),
    Row("config-queue-not-in-teams", config("queue: tta, business_days: 3", "queue: nowhere, business_days: 3"),
        2, "'nowhere' is not a team under 'teams'"),
    Row("config-top-level-list", config_text("- service\n- sms\n"), 2, "top level must be a mapping of sections"),
    Row("config-missing-file", hotline("--config", "{tmp}/nope.yaml", "rules", "check"), 2,
        "nope.yaml: configuration file not found"),

    # -- the hotline command -----------------------------------------------------------------------
    Row("cli-triage-bad-lines-among-good", hotline("triage", "--jsonl", stdin=jsonl(
        OK_LINE, b"{not json", [1, 2], {"id": "t", "text": 5}, {"id": "f", "channel": "fax", "text": WORDS},
        OK_LINE_2)), 2, "line 2: not valid JSON",
        kept=('"id": "ok-1"', '"id": "ok-2"', "line 3: expected a JSON object", "line 4: 'text' must be a string",
              "line 5: 'fax' is not a valid")),
    Row("cli-triage-line-not-utf8", hotline("triage", "--jsonl", stdin=jsonl(
        b'{"id": "x", "text": "caf\xe9 ' + WORDS.encode() + b'"}', OK_LINE)), 2, "line 1: not valid UTF-8 (byte",
        kept=('"id": "ok-1"',)),  # fixed: UnicodeEncodeError, exit 1, the rest of the input lost
    Row("cli-triage-json-nested-deep", hotline("triage", "--jsonl", stdin=jsonl(b"[" * 100_000 + b"]" * 100_000,
                                                                               OK_LINE)),
        2, "line 1: JSON nested too deeply", kept=('"id": "ok-1"',)),  # fixed: RecursionError, exit 1
    Row("cli-triage-surrogate-in-id", hotline("triage", "--jsonl", stdin=jsonl(b'{"id": "\\ud800", "text": "x"}',
                                                                              OK_LINE)),
        2, "line 1: 'id' holds a lone surrogate", kept=('"id": "ok-1"',)),  # fixed: exit 1
    Row("cli-triage-long-id-surrogate-text", hotline("triage", "--jsonl", stdin=jsonl(
        {"id": "i" * 300, "text": "help \ud800 " + WORDS}, OK_LINE)), 0, '"category": ',
        kept=('"id": "ok-1"',)),  # fixed: a 300-character id or a lone surrogate in the text ended the run (exit 1)
    Row("cli-eval-missing-file", hotline("eval", "{tmp}/nope.jsonl"), 2, "nope.jsonl: no such file"),
    Row("cli-eval-binary-garbage", hotline("eval", "{tmp}/garbage.jsonl",
                                           files={"garbage.jsonl": bytes(range(256)) * 4}),
        2, "garbage.jsonl: cannot read (UnicodeDecodeError)"),
    Row("cli-eval-bad-lines", hotline("eval", "{tmp}/c.jsonl", files={"c.jsonl": jsonl(
        b"[" * 100_000 + b"]" * 100_000, {"id": "u", "text": WORDS, "category": "crisis", "urgency": "soon"},
        LABELLED)}), 2, "c.jsonl:1: JSON nested too deeply",
        kept=("c.jsonl:2: 'urgency' must be one of", "macro-F1")),  # fixed: RecursionError, exit 1, no report
    Row("cli-email-parse-binary-junk", hotline("email", "parse", "{tmp}/junk.eml", "--json",
                                               files={"junk.eml": bytes(range(256)) * 8}), 2,
        "email parse: not an email"),
    Row("cli-email-parse-missing-file", hotline("email", "parse", "{tmp}/nope.eml"), 2, "no such file"),
    Row("cli-simulate-sms-ftp-url", hotline("simulate", "sms", "--from", PHONE, WORDS, "--url", "ftp://example.org"),
        2, "--url 'ftp://example.org' is not a server address like http://127.0.0.1:5000"),
    Row("cli-simulate-sms-unparseable-url", hotline("simulate", "sms", "--from", PHONE, WORDS,
                                                    "--url", "http://[::1"), 2, "--url 'http://[::1'"),
    # ^ fixed: ValueError, exit 1 ("internal error")
    Row("cli-simulate-tip-url-with-space", hotline("simulate", "tip", WORDS, "--url", "http://exa mple.org"), 2,
        "it contains a space"),  # fixed: InvalidURL, exit 1
    Row("cli-cases-show-malformed-number", hotline("cases", "show", "HT-12"), 2,
        "'HT-12' is not a valid case number (like HT-7K3M-9QXD-4)"),
    Row("cli-cases-show-path-traversal", hotline("cases", "show", "../../etc/passwd"), 2,
        "'../../etc/passwd' is not a valid case number"),
    Row("cli-cases-show-unknown-number", hotline("cases", "show", "HT-0000-0000-0"), 2, "no case HT-0000-0000-0"),

    # -- triage rule files: hotline rules check DIR -------------------------------------------------
    Row("rules-broken-yaml", rules_check("version: 1\ncategory: tip\nrules: [\n"), 2,
        "zz_broken.yaml: line 4: invalid YAML"),
    Row("rules-pattern-does-not-compile", rules_check(
        "version: 1\ncategory: tip\nrules:\n  - id: tip.x\n    patterns: ['(unclosed']\n"), 2,
        "zz_broken.yaml: rule tip.x: pattern 1 does not compile"),
    Row("rules-weight-not-a-number", rules_check(
        "version: 1\ncategory: tip\nrules:\n  - id: tip.x\n    patterns: ['a']\n    weight: heavy\n"), 2,
        "zz_broken.yaml: rule tip.x: weight must be a non-zero number"),
    Row("rules-file-not-utf8", rules_check(b"\xff\xfe\x00junk"), 2, "zz_broken.yaml: cannot read"),
    Row("rules-not-a-directory", hotline("rules", "check", "{tmp}/no-such-dir"), 2, "no-such-dir: not a directory"),
]

CASES = [pytest.param(row, backend, id=f"{row.id}[{backend}]")
         for row in ROWS for backend in (("embedded", "servers") if row.web else ("embedded",))]


@pytest.fixture
def settings(tmp_path: Path, backend: Any) -> Settings:
    """conftest's settings, with the email webhook's shared secret set."""
    return make_settings(tmp_path, backend, HOTLINE_EMAIL_INBOUND_SECRET=EMAIL_SECRET)


def test_the_catalogue_has_unique_rows_over_every_entry_point() -> None:
    ids = [r.id for r in ROWS]
    assert len(ids) == len(set(ids)) >= 45
    assert {i.split("-")[0] for i in ids} >= {"sms", "voice", "email", "tip", "api", "referrals", "console",
                                              "config", "cli", "rules"}


@pytest.mark.parametrize(("row", "backend"), CASES, indirect=["backend"])
def test_bad_input(row: Row, backend: Any, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    env = Env(request, tmp_path)
    before = env.signals()
    reply = row.send(env)
    assert reply.code == row.code, reply.text[:2000]
    assert row.says in reply.text, reply.text[:2000]
    for kept in row.kept:
        assert kept in reply.text, f"{kept!r} not kept in: {reply.text[:2000]}"
    assert env.signals() - before == row.stored
    assert "Traceback" not in reply.text and 'File "' not in reply.text and "internal error" not in reply.text
    for secret in SECRETS:
        if not any(secret in k for k in row.kept):
            assert secret not in reply.text, f"{secret!r} echoed back"
