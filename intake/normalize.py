"""Normalisation shared by every channel: phone numbers, language, text."""

from __future__ import annotations

import re
import threading
import unicodedata
from dataclasses import dataclass

import phonenumbers

# Short texts fool statistical detectors; these words decide them instead.
_SHORT_WORDS: dict[str, frozenset[str]] = {
    "en": frozenset({"help", "hi", "hello", "yes", "no", "please", "thanks", "thank", "you", "need",
                     "i", "me", "am", "is", "the", "my", "stop", "start", "info", "befree", "ok"}),
    "es": frozenset({"ayuda", "hola", "si", "sí", "por", "favor", "gracias", "necesito", "yo", "mi",
                     "estoy", "es", "el", "la", "ayudame", "ayúdame", "auxilio", "socorro", "info"}),
}
_MIN_LETTERS_FOR_DETECTOR = 20
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


@dataclass(frozen=True)
class PhoneNumber:
    e164: str
    region: str | None


def normalize_phone(raw: str | None, default_region: str = "US") -> PhoneNumber | None:
    """Return the E.164 form and region of a phone number, or None when it is not one.

    Short codes and alphanumeric senders are kept as given (stripped): they are still the
    identity we reply to.
    """
    if raw is None:
        return None
    raw = raw.strip()
    if not raw:
        return None
    try:
        parsed = phonenumbers.parse(raw, default_region)
    except phonenumbers.NumberParseException:
        return PhoneNumber(e164=raw[:64], region=None)
    if not phonenumbers.is_possible_number(parsed):
        return PhoneNumber(e164=raw[:64], region=None)
    e164 = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    # Unassigned ranges (e.g. the fictional 555-01xx) have no region of their own; the
    # country code's main region is still the best guess for routing.
    region = phonenumbers.region_code_for_number(parsed) or \
        phonenumbers.region_code_for_country_code(parsed.country_code)
    return PhoneNumber(e164=e164, region=None if region in (None, "ZZ") else region)


def clean_text(text: str | None, max_chars: int = 100_000) -> str:
    """NFC-normalise, drop control characters (keep newlines/tabs), trim."""
    if not text:
        return ""
    text = unicodedata.normalize("NFC", text)
    text = _CONTROL.sub("", text)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text.strip()[:max_chars]


@dataclass(frozen=True)
class Language:
    code: str
    confidence: float


class LanguageDetector:
    """langdetect with a fixed seed (same text -> same answer) and a word-list fallback.

    Loading langdetect's profiles takes a moment, so it happens once, on first use.
    """

    def __init__(self, seed: int = 0) -> None:
        self._seed = seed
        self._factory = None
        self._lock = threading.Lock()

    def _get_factory(self):  # type: ignore[no-untyped-def]
        with self._lock:
            if self._factory is None:
                from langdetect.detector_factory import PROFILES_DIRECTORY, DetectorFactory

                factory = DetectorFactory()
                factory.load_profile(PROFILES_DIRECTORY)
                factory.set_seed(self._seed)
                self._factory = factory
            return self._factory

    def detect(self, text: str) -> Language:
        words = re.findall(r"[^\W\d_]+", text.lower())
        letters = sum(len(w) for w in words)
        if letters < _MIN_LETTERS_FOR_DETECTOR:
            return self._short_text(words)
        from langdetect.lang_detect_exception import LangDetectException

        try:
            detector = self._get_factory().create()
            detector.append(text)
            probs = detector.get_probabilities()
        except LangDetectException:
            return self._short_text(words)
        if not probs:
            return Language("und", 0.0)
        best = probs[0]
        return Language(best.lang, round(float(best.prob), 3))

    @staticmethod
    def _short_text(words: list[str]) -> Language:
        if not words:
            return Language("und", 0.0)
        scores = {lang: sum(w in vocab for w in words) for lang, vocab in _SHORT_WORDS.items()}
        lang, hits = max(scores.items(), key=lambda kv: kv[1])
        tied = sum(1 for v in scores.values() if v == hits) > 1
        if hits == 0 or tied:
            return Language("und", 0.0)
        return Language(lang, round(min(0.9, 0.5 + 0.2 * hits / len(words)), 3))
