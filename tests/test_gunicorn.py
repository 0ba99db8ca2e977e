"""`hotline serve` under workers/gunicorn_conf.py: processes from WEB_CONCURRENCY, an access log
that identifies no one, and X-Forwarded-Proto believed only from the configured proxies."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import psutil
import pytest
from conftest import CONFIG, REPO, TEST_TOKEN, Backend, settings_env, sms_params, stop_worker

from intake.twilio_auth import sign

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Web:
    def __init__(self, proc: subprocess.Popen[bytes], port: int, log: Path) -> None:
        self.proc, self.port, self.log = proc, port, log

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def request(self, path: str, data: bytes | None = None, headers: dict[str, str] | None = None) -> int:
        req = urllib.request.Request(self.url(path), data=data, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return int(resp.status)
        except urllib.error.HTTPError as exc:
            return exc.code


@pytest.fixture
def serve(tmp_path: Path, embedded_backend: Backend) -> Iterator[Any]:
    started: list[Web] = []

    def start(**env: str) -> Web:
        port = free_port()
        log = tmp_path / f"web-{port}.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "workers.cli", "--config", str(CONFIG), "serve", "--port", str(port)],
                env={**os.environ, **settings_env(tmp_path, embedded_backend, **env)}, cwd=REPO,
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        web = Web(proc, port, log)
        started.append(web)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert proc.poll() is None, log.read_text()
            try:
                if web.request("/healthz") == 200:
                    return web
            except OSError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"gunicorn did not answer /healthz within 60 s:\n{log.read_text()}")

    yield start
    for web in started:
        stop_worker(web.proc)


def signed_sms(url: str) -> tuple[bytes, dict[str, str]]:
    params = sms_params("hello", from_="+15555550177")
    return urlencode(params).encode(), {"X-Twilio-Signature": sign(TEST_TOKEN, url, params),
                                        "Content-Type": "application/x-www-form-urlencoded"}


def test_processes_from_web_concurrency_and_an_access_log_that_identifies_no_one(serve: Any) -> None:
    web = serve(WEB_CONCURRENCY="3")
    master = psutil.Process(web.proc.pid)
    assert "gunicorn" in " ".join(master.cmdline())  # `hotline serve` became gunicorn itself
    assert len(master.children()) == 3
    assert web.request("/healthz?from=%2B15555550123&q=locked+in") == 200
    assert web.request("/tip?lang=es") == 200
    time.sleep(0.5)
    lines = [ln for ln in web.log.read_text().splitlines() if '"GET ' in ln]
    assert any(ln.startswith('"GET /healthz" 200 ') for ln in lines), lines
    assert any(ln.startswith('"GET /tip" 200 ') for ln in lines), lines
    text = "\n".join(lines)
    for leak in ("5555550123", "locked", "lang=es", "127.0.0.1", "Python-urllib"):
        assert leak not in text


def test_x_forwarded_proto_is_believed_only_from_the_proxy(serve: Any) -> None:
    # A TLS-terminating proxy on this host forwards Twilio's https request: the signature covers
    # the https URL, which the app sees only by trusting the proxy's X-Forwarded-Proto.
    trusting = serve()  # default FORWARDED_ALLOW_IPS: 127.0.0.1 and ::1
    body, headers = signed_sms(f"https://127.0.0.1:{trusting.port}/twilio/sms")
    assert trusting.request("/twilio/sms", body, {**headers, "X-Forwarded-Proto": "https"}) == 200

    # The same header from an address that is not the proxy: ignored, so the signature fails.
    distrusting = serve(FORWARDED_ALLOW_IPS="192.0.2.10")
    body, headers = signed_sms(f"https://127.0.0.1:{distrusting.port}/twilio/sms")
    assert distrusting.request("/twilio/sms", body, {**headers, "X-Forwarded-Proto": "https"}) == 403
