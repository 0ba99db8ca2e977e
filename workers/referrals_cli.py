"""`hotline referrals …`: search the referral directory from a terminal.

Attach with `cli.add_command(referrals)`. Exit codes as everywhere: 0 success (also when
nothing matches), 2 bad input, 1 internal failure; never a traceback.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from routing.directory import (
    AGE_GROUPS,
    GENDERS,
    SERVICES,
    TRAFFICKING_TYPES,
    Directory,
    DirectoryError,
    Match,
    SearchError,
    load_directory,
    results_json,
)
from routing.geo import Geocoder, GeoError, Place

from .cli_guard import guard

_bad_input = guard(GeoError, SearchError, DirectoryError)


def _load(data: str | None) -> Directory:
    return load_directory(Path(data) if data else None)


@click.group(help="The referral directory: organisations to refer a contact to.")
def referrals() -> None:
    pass


def _where(zip_code: str | None, city: str | None, geocoder: Geocoder) -> Place | None:
    if zip_code is not None and city is not None:
        raise SearchError("zip", "give --zip or --city, not both")
    if zip_code is not None:
        return geocoder.zip(zip_code)
    if city is not None:
        return geocoder.city(city)
    return None


def _pretty(m: Match) -> list[str]:
    o = m.organisation
    dist = "" if m.distance_miles is None else f"{m.distance_miles:6.1f} mi  "
    pad = " " * len(dist)
    phone = f"+1 {o.phone[2:5]}-{o.phone[5:8]}-{o.phone[8:]}"
    ages = {"minors": "minors", "youth_18_24": "youth 18-24", "adults": "adults"}
    ttype = {"both": "sex & labor trafficking", "sex": "sex trafficking", "labor": "labor trafficking"}
    nat = "any nationality" if o.nationalities == "any" else "focus " + ", ".join(o.nationalities)
    return [
        f"{dist}{o.name}{'  [24/7]' if o.open_24_7 else ''}",
        f"{pad}{o.city}, {o.state} {o.zip} · {phone}" + (f" · {o.email}" if o.email else ""),
        f"{pad}services: {', '.join(s.replace('_', ' ') for s in o.services)}",
        f"{pad}serves: {', '.join(o.genders)}; {', '.join(ages[a] for a in o.age_groups)}; "
        f"{ttype[o.trafficking_type]}; {nat} · languages: {', '.join(o.languages)}",
    ]


@referrals.command("search", help="Organisations near a ZIP code or city offering what the contact needs, "
                                  "nearest first. Every filter must hold; repeat --service to require several.")
@click.option("--zip", "zip_code", metavar="ZIP", help="Measure from this ZIP code (e.g. 77002).")
@click.option("--city", metavar="'CITY, ST'", help="Measure from this city (e.g. 'Houston, TX').")
@click.option("--radius", type=float, metavar="MILES", help="Only organisations within this many miles.")
@click.option("--service", "services", multiple=True, metavar="SERVICE",
              help=f"Required service (repeatable): {', '.join(SERVICES)}.")
@click.option("--gender", help=f"Gender served: {', '.join(GENDERS)}.")
@click.option("--age-group", help=f"Age group served: {', '.join(AGE_GROUPS)}.")
@click.option("--nationality", metavar="CC", help="Contact's nationality, ISO 3166 code (e.g. MX).")
@click.option("--trafficking-type", help=f"Type of trafficking: {', '.join(TRAFFICKING_TYPES)}.")
@click.option("--language", metavar="CODE", help="Language spoken by staff, ISO 639 code (e.g. es, vi, ase).")
@click.option("--open-24-7", "open_24_7", is_flag=True, help="Only organisations answering 24/7.")
@click.option("--limit", type=int, default=20, show_default=True, help="At most this many results.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON: {results: [{organisation, distance_miles}], count}.")
@click.option("--data", type=click.Path(dir_okay=False), default=None,
              help="Directory file (.jsonl or .jsonl.gz; default: the bundled directory).")
@_bad_input
def search(zip_code: str | None, city: str | None, radius: float | None, services: tuple[str, ...],
           gender: str | None, age_group: str | None, nationality: str | None, trafficking_type: str | None,
           language: str | None, open_24_7: bool, limit: int, as_json: bool, data: str | None) -> None:
    place = _where(zip_code, city, Geocoder())
    if radius is not None and place is None:
        raise SearchError("radius", "--radius needs --zip or --city to measure from")
    directory = _load(data)
    matches = directory.search(
        (place.lat, place.lon) if place else None, radius, services=services, gender=gender, age_group=age_group,
        nationality=nationality, trafficking_type=trafficking_type, language=language, open_24_7=open_24_7,
        limit=limit)
    if as_json:
        out = results_json(matches)
        out["near"] = None if place is None else {"label": place.label, "lat": place.lat, "lon": place.lon}
        click.echo(json.dumps(out, indent=2, ensure_ascii=False))
        return
    where = "" if place is None else f" within {radius:g} mi of {place.label}" if radius else f" nearest {place.label}"
    if not matches:
        click.echo(f"no organisations match{where}; try a larger --radius or fewer filters")
        return
    click.echo(f"{len(matches)} organisation{'s' if len(matches) != 1 else ''}{where}:")
    for m in matches:
        click.echo("")
        for line in _pretty(m):
            click.echo(line)


@referrals.command("check", help="Validate a directory file; print a summary, or the first bad row (exit 2).")
@click.argument("path", required=False, type=click.Path(dir_okay=False))
@_bad_input
def check(path: str | None) -> None:
    directory = _load(path)
    orgs = list(directory)
    states = {o.state for o in orgs}
    offered = {s for o in orgs for s in o.services}
    missing = [s for s in SERVICES if s not in offered]
    click.echo(f"ok: {len(orgs)} organisations in {len(states)} states and territories; "
               f"{sum(o.open_24_7 for o in orgs)} open 24/7")
    if missing:
        click.echo(f"note: no organisation offers {', '.join(missing)}")
