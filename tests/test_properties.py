"""Properties that hold for every input, checked with hypothesis (issue 11).

Normalisation (intake/normalize.py and the SMS channel's parse): any text, any Unicode - control
characters, lone surrogates, combining marks, megabytes - becomes a clean string or a Signal, or a
clear ValueError (BadWebhook); never another exception; cleaning is idempotent; phone numbers never
raise on junk. Triage (triage/engine.py): any text gets a valid category, urgency and language, the
same one every time, with urgency following the hotline's table. Language detection never answers
outside the configured languages (or 'und').

Monotonicity, checked before asserting it: "adding a crisis phrase never makes a text less
severe" is NOT a property of the engine. The phrase also feeds other categories' scores, so a tip
whose text says the writer is free to leave ("puedo salir" - a rule against crisis) can turn into
at_risk when "me tienen encerrada y no me dejan salir" is added: crisis is vetoed, and the phrase's
words tip the rest towards at_risk (tip/normal -> at_risk/normal; hypothesis found it in ~4000
corpus-built examples). What does hold, by construction, and is asserted here:
  * a crisis plea sent as its own message makes the conversation a crisis, unless the conversation
    also holds words the rules read as against crisis (negation, hedge, the past, safe now, a joke);
  * a conversation never becomes less severe than its previous result (nothing lowers a crisis).

Example counts are moderate (200, deadline off) so the file runs in well under a minute.
"""

from __future__ import annotations

import json
import re
import unicodedata
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from intake.channels.sms import MAX_BODY_CHARS, parse_sms
from intake.channels.twilio_common import BadWebhook
from intake.channels.webform import validate_tip
from intake.language import DEFAULT_LANGUAGES
from intake.normalize import LanguageDetector, clean_text, normalize_phone
from intake.signal import Channel, Signal
from triage.engine import Ruleset, classify, classify_conversation, classify_text, load_ruleset
from triage.result import CATEGORIES, URGENCIES

PROPS = settings(max_examples=200, deadline=None, database=None,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
FEW = settings(PROPS, max_examples=25)
NOW = datetime(2026, 11, 26, 15, 0, tzinfo=UTC)
CORPUS = Path(__file__).resolve().parent / "corpus"
_C0 = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")  # control characters other than \t and \n
_SURROGATE = re.compile(r"[\ud800-\udfff]")


@pytest.fixture(scope="module")
def ruleset() -> Ruleset:
    return load_ruleset()


@pytest.fixture(scope="module")
def detector() -> LanguageDetector:
    return LanguageDetector()


def _corpus_texts() -> list[str]:
    texts: list[str] = []
    for path in sorted(CORPUS.glob("signals*.jsonl")):
        texts += [json.loads(line)["text"] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return texts


TEXTS = _corpus_texts()
WORDS = sorted({w for t in TEXTS for w in re.findall(r"\w+|[.,!?'¿¡]", t)})

# ---- strategies ------------------------------------------------------------------------------------

# Every kind of character: letters of any script, marks, digits, punctuation, symbols, spaces,
# control and format characters, private use, and lone surrogates (which JSON can carry).
ANY_CHAR = st.characters(categories=["L", "M", "N", "P", "S", "Z", "Cc", "Cf", "Co", "Cs"])
# What a webhook's form can carry: its body must be valid UTF-8 (twilio_common.decode_form), so no surrogates.
FORM_CHAR = st.characters(categories=["L", "M", "N", "P", "S", "Z", "Cc", "Cf", "Co"])
NASTY = st.sampled_from(["\x00", "\r", "\r\n", "\n", "\t", "\x1b[31m", "\u200b", "\u202e", "\ufeff", "\ud800",
                         "\udfff", "e\u0301", "\u0301", "İ", "ß", "ﬁ", "\U0001f600", "👩‍👩‍👧", "\u2028", " "])
ANY_TEXT = st.one_of(
    st.text(ANY_CHAR, max_size=300),
    st.lists(st.one_of(NASTY, st.text(ANY_CHAR, max_size=8)), max_size=40).map("".join),
)
# Texts that reach the rules: corpus messages, and word salad from the corpus vocabulary, with junk between.
WORDY_TEXT = st.lists(st.one_of(st.sampled_from(TEXTS), st.lists(st.sampled_from(WORDS), max_size=30).map(" ".join),
                                st.text(ANY_CHAR, max_size=20)), min_size=1, max_size=3).map(" ".join)
TEXT = st.one_of(ANY_TEXT, WORDY_TEXT)
FORM_TEXT = st.one_of(st.text(FORM_CHAR, max_size=300), WORDY_TEXT.map(lambda t: _SURROGATE.sub("", t)))
HUGE_TEXT = st.tuples(st.text(ANY_CHAR, min_size=1, max_size=12), st.integers(20_000, 120_000)).map(
    lambda t: t[0] * t[1])
PHONEISH = st.one_of(
    st.text(ANY_CHAR, max_size=40),
    st.text("+0123456789 ()-.x#*ext", max_size=40),
    st.from_regex(r"\+?1?[ -]?\(?555\)? ?-?01[0-9]{2}", fullmatch=True),
    st.sampled_from(["+15555550123", "(555) 555-0199", "555-0100", "233733", "BeFree", "+44 20 7946 0958",
                     "+52 55 5555 0100", "0", "+", "+" + "9" * 300, "١٢٣٤٥٦٧٨٩٠", "tel:+15555550123"]),
)
# Crisis pleas the rules alone read as a crisis (checked in test_the_crisis_phrases_are_crises_alone).
CRISIS_PHRASES = ("They locked me in and I can't leave.", "Help me, he has a gun.", "SOS",
                  "Ayúdame por favor, estoy encerrada.", "me tienen encerrada y no me dejan salir",
                  "he is beating me right now", "please help me now")


# ---- normalisation ---------------------------------------------------------------------------------

@PROPS
@given(text=TEXT, max_chars=st.one_of(st.just(100_000), st.integers(1, 50)))
def test_clean_text_is_clean_bounded_and_idempotent(text: str, max_chars: int) -> None:
    out = clean_text(text, max_chars=max_chars)
    assert isinstance(out, str) and len(out) <= max_chars
    assert not _C0.search(out) and "\r" not in out and not _SURROGATE.search(out)
    assert unicodedata.is_normalized("NFC", out)
    assert out == out.strip()
    assert clean_text(out, max_chars=max_chars) == out


@FEW
@given(text=HUGE_TEXT)
def test_clean_text_caps_huge_input(text: str) -> None:
    out = clean_text(text)
    assert len(out) <= 100_000
    out.encode("utf-8")  # storable: no lone surrogate survives


@PROPS
@given(raw=st.one_of(st.none(), PHONEISH))
def test_phone_normalisation_never_raises_and_is_stable(raw: str | None) -> None:
    phone = normalize_phone(raw)
    if raw is None or not raw.strip():
        assert phone is None
        return
    assert phone is not None and 0 < len(phone.e164) <= 64
    if phone.region is not None:  # a real number: E.164, and reading it again changes nothing
        assert re.fullmatch(r"\+[1-9]\d{1,14}", phone.e164)
        assert normalize_phone(phone.e164) == phone


SMS_PARAMS = st.fixed_dictionaries(
    {},
    optional={
        "MessageSid": st.one_of(st.text(FORM_CHAR, max_size=300), st.just("SM" + "0" * 32)),
        "SmsSid": st.text(FORM_CHAR, max_size=40),
        "From": PHONEISH.map(lambda t: _SURROGATE.sub("", t)),
        "Body": st.one_of(FORM_TEXT, HUGE_TEXT.map(lambda t: _SURROGATE.sub("", t))),
        "NumMedia": st.text(FORM_CHAR, max_size=6),
        "MediaUrl0": st.text(FORM_CHAR, max_size=40),
        "FromState": st.text(FORM_CHAR, max_size=40),
        "FromCity": st.text(FORM_CHAR, max_size=40),
        "OptOutType": st.text(FORM_CHAR, max_size=10),
    },
)


@PROPS
@given(params=SMS_PARAMS)
def test_any_sms_parameters_become_a_signal_or_a_clear_refusal(params: dict[str, str], detector: LanguageDetector
                                                                ) -> None:
    try:
        signal = parse_sms(params, NOW, detector)
    except BadWebhook as exc:  # a ValueError with a status and a message safe to show
        assert exc.status == 400 and exc.message.startswith("missing required parameter")
        return
    assert isinstance(signal, Signal) and signal.channel is Channel.SMS
    assert 1 <= len(signal.external_id) <= 255
    assert len(signal.text) <= MAX_BODY_CHARS and clean_text(signal.text) == signal.text
    assert signal.language in (*DEFAULT_LANGUAGES, "und")
    json.dumps(signal.model_dump(mode="json"), ensure_ascii=False).encode("utf-8")  # storable as it is


JSON_VALUE = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(ANY_CHAR, max_size=30),
                          lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                                      max_size=3), max_leaves=6)


@PROPS
@given(data=st.dictionaries(st.sampled_from(["danger_now", "what_happened", "address", "city", "state", "zip",
                                             "minors_involved", "contact_consent", "contact_phone",
                                             "contact_email", "people_count", "unknown"]),
                            st.one_of(JSON_VALUE, TEXT, PHONEISH), max_size=8),
       lang=st.sampled_from(["en", "es"]), json_types=st.booleans())
def test_tip_validation_answers_field_by_field_and_never_raises(data: dict[str, Any], lang: str,
                                                                 json_types: bool) -> None:
    fields, errors = validate_tip(data, lang, json_types=json_types)
    assert set(fields).isdisjoint(errors)
    assert all(isinstance(m, str) and m for m in errors.values())
    for value in fields.values():
        if isinstance(value, str):
            assert clean_text(value, max_chars=len(value) + 1) == value  # clean, and stays so


# ---- language detection ----------------------------------------------------------------------------

_detectors: dict[tuple[str, ...], LanguageDetector] = {}  # models load once per language set

@PROPS
@given(text=st.one_of(st.none(), TEXT), languages=st.sampled_from([DEFAULT_LANGUAGES, ("en", "es"), ("zh", "ar", "ru"),
                                                                   ("fr",), ("ht", "tl", "vi", "ko")]))
def test_language_is_one_of_the_configured_set_or_und(text: str | None, languages: tuple[str, ...]) -> None:
    detector = _detectors.setdefault(languages, LanguageDetector(languages=languages))
    found = detector.detect(text)
    assert found.code in (*languages, "und")
    assert 0.0 <= found.confidence <= 1.0
    assert (found.code == "und") == (found.confidence == 0.0)
    assert detector.detect(text) == found  # deterministic


# ---- triage --------------------------------------------------------------------------------------

URGENCY_BY_CATEGORY = {"crisis": {"immediate"}, "tip": {"high", "normal"}, "at_risk": {"high", "normal"},
                       "referral": {"normal"}, "tta": {"low", "high"}, "general": {"low"}, "unrelated": {"low"}}


@PROPS
@given(text=TEXT, language=st.sampled_from([*DEFAULT_LANGUAGES, "und", "xx"]))
def test_any_text_gets_a_valid_deterministic_triage(text: str, language: str, ruleset: Ruleset) -> None:
    result = classify_text(text, language, ruleset)
    assert result.category in CATEGORIES and result.urgency in URGENCIES
    assert result.urgency in URGENCY_BY_CATEGORY[result.category]
    assert result.language == language
    assert result.indicators.trafficking_type in ("sex", "labor", "both", "none", "unknown")
    assert all(0 <= s.start < s.end <= len(text) for s in result.spans)
    assert classify_text(text, language, ruleset) == result


@PROPS
@given(text=TEXT, subject=st.one_of(st.none(), ANY_TEXT), channel=st.sampled_from(list(Channel)),
       flags=st.lists(st.sampled_from(["danger_key", "danger_now", "missed_call", "voicemail", "interpreter"]),
                      max_size=3, unique=True))
def test_classify_honours_the_danger_flags_for_any_text(text: str, subject: str | None, channel: Channel,
                                                        flags: list[str], ruleset: Ruleset) -> None:
    signal = Signal(channel=channel, external_id="prop-1", received_at=NOW, text=clean_text(text),
                    subject=subject, flags=tuple(flags))
    result = classify(signal, ruleset)
    assert result.category in CATEGORIES and result.urgency in URGENCY_BY_CATEGORY[result.category] | (
        {"normal"} if "missed_call" in flags else set())  # a missed call with no message: call back, normal
    if {"danger_key", "danger_now"} & set(flags):
        assert (result.category, result.urgency) == ("crisis", "immediate")


def test_the_crisis_phrases_are_crises_alone(ruleset: Ruleset) -> None:
    for phrase in CRISIS_PHRASES:
        result = classify_text(phrase, "en", ruleset)
        assert result.category == "crisis", phrase
        assert not any(m.startswith("model.") for m in result.matched), f"{phrase!r}: the rules alone must say so"


@PROPS
@given(text=st.one_of(WORDY_TEXT, ANY_TEXT), phrase=st.sampled_from(CRISIS_PHRASES), plea_first=st.booleans())
def test_a_crisis_plea_as_its_own_message_is_a_crisis_unless_words_argue_against(
        text: str, phrase: str, plea_first: bool, ruleset: Ruleset) -> None:
    messages = [phrase, text] if plea_first else [text, phrase]
    result = classify_conversation(messages, "en", ruleset)
    against = set(result.matched) & ruleset.against_crisis
    assert result.category == "crisis" or against, (result.category, result.matched)


@PROPS
@given(earlier=WORDY_TEXT, later=st.lists(st.one_of(WORDY_TEXT, ANY_TEXT), min_size=1, max_size=3))
def test_a_conversation_never_becomes_less_severe(earlier: str, later: list[str], ruleset: Ruleset) -> None:
    previous = classify_text(earlier, "en", ruleset)
    result = classify_conversation([earlier, *later], "en", ruleset, previous=previous)
    assert result.severity() >= previous.severity()
    if previous.category == "crisis":
        assert result.category == "crisis"


@FEW
@given(text=HUGE_TEXT, phrase=st.sampled_from(CRISIS_PHRASES))
def test_huge_texts_are_classified_and_a_plea_up_front_is_still_read(text: str, phrase: str, ruleset: Ruleset
                                                                     ) -> None:
    result = classify_text(phrase + "\n" + text, "en", ruleset)
    assert result.category in CATEGORIES
    assert result.category == "crisis" or set(result.matched) & ruleset.against_crisis
