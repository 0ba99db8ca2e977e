"""The learned second opinion: a linear model over character and word n-grams, scored with numpy.

The model is trained by `python -m triage.train` (scikit-learn, a training/test dependency only)
and exported as plain arrays in one `.npz` file (no pickle): the n-gram vocabularies, their IDF
weights, one row of coefficients per category (softmax) and one binary head for "a minor is
involved". At run time this module rebuilds the same features with the same analyzers the
trainer used (`char_ngrams`, `word_ngrams` below are passed to scikit-learn as callables), so
training and serving cannot drift apart.

`combine()` is the pure decision that merges the rules' verdict with the model's probabilities.
Nothing here reads a file at import time: `load_model()` does, once, when the runtime asks.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import zipfile
from bisect import bisect_right
from collections.abc import Mapping
from dataclasses import dataclass, field
from itertools import chain, pairwise
from pathlib import Path
from typing import Any

import numpy as np

from .result import CATEGORIES, CATEGORY_SEVERITY, Category

FORMAT = 1
MODEL_FILE = "triage_model.npz"
CHAR_NGRAMS = (2, 5)
TEXT_NGRAMS = (1, 4)
WORD_NGRAMS = (1, 2)
# The model reads at most this much of a text: contacts are short (the longest corpus item is
# under 500 characters) and this bounds the per-signal cost of a 1 MB paste. Rules read it all.
MAX_MODEL_CHARS = 4_000
_WORD = re.compile(r"\w+")
_SPACES = re.compile(r"\s+")
_LETTER = re.compile(r"[^\W\d_]")


class ModelError(ValueError):
    """A model file that cannot be used, naming the file and the problem."""


def default_model_file() -> Path:
    return Path(__file__).resolve().parent / "model" / MODEL_FILE


# ---- features: shared by the trainer (as scikit-learn analyzers) and the runtime ----------------


def word_char_ngrams(word: str) -> list[str]:
    """The character n-grams of one word, padded with a space on each side."""
    lo, hi = CHAR_NGRAMS
    w = f" {word} "
    size = len(w)
    out: list[str] = []
    for n in range(lo, min(hi, size) + 1):
        out += [w[i: i + n] for i in range(size - n + 1)]
    return out


def char_ngrams(folded: str) -> list[str]:
    """Character 2-5-grams inside word boundaries (the n-grams of scikit-learn's char_wb):
    robust to misspellings, inflections and unsegmented scripts."""
    out: list[str] = []
    for word in folded[:MAX_MODEL_CHARS].split():
        out += word_char_ngrams(word)
    return out


def word_ngrams(folded: str) -> list[str]:
    """Word unigrams and bigrams (Unicode word characters; one-letter words like "i" kept)."""
    words = _WORD.findall(folded[:MAX_MODEL_CHARS])
    return words + [f"{a} {b}" for a, b in pairwise(words)]


def text_ngrams(folded: str) -> list[str]:
    """Character 1-4-grams across word boundaries, spaces collapsed: they see two-word cues
    ("me aj", "t ta") and unsegmented scripts (Chinese, Japanese-style runs) that char_wb
    n-grams inside one padded word cannot."""
    text = " ".join(folded[:MAX_MODEL_CHARS].split())
    lo, hi = TEXT_NGRAMS
    size = len(text)
    return [text[i: i + n] for n in range(lo, hi + 1) for i in range(size - n + 1)]


ANALYZERS = {"char_wb": char_ngrams, "word": word_ngrams, "char": text_ngrams}


# ---- the model --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Blend:
    """Thresholds of the combination (tuned by grouped cross-validation in triage.train).

    crisis_raise: P(crisis) at or above which the model raises a non-crisis verdict to crisis.
    crisis_vetoed: the same bar when a rule that argues against crisis fired (negation,
                  informational question, the past, safe now, a joke): much higher, because those
                  texts are full of crisis words; not infinite, because a hedged present danger
                  ("sorry if this is not an emergency, the boss took our passports and drives us
                  away at 5 am") is still a crisis. Above 1 = an absolute veto.
    silent:       the model's top category is taken when no rule reached its threshold and its
                  probability is at least this.
    weak:         ... when the rules' winner is only just above its threshold or its runner-up.
    weak_margin:  how close (in rule score) counts as "only just".
    override:     ... when the rules were confident (values above 1 mean never).
    minor:        P(minor involved) at or above which the minor indicator is raised.
    crisis_cold:  the crisis_raise bar when no crisis rule fired at all (no plea, no present
                  danger, no coercion in any language): nine in ten crises carry at least one
                  such signal, most texts without one are not crises, so the model must be surer.
    demote:       the bar for moving a verdict the rules reached (weakly or confidently) to a LESS
                  severe category (a tip to at_risk, an at_risk to unrelated): at least a majority
                  by design, since under-triage is the costlier error.
    crisis_confident: the crisis_raise bar when the rules were confident for another category
                  (a DV victim safe at her sister's, a joke): texts full of danger words that the
                  rules placed with certainty need more from the model than ones they could not place.
    """

    crisis_raise: float = 0.35
    crisis_vetoed: float = 1.01
    silent: float = 0.40
    weak: float = 0.55
    weak_margin: float = 1.0
    override: float = 0.85
    minor: float = 0.6
    crisis_confident: float = 0.35
    demote: float = 0.85
    crisis_cold: float = 0.35

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Blend:
        return cls(**{k: float(v) for k, v in d.items() if k in cls.__dataclass_fields__})


@dataclass(frozen=True)
class Model:
    version: str
    path: str
    classes: tuple[Category, ...]
    analyzers: tuple[tuple[str, dict[str, int], np.ndarray], ...]  # (name, vocabulary, idf) per block
    offsets: tuple[int, ...]  # first column of each block
    coef: np.ndarray  # (classes, features), centred across classes
    idf: np.ndarray  # (features,): every block's IDF side by side
    intercept: np.ndarray  # (classes,)
    minor_coef: np.ndarray  # (features,)
    minor_intercept: float
    blend: Blend
    meta: dict[str, Any] = field(default_factory=dict, repr=False)
    # (features, classes + 1): the category coefficients and the minor head side by side, one
    # contiguous row per feature, so scoring a text is one row gather and one product.
    stacked: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)), repr=False, compare=False)
    word_cache: dict[str, tuple[int, ...]] = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True)
class Prediction:
    probs: dict[str, float]
    minor: float
    columns: np.ndarray  # feature columns present in the text
    values: np.ndarray  # their tf-idf values

    def top(self, exclude: tuple[str, ...] = ()) -> tuple[str, float]:
        best = max((c for c in self.probs if c not in exclude), key=lambda c: self.probs[c])
        return best, self.probs[best]


_REQUIRED = ("meta", "coef", "intercept", "minor_coef", "minor_intercept")


def load_model(path: Path | None = None) -> Model:
    """Read a model file written by triage.train; raise ModelError naming the file if unusable."""
    path = path or default_model_file()
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ModelError(f"{path}: cannot read the triage model ({exc.__class__.__name__}); "
                         "train it with `python -m triage.train`") from exc
    try:
        import io

        with np.load(io.BytesIO(raw), allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
        raise ModelError(f"{path}: not a triage model file (corrupt or not .npz: {exc})") from exc
    try:
        return _build(arrays, path, hashlib.sha256(raw).hexdigest()[:8])
    except (KeyError, ValueError, TypeError, json.JSONDecodeError) as exc:
        raise ModelError(f"{path}: invalid triage model: {exc}") from exc


def _build(a: dict[str, np.ndarray], path: Path, digest: str) -> Model:
    missing = [k for k in _REQUIRED if k not in a]
    if missing:
        raise KeyError(f"missing array(s) {', '.join(missing)}")
    if a["meta"].shape != () or a["meta"].dtype.kind != "U":
        raise ValueError("'meta' must be one JSON string")
    meta = json.loads(str(a["meta"]))
    if not isinstance(meta, dict):
        raise ValueError("'meta' must be a JSON object")
    if meta.get("format") != FORMAT:
        raise ValueError(f"format {meta.get('format')!r}, this code reads format {FORMAT}")
    classes = tuple(meta["classes"])
    if sorted(classes) != sorted(CATEGORIES):
        raise ValueError(f"classes {classes} are not the seven categories")
    blocks = []
    offsets = []
    start = 0
    for name in meta["analyzers"]:
        if name not in ANALYZERS:
            raise ValueError(f"unknown analyzer {name!r}")
        terms = bytes(a[f"vocab_{name}"]).decode("utf-8").split("\n")
        idf = a[f"idf_{name}"].astype(np.float64)
        if len(terms) != len(idf):
            raise ValueError(f"vocab_{name} has {len(terms)} terms but idf_{name} {len(idf)} weights")
        blocks.append((name, {t: start + i for i, t in enumerate(terms)}, idf))
        offsets.append(start)
        start += len(terms)
    coef = a["coef"].astype(np.float64)
    intercept = a["intercept"].astype(np.float64)
    minor_coef = a["minor_coef"].astype(np.float64)
    if coef.shape != (len(classes), start) or intercept.shape != (len(classes),) or minor_coef.shape != (start,):
        raise ValueError(f"array shapes do not match the vocabulary ({start} features, {len(classes)} classes)")
    if not (np.isfinite(coef).all() and np.isfinite(intercept).all() and np.isfinite(minor_coef).all()):
        raise ValueError("non-finite coefficients")
    return Model(
        version=f"{meta.get('name', 'ngram-logreg')}.{digest}", path=str(path), classes=classes,
        analyzers=tuple(blocks), offsets=tuple(offsets), coef=coef, intercept=intercept,
        idf=np.concatenate([b[2] for b in blocks]) if blocks else np.zeros(0),
        minor_coef=minor_coef, minor_intercept=float(a["minor_intercept"]),
        blend=Blend.from_dict(meta.get("blend", {})), meta=meta,
        stacked=np.ascontiguousarray(np.hstack([coef.T, minor_coef[:, None]])),
    )


def features(model: Model, folded: str) -> tuple[np.ndarray, np.ndarray]:
    """Sparse tf-idf row exactly as scikit-learn's TfidfVectorizer(sublinear_tf, l2) built it
    per analyzer block, the blocks side by side (like a FeatureUnion)."""
    cols: list[np.ndarray] = []
    vals: list[np.ndarray] = []
    text = folded[:MAX_MODEL_CHARS]
    for name, vocab, _ in model.analyzers:
        if name == "char_wb":
            ids = list(chain.from_iterable(_char_ids(model, vocab, w) for w in text.split()))
        else:
            ids = [j for j in map(vocab.get, ANALYZERS[name](text)) if j is not None]
        if not ids:
            continue
        idx, tf = np.unique(np.array(ids, dtype=np.intp), return_counts=True)
        w = (1.0 + np.log(tf)) * model.idf[idx]
        cols.append(idx)
        vals.append(w / np.sqrt(w @ w))
    if not cols:
        return np.zeros(0, dtype=np.intp), np.zeros(0, dtype=np.float64)
    if len(cols) == 1:
        return cols[0], vals[0]
    return np.concatenate(cols), np.concatenate(vals)


_CACHE_WORDS = 50_000  # ~10 MB at most; beyond it words are simply not memoised


def _char_ids(model: Model, vocab: dict[str, int], word: str) -> tuple[int, ...]:
    """Known char n-gram columns of one word, memoised per model: words repeat across contacts,
    so most words cost one dictionary look-up instead of ~20 n-gram look-ups."""
    ids = model.word_cache.get(word)
    if ids is None:
        ids = tuple(j for j in map(vocab.get, word_char_ngrams(word)) if j is not None)
        if len(model.word_cache) < _CACHE_WORDS:
            model.word_cache[word] = ids
    return ids


def predict(model: Model, folded: str) -> Prediction:
    """Category probabilities (softmax, summing to 1) and P(minor involved) for a folded text."""
    cols, vals = features(model, folded)
    z = vals @ model.stacked[cols] if len(cols) else np.zeros(len(model.classes) + 1)
    logits = model.intercept + z[:-1]
    e = np.exp(logits - logits.max())
    p = e / e.sum()
    m = model.minor_intercept + float(z[-1])
    minor = 1.0 / (1.0 + math.exp(-m)) if m > -700 else 0.0
    return Prediction(probs={c: float(p[i]) for i, c in enumerate(model.classes)}, minor=minor,
                      columns=cols, values=vals)


def contributions(model: Model, folded: str, pred: Prediction, category: str, top: int = 4
                  ) -> list[tuple[int, int, float]]:
    """The words that pushed the model toward `category` most: (start, end, weight), best first.

    Each n-gram's contribution (tf-idf value x the category's centred coefficient) is shared
    among its occurrences, so the explanation points at words, not at 3-letter pieces.
    """
    k = model.classes.index(category)  # type: ignore[arg-type]
    order = np.argsort(pred.columns)
    cols = pred.columns[order]
    weights = model.coef[k, cols] * pred.values[order]
    text = folded[:MAX_MODEL_CHARS]
    spans = [(m.start(), m.end()) for m in re.finditer(r"\S+", text)]
    if not len(cols) or not spans:
        return []
    vocabs = {name: vocab for name, vocab, _ in model.analyzers}
    ids: list[int] = []  # every n-gram occurrence ...
    owners: list[int] = []  # ... and the word (span index) it belongs to
    if "char_wb" in vocabs:
        for wi, (s, e) in enumerate(spans):
            found = _char_ids(model, vocabs["char_wb"], text[s:e])
            ids += found
            owners += [wi] * len(found)
    if "word" in vocabs:
        starts = [s for s, _ in spans]
        tokens = [(m.group(), bisect_right(starts, m.start()) - 1) for m in _WORD.finditer(text)]
        vocab = vocabs["word"]
        for i, (tok, wi) in enumerate(tokens):
            j = vocab.get(tok)
            if j is not None:
                ids.append(j)
                owners.append(wi)
            if i + 1 < len(tokens):
                j = vocab.get(f"{tok} {tokens[i + 1][0]}")
                if j is not None:  # a bigram counts half for each of its two words
                    ids += (j, j)
                    owners += (wi, tokens[i + 1][1])
    if "char" in vocabs:  # an n-gram belongs to the word it starts in (or the next one)
        words = text.split()
        owner_at: list[int] = []
        for wi, w in enumerate(words):
            owner_at += [wi] * len(w) + ([wi + 1] if wi + 1 < len(words) else [])
        joined = " ".join(words)
        vocab = vocabs["char"]
        lo, hi = TEXT_NGRAMS
        for n in range(lo, hi + 1):
            for i in range(len(joined) - n + 1):
                j = vocab.get(joined[i: i + n])
                if j is not None:
                    ids.append(j)
                    owners.append(owner_at[i])
    if not ids:
        return []
    all_ids = np.asarray(ids, dtype=np.intp)
    pos = np.minimum(np.searchsorted(cols, all_ids), len(cols) - 1)
    known = cols[pos] == all_ids
    all_ids, pos, who = all_ids[known], pos[known], np.asarray(owners, dtype=np.intp)[known]
    if not len(all_ids):
        return []
    _, inverse, counts = np.unique(all_ids, return_inverse=True, return_counts=True)
    per_word = np.bincount(who, weights=weights[pos] / counts[inverse], minlength=len(spans))
    out = []
    for wi in [int(w) for w in np.argsort(-per_word, kind="stable")[:top] if per_word[w] > 0]:
        s, e = spans[wi]
        while s < e and not text[s].isalnum():  # the word itself, without the punctuation around it
            s += 1
        while e > s and not text[e - 1].isalnum():
            e -= 1
        if e > s:
            out.append((s, e, round(float(per_word[wi]), 3)))
    return out


# ---- the combination: pure ---------------------------------------------------------------------


OUT_OF_SCOPE = ("general", "unrelated")  # no situation for an advocate to act on


def less_severe(a: str, b: str) -> bool:
    return CATEGORY_SEVERITY.index(a) > CATEGORY_SEVERITY.index(b)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Decision:
    category: Category
    source: str  # "rules" or "model"
    reason: str
    minor: bool


def rules_strength(category: str, scores: Mapping[str, float], thresholds: Mapping[str, float],
                   margin: float) -> str:
    """'silent' (nothing reached a threshold), 'weak' (the winner only just) or 'confident'."""
    own = scores.get(category, 0.0)
    if own < thresholds.get(category, 1.0):
        return "silent"
    others = [v for c, v in scores.items() if c != category and c != "crisis" and v >= thresholds.get(c, 1.0)]
    runner_up = max(others, default=0.0)
    if own - thresholds[category] < margin or own - runner_up < margin:
        return "weak"
    return "confident"


def combine(rule_category: Category, scores: Mapping[str, float], thresholds: Mapping[str, float],
            pred: Prediction, vetoed: bool, rules_minor: bool, has_words: bool, blend: Blend) -> Decision:
    """Rules and model into one category (and the minor flag).

    - A crisis from the rules stands: nothing lowers it.
    - The model raises crisis at a low probability (over-escalation is the cheaper error); when
      a rule that argues against crisis fired (negation, informational question, the past, a
      joke, safe now) it needs a much higher one: those texts are where crisis words mislead;
      when the rules placed the text confidently elsewhere, its own (tuned) bar.
    - Otherwise the rules decide when they are confident, and the model decides when they are
      silent or only just over a threshold, each with its own probability bar. Moving a verdict
      the rules reached to a less severe category (a tip to at_risk) takes the demote bar, a
      majority at least, and the override bar too when it leaves the hotline's work (general,
      unrelated); never when the rules saw a minor. Under-triage is the costlier error.
    """
    minor = rules_minor or (has_words and pred.minor >= blend.minor)
    if rule_category == "crisis" or not has_words:
        return Decision(rule_category, "rules", "", minor)
    p_crisis = pred.probs.get("crisis", 0.0)
    strength = rules_strength(rule_category, scores, thresholds, blend.weak_margin)
    if vetoed:
        bar, said = blend.crisis_vetoed, " despite a rule against crisis"
    else:  # each reason for doubt raises the bar: no crisis rule fired, rules sure of another category
        cold, sure = scores.get("crisis", 0.0) <= 0, strength == "confident"
        bar = max(blend.crisis_raise, blend.crisis_cold if cold else 0.0, blend.crisis_confident if sure else 0.0)
        said = "".join((" with no crisis rule" if cold else "",
                        f" over confident rules for {rule_category}" if sure else ""))
    if p_crisis >= bar:
        return Decision("crisis", "model", f"P(crisis) {p_crisis:.2f} >= {bar:.2f}{said}", minor)
    top, p = pred.top(exclude=("crisis",))
    if top == rule_category:
        return Decision(rule_category, "rules", "", minor)
    demotion = strength != "silent" and less_severe(top, rule_category)
    if demotion and rules_minor:  # the rules saw a child in it: never moved down by the model
        return Decision(rule_category, "rules", "", minor)
    bar = {"silent": blend.silent, "weak": blend.weak, "confident": blend.override}[strength]
    if demotion:  # out of the hotline's work (general, unrelated) also takes the override bar
        bar = max(blend.demote, blend.override) if top in OUT_OF_SCOPE else blend.demote
    if p >= bar:
        said = "no rule reached its threshold" if strength == "silent" else f"rules {strength} for {rule_category}"
        said += ", to a less severe category" if demotion else ""
        return Decision(top, "model", f"P({top}) {p:.2f} >= {bar:.2f}, {said}", minor)  # type: ignore[arg-type]
    return Decision(rule_category, "rules", "", minor)
