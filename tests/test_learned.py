"""The learned second opinion as a specification: the packaged model loads and explains itself,
the combination with the rules follows its policy, training is reproducible, and a bad model
file fails loudly, naming the file. Table-driven; one behaviour per test."""

from __future__ import annotations

import io
import zipfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO

from triage.engine import ModelFileError, RuleError, classify_text, load_ruleset
from triage.learned import Blend, ModelError, Prediction, combine, default_model_file, load_model, predict
from triage.result import CATEGORIES
from triage.text import fold

THRESHOLDS = {c: 2.0 for c in CATEGORIES} | {"general": 1.0}


@pytest.fixture(scope="module")
def rs():
    return load_ruleset()


@pytest.fixture(scope="module")
def rules_only():
    return load_ruleset(with_model=False)


# ---- the packaged model -------------------------------------------------------------------------

def test_packaged_model_loads_with_seven_classes_and_a_versioned_ruleset(rs, rules_only):
    assert rs.model is not None and set(rs.model.classes) == set(CATEGORIES)
    assert rs.version.startswith(rules_only.version + "+ngram-logreg.")
    assert rules_only.model is None


@pytest.mark.parametrize("text", [
    "please help me they locked me in",
    "what are the signs of trafficking?",
    "necesito un abogado para la visa T",
    "我需要帮助",
    "x",
    "🙏🙏🙏 ok",
    "word " * 3000,
])
def test_probabilities_are_a_distribution(rs, text):
    pred = predict(rs.model, fold(text))
    assert set(pred.probs) == set(CATEGORIES)
    assert sum(pred.probs.values()) == pytest.approx(1.0, abs=1e-9)
    assert all(0.0 <= p <= 1.0 for p in pred.probs.values())
    assert 0.0 <= pred.minor <= 1.0


def test_results_carry_the_model_probabilities(rs):
    r = classify_text("can you send me brochures about trafficking", "en", rs)
    assert set(r.learned) == set(CATEGORIES)
    assert classify_text("", "und", rs).learned == {}  # no words: nothing for the model to read


# ---- the combination, end to end with the packaged model -------------------------------------------

# Crises written without the phrases the crisis rules look for (verified below: the rules alone
# do not call them crisis).
RULES_MISS_MODEL_CATCHES = [
    "we are twelve girls in one room, the door only opens from the outside",
    "it's been three days since they let us eat, the boss says we leave when the debt is paid",
]


@pytest.mark.parametrize("text", RULES_MISS_MODEL_CATCHES)
def test_the_model_raises_a_crisis_the_rules_missed(rs, rules_only, text):
    alone = classify_text(text, "en", rules_only)
    combined = classify_text(text, "en", rs)
    assert alone.category != "crisis"
    assert (combined.category, combined.urgency) == ("crisis", "immediate")
    assert combined.matched[0] == "model.crisis"
    assert "learned model" in combined.explanation and "P(crisis)" in combined.explanation
    spans = [s for s in combined.spans if s.rule == "model.crisis"]
    assert spans and all(text[s.start:s.end].strip() for s in spans)
    # the explanation points at the words by offset and never quotes them (it is stored in clear)
    assert all(f"{s.start}-{s.end} (+" in combined.explanation for s in spans)
    assert not any(f"'{text[s.start:s.end]}'" in combined.explanation for s in spans)


@pytest.mark.parametrize("text", [
    "I'm not in danger, just asking about the signs of trafficking",
    "no estoy en peligro, solo quiero información sobre las señales de la trata",
    "what are the signs that someone is locked in and being trafficked?",
    "This happened years ago, I escaped. Now I want to talk to a counselor",
])
def test_negated_and_informational_texts_are_not_made_crisis(rs, text):
    r = classify_text(text, "en", rs)
    assert r.category != "crisis", r.explanation
    assert "model.crisis" not in r.matched


def test_a_rules_crisis_is_never_lowered_by_the_model(rs, rules_only):
    text = "help me he has a gun"
    assert classify_text(text, "en", rules_only).category == "crisis"
    r = classify_text(text, "en", rs)
    assert r.category == "crisis" and not any(m.startswith("model.") for m in r.matched if m != "model.minor")


# ---- the combination policy, unit by unit (pure function) ------------------------------------------

def _pred(**probs: float) -> Prediction:
    rest = (1.0 - sum(probs.values())) / (len(CATEGORIES) - len(probs))
    full = {c: probs.get(c, rest) for c in CATEGORIES}
    return Prediction(probs=full, minor=0.0, columns=np.zeros(0, dtype=np.intp), values=np.zeros(0))


BLEND = Blend(crisis_raise=0.3, crisis_vetoed=0.9, silent=0.3, weak=0.5, weak_margin=1.0, override=0.9, minor=0.6,
              crisis_confident=0.6, demote=0.7, crisis_cold=0.5)

COMBINE_CASES = [
    # (rule category, rule scores, prediction, vetoed, expected category, expected source)
    ("crisis", {"crisis": 2}, _pred(general=0.95), False, "crisis", "rules"),         # never lowered
    ("tip", {"tip": 2.5, "crisis": 1}, _pred(crisis=0.35), False, "crisis", "model"),  # low bar for crisis
    ("tip", {"tip": 2.5, "crisis": 1}, _pred(crisis=0.25), False, "tip", "rules"),     # below the bar
    ("tip", {"tip": 2.5}, _pred(crisis=0.45), False, "tip", "rules"),                  # no crisis rule: higher bar
    ("tip", {"tip": 2.5}, _pred(crisis=0.55), False, "crisis", "model"),               # ... which can be met
    ("at_risk", {"at_risk": 6, "crisis": 1}, _pred(crisis=0.45), False, "at_risk", "rules"),  # rules sure
    ("at_risk", {"at_risk": 6, "crisis": 1}, _pred(crisis=0.65), False, "crisis", "model"),   # ... can be met
    ("general", {"general": 1, "crisis": -6}, _pred(crisis=0.8), True, "general", "rules"),  # vetoed
    ("general", {"general": 1, "crisis": -4}, _pred(crisis=0.95), True, "crisis", "model"),  # hedged danger
    ("general", {}, _pred(referral=0.4), False, "referral", "model"),                 # rules silent
    ("general", {}, _pred(referral=0.25), False, "general", "rules"),                 # model unsure
    ("at_risk", {"at_risk": 2}, _pred(tip=0.6), False, "tip", "model"),               # rules weak
    ("at_risk", {"at_risk": 6}, _pred(tip=0.6), False, "at_risk", "rules"),           # rules confident
    ("at_risk", {"at_risk": 6}, _pred(tip=0.92), False, "tip", "model"),              # model very sure
    ("tip", {"tip": 2}, _pred(unrelated=0.6), False, "tip", "rules"),                 # weak, but a demotion
    ("tip", {"tip": 2}, _pred(at_risk=0.75), False, "at_risk", "model"),             # ... needs the demote bar
    ("tip", {"tip": 2}, _pred(unrelated=0.75), False, "tip", "rules"),                # out of scope: override too
    ("tip", {"tip": 6}, _pred(at_risk=0.65), False, "tip", "rules"),                  # confident: demote bar too
    ("tip", {"tip": 6}, _pred(at_risk=0.75), False, "at_risk", "model"),              # ... which can be met
    ("at_risk", {"at_risk": 6}, _pred(tip=0.75), False, "at_risk", "rules"),          # a promotion: override bar
    ("tip", {"tip": 6}, _pred(unrelated=0.75), False, "tip", "rules"),                # out of scope: override bar
    ("tip", {"tip": 6}, _pred(unrelated=0.95), False, "unrelated", "model"),          # ... which can be met
    ("tip", {"tip": 2}, _pred(tip=0.9), False, "tip", "rules"),                       # agreement
]


@pytest.mark.parametrize(("rule_cat", "scores", "pred", "vetoed", "category", "source"), COMBINE_CASES)
def test_combine_policy(rule_cat, scores, pred, vetoed, category, source):
    d = combine(rule_cat, scores, THRESHOLDS, pred, vetoed, False, True, BLEND)
    assert (d.category, d.source) == (category, source)
    assert (d.reason != "") == (source == "model")


def test_a_verdict_about_a_minor_is_never_moved_down():
    d = combine("tip", {"tip": 6}, THRESHOLDS, _pred(unrelated=0.99), False, True, True, BLEND)
    assert (d.category, d.source, d.minor) == ("tip", "rules", True)
    d = combine("at_risk", {"at_risk": 2}, THRESHOLDS, _pred(tip=0.9), False, True, True, BLEND)
    assert d.category == "tip"  # moving up is still allowed


def test_no_words_leaves_the_rules_verdict():
    d = combine("unrelated", {}, THRESHOLDS, _pred(crisis=0.99), False, False, False, BLEND)
    assert (d.category, d.source) == ("unrelated", "rules")


@pytest.mark.parametrize(("rules_minor", "p_minor", "minor"), [
    (True, 0.0, True), (False, 0.7, True), (False, 0.5, False),
])
def test_minor_is_raised_never_lowered(rules_minor, p_minor, minor):
    pred = replace(_pred(tip=0.9), minor=p_minor)
    assert combine("tip", {"tip": 4}, THRESHOLDS, pred, False, rules_minor, True, BLEND).minor is minor


def test_vectorised_tuning_agrees_with_combine():
    """triage.train searches blends with a numpy copy of combine(); both must decide alike."""
    pytest.importorskip("sklearn")
    from triage.train import Cached, _strength, categories_for

    rng = np.random.default_rng(0)
    n = 400
    probs = rng.dirichlet(np.ones(len(CATEGORIES)) * 0.5, size=n)
    rule_cat = rng.integers(0, len(CATEGORIES), size=n)
    scores = [{CATEGORIES[r]: float(rng.choice([0.5, 1, 2, 2.5, 4])), "crisis": float(rng.choice([-2, 0, 1]))}
              for r in rule_cat]
    for sc, r in zip(scores, rule_cat, strict=True):
        if CATEGORIES[r] == "crisis":
            sc["crisis"] = 3.0
    cached = Cached(gold=rule_cat, rule_cat=rule_cat, has_words=rng.random(n) > 0.05,
                    vetoed=rng.random(n) > 0.8, minor=rng.random(n) > 0.8,
                    crisis_signal=np.array([s.get("crisis", 0) > 0 for s in scores]), probs=probs, scores=scores,
                    thresholds=THRESHOLDS)
    blends = (BLEND, Blend(0.1, 1.01, 0.0, 0.3, 0.5, 0.4, 0.5, 0.2, 0.5, 0.6),
              Blend(0.7, 0.5, 0.6, 0.8, 2.0, 1.01, 0.9, 0.9, 1.01, 0.2))
    for blend in blends:
        fast = categories_for(cached, blend, _strength(cached, blend.weak_margin))
        for i in range(n):
            pred = Prediction(probs=dict(zip(CATEGORIES, probs[i].tolist(), strict=True)), minor=0.0,
                              columns=np.zeros(0, dtype=np.intp), values=np.zeros(0))
            d = combine(CATEGORIES[rule_cat[i]], scores[i], THRESHOLDS, pred, bool(cached.vetoed[i]),
                        bool(cached.minor[i]), bool(cached.has_words[i]), blend)
            assert CATEGORIES[fast[i]] == d.category


# ---- training: reproducible, and the runtime scores exactly what scikit-learn learned -----------------

@pytest.fixture(scope="module")
def sample():
    pytest.importorskip("sklearn")
    from triage.evaluate import load_corpus

    items, _ = load_corpus(REPO / "tests" / "corpus" / "signals_dev2.jsonl", "dev")
    items = items[:120]
    return [i.text for i in items], [i.category for i in items], [i.minor_involved for i in items]


def test_training_is_reproducible(sample, tmp_path):
    from triage.train import base_meta, fit, write_model

    a = fit(*sample, seed=7)
    b = fit(*sample, seed=7)
    assert a.keys() == b.keys()
    for k in a:
        assert np.array_equal(a[k], b[k]), k
    meta = base_meta(Blend(), 7)
    one = write_model(tmp_path / "a.npz", a, meta)
    two = write_model(tmp_path / "b.npz", b, meta)
    assert one == two  # byte for byte: the model's version hash is stable
    assert load_model(tmp_path / "a.npz").version == load_model(tmp_path / "b.npz").version


def test_runtime_features_match_scikit_learn(sample):
    from scipy.sparse import hstack
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    from triage.learned import ANALYZERS
    from triage.train import MIN_DF, SEED, C, base_meta, fit, model_from

    texts, labels, minors = sample
    model = model_from(fit(texts, labels, minors, seed=SEED), base_meta(Blend(), SEED))
    folded = [fold(t) for t in texts]
    x = hstack([TfidfVectorizer(analyzer=a, sublinear_tf=True, min_df=MIN_DF).fit(folded).transform(folded)
                for a in ANALYZERS.values()]).tocsr()
    clf = LogisticRegression(C=C, class_weight="balanced", max_iter=5000, random_state=SEED).fit(x, labels)
    expected = clf.predict_proba(x)
    for i, f in enumerate(folded[:40]):
        got = predict(model, f).probs
        for j, c in enumerate(clf.classes_):
            assert got[c] == pytest.approx(expected[i, j], abs=1e-5)


# ---- a bad model file fails loudly, naming the file ------------------------------------------------

def _npz(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _good_arrays() -> dict:
    with np.load(default_model_file(), allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}


BAD_MODELS = [
    ("missing", None, "cannot read the triage model"),
    ("noise", b"\x00\x01not a zip at all" * 10, "not a triage model file"),
    ("truncated", "TRUNCATE", "not a triage model file"),
    ("no_coef", "DROP:coef", "missing array(s) coef"),
    ("shape", "SHAPE", "shapes do not match"),
    ("pickled", "PICKLE", "not a triage model file"),
    ("format", "FORMAT", "format 99"),
]


@pytest.mark.parametrize(("name", "content", "message"), BAD_MODELS)
def test_bad_model_file_is_a_clear_error_naming_the_file(tmp_path, name, content, message):
    path = tmp_path / f"{name}.npz"
    good = _good_arrays()
    if content == "TRUNCATE":
        content = default_model_file().read_bytes()[:2000]
    elif content == "DROP:coef":
        content = _npz(**{k: v for k, v in good.items() if k != "coef"})
    elif content == "SHAPE":
        content = _npz(**(good | {"intercept": np.zeros(3, dtype=np.float32)}))
    elif content == "PICKLE":
        content = _npz(**(good | {"coef": np.array([{"a": 1}], dtype=object)}))
    elif content == "FORMAT":
        meta = str(good["meta"]).replace('"format": 1', '"format": 99')
        content = _npz(**(good | {"meta": np.asarray(meta)}))
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ModelError) as err:
        load_model(path)
    assert str(path) in str(err.value) and message in str(err.value)
    # through load_ruleset it is also a RuleError, which the CLI and the worker report cleanly
    with pytest.raises(RuleError) as err2:
        load_ruleset(model_file=path)
    assert isinstance(err2.value, ModelFileError) and str(path) in str(err2.value)


def test_the_packaged_model_is_package_data():
    assert default_model_file() == REPO / "triage" / "model" / "triage_model.npz"
    assert '"model/*.npz"' in (REPO / "pyproject.toml").read_text()
    with zipfile.ZipFile(default_model_file()) as zf:  # an .npz of plain arrays: no pickled objects
        assert all(n.endswith(".npy") for n in zf.namelist())
    assert Path(load_model().path) == default_model_file()
