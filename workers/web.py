"""create_app(settings): the Flask app factory registering channel blueprints."""

from __future__ import annotations

import functools
import logging
import uuid
from datetime import date, timedelta

from flask import Flask, Response, jsonify
from werkzeug.exceptions import HTTPException

from intake.channels import email, sms, voice, webform
from intake.channels.twilio_common import TwilioAuth
from intake.signal import Channel, Signal
from routing.directory import load_directory
from triage.engine import classify

from .console_app import register_console
from .health import make_blueprint as health_blueprint
from .metrics import make_blueprint as metrics_blueprint
from .referrals_api import make_blueprint as referrals_blueprint
from .runtime import Runtime, build_runtime, redis_url, with_dev_secrets
from .settings import Settings, load_settings

log = logging.getLogger(__name__)


def create_app(settings: Settings, runtime: Runtime | None = None) -> Flask:
    rt = runtime or build_runtime(settings)
    # The webhook takes a 40 µs look with the triage rules so that a crisis goes to the urgent
    # queue; the worker still does the full triage (with the conversation) afterwards.
    rt.sink.is_urgent = lambda signal: is_urgent(signal, rt)
    # Routine texts wait a few seconds so a burst of short messages is triaged together.
    debounce = settings.sms.debounce_seconds
    rt.sink.delay_for = lambda signal: debounce if signal.channel == Channel.SMS else 0
    app = Flask("hotline")
    app.config["MAX_CONTENT_LENGTH"] = max(settings.sms.max_request_bytes, 1_000_000)
    app.extensions["hotline_runtime"] = rt

    app.register_blueprint(sms.make_blueprint(sms_config(settings), rt.store, rt.sink, rt.detector))
    app.register_blueprint(voice.make_blueprint(
        voice_config(settings),
        TwilioAuth(settings.twilio.auth_token, settings.service.public_base_url, settings.voice.max_request_bytes),
        rt.store, rt.sink, rt.detector,
        on_late_transcript=lambda signal_id: enqueue_retriage(rt, signal_id),
    ))

    app.register_blueprint(email.make_blueprint(
        email.InboundConfig(settings.email.inbound_secret, email_limits(settings)), rt.store, rt.sink, rt.detector))

    app.register_blueprint(webform.make_blueprint(webform_config(settings), rt.sink, rt.detector,
                                                  limiter_uri(settings)))

    # Loaded once, on the first referral search.
    app.register_blueprint(referrals_blueprint(functools.cache(load_directory)))

    register_console(app, settings, rt)

    @app.get("/healthz")
    def healthz() -> Response:
        return jsonify(status="ok")

    # /readyz: database, Redis and broker reachable (workers/health.py).
    app.register_blueprint(health_blueprint(rt))
    # /metrics: Prometheus, read from the database and Redis at scrape time (workers/metrics.py).
    app.register_blueprint(metrics_blueprint(rt, settings.security.metrics_token))

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        resp = Response(f"{exc.code} {exc.name}: {exc.description}\n", status=exc.code, mimetype="text/plain")
        return resp

    @app.errorhandler(Exception)
    def internal_error(exc: Exception) -> Response:
        # Never a traceback to the caller; an id to find the logged one. Twilio retries 5xx.
        ref = uuid.uuid4().hex[:12]
        log.error("internal error ref=%s: %s", ref, exc.__class__.__name__, exc_info=exc)
        return Response(f"internal error (ref {ref}); the request was not accepted, please retry\n",
                        status=500, mimetype="text/plain")

    return app


def sms_config(settings: Settings) -> sms.SmsConfig:
    from zoneinfo import ZoneInfo

    from intake.channels.textline import Hours, ReplyTexts, parse_window

    h = settings.sms.hours
    voice_number = settings.service.voice_number
    return sms.SmsConfig(
        auth=TwilioAuth(settings.twilio.auth_token, settings.service.public_base_url, settings.sms.max_request_bytes),
        replies={lang: ReplyTexts(**{k: v.replace("{voice}", voice_number) for k, v in r.model_dump().items()})
                 for lang, r in settings.sms.replies.items()},
        hours=Hours(tz=ZoneInfo(h.timezone),
                    weekly={d: tuple(parse_window(w) for w in ws) for d, ws in h.weekly.items()},
                    holiday_country=h.holidays_country or None,
                    closed_dates=frozenset(date.fromisoformat(d) for d in h.closed_dates)),
        safe_word=settings.sms.safe_word,
        conversation_timeout=timedelta(minutes=settings.sms.conversation_timeout_minutes),
    )


def webform_config(settings: Settings) -> webform.WebformConfig:
    w = settings.webform
    return webform.WebformConfig(secret_key=settings.security.secret_key or "", exit_url=w.exit_url,
                                 hotline_number=settings.service.voice_number, rate_limit=w.rate_limit,
                                 trusted_proxies=w.trusted_proxies, max_request_bytes=w.max_request_bytes)


def limiter_uri(settings: Settings) -> str:
    """The rate limiter's store: the same Redis (the limits library spells a socket redis+unix)."""
    url = redis_url(settings)
    return "redis+unix://" + url.removeprefix("unix://") if url.startswith("unix://") else url


def email_limits(settings: Settings) -> email.EmailLimits:
    e = settings.email
    return email.EmailLimits(max_bytes=e.max_bytes, max_attachment_bytes=e.max_attachment_bytes,
                             max_attachments=e.max_attachments)


def voice_config(settings: Settings) -> voice.VoiceConfig:
    v = settings.voice
    return voice.VoiceConfig(
        prompts={lang: voice.Prompts(**p.model_dump()) for lang, p in v.prompts.items()},
        menu_timeout_seconds=v.menu_timeout_seconds, max_wait_seconds=v.max_wait_seconds,
        voicemail_max_seconds=v.voicemail_max_seconds, crisis_queue=v.crisis_queue,
        interpreter_number=v.interpreter_number, interpreter_sip=v.interpreter_sip,
        interpreter_timeout_seconds=v.interpreter_timeout_seconds,
    )


def enqueue_retriage(rt: Runtime, signal_id: str) -> None:
    """Re-triage a signal whose text grew; if Redis is down, log it (the text is stored)."""
    from redis.exceptions import RedisError

    try:
        rt.urgent_queue.enqueue("workers.jobs.retriage", signal_id,
                                job_id=f"retriage-{signal_id}-{uuid.uuid4().hex[:8]}",
                                job_timeout=rt.policy.timeout, failure_ttl=rt.policy.failure_ttl)
    except RedisError:
        log.warning("signal %s: transcript stored but re-triage not enqueued (Redis unreachable)", signal_id)


def is_urgent(signal: Signal, rt: Runtime) -> bool:
    return classify(signal, rt.ruleset).urgency in ("immediate", "high")


def app_from_env() -> Flask:
    """Factory for gunicorn (`workers.web:app_from_env()`): settings from config + env."""
    from .logging_setup import configure_logging

    configure_logging()
    return create_app(with_dev_secrets(load_settings()))
