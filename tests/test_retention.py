"""Retention purge with legal hold, through the `hotline` commands an operator runs.

Five cases (open, closed recently, closed long ago, closed long ago but on legal hold, held then
released) and an old contact that never reached a case: exactly the right ones are purged, their
rows keep what the statistics count and nothing that says who wrote or what they said, a dry run
changes nothing, and a second run finds nothing new.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import CONFIG, REPO, Backend, drain, make_settings, post_signed, settings_env, sms_params
from sqlalchemy import insert, select, update

from console.casework import Casework, Routing
from console.models import audit_log
from intake.crypto import FieldCipher, SecretKeyError
from intake.signal import Channel, Signal
from intake.store import case_events, cases, signals, textline_state, triage_results
from routing.cases import new_case_number
from workers.replies import send_sms_reply
from workers.runtime import Runtime, build_runtime
from workers.schema import target_metadata
from workers.web import create_app

NOW = datetime.now(UTC)
LONG_AGO = NOW - timedelta(days=800)  # past closed_case_days (730)


@dataclass
class Contact:
    phone: str
    text: str
    closed_days_ago: int | None
    held: bool = False
    released: bool = False
    number: str = ""

    @property
    def purged(self) -> bool:
        return self.closed_days_ago is not None and self.closed_days_ago > 730 and not (self.held and not self.released)


def table() -> dict[str, Contact]:
    return {
        "open": Contact("+15555550161", "Orrin Kastell keeps my papers and I cannot leave", None),
        "closed recently": Contact("+15555550162", "Belva Trusk asked about visa rights for workers", 10),
        "closed long ago": Contact("+15555550163", "Dacey Morrow says the motel manager sells girls", 800),
        "held": Contact("+15555550164", "Ferris Ullmann took our wages and passports", 800, held=True),
        "released": Contact("+15555550165", "Gwyn Halloway forced us to work the boats", 800, held=True, released=True),
    }


def hotline(tmp_path: Path, backend: Backend, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "workers.cli", "--config", str(CONFIG), *args],
                          env={**os.environ, **settings_env(tmp_path, backend)}, cwd=REPO,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture
def rt(tmp_path: Path, backend: Backend) -> Iterator[Runtime]:
    runtime = build_runtime(make_settings(tmp_path, backend))
    yield runtime
    runtime.close()


def snapshot(rt: Runtime) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    with rt.store.engine.connect() as conn:
        for name, t in sorted(target_metadata().tables.items()):
            out[name] = sorted(repr(tuple(r)) for r in conn.execute(select(t)))
    return out


def content_of(rt: Runtime, number: str) -> dict[str, object]:
    """What an advocate sees of a case: texts, senders, notes, replies, pages, hold."""
    case = rt.store.case_by_number(number)
    assert case is not None
    casework = Casework(rt.store, Routing(rt.sla_rules, rt.calendar), new_case_number)
    with rt.store.engine.connect() as conn:
        row = conn.execute(select(cases.c.legal_hold, cases.c.purged_at).where(cases.c.id == case.id)).one()
    return {
        "signals": sorted((s.signal.sender or "", s.signal.text) for s in rt.store.case_signals(case.id)),
        "notes": [n["body"] for n in casework.detail(number, NOW, 0.25)["notes"]],
        "replies": [(o["to"], o["body"]) for o in rt.store.outbound_for(case.id)],
        "pages": [(n["target"], n["body"]) for n in rt.store.notifications_for(case.id)],
        "held": bool(row.legal_hold), "purged_at": row.purged_at,
    }


def build(tmp_path: Path, backend: Backend, rt: Runtime) -> tuple[dict[str, Contact], str]:
    client = create_app(make_settings(tmp_path, backend), rt).test_client()
    contacts = table()
    for c in contacts.values():
        post_signed(client, sms_params(c.text, from_=c.phone))
    drain(rt)
    casework = Casework(rt.store, Routing(rt.sla_rules, rt.calendar), new_case_number)
    for name, c in contacts.items():
        [sig] = [s for s in rt.store.recent_signals(100)
                 if (rt.store.load_signal(s["id"]).signal.text == c.text)]  # type: ignore[union-attr]
        c.number = sig["case_number"]
        casework.add_note(c.number, f"Note on {name}: {c.text.split()[0]} called back", "ana", NOW)
        send_sms_reply(rt, c.number, f"Reply for {c.text.split()[0]}: we can help", "ana")
        case = rt.store.case_by_number(c.number)
        assert case is not None
        rt.store.record_notification(case.id, "sms", "+15555550100", f"Page: {c.text.split()[0]}", "recorded",
                                     f"retention-{name}", NOW)
    post_signed(client, sms_params("STOP", from_=contacts["closed long ago"].phone))  # an opt-out outlives the purge
    drain(rt)
    for c in contacts.values():
        case = rt.store.case_by_number(c.number)
        assert case is not None
        if c.closed_days_ago is None:
            continue
        closed_at = NOW - timedelta(days=c.closed_days_ago)
        with rt.store.engine.begin() as conn:  # the contacts came in before the case was closed
            conn.execute(update(signals).where(signals.c.case_id == case.id).values(
                received_at=closed_at - timedelta(days=1), accepted_at=closed_at - timedelta(days=1)))
        rt.store.set_case_status(c.number, "closed", "ana", f"Closed: {c.text.split()[0]} safe", closed_at,
                                 ("open", "acknowledged"))
    # A contact that never reached a case, 100 days ago (past unrouted_signal_days: 90).
    lost = Signal(channel=Channel.SMS, external_id="SM" + "7" * 32, received_at=NOW - timedelta(days=100),
                  sender="+15555550169", text="Ines Coyle is stuck at the border house")
    rt.store.insert_signal(lost, NOW - timedelta(days=100))
    with rt.store.engine.begin() as conn:  # and a console log line from long ago
        conn.execute(insert(audit_log).values(id="old-audit", at=NOW - timedelta(days=3000), actor="ana",
                                              action="login", detail={}))
    return contacts, lost.id


def test_purge_blanks_exactly_the_closed_cases_past_retention_and_never_a_held_or_open_one(
        tmp_path: Path, backend: Backend, rt: Runtime) -> None:
    contacts, lost_id = build(tmp_path, backend, rt)

    # Legal hold, by command, audited.
    for c in contacts.values():
        if c.held:
            res = hotline(tmp_path, backend, "cases", "hold", c.number, "--reason", "Subpoena 2026-17", "--by", "sup1")
            assert res.returncode == 0 and "is on legal hold" in res.stdout, res.stderr
        if c.released:
            res = hotline(tmp_path, backend, "cases", "unhold", c.number, "--reason", "Matter closed", "--by", "sup1")
            assert res.returncode == 0 and "legal hold released" in res.stdout, res.stderr
    held = contacts["held"]
    audit = rt.store.case_audit(rt.store.case_by_number(held.number).id)  # type: ignore[union-attr]
    assert [(e["actor"], e["action"], e["detail"]) for e in audit if e["action"].startswith("legal_hold")] == \
        [("sup1", "legal_hold", {"reason": "Subpoena 2026-17"})]
    bad = hotline(tmp_path, backend, "cases", "hold", "HT-0000-0000-0", "--reason", "x", "--by", "sup1")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    blank = hotline(tmp_path, backend, "cases", "hold", held.number, "--reason", "  ", "--by", "sup1")
    assert blank.returncode == 2 and "--reason" in blank.stderr

    before = {name: content_of(rt, c.number) for name, c in contacts.items()}
    assert all(v["signals"] and v["notes"] and v["replies"] and v["pages"] for v in before.values())
    state_before = snapshot(rt)

    dry = hotline(tmp_path, backend, "purge", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "closed cases past retention: 2 would be purged" in dry.stdout
    assert snapshot(rt) == state_before  # a dry run changes nothing

    res = hotline(tmp_path, backend, "purge")
    assert res.returncode == 0, res.stderr
    assert "closed cases past retention: 2 purged" in res.stdout
    # The same counts as the dry run announced.
    assert dry.stdout.replace("would be ", "").replace(" (dry run: nothing is changed)", "") == res.stdout
    # signals: the 3 contacts of the two cases (one sent STOP too) and the one that never reached a case
    for line in ("signals: 4 blanked", "triage_results: 3 blanked", "case_notes: 2 deleted", "outbound: 2 blanked",
                 "console_audit: 1 deleted"):
        assert line in res.stdout
    cipher = FieldCipher(make_settings(tmp_path, backend).security.secret_key or "")

    for name, c in contacts.items():
        after = content_of(rt, c.number)
        if not c.purged:
            assert after == before[name], name  # untouched: open, recent, held
            continue
        assert after["purged_at"] is not None and after["notes"] == []
        assert after["signals"] and all(s == ("", "") for s in after["signals"])  # type: ignore[union-attr]
        assert after["replies"] == [("", "")] and after["pages"] and all(p == (None, None) for p in after["pages"])
        case = rt.store.case_by_number(c.number)
        assert case is not None and case.status == "closed"
        rows = purged_rows(rt, case.id)
        # No ciphertext, no identity hash, no provider id left that could lead back to them.
        tokens = [v for v in rows if isinstance(v, str) and v.startswith("gAAAAA")]
        assert not [t for t in tokens if opens(cipher, t)]
        assert cipher.identity_hash("phone", c.phone) not in rows
        assert not [v for v in rows if isinstance(v, str) and (c.phone[2:] in v or c.text.split()[0] in v)]
        # What the statistics count stays: category, channel, language, month.
        with rt.store.engine.connect() as conn:
            kept = conn.execute(select(triage_results.c.category, signals.c.channel, signals.c.language)
                                .select_from(signals.join(triage_results, triage_results.c.signal_id == signals.c.id))
                                .where(signals.c.case_id == case.id)).all()
        assert kept and all(k.category and k.channel == "sms" for k in kept)
        assert [e["action"] for e in rt.store.case_audit(case.id)][-1] == "purged"
    # The texter who sent STOP stays opted out after their case is purged.
    assert rt.store.is_opted_out("phone", contacts["closed long ago"].phone)
    stored = rt.store.load_signal(lost_id)
    assert stored is not None and stored.status == "purged"
    assert stored.signal.text == "" and stored.signal.sender is None
    with rt.store.engine.connect() as conn:
        assert conn.execute(select(audit_log.c.id).where(audit_log.c.id == "old-audit")).first() is None
        assert conn.execute(select(textline_state.c.opted_out)).scalars().all() == [True]

    settled = snapshot(rt)
    again = hotline(tmp_path, backend, "purge")
    assert again.returncode == 0 and "closed cases past retention: 0 purged" in again.stdout
    assert "nothing to purge" in again.stdout
    assert snapshot(rt) == settled


def purged_rows(rt: Runtime, case_id: str) -> list[object]:
    """Every value of every row that hangs off a case."""
    values: list[object] = []
    with rt.store.engine.connect() as conn:
        sig_ids = [r.id for r in conn.execute(select(signals.c.id).where(signals.c.case_id == case_id))]
        for t in target_metadata().tables.values():
            conds = []
            if "case_id" in t.c:
                conds.append(t.c.case_id == case_id)
            if "signal_id" in t.c:
                conds.append(t.c.signal_id.in_(sig_ids))
            if t.name == "signals":
                conds.append(t.c.id.in_(sig_ids))
            for cond in conds:
                for row in conn.execute(select(t).where(cond)):
                    values += [v if not isinstance(v, (dict, list)) else repr(v) for v in row]
        values += [r.detail.get("reason") for r in conn.execute(select(case_events.c.detail)
                                                                .where(case_events.c.case_id == case_id))]
    return values


def opens(cipher: FieldCipher, token: str) -> bool:
    try:
        cipher.decrypt(token)
    except SecretKeyError:
        return False
    return True
