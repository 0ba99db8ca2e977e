"""Scale-out: 2 web servers (gunicorn via `hotline serve`) and 3 `hotline worker` processes against
the machine's PostgreSQL, Redis and RabbitMQ. About 300 contacts (SMS, voice calls, tips), with
Twilio-style redeliveries and API replays landing on the other web server, sent concurrently:
every contact is stored once, triaged once, routed once, given one case, and its route event
published once; each worker does part of the work. Prints its counts (run with -s)."""

from __future__ import annotations

import json
import random
import secrets
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlencode

import pytest
from conftest import TEST_TOKEN, Backend, settings_env, sms_params
from exactly_once import (
    RABBIT,
    EventCollector,
    assert_exactly_once,
    free_port,
    processes,
    start_process,
    tail,
    tally,
    test_config,
    wait_for,
)
from rq import Worker
from rq.job import Job

from intake.sink import job_id_for
from intake.twilio_auth import sign
from workers.runtime import build_runtime
from workers.settings import load_settings

pytestmark = [pytest.mark.slow, pytest.mark.servers]

N_SMS, N_CALLS, N_TIPS = 180, 60, 60
SMS_REDELIVERIES, TIP_REPLAYS = 20, 10
AREAS = ("202", "212", "305", "312", "415", "512", "617", "713", "206", "303")
SMS_TEXTS = (
    "please help me, I am locked in a room and cannot leave",
    "I need a lawyer for my immigration papers, it is not an emergency",
    "what are the signs of human trafficking? it is for a school project",
    "necesito ayuda, mi jefe tiene mi pasaporte y no me deja salir",
    "I want to report a massage parlor where the women never leave and sleep there",
    "my boss keeps my passport and does not pay me, I work on a farm",
)
VOICEMAILS = (
    "I want to report a house where young girls are brought in every night by older men",
    "I need help finding a shelter for me and my two kids tonight",
    "help me please they locked us in and he has a gun",
)
TIP_TEXT = "Three young women never leave the Example Nail Spa; the owner keeps their passports."


def phone(i: int) -> str:
    """A distinct fictional 555-01xx number per i."""
    return f"+1{AREAS[i // 100 % len(AREAS)]}55501{i % 100:02d}"


class Web:
    def __init__(self, port: int) -> None:
        self.port = port

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def post(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, str]]:
        req = urllib.request.Request(self.url(path), data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                resp.read()
                return int(resp.status), dict(resp.headers)
        except urllib.error.HTTPError as exc:
            return exc.code, dict(exc.headers)

    def twilio(self, path: str, params: dict[str, str]) -> int:
        """POST as Twilio does: form body signed over this server's URL."""
        headers = {"Content-Type": "application/x-www-form-urlencoded",
                   "X-Twilio-Signature": sign(TEST_TOKEN, self.url(path), params)}
        return self.post(path, urlencode(params).encode(), headers)[0]

    def tip(self, key: str, danger: str) -> tuple[int, bool]:
        status, headers = self.post("/api/tips", json.dumps({"danger_now": danger, "what_happened": TIP_TEXT}).encode(),
                                    {"Content-Type": "application/json", "Idempotency-Key": key})
        return status, headers.get("Idempotent-Replayed") == "true"

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(self.url("/healthz"), timeout=2) as resp:
                return int(resp.status) == 200
        except OSError:
            return False


def _call(sid: str, caller: str, **extra: str) -> dict[str, str]:
    return {"CallSid": sid, "AccountSid": "AC" + "0" * 32, "From": caller, "To": "+18005550100",
            "Direction": "inbound", "CallStatus": "in-progress", "FromCountry": "US", **extra}


def plan(webs: list[Web]) -> tuple[list[Callable[[], list[int]]], int]:
    """The work: one task per SMS, call and tip (a call's callbacks in order, spread over both
    web servers as a load balancer would), plus redeliveries and replays. Returns (tasks, signals)."""
    rng = random.Random(20261206)
    tasks: list[Callable[[], list[int]]] = []
    sms = [sms_params(SMS_TEXTS[i % len(SMS_TEXTS)], from_=phone(i)) for i in range(N_SMS)]
    for i, params in enumerate(sms):
        tasks.append(lambda p=params, w=webs[i % 2]: [w.twilio("/twilio/sms", p)])
    for i in rng.sample(range(N_SMS), SMS_REDELIVERIES):  # Twilio retries, landing on the other server
        tasks.append(lambda p=sms[i], w=webs[(i + 1) % 2]: [w.twilio("/twilio/sms", p)])

    def call(k: int) -> list[int]:
        sid, caller = "CA" + secrets.token_hex(16), phone(500 + k)
        w = [webs[(k + j) % 2] for j in range(6)]
        codes = [w[0].twilio("/twilio/voice", _call(sid, caller))]
        if k % 6 == 0:  # the danger key: the case opens while the caller waits
            codes.append(w[1].twilio("/twilio/voice/menu", _call(sid, caller, Digits="9")))
            codes.append(w[2].twilio("/twilio/voice/status", _call(sid, caller, CallStatus="completed")))
            return codes
        codes.append(w[1].twilio("/twilio/voice/menu", _call(sid, caller, Digits="2" if k % 4 == 1 else "1")))
        if k % 3 == 1:  # nobody answered and no message: a call-back task
            codes.append(w[2].twilio("/twilio/voice/status", _call(sid, caller, CallStatus="no-answer")))
            return codes
        rec = {"RecordingSid": "RE" + sid[2:], "RecordingUrl": f"https://api.twilio.example/{sid}",
               "RecordingDuration": "30"}
        codes.append(w[2].twilio("/twilio/voice/queue?lang=en", _call(sid, caller, QueueResult="leave")))
        codes.append(w[3].twilio("/twilio/voice/recording", _call(sid, caller, RecordingStatus="completed", **rec)))
        codes.append(w[4].twilio("/twilio/voice/transcription", _call(
            sid, caller, RecordingSid=rec["RecordingSid"], TranscriptionStatus="completed",
            TranscriptionText=VOICEMAILS[k % len(VOICEMAILS)])))
        codes.append(w[5].twilio("/twilio/voice/status", _call(sid, caller, CallStatus="completed")))
        return codes

    for k in range(N_CALLS):
        tasks.append(lambda k=k: call(k))
    keys = [f"scale-{secrets.token_hex(12)}" for _ in range(N_TIPS)]
    for j, key in enumerate(keys):
        tasks.append(lambda key=key, j=j: [webs[j % 2].tip(key, "yes" if j % 10 == 0 else "no")[0]])
    for j in rng.sample(range(N_TIPS), TIP_REPLAYS):  # a client retrying on the other server
        tasks.append(lambda key=keys[j], j=j: [webs[(j + 1) % 2].tip(key, "no")[0]])
    rng.shuffle(tasks)
    return tasks, N_SMS + N_CALLS + N_TIPS


@pytest.mark.parametrize("backend", ["servers"], indirect=True)
def test_two_web_servers_and_three_workers_every_contact_exactly_once(tmp_path: Path, backend: Backend) -> None:
    started = time.monotonic()
    exchange = f"hotline.routes.scale-{secrets.token_hex(4)}"
    config = test_config(tmp_path, {
        'exchange: "hotline.routes"': f'exchange: "{exchange}"',
        "debounce_seconds: 15": "debounce_seconds: 2",  # keep the run short; still a real debounce
        'rate_limit: "10 per minute;60 per hour"': 'rate_limit: "10000 per minute"',  # one test client
    })
    env = settings_env(tmp_path, backend, HOTLINE_BROKER_URL=RABBIT, WEB_CONCURRENCY="1")
    settings = load_settings(config, env=env)
    rt = build_runtime(settings)  # the schema, once, before five processes start
    collector = EventCollector(exchange)
    webs = [Web(free_port()), Web(free_port())]
    logs = [tmp_path / f"web-{w.port}.log" for w in webs] + [tmp_path / f"worker-{i}.log" for i in range(3)]

    def logs_tail() -> str:
        return "\n".join(f"--- {p.name}\n{tail(p, 15)}" for p in logs)

    try:
        with processes() as procs:
            for w, log in zip(webs, logs, strict=False):
                procs.append(start_process(["--config", str(config), "serve", "--port", str(w.port)], env, log))
            for log in logs[2:]:
                procs.append(start_process(["--config", str(config), "worker"], env, log))
            try:
                wait_for(lambda: all(w.healthy() for w in webs), 90, "both web servers to answer /healthz", 0.3)
                wait_for(lambda: len(Worker.all(connection=rt.redis)) >= 3, 90, "3 rq workers registered", 0.3)
            except AssertionError as exc:
                raise AssertionError(f"{exc}\n{logs_tail()}") from exc
            ready = time.monotonic()

            tasks, n = plan(webs)
            with ThreadPoolExecutor(max_workers=12) as pool:
                codes = [c for result in pool.map(lambda task: task(), tasks) for c in result]
            sent = time.monotonic()
            assert [c for c in codes if c not in (200, 201)] == [], Counter(codes)
            assert tally(rt.store).accepted == n  # every answered contact is committed; duplicates absorbed

            try:
                wait_for(lambda: tally(rt.store).triaged_once >= n, 90, f"{n} signals triaged", 0.5)
                wait_for(lambda: tally(rt.store).published >= n, 30, "every route event published", 0.5)
                wait_for(lambda: len(collector.by_event_id()) >= n, 30, "every route event delivered", 0.5)
            except AssertionError as exc:
                raise AssertionError(f"{exc}; {tally(rt.store).line()}\n{logs_tail()}") from exc
            done = time.monotonic()
            assert all(p.poll() is None for p in procs), logs_tail()
            t = tally(rt.store)

        received = collector.by_event_id()
        by_worker: Counter[str] = Counter()
        for row in rt.store.recent_signals(limit=10 * n):
            job = Job.fetch(job_id_for(row["id"]), connection=rt.redis, serializer=rt.queue.serializer)
            by_worker[job.worker_name or "?"] += 1
        channels = Counter(r["channel"] for r in rt.store.recent_signals(limit=10 * n))
        print(f"\nscale-out: web_servers=2 workers=3 requests={len(codes)} signals={n} channels={dict(channels)} "
              f"{t.line()} delivered={sum(received.values())} distinct_events={len(received)} "
              f"jobs_per_worker={sorted(by_worker.values())} startup={ready - started:.1f}s "
              f"send={sent - ready:.1f}s ({len(codes) / (sent - ready):.0f} req/s) "
              f"all_routed_after={done - ready:.1f}s total={time.monotonic() - started:.1f}s")
        assert_exactly_once(t, n)
        assert len(received) == n and all(c == 1 for c in received.values())  # each event published once
        # Triage jobs that ran (a conversation's siblings are routed by one job): all on our 3 workers.
        assert len(by_worker) == 3 and min(by_worker.values()) > 0, by_worker
    finally:
        rt.close()
        collector.close()
