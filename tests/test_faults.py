"""Faults that must not lose or duplicate a contact: Redis gone, worker SIGKILLed mid-job."""

from __future__ import annotations

import os
import signal
import sqlite3
import time
from pathlib import Path

import pytest
from conftest import (
    CONFIG,
    drain,
    make_settings,
    post_signed,
    settings_env,
    sms_params,
    start_worker,
    stop_worker,
)
from rq.job import Job

from intake.sink import job_id_for, make_queue
from workers.runtime import build_runtime
from workers.sweeper import sweep_once
from workers.web import create_app


def _sweep(rt):
    return sweep_once(rt.store, rt.redis, lambda: make_queue(rt.redis, rt.policy), rt.policy,
                      grace_seconds=0, lock_seconds=1, use_lock=False)


def _exactly_once(rt, n):
    counts = rt.store.counts()
    print(f"accepted={counts['signals']} triaged={counts['triaged']} results={counts['triage_results']} "
          f"routes={counts['routes']} cases={counts['cases']}")
    assert counts == {"signals": n, "triaged": n, "triage_results": n, "routes": n, "cases": n}


def test_embedded_redis_killed_while_20_sms_arrive_all_answered_then_triaged_once(tmp_path, embedded_backend):
    settings = make_settings(tmp_path, embedded_backend)
    rt = build_runtime(settings)
    client = create_app(settings, rt).test_client()
    try:
        post_signed(client, sms_params("first, before the outage"))
        embedded_backend.embedded.kill()
        started = time.monotonic()
        answers = [post_signed(client, sms_params(f"message {i} during the outage", from_=f"+1555555{100 + i:04d}"))
                   for i in range(20)]
        elapsed = time.monotonic() - started
        assert [a.status_code for a in answers] == [200] * 20
        assert elapsed < 20, f"webhooks took {elapsed:.1f}s with Redis down"
        assert rt.store.counts()["signals"] == 21

        embedded_backend.embedded.start()  # same socket, nothing persisted: the queue is empty
        report = _sweep(rt)
        assert len(report.enqueued) >= 20
        drain(rt)
        _exactly_once(rt, 21)
        assert _sweep(rt).enqueued == []
    finally:
        rt.close()


@pytest.mark.parametrize("backend", ["servers"], indirect=True)
def test_unreachable_redis_server_still_commits_and_answers(tmp_path, backend):
    down = make_settings(tmp_path, backend, HOTLINE_REDIS_URL="redis://127.0.0.1:1/0")
    rt_down = build_runtime(down)
    client = create_app(down, rt_down).test_client()
    answers = [post_signed(client, sms_params(f"text {i}", from_=f"+1555555{120 + i:04d}")) for i in range(20)]
    assert [a.status_code for a in answers] == [200] * 20
    rt_down.close()

    rt = build_runtime(make_settings(tmp_path, backend))
    try:
        assert len(_sweep(rt).enqueued) == 20
        drain(rt)
        _exactly_once(rt, 20)
    finally:
        rt.close()


def _fast_sweeper_config(tmp_path: Path) -> Path:
    text = CONFIG.read_text()
    text = text.replace("interval_seconds: 5", "interval_seconds: 0.5")
    text = text.replace("grace_seconds: 10", "grace_seconds: 1")
    text = text.replace("worker_heartbeat_ttl_seconds: 10", "worker_heartbeat_ttl_seconds: 2")
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def _wait(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class _DbLock:
    """Hold the triage tables so the worker's job blocks mid-transaction."""

    def __init__(self, backend, settings):
        self.backend, self.settings = backend, settings

    def __enter__(self):
        if self.backend.name == "embedded":
            path = self.settings.database_url().removeprefix("sqlite:///")
            self.conn = sqlite3.connect(path, timeout=30, isolation_level=None)
            self.conn.execute("BEGIN IMMEDIATE")
        else:
            import psycopg

            url = self.settings.database_url().replace("postgresql+psycopg://", "postgresql://")
            self.conn = psycopg.connect(url)
            self.conn.execute("LOCK TABLE triage_results IN ACCESS EXCLUSIVE MODE")
        return self

    def __exit__(self, *exc):
        self.conn.rollback() if self.backend.name != "embedded" else self.conn.execute("ROLLBACK")
        self.conn.close()


def test_worker_sigkilled_mid_job_signal_triaged_exactly_once_after_restart(tmp_path, backend):
    settings = make_settings(tmp_path, backend)
    config_path = _fast_sweeper_config(tmp_path)
    rt = build_runtime(settings)
    client = create_app(settings, rt).test_client()
    env = settings_env(tmp_path, backend)
    worker = second = None
    try:
        assert post_signed(client, sms_params("help me please, I am locked in")).status_code == 200
        [row] = rt.store.recent_signals()
        with _DbLock(backend, settings):
            worker = start_worker(env, config_path)
            job_id = job_id_for(row["id"])
            _wait(lambda: Job.fetch(job_id, connection=rt.redis, serializer=rt.queue.serializer)
                  .get_status().value == "started", 30, "the job to start")
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait(10)
        assert rt.store.counts()["triaged"] == 0

        second = start_worker(env, config_path)
        _wait(lambda: rt.store.counts()["triaged"] == 1, 60, "the restarted worker to triage the signal")
        time.sleep(1.5)  # a few more sweeps: nothing must run twice
        _exactly_once(rt, 1)
    finally:
        stop_worker(worker)
        stop_worker(second)
        rt.close()


def test_a_job_that_keeps_failing_lands_in_the_failed_registry_with_its_traceback(tmp_path, embedded_backend):
    from rq.registry import FailedJobRegistry

    from intake.crypto import FieldCipher
    from intake.store import Store

    config = tmp_path / "no-retry.yaml"
    config.write_text(CONFIG.read_text().replace("retry_intervals: [2, 10, 60, 300]", "retry_intervals: []"))
    settings = make_settings(tmp_path, embedded_backend, config=config)
    assert settings.queue.retry_intervals == ()
    rt = build_runtime(settings)
    try:
        client = create_app(settings, rt).test_client()
        assert post_signed(client, sms_params("a message the worker cannot read")).status_code == 200
        [row] = rt.store.recent_signals()
        # The worker was deployed with the wrong key: every attempt to read the signal fails.
        rt.store = Store(rt.store.engine, FieldCipher("a-different-key-" + "x" * 30))
        drain(rt)
        failed = FailedJobRegistry(queue=rt.queue)
        assert job_id_for(row["id"]) in failed.get_job_ids()
        job = Job.fetch(job_id_for(row["id"]), connection=rt.redis, serializer=rt.queue.serializer)
        assert "SecretKeyError" in (job.latest_result().exc_string or "")
        report = _sweep(rt)
        assert report.failed == [row["id"]] and report.enqueued == []
        assert rt.store.counts()["triaged"] == 0  # nothing half-done
    finally:
        rt.close()
