"""Prometheus `/metrics`, correct for N gunicorn processes and N workers on several hosts.

In-process counters would be wrong here: gunicorn hands each scrape to any one of its
processes, and the workers (where triage happens) serve no HTTP at all and may run on other
hosts. prometheus_client's multiprocess mode only merges processes of one host through a
shared directory, so it would still miss workers elsewhere. Instead every value comes from
the state all processes share, read at scrape time:

* the database (the source of truth): signals accepted per channel, signals waiting for
  triage, SLA breaches, open cases past their deadline;
* Redis: rq queue depth, scheduled and failed jobs per queue, and the triage latency
  histogram, whose buckets the workers increment in Redis (`observe_triage_latency`).

So any web process on any host answers the same numbers: scrape one of them (through the load
balancer), or all and aggregate with max(). Labels are channels, urgencies and queue names
only: never message text, phone numbers or emails.
"""

from __future__ import annotations

import bisect
import hmac
import logging
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime

from flask import Blueprint, Response, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from redis import Redis
from redis.exceptions import RedisError
from rq.registry import FailedJobRegistry, ScheduledJobRegistry
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError

from intake.signal import Channel
from intake.store import cases, signals, sla_checks
from triage.result import URGENCIES

from .runtime import Runtime

log = logging.getLogger(__name__)

# Seconds from a contact's arrival to its route (queue wait and the SMS debounce included).
LATENCY_BUCKETS: tuple[float, ...] = (0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 900, 3600)
LATENCY_KEY = "hotline:metrics:triage_latency:"


def observe_triage_latency(redis: Redis, urgency: str, seconds: float) -> None:
    """Called by the worker after routing a signal. Never fails the job: a lost observation
    costs less than a triage retried for it."""
    if urgency not in URGENCIES:
        return
    seconds = max(0.0, seconds)
    bucket = bisect.bisect_left(LATENCY_BUCKETS, seconds)  # first bound >= seconds; len() = +Inf
    try:
        pipe = redis.pipeline(transaction=True)
        pipe.hincrby(LATENCY_KEY + urgency, f"b{bucket}", 1)
        pipe.hincrbyfloat(LATENCY_KEY + urgency, "sum", seconds)
        pipe.execute()
    except RedisError as exc:
        log.debug("metrics: triage latency not recorded (%s)", exc.__class__.__name__)


def _latency(redis: Redis) -> HistogramMetricFamily:
    h = HistogramMetricFamily("hotline_triage_latency_seconds",
                              "Seconds from a contact's arrival to its route, by urgency (all workers).",
                              labels=["urgency"])
    pipe = redis.pipeline(transaction=False)
    for urgency in URGENCIES:
        pipe.hgetall(LATENCY_KEY + urgency)
    for urgency, raw in zip(URGENCIES, pipe.execute(), strict=True):
        fields = {k.decode(): v for k, v in raw.items()}
        running = 0.0
        buckets: list[tuple[str, float]] = []
        for i, bound in enumerate((*LATENCY_BUCKETS, float("inf"))):
            running += int(fields.get(f"b{i}", 0))
            buckets.append(("+Inf" if bound == float("inf") else repr(float(bound)), running))
        h.add_metric([urgency], buckets, float(fields.get("sum", 0.0)))
    return h


class HotlineCollector(Collector):
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    def describe(self) -> Iterable[Metric]:
        return []  # nothing to query when registered: values are read at scrape time only

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("hotline_metrics_source_up",
                               "1 if this scrape could read the source (db, redis), else 0.", labels=["source"])
        try:
            yield from self._from_database()
            up.add_metric(["db"], 1)
        except SQLAlchemyError as exc:
            log.warning("metrics: database unreadable (%s)", exc.__class__.__name__)
            up.add_metric(["db"], 0)
        try:
            yield from self._from_redis()
            up.add_metric(["redis"], 1)
        except RedisError as exc:
            log.warning("metrics: Redis unreadable (%s)", exc.__class__.__name__)
            up.add_metric(["redis"], 0)
        yield up

    def _from_database(self) -> list[Metric]:
        now = datetime.now(UTC)
        with self.rt.store.engine.connect() as conn:
            by_channel = dict(conn.execute(select(signals.c.channel, func.count())
                                           .group_by(signals.c.channel)).all())
            waiting = conn.execute(select(func.count()).select_from(signals)
                                   .where(signals.c.status == "accepted")).scalar_one()
            breaches = conn.execute(select(func.count()).select_from(sla_checks)
                                    .where(sla_checks.c.point == "breach",
                                           sla_checks.c.outcome == "breached")).scalar_one()
            overdue = dict(conn.execute(select(cases.c.queue, func.count())
                                        .where(cases.c.status == "open", cases.c.deadline < now)
                                        .group_by(cases.c.queue)).all())
        accepted = CounterMetricFamily("hotline_signals_accepted",
                                       "Signals accepted (committed), per channel; from the database.",
                                       labels=["channel"])
        for channel in Channel:
            accepted.add_metric([channel.value], by_channel.get(channel.value, 0))
        overdue_fam = GaugeMetricFamily("hotline_cases_overdue",
                                        "Open cases nobody has acknowledged, past their SLA deadline, per queue.",
                                        labels=["queue"])
        for queue in sorted({*self.rt.settings.teams, *overdue}):
            overdue_fam.add_metric([queue], overdue.get(queue, 0))
        return [
            accepted,
            GaugeMetricFamily("hotline_signals_waiting", "Signals accepted and not yet triaged.", value=waiting),
            CounterMetricFamily("hotline_sla_breaches", "Cases that passed their SLA deadline while open.",
                                value=breaches),
            overdue_fam,
        ]

    def _from_redis(self) -> list[Metric]:
        depth = GaugeMetricFamily("hotline_queue_depth", "Jobs waiting in each rq queue.", labels=["queue"])
        scheduled = GaugeMetricFamily("hotline_queue_scheduled",
                                      "Jobs scheduled for later (SMS debounce, SLA checks, retries), per queue.",
                                      labels=["queue"])
        failed = GaugeMetricFamily("hotline_jobs_failed",
                                   "Jobs in rq's failed registry (kept queue.failure_ttl_days), per queue.",
                                   labels=["queue"])
        for q in (self.rt.urgent_queue, self.rt.queue):
            # Read-only: no registry cleanup from a scrape (the workers' maintenance does it).
            depth.add_metric([q.name], q.count)
            scheduled.add_metric([q.name], ScheduledJobRegistry(queue=q).get_job_count(cleanup=False))
            failed.add_metric([q.name], FailedJobRegistry(queue=q).get_job_count(cleanup=False))
        return [depth, scheduled, failed, _latency(self.rt.redis)]


def make_blueprint(rt: Runtime, token: str | None = None) -> Blueprint:
    """GET /metrics; with `token` (security.metrics_token) only for "Authorization: Bearer <token>"."""
    bp = Blueprint("metrics", __name__)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(HotlineCollector(rt))
    expected = f"Bearer {token}".encode() if token else None

    @bp.get("/metrics")
    def metrics() -> Response:
        if expected is not None:
            given = request.headers.get("Authorization", "").encode("utf-8", "replace")
            if not hmac.compare_digest(given, expected):
                return Response("metrics need the header Authorization: Bearer <security.metrics_token>\n",
                                status=401, content_type="text/plain; charset=utf-8",
                                headers={"WWW-Authenticate": 'Bearer realm="metrics"', "Cache-Control": "no-store"})
        return Response(generate_latest(registry), mimetype=None, content_type=CONTENT_TYPE_LATEST,
                        headers={"Cache-Control": "no-store"})

    return bp
