"""Load and compile rule files once; classify a signal into category + urgency + why.

Pure: no I/O besides reading the rule files in load_ruleset().
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from intake.signal import Signal

from .result import CATEGORIES, Category, Indicators, Span, TraffickingType, TriageResult, Urgency

# When several categories match, the most urgent need wins.
PRECEDENCE: tuple[Category, ...] = ("crisis", "tip", "at_risk", "referral", "tta", "general", "unrelated")
DEFAULT_CATEGORY: Category = "general"


class RuleError(ValueError):
    """A rule file problem, naming the file, rule id and problem."""


@dataclass(frozen=True)
class Rule:
    id: str
    category: Category
    lang: str | None
    patterns: tuple[re.Pattern[str], ...]
    source: str


@dataclass(frozen=True)
class Ruleset:
    version: str
    rules: tuple[Rule, ...]
    minor: tuple[re.Pattern[str], ...]
    sex: tuple[re.Pattern[str], ...]
    labor: tuple[re.Pattern[str], ...]


def default_rules_dir() -> Path:
    return Path(__file__).resolve().parent / "rules"


def _compile(patterns: Any, where: str) -> tuple[re.Pattern[str], ...]:
    if not isinstance(patterns, list) or not patterns or not all(isinstance(p, str) for p in patterns):
        raise RuleError(f"{where}: 'patterns' must be a non-empty list of strings")
    out = []
    for i, p in enumerate(patterns):
        try:
            out.append(re.compile(p, re.IGNORECASE | re.UNICODE))
        except re.error as exc:
            raise RuleError(f"{where}: pattern {i} does not compile: {exc}") from exc
    return tuple(out)


def load_ruleset(rules_dir: Path | None = None) -> Ruleset:
    """Read every *.yaml under rules_dir; raise RuleError naming file, rule and problem."""
    rules_dir = rules_dir or default_rules_dir()
    files = sorted(rules_dir.glob("*.yaml"))
    if not files:
        raise RuleError(f"{rules_dir}: no rule files (*.yaml) found")
    versions: list[str] = []
    rules: list[Rule] = []
    seen: dict[str, str] = {}
    ind: dict[str, list[re.Pattern[str]]] = {"minor": [], "sex": [], "labor": []}
    for path in files:
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = f" line {mark.line + 1}" if mark else ""
            raise RuleError(f"{path}:{line}: invalid YAML ({getattr(exc, 'problem', exc)})") from exc
        if not isinstance(data, dict):
            raise RuleError(f"{path}: top level must be a mapping with 'version' and 'rules'")
        unknown = set(data) - {"version", "rules", "indicators"}
        if unknown:
            raise RuleError(f"{path}: unknown top-level key(s): {', '.join(sorted(unknown))}")
        if "version" in data:
            versions.append(str(data["version"]))
        for n, item in enumerate(data.get("rules") or []):
            if not isinstance(item, dict):
                raise RuleError(f"{path}: rules[{n}]: must be a mapping")
            rid = item.get("id")
            where = f"{path}: rule {rid or f'#{n}'}"
            if not isinstance(rid, str) or not rid:
                raise RuleError(f"{where}: missing 'id'")
            extra = set(item) - {"id", "category", "lang", "patterns"}
            if extra:
                raise RuleError(f"{where}: unknown key(s): {', '.join(sorted(extra))}")
            if rid in seen:
                raise RuleError(f"{where}: duplicate rule id (also in {seen[rid]})")
            if item.get("category") not in CATEGORIES:
                raise RuleError(f"{where}: category {item.get('category')!r} is not one of {', '.join(CATEGORIES)}")
            seen[rid] = str(path)
            rules.append(Rule(rid, item["category"], item.get("lang"), _compile(item.get("patterns"), where),
                              str(path)))
        for key, pats in (data.get("indicators") or {}).items():
            if key not in ind:
                raise RuleError(f"{path}: indicators: unknown indicator {key!r} (expected minor, sex, labor)")
            ind[key].extend(_compile(pats, f"{path}: indicators.{key}"))
    return Ruleset(
        version="+".join(versions) or "unversioned",
        rules=tuple(rules),
        minor=tuple(ind["minor"]),
        sex=tuple(ind["sex"]),
        labor=tuple(ind["labor"]),
    )


def _any(patterns: tuple[re.Pattern[str], ...], text: str) -> bool:
    return any(p.search(text) for p in patterns)


def indicators_for(text: str, ruleset: Ruleset) -> Indicators:
    sex, labor = _any(ruleset.sex, text), _any(ruleset.labor, text)
    ttype: TraffickingType = "both" if sex and labor else "sex" if sex else "labor" if labor else "unknown"
    return Indicators(minor_involved=_any(ruleset.minor, text), trafficking_type=ttype)


def urgency_for(category: Category, ind: Indicators) -> Urgency:
    """The hotline's default urgency per category, raised when a minor is involved."""
    if category == "crisis":
        return "immediate"
    if category in ("tip", "at_risk"):
        return "high" if ind.minor_involved else "normal"
    if category == "referral":
        return "normal"
    return "low"


def classify(signal: Signal, ruleset: Ruleset) -> TriageResult:
    text = "\n".join(t for t in (signal.subject, signal.text) if t)
    lang = signal.language
    spans: list[Span] = []
    matched: list[str] = []
    hit_categories: set[str] = set()
    for rule in ruleset.rules:
        if rule.lang and lang not in ("und", rule.lang) and signal.language_confidence >= 0.5:
            continue
        for pat in rule.patterns:
            m = pat.search(text)
            if m:
                spans.append(Span(rule=rule.id, start=m.start(), end=m.end()))
                if rule.id not in matched:
                    matched.append(rule.id)
                hit_categories.add(rule.category)
    category = next((c for c in PRECEDENCE if c in hit_categories), DEFAULT_CATEGORY)
    ind = indicators_for(text, ruleset)
    urgency = urgency_for(category, ind)
    why = [f"category {category} from " + (", ".join(r for r in matched if r.startswith(category + "."))
                                            or "no matching rule (default)")]
    if ind.minor_involved:
        why.append("minor involved")
    if ind.trafficking_type != "unknown":
        why.append(f"trafficking type {ind.trafficking_type}")
    why.append(f"urgency {urgency}")
    return TriageResult(
        category=category,
        urgency=urgency,
        language=lang,
        indicators=ind,
        matched=tuple(matched),
        spans=tuple(spans),
        explanation="; ".join(why),
        ruleset=ruleset.version,
    )
