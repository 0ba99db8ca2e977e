"""Key rotation: data written under key A, `hotline keys rotate` to key B with A as previous key.

Afterwards everything reads with B alone, nothing in the database opens with A, a texter's next
message joins their conversation and a number that sent STOP stays opted out - also while the
rotation has not run yet. A wrong or missing old key stops it before it changes anything.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from conftest import (
    CONFIG,
    REPO,
    TEST_SECRET,
    Backend,
    drain,
    make_settings,
    post_signed,
    settings_env,
    sms_params,
    stored_strings,
)
from sqlalchemy import select, update

from console.casework import Casework, Routing
from console.models import reclassifications
from intake.crypto import FieldCipher, SecretKeyError, generate_secret_key
from intake.store import case_events, signals, textline_state, triage_results
from routing.cases import new_case_number
from workers.replies import send_sms_reply
from workers.rotation import encrypted_columns
from workers.runtime import Runtime, build_runtime
from workers.schema import target_metadata
from workers.web import create_app

KEY_A = TEST_SECRET
KEY_B = generate_secret_key()
TEXTER = "+15555550142"  # keeps texting: their conversation must hold together
STOPPER = "+15555550143"  # sent STOP
OLD_STOPPER = "+15555550144"  # sent STOP before opt-outs kept their identity (a pre-0004 row)
WORDS = "Quillon Varga holds our passports at the farm, please help"
NOTE = "Caller says Varga moves the crew on Fridays"
REPLY = "We are here. Is it safe to text at this number?"
OLD_PLACE = "Wexcombe"  # a place a texter named, stored in plaintext by older code
CLOSE_REASON = "Moved in with Aunt Petronella Quibb"
RECL_REASON = "Told us Ondrej Vask still holds her papers"
OLD_REASON = "Legacy reason naming Mirela Tosk"
OLD_RECL_REASON = "Legacy reclassification naming Bastian Orrel"


def hotline(tmp_path: Path, backend: Backend, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "workers.cli", "--config", str(CONFIG), *args],
                          env={**os.environ, **settings_env(tmp_path, backend, **env)}, cwd=REPO,
                          capture_output=True, text=True, timeout=300)


class Line:
    """The web app and a worker on one configuration (one key set)."""

    def __init__(self, tmp_path: Path, backend: Backend, **env: str) -> None:
        self.settings = make_settings(tmp_path, backend, **env)
        self.rt: Runtime = build_runtime(self.settings)
        self.client = create_app(self.settings, self.rt).test_client()

    def text(self, body: str, from_: str) -> str:
        resp = post_signed(self.client, sms_params(body, from_=from_))
        assert resp.status_code == 200
        return resp.get_data(as_text=True)

    def case_of_latest(self, phone: str) -> str:
        """The case number of the newest message from `phone` (triaged by now)."""
        for sig in self.rt.store.recent_signals(500):
            stored = self.rt.store.load_signal(sig["id"])
            if stored is not None and stored.signal.sender == phone:
                assert sig["status"] == "triaged" and sig["case_number"]
                return str(sig["case_number"])
        raise AssertionError("no message from that number")

    def close(self) -> None:
        self.rt.close()


@pytest.fixture
def lines(tmp_path: Path, backend: Backend) -> Iterator[list[Line]]:
    opened: list[Line] = []
    yield opened
    for line in opened:
        line.close()


def snapshot(rt: Runtime) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    with rt.store.engine.connect() as conn:
        for name, table in sorted(target_metadata().tables.items()):
            out[name] = sorted(repr(tuple(r)) for r in conn.execute(select(table)))
    return out


def opens_with(cipher: FieldCipher, value: str) -> bool:
    if not value.startswith("gAAAAA"):  # a Fernet token's first bytes
        return False
    try:
        cipher.decrypt(value)
    except SecretKeyError:
        return False
    return True


def write_everything_under_key_a(line: Line) -> str:
    """Texts (one conversation, one STOP, one old-style STOP), a note, a reply, a page and a call."""
    assert "<Message>" in line.text(WORDS, TEXTER)  # the greeting: a new conversation
    line.text("STOP", STOPPER)
    line.text("STOP", OLD_STOPPER)
    drain(line.rt)
    number = line.case_of_latest(TEXTER)
    now = datetime.now(UTC)
    rt = line.rt
    casework = Casework(rt.store, Routing(rt.sla_rules, rt.calendar), new_case_number)
    casework.add_note(number, NOTE, "ana", now)
    case0 = rt.store.case_by_number(number)
    assert case0 is not None
    casework.reclassify(number, "tip" if case0.category != "tip" else "general",
                        "high" if case0.category != "tip" else "low", RECL_REASON, "ana", now)
    casework.set_status(number, "closed", "ana", CLOSE_REASON, now)
    casework.set_status(number, "open", "ana", "reopened for the rotation test", now)
    send_sms_reply(rt, number, REPLY, "ana")
    case = rt.store.case_by_number(number)
    assert case is not None
    rt.store.record_notification(case.id, "sms", "+15555550100", f"Case {number}: crisis", "recorded",
                                 f"rotation-test-{number}", now)
    rt.store.call_touch("CA" + "1" * 32, now, **{"from": TEXTER, "transcript": WORDS, "location": {"zip": "00000"}})
    # An opt-out stored before textline_state kept the identity: only its hash is known.
    old_hash = rt.store.cipher.identity_hash("phone", OLD_STOPPER)
    with rt.store.engine.begin() as conn:
        conn.execute(update(textline_state).where(textline_state.c.sender_hash == old_hash).values(identity_enc=None))
        # A triage result from before locations were encrypted: the place in plaintext details.
        first = conn.execute(select(triage_results.c.signal_id, triage_results.c.details)
                             .join(signals, signals.c.id == triage_results.c.signal_id)
                             .where(signals.c.case_id == case.id).limit(1)).one()
        conn.execute(update(triage_results).where(triage_results.c.signal_id == first.signal_id).values(
            details={**first.details, "location": {"city": OLD_PLACE}}, location_enc=None))
        # Reasons typed before they were encrypted: plaintext in the event's detail / the reclassification.
        conn.execute(case_events.insert().values(id="legacy-event", case_id=case.id, at=now, actor="ana",
                                                 action="closed", detail={"reason": OLD_REASON}))
        conn.execute(reclassifications.insert().values(
            id="legacy-recl", case_id=case.id, at=now, actor="ana", machine_category="general",
            machine_urgency="low", old_category="general", old_urgency="low", new_category="tip",
            new_urgency="normal", reason=OLD_RECL_REASON))
    return number


def test_rotation_re_encrypts_and_re_hashes_everything_and_texters_keep_their_state(
        tmp_path: Path, backend: Backend, lines: list[Line]) -> None:
    a = Line(tmp_path, backend)
    lines.append(a)
    number = write_everything_under_key_a(a)
    a_only = FieldCipher(KEY_A)
    hashes_a = {a_only.identity_hash("phone", p) for p in (TEXTER, STOPPER, OLD_STOPPER)}
    a.close()
    lines.remove(a)

    # Every process now runs with B, A as previous key; the rotation has not run yet.
    window = Line(tmp_path, backend, HOTLINE_SECRET_KEY=KEY_B, HOTLINE_PREVIOUS_SECRET_KEYS=KEY_A)
    lines.append(window)
    assert "<Message>" not in window.text("HELP", STOPPER)  # opted out under the old hash: still silent
    assert "<Message>" not in window.text("HELP", OLD_STOPPER)
    assert "<Message>" not in window.text("are you still there?", TEXTER)  # mid-conversation: no new greeting
    drain(window.rt)
    assert window.case_of_latest(TEXTER) == number  # joined the conversation hashed under A
    before = snapshot(window.rt)

    dry = hotline(tmp_path, backend, "keys", "rotate", "--dry-run", HOTLINE_SECRET_KEY=KEY_B,
                  HOTLINE_PREVIOUS_SECRET_KEYS=KEY_A)
    assert dry.returncode == 0, dry.stderr
    assert "would re-encrypt" in dry.stdout and "signals:" in dry.stdout
    assert snapshot(window.rt) == before  # a dry run changes nothing

    rotated = hotline(tmp_path, backend, "keys", "rotate", "--batch", "2", HOTLINE_SECRET_KEY=KEY_B,
                      HOTLINE_PREVIOUS_SECRET_KEYS=KEY_A)
    assert rotated.returncode == 0, rotated.stderr
    out = rotated.stdout + rotated.stderr
    assert "nothing is left under an old key" in out
    for name in encrypted_columns():  # every table with encrypted columns is reported
        assert f"{name}:" in out
    for secret in (TEXTER, TEXTER[2:], "Varga", "passports", KEY_A, KEY_B):
        assert secret not in out  # counts, never values

    # Nothing in the database opens with A any more, and no identity is hashed under A.
    values = stored_strings(window.rt)
    assert not [v for v in values if opens_with(a_only, v)]
    assert sum(opens_with(FieldCipher(KEY_B), v) for v in values) >= 10
    assert not hashes_a & set(values)
    assert not [v for v in values if OLD_PLACE in v]  # the plaintext location left behind is encrypted now
    for reason in (CLOSE_REASON, RECL_REASON, OLD_REASON, OLD_RECL_REASON):
        assert not [v for v in values if reason in v]  # typed reasons: encrypted, the old ones too now

    again = hotline(tmp_path, backend, "keys", "rotate", HOTLINE_SECRET_KEY=KEY_B, HOTLINE_PREVIOUS_SECRET_KEYS=KEY_A)
    assert again.returncode == 0 and "done: 0 changes" in again.stdout
    settled = snapshot(window.rt)
    window.close()
    lines.remove(window)

    # The old key is gone from the configuration: everything still reads, texters keep their state.
    b = Line(tmp_path, backend, HOTLINE_SECRET_KEY=KEY_B)
    lines.append(b)
    assert snapshot(b.rt) == settled
    case = b.rt.store.case_by_number(number)
    assert case is not None
    texts = [s.signal.text for s in b.rt.store.case_signals(case.id)]
    assert WORDS in texts and "are you still there?" in texts
    assert [o["body"] for o in b.rt.store.outbound_for(case.id)] == [REPLY]
    assert [n["body"] for n in b.rt.store.notifications_for(case.id) if n["dedupe_key"].startswith("rotation")] \
        == [f"Case {number}: crisis"]
    call = b.rt.store.call_get("CA" + "1" * 32)
    assert call is not None and call["from"] == TEXTER and call["location"] == {"zip": "00000"}
    detail = Casework(b.rt.store, Routing(b.rt.sla_rules, b.rt.calendar), new_case_number).detail(
        number, datetime.now(UTC), 0.25)
    assert [n["body"] for n in detail["notes"]] == [NOTE]
    assert {RECL_REASON, OLD_RECL_REASON} <= {r["reason"] for r in detail["reclassifications"]}
    reasons = [e["detail"].get("reason") for e in b.rt.store.case_audit(case.id)]
    assert CLOSE_REASON in reasons and OLD_REASON in reasons
    assert {"city": OLD_PLACE} in [(t["triage"] or {}).get("location") for t in detail["timeline"]]
    assert "<Message>" not in b.text("HELP", STOPPER)  # still opted out
    assert "<Message>" not in b.text("HELP", OLD_STOPPER)  # re-hashed from their messages
    assert b.rt.store.is_opted_out("phone", STOPPER) and not b.rt.store.is_opted_out("phone", TEXTER)
    assert "<Message>" not in b.text("one more thing", TEXTER)
    drain(b.rt)
    assert b.case_of_latest(TEXTER) == number  # the next message still joins the conversation
    with b.rt.store.engine.connect() as conn:
        assert conn.execute(select(textline_state.c.identity_enc)
                            .where(textline_state.c.identity_enc.is_(None))).all() == []


def test_a_wrong_or_missing_old_key_is_named_and_nothing_changes(
        tmp_path: Path, backend: Backend, lines: list[Line]) -> None:
    a = Line(tmp_path, backend)
    lines.append(a)
    a.text(WORDS, TEXTER)
    a.text("STOP", STOPPER)
    drain(a.rt)
    before = snapshot(a.rt)
    for env in ({"HOTLINE_SECRET_KEY": KEY_B},
                {"HOTLINE_SECRET_KEY": KEY_B, "HOTLINE_PREVIOUS_SECRET_KEYS": generate_secret_key()}):
        for args in (("keys", "rotate"), ("keys", "rotate", "--dry-run")):
            res = hotline(tmp_path, backend, *args, **env)
            assert res.returncode == 2, res.stdout + res.stderr
            assert "security.previous_secret_keys" in res.stderr and "HOTLINE_PREVIOUS_SECRET_KEYS" in res.stderr
            assert "signals.text_enc" in res.stderr and "nothing was changed" in res.stderr
            assert "Traceback" not in res.stderr
            assert snapshot(a.rt) == before
    short = hotline(tmp_path, backend, "keys", "rotate", HOTLINE_SECRET_KEY=KEY_B,
                    HOTLINE_PREVIOUS_SECRET_KEYS="not-a-key")
    assert short.returncode == 2 and "security.previous_secret_keys" in short.stderr
    assert "not-a-key" not in short.stderr + short.stdout  # a key, even a bad one, is never echoed
    assert snapshot(a.rt) == before
    # The right old key: it rotates.
    ok = hotline(tmp_path, backend, "keys", "rotate", HOTLINE_SECRET_KEY=KEY_B, HOTLINE_PREVIOUS_SECRET_KEYS=KEY_A)
    assert ok.returncode == 0, ok.stderr
    with a.rt.store.engine.connect() as conn:
        tokens = [r.text_enc for r in conn.execute(select(signals.c.text_enc))]
    assert tokens and all(FieldCipher(KEY_B).decrypt(t) for t in tokens)


def test_the_cipher_reads_with_old_keys_and_hashes_under_every_key() -> None:
    old, new = FieldCipher(KEY_A), FieldCipher(KEY_B, [KEY_A])
    token = old.encrypt("+15555550150")
    assert new.decrypt(token) == "+15555550150" and not new.is_current(token)
    fresh = new.reencrypt(token)
    assert fresh is not None and new.is_current(fresh) and FieldCipher(KEY_B).decrypt(fresh) == "+15555550150"
    with pytest.raises(SecretKeyError, match="previous_secret_keys"):
        old.decrypt(fresh)
    assert new.identity_hashes("phone", "+15555550150") == (FieldCipher(KEY_B).identity_hash("phone", "+15555550150"),
                                                            old.identity_hash("phone", "+15555550150"))
    assert FieldCipher(KEY_B, [KEY_B]).key_count == 1  # the current key listed again is ignored
    with pytest.raises(SecretKeyError, match="previous_secret_keys entry 1"):
        FieldCipher(KEY_B, ["short"])
