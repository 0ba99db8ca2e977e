"""`hotline worker`: an rq worker (with scheduler) plus heartbeat and sweeper threads."""

from __future__ import annotations

import itertools
import logging
import signal
import socket
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

from redis import Redis
from redis.exceptions import RedisError
from rq import SimpleWorker, Worker
from rq.exceptions import StopRequested
from rq.serializers import JSONSerializer
from rq.worker.base import BaseWorker

from intake.sink import make_queue

from . import context
from .runtime import Runtime
from .sweeper import Heartbeat, periodic, sweep_once

log = logging.getLogger(__name__)


class _PromptUnsubscribe(BaseWorker):
    """rq 3.0 unsubscribes its command channel, then stops the listening thread with redis-py's
    PubSubWorkerThread.stop(), which since redis-py 8 waits for the thread: often it has already
    gone back to a read of up to 60 s (rq's sleep_time), so every worker stop and every burst
    run could hang for a minute. Trip the thread's flag first: the unsubscribe reply then ends
    its read and it exits. Wait 1 s at most (a thread still reading is a daemon that closes its
    own connection when the read ends)."""

    def unsubscribe(self) -> None:
        if self.pubsub_thread and self.pubsub is not None:
            self.pubsub_thread.stop(timeout=0)
            self.pubsub.unsubscribe()
            self.pubsub_thread.join(timeout=1)
            if not self.pubsub_thread.is_alive():
                self.pubsub.close()


class HotlineWorker(_PromptUnsubscribe, Worker):
    pass


class HotlineSimpleWorker(_PromptUnsubscribe, SimpleWorker):
    pass


def finalise_stale_calls(rt: Runtime, now: datetime | None = None) -> int:
    """Calls whose last callback is older than voice.transcript_wait_minutes become signals
    now, transcript or not: a lost callback never loses a call."""
    from intake.channels.voice import finalise_call

    now = now or datetime.now(UTC)
    cutoff = now - timedelta(minutes=rt.settings.voice.transcript_wait_minutes)
    done = 0
    for sid in rt.store.calls_waiting(cutoff):
        if finalise_call(rt.store, rt.sink, rt.detector, sid, now, force=True):
            done += 1
    if done:
        log.warning("voice: %d call(s) finalised after waiting for callbacks", done)
    return done


def poll_mailbox(rt: Runtime, locked: bool = False) -> str:
    """Poll the IMAP mailbox once; returns a one-line summary."""
    from intake.channels.email import ImapConfig, connect_imap, poll_once

    from .web import email_limits

    i = rt.settings.email.imap
    if not i.host:
        return "no IMAP mailbox configured (email.imap.host)"
    if locked and not rt.redis.set("hotline:imap:lock", "1", nx=True, ex=max(30, int(i.poll_interval_seconds))):
        return "another worker is polling"
    cfg = ImapConfig(i.host, i.port, i.username or "", i.password or "", i.folder, i.use_ssl, i.processed_folder)
    client = connect_imap(cfg)
    try:
        report = poll_once(client, cfg.folder, rt.store, rt.sink, rt.detector, email_limits(rt.settings),
                           datetime.now(UTC), processed_folder=cfg.processed_folder)
    finally:
        try:
            client.logout()
        except Exception:
            log.debug("imap logout failed")
        if locked:
            rt.redis.delete("hotline:imap:lock")
    if report.taken or report.rejected:
        log.info("email poll: %s", report.summary())
    return report.summary()


def run_worker(rt: Runtime, burst: bool = False, sweeper: bool = True, name: str | None = None) -> bool:
    context.bind(rt)
    s = rt.settings
    worker_cls = HotlineSimpleWorker if s.queue.worker_class == "simple" else HotlineWorker
    name = name or f"hotline-{socket.gethostname()}-{uuid.uuid4().hex[:8]}"
    Heartbeat(rt.redis, name, s.sweeper.worker_heartbeat_ttl_seconds).beat()  # Redis down at start: exit 1
    sweep = publisher = calls = mail = None
    if sweeper and not burst:
        interval = s.sweeper.interval_seconds
        sweep = periodic("hotline-sweeper", interval, lambda: sweep_once(
            rt.store, rt.redis, lambda: make_queue(rt.redis, rt.policy, urgent=True), rt.policy,
            s.sweeper.grace_seconds,
            lock_seconds=interval * 0.9))
        sweep.start()
        from .jobs import publish_outbox

        # Route events wait in the outbox while the broker is down; this keeps sending them.
        publisher = periodic("hotline-outbox", s.events.publish_interval_seconds, lambda: publish_outbox(rt))
        publisher.start()
        calls = periodic("hotline-calls", interval, lambda: finalise_stale_calls(rt))
        calls.start()
        if s.email.imap.host:
            # One poller at a time across all workers (a Redis lock), every poll_interval_seconds.
            mail = periodic("hotline-imap", s.email.imap.poll_interval_seconds, lambda: poll_mailbox(rt, locked=True))
            mail.start()
    log.info("worker %s started (%s) on queue %s", name, s.queue.worker_class, rt.queue.name)
    worked, loop_name = False, name
    try:
        for restart in itertools.count(1):
            # Queue order is priority order: urgent signals (and anything the sweeper found late) first.
            worker = worker_cls([rt.urgent_queue, rt.queue], connection=rt.redis, serializer=JSONSerializer,
                                name=loop_name)
            heartbeat = Heartbeat(rt.redis, loop_name, s.sweeper.worker_heartbeat_ttl_seconds)
            try:
                heartbeat.beat()
                heartbeat.start()
                worked = bool(worker.work(burst=burst, with_scheduler=True, logging_level="WARNING")) or worked
            except RedisError as exc:
                if burst:
                    raise
                log.error("worker %s: lost Redis (%s)", loop_name, exc.__class__.__name__)
            finally:
                heartbeat.stop()
            if burst or worker._shutdown_requested_date is not None:  # rq has no public "asked to stop"
                return worked
            # rq's loop quits when Redis goes away under a job (or restarts empty). The process
            # stays: it waits for Redis and starts a fresh loop under a new name, so the sweeper
            # sees the old name's heartbeat gone and re-queues whatever that loop had started.
            log.warning("worker %s: rq loop stopped; resuming when Redis answers", loop_name)
            if not _wait_for_redis(rt.redis):
                return worked
            _retire(worker)
            loop_name = f"{name}-r{restart}"
    except StopRequested:  # a stop signal between two loops
        pass
    finally:
        if sweep:
            sweep.stop()
        for thread in (publisher, calls, mail):
            if thread:
                thread.stop()
        context.unbind()
    return worked


def _wait_for_redis(redis: Redis, pause: float = 1.0) -> bool:
    """Block until Redis answers (True) or SIGTERM/SIGINT arrives (False)."""

    def stop(_signum: int, _frame: object) -> None:
        raise StopRequested()

    previous = {}
    if threading.current_thread() is threading.main_thread():
        # rq's handlers may never have been installed (Redis went away while its loop started).
        previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        while True:
            try:
                if redis.ping():
                    return True
            except RedisError:
                pass
            time.sleep(pause)
    except StopRequested:
        return False
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _retire(worker: BaseWorker) -> None:
    """What rq's teardown could not do without Redis: stop the old loop's pubsub thread and
    mark it dead, so it neither lingers nor shows as a live worker. Best effort."""
    for step in (worker.unsubscribe, worker.register_death):
        try:
            step()
        except Exception:
            log.debug("worker %s: cleanup after losing Redis incomplete", worker.name)
