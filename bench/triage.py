"""Triage speed: the engine (RE2 set prefilter + Python re on the hits, plus the learned model)
against a naive loop of one case-insensitive re.search per pattern, on the same messages in the
same run; also the rules alone and the model alone, to show what the second opinion costs.

    python bench/triage.py [--corpus tests/corpus/signals.jsonl] [--repeat 3] [--json]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from triage.engine import classify_text, load_ruleset  # noqa: E402
from triage.learned import predict  # noqa: E402
from triage.text import fold  # noqa: E402


def load_texts(path: Path) -> list[str]:
    texts = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            d = json.loads(line)
            texts.append("\n".join(t for t in (d.get("subject"), d.get("text")) if t))
    return texts


def timed(fn, texts: list[str], repeat: int) -> float:
    """Best of `repeat` runs, seconds per message."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for t in texts:
            fn(t)
        best = min(best, (time.perf_counter() - start) / len(texts))
    return best


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", type=Path, default=REPO / "tests" / "corpus" / "signals.jsonl")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if not args.corpus.exists():
        print(f"bench/triage.py: corpus not found: {args.corpus}", file=sys.stderr)
        return 2
    texts = load_texts(args.corpus)
    rs = load_ruleset()
    patterns = [p.pattern for r in rs.rules for p in r.patterns] + \
        [p.pattern for pats in rs.indicators.values() for p in pats]
    naive_compiled = [re.compile(p, re.IGNORECASE) for p in patterns]
    no_prefilter = replace(rs, _prefilter=None, _always=())
    rules_only = replace(rs, model=None)
    folded = {t: fold(t) for t in texts}

    def naive(text: str) -> int:
        return sum(1 for p in naive_compiled if p.search(text))

    def engine(text: str) -> object:
        return classify_text(text, "en", rs)

    def engine_plain_re(text: str) -> object:
        return classify_text(text, "en", no_prefilter)

    def engine_rules_only(text: str) -> object:
        return classify_text(text, "en", rules_only)

    def model_only(text: str) -> object:
        return predict(rs.model, folded[text])

    for t in texts[:20]:  # warm caches
        engine(t), naive(t), engine_plain_re(t)
    t_naive = timed(naive, texts, args.repeat)
    t_engine = timed(engine, texts, args.repeat)
    t_plain = timed(engine_plain_re, texts, args.repeat)
    t_rules = timed(engine_rules_only, texts, args.repeat)
    t_model = timed(model_only, texts, args.repeat) if rs.model is not None else 0.0
    agree = sum(classify_text(t, "en", rs) == classify_text(t, "en", no_prefilter) for t in texts)
    figures = {
        "messages": len(texts),
        "patterns": len(patterns),
        "rules": len(rs.rules),
        "naive_us_per_message": round(t_naive * 1e6, 1),
        "engine_us_per_message": round(t_engine * 1e6, 1),
        "engine_without_re2_us_per_message": round(t_plain * 1e6, 1),
        "rules_only_us_per_message": round(t_rules * 1e6, 1),
        "model_only_us_per_message": round(t_model * 1e6, 1),
        "ruleset": rs.version,
        "engine_messages_per_second": round(1 / t_engine),
        "speedup_vs_naive": round(t_naive / t_engine, 2),
        "prefilter_speedup": round(t_plain / t_engine, 2),
        "prefilter_agreement": f"{agree}/{len(texts)}",
    }
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        print(f"{len(texts)} messages, {len(rs.rules)} rules, {len(patterns)} patterns (best of {args.repeat})")
        print(f"  naive loop (one re.search per pattern, full classification not included): "
              f"{figures['naive_us_per_message']:>8} µs/message")
        print(f"  engine without RE2 prefilter:  {figures['engine_without_re2_us_per_message']:>8} µs/message")
        print(f"  rules alone (RE2 set + re):    {figures['rules_only_us_per_message']:>8} µs/message")
        print(f"  learned model alone (numpy):   {figures['model_only_us_per_message']:>8} µs/message")
        print(f"  engine (rules + model):        {figures['engine_us_per_message']:>8} µs/message  "
              f"= {figures['engine_messages_per_second']} messages/s  [{rs.version}]")
        print(f"  engine vs naive loop: {figures['speedup_vs_naive']}x faster; "
              f"prefilter {figures['prefilter_speedup']}x; same results on {figures['prefilter_agreement']}")
    return 0 if agree == len(texts) else 1


if __name__ == "__main__":
    sys.exit(main())
