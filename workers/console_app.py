"""Wire the operator console to the runtime: its stores, queues and the reply senders."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import Flask

from console.casework import Casework, Routing
from console.sessions import SessionStore
from console.users import UserStore
from console.views import ConsoleConfig, ConsoleDeps, make_blueprint, make_public_stats_blueprint
from routing.cases import new_case_number

from .runtime import Runtime
from .settings import Settings


def user_store(settings: Settings, rt: Runtime) -> UserStore:
    c = settings.console
    return UserStore(rt.store.engine, c.lockout_attempts, c.lockout_minutes, c.min_password_length)


def secure_cookies(settings: Settings) -> bool:
    mode = settings.console.secure_cookies
    if mode == "auto":
        return (settings.service.public_base_url or "").startswith("https://")
    return mode == "always"


def console_deps(settings: Settings, rt: Runtime) -> ConsoleDeps:
    from .replies import ReplyRefused, send_email_reply, send_sms_reply

    def reply(number: str, channel: str, text: str, author: str) -> dict[str, Any]:
        try:
            if channel == "email":
                return send_email_reply(rt, number, text, author)
            return send_sms_reply(rt, number, text, author)
        except ReplyRefused as exc:
            raise ValueError(str(exc)) from exc

    def replan(number: str, actor: str) -> list[str]:
        from .jobs import replan_case

        case = rt.store.case_by_number(number)
        return replan_case(rt, case.id, actor) if case else []

    c = settings.console
    return ConsoleDeps(
        config=ConsoleConfig(
            secret_key=settings.security.secret_key or "", secure_cookies=secure_cookies(settings),
            refresh_seconds=c.refresh_seconds, amber_fraction=c.amber_fraction,
            suppression_threshold=settings.stats.suppression_threshold, public_stats=settings.stats.public,
            teams=dict(settings.teams), service_name=settings.service.name),
        users=user_store(settings, rt),
        sessions=SessionStore(rt.store.engine, timedelta(minutes=c.session_minutes), timedelta(minutes=c.idle_minutes)),
        casework=Casework(rt.store, Routing(rt.sla_rules, rt.calendar), new_case_number),
        queues=(rt.urgent_queue, rt.queue),
        reply=reply,
        replan=replan,
    )


def register_console(app: Flask, settings: Settings, rt: Runtime) -> None:
    if not settings.security.secret_key:
        raise ValueError("the console needs security.secret_key (its CSRF tokens are derived from it)")
    deps = console_deps(settings, rt)
    app.register_blueprint(make_blueprint(deps))
    if settings.stats.public:
        app.register_blueprint(make_public_stats_blueprint(deps))


def ensure_dev_user(settings: Settings, rt: Runtime) -> tuple[str, str] | None:
    """On the embedded default only, and only while no account exists: a 'demo' supervisor with a
    fresh random password, returned once to be printed. A deployed hotline has no default login."""
    import secrets
    from datetime import UTC, datetime

    from .runtime import is_embedded_default

    users = user_store(settings, rt)
    if not is_embedded_default(settings) or users.list():
        return None
    password = secrets.token_urlsafe(12)
    users.add("demo", "supervisor", password, datetime.now(UTC), actor="hotline run")
    return "demo", password
