"""Signed SMS webhook throughput and latency, against a bare Flask baseline in the same run.

Starts, in a temporary directory: an embedded Redis, the real app under gunicorn (the command
`hotline run` uses) on SQLite, and a bare Flask endpoint that only returns TwiML under the same
gunicorn settings. Sends the same signed inbound-SMS requests to both in alternating rounds, then
prints requests, req/s, p50/p99 latency for each and the app/baseline ratios. Everything it
starts is stopped, and the directory removed, on exit, error or Ctrl-C.

    .venv/bin/python bench/webhook.py [--requests N] [--concurrency C] [--rounds R] [--json]

This file is also the baseline's gunicorn module (`webhook:baseline_app()`), so module-level
code imports only Flask and twilio's TwiML builder.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import math
import os
import secrets
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from flask import Flask, Response
from twilio.twiml.messaging_response import MessagingResponse

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
CONFIG = REPO / "config.yaml"
HOST = "127.0.0.1"
PATH = "/twilio/sms"
START_TIMEOUT = 60.0  # seconds to wait for a server to answer
REQUEST_TIMEOUT = 30.0  # seconds per HTTP request (socket timeout)
STOP_TIMEOUT = 15.0  # seconds for gunicorn's graceful stop before SIGKILL
MAX_REQUESTS = 100_000

# Invented, neutral texts: nothing that looks like a real conversation.
BODIES = (
    "Hello, what are your opening hours this week?",
    "Hi, I would like some general information about your services please.",
    "Good morning, can someone call me back tomorrow afternoon?",
    "Hola, quisiera informacion general sobre sus servicios por favor.",
)
BASELINE_REPLY = "Thank you for your message. Someone will reply soon."


# ---- the baseline app (imported by gunicorn as `webhook:baseline_app()`) ----------------------


def baseline_app() -> Flask:
    """One POST endpoint that only answers TwiML with one message; it ignores the request."""
    app = Flask("bench-baseline")

    @app.post(PATH)
    def inbound() -> Response:
        resp = MessagingResponse()
        resp.message(BASELINE_REPLY)
        return Response(str(resp), status=200, mimetype="application/xml")

    return app


# ---- processes --------------------------------------------------------------------------------


def free_ports(n: int) -> list[int]:
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((HOST, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


@dataclass
class Server:
    name: str
    port: int
    proc: subprocess.Popen[bytes]
    log_path: Path

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def start_server(name: str, cmd: list[str], port: int, env: dict[str, str], var_dir: Path) -> Server:
    log_path = var_dir / f"{name}.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, env=env, cwd=REPO, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    return Server(name, port, proc, log_path)


def wait_ready(server: Server, method: str, path: str, timeout: float = START_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(f"{server.name}: gunicorn exited with code {server.proc.returncode} during start\n"
                               f"{server.log_tail()}")
        conn = http.client.HTTPConnection(HOST, server.port, timeout=2)
        try:
            conn.request(method, path, body=b"" if method == "POST" else None,
                         headers={"Content-Type": "application/x-www-form-urlencoded"} if method == "POST" else {})
            resp = conn.getresponse()
            resp.read()
            if resp.status == 200:
                return
            last = f"HTTP {resp.status}"
        except OSError as exc:
            last = exc.__class__.__name__
        finally:
            conn.close()
        time.sleep(0.2)
    raise RuntimeError(f"{server.name}: not ready after {timeout:.0f}s ({last})\n{server.log_tail()}")


def stop_servers(servers: list[Server]) -> None:
    for s in servers:
        if s.proc.poll() is None:
            s.proc.terminate()
    deadline = time.monotonic() + STOP_TIMEOUT
    for s in servers:
        try:
            s.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            s.proc.kill()
            s.proc.wait(timeout=5)


# ---- requests ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Prepared:
    body: bytes
    headers: dict[str, str]


def prepare_requests(n: int, auth_token: str, signed_url: str, offset: int = 0) -> list[Prepared]:
    """n inbound SMS webhooks with unique MessageSids, signed for `signed_url` (before timing)."""
    from intake.twilio_auth import sign

    out = []
    for k in range(n):
        i = offset + k
        params = {
            "MessageSid": "SM" + secrets.token_hex(16),
            "AccountSid": "AC" + "0" * 32,
            "From": f"+1555555{100 + i % 100:04d}",  # 555-0100..0199: fictional numbers only
            "To": "233733",
            "Body": BODIES[i % len(BODIES)],
            "NumMedia": "0",
            "NumSegments": "1",
            "FromCountry": "US",
            "ApiVersion": "2010-04-01",
        }
        out.append(Prepared(urlencode(params).encode("utf-8"), {
            "Content-Type": "application/x-www-form-urlencoded",
            "User-Agent": "TwilioProxy/1.1",
            "X-Twilio-Signature": sign(auth_token, signed_url, params),
        }))
    return out


@dataclass
class Phase:
    """One burst of requests to one server."""

    requests: int = 0
    seconds: float = 0.0
    client_cpu_seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    statuses: dict[str, int] = field(default_factory=dict)

    @property
    def errors(self) -> int:
        return sum(v for k, v in self.statuses.items() if k != "200")


def run_phase(port: int, reqs: list[Prepared], concurrency: int, stop: threading.Event,
              reconnect: bool = False) -> Phase:
    """Send reqs with `concurrency` threads, each on its own keep-alive connection (or, with
    `reconnect`, a new connection per request: for warm-up, so every gunicorn worker gets some)."""
    phase = Phase(requests=len(reqs))
    lock = threading.Lock()
    next_index = iter(range(len(reqs)))
    nthreads = min(concurrency, len(reqs))
    barrier = threading.Barrier(nthreads + 1, timeout=START_TIMEOUT)

    def count(status: str) -> None:
        phase.statuses[status] = phase.statuses.get(status, 0) + 1

    def worker() -> None:
        conn = http.client.HTTPConnection(HOST, port, timeout=REQUEST_TIMEOUT)
        lat: list[float] = []
        try:
            with contextlib.suppress(OSError):
                conn.connect()  # connect before the clock starts
            barrier.wait()
            while not stop.is_set():
                with lock:
                    i = next(next_index, None)
                if i is None:
                    break
                r = reqs[i]
                t0 = time.perf_counter()
                try:
                    conn.request("POST", PATH, body=r.body, headers=r.headers)
                    resp = conn.getresponse()
                    data = resp.read()
                    t1 = time.perf_counter()
                    status = str(resp.status)
                    if resp.status == 200 and not data.startswith(b"<?xml"):
                        status = "200-not-twiml"
                    if resp.will_close or reconnect:
                        conn.close()  # http.client reconnects on the next request
                except (OSError, http.client.HTTPException) as exc:
                    t1 = time.perf_counter()
                    status = exc.__class__.__name__
                    conn.close()  # the next request reconnects
                lat.append(t1 - t0)
                with lock:
                    count(status)
        except threading.BrokenBarrierError:
            pass
        finally:
            conn.close()
            with lock:
                phase.latencies.extend(lat)

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(nthreads)]
    for t in threads:
        t.start()
    barrier.wait()
    t_start, cpu_start = time.perf_counter(), time.process_time()
    for t in threads:
        while t.is_alive():  # join with a timeout so Ctrl-C reaches the main thread
            t.join(0.2)
    phase.seconds = time.perf_counter() - t_start
    phase.client_cpu_seconds = time.process_time() - cpu_start
    if stop.is_set():
        raise KeyboardInterrupt
    return phase


# ---- figures ----------------------------------------------------------------------------------


def percentile(sorted_values: list[float], p: float) -> float:
    """Nearest-rank percentile of an already sorted list."""
    if not sorted_values:
        return float("nan")
    rank = max(1, min(len(sorted_values), math.ceil(p / 100 * len(sorted_values))))
    return sorted_values[rank - 1]


def summarize(phases: list[Phase]) -> dict[str, Any]:
    lat = sorted(x for p in phases for x in p.latencies)
    n = sum(p.requests for p in phases)
    secs = sum(p.seconds for p in phases)
    statuses: dict[str, int] = {}
    for p in phases:
        for k, v in p.statuses.items():
            statuses[k] = statuses.get(k, 0) + v
    return {
        "requests": n,
        "seconds": round(secs, 3),
        "req_per_s": round(n / secs, 1) if secs else None,
        "p50_ms": round(percentile(lat, 50) * 1000, 2),
        "p99_ms": round(percentile(lat, 99) * 1000, 2),
        "max_ms": round(lat[-1] * 1000, 2) if lat else None,
        "non_200": sum(v for k, v in statuses.items() if k != "200"),
        "statuses": statuses,
        # CPU this client process used per wall second (1.0 = one core): near 1 means the
        # client, not the server, may be the limit (the GIL lets it use about one core).
        "client_cpu": round(sum(p.client_cpu_seconds for p in phases) / secs, 2) if secs else None,
        "round_req_per_s": [round(p.requests / p.seconds, 1) if p.seconds else None for p in phases],
    }


def app_state(db_path: Path, redis_url: str, queue_name: str) -> dict[str, int | None]:
    """Signals the app stored and triage jobs waiting in its queue: proof the full path ran."""
    stored = queued = None
    with contextlib.suppress(sqlite3.Error), contextlib.closing(sqlite3.connect(db_path, timeout=10)) as db:
        stored = db.execute("SELECT count(*) FROM signals").fetchone()[0]
    with contextlib.suppress(Exception):
        from redis import Redis

        r = Redis.from_url(redis_url, socket_timeout=5)
        queued = int(r.llen(f"rq:queue:{queue_name}"))
        r.close()
    return {"signals_stored": stored, "jobs_queued": queued}


# ---- main -------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=400, help="measured requests per server (default 400)")
    ap.add_argument("--concurrency", type=int, default=8, help="client threads, one connection each (default 8)")
    ap.add_argument("--rounds", type=int, default=4,
                    help="alternating rounds the requests are split into (default 4)")
    ap.add_argument("--warmup", type=int, default=100,
                    help="unmeasured requests per server first, so both workers are warm (default 100)")
    ap.add_argument("--json", action="store_true", help="print one JSON object of the figures instead")
    args = ap.parse_args(argv)
    if not 1 <= args.requests <= MAX_REQUESTS:
        ap.error(f"--requests must be 1..{MAX_REQUESTS}")
    if not 1 <= args.concurrency <= 64:
        ap.error("--concurrency must be 1..64")
    if not 1 <= args.rounds <= args.requests:
        ap.error("--rounds must be 1..--requests")
    if not 0 <= args.warmup <= 1000:
        ap.error("--warmup must be 0..1000")
    return args


def note(msg: str) -> None:
    print(f"bench: {msg}", file=sys.stderr, flush=True)


def split(items: list[Prepared], parts: int) -> list[list[Prepared]]:
    size, extra = divmod(len(items), parts)
    out, start = [], 0
    for k in range(parts):
        end = start + size + (1 if k < extra else 0)
        out.append(items[start:end])
        start = end
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # Run as a script, sys.path[0] is bench/, where bench/triage.py would shadow the triage package.
    sys.path.insert(0, str(REPO))

    from intake.crypto import generate_secret_key
    from workers.cli import _gunicorn_cmd
    from workers.embedded import EmbeddedRedis
    from workers.runtime import build_runtime
    from workers.settings import load_settings

    terminated = False

    def on_term(*_: Any) -> None:
        nonlocal terminated
        terminated = True
        raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, h) for sig, h in ((signal.SIGTERM, on_term),
                                                          (signal.SIGINT, signal.default_int_handler))}
    stop = threading.Event()
    var_dir = Path(tempfile.mkdtemp(prefix="hotline-bench-"))
    embedded: EmbeddedRedis | None = None
    servers: list[Server] = []
    try:
        embedded = EmbeddedRedis(var_dir).start()
        app_port, base_port = free_ports(2)
        auth_token = secrets.token_hex(16)
        db_path = var_dir / "hotline.db"
        env = {k: v for k, v in os.environ.items() if not k.startswith("HOTLINE_")}
        env.update({
            "HOTLINE_REDIS_URL": embedded.url,
            "HOTLINE_DATABASE_URL": f"sqlite:///{db_path}",  # absolute path: sqlite:////tmp/...
            "HOTLINE_SECRET_KEY": generate_secret_key(),
            "HOTLINE_TWILIO_AUTH_TOKEN": auth_token,
            "HOTLINE_VAR_DIR": str(var_dir),
            "HOTLINE_CONFIG": str(CONFIG),
            "HOTLINE_ACCESS_LOG": "",  # as before: no access log on either server
        })
        settings = load_settings(CONFIG, env=env)
        build_runtime(settings).close()  # schema once, before the web processes race to create it

        # The same gunicorn settings (workers/gunicorn_conf.py) for both; the baseline names its app.
        app_cmd = _gunicorn_cmd(HOST, app_port, quiet=True)
        base_cmd = [*_gunicorn_cmd(HOST, base_port, quiet=True),
                    "--pythonpath", str(BENCH_DIR), "webhook:baseline_app()"]
        note(f"starting app and baseline (gunicorn gthread, {settings.service.web_processes} workers x "
             f"{settings.service.web_threads} threads) under {var_dir}")
        servers.append(start_server("app", app_cmd, app_port, env, var_dir))
        servers.append(start_server("baseline", base_cmd, base_port, env, var_dir))
        app, base = servers
        wait_ready(app, "GET", "/healthz")
        wait_ready(base, "POST", PATH)

        signed_url = f"http://{HOST}:{app_port}{PATH}"  # what the app sees as request.url
        warm = prepare_requests(args.warmup, auth_token, signed_url)
        measured = prepare_requests(args.requests, auth_token, signed_url, offset=args.warmup)
        if warm:
            note(f"warm-up: {len(warm)} requests each")
            for srv in (base, app):
                ph = run_phase(srv.port, warm, args.concurrency, stop, reconnect=True)
                if ph.errors:
                    raise RuntimeError(f"{srv.name}: warm-up failed {ph.statuses}\n{srv.log_tail()}")

        results: dict[str, list[Phase]] = {"baseline": [], "app": []}
        chunks = split(measured, args.rounds)
        note(f"measuring: {args.requests} requests each, concurrency {args.concurrency}, "
             f"{args.rounds} alternating rounds")
        for k, chunk in enumerate(chunks):
            order = (base, app) if k % 2 == 0 else (app, base)  # ABBA: neither always goes first
            for srv in order:
                # The baseline gets the very same signed requests; it ignores them.
                results[srv.name].append(run_phase(srv.port, chunk, args.concurrency, stop))

        report = {name: summarize(phases) for name, phases in results.items()}
        a, b = report["app"], report["baseline"]
        report["ratio"] = {
            "throughput_app_over_baseline": round(a["req_per_s"] / b["req_per_s"], 3),
            "p50_app_over_baseline": round(a["p50_ms"] / b["p50_ms"], 2),
        }
        report["settings"] = {"requests": args.requests, "concurrency": args.concurrency, "rounds": args.rounds,
                              "warmup": args.warmup, "web_processes": settings.service.web_processes,
                              "web_threads": settings.service.web_threads, "cpus": os.cpu_count()}
        report["app_state"] = app_state(db_path, embedded.url, settings.queue.name)
        failed = a["non_200"] + b["non_200"]
        if failed:
            for srv in servers:
                if report[srv.name]["non_200"]:
                    note(f"{srv.name} log tail:\n{srv.log_tail()}")

        if args.json:
            print(json.dumps(report, indent=2))
        else:
            print_report(report)
        return 1 if failed else 0
    except KeyboardInterrupt:
        stop.set()
        note("interrupted; stopping")
        return 143 if terminated else 130
    except RuntimeError as exc:
        note(f"error: {exc}")
        return 1
    finally:
        # A second Ctrl-C or TERM must not cut the clean-up short.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stop.set()
        stop_servers(servers)
        if embedded is not None:
            embedded.stop()
        shutil.rmtree(var_dir, ignore_errors=True)
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def print_report(r: dict[str, Any]) -> None:
    s = r["settings"]
    print(f"signed SMS webhook vs bare TwiML baseline: {s['requests']} requests each, concurrency "
          f"{s['concurrency']}, {s['rounds']} rounds, gunicorn gthread {s['web_processes']}x{s['web_threads']}, "
          f"{s['cpus']} CPUs")
    print(f"{'':10} {'requests':>8} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'non-200':>8} {'client':>7}"
          "   req/s per round")
    for name in ("baseline", "app"):
        f = r[name]
        rounds = " ".join(f"{x:.0f}" for x in f["round_req_per_s"])
        print(f"{name:10} {f['requests']:>8} {f['req_per_s']:>8.1f} {f['p50_ms']:>8.2f} {f['p99_ms']:>8.2f} "
              f"{f['non_200']:>8} {f['client_cpu']:>7.2f}   {rounds}")
    ratio = r["ratio"]
    print(f"app/baseline: throughput {ratio['throughput_app_over_baseline']:.3f}x, "
          f"p50 latency {ratio['p50_app_over_baseline']:.2f}x")
    st = r["app_state"]
    print(f"app stored {st['signals_stored']} signals and queued {st['jobs_queued']} triage jobs "
          f"(warm-up included; no worker runs)")
    for name in ("baseline", "app"):
        bad = {k: v for k, v in r[name]["statuses"].items() if k != "200"}
        if bad:
            print(f"{name}: NON-200 RESPONSES {bad}")


if __name__ == "__main__":
    sys.exit(main())
