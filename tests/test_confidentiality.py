"""No message text or phone number in logs, in Redis, or in plaintext in the database."""

from __future__ import annotations

import logging

from conftest import drain, post_signed, sms_params
from sqlalchemy import text

from workers.logging_setup import RedactingFilter, redact

PHONE = "+15555550187"
WORDS = "Marisol Quenby says the orchard boss keeps our passports"


def test_logs_from_webhook_and_worker_hold_ids_not_contact_data(client, runtime, caplog):
    caplog.set_level(logging.DEBUG)
    post_signed(client, sms_params(WORDS, from_=PHONE))
    post_signed(client, sms_params(WORDS, from_=PHONE, sid="SM" + "f" * 32))
    post_signed(client, sms_params(WORDS, from_=PHONE), signature="forged")
    drain(runtime)
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "accepted" in logged  # the test sees the logs it is checking
    for secret in (PHONE, "5555550187", "Marisol", "passports"):
        assert secret not in logged


def test_redis_holds_ids_only(client, runtime):
    post_signed(client, sms_params(WORDS, from_=PHONE))
    dump = b""
    for key in runtime.redis.scan_iter(count=1000):
        kind = runtime.redis.type(key)
        if kind == b"hash":
            dump += b"".join(k + v for k, v in runtime.redis.hgetall(key).items())
        elif kind == b"string":
            dump += runtime.redis.get(key) or b""
        elif kind == b"list":
            dump += b"".join(runtime.redis.lrange(key, 0, -1))
    assert b"triage-" in dump or b"triage" in dump
    for secret in (b"5555550187", b"Marisol", b"passports"):
        assert secret not in dump


def test_database_never_holds_plaintext_phone_or_text(client, runtime):
    post_signed(client, sms_params(WORDS, from_=PHONE, FromZip="00000", FromCity="Testville"))
    drain(runtime)
    with runtime.store.engine.connect() as conn:
        rows = []
        for table in ("signals", "triage_results", "routes", "cases"):
            rows += [repr(tuple(r)) for r in conn.execute(text(f"SELECT * FROM {table}"))]  # noqa: S608
    blob = "\n".join(rows)
    assert len(rows) == 4
    for secret in ("5555550187", "Marisol", "passports", "Testville"):
        assert secret not in blob
    [row] = runtime.store.recent_signals()
    stored = runtime.store.load_signal(row["id"]).signal
    assert stored.sender == PHONE and stored.text == WORDS  # and the app can still read it


def test_redaction_filter_masks_what_slips_through():
    assert redact("call +1 (555) 555-0123 or mail x.y@example.org") == "call [phone] or mail [email]"
    record = logging.LogRecord("t", logging.INFO, __file__, 1, "from %s", ("+15555550123",), None)
    RedactingFilter().filter(record)
    assert record.getMessage() == "from [phone]"
    assert redact("signal 28abe751ef7b431a84a6c2649ba584f6 accepted") == \
        "signal 28abe751ef7b431a84a6c2649ba584f6 accepted"
