"""create_app(settings): the Flask app factory registering channel blueprints."""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta

from flask import Flask, Response, jsonify
from werkzeug.exceptions import HTTPException

from intake.channels import sms
from intake.signal import Signal
from triage.engine import classify

from .runtime import Runtime, build_runtime, with_dev_secrets
from .settings import Settings, load_settings

log = logging.getLogger(__name__)


def create_app(settings: Settings, runtime: Runtime | None = None) -> Flask:
    rt = runtime or build_runtime(settings)
    # The webhook takes a 40 µs look with the triage rules so that a crisis goes to the urgent
    # queue; the worker still does the full triage (with the conversation) afterwards.
    rt.sink.is_urgent = lambda signal: is_urgent(signal, rt)
    app = Flask("hotline")
    app.config["MAX_CONTENT_LENGTH"] = max(settings.sms.max_request_bytes, 1_000_000)
    app.extensions["hotline_runtime"] = rt

    window = timedelta(hours=settings.sms.conversation_window_hours)
    sms_config = sms.SmsConfig(
        auth_token=settings.twilio.auth_token,
        public_base_url=settings.service.public_base_url,
        max_request_bytes=settings.sms.max_request_bytes,
        auto_reply={"en": settings.sms.auto_reply_en, "es": settings.sms.auto_reply_es},
    )
    app.register_blueprint(sms.make_blueprint(
        sms_config, rt.sink, rt.detector,
        should_reply=lambda signal_id: rt.store.opens_conversation(signal_id, window),
    ))

    @app.get("/healthz")
    def healthz() -> Response:
        return jsonify(status="ok")

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


def is_urgent(signal: Signal, rt: Runtime) -> bool:
    return classify(signal, rt.ruleset).urgency in ("immediate", "high")


def app_from_env() -> Flask:
    """Factory for gunicorn (`workers.web:app_from_env()`): settings from config + env."""
    from .logging_setup import configure_logging

    configure_logging()
    return create_app(with_dev_secrets(load_settings()))
