"""Language detection: the combined detector against langdetect alone, on tests/corpus/languages.jsonl.

    .venv/bin/python bench/language.py [--rounds N]

Prints accuracy (overall and on texts of at most five words) and microseconds per text for each, in
the same run, after loading both models, and the ratio of their speeds. py3langid restricted to the
same languages is shown as well, for reference.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from intake.language import CombinedLanguageDetector

CORPUS = Path(__file__).resolve().parent.parent / "tests" / "corpus" / "languages.jsonl"
SHORT_WORDS = 5


def load_corpus(path: Path = CORPUS) -> list[tuple[str, str]]:
    with path.open(encoding="utf-8") as f:
        return [(row["text"], row["language"]) for row in map(json.loads, f) if row]


def langdetect_alone(seed: int = 0) -> Callable[[str], str]:
    """langdetect as the project used it before: all its languages, fixed seed."""
    from langdetect.detector_factory import PROFILES_DIRECTORY, DetectorFactory
    from langdetect.lang_detect_exception import LangDetectException

    factory = DetectorFactory()
    factory.load_profile(PROFILES_DIRECTORY)
    factory.set_seed(seed)

    def detect(text: str) -> str:
        try:
            detector = factory.create()
            detector.append(text)
            probs = detector.get_probabilities()
        except LangDetectException:
            return "und"
        if not probs:
            return "und"
        lang = probs[0].lang
        return "zh" if lang.startswith("zh") else lang

    return detect


def py3langid_alone(languages: tuple[str, ...]) -> Callable[[str], str]:
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    identifier.set_languages(languages)
    return lambda text: identifier.classify(text)[0]


def measure(detect: Callable[[str], str], corpus: list[tuple[str, str]], rounds: int) -> dict[str, float]:
    for text, _ in corpus[:20]:  # warm up
        detect(text)
    answers = [detect(text) for text, _ in corpus]
    per_round = []
    for _ in range(rounds):
        started = time.perf_counter()
        for text, _ in corpus:
            detect(text)
        per_round.append((time.perf_counter() - started) / len(corpus) * 1e6)
    short = [i for i, (text, _) in enumerate(corpus) if len(text.split()) <= SHORT_WORDS]
    right = [answer == lang for answer, (_, lang) in zip(answers, corpus, strict=True)]
    return {
        "accuracy": sum(right) / len(corpus),
        "short_accuracy": sum(right[i] for i in short) / len(short),
        "us_per_text": statistics.median(per_round),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="timed passes over the corpus (median is shown)")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    args = parser.parse_args()

    corpus = load_corpus()
    n_short = sum(len(text.split()) <= SHORT_WORDS for text, _ in corpus)
    combined = CombinedLanguageDetector()
    contenders: dict[str, Callable[[str], str]] = {
        "combined": lambda text: combined.detect(text).code,
        "langdetect alone": langdetect_alone(),
        "py3langid restricted": py3langid_alone(combined.languages),
    }
    results = {name: measure(detect, corpus, args.rounds) for name, detect in contenders.items()}
    ratio = results["langdetect alone"]["us_per_text"] / results["combined"]["us_per_text"]
    if args.json:
        print(json.dumps({"texts": len(corpus), "short_texts": n_short, "detectors": results,
                          "speedup_vs_langdetect": round(ratio, 2)}, indent=2))
        return
    print(f"{len(corpus)} texts ({n_short} of at most {SHORT_WORDS} words), "
          f"{len(combined.languages)} languages, {args.rounds} rounds")
    print(f"{'detector':<22} {'accuracy':>9} {'short':>9} {'us/text':>9}")
    for name, r in results.items():
        print(f"{name:<22} {r['accuracy']:>9.1%} {r['short_accuracy']:>9.1%} {r['us_per_text']:>9.1f}")
    print(f"combined is {ratio:.1f}x the speed of langdetect alone")


if __name__ == "__main__":
    main()
