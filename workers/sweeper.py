"""Re-enqueue signals that were accepted but never triaged.

Covers: Redis down when the webhook arrived; Redis restarted without persistence (queued
jobs lost); a worker killed mid-job (rq only notices after its registry entry expires,
minutes later - a crisis must not wait that long). The database is the source of truth.
"""

from __future__ import annotations

import logging
import secrets
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal

from redis import Redis
from redis.exceptions import RedisError
from rq import Queue
from rq.exceptions import DuplicateJobError, NoSuchJobError
from rq.job import Job
from rq.registry import ScheduledJobRegistry

from intake.sink import JobPolicy, enqueue_triage, job_id_for
from intake.store import Store

log = logging.getLogger(__name__)

LOCK_KEY = "hotline:sweeper:lock"
ALIVE_PREFIX = "hotline:worker-alive:"

Decision = Literal["enqueue", "replace", "wait", "failed", "release"]


def decide(job_status: str | None, worker_alive: bool | None, overdue: bool = False) -> Decision:
    """What to do with an untriaged signal, given its job's state (`overdue`: a scheduled job
    whose time passed more than the grace ago). Pure."""
    if job_status is None:
        return "enqueue"  # never enqueued, or lost with Redis
    if job_status == "scheduled" and overdue:
        return "release"  # rq's scheduler is not moving it (it died with Redis): queue it now
    if job_status in ("queued", "scheduled", "deferred", "created", "rate_limited", "ready_to_enqueue"):
        return "wait"
    if job_status == "started":
        return "wait" if worker_alive else "replace"
    if job_status == "failed":
        return "failed"  # retries exhausted: kept in rq's failed registry for a person to see
    return "replace"  # finished/stopped/canceled yet the database says untriaged


@dataclass
class SweepReport:
    enqueued: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)
    released: list[str] = field(default_factory=list)  # scheduled jobs rq's scheduler left behind
    waiting: int = 0
    failed: list[str] = field(default_factory=list)
    checks: int = 0
    skipped_locked: bool = False

    def summary(self) -> str:
        return (f"enqueued={len(self.enqueued)} replaced={len(self.replaced)} released={len(self.released)} "
                f"waiting={self.waiting} "
                f"failed={len(self.failed)} overdue_checks={self.checks}")


def _scheduled_overdue(registry: ScheduledJobRegistry, job: Job, before: datetime) -> bool:
    """True when the job sits in `registry` (its queue's schedule) with a time before `before`."""
    try:
        when = registry.get_scheduled_time(job)
    except NoSuchJobError:
        return False
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when < before


def worker_alive(redis: Redis, worker_name: str | None) -> bool:
    return bool(worker_name) and bool(redis.exists(ALIVE_PREFIX + str(worker_name)))


def sweep_once(store: Store, redis: Redis, queue_factory, policy: JobPolicy,  # type: ignore[no-untyped-def]
               grace_seconds: float, lock_seconds: float, now: datetime | None = None,
               use_lock: bool = True) -> SweepReport:
    """One pass. With use_lock, only one sweeper in the whole deployment runs per interval."""
    report = SweepReport()
    now = now or datetime.now(UTC)
    if use_lock and not redis.set(LOCK_KEY, secrets.token_hex(8), nx=True, px=int(lock_seconds * 1000)):
        report.skipped_locked = True
        return report
    queue = queue_factory()
    for signal_id in store.untriaged_ids(now - timedelta(seconds=grace_seconds)):
        jid = job_id_for(signal_id)
        try:
            job: Job | None = Job.fetch(jid, connection=redis, serializer=queue.serializer)
        except NoSuchJobError:
            job = None
        status = job.get_status(refresh=False).value if job else None
        alive = worker_alive(redis, job.worker_name) if job is not None and status == "started" else None
        schedule = ScheduledJobRegistry(job.origin, connection=redis, serializer=queue.serializer) \
            if job is not None and status == "scheduled" else None
        overdue = schedule is not None and _scheduled_overdue(schedule, job, now - timedelta(seconds=grace_seconds))
        action = decide(status, alive, overdue)
        if action == "wait":
            report.waiting += 1
        elif action == "failed":
            report.failed.append(signal_id)
        elif action == "release" and job is not None and schedule is not None:
            schedule.remove(job)
            Queue(job.origin, connection=redis, serializer=queue.serializer).enqueue_job(job)
            report.released.append(signal_id)
        else:
            if action == "replace" and job is not None:
                job.delete()
            if enqueue_triage(queue, signal_id, policy):
                (report.enqueued if action == "enqueue" else report.replaced).append(signal_id)
    report.checks = _overdue_checks(store, queue, now, grace_seconds)
    if report.enqueued or report.replaced or report.released or report.checks:
        log.warning("sweeper: %s", report.summary())
    if report.failed:
        log.error("sweeper: %d signal(s) whose triage job failed after all retries: %s",
                  len(report.failed), ", ".join(report.failed[:20]))
    return report


def _overdue_checks(store: Store, queue: Queue, now: datetime, grace_seconds: float) -> int:
    """SLA checks past due that no job ran (Redis lost the schedule): enqueue them now."""
    from .jobs import SLA_JOB, sla_job_id

    count = 0
    for case_id, point, due in store.pending_checks(due_before=now - timedelta(seconds=max(grace_seconds, 2))):
        jid = sla_job_id(case_id, point, due)
        try:
            job = Job.fetch(jid, connection=queue.connection, serializer=queue.serializer)
            status = job.get_status(refresh=False).value
        except NoSuchJobError:
            job, status = None, None
        if status in ("queued", "started", "scheduled", "deferred"):
            continue  # the scheduler or a worker has it
        if job is not None:
            job.delete()
        try:
            queue.enqueue(SLA_JOB, case_id, point, int(due.timestamp()), job_id=jid, unique=True)
            count += 1
        except DuplicateJobError:
            pass
    return count


class Heartbeat(threading.Thread):
    """Keeps hotline:worker-alive:<name> fresh; SIGKILL stops it, so the key expires."""

    def __init__(self, redis: Redis, worker_name: str, ttl: int) -> None:
        super().__init__(name="hotline-heartbeat", daemon=True)
        self.redis, self.key, self.ttl = redis, ALIVE_PREFIX + worker_name, ttl
        self.stop_event = threading.Event()

    def beat(self) -> None:
        self.redis.set(self.key, "1", ex=self.ttl)

    def run(self) -> None:
        while not self.stop_event.is_set():
            try:
                self.beat()
            except RedisError:
                log.warning("heartbeat: Redis unreachable")
            self.stop_event.wait(max(1.0, self.ttl / 3))

    def stop(self) -> None:
        self.stop_event.set()
        try:
            self.redis.delete(self.key)
        except RedisError:
            pass


class _Periodic(threading.Thread):
    def __init__(self, name: str, interval: float, fn) -> None:  # type: ignore[no-untyped-def]
        super().__init__(name=name, daemon=True)
        self.interval, self.fn = interval, fn
        self.stop_event = threading.Event()

    def run(self) -> None:
        while not self.stop_event.wait(self.interval):
            try:
                self.fn()
            except RedisError as exc:
                log.warning("%s: Redis unreachable (%s); will retry", self.name, exc.__class__.__name__)
            except Exception:
                log.exception("%s: pass failed; will retry", self.name)

    def stop(self) -> None:
        self.stop_event.set()


def periodic(name: str, interval: float, fn) -> _Periodic:  # type: ignore[no-untyped-def]
    """A daemon thread calling fn every `interval` seconds until stopped; errors are logged."""
    return _Periodic(name, interval, fn)
