"""Load and compile rule files once; classify a signal into category + urgency + why.

Pure: no I/O besides reading the rule files (and the learned model file) in load_ruleset().

Matching runs in two passes. All patterns go into one RE2 set (google-re2), which says in a
single linear pass which patterns can match; Python's `re` then runs only those, to find the
spans and apply negation. Patterns RE2 cannot compile (look-arounds) always run in `re`.
Text and patterns are folded the same way (lower case, Latin accents removed, one character
for one), so "AYÚDAME" matches "ayudame" and spans point into the original text.

A learned second opinion (triage/learned.py: n-gram logistic regression, scored with numpy)
reads every text too; `learned.combine` decides, as a pure function, where it may change the
rules' verdict. Its contribution is explained with the pseudo rule id `model.<category>`.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from intake.signal import Signal

from .indicators import location_hints, quoted_case_number
from .learned import Blend, Model, ModelError, Prediction, combine, contributions, load_model, predict
from .result import (
    CATEGORIES,
    Category,
    Indicators,
    Span,
    TraffickingType,
    TriageResult,
    Urgency,
)
from .text import fold, fold_pattern

try:  # google-re2 is a declared dependency; the engine still works (slower) without it.
    import re2 as _re2
except ImportError:  # pragma: no cover
    _re2 = None

RULE_KEYS = {"id", "lang", "patterns", "weight", "danger", "escalate", "negatable"}
INDICATORS = ("minor", "sex", "labor")
POLICY_KEYS = {"precedence", "thresholds", "default_category", "empty_category", "negation_window_chars",
               "negation_cues", "clause_breaks"}
_LETTER = re.compile(r"[^\W\d_]")


class RuleError(ValueError):
    """A rule file problem, naming the file, rule id and problem."""


class ModelFileError(RuleError, ModelError):
    """The learned model file is missing or unusable (names the file). A RuleError too, so
    every caller that reports rule problems cleanly (the CLI, the worker) reports this one."""


@dataclass(frozen=True)
class Rule:
    id: str
    category: Category
    lang: str | None
    weight: float
    danger: bool
    escalate: bool
    negatable: bool
    patterns: tuple[re.Pattern[str], ...]
    source: str


@dataclass(frozen=True)
class Policy:
    precedence: tuple[Category, ...]
    thresholds: dict[str, float]
    default_category: Category
    empty_category: Category
    negation_window_chars: int
    negation_cues: tuple[re.Pattern[str], ...]
    clause_breaks: str


@dataclass(frozen=True)
class Ruleset:
    version: str
    rules: tuple[Rule, ...]
    policy: Policy
    indicators: dict[str, tuple[re.Pattern[str], ...]]
    files: tuple[str, ...] = ()
    # (rule index or indicator name, pattern) for every pattern, and the RE2 prefilter over them.
    _slots: tuple[tuple[int | str, re.Pattern[str]], ...] = field(default=(), repr=False)
    _prefilter: Any = field(default=None, repr=False)
    _always: tuple[int, ...] = field(default=(), repr=False)
    # The learned second opinion (None: rules alone) and the rules that argue against crisis
    # (negative weight: negation, informational question, the past, safe now); when one fires,
    # the model needs a much higher probability to raise a crisis (Blend.crisis_vetoed).
    model: Model | None = None
    against_crisis: frozenset[str] = frozenset()

    def candidate_slots(self, folded: str) -> Sequence[int]:
        """Indexes of the patterns that may match (all of them without RE2)."""
        if self._prefilter is None:
            return range(len(self._slots))
        hits = self._prefilter.Match(folded)
        return sorted(set(hits).union(self._always))


def default_rules_dir() -> Path:
    return Path(__file__).resolve().parent / "rules"


def _compile_list(patterns: Any, where: str) -> tuple[re.Pattern[str], ...]:
    if not isinstance(patterns, list) or not patterns or not all(isinstance(p, str) for p in patterns):
        raise RuleError(f"{where}: 'patterns' must be a non-empty list of strings")
    out = []
    for i, p in enumerate(patterns):
        try:
            out.append(re.compile(fold_pattern(p), re.UNICODE))
        except re.error as exc:
            raise RuleError(f"{where}: pattern {i + 1} does not compile: {exc}") from exc
    return tuple(out)


def _load_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" line {mark.line + 1}:" if mark else ""
        raise RuleError(f"{path}:{line} invalid YAML ({getattr(exc, 'problem', None) or exc})") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise RuleError(f"{path}: cannot read ({exc.__class__.__name__})") from exc
    if not isinstance(data, dict):
        raise RuleError(f"{path}: top level must be a mapping")
    return data


def _rule(item: Any, n: int, category: Category, path: Path, seen: dict[str, str]) -> Rule:
    if not isinstance(item, dict):
        raise RuleError(f"{path}: rules[{n}]: must be a mapping")
    rid = item.get("id")
    where = f"{path}: rule {rid if isinstance(rid, str) and rid else f'#{n + 1}'}"
    if not isinstance(rid, str) or not rid:
        raise RuleError(f"{where}: missing 'id'")
    extra = set(item) - RULE_KEYS
    if extra:
        raise RuleError(f"{where}: unknown key(s): {', '.join(sorted(extra))}")
    if rid in seen:
        raise RuleError(f"{where}: duplicate rule id (first in {seen[rid]})")
    if not rid.startswith(category + "."):
        raise RuleError(f"{where}: id must start with the file's category '{category}.'")
    weight = item.get("weight", 1)
    if not isinstance(weight, int | float) or isinstance(weight, bool) or weight == 0 or abs(weight) > 10:
        raise RuleError(f"{where}: weight must be a non-zero number between -10 and 10")
    for flag in ("danger", "escalate", "negatable"):
        if flag in item and not isinstance(item[flag], bool):
            raise RuleError(f"{where}: '{flag}' must be true or false")
    lang = item.get("lang")
    if lang is not None and not (isinstance(lang, str) and re.fullmatch(r"[a-z]{2,3}|multi", lang)):
        raise RuleError(f"{where}: lang must be a language code like en, es, ht or 'multi'")
    seen[rid] = str(path)
    return Rule(
        id=rid, category=category, lang=lang, weight=float(weight),
        danger=bool(item.get("danger", False)), escalate=bool(item.get("escalate", False)),
        negatable=bool(item.get("negatable", weight > 0)),
        patterns=_compile_list(item.get("patterns"), where), source=str(path),
    )


def _policy(data: Any, path: Path) -> Policy:
    if not isinstance(data, dict):
        raise RuleError(f"{path}: policy: must be a mapping")
    extra = set(data) - POLICY_KEYS
    if extra:
        raise RuleError(f"{path}: policy: unknown key(s): {', '.join(sorted(extra))}")
    missing = POLICY_KEYS - set(data)
    if missing:
        raise RuleError(f"{path}: policy: missing key(s): {', '.join(sorted(missing))}")
    prec = data["precedence"]
    if not isinstance(prec, list) or sorted(prec) != sorted(CATEGORIES):
        raise RuleError(f"{path}: policy.precedence: must list each category exactly once")
    th = data["thresholds"]
    if not isinstance(th, dict) or set(th) != set(CATEGORIES) or \
            not all(isinstance(v, int | float) and v > 0 for v in th.values()):
        raise RuleError(f"{path}: policy.thresholds: give a positive number for each category")
    for key in ("default_category", "empty_category"):
        if data[key] not in CATEGORIES:
            raise RuleError(f"{path}: policy.{key}: {data[key]!r} is not a category")
    window = data["negation_window_chars"]
    if not isinstance(window, int) or not 0 <= window <= 200:
        raise RuleError(f"{path}: policy.negation_window_chars: must be an integer 0..200")
    return Policy(
        precedence=tuple(prec), thresholds={k: float(v) for k, v in th.items()},
        default_category=data["default_category"], empty_category=data["empty_category"],
        negation_window_chars=window,
        negation_cues=_compile_list(data["negation_cues"], f"{path}: policy.negation_cues"),
        clause_breaks=str(data["clause_breaks"]),
    )


def load_ruleset(rules_dir: Path | None = None, *, model_file: Path | None = None,
                 with_model: bool = True) -> Ruleset:
    """Read every *.yaml under rules_dir; raise RuleError naming file, rule and problem.

    Also loads the learned model (model_file, default the packaged triage/model file) unless
    with_model is False; an unusable model file raises ModelFileError (a RuleError and a
    learned.ModelError) naming the file.
    """
    rules_dir = rules_dir or default_rules_dir()
    files = sorted(rules_dir.glob("*.yaml"))
    if not files:
        raise RuleError(f"{rules_dir}: no rule files (*.yaml) found")
    digest = hashlib.sha256()
    policy_version = ""
    rules: list[Rule] = []
    seen: dict[str, str] = {}
    indicators: dict[str, list[re.Pattern[str]]] = {k: [] for k in INDICATORS}
    policy: Policy | None = None
    for path in files:
        data = _load_yaml(path)
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
        unknown = set(data) - {"version", "category", "rules", "indicators", "policy"}
        if unknown:
            raise RuleError(f"{path}: unknown top-level key(s): {', '.join(sorted(unknown))}")
        if "version" not in data:
            raise RuleError(f"{path}: missing 'version'")
        if "rules" in data:
            category = data.get("category")
            if category not in CATEGORIES:
                raise RuleError(f"{path}: category {category!r} is not one of {', '.join(CATEGORIES)}")
            if not isinstance(data["rules"], list):
                raise RuleError(f"{path}: 'rules' must be a list")
            rules += [_rule(item, n, category, path, seen) for n, item in enumerate(data["rules"])]
        for key, pats in (data.get("indicators") or {}).items():
            if key not in indicators:
                raise RuleError(f"{path}: indicators.{key}: unknown indicator (expected {', '.join(INDICATORS)})")
            indicators[key].extend(_compile_list(pats, f"{path}: indicators.{key}"))
        if "policy" in data:
            if policy is not None:
                raise RuleError(f"{path}: a second 'policy' section (only one file may hold it)")
            policy = _policy(data["policy"], path)
            policy_version = str(data["version"])
    if policy is None:
        raise RuleError(f"{rules_dir}: no file holds the 'policy' section")
    slots: list[tuple[int | str, re.Pattern[str]]] = []
    for i, rule in enumerate(rules):
        slots += [(i, p) for p in rule.patterns]
    for name, pats in indicators.items():
        slots += [(name, p) for p in pats]
    prefilter, always = _build_prefilter(slots)
    try:
        model = load_model(model_file) if with_model else None
    except ModelError as exc:
        raise ModelFileError(str(exc)) from exc
    # The policy file's version names the release; the digest tells any edit apart; the model's
    # name and file digest tell a retrained model apart.
    version = f"{policy_version}+{digest.hexdigest()[:8]}" + (f"+{model.version}" if model else "")
    return Ruleset(
        version=version, rules=tuple(rules), policy=policy,
        indicators={k: tuple(v) for k, v in indicators.items()}, files=tuple(str(f) for f in files),
        _slots=tuple(slots), _prefilter=prefilter, _always=always, model=model,
        against_crisis=frozenset(r.id for r in rules if r.category == "crisis" and r.weight < 0),
    )


# Patterns per RE2 set. One set over every rule outgrew its DFA memory at ~850 patterns and
# thrashed (5 ms a message instead of 20 us, measured); sets of at most this many each keep
# their own 64 MB budget, so the rules can grow without falling off that cliff.
PREFILTER_CHUNK = 300


def _build_prefilter(slots: Sequence[tuple[int | str, re.Pattern[str]]]) -> tuple[Any, tuple[int, ...]]:
    if _re2 is None:
        return None, ()

    def new_set() -> Any:
        options = _re2.Options()
        options.case_sensitive = False
        # A set of a few hundred rules needs more than RE2's default 8 MB of DFA memory; below
        # that it thrashes and is no faster than running every pattern (measured: 1.1x vs 17.7x).
        options.max_mem = 64 << 20
        return _re2.Set.SearchSet(options)

    sets: list[tuple[Any, list[int]]] = []  # (RE2 set, its set index -> slot index)
    always: list[int] = []
    for idx, (_, pat) in enumerate(slots):
        # RE2's \b knows only ASCII word characters; without it the set matches a superset,
        # and Python's re (which knows Unicode) decides.
        loose = pat.pattern.replace("\\b", "")
        if re.search(r"\(\?<?[=!]", loose):  # look-arounds: RE2 has none; re always runs these
            always.append(idx)
            continue
        if not sets or len(sets[-1][1]) >= PREFILTER_CHUNK:
            sets.append((new_set(), []))
        rset, mapping = sets[-1]
        try:
            added = rset.Add(loose)
        except Exception:
            added = -1
        if added < 0:
            always.append(idx)
        elif added == len(mapping):
            mapping.append(idx)
        else:  # never expected; rather no prefilter than a misaligned one
            return None, ()
    for rset, _ in sets:
        rset.Compile()

    class _Prefilter:
        def Match(self, text: str) -> list[int]:
            return [mapping[i] for rset, mapping in sets for i in (rset.Match(text) or ())]

    return _Prefilter(), tuple(always)


# ---- classification -------------------------------------------------------------------------


@dataclass
class _Hits:
    spans: list[Span] = field(default_factory=list)
    matched: list[str] = field(default_factory=list)
    scores: dict[str, float] = field(default_factory=dict)
    danger: bool = False
    escalate: set[str] = field(default_factory=set)
    indicators: set[str] = field(default_factory=set)


def _negated(folded: str, start: int, policy: Policy) -> bool:
    window = folded[max(0, start - policy.negation_window_chars): start]
    for i in range(len(window) - 1, -1, -1):
        if window[i] in policy.clause_breaks:
            window = window[i + 1:]
            break
    return any(cue.search(window) for cue in policy.negation_cues)


def _scan(folded: str, ruleset: Ruleset) -> _Hits:
    hits = _Hits()
    fired: set[int] = set()
    policy = ruleset.policy
    for slot in ruleset.candidate_slots(folded):
        owner, pattern = ruleset._slots[slot]
        if isinstance(owner, str):
            if owner not in hits.indicators and pattern.search(folded):
                hits.indicators.add(owner)
            continue
        rule = ruleset.rules[owner]
        for m in pattern.finditer(folded):
            if m.end() == m.start():
                continue
            if rule.negatable and _negated(folded, m.start(), policy):
                continue
            hits.spans.append(Span(rule=rule.id, start=m.start(), end=m.end()))
            if owner not in fired:
                fired.add(owner)
                hits.matched.append(rule.id)
                hits.scores[rule.category] = hits.scores.get(rule.category, 0.0) + rule.weight
                hits.danger |= rule.danger
                if rule.escalate:
                    hits.escalate.add(rule.category)
            break
    return hits


def _trafficking_type(ind: set[str], category: Category) -> TraffickingType:
    sex, labor = "sex" in ind, "labor" in ind
    if sex and labor:
        return "both"
    if sex or labor:
        return "sex" if sex else "labor"
    return "none" if category == "unrelated" else "unknown"


def choose_category(scores: dict[str, float], has_words: bool, policy: Policy) -> Category:
    """Pure decision: crisis at its (low) threshold first, else the best-scoring category."""
    if not has_words:
        return policy.empty_category
    if scores.get("crisis", 0.0) >= policy.thresholds["crisis"]:
        return "crisis"
    qualified = [c for c in policy.precedence if c != "crisis" and scores.get(c, 0.0) >= policy.thresholds[c]]
    if not qualified:
        return policy.default_category
    best = max(scores[c] for c in qualified)
    return next(c for c in qualified if scores[c] == best)


def urgency_for(category: Category, ind: Indicators, escalate: bool = False) -> Urgency:
    """The hotline's default urgency per category, raised by a minor or imminent harm."""
    if category == "crisis":
        return "immediate"
    if category == "tip":
        return "high" if ind.minor_involved or ind.imminent_danger else "normal"
    if category == "at_risk":
        return "high" if ind.minor_involved or ind.imminent_danger else "normal"
    if category == "tta":
        return "high" if escalate else "low"
    if category == "referral":
        return "normal"
    return "low"


def analysed_text(subject: str | None, text: str) -> str:
    return "\n".join(t for t in (subject, text) if t)


@dataclass(frozen=True)
class RulePass:
    """What the rules alone found in one text (the input of the combination)."""

    folded: str
    hits: _Hits
    has_words: bool
    category: Category
    vetoed: bool


def rule_pass(text: str, ruleset: Ruleset) -> RulePass:
    folded = fold(text)
    hits = _scan(folded, ruleset)
    has_words = bool(_LETTER.search(folded))
    return RulePass(folded=folded, hits=hits, has_words=has_words,
                    category=choose_category(hits.scores, has_words, ruleset.policy),
                    vetoed=any(r in ruleset.against_crisis for r in hits.matched))


def decide(rp: RulePass, pred: Prediction | None, policy: Policy, blend: Blend | None
           ) -> tuple[Category, Indicators, Urgency, str]:
    """Pure: category, indicators (without location/case), urgency and the model's reason
    ('' when the rules decided; pred None = rules alone). Shared by classify_text and the
    cross-validation in triage.train, so what is tuned is what runs."""
    hits = rp.hits
    category, reason, minor = rp.category, "", "minor" in hits.indicators
    if pred is not None and blend is not None:
        d = combine(rp.category, hits.scores, policy.thresholds, pred, rp.vetoed, minor, rp.has_words, blend)
        category, minor = d.category, d.minor
        reason = d.reason if d.source == "model" else ""
    ind = Indicators(
        minor_involved=minor,
        trafficking_type=_trafficking_type(hits.indicators, category),
        # A crisis the model raised is, by the hotline's definition, someone in danger now.
        imminent_danger=(hits.danger and hits.scores.get("crisis", 0.0) > 0) or (reason != "" and category == "crisis"),
    )
    return category, ind, urgency_for(category, ind, escalate=category in hits.escalate), reason


def classify_text(text: str, language: str, ruleset: Ruleset) -> TriageResult:
    """Classify one text (subject and body already joined)."""
    rp = rule_pass(text, ruleset)
    model = ruleset.model
    pred = predict(model, rp.folded) if model is not None and rp.has_words else None
    category, ind, urgency, reason = decide(rp, pred, ruleset.policy, model.blend if model else None)
    original = text[: len(rp.folded)]
    ind = ind.model_copy(update={"location": location_hints(original), "case_number": quoted_case_number(original)})
    matched, spans = tuple(rp.hits.matched), tuple(rp.hits.spans)
    explanation = explain(category, urgency, rp.hits, ind, rp.has_words)
    if reason and model is not None and pred is not None:
        pseudo = f"model.{category}"
        words = contributions(model, rp.folded, pred, category)
        matched = (pseudo, *matched)
        spans = tuple(Span(rule=pseudo, start=s, end=e) for s, e, _ in words) + spans
        # Offsets, never the words: explanations are stored and shown in clear, message text is
        # not (the console highlights the spans in the decrypted text).
        shown = ", ".join(f"{s}-{e} (+{w:.2f})" for s, e, w in words) or "no single word"
        explanation = (f"{category} from the learned model ({pseudo}, {model.version}): {reason}; "
                       f"its n-grams weigh most in the words at {shown} (spans {pseudo}); "
                       f"rules alone said {rp.category}"
                       + (f" ({', '.join(rp.hits.matched)})" if rp.hits.matched else "")
                       + "; " + explanation.split("; ", 1)[-1])
    if ind.minor_involved and "minor" not in rp.hits.indicators and pred is not None and model is not None:
        matched = (*matched, "model.minor")
        why = f"minor involved (learned model, model.minor: P {pred.minor:.2f} >= {model.blend.minor:.2f})"
        explanation = explanation.replace("minor involved", why, 1)
    return TriageResult(
        category=category,
        urgency=urgency,
        language=language,
        indicators=ind,
        matched=matched,
        spans=spans,
        scores={k: round(v, 2) for k, v in sorted(rp.hits.scores.items())},
        learned={c: round(p, 3) for c, p in pred.probs.items()} if pred is not None else {},
        explanation=explanation,
        ruleset=ruleset.version,
    )


def explain(category: Category, urgency: Urgency, hits: _Hits, ind: Indicators, has_words: bool) -> str:
    own = [r for r in hits.matched if r.startswith(category + ".")]
    if not has_words:
        why = [f"{category}: no words to read"]
    elif own:
        why = [f"{category} from {', '.join(own)}"]
    else:
        why = [f"{category}: no rule reached its threshold (default)"]
    against = [r for r in hits.matched if r.startswith("crisis.") and hits.scores.get("crisis", 0) < 2
               and category != "crisis"]
    if against:
        why.append(f"crisis rules outweighed ({', '.join(against)})")
    facts = []
    if ind.minor_involved:
        facts.append("minor involved")
    if ind.imminent_danger:
        facts.append("imminent danger")
    if ind.trafficking_type not in ("unknown", "none"):
        facts.append(f"{ind.trafficking_type} trafficking indicators")
    if ind.case_number:
        facts.append("quotes an existing case number")
    if facts:
        why.append(", ".join(facts))
    why.append(f"urgency {urgency}")
    return "; ".join(why)


def classify(signal: Signal, ruleset: Ruleset) -> TriageResult:
    result = classify_text(analysed_text(signal.subject, signal.text), signal.language, ruleset)
    if "missed_call" in signal.flags and not signal.text.strip() and result.category == ruleset.policy.empty_category:
        # A call nobody answered, with no message: someone reached out and must be called back.
        result = result.model_copy(update={
            "category": "general", "urgency": "normal",
            "matched": ("general.voice.missed_call", *result.matched),
            "explanation": "general: missed call with no message, call back; urgency normal",
        })
    if ({"danger_key", "danger_now"} & set(signal.flags)) and result.category != "crisis":
        # The caller told us with a key press that they are in danger now: nothing in a
        # transcript (or its absence) argues that down.
        result = result.model_copy(update={
            "category": "crisis", "urgency": "immediate",
            "indicators": result.indicators.model_copy(update={"imminent_danger": True}),
            "matched": ("crisis.voice.danger_key" if "danger_key" in signal.flags else "crisis.webform.danger_now",
                        *result.matched),
            "explanation": "crisis: the contact said someone is in danger now (danger key or tip form); "
                           "urgency immediate",
        })
    return result


def more_severe(a: TriageResult, b: TriageResult) -> TriageResult:
    return b if b.severity() > a.severity() else a


def classify_conversation(texts: Sequence[str], language: str, ruleset: Ruleset,
                          previous: TriageResult | None = None) -> TriageResult:
    """Several short messages from one texter, read together.

    A later message can raise the category or urgency; nothing the texter adds lowers a crisis
    (only a person re-classifying it can).
    """
    joined = classify_text("\n".join(t for t in texts if t), language, ruleset)
    if previous is None:
        return joined
    if previous.category == "crisis" and joined.category != "crisis":
        return previous.model_copy(update={
            "explanation": previous.explanation + "; kept as crisis: later messages never lower a crisis",
            "matched": tuple(dict.fromkeys(previous.matched + joined.matched)),
        })
    return more_severe(joined, previous)
