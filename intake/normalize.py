"""Normalisation shared by every channel: phone numbers, language, text."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

import phonenumbers

from .language import DEFAULT_LANGUAGES, CombinedLanguageDetector, Language

__all__ = [
    "DEFAULT_LANGUAGES",
    "Language",
    "LanguageDetector",
    "PhoneNumber",
    "clean_text",
    "normalize_phone",
]

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
# Lone surrogates arrive through JSON ("\\ud800") and cannot be encoded as UTF-8: every store,
# regex engine (RE2) and output would fail on them later, so they become U+FFFD here.
_SURROGATE = re.compile(r"[\ud800-\udfff]")


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
    """NFC-normalise, drop control characters (keep newlines/tabs), replace lone surrogates
    with U+FFFD, trim."""
    if not text:
        return ""
    # Control characters go before NFC: dropping one afterwards could leave a letter and its
    # accent side by side, uncomposed (then a second cleaning would change the text again).
    text = _CONTROL.sub("", _SURROGATE.sub("\ufffd", text))
    text = unicodedata.normalize("NFC", text.replace("\r\n", "\n").replace("\r", "\n"))
    return text.strip()[:max_chars].rstrip()  # rstrip: the cut may end on a space (then a second cleaning would differ)


class LanguageDetector(CombinedLanguageDetector):
    """The language detector every channel uses: script hints, keywords and py3langid restricted to
    the hotline's languages (see intake.language). `LanguageDetector()` uses the default set;
    `LanguageDetector(languages=("en", "es"))` narrows it.
    """
