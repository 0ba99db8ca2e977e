"""The one place that builds connections and services from Settings and wires them together."""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from datetime import time
from pathlib import Path
from typing import Any

from redis import Redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry
from rq import Queue

from intake.crypto import FieldCipher, SecretKeyError, generate_secret_key
from intake.normalize import LanguageDetector
from intake.sink import JobPolicy, Sink, make_queue
from intake.store import Store, make_engine
from routing.escalation import EscalationPolicy
from routing.events import EventPublisher
from routing.protocols import ProtocolError, ProtocolTable, load_protocols
from routing.sla import BusinessCalendar, SlaRule
from triage.engine import Ruleset, load_ruleset

from .schema import ensure_schema
from .settings import ConfigError, Settings

log = logging.getLogger(__name__)


def embedded_socket(settings: Settings) -> Path:
    return (settings.var_path / "redis.sock").resolve()


def redis_url(settings: Settings) -> str:
    """Configured Redis, else the embedded server's socket under var_dir."""
    return settings.storage.redis_url or f"unix://{embedded_socket(settings)}"


def is_embedded_default(settings: Settings) -> bool:
    return not settings.storage.database_url


def with_dev_secrets(settings: Settings) -> Settings:
    """Fill missing secrets from <var_dir>/secrets.json on the embedded default only.

    Outside it (a database URL is configured) a missing secret is a configuration error:
    a deployed hotline never runs on a generated or default key.
    """
    missing_key = not settings.security.secret_key
    missing_token = not settings.twilio.auth_token
    if not (missing_key or missing_token):
        return settings
    if not is_embedded_default(settings):
        which = "security.secret_key (HOTLINE_SECRET_KEY)" if missing_key else \
            "twilio.auth_token (HOTLINE_TWILIO_AUTH_TOKEN)"
        raise ConfigError(f"{settings.source}: {which}: required when storage.database_url is set")
    path = settings.var_path / "secrets.json"
    data: dict[str, str] = {}
    if path.exists():
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{path}: unreadable dev secrets file; delete it to make a new one") from exc
    changed = False
    if not data.get("secret_key"):
        data["secret_key"] = generate_secret_key()
        changed = True
    if not data.get("twilio_auth_token"):
        data["twilio_auth_token"] = generate_secret_key()[:32]
        changed = True
    if changed:
        settings.var_path.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh)
    return settings.model_copy(update={
        "security": settings.security.model_copy(
            update={"secret_key": settings.security.secret_key or data["secret_key"]}),
        "twilio": settings.twilio.model_copy(
            update={"auth_token": settings.twilio.auth_token or data["twilio_auth_token"]}),
    })


def job_policy(settings: Settings) -> JobPolicy:
    q = settings.queue
    return JobPolicy(queue_name=q.name, timeout=q.job_timeout, retry_intervals=tuple(q.retry_intervals),
                     failure_ttl=q.failure_ttl_days * 86400)


def sla_rules(settings: Settings) -> tuple[SlaRule, ...]:
    return tuple(SlaRule(r.category, r.urgency, r.channel, r.queue, r.minutes, r.business_days)
                 for r in settings.sla.routes)


def business_calendar(settings: Settings) -> BusinessCalendar:
    s = settings.sla
    return BusinessCalendar(s.timezone, s.holidays_country, time.fromisoformat(s.workday_start),
                            time.fromisoformat(s.workday_end))


def connect_redis(settings: Settings) -> Redis:
    t = settings.storage.redis_connect_timeout
    # Short timeouts and one quick retry: a webhook must answer fast even if Redis is gone
    # (redis-py's default is three retries with backoff, seconds per request).
    return Redis.from_url(redis_url(settings), socket_connect_timeout=t, socket_timeout=max(t, 2.0),
                          retry=Retry(ExponentialBackoff(cap=0.2, base=0.05), 1),
                          health_check_interval=30)


@dataclass
class Runtime:
    settings: Settings
    store: Store
    redis: Redis
    queue: Queue
    urgent_queue: Queue
    policy: JobPolicy
    sink: Sink
    detector: LanguageDetector
    calendar: BusinessCalendar
    sla_rules: tuple[SlaRule, ...]
    escalation: EscalationPolicy
    publisher: EventPublisher
    protocols: ProtocolTable
    _ruleset: Ruleset | None = field(default=None, repr=False)
    _notifier: Any = field(default=None, repr=False)

    @property
    def ruleset(self) -> Ruleset:
        if self._ruleset is None:
            rules_dir = Path(self.settings.triage.rules_dir) if self.settings.triage.rules_dir else None
            self._ruleset = load_ruleset(rules_dir)
        return self._ruleset

    @property
    def notifier(self) -> Any:
        if self._notifier is None:
            from .notify import Notifier, make_twilio_client

            self._notifier = Notifier(self.settings, self.store, make_twilio_client(self.settings))
        return self._notifier

    def close(self) -> None:
        self.store.engine.dispose()
        self.redis.close()


def make_cipher(settings: Settings) -> FieldCipher:
    """The field cipher: security.secret_key, and previous_secret_keys for reading older data."""
    try:
        return FieldCipher(settings.security.secret_key or "", settings.security.previous_secret_keys)
    except SecretKeyError as exc:
        raise ConfigError(f"{settings.source}: {exc}") from exc


def build_runtime(settings: Settings, create_schema: bool = True) -> Runtime:
    settings.var_path.mkdir(parents=True, exist_ok=True)
    cipher = make_cipher(settings)
    store = Store(make_engine(settings.database_url()), cipher)
    if create_schema:
        # Migrations (or create_all + stamp on an empty database): see workers/schema.py.
        ensure_schema(store.engine)
    redis = connect_redis(settings)
    policy = job_policy(settings)
    queue = make_queue(redis, policy)
    urgent_queue = make_queue(redis, policy, urgent=True)
    try:
        protocols = load_protocols(Path(settings.protocols.path) if settings.protocols.path else None)
    except ProtocolError as exc:
        raise ConfigError(f"protocols.path: {exc}") from exc
    esc = settings.escalation
    return Runtime(
        settings=settings,
        store=store,
        redis=redis,
        queue=queue,
        policy=policy,
        sink=Sink(store, queue, policy, urgent_queue=urgent_queue),
        urgent_queue=urgent_queue,
        detector=LanguageDetector(),
        calendar=business_calendar(settings),
        sla_rules=sla_rules(settings),
        escalation=EscalationPolicy(esc.crisis_unacknowledged_minutes, tuple(esc.acknowledge_urgencies),
                                    esc.warning_fraction, esc.breach_queue),
        publisher=EventPublisher(settings.storage.broker_url or redis_url(settings), settings.events.exchange),
        protocols=protocols,
    )
