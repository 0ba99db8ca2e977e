"""`/readyz`: can this web process reach the database, Redis and (if configured) the broker?

A load balancer or orchestrator asks it every few seconds, so each answer is quick and bounded:
the checks run in parallel, and whatever has not answered within `timeout` seconds counts as
down. A check still running from an earlier request is waited on, not started again, so a
hung dependency never piles up threads. The body names each dependency and its state
("ok", "failed" or "timeout") and nothing else: no URL, host, error text or traceback.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout

from flask import Blueprint, Response, jsonify
from kombu import Connection
from sqlalchemy import text

from routing.events import kombu_url

from .runtime import Runtime

log = logging.getLogger(__name__)

READY_TIMEOUT_SECONDS = 2.0


class Readiness:
    def __init__(self, rt: Runtime, timeout: float = READY_TIMEOUT_SECONDS) -> None:
        self.rt = rt
        self.timeout = timeout
        self._pool: ThreadPoolExecutor | None = None
        self._running: dict[str, Future[None]] = {}
        self._lock = threading.Lock()

    def checks(self) -> dict[str, Callable[[], None]]:
        checks: dict[str, Callable[[], None]] = {"db": self.check_db, "redis": self.check_redis}
        if self.rt.settings.storage.broker_url:
            # Without a broker URL route events go through the same Redis: nothing more to check.
            checks["broker"] = self.check_broker
        return checks

    def check_db(self) -> None:
        with self.rt.store.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    def check_redis(self) -> None:
        self.rt.redis.ping()

    def check_broker(self) -> None:
        url = kombu_url(self.rt.settings.storage.broker_url or "")
        conn = Connection(url, connect_timeout=self.timeout, transport_options={"socket_timeout": self.timeout})
        try:
            # One attempt, no back-off sleep: a refused connection is reported at once.
            conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0, interval_max=0,
                                   timeout=self.timeout)
        finally:
            conn.release()

    def run(self) -> dict[str, str]:
        """{dependency: 'ok' | 'failed' | 'timeout'}, within about `timeout` seconds."""
        futures: dict[str, Future[None]] = {}
        with self._lock:
            if self._pool is None:  # made lazily: after gunicorn forks, never before
                self._pool = ThreadPoolExecutor(max_workers=3, thread_name_prefix="readyz")
            for name, check in self.checks().items():
                running = self._running.get(name)
                if running is None or running.done():
                    running = self._pool.submit(check)
                    self._running[name] = running
                futures[name] = running
        deadline = time.monotonic() + self.timeout
        states: dict[str, str] = {}
        for name, fut in futures.items():
            try:
                fut.result(timeout=max(0.0, deadline - time.monotonic()))
                states[name] = "ok"
            except FutureTimeout:
                states[name] = "timeout"
                log.warning("readyz: %s did not answer within %.1f s", name, self.timeout)
            except Exception as exc:
                states[name] = "failed"
                log.warning("readyz: %s unreachable (%s)", name, exc.__class__.__name__)
        return states


def make_blueprint(rt: Runtime, timeout: float = READY_TIMEOUT_SECONDS) -> Blueprint:
    bp = Blueprint("health", __name__)
    readiness = Readiness(rt, timeout)

    @bp.get("/readyz")
    def readyz() -> Response:
        states = readiness.run()
        resp = jsonify(states)
        resp.status_code = 200 if all(v == "ok" for v in states.values()) else 503
        resp.headers["Cache-Control"] = "no-store"
        return resp

    return bp
