"""/metrics: what an operator's dashboard sees move when contacts come in, get triaged, fail or
breach their SLA; and never a word of what a contact wrote, nor their number."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from conftest import Backend, drain, post_signed, sms_params
from prometheus_client.parser import text_string_to_metric_families

from intake.channels.sms import parse_sms
from workers.jobs import run_sla_check
from workers.runtime import Runtime

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]
PHONE = "+15555550123"
CRISIS = "I need help, I am locked in"


def scrape(client: Any) -> tuple[Samples, str]:
    resp = client.get("/metrics")
    assert resp.status_code == 200
    assert resp.content_type.startswith("text/plain")
    body = resp.get_data(as_text=True)
    samples: Samples = {}
    for family in text_string_to_metric_families(body):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples, body


def v(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_a_text_moves_the_counters_from_accepted_to_triaged(client: Any, runtime: Runtime) -> None:
    urgent, routine = runtime.urgent_queue.name, runtime.queue.name
    before, _ = scrape(client)
    assert v(before, "hotline_metrics_source_up", source="db") == 1
    assert v(before, "hotline_metrics_source_up", source="redis") == 1

    assert post_signed(client, sms_params(CRISIS, from_=PHONE)).status_code == 200
    assert post_signed(client, sms_params("what are your hours?", from_="+15555550142")).status_code == 200
    waiting, body = scrape(client)
    assert v(waiting, "hotline_signals_accepted_total", channel="sms") == \
        v(before, "hotline_signals_accepted_total", channel="sms") + 2
    assert v(waiting, "hotline_signals_accepted_total", channel="voice") == 0
    assert v(waiting, "hotline_signals_waiting") == 2
    assert v(waiting, "hotline_queue_depth", queue=urgent) == 1  # the crisis: no debounce, urgent queue
    assert v(waiting, "hotline_queue_scheduled", queue=routine) == 1  # the routine text waits out the debounce

    drain(runtime)
    after, body = scrape(client)
    assert v(after, "hotline_signals_waiting") == 0
    assert v(after, "hotline_queue_depth", queue=urgent) == 0
    assert v(after, "hotline_triage_latency_seconds_count", urgency="immediate") == 1
    assert v(after, "hotline_triage_latency_seconds_bucket", urgency="immediate", le="+Inf") == 1
    assert v(after, "hotline_triage_latency_seconds_sum", urgency="immediate") > 0
    total = sum(v(after, "hotline_triage_latency_seconds_count", urgency=u) for u in ("immediate", "high",
                                                                                     "normal", "low"))
    assert total == 2
    for secret in (PHONE, PHONE[2:], "5550123", "5550142", "locked", "hours"):
        assert secret not in body


def test_a_failing_job_shows_in_the_failed_count(client: Any, runtime: Runtime) -> None:
    before, _ = scrape(client)
    # A job whose function cannot be imported (as after a bad deploy): rq's failed registry keeps it.
    runtime.queue.enqueue("workers.jobs.no_such_job", "0" * 32)
    drain(runtime)
    after, _ = scrape(client)
    assert v(after, "hotline_jobs_failed", queue=runtime.queue.name) == \
        v(before, "hotline_jobs_failed", queue=runtime.queue.name) + 1


def test_an_overdue_case_and_an_sla_breach(client: Any, runtime: Runtime) -> None:
    # A crisis text that came in two hours ago (say the workers were down): due 5 minutes after.
    arrived = datetime.now(UTC) - timedelta(hours=2)
    runtime.sink.accept(parse_sms(sms_params(CRISIS, from_=PHONE), arrived, runtime.detector))
    drain(runtime)
    case = runtime.store.case_by_number(runtime.store.recent_signals(1)[0]["case_number"])
    assert case is not None and case.deadline < datetime.now(UTC)
    overdue, _ = scrape(client)
    assert v(overdue, "hotline_cases_overdue", queue=case.queue) == 1
    assert v(overdue, "hotline_cases_overdue", queue="supervisors") == 0
    assert v(overdue, "hotline_sla_breaches_total") == 0

    assert run_sla_check(runtime, case.id, "breach") == "breached"
    breached, body = scrape(client)
    assert v(breached, "hotline_sla_breaches_total") == 1
    # The breach moved the case to the supervisors' queue; it is still open and late.
    assert v(breached, "hotline_cases_overdue", queue="supervisors") == 1
    assert v(breached, "hotline_cases_overdue", queue=case.queue) == 0
    assert case.number not in body


@pytest.mark.parametrize("backend", ["embedded"], indirect=True)
def test_metrics_answer_while_redis_is_down(client: Any, backend: Backend) -> None:
    assert backend.embedded is not None
    backend.embedded.stop()
    samples, _ = scrape(client)
    assert v(samples, "hotline_metrics_source_up", source="redis") == 0
    assert v(samples, "hotline_metrics_source_up", source="db") == 1
    assert ("hotline_signals_waiting", ()) in samples


def test_a_metrics_token_keeps_the_numbers_from_anyone_without_it(tmp_path: Any, embedded_backend: Any) -> None:
    from conftest import make_settings

    from workers.runtime import build_runtime
    from workers.web import create_app

    token = "prom-scrape-token-0123456789"
    settings = make_settings(tmp_path, embedded_backend, HOTLINE_METRICS_TOKEN=token)
    rt = build_runtime(settings)
    try:
        client = create_app(settings, rt).test_client()
        for headers in ({}, {"Authorization": "Bearer wrong-token-0123456789"}, {"Authorization": token}):
            resp = client.get("/metrics", headers=headers)
            body = resp.get_data(as_text=True)
            assert resp.status_code == 401, headers
            assert resp.headers["WWW-Authenticate"].startswith("Bearer")
            assert "Authorization: Bearer" in body and "hotline_" not in body and token not in body
        samples, _ = scrape(_Authorized(client, token))
        assert v(samples, "hotline_metrics_source_up", source="db") == 1
        assert client.get("/healthz").status_code == 200  # health stays open for the load balancer
    finally:
        rt.close()


class _Authorized:
    def __init__(self, client: Any, token: str) -> None:
        self.client, self.token = client, token

    def get(self, path: str) -> Any:
        return self.client.get(path, headers={"Authorization": f"Bearer {self.token}"})


def test_a_short_metrics_token_is_a_config_error_naming_the_key(tmp_path: Any) -> None:
    from conftest import make_settings

    from workers.settings import ConfigError

    with pytest.raises(ConfigError) as err:
        make_settings(tmp_path, None, HOTLINE_METRICS_TOKEN="short")
    assert "metrics_token" in str(err.value) and "short" not in str(err.value).replace("shorter", "")
