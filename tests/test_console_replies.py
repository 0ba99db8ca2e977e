"""Replies from the console: by email through a real (local) SMTP server, threaded so the
contact's mail program shows it in the conversation and an answer comes back to the case;
and `hotline users` for making the accounts that send them."""

from __future__ import annotations

import email
import socket
import subprocess
import sys
from collections.abc import Iterator
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiosmtpd.controller import Controller
from conftest import CONFIG, REPO, drain, make_settings, settings_env
from test_console import PASSWORD, token
from test_email_intake import SECRET, eml, post_mail

from console.users import UserStore
from workers.runtime import build_runtime
from workers.web import create_app


class Inbox:
    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(email.message_from_bytes(envelope.content))
        return "250 OK"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    inbox, port = Inbox(), _free_port()
    ctl = Controller(inbox, hostname="127.0.0.1", port=port)
    ctl.start()
    yield inbox, port
    ctl.stop()


def test_an_email_reply_is_sent_in_the_thread_and_recorded_on_the_case(tmp_path: Path, backend: Any,
                                                                       smtp: tuple[Inbox, int]) -> None:
    inbox, port = smtp
    data = yaml.safe_load(CONFIG.read_text())
    data["email"]["smtp"] = {"host": "127.0.0.1", "port": port, "starttls": False}
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(data))
    settings = make_settings(tmp_path, backend, config=config, HOTLINE_EMAIL_INBOUND_SECRET=SECRET)
    rt = build_runtime(settings)
    try:
        app = create_app(settings, rt)
        c = app.test_client()
        assert post_mail(c, eml("Worried about my cousin", "My cousin works at a farm and they keep her "
                                "passport. Is this trafficking?", "first@example.org")).status_code in (200, 202)
        drain(rt)
        number = next(s["case_number"] for s in rt.store.recent_signals(5) if s["case_number"])
        from datetime import UTC, datetime

        UserStore(rt.store.engine).add("rosa", "advocate", PASSWORD, datetime.now(UTC))
        c.post("/console/login", data={"csrf_token": token(c, "/console/login"), "username": "rosa",
                                       "password": PASSWORD})
        resp = c.post(f"/console/cases/{number}/reply",
                      data={"csrf_token": token(c, f"/console/cases/{number}"), "channel": "email",
                            "text": "Thank you for writing. An advocate can talk this through with you."})
        assert resp.status_code == 303 and "done=reply" in resp.headers["Location"]
        assert len(inbox.messages) == 1
        sent = inbox.messages[0]
        assert sent["To"] == "Quill Ambers <quill.ambers@example.org>" or "quill.ambers@example.org" in sent["To"]
        assert sent["In-Reply-To"] == "<first@example.org>"
        assert sent["Subject"] == f"Re: Worried about my cousin [{number}]"
        case = rt.store.case_by_number(number)
        statuses = [(o["author"], o["status"]) for o in rt.store.outbound_for(case.id)]
        assert ("rosa", "sent") in statuses
        # The contact answers the reply: it joins the same case.
        answer = eml(f"Re: Worried about my cousin [{number}]", "She says she cannot leave.", "second@example.org",
                     extra=f"In-Reply-To: <{sent['Message-ID'].strip('<>')}>\r\n")
        post_mail(c, answer)
        drain(rt)
        assert len(rt.store.case_signals(case.id)) == 2
    finally:
        rt.close()


def test_an_sms_only_case_offers_no_email_reply_and_refuses_one(tmp_path: Path, backend: Any) -> None:
    from conftest import post_signed, sms_params

    settings = make_settings(tmp_path, backend)
    rt = build_runtime(settings)
    try:
        c = create_app(settings, rt).test_client()
        post_signed(c, sms_params(body="is this the hotline? i have a question about a job offer"))
        drain(rt)
        number = next(s["case_number"] for s in rt.store.recent_signals(5) if s["case_number"])
        from datetime import UTC, datetime

        UserStore(rt.store.engine).add("rosa", "advocate", PASSWORD, datetime.now(UTC))
        c.post("/console/login", data={"csrf_token": token(c, "/console/login"), "username": "rosa",
                                       "password": PASSWORD})
        page = c.get(f"/console/cases/{number}").text
        assert '<option value="sms">' in page and '<option value="email">' not in page
        resp = c.post(f"/console/cases/{number}/reply", data={"csrf_token": token(c, f"/console/cases/{number}"),
                                                              "channel": "email", "text": "hello"})
        assert resp.status_code == 400 and "has no email to reply to" in resp.text
    finally:
        rt.close()


def hotline(tmp_path: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "workers.cli", "--config", str(CONFIG), *args],
                          env={**__import__("os").environ, **settings_env(tmp_path)}, cwd=REPO, input=stdin,
                          capture_output=True, text=True, timeout=120)


def test_hotline_users_makes_accounts_and_refuses_bad_input_with_exit_2(tmp_path: Path) -> None:
    ok = hotline(tmp_path, "users", "add", "Rosa.M", "--role", "advocate", "--password-stdin",
                 stdin=PASSWORD + "\n")
    assert ok.returncode == 0 and "user rosa.m added (advocate)" in ok.stdout
    for args, stdin, message in [
        (("users", "add", "kim", "--role", "advocate", "--password-stdin"), "short\n", "at least 12"),
        (("users", "add", "rosa.m", "--role", "advocate", "--password-stdin"), PASSWORD + "\n", "already exists"),
        (("users", "add", "bad name!", "--role", "advocate", "--password-stdin"), PASSWORD + "\n", "username"),
        (("users", "disable", "nobody"), "", "no user 'nobody'"),
    ]:
        res = hotline(tmp_path, *args, stdin=stdin)
        assert res.returncode == 2, (args, res.stdout, res.stderr)
        assert message in res.stderr and "Traceback" not in res.stderr
    bad_role = hotline(tmp_path, "users", "add", "kim", "--role", "janitor", "--password-stdin", stdin=PASSWORD)
    assert bad_role.returncode == 2 and "janitor" in bad_role.stderr
    listed = hotline(tmp_path, "users", "list")
    assert listed.returncode == 0 and "rosa.m" in listed.stdout and "advocate" in listed.stdout
    assert hotline(tmp_path, "users", "disable", "rosa.m").returncode == 0
    assert "disabled" in hotline(tmp_path, "users", "list").stdout
    assert PASSWORD not in listed.stdout + listed.stderr


def test_only_the_embedded_default_gets_a_demo_login_and_only_while_no_account_exists(
        tmp_path: Path, backend: Any) -> None:
    from workers.console_app import ensure_dev_user

    # The embedded default is "no database URL configured" (SQLite under var/).
    settings = make_settings(tmp_path, backend) if backend.name == "servers" else \
        make_settings(tmp_path, None, HOTLINE_REDIS_URL=backend.redis_url)
    rt = build_runtime(settings)
    try:
        made = ensure_dev_user(settings, rt)
        if backend.name == "servers":  # a database URL is configured: a deployment, no default login
            assert made is None
            assert UserStore(rt.store.engine).list() == []
            return
        assert made is not None and made[0] == "demo" and len(made[1]) >= 16
        assert ensure_dev_user(settings, rt) is None  # never a second time
        [user] = UserStore(rt.store.engine).list()
        assert (user["username"], user["role"]) == ("demo", "supervisor")
        from datetime import UTC, datetime

        assert UserStore(rt.store.engine).authenticate("demo", made[1], datetime.now(UTC)).reason == "ok"
    finally:
        rt.close()
