"""Per-class precision/recall/F1, crisis recall, macro-F1, urgency accuracy and the confusion
matrix of the engine on a labelled JSONL corpus. Pure apart from reading the corpus file."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .result import CATEGORIES, URGENCIES


class CorpusError(ValueError):
    """A corpus line that cannot be used, naming file and line."""


@dataclass(frozen=True)
class Labelled:
    id: str
    channel: str
    text: str
    subject: str | None
    category: str
    urgency: str
    minor_involved: bool | None
    trafficking_type: str | None
    language: str | None
    split: str | None


@dataclass(frozen=True)
class ClassScore:
    precision: float
    recall: float
    f1: float
    support: int


@dataclass
class Report:
    n: int
    per_class: dict[str, ClassScore]
    macro_f1: float
    accuracy: float
    crisis_recall: float
    urgency_accuracy: float
    minor_accuracy: float | None
    confusion: dict[str, dict[str, int]]
    by_language: dict[str, float] = field(default_factory=dict)
    missed_crises: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "per_class": {c: vars(s) for c, s in self.per_class.items()},
            "macro_f1": self.macro_f1,
            "accuracy": self.accuracy,
            "crisis_recall": self.crisis_recall,
            "urgency_accuracy": self.urgency_accuracy,
            "minor_accuracy": self.minor_accuracy,
            "confusion": self.confusion,
            "by_language": self.by_language,
            "missed_crises": self.missed_crises,
        }


def load_corpus(path: Path, split: str | None = None) -> tuple[list[Labelled], list[str]]:
    """Items (of one split, or all) and one error message per unusable line."""
    items: list[Labelled] = []
    errors: list[str] = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise CorpusError(f"{path}: cannot read ({exc.__class__.__name__})") from exc
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            d = json.loads(line)
            if not isinstance(d, dict):
                raise ValueError("not a JSON object")
            if not isinstance(d.get("text"), str):
                raise ValueError("'text' must be a string")
            if d.get("category") not in CATEGORIES:
                raise ValueError(f"'category' must be one of {', '.join(CATEGORIES)}")
            if d.get("urgency") not in URGENCIES:
                raise ValueError(f"'urgency' must be one of {', '.join(URGENCIES)}")
        except ValueError as exc:
            errors.append(f"{path}:{n}: {exc}")
            continue
        except RecursionError:
            errors.append(f"{path}:{n}: JSON nested too deeply")
            continue
        if split and split != "all" and d.get("split") != split:
            continue
        items.append(Labelled(
            id=str(d.get("id", n)), channel=str(d.get("channel", "sms")), text=d["text"],
            subject=d.get("subject"), category=d["category"], urgency=d["urgency"],
            minor_involved=d.get("minor_involved"), trafficking_type=d.get("trafficking_type"),
            language=d.get("language"), split=d.get("split"),
        ))
    return items, errors


def _ratio(a: int, b: int) -> float:
    return round(a / b, 4) if b else 0.0


def score(gold: Sequence[str], pred: Sequence[str], gold_urg: Sequence[str], pred_urg: Sequence[str],
          ids: Sequence[str] | None = None, languages: Sequence[str | None] | None = None,
          gold_minor: Sequence[bool | None] | None = None,
          pred_minor: Sequence[bool] | None = None) -> Report:
    n = len(gold)
    confusion = {g: {p: 0 for p in CATEGORIES} for g in CATEGORIES}
    for g, p in zip(gold, pred, strict=True):
        confusion[g][p] += 1
    per_class: dict[str, ClassScore] = {}
    for c in CATEGORIES:
        tp = confusion[c][c]
        predicted = sum(confusion[g][c] for g in CATEGORIES)
        actual = sum(confusion[c].values())
        prec, rec = _ratio(tp, predicted), _ratio(tp, actual)
        f1 = round(2 * prec * rec / (prec + rec), 4) if prec + rec else 0.0
        per_class[c] = ClassScore(prec, rec, f1, actual)
    present = [c for c in CATEGORIES if per_class[c].support]
    macro = round(sum(per_class[c].f1 for c in present) / len(present), 4) if present else 0.0
    by_lang: dict[str, list[int]] = {}
    for i, lang in enumerate(languages or []):
        hit = by_lang.setdefault(lang or "?", [0, 0])
        hit[0] += gold[i] == pred[i]
        hit[1] += 1
    minor_acc = None
    if gold_minor is not None and pred_minor is not None:
        pairs = [(g, p) for g, p in zip(gold_minor, pred_minor, strict=True) if g is not None]
        minor_acc = _ratio(sum(g == p for g, p in pairs), len(pairs)) if pairs else None
    return Report(
        n=n,
        per_class=per_class,
        macro_f1=macro,
        accuracy=_ratio(sum(g == p for g, p in zip(gold, pred, strict=True)), n),
        crisis_recall=per_class["crisis"].recall,
        urgency_accuracy=_ratio(sum(g == p for g, p in zip(gold_urg, pred_urg, strict=True)), n),
        minor_accuracy=minor_acc,
        confusion=confusion,
        by_language={k: _ratio(v[0], v[1]) for k, v in sorted(by_lang.items())},
        missed_crises=[ids[i] for i in range(n) if ids and gold[i] == "crisis" and pred[i] != "crisis"],
    )


def format_report(r: Report) -> str:
    abbrev = {"crisis": "cri", "tip": "tip", "tta": "tta", "referral": "ref", "general": "gen",
              "at_risk": "risk", "unrelated": "unr"}
    lines = [f"{'class':<10} {'prec':>6} {'recall':>6} {'F1':>6} {'n':>5}"]
    for c, s in r.per_class.items():
        lines.append(f"{c:<10} {s.precision:>6.3f} {s.recall:>6.3f} {s.f1:>6.3f} {s.support:>5}")
    lines += [
        "",
        f"signals:          {r.n}",
        f"crisis recall:    {r.crisis_recall:.3f}",
        f"macro-F1:         {r.macro_f1:.3f}",
        f"accuracy:         {r.accuracy:.3f}",
        f"urgency accuracy: {r.urgency_accuracy:.3f}",
    ]
    if r.minor_accuracy is not None:
        lines.append(f"minor accuracy:   {r.minor_accuracy:.3f}")
    if r.by_language:
        lines.append("accuracy by language: " + ", ".join(f"{k} {v:.2f}" for k, v in r.by_language.items()))
    lines += ["", "confusion (rows = labelled, columns = predicted):",
              f"{'':<10}" + "".join(f"{abbrev[c]:>6}" for c in CATEGORIES)]
    for g in CATEGORIES:
        lines.append(f"{g:<10}" + "".join(f"{r.confusion[g][p]:>6}" for p in CATEGORIES))
    if r.missed_crises:
        lines.append(f"\nmissed crises: {', '.join(r.missed_crises)}")
    return "\n".join(lines)

