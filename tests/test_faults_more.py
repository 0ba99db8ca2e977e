"""More faults that must not lose or duplicate a contact, each against real servers and each
printing its exact counts (run with -s): a real Redis killed and restarted during a burst of
webhooks; PostgreSQL connections dropped mid-transaction; RabbitMQ gone while routes publish;
duplicate and out-of-order Twilio callbacks; the clock jumping around SLA deadlines."""

from __future__ import annotations

import itertools
import secrets
import signal
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psutil
import psycopg
import pytest
from conftest import Backend, drain, post_signed, settings_env, sms_params
from exactly_once import (
    AmqpProxy,
    EventCollector,
    RedisServer,
    assert_exactly_once,
    processes,
    start_process,
    tail,
    tally,
    test_config,
    wait_for,
)
from rq import Worker
from rq.job import Job
from rq.registry import ScheduledJobRegistry
from sqlalchemy import select, text

from intake.sink import job_id_for, make_queue
from intake.store import case_events, outbox, signals
from workers.console_app import console_deps
from workers.jobs import run_sla_check
from workers.runtime import Runtime, build_runtime
from workers.settings import load_settings
from workers.sweeper import sweep_once
from workers.web import create_app

AREAS = ("202", "212", "305", "312", "415", "512", "617", "713", "206", "303")
CRISIS = "please help me, I am locked in a room and cannot leave"
ROUTINE = "I need a lawyer for my immigration papers, it is not an emergency"
TIP = "I want to report a massage parlor where the women never leave and sleep there"


def phone(i: int) -> str:
    """A distinct fictional number per i (555-01xx in ten area codes): one texter each."""
    return f"+1{AREAS[i // 100 % len(AREAS)]}55501{i % 100:02d}"


def text_for(i: int) -> str:
    return (CRISIS, ROUTINE, TIP)[i % 3]


FAST = {
    "interval_seconds: 5": "interval_seconds: 0.5",
    "grace_seconds: 10": "grace_seconds: 1",
    "worker_heartbeat_ttl_seconds: 10": "worker_heartbeat_ttl_seconds: 2",
    "debounce_seconds: 15": "debounce_seconds: 1",
}


def _all_triaged(rt: Runtime, n: int) -> bool:
    return tally(rt.store).triaged_once >= n


def _workers_up(rt: Runtime, count: int, log: Path) -> None:
    try:
        wait_for(lambda: len(Worker.all(connection=rt.redis)) >= count, 90, f"{count} rq worker(s)", interval=0.2)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; log:\n{tail(log)}") from exc


# ---- 1. a real Redis killed -9 and restarted during a burst of webhooks ---------------------------

@pytest.mark.parametrize("backend", ["servers"], indirect=True)
def test_real_redis_killed_and_restarted_mid_burst_every_signal_triaged_once(tmp_path: Path,
                                                                              backend: Backend) -> None:
    redis = RedisServer(tmp_path / "redis").start()
    config = test_config(tmp_path, FAST)
    env = settings_env(tmp_path, backend, HOTLINE_REDIS_URL=redis.url)
    settings = load_settings(config, env=env)
    rt = build_runtime(settings)
    client = create_app(settings, rt).test_client()
    n, kill_at, restart_at = 60, 20, 40
    slowest_down = 0.0
    log = tmp_path / "worker.log"
    try:
        with processes() as procs:
            procs.append(start_process(["--config", str(config), "worker"], env, log))
            _workers_up(rt, 1, log)
            triaged_before_kill = 0
            for i in range(n):
                if i == kill_at:
                    # Kill it while the worker is busy: some triaged, some queued, some waiting out
                    # the SMS debounce in rq's schedule - queued and scheduled jobs, locks, heartbeats,
                    # all gone.
                    triaged_before_kill = wait_for(lambda: tally(rt.store).triaged_once, 60, "a first triage")
                    redis.kill()
                if i == restart_at:
                    redis.start()  # empty: no persistence
                started = time.monotonic()
                resp = post_signed(client, sms_params(text_for(i), from_=phone(i)))
                if kill_at <= i < restart_at:
                    slowest_down = max(slowest_down, time.monotonic() - started)
                assert resp.status_code == 200, (i, resp.data)
            assert tally(rt.store).accepted == n  # every webhook committed before it answered
            try:
                wait_for(lambda: _all_triaged(rt, n), 120, f"{n} signals triaged")
                wait_for(lambda: tally(rt.store).published == n, 60, "every route event published")
            except AssertionError as exc:
                raise AssertionError(f"{exc}; {tally(rt.store).line()}\nworker log:\n{tail(log)}") from exc
            assert procs[0].poll() is None, f"the worker exited:\n{tail(log)}"
            t = tally(rt.store)
        print(f"\nredis restart: sent={n} killed_at={kill_at} (triaged by then: {triaged_before_kill}) "
              f"restarted_at={restart_at} "
              f"slowest_webhook_while_down={slowest_down:.2f}s {t.line()}")
        assert_exactly_once(t, n)
        assert slowest_down < 5, "a webhook waited on the dead Redis"
    finally:
        rt.close()
        redis.stop()


@pytest.mark.parametrize("backend", ["servers"], indirect=True)
def test_a_worker_waiting_out_a_redis_outage_still_stops_on_sigterm(tmp_path: Path, backend: Backend) -> None:
    redis = RedisServer(tmp_path / "redis").start()
    config = test_config(tmp_path, FAST)
    env = settings_env(tmp_path, backend, HOTLINE_REDIS_URL=redis.url)
    rt = build_runtime(load_settings(config, env=env))
    log = tmp_path / "worker.log"
    try:
        with processes() as procs:
            procs.append(start_process(["--config", str(config), "worker"], env, log))
            _workers_up(rt, 1, log)
            redis.kill()
            wait_for(lambda: "Redis unreachable" in log.read_text(errors="replace"), 30, "the worker to notice")
            assert procs[0].poll() is None, f"the worker died with Redis:\n{tail(log)}"
            started = time.monotonic()
            procs[0].send_signal(signal.SIGTERM)
            code = procs[0].wait(30)
            print(f"\nsigterm during redis outage: exit={code} stopped_in={time.monotonic() - started:.1f}s")
            assert code == 0, tail(log)
    finally:
        rt.close()
        redis.stop()


# ---- 2. PostgreSQL connections dropped mid-transaction ---------------------------------------------

RETRY_FAST = {**FAST, "retry_intervals: [2, 10, 60, 300]": "retry_intervals: [1, 1, 1, 1, 1, 1, 1, 1]"}
KILL_ON_ROUTE_INSERT = """
CREATE SEQUENCE fault_kills;
CREATE FUNCTION fault_kill() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  -- Sequences ignore rollback: the first {kills} route inserts (whichever job makes them) drop
  -- their own connection after the triage result and case were written, before the commit.
  IF nextval('fault_kills') <= {kills} THEN
    PERFORM pg_terminate_backend(pg_backend_pid());
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER fault_kill AFTER INSERT ON routes FOR EACH ROW EXECUTE FUNCTION fault_kill();
"""


def _retried(rt: Runtime) -> int:
    """Signals whose triage job needed more than one attempt (rq keeps the count on the job)."""
    retried = 0
    with rt.store.engine.connect() as conn:
        ids = [r.id for r in conn.execute(select(signals.c.id))]
    for sid in ids:
        job = Job.fetch(job_id_for(sid), connection=rt.redis, serializer=rt.queue.serializer)
        if job.retries_left is not None and job.retries_left < len(rt.policy.retry_intervals):
            retried += 1
    return retried


@pytest.mark.parametrize("backend", ["servers"], indirect=True)
def test_postgres_connection_dropped_between_triage_insert_and_commit_job_retried_result_once(
        tmp_path: Path, backend: Backend) -> None:
    n, kills = 12, 6
    config = test_config(tmp_path, RETRY_FAST)
    env = settings_env(tmp_path, backend)
    settings = load_settings(config, env=env)
    rt = build_runtime(settings)
    with rt.store.engine.begin() as conn:
        conn.execute(text(KILL_ON_ROUTE_INSERT.format(kills=kills)))
    client = create_app(settings, rt).test_client()
    log = tmp_path / "worker.log"
    try:
        with processes() as procs:
            procs.append(start_process(["--config", str(config), "worker"], env, log))
            _workers_up(rt, 1, log)
            for i in range(n):
                assert post_signed(client, sms_params(text_for(i), from_=phone(i))).status_code == 200
            try:
                wait_for(lambda: _all_triaged(rt, n), 120, f"{n} signals triaged")
                wait_for(lambda: tally(rt.store).published == n, 60, "every route event published")
            except AssertionError as exc:
                raise AssertionError(f"{exc}; {tally(rt.store).line()}\nworker log:\n{tail(log)}") from exc
            t = tally(rt.store)
            with rt.store.engine.connect() as conn:
                fired = conn.execute(text("SELECT last_value FROM fault_kills")).scalar_one()
            retried = _retried(rt)
        print(f"\npg dropped mid-transaction: sent={n} connections_killed={min(fired, kills)} "
              f"jobs_retried={retried} {t.line()}")
        assert fired >= kills and retried >= 1
        assert_exactly_once(t, n)
    finally:
        rt.close()


def _backend_pids_of(proc_pid: int, admin: Any, database: str) -> list[int]:
    """The PostgreSQL backends serving a process (and its children): matched by TCP client port."""
    ports: set[int] = set()
    try:
        tree = [psutil.Process(proc_pid), *psutil.Process(proc_pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        return []
    for p in tree:
        try:
            ports.update(c.laddr.port for c in p.net_connections(kind="tcp") if c.raddr and c.raddr.port == 5432)
        except psutil.Error:
            continue
    if not ports:
        return []
    rows = admin.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s AND client_port = ANY(%s)",
                         (database, list(ports))).fetchall()
    return [r[0] for r in rows]


@pytest.mark.parametrize("backend", ["servers"], indirect=True)
def test_postgres_backends_of_a_busy_worker_terminated_again_and_again_every_signal_once(
        tmp_path: Path, backend: Backend) -> None:
    n, window = 45, 6.0
    config = test_config(tmp_path, RETRY_FAST)
    env = settings_env(tmp_path, backend)
    settings = load_settings(config, env=env)
    rt = build_runtime(settings)
    client = create_app(settings, rt).test_client()
    url = settings.database_url().replace("postgresql+psycopg://", "postgresql://")
    database = url.rsplit("/", 1)[1]
    log = tmp_path / "worker.log"
    terminated: list[int] = []
    stop = threading.Event()
    try:
        with processes() as procs, psycopg.connect(url, autocommit=True) as admin:
            procs.append(start_process(["--config", str(config), "worker"], env, log))
            _workers_up(rt, 1, log)

            def killer() -> None:
                # pg_terminate_backend on whatever connections the worker holds, every 0.2 s for
                # `window` seconds: in the middle of loads, inserts, commits and sweeps alike.
                ends = time.monotonic() + window
                while not stop.is_set() and time.monotonic() < ends:
                    for pid in _backend_pids_of(procs[0].pid, admin, database):
                        if admin.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone()[0]:
                            terminated.append(pid)
                    stop.wait(0.2)

            thread = threading.Thread(target=killer, daemon=True)
            thread.start()
            for i in range(n):
                assert post_signed(client, sms_params(text_for(i), from_=phone(i))).status_code == 200
            thread.join(window + 10)
            try:
                wait_for(lambda: _all_triaged(rt, n), 120, f"{n} signals triaged")
                wait_for(lambda: tally(rt.store).published == n, 60, "every route event published")
            except AssertionError as exc:
                raise AssertionError(f"{exc}; {tally(rt.store).line()}\nworker log:\n{tail(log)}") from exc
            assert procs[0].poll() is None, f"the worker exited:\n{tail(log)}"
            t = tally(rt.store)
            retried = _retried(rt)
        print(f"\npg backends terminated under load: sent={n} backends_terminated={len(terminated)} "
              f"jobs_retried={retried} {t.line()}")
        assert terminated, "the fault was never injected"
        assert_exactly_once(t, n)
    finally:
        stop.set()
        rt.close()


# ---- 3. RabbitMQ gone while routes publish -----------------------------------------------------------

@pytest.mark.parametrize("backend", ["servers"], indirect=True)
def test_rabbitmq_gone_mid_publish_events_wait_in_the_outbox_and_each_arrives_once(tmp_path: Path,
                                                                                   backend: Backend) -> None:
    """The outbox promises at-least-once delivery with a stable id per event (message_id =
    event_id). Here the broker vanishes while a batch is on the wire: what it never received
    must be published again when it is back, and what it did receive must not be sent twice."""
    exchange = f"hotline.routes.test-{secrets.token_hex(4)}"
    config = test_config(tmp_path, {**FAST, 'exchange: "hotline.routes"': f'exchange: "{exchange}"'})
    proxy = AmqpProxy()
    collector = EventCollector(exchange)
    env = settings_env(tmp_path, backend, HOTLINE_BROKER_URL=proxy.url)
    settings = load_settings(config, env=env)
    rt = build_runtime(settings)
    client = create_app(settings, rt).test_client()
    log = tmp_path / "worker.log"
    per_phase = 10
    try:
        with processes() as procs:
            procs.append(start_process(["--config", str(config), "worker"], env, log))
            _workers_up(rt, 1, log)

            def send(start: int) -> None:
                for i in range(start, start + per_phase):
                    assert post_signed(client, sms_params(text_for(i), from_=phone(i))).status_code == 200

            # Broker up: routed and delivered.
            send(0)
            wait_for(lambda: len(collector.collect()) >= per_phase, 90, "the first events to arrive")

            # The broker goes away in the middle of the next publish, and stays away.
            proxy.set_mode("cut")
            send(per_phase)
            send(2 * per_phase)
            wait_for(lambda: _all_triaged(rt, 3 * per_phase), 120, "all signals triaged while the broker is down")
            wait_for(lambda: proxy.cuts >= 1, 30, "a publish to be cut")
            during = tally(rt.store)
            received_during = len(collector.collect())
            # Nothing is marked published that the broker did not take.
            assert during.published == received_during == per_phase, (during.line(), received_during)

            # Back up: the worker's outbox publisher sends the rest, without a test nudging it.
            proxy.set_mode("up")
            try:
                wait_for(lambda: tally(rt.store).published == 3 * per_phase, 60, "the outbox to drain")
                wait_for(lambda: len(collector.collect()) >= 3 * per_phase, 30, "every event to arrive")
            except AssertionError as exc:
                raise AssertionError(f"{exc}; {tally(rt.store).line()}\nworker log:\n{tail(log)}") from exc
            t = tally(rt.store)
        received = collector.by_event_id()
        signal_ids = {body["signal_id"] for _, body in collector.collect() if body.get("event") == "signal.routed"}
        print(f"\nrabbitmq down mid-publish: {t.line()} published_during_outage={during.published} "
              f"outbox_waiting={during.events - during.published} cuts={proxy.cuts} "
              f"frames_forwarded={proxy.forwarded_publishes} received={sum(received.values())} "
              f"distinct_events={len(received)} duplicates={sum(c - 1 for c in received.values())}")
        assert_exactly_once(t, 3 * per_phase)
        with rt.store.engine.connect() as conn:
                outbox_ids = {r.id for r in conn.execute(select(outbox.c.id))}
        assert set(received) == outbox_ids and len(signal_ids) == 3 * per_phase  # none lost
        assert all(c == 1 for c in received.values())  # and, here, none twice
    finally:
        rt.close()
        collector.close()
        proxy.close()


# ---- 4. duplicate and out-of-order Twilio callbacks ----------------------------------------------------

VOICE_CALLER = "+15555550183"
VOICEMAIL = "I want to report a massage parlor where the women never leave and sleep in the back room"
# The asynchronous end of a voicemail call: Twilio sends these in no promised order, and retries.
ASYNC_CALLBACKS = ("recorded", "recording", "transcription", "status")


def _call(sid: str, **extra: str) -> dict[str, str]:
    return {"CallSid": sid, "AccountSid": "AC" + "0" * 32, "From": VOICE_CALLER, "To": "+18005550100",
            "Direction": "inbound", "CallStatus": "in-progress", "FromState": "OH", "FromCountry": "US", **extra}


def _callback(client: Any, sid: str, name: str) -> None:
    rec = {"RecordingSid": "RE" + sid[2:], "RecordingUrl": f"https://api.twilio.example/{sid}",
           "RecordingDuration": "42"}
    path, params = {
        "recorded": ("/twilio/voice/recorded?lang=en", _call(sid, **rec)),
        "recording": ("/twilio/voice/recording", _call(sid, RecordingStatus="completed", **rec)),
        "transcription": ("/twilio/voice/transcription",
                          _call(sid, RecordingSid=rec["RecordingSid"], TranscriptionText=VOICEMAIL,
                                TranscriptionStatus="completed")),
        "status": ("/twilio/voice/status", _call(sid, CallStatus="completed", CallDuration="95")),
    }[name]
    assert post_signed(client, params, path=path).status_code == 200, (name, path)


def test_voicemail_callbacks_in_every_order_and_repeated_make_one_signal_per_call_with_its_transcript(
        client: Any, runtime: Runtime) -> None:
    orders = list(itertools.permutations(ASYNC_CALLBACKS))
    sids: dict[str, tuple[str, ...]] = {}
    for k, order in enumerate(orders):
        sid = "CA" + secrets.token_hex(16)
        sids[sid] = order
        post_signed(client, _call(sid), path="/twilio/voice")
        post_signed(client, _call(sid, Digits="1"), path="/twilio/voice/menu")
        post_signed(client, _call(sid, QueueResult="leave"), path="/twilio/voice/queue?lang=en")
        # Every order once; then Twilio's retries: the first callback again (every call), and the
        # whole set again in reverse for every third call.
        replay = (order[0],) + (tuple(reversed(order)) if k % 3 == 0 else ())
        for name in order + replay:
            _callback(client, sid, name)
        if k == 11:
            drain(runtime)  # the first half triaged while the second half's callbacks come in
    drain(runtime)
    for sid in list(sids)[::5]:  # and a late retry after everything was triaged
        _callback(client, sid, "transcription")
        _callback(client, sid, "status")
    drain(runtime)

    rows = {r["external_id"]: r for r in _signal_rows(runtime)}
    outcome = {sid: (rows[sid]["category"], VOICEMAIL in (rows[sid]["text"] or "")) if sid in rows else None
               for sid in sids}
    t = tally(runtime.store)
    with_transcript = sum(1 for o in outcome.values() if o and o[1])
    print(f"\nvoice callbacks: orders={len(orders)} calls={len(sids)} signals={t.accepted} "
          f"with_transcript={with_transcript} categories={sorted(set(o[0] for o in outcome.values() if o))} "
          f"re_triaged_after_a_late_transcript={t.events - t.accepted} "
          f"{t.line()}")
    assert [sid for sid, o in outcome.items() if o is None] == []  # no call lost
    assert t.accepted == t.triaged_once == t.routes == t.cases == len(sids)  # one signal per CallSid
    assert [sids[sid] for sid, o in outcome.items() if not o[1]] == []  # each with its transcript
    # The same call gives the same triage whatever order its callbacks came in.
    assert {sids[sid]: o[0] for sid, o in outcome.items() if o[0] != "tip"} == {}


def _signal_rows(rt: Runtime) -> list[dict[str, Any]]:
    """external id, text, category and case of every signal (text decrypted through the store)."""
    out = []
    for row in rt.store.recent_signals(limit=10_000):
        stored = rt.store.load_signal(row["id"])
        assert stored is not None
        out.append({"id": row["id"], "external_id": stored.signal.external_id, "text": stored.signal.text,
                    "category": row["category"], "case_number": row["case_number"], "status": row["status"]})
    return out


def test_sms_redeliveries_before_and_after_triage_are_absorbed_with_the_same_answer(
        client: Any, runtime: Runtime) -> None:
    texter = "+15555550184"
    texts = ["hi, is this the hotline?", "my boss keeps my passport and I cannot leave the farm",
             "I want to report a massage parlor where the women never leave and sleep there"]
    messages = [sms_params(body, from_=texter) for body in texts]
    answers: dict[str, list[bytes]] = {}

    def deliver(i: int) -> None:
        resp = post_signed(client, messages[i])
        assert resp.status_code == 200
        answers.setdefault(messages[i]["MessageSid"], []).append(resp.data)

    for i in (0, 1, 0, 1, 0):  # Twilio retries while the first two are still waiting for triage
        deliver(i)
    drain(runtime)
    queued_after_triage = runtime.queue.count + runtime.urgent_queue.count
    for i in (1, 2, 0, 2, 1):  # late retries of triaged texts, one new text in between
        deliver(i)
    jobs_for_redeliveries = runtime.queue.count + runtime.urgent_queue.count + \
        len(_scheduled_ids(runtime, "triage-")) - 1  # the new text's own job
    drain(runtime)

    t = tally(runtime.store)
    rows = _signal_rows(runtime)
    per_sid = {m["MessageSid"]: sum(1 for r in rows if r["external_id"] == m["MessageSid"]) for m in messages}
    print(f"\nsms redelivery: deliveries={sum(len(a) for a in answers.values())} distinct={len(messages)} "
          f"signals={t.accepted} jobs_for_redeliveries={jobs_for_redeliveries} {t.line()}")
    assert per_sid == {m["MessageSid"]: 1 for m in messages}
    assert (t.accepted, t.triaged_once, t.routes, t.cases) == (3, 3, 3, 1)  # one conversation, one case
    assert queued_after_triage == 0 and jobs_for_redeliveries == 0
    assert len({r["case_number"] for r in rows}) == 1
    # A redelivery is answered exactly as the first delivery was (no second greeting).
    assert all(len(set(a)) == 1 for a in answers.values()), answers


def _scheduled_ids(rt: Runtime, prefix: str) -> list[str]:
    return [j for q in (rt.queue, rt.urgent_queue) for j in ScheduledJobRegistry(queue=q).get_job_ids()
            if j.startswith(prefix)]


STATUS_TABLE = [
    # callbacks in the order they arrive (all permutations are run), final status, flagged
    (("queued", "sending", "sent", "delivered"), "delivered", False),
    (("queued", "sent", "delivered", "read"), "read", False),
    (("queued", "sent", "undelivered"), "undelivered", True),
    (("sending", "sent", "failed"), "failed", True),
]


def test_delivery_status_callbacks_in_every_order_never_go_backwards(client: Any, runtime: Runtime) -> None:
    post_signed(client, sms_params("I need a shelter for tonight", from_="+15555550185"))
    drain(runtime)
    case = runtime.store.case_by_number(runtime.store.recent_signals()[0]["case_number"])
    assert case is not None
    checked = wrong = 0
    for statuses, final, flagged in STATUS_TABLE:
        for k, order in enumerate(itertools.permutations(statuses)):
            sid = "SM" + secrets.token_hex(16)
            now = datetime.now(UTC)
            oid = runtime.store.outbound_create(case.id, "sms", "+15555550185", "An advocate here.", "advocate.x",
                                                now)
            # Half the calls: the first callbacks beat our own record of the message's sid.
            early = order[: k % 3] if k % 2 else ()
            for s in early:
                _status(client, sid, s)
            runtime.store.outbound_sent(oid, "queued", sid, now)
            for s in (*order[len(early):], order[0]):  # and Twilio repeats the first one late
                _status(client, sid, s)
            [out] = [o for o in runtime.store.outbound_for(case.id) if o["id"] == oid]
            checked += 1
            if (out["status"], out["flagged"]) != (final, flagged):
                wrong += 1
                print("wrong:", order, early, out["status"], out["flagged"])
    with runtime.store.engine.connect() as conn:
        failures = [r.detail["outbound_id"] for r in conn.execute(
            select(case_events.c.detail).where(case_events.c.case_id == case.id,
                                               case_events.c.action == "reply_failed"))]
    failed_sends = sum(len(list(itertools.permutations(s))) for s, _, f in STATUS_TABLE if f)
    print(f"\nsms status callbacks: sequences={checked} wrong_final_status={wrong} "
          f"reply_failed_events={len(failures)} failed_sends={failed_sends} orphans_left="
          f"{runtime.store.delivery_orphan_count()}")
    assert wrong == 0
    assert len(failures) == len(set(failures)) == failed_sends  # each failed reply flagged once
    assert runtime.store.delivery_orphan_count() == 0


def _status(client: Any, sid: str, status: str) -> None:
    resp = post_signed(client, {"MessageSid": sid, "MessageStatus": status, "AccountSid": "AC" + "0" * 32},
                       path="/twilio/sms/status")
    assert resp.status_code == 204


# ---- 5. the clock jumping around SLA deadlines ----------------------------------------------------------

def _sla_ledger(rt: Runtime, case_ids: list[str]) -> dict[str, dict[str, int]]:
    """Per case: breach/warning/unacknowledged events in the outbox, breach pages, sla_* audit entries."""
    with rt.store.engine.connect() as conn:
        events = [r.body for r in conn.execute(select(outbox.c.body))]
        audit = [(r.case_id, r.action) for r in conn.execute(select(case_events.c.case_id, case_events.c.action))]
    ledger = {}
    for cid in case_ids:
        number = rt.store.case_by_id(cid).number  # type: ignore[union-attr]
        mine = [e for e in events if e.get("case_number") == number]
        ledger[cid] = {
            "breach_events": sum(1 for e in mine if e.get("event") == "sla.breach"),
            "warning_events": sum(1 for e in mine if e.get("event") == "sla.warning"),
            "unacknowledged_events": sum(1 for e in mine if e.get("event") == "sla.ack"),  # the page's event
            "breach_pages": sum(1 for n in rt.store.notifications_for(cid) if ":breach:" in n["dedupe_key"]),
            "ack_pages": sum(1 for n in rt.store.notifications_for(cid) if ":ack:" in n["dedupe_key"]),
            "sla_audit": sum(1 for c, a in audit if c == cid and a.startswith("sla_")),
        }
    return ledger


def test_clock_jumps_forward_and_back_each_sla_check_fires_once_an_acknowledged_case_never(
        client: Any, runtime: Runtime) -> None:
    texts = {"open_crisis": (CRISIS, "+15555550186"), "acked_crisis": (CRISIS, "+15555550187"),
             "referral": (ROUTINE, "+15555550188")}
    for body, sender in texts.values():
        post_signed(client, sms_params(body, from_=sender))
    drain(runtime)
    by_sender = {r["id"]: r["case_number"] for r in runtime.store.recent_signals()}
    numbers = {}
    for name, (_body, sender) in texts.items():
        [sid] = [s for s in by_sender if runtime.store.load_signal(s).signal.sender == sender]  # type: ignore[union-attr]
        numbers[name] = by_sender[sid]
    cases = {name: runtime.store.case_by_number(n) for name, n in numbers.items()}
    ids = {name: c.id for name, c in cases.items()}  # type: ignore[union-attr]
    runtime.store.set_case_status(numbers["acked_crisis"], "acknowledged", "advocate.vega", None,
                                  datetime.now(UTC), ("open",))
    pending = runtime.store.pending_checks()
    latest = max(c.deadline for c in cases.values())  # type: ignore[union-attr]
    earliest = min(c.deadline for c in cases.values())  # type: ignore[union-attr]

    def sweep(now: datetime) -> int:
        return sweep_once(runtime.store, runtime.redis, lambda: make_queue(runtime.redis, runtime.policy),
                          runtime.policy, grace_seconds=0, lock_seconds=1, use_lock=False, now=now).checks

    # The clock jumps back an hour: nothing is due, nothing runs.
    back = sweep(earliest - timedelta(hours=1))
    # Redis loses the schedule (restart), then the clock jumps two days forward: every check
    # left is overdue at once; two sweepers at the same jumped instant enqueue each only once.
    runtime.redis.flushdb()
    jumped = latest + timedelta(days=2)
    first, second = sweep(jumped), sweep(jumped)
    drain(runtime)
    # Every check again, in reverse, at the jumped time, then a week later, then with the clock
    # back before the cases were opened: all already done.
    again = [run_sla_check(runtime, cid, point, now=when)
             for when in (jumped, jumped + timedelta(days=7), earliest - timedelta(days=1))
             for cid, point, _ in reversed(pending)]
    later_sweeps = [sweep(jumped + timedelta(days=30)), sweep(earliest - timedelta(days=30))]
    ledger = _sla_ledger(runtime, list(ids.values()))
    after = {name: runtime.store.case_by_id(cid) for name, cid in ids.items()}
    print(f"\nsla clock jumps: pending_checks={len(pending)} swept_back={back} swept_forward={first}+{second} "
          f"reruns={len(again)} reruns_that_fired={sum(1 for a in again if a != 'done')} "
          f"later_sweeps={later_sweeps} " + " ".join(f"{n}:{ledger[ids[n]]}" for n in ids))
    assert back == 0
    assert first == len(pending) and second == 0
    assert set(again) == {"done"} and later_sweeps == [0, 0]
    assert runtime.store.pending_checks() == []
    assert ledger[ids["open_crisis"]] == {"breach_events": 1, "warning_events": 1, "unacknowledged_events": 1,
                                          "breach_pages": 1, "ack_pages": 1, "sla_audit": 3}
    assert ledger[ids["referral"]] == {"breach_events": 1, "warning_events": 1, "unacknowledged_events": 0,
                                       "breach_pages": 1, "ack_pages": 0, "sla_audit": 2}
    assert ledger[ids["acked_crisis"]] == {"breach_events": 0, "warning_events": 0, "unacknowledged_events": 0,
                                           "breach_pages": 0, "ack_pages": 0, "sla_audit": 0}
    assert after["acked_crisis"].queue == cases["acked_crisis"].queue == "crisis_line"  # type: ignore[union-attr]
    assert after["open_crisis"].queue == after["referral"].queue == "supervisors"  # type: ignore[union-attr]


def test_a_check_scheduled_for_an_old_deadline_does_not_fire_against_the_new_one(
        tmp_path: Path, client: Any, runtime: Runtime) -> None:
    """A person re-classifies a crisis as a routine referral: its deadline moves days later and
    its checks are re-planned. The jobs rq had scheduled for the old deadline still go off at
    the old times; they must not breach the case against its new deadline."""
    post_signed(client, sms_params(CRISIS, from_="+15555550189"))
    drain(runtime)
    number = runtime.store.recent_signals()[0]["case_number"]
    old = runtime.store.case_by_number(number)
    old_jobs = _scheduled_ids(runtime, f"sla-{old.id}-")  # type: ignore[union-attr]
    deps = console_deps(runtime.settings, runtime)
    new = deps.casework.reclassify(number, "referral", "normal", "a lawyer question, she is safe", "advocate.ruiz",
                                   datetime.now(UTC))
    deps.replan(number, "advocate.ruiz")
    assert new.deadline > old.deadline + timedelta(hours=12)  # type: ignore[union-attr]
    new_jobs = [j for j in _scheduled_ids(runtime, f"sla-{old.id}-") if j not in old_jobs]  # type: ignore[union-attr]

    # The old deadline passes: rq's scheduler releases the old jobs.
    for job_id in old_jobs:
        _move_scheduled(runtime, job_id)
    drain(runtime)
    mid = runtime.store.case_by_number(number)
    ledger_mid = _sla_ledger(runtime, [old.id])[old.id]  # type: ignore[union-attr]
    # The new deadline passes too: the re-planned checks fire, once.
    for job_id in new_jobs:
        _move_scheduled(runtime, job_id)
    drain(runtime)
    ledger_end = _sla_ledger(runtime, [old.id])[old.id]  # type: ignore[union-attr]
    print(f"\nsla replanned: old_jobs={len(old_jobs)} new_jobs={len(new_jobs)} after_old_deadline={ledger_mid} "
          f"queue={mid.queue} after_new_deadline={ledger_end}")  # type: ignore[union-attr]
    assert ledger_mid["breach_events"] == ledger_mid["warning_events"] == 0
    assert mid.queue == new.queue == "referrals"  # type: ignore[union-attr]
    assert ledger_end["breach_events"] == ledger_end["warning_events"] == 1
    assert runtime.store.pending_checks(case_id=old.id) == []  # type: ignore[union-attr]


def _move_scheduled(rt: Runtime, job_id: str) -> None:
    for queue in (rt.queue, rt.urgent_queue):
        registry = ScheduledJobRegistry(queue=queue)
        if job_id in registry.get_job_ids():
            registry.remove(job_id)
            queue.enqueue_job(queue.fetch_job(job_id))
