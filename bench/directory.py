"""Referral directory search speed on the seed data: the Directory (facet masks, latitude slice +
longitude box, vectorised haversine) against a naive full scan (haversine and facet checks for
every row in plain Python), on the same queries in the same run. Also the Directory with its box
prefilter switched off, to show what the box alone buys.

    python bench/directory.py [--queries 2000] [--repeat 3] [--seed 1] [--data FILE] [--json]

Queries: a ZIP code (half uniformly from all ZIPs in the states and DC, half from cities weighted
by size; geocoded beforehand, not timed), a radius of 10/25/50/100
miles or none (nearest 20), and 0-2 services plus sometimes a language, age group or gender.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from routing.directory import SERVICES, Organisation, load_directory  # noqa: E402
from routing.geo import STATES_AND_DC, Geocoder, haversine_miles  # noqa: E402

Query = dict[str, Any]


def make_queries(n: int, seed: int, geocoder: Geocoder) -> list[Query]:
    rng = random.Random(seed)
    zips = geocoder.zip_codes()
    anywhere = sorted(code for code, (_lat, _lon, _city, state) in zips.items() if state in STATES_AND_DC)
    cities = [c for c in geocoder.cities() if c.state in STATES_AND_DC]
    city_weights = [len(c.zips) ** 1.5 for c in cities]  # most contacts are where most people live
    queries = []
    for _ in range(n):
        if rng.random() < 0.5:
            code = rng.choice(anywhere)
        else:
            code = rng.choice(rng.choices(cities, weights=city_weights)[0].zips)
        lat, lon = zips[code][:2]
        queries.append({
            "near": (lat, lon),
            "radius_miles": rng.choice([10.0, 25.0, 50.0, 50.0, 100.0, None]),
            "services": rng.sample(SERVICES, rng.choice([0, 1, 1, 2])),
            "language": rng.choice([None, None, None, "es", "es", "vi", "zh"]),
            "age_group": rng.choice([None, None, None, "minors", "adults"]),
            "gender": rng.choice([None, None, "female", "male"]),
            "limit": 20,
        })
    return queries


def naive_search(orgs: list[Organisation], near: tuple[float, float], radius_miles: float | None,
                 services: list[str], language: str | None, age_group: str | None, gender: str | None,
                 limit: int) -> list[str]:
    hits = []
    for o in orgs:
        d = haversine_miles(near[0], near[1], o.lat, o.lon)
        if radius_miles is not None and d > radius_miles:
            continue
        if any(s not in o.services for s in services):
            continue
        if language is not None and language not in o.languages:
            continue
        if age_group is not None and age_group not in o.age_groups:
            continue
        if gender is not None and not o.serves_gender(gender):
            continue
        hits.append((d, o.name.casefold(), o.id))
    hits.sort()
    return [h[2] for h in hits[:limit]]


def timed(fn: Callable[[Query], Any], queries: list[Query], repeat: int) -> float:
    """Best of `repeat` passes, searches per second."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for q in queries:
            fn(q)
        best = min(best, time.perf_counter() - start)
    return len(queries) / best


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--queries", type=int, default=2000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--data", type=Path, default=None, help="directory file (default: the bundled seed data)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if args.queries < 1 or args.repeat < 1:
        print("bench/directory.py: --queries and --repeat must be at least 1", file=sys.stderr)
        return 2

    directory = load_directory(args.data)
    orgs = list(directory)
    queries = make_queries(args.queries, args.seed, Geocoder())

    no_box = load_directory(args.data)

    def whole_table(lat0: float, lon0: float, radius: float, mask: np.ndarray | None) -> np.ndarray:
        return np.arange(len(orgs)) if mask is None else np.flatnonzero(mask)

    no_box._within_box = whole_table  # type: ignore[method-assign]

    def engine(q: Query) -> list[str]:
        return [m.organisation.id for m in directory.search(**q)]

    def engine_no_box(q: Query) -> list[str]:
        return [m.organisation.id for m in no_box.search(**q)]

    def naive(q: Query) -> list[str]:
        return naive_search(orgs, **q)

    mismatches = sum(engine(q) != naive(q) or engine_no_box(q) != naive(q) for q in queries)
    results = [len(engine(q)) for q in queries]
    t_naive = timed(naive, queries, args.repeat)
    t_engine = timed(engine, queries, args.repeat)
    t_no_box = timed(engine_no_box, queries, args.repeat)
    figures = {
        "organisations": len(orgs),
        "queries": len(queries),
        "mean_results": round(sum(results) / len(results), 1),
        "empty_results": sum(r == 0 for r in results),
        "naive_searches_per_s": round(t_naive, 1),
        "directory_searches_per_s": round(t_engine, 1),
        "directory_without_box_searches_per_s": round(t_no_box, 1),
        "speedup_vs_naive": round(t_engine / t_naive, 1),
        "box_prefilter_gain": round(t_engine / t_no_box, 2),
        "mismatches": mismatches,
    }
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        print(f"{figures['organisations']} organisations, {figures['queries']} queries "
              f"(mean {figures['mean_results']} results, {figures['empty_results']} empty), best of {args.repeat}")
        print(f"  naive full scan (Python haversine per row): {t_naive:10,.0f} searches/s "
              f"({1e6 / t_naive:,.0f} µs each)")
        print(f"  Directory.search:                           {t_engine:10,.0f} searches/s "
              f"({1e6 / t_engine:,.0f} µs each)")
        print(f"  Directory.search without the box prefilter: {t_no_box:10,.0f} searches/s "
              f"({1e6 / t_no_box:,.0f} µs each)")
        print(f"  speed-up vs naive: {figures['speedup_vs_naive']}x; box prefilter alone: "
              f"{figures['box_prefilter_gain']}x; result mismatches: {mismatches}")
    return 1 if mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
