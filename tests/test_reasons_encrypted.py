"""Reasons staff type (close, reopen, reclassify, move a contact, legal hold) can repeat what a
contact said or who they are, so they are stored encrypted like notes: never in clear in any
table, yet the case page, the audit trail and the audit page show them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from conftest import Backend, drain, make_settings, post_signed, sms_params, stored_strings

from console.casework import Casework, Routing
from routing.cases import new_case_number
from workers.retention import set_legal_hold
from workers.runtime import build_runtime
from workers.web import create_app

TEXTER = "+15555550161"
REASONS = {
    "reclassify": "She said Corvin Aldous keeps her passport",
    "close": "Placed with cousin Ilsabet Marrow in Dayton",
    "reopen": "Texted again from 555-0162, new phone",
    "split": "Second number belongs to her sister Wenna",
    "hold": "Subpoena in the matter of Quorra Benn",
}


def test_typed_reasons_are_encrypted_at_rest_and_readable_where_staff_look(tmp_path: Path, backend: Backend) -> None:
    settings = make_settings(tmp_path, backend)
    rt = build_runtime(settings)
    try:
        client = create_app(settings, rt).test_client()
        post_signed(client, sms_params("my boss took my papers and i cant leave the farm", from_=TEXTER))
        post_signed(client, sms_params("this is my other phone", from_=TEXTER))
        drain(rt)
        [first, *_] = [s for s in rt.store.recent_signals(10)]
        number = first["case_number"]
        case = rt.store.case_by_number(number)
        assert case is not None
        sigs = rt.store.case_signals(case.id)
        assert len(sigs) == 2  # one conversation, one case
        cw = Casework(rt.store, Routing(rt.sla_rules, rt.calendar), new_case_number)
        now = datetime.now(UTC)
        new_cat, new_urg = ("tip", "high") if case.category != "tip" else ("general", "low")
        cw.reclassify(number, new_cat, new_urg, REASONS["reclassify"], "ana", now)
        cw.set_status(number, "closed", "ana", REASONS["close"], now + timedelta(seconds=1))
        cw.set_status(number, "open", "ana", REASONS["reopen"], now + timedelta(seconds=2))
        split_to = cw.move_signal(number, sigs[1].signal.id, None, "ana", now + timedelta(seconds=3), REASONS["split"])
        assert set_legal_hold(rt.store, number, True, REASONS["hold"], "sup1", now + timedelta(seconds=4)) == "held"

        stored = stored_strings(rt)
        for what, reason in REASONS.items():
            assert not [v for v in stored if reason in v], f"the {what} reason is stored in clear"

        audit = rt.store.case_audit(case.id)
        by_action: dict[str, Any] = {e["action"]: e["detail"].get("reason") for e in audit}
        assert by_action["reclassified"] == REASONS["reclassify"]
        assert by_action["closed"] == REASONS["close"] and by_action["open"] == REASONS["reopen"]
        assert by_action["unlinked"] == REASONS["split"] and by_action["legal_hold"] == REASONS["hold"]
        detail = cw.detail(number, now, 0.25)
        assert [r["reason"] for r in detail["reclassifications"]] == [REASONS["reclassify"]]
        split_case = rt.store.case_by_number(split_to)
        assert split_case is not None
        assert [e["detail"].get("reason") for e in rt.store.case_audit(split_case.id)
                if e["action"] == "opened" and e["actor"] == "ana"] == [REASONS["split"]]
        page = [e for e in cw.audit_entries() if e["case"] == number]
        assert {e["detail"].get("reason") for e in page} >= set(REASONS.values()) - {REASONS["split"]}
    finally:
        rt.close()
