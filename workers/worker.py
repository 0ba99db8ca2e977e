"""`hotline worker`: an rq worker (with scheduler) plus heartbeat and sweeper threads."""

from __future__ import annotations

import logging
import socket
import uuid
from datetime import UTC, datetime, timedelta

from rq import SimpleWorker, Worker
from rq.serializers import JSONSerializer

from intake.sink import make_queue

from . import context
from .runtime import Runtime
from .sweeper import Heartbeat, periodic, sweep_once

log = logging.getLogger(__name__)


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
    worker_cls = SimpleWorker if s.queue.worker_class == "simple" else Worker
    name = name or f"hotline-{socket.gethostname()}-{uuid.uuid4().hex[:8]}"
    # Queue order is priority order: urgent signals (and anything the sweeper found late) first.
    worker = worker_cls([rt.urgent_queue, rt.queue], connection=rt.redis, serializer=JSONSerializer, name=name)
    heartbeat = Heartbeat(rt.redis, name, s.sweeper.worker_heartbeat_ttl_seconds)
    heartbeat.beat()
    heartbeat.start()
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
    try:
        return bool(worker.work(burst=burst, with_scheduler=True, logging_level="WARNING"))
    finally:
        if sweep:
            sweep.stop()
        for thread in (publisher, calls, mail):
            if thread:
                thread.stop()
        heartbeat.stop()
        context.unbind()
