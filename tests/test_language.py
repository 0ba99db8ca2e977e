"""Language detection on short hotline messages: table-driven cases and a labelled corpus."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from intake.language import DEFAULT_LANGUAGES, CombinedLanguageDetector, Language
from intake.normalize import Language as NormalizeLanguage
from intake.normalize import LanguageDetector

CORPUS = Path(__file__).parent / "corpus" / "languages.jsonl"
SHORT_WORDS = 5


@pytest.fixture(scope="module")
def detector() -> CombinedLanguageDetector:
    return CombinedLanguageDetector()


def _corpus() -> list[dict[str, str]]:
    with CORPUS.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _is_short(text: str) -> bool:
    return len(text.split()) <= SHORT_WORDS


# --- what langdetect got confidently wrong ------------------------------------------------------

@pytest.mark.parametrize(("text", "lang"), [
    ("je suis en danger", "fr"),            # langdetect: af 0.9999
    ("我需要帮助", "zh"),                     # langdetect: ko 0.9999
    ("necesito ayuda por favor", "es"),     # langdetect: it
    ("помогите мне", "ru"),                 # langdetect: mk
    ("necesito ayuda", "es"),
    ("preciso de ajuda", "pt"),
    ("mwen bezwen èd", "ht"),
    ("mwen bezwen ed", "ht"),
    ("kailangan ko ng tulong", "tl"),
    ("tôi cần giúp đỡ", "vi"),
    ("toi can giup do", "vi"),
    ("도와주세요", "ko"),
    ("أحتاج مساعدة", "ar"),
    ("help", "en"),
    ("HELP", "en"),
    ("ayuda", "es"),
    ("AYUDAAAA", "es"),
    ("aidez moi svp", "fr"),
    ("socorro por favor", "pt"),
    ("tulong po", "tl"),
    ("ede m tanpri", "ht"),
])
def test_short_help_requests(detector, text, lang):
    result = detector.detect(text)
    assert result.code == lang, result
    assert result.confidence >= 0.5, result


# --- writing systems ----------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "lang"), [
    ("救命", "zh"),
    ("請幫幫我", "zh"),                       # traditional characters
    ("我們每天工作十四個小時", "zh"),
    ("살려주세요", "ko"),
    ("мне нужна помощь", "ru"),
    ("ПОМОГИТЕ", "ru"),
    ("ساعدوني", "ar"),
    ("cứu tôi với", "vi"),                  # ư ơ ă đ ạ ệ ... only Vietnamese writes
    ("chủ không trả lương", "vi"),
    ("ayuda 🙏🙏 555-0188", "es"),           # emoji and a number around a word
])
def test_script_decides(detector, text, lang):
    result = detector.detect(text)
    assert result.code == lang, result
    assert result.confidence >= 0.7, result


@pytest.mark.parametrize("text", [
    "助けてください",                          # Japanese: kana among the ideographs
    "ช่วยด้วย",                               # Thai
    "Βοήθεια παρακαλώ",                      # Greek
    "मदद करो",                               # Devanagari
    "עזרה בבקשה",                            # Hebrew
])
def test_scripts_none_of_our_languages_use_are_und(detector, text):
    assert detector.detect(text) == Language("und", 0.0)


@pytest.mark.parametrize(("text", "lang"), [
    ("допоможіть мені будь ласка", "ru"),    # Ukrainian letters і ї є ґ
    ("من به کمک نیاز دارم", "ar"),           # Persian letters پ چ ژ گ ک ی
    ("Имам нужда от помощ, шефът ми не ми плаща заплатата вече три месеца", "ru"),  # Bulgarian
])
def test_neighbouring_languages_in_our_scripts_get_a_low_confidence(detector, text, lang):
    result = detector.detect(text)
    assert result.code in (lang, "und")
    assert result.confidence < 0.5, result


# --- nothing to go on ---------------------------------------------------------------------------

@pytest.mark.parametrize("text", [
    "",
    "   \n\t ",
    "123",
    "555-0123",
    "!!!???...",
    "😀😀🙏❤️",
    "\u200b\u200b",
    "a",
    "k",
    "https://example.com/help",
    "aGVsbG8gd29ybGQgdGhpcyBpcyBhIHRlc3Q=",
    bytes(range(256)).decode("latin-1"),
    bytes(range(256)).decode("utf-8", errors="replace"),
    "\x00\x01\x02 hola \x03\x04\x05\x06",
])
def test_und_when_there_is_nothing_to_go_on(detector, text):
    assert detector.detect(text) == Language("und", 0.0)


@pytest.mark.parametrize("text", [None, 123, b"help"])
def test_non_text_input_is_und(detector, text):
    assert detector.detect(text) == Language("und", 0.0)


@pytest.mark.parametrize("text", ["ok", "ok?", "no", "si", "taxi", "hotel", "lol", "hmm", "Juan Perez",
                                  "asdfghjkl", "qwertyuiop asdf"])
def test_ambiguous_one_word_texts_are_und_or_a_low_confidence_guess(detector, text):
    result = detector.detect(text)
    assert result.code == "und" or result.confidence < 0.5, result


def test_ok_question_stays_english_with_low_confidence(detector):
    result = detector.detect("ok?")
    assert result.code == "en"
    assert 0.0 < result.confidence < 0.5


@pytest.mark.parametrize("text", [
    "Ich brauche Hilfe, mein Chef bezahlt mich nicht",
    "Ich bin in Gefahr",
    "ho bisogno di aiuto per favore, non posso uscire di casa",
    "Il mio capo non mi paga e ha il mio passaporto",
    "Potrzebuję pomocy, szef mi nie płaci",
    "pomóżcie mi",
    "saya perlu bantuan, bos saya tidak membayar gaji saya",
    "Mijn baas betaalt niet en heeft mijn paspoort",
    "Patronul meu nu ma plateste",
    "Patronim para ödemiyor ve pasaportumu aldı",
])
def test_languages_we_do_not_list_are_not_guessed_with_confidence(detector, text):
    result = detector.detect(text)
    assert result.code == "und" or result.confidence < 0.5, result


# --- mixed, long and odd texts ------------------------------------------------------------------

@pytest.mark.parametrize(("text", "lang"), [
    ("I need help, necesito ayuda por favor mi jefe no me paga", "es"),
    ("Hi, I am from Honduras y necesito ayuda porque mi patron no me paga hace 3 meses", "es"),
    ("hola I need help please my boss no me paga", "en"),
    ("my sister is in danger and her boss took her passport, elle a peur", "en"),
])
def test_mixed_messages_give_the_dominant_language_with_moderate_confidence(detector, text, lang):
    result = detector.detect(text)
    assert result.code == lang, result
    assert 0.5 <= result.confidence < 0.95, result


@pytest.mark.parametrize(("text", "lang"), [
    ("I work at a nail salon and they keep my money. " * 25_000, "en"),
    ("necesito ayuda por favor, " + "x" * 1_000_000, "es"),
    ("a" * 1_000_000, "und"),
    ("😀" * 1_000_000, "und"),
    (bytes(range(256)).decode("latin-1") * 4_000, "und"),
])
def test_a_megabyte_of_text_returns_quickly_and_sensibly(detector, text, lang):
    assert len(text) >= 1_000_000
    detector.detect("warm up the models")
    started = time.perf_counter()
    result = detector.detect(text)
    elapsed = time.perf_counter() - started
    assert result.code == lang, result
    assert elapsed < 0.25, f"{elapsed:.3f}s"


def test_only_the_first_max_chars_are_analysed():
    small = CombinedLanguageDetector(max_chars=30)
    assert small.detect("necesito ayuda por favor " + "I need help with my boss. " * 1000).code == "es"


def test_confidence_is_a_rounded_probability(detector):
    for row in _corpus():
        result = detector.detect(row["text"])
        assert 0.0 <= result.confidence <= 1.0
        assert result.confidence == round(result.confidence, 3)
        assert (result.code == "und") == (result.confidence == 0.0)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_any_text_gives_a_configured_language_or_und(text):
    detector = _shared_detector()
    result = detector.detect(text)
    assert result.code in (*DEFAULT_LANGUAGES, "und")
    assert 0.0 <= result.confidence <= 1.0


_SHARED: list[CombinedLanguageDetector] = []


def _shared_detector() -> CombinedLanguageDetector:
    if not _SHARED:
        _SHARED.append(CombinedLanguageDetector())
    return _SHARED[0]


# --- configuration, determinism, threads ---------------------------------------------------------

def test_candidates_come_from_the_constructor():
    en_es = CombinedLanguageDetector(languages=("en", "es"))
    assert en_es.languages == ("en", "es")
    assert en_es.detect("necesito ayuda por favor").code == "es"
    assert en_es.detect("我需要帮助") == Language("und", 0.0)          # no configured language writes Han
    french = en_es.detect("je suis arrivé avec un contrat mais le travail n'est pas celui qu'on m'avait promis")
    assert french.code == "und" or french.confidence < 0.5
    for row in _corpus():
        assert en_es.detect(row["text"]).code in ("en", "es", "und")


@pytest.mark.parametrize("languages", [(), ("",)])
def test_languages_must_be_given(languages):
    with pytest.raises(ValueError):
        CombinedLanguageDetector(languages=languages)


def test_importing_and_constructing_loads_no_model():
    code = ("import sys; from intake.language import CombinedLanguageDetector; "
            "from intake.normalize import LanguageDetector; CombinedLanguageDetector(); LanguageDetector(); "
            "print(sorted(m for m in ('py3langid', 'langdetect', 'numpy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "[]"


def test_same_text_same_answer_across_calls_and_instances(detector):
    rows = _corpus()[::7] + [{"text": t} for t in ("ok?", "no", "Help me por favor", "si", "hola")]
    first = [detector.detect(r["text"]) for r in rows]
    for _ in range(3):
        assert [detector.detect(r["text"]) for r in rows] == first
    fresh = CombinedLanguageDetector()
    assert [fresh.detect(r["text"]) for r in rows] == first


def test_one_detector_serves_many_threads(detector):
    texts = [r["text"] for r in _corpus()]
    expected = [detector.detect(t) for t in texts]
    shared = CombinedLanguageDetector()   # models not loaded yet: the threads race to load them
    results: dict[int, list[Language]] = {}
    start = threading.Barrier(8)

    def work(n: int) -> None:
        start.wait()
        results[n] = [shared.detect(t) for t in texts]

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert len(results) == 8
    assert all(r == expected for r in results.values())


def test_tie_breaker_is_optional_and_deterministic():
    with_langdetect = CombinedLanguageDetector(tie_breaker=True)
    for text in ("socorro por favor", "Help me por favor", "no", "vin chèche m vit"):
        first = with_langdetect.detect(text)
        assert [with_langdetect.detect(text) for _ in range(3)] == [first] * 3
        assert first.code in (*DEFAULT_LANGUAGES, "und")


def test_normalize_keeps_the_names_the_channels_use():
    detector = LanguageDetector()
    assert isinstance(detector, CombinedLanguageDetector)
    assert detector.languages == DEFAULT_LANGUAGES
    assert NormalizeLanguage is Language
    assert LanguageDetector(languages=("en", "es")).detect("ayuda") == Language("es", 0.95)


# --- the labelled corpus ------------------------------------------------------------------------

def test_corpus_is_large_varied_and_uses_fictional_numbers():
    rows = _corpus()
    assert len(rows) >= 300
    per_lang = Counter(r["language"] for r in rows)
    assert set(per_lang) == set(DEFAULT_LANGUAGES)
    for lang in DEFAULT_LANGUAGES:
        texts = [r["text"] for r in rows if r["language"] == lang]
        assert len(texts) >= 20, lang
        assert 2 * sum(_is_short(t) for t in texts) >= len(texts), lang
    assert len({r["text"] for r in rows}) == len(rows)
    for r in rows:
        for number in re.findall(r"\d[\d\s().-]{5,}\d", r["text"]):
            assert re.fullmatch(r"(?:\(?\d{3}\)?[\s.-]?)?555-01\d\d", number.strip()), number


def test_corpus_accuracy(detector):
    rows = _corpus()
    right: Counter[str] = Counter()
    total: Counter[str] = Counter()
    short_right = short_total = 0
    wrong = []
    for r in rows:
        result = detector.detect(r["text"])
        ok = result.code == r["language"]
        total[r["language"]] += 1
        right[r["language"]] += ok
        if _is_short(r["text"]):
            short_total += 1
            short_right += ok
        if not ok:
            wrong.append((r["language"], result, r["text"]))
    overall = sum(right.values()) / len(rows)
    short = short_right / short_total
    print(f"\nlanguage detection on {len(rows)} texts: {overall:.1%} overall, "
          f"{short:.1%} of {short_total} short (<= {SHORT_WORDS} words)")
    for lang in DEFAULT_LANGUAGES:
        print(f"  {lang}: {right[lang]}/{total[lang]} = {right[lang] / total[lang]:.1%}")
    for lang, result, text in wrong:
        print(f"  wrong: {lang} -> {result.code} {result.confidence} {text!r}")
    assert overall >= 0.95
    assert short >= 0.95
    assert all(right[lang] / total[lang] >= 0.85 for lang in DEFAULT_LANGUAGES)
