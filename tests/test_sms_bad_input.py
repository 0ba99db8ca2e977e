"""Every malformed or forged webhook gets its documented answer; nothing lost or duplicated."""

from __future__ import annotations

from urllib.parse import urlencode

import pytest
from conftest import TEST_TOKEN, make_settings, post_signed, sms_params

from intake.twilio_auth import sign


def count(runtime) -> int:
    return runtime.store.counts()["signals"]


def test_bad_signature_is_403_and_stores_nothing(client, runtime):
    resp = post_signed(client, sms_params(), signature="bm90IGEgcmVhbCBzaWduYXR1cmU=")
    assert resp.status_code == 403
    assert b"X-Twilio-Signature" in resp.data
    assert count(runtime) == 0


def test_missing_signature_is_403_not_500(client, runtime):
    resp = post_signed(client, sms_params(), signature="")
    assert resp.status_code == 403
    assert count(runtime) == 0


def test_signature_from_another_auth_token_is_403(client, runtime):
    resp = post_signed(client, sms_params(), token="some-other-account-token-000000")
    assert resp.status_code == 403
    assert count(runtime) == 0


def test_signature_for_another_url_is_403(client, runtime):
    resp = post_signed(client, sms_params(), signed_url="http://localhost/twilio/voice")
    assert resp.status_code == 403
    assert count(runtime) == 0


def test_tampered_body_is_403(client, runtime):
    params = sms_params("original words")
    sig = sign(TEST_TOKEN, "http://localhost/twilio/sms", params)
    params["Body"] = "changed words"
    resp = post_signed(client, params, signature=sig)
    assert resp.status_code == 403
    assert count(runtime) == 0


def test_duplicate_message_sid_same_answer_one_signal_one_job(client, runtime):
    params = sms_params("I need a shelter tonight")
    first = post_signed(client, params)
    second = post_signed(client, params)
    assert first.status_code == second.status_code == 200
    assert first.data == second.data
    assert count(runtime) == 1
    from rq.registry import ScheduledJobRegistry

    # one triage job, waiting out the debounce
    assert runtime.queue.count + len(ScheduledJobRegistry(queue=runtime.queue)) == 1


def test_missing_from_is_400_with_reason(client, runtime):
    params = sms_params()
    del params["From"]
    resp = post_signed(client, params)
    assert resp.status_code == 400
    assert b"'From'" in resp.data
    assert count(runtime) == 0


def test_missing_message_sid_is_400_with_reason(client, runtime):
    params = sms_params()
    del params["MessageSid"]
    resp = post_signed(client, params)
    assert resp.status_code == 400
    assert b"'MessageSid'" in resp.data
    assert count(runtime) == 0


def test_missing_body_is_kept_as_an_empty_message(client, runtime):
    """A picture-only MMS has an empty Body: the contact is still taken in."""
    params = sms_params()
    del params["Body"]
    resp = post_signed(client, params)
    assert resp.status_code == 200
    assert count(runtime) == 1
    [row] = runtime.store.recent_signals()
    assert runtime.store.load_signal(row["id"]).signal.text == ""


def test_two_megabyte_body_is_413_and_stores_nothing(client, runtime):
    params = sms_params("x" * (2 * 1024 * 1024))
    resp = post_signed(client, params)
    assert resp.status_code == 413
    assert b"too large" in resp.data
    assert count(runtime) == 0


def test_invalid_utf8_is_400_and_stores_nothing(client, runtime):
    body = urlencode(sms_params()).encode() + b"&Body=%FF%FEbad"
    raw = b"MessageSid=SM1&From=%2B15555550123&Body=\xff\xfe"
    for data in (body, raw):
        resp = client.post("/twilio/sms", data=data, content_type="application/x-www-form-urlencoded",
                           headers={"X-Twilio-Signature": "x"})
        assert resp.status_code == 400
        assert b"UTF-8" in resp.data
    assert count(runtime) == 0


def test_get_is_405(client):
    assert client.get("/twilio/sms").status_code == 405


@pytest.mark.parametrize("backend", ["embedded"], indirect=True)
def test_behind_a_proxy_the_public_url_is_what_is_signed(tmp_path, backend):
    from workers.runtime import build_runtime
    from workers.web import create_app

    settings = make_settings(tmp_path, backend, HOTLINE_PUBLIC_BASE_URL="https://hotline.example.org")
    rt = build_runtime(settings)
    try:
        client = create_app(settings, rt).test_client()
        params = sms_params()
        ok = post_signed(client, params, signed_url="https://hotline.example.org/twilio/sms")
        assert ok.status_code == 200
        local = post_signed(client, sms_params(), signed_url="http://localhost/twilio/sms")
        assert local.status_code == 403
        assert rt.store.counts()["signals"] == 1
    finally:
        rt.close()


def test_healthz(client):
    resp = client.get("/healthz")
    assert resp.status_code == 200
    assert resp.get_json() == {"status": "ok"}
