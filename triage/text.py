"""Text preparation for matching: lower-case and strip accents without changing offsets."""

from __future__ import annotations

import unicodedata
from functools import lru_cache

MAX_ANALYSED_CHARS = 100_000


@lru_cache(maxsize=4096)
def _fold_char(ch: str) -> str:
    if "\ud800" <= ch <= "\udfff":  # a lone surrogate: RE2 (and any UTF-8 output) cannot take it
        return "\ufffd"
    low = ch.lower()
    if len(low) != 1:  # e.g. 'İ'.lower() is two code points: keep offsets 1:1
        low = ch
    base = unicodedata.normalize("NFD", low)[0]
    # Only strip marks from Latin letters; other scripts keep their characters as written.
    if base != low and base.isascii():
        return base
    return "'" if low in "\u2019\u2018\u02bc`" else low


def fold(text: str) -> str:
    """Lower-case, accents removed from Latin letters, curly apostrophes straightened.

    One character in, one character out, so a match in the folded text is a span of the
    original text: 'Ayúdame' -> 'ayudame', 'ESTÁ' -> 'esta', 'I’m' -> "i'm".
    """
    return "".join(_fold_char(c) for c in text[:MAX_ANALYSED_CHARS])


def fold_pattern(pattern: str) -> str:
    """Fold a regex the way texts are folded, but leave escapes alone: \\W must stay \\W
    (lower-casing it would turn "not a word character" into "a word character")."""
    out: list[str] = []
    escaped = False
    for ch in pattern:
        if escaped:
            out.append(ch)
            escaped = False
        elif ch == "\\":
            out.append(ch)
            escaped = True
        else:
            out.append(_fold_char(ch))
    return "".join(out)
