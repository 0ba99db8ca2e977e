"""The console blueprint: login, queues, case view, dashboard, triage quality, statistics,
audit and users. Every route names the permission it needs (console/permissions.py); every
form carries a CSRF token; pages send a strict Content-Security-Policy (no inline script)."""

from __future__ import annotations

import functools
import hashlib
import hmac
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, TypeVar
from urllib.parse import urlsplit

from flask import Blueprint, Response, abort, g, jsonify, redirect, render_template, request, url_for

from intake.case_numbers import normalize_case_number
from triage.result import CATEGORIES, URGENCIES

from . import stats as stats_mod
from .casework import CaseActionError, Casework
from .models import ROLES
from .permissions import HOME, allowed
from .quality import labelled_cases, summarise
from .sessions import SessionStore
from .users import UserError, UserStore

F = TypeVar("F", bound=Callable[..., Any])

SESSION_COOKIE = "hotline_console"
CSRF_COOKIE = "hotline_console_csrf"
COOKIE_PATH = "/console"

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")

# Fixed notices shown after an action (a code in the URL, never free text).
NOTICES = {
    "acknowledged": "Case acknowledged.", "closed": "Case closed.", "reopened": "Case reopened.",
    "assigned": "Assignment saved.", "note": "Note added.", "reclassified": "Category and urgency changed.",
    "linked": "Contact moved to the other case.", "unlinked": "Contact moved to a new case.",
    "step": "Step marked done.", "reply": "Reply sent.", "reply_recorded": "Reply recorded (no provider configured).",
    "retried": "Job sent back to its queue.", "user_added": "User added.", "user_changed": "User updated.",
}


@dataclass(frozen=True)
class ConsoleConfig:
    secret_key: str
    secure_cookies: bool
    refresh_seconds: int
    amber_fraction: float
    suppression_threshold: int
    public_stats: bool
    teams: dict[str, str]
    service_name: str


@dataclass
class ConsoleDeps:
    config: ConsoleConfig
    users: UserStore
    sessions: SessionStore
    casework: Casework
    # Every rq queue whose failed jobs the dashboard shows.
    queues: Sequence[Any]
    # reply(case_number, channel, text, author) -> {"status": ...}; raises ValueError with a reason.
    reply: Callable[[str, str, str, str], dict[str, Any]]
    # replan(case_number, actor): protocol steps and SLA checks for a re-classified case.
    replan: Callable[[str, str], list[str]] = lambda _number, _actor: []
    now: Callable[[], datetime] = lambda: datetime.now(UTC)


def _mac(key: str, *parts: str) -> str:
    return hmac.new(hashlib.sha256(f"console-csrf:{key}".encode()).digest(), "\x1f".join(parts).encode(),
                    hashlib.sha256).hexdigest()


def stats_page(deps: ConsoleDeps, since: date | None, until: date | None, **context: Any) -> str:
    """The statistics page (console and public): suppressed tables and their charts."""
    threshold = deps.config.suppression_threshold
    tables = stats_mod.statistics(deps.casework.engine, since, until, threshold)
    charts = {d: stats_mod.bar_chart_svg(t, d.replace("_", " ")) for d, t in tables.items()}
    return render_template("console/stats.html", tables=tables, charts=charts, since=since, until=until,
                           threshold=threshold, **context)


def stats_csv_response(deps: ConsoleDeps, since: date | None, until: date | None, filename: str) -> Response:
    tables = stats_mod.statistics(deps.casework.engine, since, until, deps.config.suppression_threshold)
    return Response(stats_mod.to_csv(tables), mimetype="text/csv",
                    headers={"Content-Disposition": f"attachment; filename={filename}"})


def make_blueprint(deps: ConsoleDeps) -> Blueprint:
    cfg = deps.config
    cw = deps.casework
    bp = Blueprint("console", __name__, url_prefix="/console", template_folder="templates",
                   static_folder="static", static_url_path="/static")

    # ---- session, CSRF, headers ------------------------------------------------------------

    def csrf_token() -> str:
        sid = request.cookies.get(SESSION_COOKIE) if g.get("user") else None
        if sid:
            return _mac(cfg.secret_key, "s", sid)
        pre = g.get("pre_csrf") or request.cookies.get(CSRF_COOKIE)
        if not pre or len(pre) > 64:
            pre = secrets.token_urlsafe(24)
            g.new_pre_csrf = pre
        g.pre_csrf = pre
        return _mac(cfg.secret_key, "p", pre)

    def csrf_ok() -> bool:
        sent = request.form.get("csrf_token") or request.headers.get("X-CSRF-Token") or ""
        return bool(sent) and hmac.compare_digest(sent, csrf_token())

    @bp.before_request
    def load_user() -> Response | None:
        g.user = deps.sessions.resolve(request.cookies.get(SESSION_COOKIE), deps.now())
        if request.method == "POST" and not csrf_ok():
            return error_page(400, "This form has expired or was not sent from the console. "
                                   "Go back, reload the page and try again.")
        return None

    @bp.after_request
    def headers(resp: Response) -> Response:
        resp.headers["Content-Security-Policy"] = CSP
        resp.headers["X-Content-Type-Options"] = "nosniff"
        resp.headers["Referrer-Policy"] = "no-referrer"
        resp.headers["X-Frame-Options"] = "DENY"
        if not request.path.startswith(f"{COOKIE_PATH}/static/"):
            resp.headers["Cache-Control"] = "no-store"
        if g.get("new_pre_csrf"):
            set_cookie(resp, CSRF_COOKIE, g.new_pre_csrf, None)
        return resp

    def set_cookie(resp: Response, name: str, value: str, max_age: int | None) -> None:
        resp.set_cookie(name, value, max_age=max_age, path=COOKIE_PATH, secure=cfg.secure_cookies,
                        httponly=True, samesite="Strict")

    @bp.app_context_processor
    def template_globals() -> dict[str, Any]:
        def can(permission: str) -> bool:
            user = g.get("user")
            return bool(user) and allowed(user.role, permission)
        return {"can": can, "csrf_token": csrf_token, "current_user": g.get("user"), "teams": cfg.teams,
                "service_name": cfg.service_name}

    def wants_json() -> bool:
        return request.path.startswith(f"{COOKIE_PATH}/api/") or request.path.endswith(".csv")

    def error_page(status: int, message: str) -> Response:
        if wants_json():
            return Response(jsonify(error=message).get_data(), status=status, mimetype="application/json")
        return Response(render_template("console/error.html", status=status, message=message), status=status)

    def requires(permission: str) -> Callable[[F], F]:
        def deco(fn: F) -> F:
            @functools.wraps(fn)
            def wrapper(*args: Any, **kwargs: Any) -> Any:
                user = g.get("user")
                if user is None:
                    if wants_json() or request.method != "GET":
                        return error_page(401, "Log in first.")
                    return redirect(url_for("console.login", next=request.full_path.rstrip("?")))
                if not allowed(user.role, permission):
                    return error_page(403, "Your role does not allow this page or action.")
                return fn(*args, **kwargs)
            return wrapper  # type: ignore[return-value]
        return deco

    def actor() -> str:
        return str(g.user.username)

    def case_number(raw: str) -> str:
        number = normalize_case_number(raw)
        if number is None:
            abort(404)
        return number

    def back_to_case(number: str, notice: str) -> Response:
        return redirect(url_for("console.case_page", number=number, done=notice) + "#top", code=303)

    # ---- login -----------------------------------------------------------------------------------

    @bp.get("/")
    def index() -> Response:
        if g.user is None:
            return redirect(url_for("console.login"))
        return redirect(url_for(HOME[g.user.role]))

    def safe_next(raw: str | None) -> str | None:
        if not raw:
            return None
        parts = urlsplit(raw)
        if parts.scheme or parts.netloc or not parts.path.startswith(f"{COOKIE_PATH}/") or "\\" in raw:
            return None
        return raw

    @bp.route("/login", methods=["GET", "POST"])
    def login() -> Response:
        if request.method == "GET":
            return Response(render_template("console/login.html", error=None, next=request.args.get("next", "")))
        username = request.form.get("username", "")
        password = request.form.get("password", "")
        if "\x00" in username:  # no account name holds a NUL, and PostgreSQL cannot even compare one
            username = ""
        outcome = deps.users.authenticate(username, password, deps.now())
        if outcome.user is None:
            message = {"locked": "Too many failed attempts: this account is locked for a while. "
                                 "An administrator can unlock it.",
                       "disabled": "This account is disabled."}.get(outcome.reason,
                                                                     "Wrong username or password.")
            return Response(render_template("console/login.html", error=message,
                                            next=request.form.get("next", "")), status=401)
        sid = deps.sessions.start(outcome.user, deps.now())
        target = safe_next(request.form.get("next")) or url_for(HOME[outcome.user.role])
        resp = redirect(target, code=303)
        set_cookie(resp, SESSION_COOKIE, sid, None)
        resp.delete_cookie(CSRF_COOKIE, path=COOKIE_PATH)
        return resp

    @bp.post("/logout")
    def logout() -> Response:
        deps.sessions.end(request.cookies.get(SESSION_COOKIE))
        resp = redirect(url_for("console.login"), code=303)
        resp.delete_cookie(SESSION_COOKIE, path=COOKIE_PATH)
        return resp

    # ---- queues ------------------------------------------------------------------------------------

    def queue_arg(team: str | None) -> str | None:
        if team is not None and team not in cfg.teams:
            abort(404)
        return team

    @bp.get("/queues")
    @bp.get("/queues/<team>")
    @requires("queues.view")
    def queues(team: str | None = None) -> str:
        team = queue_arg(team)
        now = deps.now()
        rows = cw.queue(team, now, cfg.amber_fraction)
        return render_template("console/queues.html", team=team, rows=rows, counts=cw.queue_counts(now),
                               refresh=cfg.refresh_seconds)

    @bp.get("/api/queues")
    @bp.get("/api/queues/<team>")
    @requires("queues.view")
    def api_queues(team: str | None = None) -> Response:
        team = queue_arg(team)
        return jsonify(queue=team, now=deps.now().isoformat(), cases=cw.queue(team, deps.now(), cfg.amber_fraction))

    # ---- a case ----------------------------------------------------------------------------------

    def case_response(number: str, contact: list[dict[str, Any]] | None = None, notice: str | None = None,
                      error: str | None = None, status: int = 200) -> Response:
        try:
            detail = cw.detail(number, deps.now(), cfg.amber_fraction)
        except LookupError:
            abort(404)
        return Response(render_template("console/case.html", case=detail, contact=contact, notice=notice,
                                        error=error, categories=CATEGORIES, urgencies=URGENCIES), status=status)

    @bp.get("/cases/<number>")
    @requires("case.view")
    def case_page(number: str) -> Response:
        return case_response(case_number(number), notice=NOTICES.get(request.args.get("done", "")))

    @bp.get("/api/cases/<number>")
    @requires("case.view")
    def api_case(number: str) -> Response:
        try:
            return jsonify(cw.detail(case_number(number), deps.now(), cfg.amber_fraction))
        except LookupError:
            return error_page(404, "no such case")

    @bp.post("/cases/<number>/contact")
    @requires("case.contact")
    def case_contact(number: str) -> Response:
        number = case_number(number)
        try:
            contact = cw.contact(number, actor(), deps.now())
        except LookupError:
            abort(404)
        return case_response(number, contact=contact)

    def act(number: str, fn: Callable[[str], str]) -> Response:
        number = case_number(number)
        try:
            notice = fn(number)
        except LookupError:
            abort(404)
        except (CaseActionError, ValueError) as exc:
            return case_response(number, error=str(exc), status=400)
        return back_to_case(number, notice)

    @bp.post("/cases/<number>/status")
    @requires("case.act")
    def case_status(number: str) -> Response:
        to = request.form.get("to", "")
        if to not in ("acknowledged", "closed", "open"):
            return error_page(400, "to: must be acknowledged, closed or open")

        def do(n: str) -> str:
            cw.set_status(n, to, actor(), request.form.get("reason"), deps.now())
            return {"open": "reopened"}.get(to, to)
        return act(number, do)

    @bp.post("/cases/<number>/assign")
    @requires("case.act")
    def case_assign(number: str) -> Response:
        def do(n: str) -> str:
            assignee = (request.form.get("assignee") or actor()).strip().lower()
            if assignee != actor() and not allowed(g.user.role, "case.assign_others"):
                raise CaseActionError("assignee: only a supervisor assigns a case to someone else")
            found = deps.users.get(assignee)
            if found is None or not found.active or not allowed(found.role, "case.act"):
                raise CaseActionError(f"assignee: {assignee!r} is not an active advocate or supervisor")
            cw.assign(n, assignee, actor(), deps.now())
            return "assigned"
        return act(number, do)

    @bp.post("/cases/<number>/notes")
    @requires("case.act")
    def case_note(number: str) -> Response:
        def do(n: str) -> str:
            cw.add_note(n, request.form.get("body", ""), actor(), deps.now())
            return "note"
        return act(number, do)

    @bp.post("/cases/<number>/reclassify")
    @requires("case.act")
    def case_reclassify(number: str) -> Response:
        def do(n: str) -> str:
            cw.reclassify(n, request.form.get("category", ""), request.form.get("urgency", ""),
                          request.form.get("reason", ""), actor(), deps.now())
            deps.replan(n, actor())
            return "reclassified"
        return act(number, do)

    @bp.post("/cases/<number>/move")
    @requires("case.act")
    def case_move(number: str) -> Response:
        def do(n: str) -> str:
            raw_target = (request.form.get("target") or "").strip()
            target = None
            if raw_target:
                target = normalize_case_number(raw_target)
                if target is None:
                    raise CaseActionError(f"target: {raw_target[:40]!r} is not a case number")
            cw.move_signal(n, request.form.get("signal_id", ""), target, actor(), deps.now(),
                           request.form.get("reason", ""))
            return "linked" if target else "unlinked"
        return act(number, do)

    @bp.post("/cases/<number>/steps")
    @requires("case.act")
    def case_step(number: str) -> Response:
        def do(n: str) -> str:
            cw.complete_step(n, request.form.get("protocol", ""), request.form.get("step_id", ""), actor(),
                             deps.now())
            return "step"
        return act(number, do)

    @bp.post("/cases/<number>/reply")
    @requires("case.act")
    def case_reply(number: str) -> Response:
        def do(n: str) -> str:
            channel = request.form.get("channel", "")
            if channel not in ("sms", "email"):
                raise CaseActionError("channel: reply by sms or email")
            result = deps.reply(n, channel, request.form.get("text", ""), actor())
            if result.get("status") == "failed":
                raise CaseActionError("the reply could not be sent; it is recorded on the case as failed")
            return "reply_recorded" if result.get("status") == "recorded" else "reply"
        return act(number, do)

    # ---- supervisors ---------------------------------------------------------------------------

    def failed_jobs() -> list[dict[str, Any]]:
        from rq.job import Job
        from rq.registry import FailedJobRegistry

        out = []
        for q in deps.queues:
            reg = FailedJobRegistry(queue=q)
            ids = reg.get_job_ids(0, 199)
            for job in Job.fetch_many(ids, connection=q.connection, serializer=q.serializer):
                if job is None:
                    continue
                result = job.latest_result()
                exc = (result.exc_string if result else job.exc_info) or ""
                last = [ln for ln in exc.strip().splitlines() if ln.strip()][-1:] or [""]
                # Only the exception's type: its message could quote data.
                out.append({"id": job.id, "queue": q.name, "function": job.func_name,
                            "ended_at": job.ended_at.isoformat() if job.ended_at else "",
                            "error": last[0].split(":", 1)[0][:120]})
        return out

    @bp.get("/dashboard")
    @requires("dashboard.view")
    def dashboard() -> str:
        now = deps.now()
        see_cases = allowed(g.user.role, "case.view")
        return render_template("console/dashboard.html", counts=cw.queue_counts(now),
                               crises=cw.unacknowledged_crises(now), breaches=cw.breaches(now),
                               jobs=failed_jobs(), see_cases=see_cases, refresh=cfg.refresh_seconds)

    @bp.post("/jobs/<job_id>/retry")
    @requires("jobs.retry")
    def retry_job(job_id: str) -> Response:
        from rq.registry import FailedJobRegistry

        for q in deps.queues:
            reg = FailedJobRegistry(queue=q)
            if job_id in reg.get_job_ids():
                reg.requeue(job_id)
                with cw.engine.begin() as conn:
                    deps.users.audit(conn, deps.now(), actor(), "job_retried", job_id=job_id[:80], queue=q.name)
                return redirect(url_for("console.dashboard", done="retried"), code=303)
        return error_page(404, "no failed job with that id")

    @bp.get("/quality")
    @requires("quality.view")
    def quality() -> str:
        return render_template("console/quality.html", q=summarise(labelled_cases(cw.engine)))

    @bp.get("/audit")
    @requires("audit.view")
    def audit() -> str:
        return render_template("console/audit.html", entries=cw.audit_entries(),
                               see_cases=allowed(g.user.role, "case.view"))

    # ---- statistics ----------------------------------------------------------------------------

    def period() -> tuple[date | None, date | None]:
        def parse(name: str) -> date | None:
            raw = request.args.get(name, "").strip()
            if not raw:
                return None
            try:
                return date.fromisoformat(raw)
            except ValueError:
                abort(Response(render_template("console/error.html", status=400,
                                               message=f"{name}: use a date like 2026-01-31"), status=400))
        return parse("since"), parse("until")

    @bp.get("/stats")
    @requires("stats.view")
    def stats() -> str:
        since, until = period()
        return stats_page(deps, since, until, public=False)

    @bp.get("/stats.csv")
    @requires("stats.view")
    def stats_csv() -> Response:
        since, until = period()
        with cw.engine.begin() as conn:
            deps.users.audit(conn, deps.now(), actor(), "stats_exported",
                             since=since.isoformat() if since else None, until=until.isoformat() if until else None)
        return stats_csv_response(deps, since, until, "hotline-statistics.csv")

    # ---- users -------------------------------------------------------------------------------------

    @bp.get("/users")
    @requires("users.manage")
    def users_page() -> Response:
        return Response(render_template("console/users.html", users=deps.users.list(), roles=ROLES, error=None,
                                        notice=NOTICES.get(request.args.get("done", ""))))

    @bp.post("/users")
    @requires("users.manage")
    def users_change() -> Response:
        f = request.form
        op = f.get("op", "")
        try:
            if op == "add":
                deps.users.add(f.get("username", ""), f.get("role", ""), f.get("password", ""), deps.now(), actor())
            elif op in ("disable", "enable"):
                if f.get("username", "").strip().lower() == actor() and op == "disable":
                    raise UserError("you cannot disable your own account")
                deps.users.set_active(f.get("username", ""), op == "enable", deps.now(), actor())
            elif op == "unlock":
                deps.users.unlock(f.get("username", ""), deps.now(), actor())
            elif op == "role":
                deps.users.set_role(f.get("username", ""), f.get("role", ""), deps.now(), actor())
            elif op == "password":
                deps.users.set_password(f.get("username", ""), f.get("password", ""), deps.now(), actor())
            else:
                raise UserError("op: must be add, disable, enable, unlock, role or password")
        except UserError as exc:
            return Response(render_template("console/users.html", users=deps.users.list(), roles=ROLES,
                                            error=str(exc), notice=None), status=400)
        return redirect(url_for("console.users_page", done="user_added" if op == "add" else "user_changed"),
                        code=303)

    return bp


def completed_periods(today: date, months: int = 24) -> list[str]:
    """The periods the public page offers: whole calendar months and years that have ended
    (newest first). Only fixed, finished periods: two overlapping or growing ones could be
    subtracted from each other to reveal a suppressed count."""
    out: list[str] = []
    y, m = today.year, today.month
    for _ in range(months):
        m -= 1
        if m == 0:
            y, m = y - 1, 12
        out.append(f"{y:04d}-{m:02d}")
    years = sorted({int(p[:4]) for p in out if int(p[:4]) < today.year}, reverse=True)
    return out + [str(yr) for yr in years]


def period_bounds(period: str) -> tuple[date, date]:
    """'2026' -> the year; '2026-11' -> the month (first and last day, inclusive)."""
    if len(period) == 4:
        y = int(period)
        return date(y, 1, 1), date(y, 12, 31)
    y, m = int(period[:4]), int(period[5:7])
    nxt = date(y + (m == 12), m % 12 + 1, 1)
    return date(y, m, 1), nxt - timedelta(days=1)


def make_public_stats_blueprint(deps: ConsoleDeps) -> Blueprint:
    """/stats and /stats.csv for the public: the same suppressed aggregates, no login, and only
    for completed calendar months and years (never a free date range)."""
    cfg = deps.config
    bp = Blueprint("public_stats", __name__, template_folder="templates", static_folder="static",
                   static_url_path="/stats/static")

    def chosen() -> str | Response:
        periods = completed_periods(deps.now().date())
        raw = request.args.get("period", "").strip() or periods[0]
        if raw not in periods:
            return Response(f"period: choose a completed month (YYYY-MM) or year (YYYY) from the last two years, "
                            f"like {periods[0]}\n", status=400, mimetype="text/plain")
        return raw

    @bp.after_request
    def headers(resp: Response) -> Response:
        resp.headers["Content-Security-Policy"] = CSP
        resp.headers["X-Content-Type-Options"] = "nosniff"
        return resp

    @bp.get("/stats")
    def public_stats() -> Response:
        period = chosen()
        if isinstance(period, Response):
            return period
        since, until = period_bounds(period)
        return Response(stats_page(deps, since, until, period=period, periods=completed_periods(deps.now().date()),
                                   public=True, current_user=None, can=lambda _p: False, teams={},
                                   service_name=cfg.service_name, csrf_token=lambda: ""))

    @bp.get("/stats.csv")
    def public_stats_csv() -> Response:
        period = chosen()
        if isinstance(period, Response):
            return period
        since, until = period_bounds(period)
        return stats_csv_response(deps, since, until, f"hotline-statistics-{period}.csv")

    return bp
