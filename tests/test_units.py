"""Pure decisions, table-driven: normalisation, SLA deadlines, case numbers, sweeper, triage."""

from __future__ import annotations

from datetime import UTC, datetime, time
from zoneinfo import ZoneInfo

import pytest

from intake.crypto import FieldCipher, SecretKeyError
from intake.normalize import LanguageDetector, clean_text, normalize_phone
from intake.signal import Channel, Signal
from routing.cases import new_case_number, normalize_case_number
from routing.sla import BusinessCalendar, SlaRule, deadline_for, find_rule
from triage.engine import classify, load_ruleset
from workers.sweeper import decide

NY = ZoneInfo("America/New_York")


@pytest.mark.parametrize(("raw", "e164", "region"), [
    ("+15555550123", "+15555550123", "US"),
    ("(555) 555-0123", "+15555550123", "US"),
    ("+52 55 5555 0100", "+525555550100", "MX"),
    ("233733", "233733", None),          # a short code stays what it is
    ("", None, None),
])
def test_phone_normalisation(raw, e164, region):
    p = normalize_phone(raw)
    assert (p.e164 if p else None) == e164
    assert (p.region if p else None) == region


def test_clean_text_drops_control_characters_and_normalises():
    assert clean_text(" a\x00b\r\nc\x1b ") == "ab\nc"
    assert clean_text("Cafe\u0301") == "Café"


@pytest.mark.parametrize(("text", "lang"), [
    ("I have been working at a farm and they will not pay me or let me leave the house", "en"),
    ("Trabajo en un restaurante y no me pagan, tengo miedo de salir de la casa", "es"),
    ("ayuda", "es"),
    ("help", "en"),
    ("HELP", "en"),
    ("ok?", "en"),
    ("123", "und"),
])
def test_language_detection_is_deterministic_with_a_short_text_fallback(text, lang):
    detector = LanguageDetector()
    first = detector.detect(text)
    assert first.code == lang
    assert [detector.detect(text) for _ in range(3)] == [first] * 3


def _calendar() -> BusinessCalendar:
    return BusinessCalendar("America/New_York", "US", time(9), time(17))


@pytest.mark.parametrize(("received_local", "days", "due_local"), [
    (datetime(2026, 11, 23, 10, 0), 1, datetime(2026, 11, 24, 17, 0)),   # Mon -> Tue
    (datetime(2026, 11, 25, 10, 0), 1, datetime(2026, 11, 27, 17, 0)),   # Wed, Thanksgiving Thu -> Fri
    (datetime(2026, 11, 27, 18, 0), 1, datetime(2026, 12, 1, 17, 0)),    # Fri after hours -> Tue
    (datetime(2026, 11, 28, 12, 0), 3, datetime(2026, 12, 3, 17, 0)),    # Sat -> counts from Mon
    (datetime(2026, 12, 24, 9, 30), 1, datetime(2026, 12, 28, 17, 0)),   # Christmas Day Fri, weekend
])
def test_business_day_deadlines_skip_weekends_and_federal_holidays(received_local, days, due_local):
    cal = _calendar()
    due = cal.add_business_days(received_local.replace(tzinfo=NY).astimezone(UTC), days)
    assert due.astimezone(NY).replace(tzinfo=None) == due_local


def test_wall_clock_deadline_is_minutes_after_arrival():
    rule = SlaRule("crisis", "*", None, "crisis_line", 5, None)
    at = datetime(2026, 11, 28, 3, 0, tzinfo=UTC)  # Saturday night: a crisis does not wait for Monday
    due, clock = deadline_for(rule, at, _calendar())
    assert clock == "wall"
    assert (due - at).total_seconds() == 300


def test_first_matching_route_wins_and_channel_narrows():
    rules = [SlaRule("tip", "*", "webform", "tips", None, 1), SlaRule("*", "*", None, "advocates", None, 2)]
    assert find_rule(rules, "tip", "normal", "webform").queue == "tips"
    assert find_rule(rules, "tip", "normal", "sms").queue == "advocates"


def test_case_numbers_are_unique_checkable_and_forgiving_to_read():
    numbers = {new_case_number() for _ in range(2000)}
    assert len(numbers) == 2000
    n = next(iter(numbers))
    assert normalize_case_number(n) == n
    assert normalize_case_number(n.lower().replace("-", " ")) == n
    body = n[3:7] + n[8:12]
    wrong = body[0] + ("1" if body[1] != "1" else "2") + body[2:]
    assert normalize_case_number(f"HT-{wrong[:4]}-{wrong[4:]}-{n[-1]}") is None
    assert normalize_case_number("hello") is None


@pytest.mark.parametrize(("status", "alive", "action"), [
    (None, None, "enqueue"),
    ("queued", None, "wait"),
    ("scheduled", None, "wait"),
    ("started", True, "wait"),
    ("started", False, "replace"),
    ("finished", None, "replace"),
    ("stopped", None, "replace"),
    ("failed", None, "failed"),
])
def test_sweeper_decisions(status, alive, action):
    assert decide(status, alive) == action


@pytest.mark.parametrize(("status", "overdue", "action"), [
    ("scheduled", False, "wait"),   # waiting out the SMS debounce
    ("scheduled", True, "release"),  # its time passed long ago: rq's scheduler is not running
    ("queued", True, "wait"),
])
def test_sweeper_releases_scheduled_jobs_the_scheduler_left_behind(status, overdue, action):
    assert decide(status, None, overdue) == action


def test_field_cipher_round_trips_and_hashes_identities_stably():
    c = FieldCipher("x" * 40)
    token = c.encrypt("+15555550123")
    assert token and "5555550123" not in token
    assert c.decrypt(token) == "+15555550123"
    assert c.identity_hash("phone", "+15555550123") == c.identity_hash("phone", "+15555550123")
    assert c.identity_hash("phone", "+15555550123") != FieldCipher("y" * 40).identity_hash("phone", "+15555550123")
    with pytest.raises(SecretKeyError):
        FieldCipher("short")
    with pytest.raises(SecretKeyError):
        FieldCipher("y" * 40).decrypt(token)


def _sig(text: str, lang: str = "en") -> Signal:
    return Signal(channel=Channel.SMS, external_id="t", received_at=datetime.now(UTC), text=text,
                  language=lang, language_confidence=0.9)


@pytest.mark.parametrize(("text", "lang", "category", "urgency"), [
    ("please help me, they locked me in the room", "en", "crisis", "immediate"),
    ("I want to report a suspicious massage parlor near the highway", "en", "tip", "normal"),
    ("I want to report girls who look 15 years old at a motel", "en", "tip", "high"),
    ("I need a shelter and a lawyer", "en", "referral", "normal"),
    ("Can you do a training for our nurses?", "en", "tta", "low"),
    ("what are the signs of trafficking?", "en", "general", "low"),
    ("quiero reportar algo sospechoso en un restaurante", "es", "tip", "normal"),
    ("hi", "en", "general", "low"),
])
def test_first_rules_classify_the_obvious_cases(text, lang, category, urgency):
    result = classify(_sig(text, lang), load_ruleset())
    assert (result.category, result.urgency) == (category, urgency)
    assert result.explanation and result.ruleset


def test_rule_file_errors_name_file_and_rule(tmp_path):
    from triage.engine import RuleError

    (tmp_path / "bad.yaml").write_text("version: x\ncategory: crisis\nrules:\n  - id: crisis.en.x\n"
                                       "    patterns: ['(unclosed']\n")
    with pytest.raises(RuleError, match=r"bad.yaml: rule crisis.en.x: pattern 1 does not compile"):
        load_ruleset(tmp_path)
