"""Case numbers a contact can read out on the phone.

Format like HT-7K3M-9QXD-4: 8 random Crockford base-32 symbols (no I, L, O, U: nothing to confuse
with 1 or 0) plus a Luhn mod-32 check symbol that catches any single mistyped symbol and most swapped
neighbours.
Random, not sequential: a case number reveals neither volume nor order.
"""

from __future__ import annotations

import re
import secrets
import uuid

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_N = len(ALPHABET)
_PATTERN = re.compile(r"^HT-?([0-9A-Z]{4})-?([0-9A-Z]{4})-?([0-9A-Z])$")


def _check_symbol(body: str) -> str:
    """Luhn mod N: double every second symbol from the right, sum digit-wise in base N."""
    factor, total = 2, 0
    for ch in reversed(body):
        addend = factor * ALPHABET.index(ch)
        factor = 1 if factor == 2 else 2
        total += addend // _N + addend % _N
    return ALPHABET[(_N - total % _N) % _N]


def new_case_number() -> str:
    body = "".join(secrets.choice(ALPHABET) for _ in range(8))
    return f"HT-{body[:4]}-{body[4:]}-{_check_symbol(body)}"


def new_case_id() -> str:
    return uuid.uuid4().hex


def normalize_case_number(text: str) -> str | None:
    """Canonical form of a case number as a person typed it, or None if it is not valid."""
    t = text.strip().upper().replace(" ", "")
    t = t.replace("O", "0").replace("I", "1").replace("L", "1")
    m = _PATTERN.match(t)
    if not m:
        return None
    body, check = m.group(1) + m.group(2), m.group(3)
    if any(ch not in ALPHABET for ch in body + check) or _check_symbol(body) != check:
        return None
    return f"HT-{body[:4]}-{body[4:]}-{check}"


_IN_TEXT = re.compile(r"\bHT[-\s]?[0-9A-Z]{4}[-\s]?[0-9A-Z]{4}[-\s]?[0-9A-Z]\b", re.IGNORECASE)


def find_case_numbers(text: str) -> list[str]:
    """Valid case numbers quoted in a text, canonical, in order of appearance."""
    out: list[str] = []
    for m in _IN_TEXT.finditer(text):
        n = normalize_case_number(m.group(0))
        if n and n not in out:
            out.append(n)
    return out
