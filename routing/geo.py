"""Resolve a US ZIP code or "City, ST" to a point, offline.

The coordinates come from the `zipcodes` package, which ships every US ZIP code (with its
city, state and centroid) inside its wheel: nothing is downloaded at run time. The ZIP table
is read the first time a Geocoder needs it, never at import time.
"""

from __future__ import annotations

import difflib
import math
import re
import threading
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from statistics import median
from typing import Any

EARTH_RADIUS_MILES = 3958.7613

# 50 states, DC and the inhabited territories the hotline serves.
US_STATES: dict[str, str] = {
    "AL": "Alabama", "AK": "Alaska", "AZ": "Arizona", "AR": "Arkansas", "CA": "California",
    "CO": "Colorado", "CT": "Connecticut", "DE": "Delaware", "DC": "District of Columbia",
    "FL": "Florida", "GA": "Georgia", "HI": "Hawaii", "ID": "Idaho", "IL": "Illinois",
    "IN": "Indiana", "IA": "Iowa", "KS": "Kansas", "KY": "Kentucky", "LA": "Louisiana",
    "ME": "Maine", "MD": "Maryland", "MA": "Massachusetts", "MI": "Michigan", "MN": "Minnesota",
    "MS": "Mississippi", "MO": "Missouri", "MT": "Montana", "NE": "Nebraska", "NV": "Nevada",
    "NH": "New Hampshire", "NJ": "New Jersey", "NM": "New Mexico", "NY": "New York",
    "NC": "North Carolina", "ND": "North Dakota", "OH": "Ohio", "OK": "Oklahoma", "OR": "Oregon",
    "PA": "Pennsylvania", "RI": "Rhode Island", "SC": "South Carolina", "SD": "South Dakota",
    "TN": "Tennessee", "TX": "Texas", "UT": "Utah", "VT": "Vermont", "VA": "Virginia",
    "WA": "Washington", "WV": "West Virginia", "WI": "Wisconsin", "WY": "Wyoming",
    "PR": "Puerto Rico", "GU": "Guam", "VI": "U.S. Virgin Islands", "AS": "American Samoa",
    "MP": "Northern Mariana Islands",
}
STATES_AND_DC = tuple(c for c in US_STATES if c not in ("PR", "GU", "VI", "AS", "MP"))

_ZIP = re.compile(r"^\s*(\d{5})(?:-\d{4})?\s*$")
_TRAILING_ZIP = re.compile(r"[\s,]+(\d{5}(?:-\d{4})?)\s*$")
_ABBREVIATIONS = ((re.compile(r"\bst\b"), "saint"), (re.compile(r"\bste\b"), "sainte"),
                  (re.compile(r"\bft\b"), "fort"), (re.compile(r"\bmt\b"), "mount"))


class GeoError(ValueError):
    """A ZIP code or city that cannot be placed; the message is fit to show a person."""


@dataclass(frozen=True)
class Place:
    lat: float
    lon: float
    label: str  # "Houston, TX 77002" or "Houston, TX"
    state: str


def haversine_miles(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_MILES * math.asin(min(1.0, math.sqrt(a)))


def normalize_city(name: str) -> str:
    """Case-, accent- and abbreviation-insensitive key: 'St. Louis' == 'SAINT LOUIS'."""
    if not name.isascii():
        name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    text = name.lower()
    text = re.sub(r"[^a-z0-9 ]+", " ", text.replace(".", ". "))
    text = re.sub(r"\s+", " ", text).strip()
    for pattern, full in _ABBREVIATIONS:
        text = pattern.sub(full, text)
    return text


def _state_code(text: str) -> str | None:
    t = text.strip().rstrip(".")
    if t.upper() in US_STATES:
        return t.upper()
    return next((c for c, n in US_STATES.items() if normalize_city(n) == normalize_city(t)), None)


def split_city_state(text: str) -> tuple[str, str]:
    """'Houston, TX' / 'Houston TX' / 'Houston, Texas' -> ('Houston', 'TX'); GeoError otherwise."""
    raw = text.strip()
    if "," in raw:
        city, _, state = raw.rpartition(",")
        code = _state_code(state)
        if code and city.strip():
            return city.strip(), code
        if not city.strip():
            raise GeoError(f"{text!r}: give a city before the state, like 'Houston, TX'")
        raise GeoError(f"{text!r}: {state.strip()!r} is not a US state; write the city as 'Houston, TX'")
    parts = raw.rsplit(None, 1)
    if len(parts) == 2 and (code := _state_code(parts[1])):
        return parts[0], code
    raise GeoError(f"{text!r}: write a city as 'City, ST' (like 'Houston, TX') or give a 5-digit ZIP code")


def _zip_rows() -> list[dict[str, Any]]:
    import zipcodes

    return zipcodes.list_all()


def _zip_row(code: str) -> Mapping[str, Any] | None:
    import zipcodes

    found = zipcodes.matching(code)
    return found[0] if found else None


def _point(row: Mapping[str, Any]) -> tuple[float, float] | None:
    try:
        lat, lon = float(row["lat"]), float(row["long"])
    except (KeyError, TypeError, ValueError):
        return None
    # Military (APO/FPO) and some unique ZIPs carry 0,0: they have no place on a map.
    if lat == 0 and lon == 0:
        return None
    return lat, lon


@dataclass(frozen=True)
class City:
    name: str
    state: str
    lat: float
    lon: float
    zips: tuple[str, ...]  # its street-delivery ZIP codes (all its ZIPs for a PO-box-only town)


RowSource = Iterable[Mapping[str, Any]] | Callable[[], Iterable[Mapping[str, Any]]]


class Geocoder:
    """ZIP or "City, ST" -> Place. Pass `rows` (zipcodes-shaped dicts, or a callable returning
    them) to use another table; by default the `zipcodes` package's, read on first use."""

    def __init__(self, rows: RowSource | None = None) -> None:
        self._rows = rows
        self._lock = threading.Lock()
        self._zips: dict[str, tuple[float, float, str, str]] = {}
        self._unplaced: set[str] = set()
        self._cities: dict[tuple[str, str], City] | None = None
        self._aliases: dict[tuple[str, str], City] = {}
        self._names_by_state: dict[str, list[str]] = {}

    def _source(self) -> Iterable[Mapping[str, Any]]:
        if self._rows is None:
            return _zip_rows()
        return self._rows() if callable(self._rows) else self._rows

    def _load(self) -> dict[tuple[str, str], City]:
        with self._lock:
            if self._cities is not None:
                return self._cities
            zips: dict[str, tuple[float, float, str, str]] = {}
            unplaced: set[str] = set()
            groups: dict[tuple[str, str], list[tuple[float, float, str, bool]]] = {}
            alias_of: dict[tuple[str, str], tuple[str, str]] = {}
            shown: dict[tuple[str, str], str] = {}
            for row in self._source():
                pt = _point(row)
                state = str(row.get("state", ""))
                if pt is None or state not in US_STATES:
                    unplaced.add(str(row.get("zip_code")))
                    continue
                code, city = str(row["zip_code"]), str(row.get("city", "")).strip()
                zips[code] = (pt[0], pt[1], city, state)
                key = (normalize_city(city), state)
                shown.setdefault(key, city)
                street = row.get("zip_code_type") == "STANDARD" and bool(row.get("active", True))
                groups.setdefault(key, []).append((pt[0], pt[1], code, street))
                for other in row.get("acceptable_cities") or ():
                    alias_of.setdefault((normalize_city(str(other)), state), key)
            cities: dict[tuple[str, str], City] = {}
            for key, pts in groups.items():
                if len(pts) == 1:
                    cities[key] = City(shown[key], key[1], pts[0][0], pts[0][1], (pts[0][2],))
                    continue
                # The centre is the median of the street-delivery ZIPs: robust to a far-off PO box.
                use = [p for p in pts if p[3]] or pts
                cities[key] = City(shown[key], key[1], median(p[0] for p in use), median(p[1] for p in use),
                                   tuple(sorted(p[2] for p in use)))
            self._aliases = {k: cities[v] for k, v in alias_of.items() if k not in cities}
            names: dict[str, list[str]] = {}
            for c in cities.values():
                names.setdefault(c.state, []).append(c.name)
            self._zips, self._unplaced, self._names_by_state, self._cities = zips, unplaced, names, cities
            return cities

    def zip(self, code: str) -> Place:
        m = _ZIP.match(code or "")
        if not m:
            raise GeoError(f"{code!r} is not a ZIP code (5 digits, like 77002)")
        code = m.group(1)
        if self._rows is None and self._cities is None:
            # One lookup in the package's compiled table beats loading all 42,000 rows for it.
            row = _zip_row(code)
            pt = _point(row) if row else None
            if row is not None and (pt is None or row.get("state") not in US_STATES):
                self._unplaced.add(code)
            elif row is not None and pt is not None:
                self._zips[code] = (pt[0], pt[1], str(row.get("city", "")).strip(), str(row["state"]))
        else:
            self._load()
        hit = self._zips.get(code)
        if hit is None and code in self._unplaced:
            raise GeoError(f"ZIP code {code} has no location on the map (a military or overseas address); "
                           "give the contact's city instead")
        if hit is None:
            raise GeoError(f"unknown ZIP code {code}")
        lat, lon, city, state = hit
        return Place(lat, lon, f"{city}, {state} {code}", state)

    def city(self, text: str) -> Place:
        name, state = split_city_state(text)
        cities = self._load()
        key = (normalize_city(name), state)
        hit = cities.get(key) or self._aliases.get(key)
        if hit is None:
            close = difflib.get_close_matches(name.title(), self._names_by_state.get(state, []), n=3, cutoff=0.8)
            hint = f"; did you mean {' or '.join(f'{c}, {state}' for c in close)}?" if close else ""
            raise GeoError(f"unknown city {name!r} in {US_STATES[state]}{hint}")
        return Place(hit.lat, hit.lon, f"{hit.name}, {hit.state}", hit.state)

    def resolve(self, text: str) -> Place:
        """A ZIP code ('77002', '77002-1234') or a city ('Houston, TX', 'St. Louis MO')."""
        if not text or not text.strip():
            raise GeoError("give a ZIP code or a city like 'Houston, TX'")
        if re.fullmatch(r"\s*[\d-]+\s*", text):
            return self.zip(text)
        # "Houston, TX 77002": the ZIP code is the more precise of the two.
        if m := _TRAILING_ZIP.search(text):
            return self.zip(m.group(1))
        return self.city(text)

    def cities(self) -> list[City]:
        """Every known city with its centre and ZIP codes, sorted by state then name."""
        return sorted(self._load().values(), key=lambda c: (c.state, c.name))

    def zip_codes(self) -> dict[str, tuple[float, float, str, str]]:
        """ZIP -> (lat, lon, city, state) for every ZIP that has a location."""
        self._load()
        return dict(self._zips)
