"""Every labelled triage corpus under tests/corpus/ keeps the promises of its README.

The corpora train and measure triage, so a bad row is a silent error: a wrong urgency for its
category teaches the wrong thing, a real-looking phone number breaks confidentiality, and a text
that sits in a dev file and in a test file makes the held-aside figures worthless.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest

from intake.case_numbers import find_case_numbers
from triage.engine import analysed_text
from triage.result import CATEGORIES, URGENCIES
from triage.train import group_key

CORPUS_DIR = Path(__file__).resolve().parent / "corpus"
FILES = sorted(CORPUS_DIR.glob("signals*.jsonl"))
REQUIRED = {"id", "channel", "text", "language", "category", "urgency", "minor_involved", "trafficking_type",
            "split"}
OPTIONAL = {"subject", "hard"}
CHANNELS = {"sms", "voice", "email", "webform"}
LANGUAGES = {"en", "es", "fr", "pt", "zh", "vi", "ko", "ru", "ht", "tl", "ar"}
TYPES = {"sex", "labor", "both", "none", "unknown"}
SPLITS = {"dev", "test"}
# A North American number (area code, exchange, line) or a bare exchange-line pair.
PHONE = re.compile(r"(?<![\d-])(?:\(?\d{3}\)?[-. ]?)?(\d{3})[-. ](\d{4})(?![\d-])")
EMAIL = re.compile(r"[\w.+-]+@([\w-]+(?:\.[\w-]+)+)")
URL = re.compile(r"\b(?:https?://|www\.)([\w-]+(?:\.[\w-]+)+)", re.I)


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def key(row: dict) -> str:
    """The text as training reads and de-duplicates it (triage.train.group_key)."""
    return group_key(analysed_text(row.get("subject"), row["text"]))


def test_there_are_dev_and_test_corpora():
    names = {p.name for p in FILES}
    assert "signals.jsonl" in names
    splits = Counter(r["split"] for p in FILES for r in rows(p))
    assert splits["dev"] >= 1000 and splits["test"] >= 100, splits


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_every_row_follows_the_schema(path):
    problems = []
    for n, r in enumerate(rows(path), start=1):
        where = f"{path.name}:{n} ({r.get('id')})"
        keys = set(r)
        if REQUIRED - keys or keys - REQUIRED - OPTIONAL:
            missing, unknown = sorted(REQUIRED - keys), sorted(keys - REQUIRED - OPTIONAL)
            problems.append(f"{where}: keys missing {missing} / unknown {unknown}")
            continue
        for field, allowed in (("channel", CHANNELS), ("language", LANGUAGES), ("category", set(CATEGORIES)),
                               ("urgency", set(URGENCIES)), ("trafficking_type", TYPES), ("split", SPLITS)):
            if r[field] not in allowed:
                problems.append(f"{where}: {field}={r[field]!r}")
        if not isinstance(r["minor_involved"], bool):
            problems.append(f"{where}: minor_involved must be true/false")
        if ("subject" in r) != (r["channel"] == "email"):
            problems.append(f"{where}: a subject belongs to emails, and every email has one")
        if not r["text"].strip():
            problems.append(f"{where}: empty text")
    assert not problems, "\n".join(problems[:20])


def allowed_urgencies(category: str, minor: bool) -> set[str]:
    """The DESIGN §1 table as the README states it (tip's imminent harm cannot be checked)."""
    return {
        "crisis": {"immediate"},
        "tip": {"high"} if minor else {"high", "normal"},
        "tta": {"low", "high"},
        "referral": {"normal"},
        "general": {"low"},
        "unrelated": {"low"},
        "at_risk": {"high"} if minor else {"normal"},
    }[category]


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_urgency_and_type_follow_the_table(path):
    bad = [f"{r['id']}: {r['category']}/{r['urgency']} minor={r['minor_involved']}" for r in rows(path)
           if r["urgency"] not in allowed_urgencies(r["category"], r["minor_involved"])]
    bad += [f"{r['id']}: unrelated but trafficking_type={r['trafficking_type']}" for r in rows(path)
            if r["category"] == "unrelated" and r["trafficking_type"] != "none"]
    assert not bad, "\n".join(bad[:20])


def test_ids_are_unique_across_every_file():
    ids = Counter(r["id"] for p in FILES for r in rows(p))
    assert not [i for i, n in ids.items() if n > 1]


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_texts_are_unique_within_a_file(path):
    seen = Counter(key(r) for r in rows(path))
    assert not [k[:60] for k, n in seen.items() if n > 1]


def test_no_test_text_is_also_a_dev_text():
    """A held-aside row whose text (folded, spaces collapsed) is also in any dev file would be
    trained on, and its figure would mean nothing."""
    dev = {key(r) for p in FILES for r in rows(p) if r["split"] == "dev"}
    leaked = [r["id"] for p in FILES for r in rows(p) if r["split"] == "test" and key(r) in dev]
    assert not leaked


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_contact_details_are_fictional(path):
    """Phone numbers only in 555-01xx, addresses and sites only at example.org / example.com,
    case numbers only valid HT- numbers."""
    bad = []
    for r in rows(path):
        text = r.get("subject", "") + "\n" + r["text"]
        for m in PHONE.finditer(text):
            if not (m.group(1) == "555" and m.group(2).startswith("01")):
                bad.append(f"{r['id']}: phone-like {m.group(0)!r}")
        for m in EMAIL.finditer(text):
            if not m.group(1).lower().endswith(("example.org", "example.com")):
                bad.append(f"{r['id']}: address at {m.group(1)!r}")
        for m in URL.finditer(text):
            if not m.group(1).lower().rstrip(".").endswith(("example.org", "example.com")):
                bad.append(f"{r['id']}: site {m.group(1)!r}")
        for m in re.finditer(r"\bHT[- ]?\w{4}[- ]?\w{4}[- ]?\w\b", text, re.I):
            if not find_case_numbers(m.group(0)):
                bad.append(f"{r['id']}: case number {m.group(0)!r} fails its check symbol")
    assert not bad, "\n".join(bad[:20])
