"""Routing: protocols, route events on real brokers, escalation with a real worker, case lifecycle."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from conftest import (
    CONFIG,
    REPO,
    _need_servers,
    drain,
    make_settings,
    post_signed,
    settings_env,
    sms_params,
    start_worker,
    stop_worker,
)
from kombu import Connection, Exchange, Queue

from routing.events import kombu_url
from routing.protocols import ProtocolError, load_protocols, plan_steps, resolve_state
from workers.jobs import publish_outbox, run_sla_check
from workers.runtime import build_runtime
from workers.settings import ConfigError, load_settings
from workers.web import create_app

RABBIT = "amqp://guest:guest@127.0.0.1:5672//"


# ---- protocols ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("category", "minor", "ttype", "state", "expected"), [
    ("tip", True, "sex", "TX", ["ncmec", "fbi", "icac", "local_le_child", "tx_dfps"]),
    ("tip", True, "sex", "OH", ["ncmec", "fbi", "icac", "local_le_child"]),
    ("tip", False, "sex", "OH", ["task_force", "local_vice"]),
    ("tip", False, "labor", "CA", ["task_force", "local_vice", "dol_whd", "hsi", "state_labor",
                                   "ca_labor_commissioner"]),
    ("crisis", True, "both", None, ["emergency", "safety_plan", "ncmec", "fbi", "icac", "local_le_child",
                                    "dol_whd", "hsi", "state_labor"]),
    ("at_risk", True, "unknown", "NY", ["cps"]),
    ("at_risk", False, "labor", "NY", []),
    ("general", False, "unknown", "NY", []),
])
def test_protocol_steps_by_category_minor_type_and_state(category, minor, ttype, state, expected):
    table = load_protocols()
    opened = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
    steps = plan_steps(table, category, minor, ttype, state, opened)
    assert sorted(s.step_id for s in steps) == sorted(expected)
    for s in steps:
        assert s.due_at > opened
        assert "{state}" not in s.agency
    if state == "TX" and minor:
        assert any("Texas ICAC" in s.agency for s in steps)
    if state is None and steps:
        assert any("the contact's state" in s.agency for s in steps)


@pytest.mark.parametrize(("text_state", "carrier", "sender", "expected"), [
    ("TX", "OH", "+12125550123", ("TX", "text")),
    (None, "OH", "+12125550123", ("OH", "carrier")),
    (None, None, "+17135550123", ("TX", "area_code")),
    (None, None, "+15555550123", (None, "unknown")),
    (None, "ZZ", None, (None, "unknown")),
])
def test_state_resolution_order(text_state, carrier, sender, expected):
    assert resolve_state(load_protocols(), text_state, carrier, sender) == expected


@pytest.mark.parametrize(("old", "new", "message"), [
    ("  TX: {name: \"Texas\"}", "  TX: {name: \"Texas\"}\n  T1: {name: \"Nowhere\"}", "states.T1: state codes"),
    ("overrides:\n  TX:", "overrides:\n  QQ:", "overrides.QQ: not a state"),
    ("within_hours: 24}", "within_hours: -1}", "within_hours: Input should be greater than 0"),
    ("{id: ncmec,", "{id: ncmec, colour: red,", "national.minor.0.colour: unknown key"),
])
def test_bad_protocol_file_names_the_key(tmp_path, old, new, message):
    src = (REPO / "routing" / "data" / "protocols.yaml").read_text()
    assert old in src
    path = tmp_path / "protocols.yaml"
    path.write_text(src.replace(old, new, 1))
    with pytest.raises(ProtocolError) as err:
        load_protocols(path)
    assert str(path) in str(err.value) and message in str(err.value)


@pytest.mark.parametrize(("old", "new", "message"), [
    ("queue: crisis_line, minutes: 5}", "queue: crisis_line, minutes: -5}", "sla.routes.0.minutes"),
    ("  breach_queue: supervisors", "  breach_queue: nobody", "escalation.breach_queue: 'nobody' is not a team"),
    ("  on_call_sms: [\"+15555550100\"]", "  on_call_sms: [\"555-0100\"]", "notifications.on_call_sms"),
    ("  acknowledge_urgencies: [immediate]", "  acknowledge_urgencies: [urgent]", "unknown urgency 'urgent'"),
])
def test_bad_routing_config_names_the_key(tmp_path, old, new, message):
    text = CONFIG.read_text()
    assert old in text
    path = tmp_path / "config.yaml"
    path.write_text(text.replace(old, new, 1))
    with pytest.raises(ConfigError) as err:
        load_settings(path, env={})
    assert message in str(err.value)


def test_minor_tip_in_texas_gets_the_texas_minor_protocol_on_its_case(client, runtime):
    post_signed(client, sms_params("I want to report two girls, about 15 years old, working at a cantina",
                                   FromState="TX"))
    drain(runtime)
    [row] = runtime.store.recent_signals()
    assert (row["category"], row["urgency"]) == ("tip", "high")
    case = runtime.store.case_by_number(row["case_number"])
    steps = runtime.store.case_steps(case.id)
    assert {s["step_id"] for s in steps} == {"ncmec", "fbi", "icac", "local_le_child", "tx_dfps"}
    assert any(s["agency"] == "Texas ICAC task force" for s in steps)
    assert row["details"]["state"] == "TX" and row["details"]["state_source"] == "carrier"


# ---- route events on real brokers ---------------------------------------------------------------

def _bind(url: str, exchange: str, binding: str) -> tuple[Connection, Queue]:
    conn = Connection(kombu_url(url))
    q = Queue(f"test-{uuid.uuid4().hex[:8]}", exchange=Exchange(exchange, type="topic", durable=True),
              routing_key=binding, auto_delete=True, durable=False)
    q(conn.default_channel).declare()
    return conn, q


def _receive(conn: Connection, q: Queue, expect: int, timeout: float = 10) -> list[tuple[str, dict]]:
    """Collect messages until `expect` arrived (then half a second more, to catch extras)."""
    got: list[tuple[str, dict]] = []
    deadline = time.monotonic() + timeout
    simple = conn.SimpleQueue(q)
    while time.monotonic() < deadline:
        try:
            msg = simple.get(timeout=0.5)
        except simple.Empty:
            if len(got) >= expect:
                break
            continue
        got.append((msg.delivery_info["routing_key"], msg.payload))
        msg.ack()
    simple.close()
    return got


@pytest.mark.parametrize("transport", ["redis", "rabbitmq"])
def test_a_crisis_produces_a_crisis_immediate_event(tmp_path, backend, transport):
    extra = {}
    if transport == "rabbitmq":
        _need_servers(5672)
        extra["HOTLINE_BROKER_URL"] = RABBIT
    settings = make_settings(tmp_path, backend, **extra)
    rt = build_runtime(settings)
    broker = settings.storage.broker_url or backend.redis_url
    conn, q = _bind(broker, settings.events.exchange, "crisis.*")
    try:
        client = create_app(settings, rt).test_client()
        post_signed(client, sms_params("help me please, I am locked in a room"))
        post_signed(client, sms_params("what are the signs of trafficking?", from_="+15555550166"))
        drain(rt)
        publish_outbox(rt)
        got = _receive(conn, q, expect=1)
        assert [k for k, _ in got] == ["crisis.immediate"]
        _key, body = got[0]
        assert body["event"] == "signal.routed" and body["category"] == "crisis" and body["queue"] == "crisis_line"
        assert body["case_number"].startswith("HT-") and body["event_id"]
        assert "locked" not in json.dumps(body) and "5555550" not in json.dumps(body)
        assert rt.store.unpublished_events() == []
    finally:
        conn.release()
        rt.close()


@pytest.mark.parametrize("backend", ["servers"], indirect=True)
def test_events_wait_in_the_outbox_while_the_broker_is_down(tmp_path, backend):
    _need_servers(5672)
    down = make_settings(tmp_path, backend, HOTLINE_BROKER_URL="amqp://guest:guest@127.0.0.1:1//")
    rt = build_runtime(down)
    client = create_app(down, rt).test_client()
    for i in range(3):
        post_signed(client, sms_params("they locked us in, help us", from_=f"+1555555{150 + i:04d}"))
    drain(rt)
    assert len(rt.store.unpublished_events()) == 3
    rt.close()

    up = build_runtime(make_settings(tmp_path, backend, HOTLINE_BROKER_URL=RABBIT))
    conn, q = _bind(RABBIT, up.settings.events.exchange, "#")
    try:
        assert publish_outbox(up) == 3
        assert [k for k, _ in _receive(conn, q, expect=3)] == ["crisis.immediate"] * 3
        assert up.store.unpublished_events() == []
    finally:
        conn.release()
        up.close()


# ---- escalation with a real worker and scheduler --------------------------------------------------

def _fast_escalation_config(tmp_path):
    text = CONFIG.read_text()
    text = text.replace("crisis_unacknowledged_minutes: 3", "crisis_unacknowledged_minutes: 0.05")  # 3 s
    text = text.replace("interval_seconds: 5", "interval_seconds: 1")
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def test_unacknowledged_crisis_pages_on_call_and_acknowledged_one_does_not(tmp_path, backend):
    config = _fast_escalation_config(tmp_path)
    settings = make_settings(tmp_path, backend, config=config)
    rt = build_runtime(settings)
    client = create_app(settings, rt).test_client()
    worker = start_worker(settings_env(tmp_path, backend), config)
    try:
        post_signed(client, sms_params("help me, he has a gun", from_="+15555550171"))
        post_signed(client, sms_params("please help me I am locked in", from_="+15555550172"))
        deadline = time.monotonic() + 30
        numbers = {}
        while time.monotonic() < deadline and len(numbers) < 2:
            numbers = {r["id"]: r["case_number"] for r in rt.store.recent_signals() if r["case_number"]}
            time.sleep(0.1)
        assert len(numbers) == 2
        first, second = [rt.store.case_by_number(n) for n in numbers.values()]
        rt.store.set_case_status(second.number, "acknowledged", "advocate.vega", None, datetime.now(UTC), ("open",))

        def pages(case):
            return [n for n in rt.store.notifications_for(case.id) if n["dedupe_key"].split(":")[1] == "ack"]

        deadline = time.monotonic() + 40
        while time.monotonic() < deadline and not pages(first):
            time.sleep(0.2)
        assert pages(first), "the unacknowledged crisis did not page on-call"
        assert pages(first)[0]["status"] == "recorded" and pages(first)[0]["target"] == "+15555550100"
        assert "unacknowledged" in pages(first)[0]["body"]
        time.sleep(1.0)
        assert pages(second) == []
        audit_first = [e["action"] for e in rt.store.case_audit(first.id)]
        audit_second = rt.store.case_audit(second.id)
        assert "sla_ack" in audit_first
        assert any(e["action"] == "acknowledged" and e["actor"] == "advocate.vega" for e in audit_second)
        # the immediate crisis page went out for both at opening
        assert all(any(n["dedupe_key"].split(":")[1] == "crisis" for n in rt.store.notifications_for(c.id))
                   for c in (first, second))
    finally:
        stop_worker(worker)
        rt.close()


def test_breached_open_case_moves_to_supervisors_and_runs_once(client, runtime):
    post_signed(client, sms_params("I need a lawyer for my immigration papers"))
    drain(runtime)
    [row] = runtime.store.recent_signals()
    case = runtime.store.case_by_number(row["case_number"])
    points = {p for _, p, _ in runtime.store.pending_checks(case_id=case.id)}
    assert points == {"warning", "breach"}
    later = case.deadline + timedelta(minutes=1)
    assert run_sla_check(runtime, case.id, "warning", now=later) == "warned"
    assert run_sla_check(runtime, case.id, "breach", now=later) == "breached"
    assert run_sla_check(runtime, case.id, "breach", now=later) == "done"
    assert runtime.store.case_by_id(case.id).queue == "supervisors"
    breach_pages = [n for n in runtime.store.notifications_for(case.id) if ":breach:" in n["dedupe_key"]]
    assert len(breach_pages) == 1


def test_sweeper_runs_checks_whose_schedule_redis_lost(client, runtime):
    from intake.sink import make_queue
    from workers.sweeper import sweep_once

    post_signed(client, sms_params("please help me I am locked in"))
    drain(runtime)
    [row] = runtime.store.recent_signals()
    case = runtime.store.case_by_number(row["case_number"])
    runtime.redis.flushdb()  # a Redis restart without persistence
    report = sweep_once(runtime.store, runtime.redis, lambda: make_queue(runtime.redis, runtime.policy),
                        runtime.policy, grace_seconds=0, lock_seconds=1, use_lock=False,
                        now=case.deadline + timedelta(minutes=10))
    assert report.checks == 3  # ack, warning, breach were all overdue by then
    drain(runtime)
    assert runtime.store.pending_checks(case_id=case.id) == []


# ---- case lifecycle ----------------------------------------------------------------------------

def test_case_lifecycle_is_audited_and_refuses_illegal_moves(client, runtime):
    post_signed(client, sms_params("I need a shelter tonight for me and my kids"))
    drain(runtime)
    number = runtime.store.recent_signals()[0]["case_number"]
    now = datetime.now(UTC)
    runtime.store.set_case_status(number, "acknowledged", "advocate.ruiz", None, now, ("open",))
    with pytest.raises(ValueError, match="is acknowledged; cannot become acknowledged"):
        runtime.store.set_case_status(number, "acknowledged", "advocate.ruiz", None, now, ("open",))
    runtime.store.set_case_status(number, "closed", "advocate.ruiz", "referred to shelter",
                                  now + timedelta(seconds=1), ("open", "acknowledged"))
    case = runtime.store.case_by_number(number)
    audit = runtime.store.case_audit(case.id)
    assert [e["action"] for e in audit] == ["opened", "acknowledged", "closed"]
    assert audit[2]["detail"] == {"reason": "referred to shelter"} and audit[2]["actor"] == "advocate.ruiz"
    assert runtime.store.pending_checks(case_id=case.id) == []
    with pytest.raises(LookupError):
        runtime.store.set_case_status("HT-0000-0000-0", "closed", "x", None, now, ("open",))


def test_cases_cli_rejects_a_bad_number_with_exit_2(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "workers.cli", "cases", "ack", "not-a-case", "--by", "x"],
                          cwd=REPO, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "HOTLINE_VAR_DIR": str(tmp_path)})
    assert proc.returncode == 2
    assert "not a valid case number" in proc.stderr and "Traceback" not in proc.stderr


def test_sweeper_releases_a_debounced_triage_the_rq_scheduler_never_moved(client, runtime):
    # The SMS debounce is an rq scheduled job; if rq's scheduler died (e.g. with Redis) and did not
    # come back, the job would sit in the schedule forever. Past its time + grace, the sweeper queues it.
    from rq.registry import ScheduledJobRegistry

    from intake.sink import make_queue
    from workers.sweeper import sweep_once

    post_signed(client, sms_params("what are your hours on weekends?", from_="+15555550177"))
    [row] = runtime.store.recent_signals()
    scheduled = ScheduledJobRegistry(queue=runtime.queue)
    assert len(scheduled) == 1 and runtime.queue.count == 0
    soon = sweep_once(runtime.store, runtime.redis, lambda: make_queue(runtime.redis, runtime.policy),
                      runtime.policy, grace_seconds=0, lock_seconds=1, use_lock=False)
    assert soon.released == [] and soon.waiting == 1  # still inside its debounce: left alone
    later = sweep_once(runtime.store, runtime.redis, lambda: make_queue(runtime.redis, runtime.policy),
                       runtime.policy, grace_seconds=5, lock_seconds=1, use_lock=False,
                       now=datetime.now(UTC) + timedelta(minutes=5))
    assert later.released == [row["id"]] and len(scheduled) == 0 and runtime.queue.count == 1
    drain(runtime, debounce_elapsed=False)
    assert runtime.store.recent_signals()[0]["status"] == "triaged"
