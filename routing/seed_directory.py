"""Generate the seed referral directory: invented organisations in every state, weighted by
population, placed near real city centres, with facet mixes by kind of organisation.

    python -m routing.seed_directory --out routing/data/organisations.jsonl.gz [--count 3200] [--seed N]

Deterministic: the same seed and the same `zipcodes` data give the same bytes. Every name is
invented (made-up words and places), every phone is a fictional +1 555-555-01xx number and
every email is @example.org.
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import random
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .directory import Organisation
from .geo import City, Geocoder

DEFAULT_SEED = 8  # any seed works; with this one the example searches (77002, 10001, 60601, 90012) find something
DEFAULT_COUNT = 3200
MIN_PER_STATE = 3

# 2020 census, thousands.
POPULATION: dict[str, int] = {
    "AL": 5024, "AK": 733, "AZ": 7152, "AR": 3012, "CA": 39538, "CO": 5774, "CT": 3606, "DE": 990,
    "DC": 690, "FL": 21538, "GA": 10712, "HI": 1455, "ID": 1839, "IL": 12813, "IN": 6786, "IA": 3190,
    "KS": 2938, "KY": 4506, "LA": 4658, "ME": 1362, "MD": 6177, "MA": 7030, "MI": 10077, "MN": 5706,
    "MS": 2961, "MO": 6155, "MT": 1084, "NE": 1962, "NV": 3105, "NH": 1378, "NJ": 9289, "NM": 2118,
    "NY": 20201, "NC": 10439, "ND": 779, "OH": 11799, "OK": 3959, "OR": 4237, "PA": 13003, "RI": 1097,
    "SC": 5118, "SD": 887, "TN": 6911, "TX": 29146, "UT": 3272, "VT": 643, "VA": 8631, "WA": 7705,
    "WV": 1794, "WI": 5894, "WY": 577, "PR": 3286,
}

SPANISH_HEAVY = {"TX", "CA", "FL", "NM", "AZ", "NV", "NY", "NJ", "IL", "CO"}
# Language -> (states where communities are large, probability there).
LANGUAGE_COMMUNITIES: dict[str, tuple[frozenset[str], float]] = {
    "vi": (frozenset({"CA", "TX", "WA", "VA", "GA", "FL", "LA", "OK"}), 0.12),
    "zh": (frozenset({"CA", "NY", "MA", "WA", "NJ", "IL", "HI"}), 0.12),
    "ko": (frozenset({"CA", "NY", "NJ", "VA", "GA", "WA", "HI"}), 0.08),
    "tl": (frozenset({"CA", "HI", "NV", "WA", "AK", "IL", "NJ"}), 0.10),
    "ht": (frozenset({"FL", "NY", "MA", "NJ"}), 0.15),
    "pt": (frozenset({"MA", "NJ", "RI", "CT", "FL"}), 0.12),
    "ar": (frozenset({"MI", "NY", "NJ", "CA", "IL", "OH", "TX"}), 0.08),
    "ru": (frozenset({"NY", "NJ", "WA", "CA", "OR", "PA"}), 0.06),
    "uk": (frozenset({"NY", "NJ", "WA", "PA", "IL"}), 0.05),
    "so": (frozenset({"MN", "OH", "WA", "ME"}), 0.12),
    "hmn": (frozenset({"MN", "WI", "CA", "NC"}), 0.08),
    "fr": (frozenset({"LA", "ME", "NY", "VT"}), 0.06),
    "mam": (frozenset({"CA", "FL", "TX", "GA", "NC", "NY", "AL"}), 0.04),
    "quc": (frozenset({"CA", "FL", "TX", "GA", "NC", "NY"}), 0.03),
    "hi": (frozenset({"NY", "NJ", "TX", "CA", "IL"}), 0.03),
    "th": (frozenset({"CA", "NV", "TX"}), 0.03),
}
NATIONALITY_FOCUS = ("MX", "GT", "HN", "SV", "PH", "CN", "TH", "VN", "IN", "NG", "HT", "KR", "UA", "VE")
NATIONALITY_WEIGHTS = (10, 7, 6, 5, 4, 3, 3, 3, 2, 2, 2, 2, 1, 2)

WORD_A = ("Amber", "Birchwood", "Bluewater", "Cedar", "Copperleaf", "Driftwood", "Emberlight", "Fernhollow",
          "Granite", "Heron", "Indigo", "Juniper", "Kestrel", "Lanternfield", "Meadowlark", "Northwind",
          "Oakhaven", "Pinecrest", "Quietwater", "Riverstone", "Saltmarsh", "Thistle", "Umberland", "Violet",
          "Willowbend", "Yarrow", "Stillwater", "Wrenfield", "Larkspur", "Cobblestone")
WORD_B = ("Bridge", "Compass", "Harbor", "Lantern", "Path", "Circle", "Hearth", "Gate", "Anchor", "Beacon",
          "Threshold", "Keystone", "Crossing", "Commons", "Landing", "Trellis")
PLACE_START = ("Ash", "Bel", "Bram", "Cal", "Dun", "Elm", "Fen", "Glen", "Hol", "Ister", "Kel", "Lind", "Mar",
               "Nor", "Orr", "Pell", "Quen", "Ros", "Stan", "Thorn", "Vell", "Wyn", "Yar", "Zell")
PLACE_END = ("brook", "by", "combe", "dale", "field", "ford", "gate", "haven", "holt", "leigh", "mere", "moor",
             "ridge", "stead", "ton", "vale", "wick", "wood", "marsh", "crest")
PLACE_SUFFIX = ("", "", "", " Valley", " Hills", " County", " Springs", " Bay")


@dataclass(frozen=True)
class Kind:
    name: str
    weight: float
    titles: tuple[str, ...]
    build: Callable[[random.Random], dict[str, object]]


def _pick(rng: random.Random, options: dict[object, float]) -> object:
    keys = list(options)
    return rng.choices(keys, weights=[options[k] for k in keys])[0]


def _some(rng: random.Random, base: list[str], optional: dict[str, float]) -> list[str]:
    return base + [s for s, p in optional.items() if rng.random() < p and s not in base]


def _ages(rng: random.Random, minors: float, youth: float, adults: float = 1.0) -> list[str]:
    out = [a for a, p in (("minors", minors), ("youth_18_24", youth), ("adults", adults)) if rng.random() < p]
    if "minors" in out and "adults" in out and "youth_18_24" not in out:
        out.insert(1, "youth_18_24")  # nobody serves children and adults but turns away 19-year-olds
    return out or ["adults"]


def _comprehensive(rng: random.Random) -> dict[str, object]:
    return {
        "services": _some(rng, ["case_management"], {
            "legal": 0.4, "mental_health": 0.5, "transportation": 0.5, "interpretation": 0.3, "job_training": 0.25,
            "medical": 0.15, "shelter_emergency": 0.2, "legal_immigration": 0.3, "substance_use": 0.1}),
        "genders": _pick(rng, {("any",): 0.6, ("female",): 0.3, ("female", "nonbinary"): 0.1}),
        "age_groups": _ages(rng, 0.3, 0.8),
        "trafficking_type": _pick(rng, {"both": 0.7, "sex": 0.2, "labor": 0.1}),
        "open_24_7": rng.random() < 0.35,
    }


def _shelter(rng: random.Random) -> dict[str, object]:
    return {
        "services": _some(rng, ["shelter_emergency"], {
            "case_management": 0.8, "shelter_transitional": 0.3, "transportation": 0.4, "mental_health": 0.3,
            "medical": 0.1}),
        "genders": _pick(rng, {("female",): 0.55, ("male",): 0.15, ("any",): 0.2, ("female", "nonbinary"): 0.1}),
        "age_groups": _ages(rng, 0.0, 0.6),
        "trafficking_type": _pick(rng, {"sex": 0.5, "both": 0.4, "labor": 0.1}),
        "open_24_7": rng.random() < 0.85,
    }


def _youth(rng: random.Random) -> dict[str, object]:
    minors = rng.random() < 0.7
    return {
        "services": _some(rng, ["case_management"], {
            "shelter_emergency": 0.7, "mental_health": 0.6, "medical": 0.2, "substance_use": 0.15,
            "transportation": 0.4, "job_training": 0.2, "shelter_transitional": 0.15,
            # Programmes for unaccompanied immigrant children bring their own immigration lawyers.
            "legal_immigration": 0.2}),
        "genders": _pick(rng, {("any",): 0.5, ("female",): 0.35, ("male",): 0.15}),
        "age_groups": (["minors"] if minors else []) + (["youth_18_24"] if not minors or rng.random() < 0.5 else []),
        "trafficking_type": _pick(rng, {"sex": 0.6, "both": 0.35, "labor": 0.05}),
        "open_24_7": rng.random() < 0.7,
    }


def _legal(rng: random.Random) -> dict[str, object]:
    services = _some(rng, [], {"legal": 0.8, "legal_immigration": 0.7, "interpretation": 0.3, "case_management": 0.3})
    if not {"legal", "legal_immigration"} & set(services):
        services.insert(0, "legal_immigration")
    return {
        "services": services,
        "genders": ("any",),
        "age_groups": _ages(rng, 0.3, 0.7),
        "trafficking_type": _pick(rng, {"both": 0.6, "labor": 0.25, "sex": 0.15}),
        "open_24_7": rng.random() < 0.02,
        "focus": 0.3,
    }


def _health(rng: random.Random) -> dict[str, object]:
    services = _some(rng, [], {"medical": 0.8, "mental_health": 0.7, "substance_use": 0.3, "interpretation": 0.2})
    return {
        "services": services or ["medical"],
        "genders": _pick(rng, {("any",): 0.7, ("female",): 0.3}),
        "age_groups": _ages(rng, 0.35, 0.9),
        "trafficking_type": _pick(rng, {"both": 0.8, "sex": 0.15, "labor": 0.05}),
        "open_24_7": rng.random() < 0.15,
    }


def _recovery(rng: random.Random) -> dict[str, object]:
    return {
        "services": _some(rng, ["substance_use"], {
            "mental_health": 0.7, "shelter_transitional": 0.3, "case_management": 0.5, "medical": 0.15}),
        "genders": _pick(rng, {("female",): 0.4, ("male",): 0.3, ("any",): 0.3}),
        "age_groups": _ages(rng, 0.05, 0.5),
        "trafficking_type": _pick(rng, {"both": 0.6, "sex": 0.4}),
        "open_24_7": rng.random() < 0.4,
    }


def _workforce(rng: random.Random) -> dict[str, object]:
    return {
        "services": _some(rng, ["job_training"], {
            "case_management": 0.6, "transportation": 0.4, "interpretation": 0.2}),
        "genders": ("any",),
        "age_groups": _ages(rng, 0.05, 0.7),
        "trafficking_type": _pick(rng, {"both": 0.6, "labor": 0.3, "sex": 0.1}),
        "open_24_7": False,
    }


def _worker_center(rng: random.Random) -> dict[str, object]:
    return {
        "services": _some(rng, ["case_management"], {
            "legal": 0.6, "interpretation": 0.6, "job_training": 0.3, "legal_immigration": 0.4,
            "transportation": 0.2}),
        "genders": ("any",),
        "age_groups": _ages(rng, 0.0, 0.5),
        "trafficking_type": _pick(rng, {"labor": 0.8, "both": 0.2}),
        "open_24_7": rng.random() < 0.05,
        "focus": 0.6,
        "extra_languages": 0.5,
    }


def _language(rng: random.Random) -> dict[str, object]:
    return {
        "services": _some(rng, ["interpretation"], {"transportation": 0.2, "case_management": 0.1}),
        "genders": ("any",),
        "age_groups": ["minors", "youth_18_24", "adults"],
        "trafficking_type": "both",
        "open_24_7": rng.random() < 0.5,
        "extra_languages": 1.0,
    }


def _transitional(rng: random.Random) -> dict[str, object]:
    return {
        "services": _some(rng, ["shelter_transitional", "case_management"], {
            "job_training": 0.4, "mental_health": 0.4, "transportation": 0.3, "legal": 0.1}),
        "genders": _pick(rng, {("female",): 0.5, ("any",): 0.3, ("male",): 0.2}),
        "age_groups": _ages(rng, 0.0, 0.6),
        "trafficking_type": _pick(rng, {"sex": 0.5, "both": 0.5}),
        "open_24_7": rng.random() < 0.3,
    }


KINDS = (
    Kind("comprehensive", 0.22, ("Community Services", "Survivor Support Network", "Advocacy Collective",
                                 "Resource Alliance"), _comprehensive),
    Kind("shelter", 0.14, ("Safe House", "Shelter Program", "Refuge"), _shelter),
    Kind("youth", 0.10, ("Youth Shelter", "Youth & Family Services", "Young People's Program"), _youth),
    Kind("legal", 0.14, ("Legal Aid Project", "Justice Clinic", "Immigration Legal Services"), _legal),
    Kind("health", 0.10, ("Health Collective", "Community Clinic", "Wellness Center"), _health),
    Kind("recovery", 0.07, ("Recovery Network", "Recovery House"), _recovery),
    Kind("workforce", 0.07, ("Workforce Partners", "Pathways to Work", "Career Bridge"), _workforce),
    Kind("worker_center", 0.06, ("Worker Center", "Workers' Rights Project"), _worker_center),
    Kind("language", 0.04, ("Language Access Bureau", "Interpreter Cooperative"), _language),
    Kind("transitional", 0.06, ("Transitional Housing Program", "Homes Project"), _transitional),
)


def allocate(total: int, weights: dict[str, int], minimum: int) -> dict[str, int]:
    """Split `total` by weight (largest remainder), at least `minimum` each."""
    rest = total - minimum * len(weights)
    whole = sum(weights.values())
    shares = {k: rest * w / whole for k, w in weights.items()}
    counts = {k: minimum + int(s) for k, s in shares.items()}
    left = total - sum(counts.values())
    for k in sorted(shares, key=lambda k: (-(shares[k] - int(shares[k])), k))[:left]:
        counts[k] += 1
    return counts


def _place_name(rng: random.Random) -> str:
    return rng.choice(PLACE_START) + rng.choice(PLACE_END) + rng.choice(PLACE_SUFFIX)


def _languages(rng: random.Random, state: str, extra: float) -> list[str]:
    langs = ["es", "en"] if state == "PR" else ["en"]
    if state != "PR" and rng.random() < (0.7 if state in SPANISH_HEAVY else 0.35):
        langs.append("es")
    for code, (states, p) in LANGUAGE_COMMUNITIES.items():
        if rng.random() < (p * 2.5 if state in states else p / 6) * (1 + 3 * extra):
            langs.append(code)
    if rng.random() < 0.06 + 0.2 * extra:
        langs.append("ase")
    return langs


def generate(count: int = DEFAULT_COUNT, seed: int = DEFAULT_SEED,
             geocoder: Geocoder | None = None) -> list[Organisation]:
    rng = random.Random(seed)  # noqa: S311 (reproducible invented data, not secrets)
    geo = geocoder or Geocoder()
    zips = geo.zip_codes()
    by_state: dict[str, list[City]] = {}
    for c in geo.cities():
        if c.state in POPULATION:
            by_state.setdefault(c.state, []).append(c)
    missing = sorted(set(POPULATION) - set(by_state))
    if missing:
        raise RuntimeError(f"no cities with coordinates for {', '.join(missing)}")
    counts = allocate(count, POPULATION, MIN_PER_STATE)
    names: set[str] = set()
    orgs: list[Organisation] = []
    for state in sorted(counts):
        cities = by_state[state]
        # Services cluster in cities; a city's ZIP count stands in for its size.
        weights = [len(c.zips) ** 1.5 for c in cities]
        for _ in range(counts[state]):
            city = rng.choices(cities, weights=weights)[0]
            zip_code = rng.choice(city.zips)
            zlat, zlon = zips[zip_code][:2]
            kind = rng.choices(KINDS, weights=[k.weight for k in KINDS])[0]
            facets = kind.build(rng)
            while True:
                name = f"{rng.choice(WORD_A)} {rng.choice(WORD_B)} {rng.choice(kind.titles)} of {_place_name(rng)}"
                if name not in names:
                    names.add(name)
                    break
            focus = float(facets.pop("focus", 0.0))  # type: ignore[arg-type]
            extra = float(facets.pop("extra_languages", 0.0))  # type: ignore[arg-type]
            nationalities: object = "any"
            if rng.random() < focus:
                picked = rng.choices(NATIONALITY_FOCUS, weights=NATIONALITY_WEIGHTS, k=rng.randint(1, 4))
                nationalities = sorted(set(picked))
            slug = re.sub(r"[^a-z]+", "", "".join(name.split()[:2]).lower())
            orgs.append(Organisation.model_validate({
                "id": f"org-{len(orgs) + 1:05d}",
                "name": name,
                "city": city.name,
                "state": state,
                "zip": zip_code,
                "lat": round(zlat + rng.uniform(-0.008, 0.008), 5),
                "lon": round(zlon + rng.uniform(-0.008, 0.008), 5),
                "nationalities": nationalities,
                "languages": _languages(rng, state, extra),
                "phone": f"+155555501{rng.randrange(100):02d}",
                "email": None if rng.random() < 0.1 else f"{rng.choice(('intake', 'info', 'help'))}.{slug}@example.org",
                **facets,
            }))
    return orgs


def write_jsonl_gz(orgs: list[Organisation], out: Path) -> None:
    """Byte-for-byte reproducible: no file name or timestamp in the gzip header."""
    text = "".join(json.dumps(o.model_dump(mode="json"), ensure_ascii=False, separators=(",", ":")) + "\n"
                   for o in orgs)
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0, compresslevel=9) as gz:
        gz.write(text.encode("utf-8"))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(buf.getvalue())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m routing.seed_directory", description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True, help="file to write (.jsonl.gz)")
    ap.add_argument("--count", type=int, default=DEFAULT_COUNT, help=f"organisations (default {DEFAULT_COUNT})")
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED, help="random seed")
    args = ap.parse_args(argv)
    if args.count < MIN_PER_STATE * len(POPULATION):
        print(f"seed_directory: --count must be at least {MIN_PER_STATE * len(POPULATION)}", file=sys.stderr)
        return 2
    orgs = generate(args.count, args.seed)
    write_jsonl_gz(orgs, args.out)
    print(f"wrote {len(orgs)} organisations in {len({o.state for o in orgs})} states to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
