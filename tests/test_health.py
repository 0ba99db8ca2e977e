"""/healthz says the process is up; /readyz says whether it can do its work: database, Redis and
(when configured) the broker reachable, answered quickly, naming what is down and nothing more."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import PG_ADMIN_URL, PG_TEST_DB, REDIS_TEST_URL, Backend, _need_servers, make_settings
from sqlalchemy import create_engine, text

from workers.runtime import Runtime, build_runtime
from workers.web import create_app

RABBIT = "amqp://guest:guest@127.0.0.1:5672//"
# A broker that is configured but not there: a closed port, with a password that must not leak.
RABBIT_DOWN = "amqp://hotline:s3cret-pw@127.0.0.1:9//"


@pytest.fixture
def app_for(tmp_path: Path) -> Iterator[Any]:
    runtimes: list[Runtime] = []

    def make(backend: Backend, **env: str) -> Any:
        settings = make_settings(tmp_path, backend, **env)
        rt = build_runtime(settings)
        runtimes.append(rt)
        return create_app(settings, rt).test_client()

    yield make
    for rt in runtimes:
        rt.close()


def timed_get(client: Any, path: str) -> tuple[Any, float]:
    start = time.monotonic()
    resp = client.get(path)
    return resp, time.monotonic() - start


def assert_discreet(resp: Any) -> None:
    body = resp.get_data(as_text=True)
    for leak in ("s3cret", "amqp", "postgresql", "redis://", "127.0.0.1", "Traceback", "Error"):
        assert leak not in body


def test_healthz_answers_while_the_process_is_up(app_for: Any, embedded_backend: Backend) -> None:
    resp = app_for(embedded_backend).get("/healthz")
    assert resp.status_code == 200 and resp.get_json() == {"status": "ok"}


def test_ready_on_the_embedded_default(app_for: Any, embedded_backend: Backend) -> None:
    # No broker URL: route events go through the same Redis, so there is no broker to check.
    resp = app_for(embedded_backend).get("/readyz")
    assert resp.status_code == 200
    assert resp.get_json() == {"db": "ok", "redis": "ok"}


@pytest.mark.servers
@pytest.mark.parametrize("backend", ["servers"], indirect=True)
def test_ready_when_postgresql_redis_and_rabbitmq_answer(app_for: Any, backend: Backend) -> None:
    _need_servers(5672)
    resp = app_for(backend, HOTLINE_BROKER_URL=RABBIT).get("/readyz")
    assert resp.status_code == 200
    assert resp.get_json() == {"db": "ok", "redis": "ok", "broker": "ok"}
    assert resp.headers["Cache-Control"] == "no-store"


def test_a_broker_that_is_down_is_503_naming_only_the_broker(app_for: Any, embedded_backend: Backend) -> None:
    client = app_for(embedded_backend, HOTLINE_BROKER_URL=RABBIT_DOWN)
    resp, took = timed_get(client, "/readyz")
    assert resp.status_code == 503
    assert resp.get_json() == {"db": "ok", "redis": "ok", "broker": "failed"}
    assert took < 3
    assert_discreet(resp)


def test_redis_gone_is_503_within_seconds(app_for: Any, embedded_backend: Backend) -> None:
    client = app_for(embedded_backend)
    assert client.get("/readyz").status_code == 200
    assert embedded_backend.embedded is not None
    embedded_backend.embedded.stop()
    resp, took = timed_get(client, "/readyz")
    assert resp.status_code == 503
    body = resp.get_json()
    assert body["db"] == "ok" and body["redis"] in ("failed", "timeout")
    assert took < 3.5
    assert_discreet(resp)
    # Still alive: /healthz is about the process, not its dependencies.
    assert client.get("/healthz").status_code == 200


@pytest.mark.servers
def test_database_gone_is_503(app_for: Any, tmp_path: Path) -> None:
    _need_servers(5432, 6379)
    name = f"{PG_TEST_DB}_readyz"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        url = PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
        client = app_for(Backend("servers", url, REDIS_TEST_URL))
        assert client.get("/readyz").status_code == 200
        with admin.connect() as conn:  # the database goes away under the running app
            conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        resp, took = timed_get(client, "/readyz")
        assert resp.status_code == 503
        assert resp.get_json() == {"db": "failed", "redis": "ok"}
        assert took < 3
        assert_discreet(resp)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
