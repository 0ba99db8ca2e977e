"""A signed SMS reaches a routed case, on the embedded default and on real servers."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import datetime

from conftest import drain, post_signed, sms_params

from routing.cases import normalize_case_number


def test_signed_sms_is_answered_then_triaged_routed_and_given_a_case(client, runtime, backend):
    resp = post_signed(client, sms_params("Please help me, I am locked in and cannot leave"))

    assert resp.status_code == 200
    assert resp.mimetype == "application/xml"
    reply = ET.fromstring(resp.data).find("Message")
    assert reply is not None and "911" in reply.text

    [before] = runtime.store.recent_signals()
    assert before["status"] == "accepted" and before["case_number"] is None

    drain(runtime)

    [row] = runtime.store.recent_signals()
    assert row["status"] == "triaged"
    assert row["category"] == "crisis"
    assert row["urgency"] == "immediate"
    assert row["queue"] == "crisis_line"
    assert row["sla_clock"] == "wall"
    received = datetime.fromisoformat(row["received_at"])
    deadline = datetime.fromisoformat(row["deadline"])
    assert 0 < (deadline - received).total_seconds() <= 5 * 60
    assert normalize_case_number(row["case_number"]) == row["case_number"]
    assert "crisis.en.trapped" in row["matched"]
    assert row["indicators"]["imminent_danger"] is True


def test_non_urgent_sms_gets_a_business_day_deadline(client, runtime):
    post_signed(client, sms_params("What is the definition of labor trafficking? Any statistics?"))
    drain(runtime)
    [row] = runtime.store.recent_signals()
    assert row["category"] == "general"
    assert row["urgency"] == "low"
    assert row["sla_clock"] == "business"
    assert row["queue"] == "advocates"


def test_rerunning_the_job_changes_nothing(client, runtime):
    from workers.jobs import process_signal

    post_signed(client, sms_params("I want to report a suspicious massage parlor"))
    drain(runtime)
    [row] = runtime.store.recent_signals()
    assert process_signal(runtime, row["id"]) == "already"
    assert runtime.store.counts() == {"signals": 1, "triaged": 1, "triage_results": 1, "routes": 1, "cases": 1}
    assert runtime.store.recent_signals()[0]["case_number"] == row["case_number"]


def test_spanish_text_gets_the_spanish_reply_and_rules(client, runtime):
    resp = post_signed(client, sms_params("Por favor ayúdenme, estoy en peligro y no me dejan salir de la casa"))
    reply = ET.fromstring(resp.data).find("Message").text
    assert "línea de ayuda" in reply and "911" in reply
    drain(runtime)
    [row] = runtime.store.recent_signals()
    assert row["language"] == "es"
    assert row["category"] == "crisis"


def test_second_text_in_a_conversation_gets_no_second_auto_reply(client, runtime):
    first = post_signed(client, sms_params("hi", from_="+15555550142"))
    second = post_signed(client, sms_params("are you there?", from_="+15555550142"))
    other = post_signed(client, sms_params("hello", from_="+15555550143"))
    assert ET.fromstring(first.data).find("Message") is not None
    assert ET.fromstring(second.data).find("Message") is None
    assert ET.fromstring(other.data).find("Message") is not None


def test_a_crisis_jumps_the_queue_of_routine_messages(client, runtime):
    from rq.serializers import JSONSerializer

    from workers import context
    from workers.worker import HotlineSimpleWorker  # rq's own SimpleWorker takes up to 60 s to stop

    for i in range(5):
        post_signed(client, sms_params(f"what is the definition of trafficking? question {i}",
                                       from_=f"+1555555{130 + i:04d}"))
    post_signed(client, sms_params("help me he has a gun", from_="+15555550139"))
    from rq.registry import ScheduledJobRegistry

    # routine texts wait out the debounce; the crisis is queued at once, on the urgent queue
    assert runtime.urgent_queue.count == 1 and len(ScheduledJobRegistry(queue=runtime.queue)) == 5
    for job_id in ScheduledJobRegistry(queue=runtime.queue).get_job_ids():  # as if the debounce elapsed
        ScheduledJobRegistry(queue=runtime.queue).remove(job_id)
        runtime.queue.enqueue_job(runtime.queue.fetch_job(job_id))
    context.bind(runtime)
    try:
        worker = HotlineSimpleWorker([runtime.urgent_queue, runtime.queue], connection=runtime.redis,
                                     serializer=JSONSerializer)
        worker.work(burst=True, max_jobs=1)
    finally:
        context.unbind()
    triaged = [r for r in runtime.store.recent_signals() if r["status"] == "triaged"]
    assert [r["category"] for r in triaged] == ["crisis"]
