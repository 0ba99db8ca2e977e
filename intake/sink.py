"""accept(signal): commit to the database, then enqueue its triage job.

The database is the source of truth. If Redis is unreachable the signal stays 'accepted'
and the worker's sweeper enqueues it later; the contact is never told to retry.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from redis import Redis
from redis.exceptions import RedisError
from rq import Queue, Retry
from rq.exceptions import DuplicateJobError
from rq.serializers import JSONSerializer

from .signal import Signal
from .store import Accepted, Store

log = logging.getLogger(__name__)

TRIAGE_JOB = "workers.jobs.triage_and_route"


def job_id_for(signal_id: str) -> str:
    return f"triage-{signal_id}"


@dataclass(frozen=True)
class JobPolicy:
    queue_name: str = "hotline-triage"
    timeout: int = 60
    retry_intervals: tuple[int, ...] = (2, 10, 60, 300)
    failure_ttl: int = 30 * 86400

    @property
    def urgent_queue_name(self) -> str:
        return f"{self.queue_name}-urgent"


def make_queue(connection: Redis, policy: JobPolicy, urgent: bool = False) -> Queue:
    # JSON, never pickle: whoever can write to Redis must not be able to run code in a worker.
    name = policy.urgent_queue_name if urgent else policy.queue_name
    return Queue(name, connection=connection, serializer=JSONSerializer)


def enqueue_triage(queue: Queue, signal_id: str, policy: JobPolicy, delay_seconds: int = 0) -> bool:
    """Enqueue the triage job for a signal once. False if a job with its id already exists.

    The job carries only the signal id: no text or phone number ever sits in Redis.
    """
    retry = Retry(max=len(policy.retry_intervals), interval=list(policy.retry_intervals)) \
        if policy.retry_intervals else None
    try:
        enqueue = queue.enqueue if delay_seconds <= 0 else functools.partial(
            queue.enqueue_in, timedelta(seconds=delay_seconds))
        enqueue(
            TRIAGE_JOB,
            signal_id,
            job_id=job_id_for(signal_id),
            unique=True,
            retry=retry,
            job_timeout=policy.timeout,
            failure_ttl=policy.failure_ttl,
            result_ttl=3600,
            description=f"triage signal {signal_id}",
        )
    except DuplicateJobError:
        return False
    return True


class Sink:
    """Commit then enqueue. Workers take the urgent queue first: a signal that `is_urgent`
    (a quick look by the caller, e.g. the triage rules) never waits behind routine work."""

    def __init__(self, store: Store, queue: Queue, policy: JobPolicy,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC),
                 urgent_queue: Queue | None = None, is_urgent: Callable[[Signal], bool] | None = None) -> None:
        self.store = store
        self.queue = queue
        self.policy = policy
        self.clock = clock
        self.urgent_queue = urgent_queue
        self.is_urgent = is_urgent
        self.delay_for: Callable[[Signal], int] | None = None

    def accept(self, signal: Signal) -> Accepted:
        """Commit, then enqueue. Raises only if the database itself fails."""
        accepted = self.store.insert_signal(signal, self.clock())
        if accepted.status == "accepted":
            # A redelivery of a signal whose first enqueue failed gets a second chance here.
            queue, delay = self.queue, 0
            urgent = False
            if self.urgent_queue is not None and self.is_urgent is not None:
                try:
                    urgent = self.is_urgent(signal)
                except Exception:  # a quick look must never stop a contact from being queued
                    log.exception("signal %s: urgency pre-check failed; queued as routine", accepted.signal_id)
            if urgent and self.urgent_queue is not None:
                queue = self.urgent_queue
            elif self.delay_for is not None:
                delay = self.delay_for(signal)
            try:
                enqueue_triage(queue, accepted.signal_id, self.policy, delay_seconds=delay)
            except RedisError as exc:
                log.warning("signal %s committed but not enqueued (%s); the sweeper will enqueue it",
                            accepted.signal_id, exc.__class__.__name__)
        if accepted.created:
            log.info("signal %s accepted channel=%s", accepted.signal_id, signal.channel.value)
        else:
            log.info("signal %s redelivered channel=%s (kept one)", accepted.signal_id, signal.channel.value)
        return accepted
