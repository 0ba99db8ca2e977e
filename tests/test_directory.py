"""The referral directory: search by place and facets, the geocoder, the data file loader, the
seed data, `hotline referrals` and GET /api/referrals."""

from __future__ import annotations

import gzip
import json
import math
import random
import re
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from flask import Flask

from routing.directory import (
    SERVICES,
    Directory,
    DirectoryError,
    Organisation,
    SearchError,
    default_directory_path,
    load_directory,
    read_organisations,
)
from routing.geo import STATES_AND_DC, Geocoder, GeoError, haversine_miles
from routing.seed_directory import generate, write_jsonl_gz
from workers.referrals_api import make_blueprint
from workers.referrals_cli import referrals

# Houston, TX 77002 in the zipcodes data; the hand-made directory is laid out around it.
ORIGIN = (29.7594, -95.3594)
MILES_PER_DEGREE_LAT = 3958.7613 * math.pi / 180


def north(miles: float) -> tuple[float, float]:
    return ORIGIN[0] + miles / MILES_PER_DEGREE_LAT, ORIGIN[1]


def east(miles: float) -> tuple[float, float]:
    return ORIGIN[0], ORIGIN[1] + miles / (MILES_PER_DEGREE_LAT * math.cos(math.radians(ORIGIN[0])))


def row(id: str, name: str, at: tuple[float, float], **facets: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": id, "name": name, "city": "Houston", "state": "TX", "zip": "77002", "lat": at[0], "lon": at[1],
        "services": ["case_management"], "genders": ["any"], "age_groups": ["adults"], "nationalities": "any",
        "trafficking_type": "both", "languages": ["en"], "phone": "+15555550100", "email": "info@example.org",
        "open_24_7": False,
    }
    base.update(facets)
    return base


ROWS = [
    row("a-shelter", "Alder Shelter", north(5), services=["shelter_emergency", "case_management"],
        genders=["female"], age_groups=["youth_18_24", "adults"], languages=["en", "es"], open_24_7=True,
        trafficking_type="sex"),
    row("b-legal", "Birch Legal", east(10), services=["legal", "legal_immigration"], languages=["en", "es", "vi"],
        nationalities=["MX", "GT"], trafficking_type="labor"),
    row("c-youth", "Cedar Youth", north(-20), services=["shelter_emergency", "mental_health"],
        age_groups=["minors"], genders=["any"], languages=["en", "es"], open_24_7=True, trafficking_type="sex"),
    row("d-men", "Dogwood House", east(-30), services=["shelter_emergency"], genders=["male"],
        languages=["en"], trafficking_type="both"),
    row("e-far", "Elm Far Clinic", north(120), services=["medical", "mental_health"], languages=["en", "ase"]),
    row("f-tie", "Fir Tie", north(15), services=["interpretation"], languages=["en", "zh"],
        nationalities=["CN"]),
    row("g-tie", "Aspen Tie", north(15), services=["interpretation"], languages=["en", "zh"]),
]


@pytest.fixture(scope="module")
def small() -> Directory:
    return Directory(Organisation.model_validate(r) for r in ROWS)


@pytest.fixture(scope="module")
def seed() -> Directory:
    return load_directory()


@pytest.fixture(scope="module")
def geocoder() -> Geocoder:
    return Geocoder()


def ids(matches: list[Any]) -> list[str]:
    return [m.organisation.id for m in matches]


# ---- search -------------------------------------------------------------------------------

SEARCHES = [
    ("radius only, nearest first", dict(radius_miles=12), ["a-shelter", "b-legal"]),
    ("radius takes the ties in name order", dict(radius_miles=16), ["a-shelter", "b-legal", "g-tie", "f-tie"]),
    ("no radius: everything by distance", dict(), ["a-shelter", "b-legal", "g-tie", "f-tie", "c-youth", "d-men",
                                                   "e-far"]),
    ("limit", dict(limit=3), ["a-shelter", "b-legal", "g-tie"]),
    ("one service", dict(services=["shelter_emergency"]), ["a-shelter", "c-youth", "d-men"]),
    ("every service listed is required", dict(services=["shelter_emergency", "mental_health"]), ["c-youth"]),
    ("services and radius", dict(services=["shelter_emergency"], radius_miles=25), ["a-shelter", "c-youth"]),
    ("gender: 'any' organisations serve everyone", dict(gender="female", services=["shelter_emergency"]),
     ["a-shelter", "c-youth"]),
    ("gender: male", dict(gender="male", services=["shelter_emergency"]), ["c-youth", "d-men"]),
    ("gender: nonbinary", dict(gender="nonbinary", services=["shelter_emergency"]), ["c-youth"]),
    ("age group", dict(age_group="minors"), ["c-youth"]),
    ("age group youth", dict(age_group="youth_18_24"), ["a-shelter"]),
    ("nationality: focused or any", dict(nationality="MX", services=["legal"]), ["b-legal"]),
    ("nationality: a focus elsewhere excludes", dict(nationality="CN", services=["interpretation"]),
     ["g-tie", "f-tie"]),
    ("nationality: lower case accepted", dict(nationality="gt"), ["a-shelter", "b-legal", "g-tie", "c-youth",
                                                                    "d-men", "e-far"]),
    ("trafficking type sex also matches both", dict(trafficking_type="sex", radius_miles=35),
     ["a-shelter", "g-tie", "f-tie", "c-youth", "d-men"]),
    ("trafficking type labor", dict(trafficking_type="labor", radius_miles=35), ["b-legal", "g-tie", "f-tie",
                                                                                 "d-men"]),
    ("trafficking type both only", dict(trafficking_type="both", radius_miles=35), ["g-tie", "f-tie", "d-men"]),
    ("language", dict(language="es"), ["a-shelter", "b-legal", "c-youth"]),
    ("ASL", dict(language="ase"), ["e-far"]),
    ("open 24/7", dict(open_24_7=True), ["a-shelter", "c-youth"]),
    ("all facets at once", dict(services=["shelter_emergency"], gender="female", age_group="adults",
                                language="es", trafficking_type="sex", nationality="HN", open_24_7=True,
                                radius_miles=10), ["a-shelter"]),
    ("nothing matches", dict(services=["substance_use"]), []),
    ("a language nobody speaks", dict(language="ko"), []),
]


@pytest.mark.parametrize(("why", "kwargs", "expected"), SEARCHES, ids=[s[0] for s in SEARCHES])
def test_search_filters_and_orders_by_distance(small: Directory, why: str, kwargs: dict[str, Any],
                                               expected: list[str]) -> None:
    got = small.search(ORIGIN, **kwargs)
    assert ids(got) == expected
    distances = [m.distance_miles for m in got]
    assert distances == sorted(distances)


@pytest.mark.parametrize(("org_id", "miles"), [("a-shelter", 5), ("b-legal", 10), ("c-youth", 20),
                                               ("d-men", 30), ("e-far", 120)])
def test_distances_are_great_circle_miles(small: Directory, org_id: str, miles: float) -> None:
    got = {m.organisation.id: m.distance_miles for m in small.search(ORIGIN)}
    assert got[org_id] == pytest.approx(miles, abs=0.05)


def test_radius_edge_is_inclusive(small: Directory) -> None:
    assert ids(small.search(ORIGIN, 20.05, services=["mental_health"])) == ["c-youth"]
    assert ids(small.search(ORIGIN, 19.95, services=["mental_health"])) == []


def test_without_a_place_results_are_by_name_without_distance(small: Directory) -> None:
    got = small.search(services=["interpretation"])
    assert [(m.organisation.name, m.distance_miles) for m in got] == [("Aspen Tie", None), ("Fir Tie", None)]
    assert [m.organisation.name for m in small.search()] == sorted(r["name"] for r in ROWS)


BAD_SEARCHES = [
    (dict(radius_miles=-1, near=ORIGIN), "radius", "positive"),
    (dict(radius_miles=0, near=ORIGIN), "radius", "positive"),
    (dict(radius_miles=float("nan"), near=ORIGIN), "radius", "positive"),
    (dict(radius_miles=10), "radius", "needs a place"),
    (dict(near=(91.0, 0.0)), "near", "out of range"),
    (dict(services=["spa"]), "service", "unknown service 'spa'"),
    (dict(gender="woman"), "gender", "unknown gender"),
    (dict(age_group="kids"), "age_group", "unknown age group"),
    (dict(trafficking_type="forced"), "trafficking_type", "unknown trafficking type"),
    (dict(language="spanish"), "language", "ISO 639"),
    (dict(nationality="Mexico"), "nationality", "ISO 3166"),
    (dict(limit=0), "limit", "at least 1"),
]


@pytest.mark.parametrize(("kwargs", "field", "message"), BAD_SEARCHES)
def test_bad_search_parameters_name_the_field(small: Directory, kwargs: dict[str, Any], field: str,
                                              message: str) -> None:
    with pytest.raises(SearchError, match=re.escape(message)) as err:
        small.search(**kwargs)
    assert err.value.field == field


def _brute_force(orgs: list[Organisation], near: tuple[float, float], radius: float | None,
                 service: str | None) -> list[str]:
    hits = []
    for o in orgs:
        d = haversine_miles(near[0], near[1], o.lat, o.lon)
        if (radius is None or d <= radius) and (service is None or service in o.services):
            hits.append((d, o.name.casefold(), o.id))
    return [h[2] for h in sorted(hits)]


def test_box_prefilter_never_loses_a_match_anywhere_on_the_globe() -> None:
    """Random points worldwide, including near the poles and across the antimeridian."""
    rng = random.Random(7)
    rows = []
    for i in range(600):
        lat = rng.choice([rng.uniform(-90, 90), rng.uniform(80, 90), rng.uniform(-90, -85)])
        lon = rng.choice([rng.uniform(-180, 180), rng.uniform(178, 180), rng.uniform(-180, -178)])
        rows.append(Organisation.model_validate(row(f"o{i}", f"Org {i:03d}", (lat, lon),
                                                    services=[rng.choice(SERVICES)])))
    directory = Directory(rows)
    for _ in range(300):
        near = (rng.uniform(-90, 90) if rng.random() < 0.5 else rng.choice([89.5, -89.5, 0.0]),
                rng.choice([rng.uniform(-180, 180), 179.9, -179.9]))
        radius = rng.choice([None, 5.0, 50.0, 300.0, 2000.0, 8000.0])
        service = rng.choice([None, "legal"])
        got = directory.search(near, radius, services=[service] if service else [], limit=10_000)
        assert ids(got) == _brute_force(rows, near, radius, service), (near, radius, service)


def test_the_antimeridian_is_no_wall() -> None:
    d = Directory([Organisation.model_validate(row("adak", "West", (51.88, 179.95))),
                   Organisation.model_validate(row("east", "East", (51.88, -179.95)))])
    assert ids(d.search((51.88, -179.99), 5)) == ["east", "adak"]


def test_duplicate_ids_are_refused() -> None:
    o = Organisation.model_validate(ROWS[0])
    with pytest.raises(ValueError, match="duplicate organisation id 'a-shelter'"):
        Directory([o, o])


# ---- geocoder -----------------------------------------------------------------------------

PLACES = [
    ("77002", "Houston, TX 77002", (29.7594, -95.3594)),
    ("77002-1234", "Houston, TX 77002", (29.7594, -95.3594)),
    (" 10001 ", "New York, NY 10001", None),
    ("Houston, TX", "Houston, TX", None),
    ("houston tx", "Houston, TX", None),
    ("Houston, Texas", "Houston, TX", None),
    ("St. Louis, MO", "Saint Louis, MO", None),
    ("Ste. Genevieve, MO", "Sainte Genevieve, MO", None),
    ("Port St Lucie, FL", "Port Saint Lucie, FL", None),
    ("Houston, TX 77002", "Houston, TX 77002", (29.7594, -95.3594)),
    ("Ft Worth, TX", "Fort Worth, TX", None),
    ("San Juan, PR", "San Juan, PR", None),
    ("Anchorage, AK", "Anchorage, AK", None),
]


@pytest.mark.parametrize(("query", "label", "point"), PLACES)
def test_geocoder_resolves_zip_codes_and_cities(geocoder: Geocoder, query: str, label: str,
                                                point: tuple[float, float] | None) -> None:
    place = geocoder.resolve(query)
    assert place.label == label
    if point:
        assert (place.lat, place.lon) == pytest.approx(point)


def test_a_city_centre_is_near_its_downtown(geocoder: Geocoder) -> None:
    houston = geocoder.city("Houston, TX")
    assert haversine_miles(houston.lat, houston.lon, *ORIGIN) < 5


UNKNOWN_PLACES = [
    ("00000", "unknown ZIP code 00000"),
    ("99999", "unknown ZIP code 99999"),
    ("09001", "no location on the map"),  # an APO address
    ("7700", "not a ZIP code"),
    ("Huston, TX", "unknown city 'Huston' in Texas; did you mean Houston, TX?"),
    ("Atlantis, TX", "unknown city 'Atlantis' in Texas"),
    ("Houston", "write a city as 'City, ST'"),
    ("Houston, XX", "'XX' is not a US state"),
    (", TX", "give a city before the state"),
    ("", "give a ZIP code or a city"),
]


@pytest.mark.parametrize(("query", "message"), UNKNOWN_PLACES)
def test_geocoder_explains_what_it_cannot_place(geocoder: Geocoder, query: str, message: str) -> None:
    with pytest.raises(GeoError, match=re.escape(message)):
        geocoder.resolve(query)


def test_a_single_zip_lookup_agrees_with_the_loaded_table(geocoder: Geocoder) -> None:
    loaded = geocoder.zip_codes()  # loads the whole table into `geocoder`
    for code in [*random.Random(3).sample(sorted(loaded), 200), "09001", "00000"]:
        fresh = Geocoder()  # nothing loaded: asks the zipcodes package for this one ZIP
        try:
            expected: Any = geocoder.zip(code)
        except GeoError as exc:
            expected = str(exc)
        try:
            got: Any = fresh.zip(code)
        except GeoError as exc:
            got = str(exc)
        assert got == expected


def test_geocoder_can_use_its_own_table() -> None:
    g = Geocoder([{"zip_code": "55501", "city": "Testville", "state": "MN", "lat": "45.0", "long": "-93.0",
                   "zip_code_type": "STANDARD", "active": True, "acceptable_cities": []}])
    assert g.resolve("testville, mn").label == "Testville, MN"
    with pytest.raises(GeoError):
        g.resolve("77002")


# ---- loading a data file ------------------------------------------------------------------

def _write(path: Path, lines: list[str]) -> Path:
    text = "\n".join(lines) + "\n"
    if path.suffix == ".gz":
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text, encoding="utf-8")
    return path


GOOD = json.dumps(ROWS[0])


def _with(**changes: Any) -> str:
    r = dict(ROWS[1])
    for k, v in changes.items():
        if v is ...:
            r.pop(k)
        else:
            r[k] = v
    return json.dumps(r)


BAD_ROWS = [
    ("unknown service", _with(services=["legal", "spa"]), "line 2 (id b-legal): services.1: Input should be"),
    ("state not a US state", _with(state="XX"), "line 2 (id b-legal): state: 'XX' is not a US state"),
    ("latitude out of range", _with(lat=91.5), "line 2 (id b-legal): lat: Input should be less than or equal to 90"),
    ("longitude out of range", _with(lon=-200), "line 2 (id b-legal): lon: Input should be greater than or equal"),
    ("latitude not a number", _with(lat="north"), "lat: Input should be a valid number"),
    ("phone outside 555-01xx", _with(phone="+17135550100"), "phone: '+17135550100' is not a fictional number"),
    ("email outside example.org", _with(email="help@realorg.com"), "email: 'help@realorg.com' is not fictional"),
    ("unknown nationality", _with(nationalities=["MX", "ZZ"]), "nationalities: 'ZZ' is not an ISO 3166"),
    ("unknown language", _with(languages=["en", "xx"]), "languages: 'xx' is not an ISO 639"),
    ("unknown gender", _with(genders=["women"]), "genders.0: Input should be"),
    ("'any' with others", _with(genders=["any", "female"]), "genders: 'any' already covers everyone"),
    ("repeated service", _with(services=["legal", "legal"]), "services: listed more than once: legal"),
    ("no services", _with(services=[]), "services: Tuple should have at least 1 item"),
    ("unknown field", _with(website="https://example.org"), "line 2 (id b-legal): website: unknown field"),
    ("missing field", _with(zip=...), "line 2 (id b-legal): zip: missing field"),
    ("bad zip", _with(zip="7700"), "zip: String should match"),
    ("duplicate id", json.dumps(ROWS[0]), "line 2: id: 'a-shelter' is already used on line 1"),
    ("not JSON", "{\"id\": ", "line 2: not valid JSON (Expecting value at character"),
    ("not an object", "[1, 2]", "line 2: expected a JSON object"),
]


@pytest.mark.parametrize("suffix", [".jsonl", ".jsonl.gz"])
@pytest.mark.parametrize(("why", "line", "message"), BAD_ROWS, ids=[b[0] for b in BAD_ROWS])
def test_a_bad_row_names_file_line_and_field(tmp_path: Path, suffix: str, why: str, line: str,
                                             message: str) -> None:
    path = _write(tmp_path / f"orgs{suffix}", [GOOD, line, json.dumps(ROWS[2])])
    with pytest.raises(DirectoryError) as err:
        load_directory(path)
    assert str(err.value).startswith(f"{path}: ")
    assert message in str(err.value)


@pytest.mark.parametrize(("name", "content", "message"), [
    ("orgs.jsonl.gz", None, "directory file not found"),
    ("orgs.jsonl", b"", "no organisations in the file"),
    ("orgs.jsonl", b"\n\n", "no organisations in the file"),
    ("orgs.jsonl.gz", gzip.compress(b"\n"), "no organisations in the file"),
    ("orgs.jsonl.gz", gzip.compress(GOOD.encode())[:-12], "not a complete gzip file"),
    ("orgs.jsonl.gz", b"not gzip at all", "not a complete gzip file"),
    ("orgs.jsonl", b"\xff\xfe{}", "not UTF-8 text"),
])
def test_unreadable_files(tmp_path: Path, name: str, content: bytes | None, message: str) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(DirectoryError, match=re.escape(message)):
        read_organisations(path)


def test_blank_lines_are_skipped_and_line_numbers_still_count_them(tmp_path: Path) -> None:
    path = _write(tmp_path / "orgs.jsonl", [GOOD, "", _with(state="ZZ")])
    with pytest.raises(DirectoryError, match="line 3"):
        load_directory(path)
    assert len(load_directory(_write(tmp_path / "ok.jsonl", [GOOD, "", json.dumps(ROWS[1])]))) == 2


# ---- the seed data ------------------------------------------------------------------------

def test_seed_data_has_3000_organisations_in_every_state(seed: Directory) -> None:
    orgs = list(seed)
    assert len(orgs) >= 3000
    assert set(STATES_AND_DC) <= {o.state for o in orgs}


def test_seed_data_offers_every_service_and_facet(seed: Directory) -> None:
    orgs = list(seed)
    assert {s for o in orgs for s in o.services} == set(SERVICES)
    assert {a for o in orgs for a in o.age_groups} == {"minors", "youth_18_24", "adults"}
    assert {o.trafficking_type for o in orgs} == {"sex", "labor", "both"}
    assert {g for o in orgs for g in o.genders} == {"female", "male", "nonbinary", "any"}
    assert any(o.nationalities != "any" for o in orgs) and any(o.open_24_7 for o in orgs)
    assert {"en", "es", "vi", "zh", "ht", "ase"} <= {lang for o in orgs for lang in o.languages}


def test_seed_data_is_weighted_by_population(seed: Directory) -> None:
    per_state: dict[str, int] = {}
    for o in seed:
        per_state[o.state] = per_state.get(o.state, 0) + 1
    assert per_state["CA"] > per_state["TX"] > per_state["OH"] > per_state["NE"] > per_state["WY"]


def test_seed_data_contact_details_are_fictional(seed: Directory) -> None:
    for o in seed:
        assert re.fullmatch(r"\+155555501\d\d", o.phone)
        assert o.email is None or o.email.endswith("@example.org")
    names = [o.name for o in seed]
    assert len(set(names)) == len(names)


def test_seed_organisations_sit_near_their_city(seed: Directory, geocoder: Geocoder) -> None:
    zips = geocoder.zip_codes()
    for o in seed:
        lat, lon, city, state = zips[o.zip]
        assert (city, state) == (o.city, o.state)
        assert haversine_miles(lat, lon, o.lat, o.lon) < 1.0


def test_the_shipped_seed_file_is_what_the_generator_makes(tmp_path: Path) -> None:
    out = tmp_path / "orgs.jsonl.gz"
    write_jsonl_gz(generate(), out)
    assert out.read_bytes() == default_directory_path().read_bytes(), (
        "routing/data/organisations.jsonl.gz is stale: python -m routing.seed_directory "
        "--out routing/data/organisations.jsonl.gz")


def test_seed_search_from_houston(seed: Directory, geocoder: Geocoder) -> None:
    place = geocoder.resolve("77002")
    got = seed.search((place.lat, place.lon), 50, services=["shelter_emergency", "legal_immigration"],
                      language="es", limit=50)
    assert got
    for m in got:
        assert {"shelter_emergency", "legal_immigration"} <= set(m.organisation.services)
        assert "es" in m.organisation.languages
        assert m.distance_miles is not None and m.distance_miles <= 50


# ---- hotline referrals --------------------------------------------------------------------

@pytest.fixture
def small_file(tmp_path: Path) -> Path:
    return _write(tmp_path / "small.jsonl", [json.dumps(r) for r in ROWS])


def _cli(*args: str) -> Any:
    return CliRunner().invoke(referrals, list(args), prog_name="hotline referrals")


def test_cli_search_json(small_file: Path) -> None:
    res = _cli("search", "--zip", "77002", "--radius", "25", "--service", "shelter_emergency", "--language", "es",
               "--json", "--data", str(small_file))
    assert res.exit_code == 0, res.output
    body = json.loads(res.stdout)
    assert [(r["organisation"]["id"], r["distance_miles"]) for r in body["results"]] == [
        ("a-shelter", 5.0), ("c-youth", 20.0)]
    assert body["count"] == 2
    assert body["near"]["label"] == "Houston, TX 77002"


@pytest.mark.parametrize(("args", "expected"), [
    (["--city", "Houston, TX", "--age-group", "minors"], ["c-youth"]),
    (["--zip", "77002", "--gender", "male", "--service", "shelter_emergency"], ["c-youth", "d-men"]),
    (["--zip", "77002", "--nationality", "cn", "--service", "interpretation"], ["g-tie", "f-tie"]),
    (["--zip", "77002", "--trafficking-type", "labor", "--limit", "2"], ["b-legal", "g-tie"]),
    (["--zip", "77002", "--open-24-7"], ["a-shelter", "c-youth"]),
    (["--service", "interpretation"], ["g-tie", "f-tie"]),  # no place: by name
])
def test_cli_search_filters(small_file: Path, args: list[str], expected: list[str]) -> None:
    res = _cli("search", *args, "--json", "--data", str(small_file))
    assert res.exit_code == 0, res.output
    assert [r["organisation"]["id"] for r in json.loads(res.stdout)["results"]] == expected


def test_cli_search_prints_a_readable_list(small_file: Path) -> None:
    res = _cli("search", "--zip", "77002", "--radius", "12", "--data", str(small_file))
    assert res.exit_code == 0
    assert res.stdout.splitlines()[0] == "2 organisations within 12 mi of Houston, TX 77002:"
    assert "   5.0 mi  Alder Shelter  [24/7]" in res.stdout
    assert "+1 555-555-0100" in res.stdout
    empty = _cli("search", "--zip", "77002", "--radius", "1", "--data", str(small_file))
    assert empty.exit_code == 0
    assert "no organisations match within 1 mi of Houston, TX 77002" in empty.stdout


def test_cli_search_on_the_bundled_directory() -> None:
    res = _cli("search", "--zip", "77002", "--radius", "50", "--service", "shelter_emergency",
               "--service", "legal_immigration", "--language", "es", "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["count"] >= 1


CLI_BAD = [
    (["--zip", "00000"], "unknown ZIP code 00000"),
    (["--zip", "7700"], "'7700' is not a ZIP code"),
    (["--city", "Atlantis, TX"], "unknown city 'Atlantis' in Texas"),
    (["--city", "Houston"], "write a city as 'City, ST'"),
    (["--zip", "77002", "--service", "spa"], "unknown service 'spa'"),
    (["--zip", "77002", "--radius", "-5"], "radius must be a positive number"),
    (["--radius", "5"], "--radius needs --zip or --city"),
    (["--zip", "77002", "--city", "Houston, TX"], "give --zip or --city, not both"),
    (["--zip", "77002", "--language", "spanish"], "unknown language 'spanish'"),
    (["--zip", "77002", "--limit", "0"], "limit must be a whole number of at least 1"),
    (["--zip", "77002", "--data", "/nonexistent/orgs.jsonl"], "/nonexistent/orgs.jsonl: directory file not found"),
]


@pytest.mark.parametrize(("args", "message"), CLI_BAD)
def test_cli_bad_input_is_one_line_and_exit_2(small_file: Path, args: list[str], message: str) -> None:
    if "--data" not in args:
        args = [*args, "--data", str(small_file)]
    res = _cli("search", *args)
    assert res.exit_code == 2
    assert res.stdout == ""
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("hotline referrals search: ")
    assert message in lines[0]
    assert "Traceback" not in res.output


def test_cli_check(small_file: Path, tmp_path: Path) -> None:
    ok = _cli("check", str(small_file))
    assert ok.exit_code == 0
    assert ok.stdout.startswith("ok: 7 organisations in 1 states and territories; 2 open 24/7")
    bad = _cli("check", str(_write(tmp_path / "bad.jsonl", [GOOD, _with(state="XX")])))
    assert bad.exit_code == 2
    assert "bad.jsonl: line 2 (id b-legal): state:" in bad.stderr


@pytest.mark.parametrize("cmd", [["--help"], ["search", "--help"], ["check", "--help"]])
def test_cli_answers_help(cmd: list[str]) -> None:
    res = _cli(*cmd)
    assert res.exit_code == 0 and "Usage:" in res.stdout


# ---- GET /api/referrals -------------------------------------------------------------------

@pytest.fixture(scope="module")
def api(small: Directory, geocoder: Geocoder) -> Any:
    app = Flask("test-referrals")
    app.register_blueprint(make_blueprint(lambda: small, geocoder))
    return app.test_client()


API_OK = [
    ("zip=77002&radius=25&service=shelter_emergency&language=es", [("a-shelter", 5.0), ("c-youth", 20.0)]),
    ("zip=77002&radius=12", [("a-shelter", 5.0), ("b-legal", 10.0)]),
    ("city=Houston,+TX&age_group=minors", None),
    ("lat=29.7594&lon=-95.3594&service=legal&service=legal_immigration&nationality=MX", [("b-legal", 10.0)]),
    ("zip=77002&gender=male&service=shelter_emergency&limit=1", [("c-youth", 20.0)]),
    ("zip=77002&trafficking_type=both&radius=35&open_24_7=false", [("g-tie", 15.0), ("f-tie", 15.0),
                                                                   ("d-men", 30.0)]),
    ("zip=77002&open_24_7=true", [("a-shelter", 5.0), ("c-youth", 20.0)]),
    ("service=interpretation", [("g-tie", None), ("f-tie", None)]),
    ("zip=77002&radius=1", []),
]


@pytest.mark.parametrize(("query", "expected"), API_OK)
def test_api_search(api: Any, query: str, expected: list[tuple[str, float | None]] | None) -> None:
    resp = api.get(f"/api/referrals?{query}")
    assert resp.status_code == 200
    assert resp.headers["Cache-Control"] == "no-store"
    body = resp.get_json()
    got = [(r["organisation"]["id"], r["distance_miles"]) for r in body["results"]]
    if expected is None:
        assert [g[0] for g in got] == ["c-youth"]
    else:
        assert got == expected
    assert body["count"] == len(got)


def test_api_returns_the_whole_organisation(api: Any) -> None:
    body = api.get("/api/referrals?zip=77002&limit=1").get_json()
    assert body["results"][0]["organisation"] == ROWS[0]
    assert body["near"] == {"label": "Houston, TX 77002", "lat": 29.7594, "lon": -95.3594}


API_BAD = [
    ("zip=77002&radius=-1", "radius", "positive"),
    ("zip=77002&radius=far", "radius", "radius must be a number"),
    ("zip=77002&radius=inf", "radius", "finite"),
    ("radius=10", "radius", "needs zip, city or lat/lon"),
    ("zip=77002&service=spa", "service", "unknown service 'spa'"),
    ("zip=00000", "zip", "unknown ZIP code 00000"),
    ("zip=abc", "zip", "not a ZIP code"),
    ("city=Huston,+TX", "city", "did you mean Houston, TX?"),
    ("zip=77002&city=Houston,+TX", "city", "not zip and city"),
    ("lat=29.7", "lon", "give both lat and lon"),
    ("lat=95&lon=0", "lat", "between -90 and 90"),
    ("zip=77002&services=legal", "services", "unknown parameter 'services'"),
    ("zip=77002&zip=10001", "zip", "give zip once"),
    ("zip=77002&limit=0", "limit", "from 1 to 100"),
    ("zip=77002&limit=101", "limit", "from 1 to 100"),
    ("zip=77002&limit=ten", "limit", "from 1 to 100"),
    ("zip=77002&gender=woman", "gender", "unknown gender"),
    ("zip=77002&age_group=kids", "age_group", "unknown age group"),
    ("zip=77002&trafficking_type=x", "trafficking_type", "unknown trafficking type"),
    ("zip=77002&language=klingon", "language", "unknown language"),
    ("zip=77002&nationality=XX", "nationality", "unknown nationality"),
    ("zip=77002&open_24_7=maybe", "open_24_7", "true or false"),
]


@pytest.mark.parametrize(("query", "field", "message"), API_BAD)
def test_api_bad_parameters_are_400_naming_the_field(api: Any, query: str, field: str, message: str) -> None:
    resp = api.get(f"/api/referrals?{query}")
    assert resp.status_code == 400
    body = resp.get_json()
    assert body["field"] == field
    assert message in body["error"]


def test_api_directory_unavailable_is_503_json(tmp_path: Path) -> None:
    def provider() -> Directory:
        return load_directory(tmp_path / "missing.jsonl.gz")

    app = Flask("test-referrals")
    app.register_blueprint(make_blueprint(provider, Geocoder()))
    resp = app.test_client().get("/api/referrals?zip=77002")
    assert resp.status_code == 503
    assert resp.get_json() == {"error": "the referral directory is unavailable", "field": None}
