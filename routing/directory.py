"""The referral directory: organisations an advocate can refer a contact to, searched by place
and by what they offer and whom they serve.

The data is a JSON-lines file (gzip or plain), one organisation a line, validated row by row
at load. Search is in memory: a boolean mask per facet value, a latitude-sorted table so a
radius becomes a slice (plus a longitude check) before any distance is computed, and a
vectorised haversine on what is left.
"""

from __future__ import annotations

import gzip
import json
import math
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Literal, NamedTuple, get_args

import numpy as np
from phonenumbers import SUPPORTED_REGIONS
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .geo import EARTH_RADIUS_MILES, US_STATES

Service = Literal[
    "case_management",
    "shelter_emergency",
    "shelter_transitional",
    "legal",
    "legal_immigration",  # T-visa, U-visa, continued presence, asylum
    "mental_health",
    "medical",
    "transportation",
    "substance_use",
    "job_training",
    "interpretation",
]
Gender = Literal["female", "male", "nonbinary", "any"]
AgeGroup = Literal["minors", "youth_18_24", "adults"]
TraffickingType = Literal["sex", "labor", "both"]

SERVICES: tuple[str, ...] = get_args(Service)
GENDERS: tuple[str, ...] = get_args(Gender)
AGE_GROUPS: tuple[str, ...] = get_args(AgeGroup)
TRAFFICKING_TYPES: tuple[str, ...] = get_args(TraffickingType)

# ISO 639-1, plus the ISO 639-3 codes of languages contacts speak that have no 639-1 code:
# American Sign Language, Hmong, and the Mayan languages Mam and K'iche'.
LANGUAGES = frozenset("""
aa ab ae af ak am an ar as av ay az ba be bg bh bi bm bn bo br bs ca ce ch co cr cs cu cv cy da de
dv dz ee el en eo es et eu fa ff fi fj fo fr fy ga gd gl gn gu gv ha he hi ho hr ht hu hy hz ia id ie
ig ii ik io is it iu ja jv ka kg ki kj kk kl km kn ko kr ks ku kv kw ky la lb lg li ln lo lt lu lv mg
mh mi mk ml mn mr ms mt my na nb nd ne ng nl nn no nr nv ny oc oj om or os pa pi pl ps pt qu rm rn ro
ru rw sa sc sd se sg si sk sl sm sn so sq sr ss st su sv sw ta te tg th ti tk tl tn to tr ts tt tw ty
ug uk ur uz ve vi vo wa wo xh yi yo za zh zu
ase hmn mam quc
""".split())
NATIONALITIES = frozenset(SUPPORTED_REGIONS)


class DirectoryError(ValueError):
    """A directory file problem, naming the file, line and field."""


class SearchError(ValueError):
    """A search parameter that makes no sense; `field` names it (for a 400 or a CLI message)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def _unique(values: tuple[str, ...]) -> tuple[str, ...]:
    seen = {v for v in values if values.count(v) > 1}
    if seen:
        raise ValueError(f"listed more than once: {', '.join(sorted(seen))}")
    return values


class Organisation(BaseModel):
    """One organisation in the directory. Contact details are fictional in the seed data."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")
    name: str = Field(min_length=2, max_length=200)
    city: str = Field(min_length=1, max_length=100)
    state: str
    zip: str = Field(pattern=r"^\d{5}$")
    lat: float = Field(ge=-90, le=90, allow_inf_nan=False)
    lon: float = Field(ge=-180, le=180, allow_inf_nan=False)
    services: tuple[Service, ...] = Field(min_length=1)
    genders: tuple[Gender, ...] = Field(min_length=1)
    age_groups: tuple[AgeGroup, ...] = Field(min_length=1)
    nationalities: Literal["any"] | tuple[str, ...] = "any"
    trafficking_type: TraffickingType
    languages: tuple[str, ...] = Field(min_length=1)
    phone: str
    email: str | None = None
    open_24_7: bool = False

    @field_validator("phone")
    @classmethod
    def _phone(cls, v: str) -> str:
        # Only numbers reserved for fiction: this data is invented and must never ring anyone.
        if not re.fullmatch(r"\+155555501\d\d", v):
            raise ValueError(f"{v!r} is not a fictional number; use E.164 +1 555-555-01xx, like +15555550142")
        return v

    @field_validator("email")
    @classmethod
    def _email(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(r"[a-z0-9][a-z0-9._-]*@example\.org", v):
            raise ValueError(f"{v!r} is not fictional; use an address @example.org")
        return v

    @field_validator("state")
    @classmethod
    def _state(cls, v: str) -> str:
        if v not in US_STATES:
            raise ValueError(f"{v!r} is not a US state or territory code (like TX)")
        return v

    @field_validator("services", "age_groups")
    @classmethod
    def _no_repeats(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        return _unique(v)

    @field_validator("genders")
    @classmethod
    def _genders(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if "any" in v and len(v) > 1:
            raise ValueError("'any' already covers everyone; list it alone")
        return _unique(v)

    @field_validator("nationalities")
    @classmethod
    def _nationalities(cls, v: str | tuple[str, ...]) -> str | tuple[str, ...]:
        if v == "any":
            return v
        if not v:
            raise ValueError("give 'any' or a non-empty list of ISO 3166 country codes")
        for code in v:
            if code not in NATIONALITIES:
                raise ValueError(f"{code!r} is not an ISO 3166 country code (like MX)")
        return _unique(tuple(v))

    @field_validator("languages")
    @classmethod
    def _languages(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for code in v:
            if code not in LANGUAGES:
                raise ValueError(f"{code!r} is not an ISO 639 language code (like es)")
        return _unique(v)

    def serves_gender(self, gender: str) -> bool:
        return gender in self.genders or "any" in self.genders

    def serves_nationality(self, code: str) -> bool:
        return self.nationalities == "any" or code in self.nationalities

    def handles(self, trafficking_type: str) -> bool:
        return self.trafficking_type in (trafficking_type, "both")


class Match(NamedTuple):
    organisation: Organisation
    distance_miles: float | None


def _check_choice(field: str, value: str, choices: Iterable[str], what: str) -> str:
    allowed = tuple(choices)
    if value not in allowed:
        shown = ", ".join(sorted(allowed)) if len(allowed) <= 20 else "see --help"
        raise SearchError(field, f"unknown {what} {value!r}; expected one of: {shown}")
    return value


class Directory:
    """An immutable, searchable set of organisations."""

    def __init__(self, organisations: Iterable[Organisation]) -> None:
        orgs = sorted(organisations, key=lambda o: (o.lat, o.id))
        ids: set[str] = set()
        for o in orgs:
            if o.id in ids:
                raise ValueError(f"duplicate organisation id {o.id!r}")
            ids.add(o.id)
        self._orgs: tuple[Organisation, ...] = tuple(orgs)
        n = len(orgs)
        self._lat = np.fromiter((o.lat for o in orgs), dtype=np.float64, count=n)
        self._lon = np.fromiter((o.lon for o in orgs), dtype=np.float64, count=n)
        self._lat_r = np.radians(self._lat)
        self._lon_r = np.radians(self._lon)
        self._cos_lat = np.cos(self._lat_r)
        by_name = sorted(range(n), key=lambda i: (orgs[i].name.casefold(), orgs[i].id))
        self._name_rank = np.empty(n, dtype=np.int64)
        self._name_rank[by_name] = np.arange(n)
        self._masks: dict[tuple[str, str], np.ndarray] = {}
        self._index()

    def _mask_for(self, facet: str, value: str) -> np.ndarray:
        key = (facet, value)
        if key not in self._masks:
            self._masks[key] = np.zeros(len(self._orgs), dtype=bool)
        return self._masks[key]

    def _index(self) -> None:
        for i, o in enumerate(self._orgs):
            for s in o.services:
                self._mask_for("service", s)[i] = True
            for g in GENDERS:
                if o.serves_gender(g):
                    self._mask_for("gender", g)[i] = True
            for a in o.age_groups:
                self._mask_for("age_group", a)[i] = True
            for t in TRAFFICKING_TYPES:
                if o.handles(t):
                    self._mask_for("trafficking_type", t)[i] = True
            for lang in o.languages:
                self._mask_for("language", lang)[i] = True
            for code in ("any",) if o.nationalities == "any" else o.nationalities:
                self._mask_for("nationality", code)[i] = True
            if o.open_24_7:
                self._mask_for("open_24_7", "yes")[i] = True

    def __len__(self) -> int:
        return len(self._orgs)

    def __iter__(self) -> Iterator[Organisation]:
        return iter(self._orgs)

    def _facet(self, facet: str, value: str) -> np.ndarray:
        m = self._masks.get((facet, value))
        return m if m is not None else np.zeros(len(self._orgs), dtype=bool)

    def _filter(self, services: Iterable[str], gender: str | None, age_group: str | None,
                nationality: str | None, trafficking_type: str | None, language: str | None,
                open_24_7: bool) -> np.ndarray | None:
        """AND of every facet asked for; None when nothing was asked (everything matches)."""
        masks: list[np.ndarray] = []
        for s in services:
            masks.append(self._facet("service", _check_choice("service", s, SERVICES, "service")))
        if gender is not None:
            masks.append(self._facet("gender", _check_choice("gender", gender, GENDERS, "gender")))
        if age_group is not None:
            masks.append(self._facet("age_group", _check_choice("age_group", age_group, AGE_GROUPS, "age group")))
        if trafficking_type is not None:
            masks.append(self._facet("trafficking_type", _check_choice(
                "trafficking_type", trafficking_type, TRAFFICKING_TYPES, "trafficking type")))
        if language is not None:
            if language not in LANGUAGES:
                raise SearchError("language", f"unknown language {language!r}; give an ISO 639 code like es or vi")
            masks.append(self._facet("language", language))
        if nationality is not None:
            code = nationality.upper()
            if code not in NATIONALITIES:
                raise SearchError("nationality", f"unknown nationality {nationality!r}; "
                                                 "give an ISO 3166 country code like MX or PH")
            masks.append(self._facet("nationality", code) | self._facet("nationality", "any"))
        if open_24_7:
            masks.append(self._facet("open_24_7", "yes"))
        if not masks:
            return None
        out = masks[0].copy()
        for m in masks[1:]:
            out &= m
        return out

    def search(self, near: tuple[float, float] | None = None, radius_miles: float | None = None, *,
               services: Iterable[str] = (), gender: str | None = None, age_group: str | None = None,
               nationality: str | None = None, trafficking_type: str | None = None,
               language: str | None = None, open_24_7: bool = False, limit: int = 20) -> list[Match]:
        """Organisations matching every facet given, nearest first (then by name).

        A service list means all of those services. `gender` matches organisations serving that
        gender or any; `nationality` those focused on it or open to any; `trafficking_type`
        'sex' or 'labor' also matches 'both'. Without `near`, results are by name and carry no
        distance; `radius_miles` needs `near`.
        """
        services = tuple(services)
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise SearchError("limit", "limit must be a whole number of at least 1")
        if radius_miles is not None:
            if not math.isfinite(radius_miles) or radius_miles <= 0:
                raise SearchError("radius", "radius must be a positive number of miles")
            if near is None:
                raise SearchError("radius", "a radius needs a place to measure from (a ZIP code or a city)")
        if near is not None:
            lat0, lon0 = near
            if not (math.isfinite(lat0) and -90 <= lat0 <= 90 and math.isfinite(lon0) and -180 <= lon0 <= 180):
                raise SearchError("near", "coordinates out of range (latitude -90..90, longitude -180..180)")
        mask = self._filter(services, gender, age_group, nationality, trafficking_type, language, open_24_7)

        if near is None:
            idx = np.arange(len(self._orgs)) if mask is None else np.flatnonzero(mask)
            idx = idx[np.argsort(self._name_rank[idx], kind="stable")][:limit]
            return [Match(self._orgs[i], None) for i in idx]

        if radius_miles is None:
            idx = np.arange(len(self._orgs)) if mask is None else np.flatnonzero(mask)
        else:
            idx = self._within_box(lat0, lon0, radius_miles, mask)
        dist = self._distances(lat0, lon0, idx)
        if radius_miles is not None:
            keep = dist <= radius_miles
            idx, dist = idx[keep], dist[keep]
        order = np.lexsort((self._name_rank[idx], dist))[:limit]
        return [Match(self._orgs[idx[k]], float(dist[k])) for k in order]

    def _within_box(self, lat0: float, lon0: float, radius: float, mask: np.ndarray | None) -> np.ndarray:
        """Rows inside the smallest lat/lon box holding the circle: a slice of the latitude-sorted
        table, then a longitude test. Cheap, and it never drops a row inside the circle."""
        delta = radius / EARTH_RADIUS_MILES  # angular radius
        eps = 1e-9
        dlat = math.degrees(delta)
        lo = int(np.searchsorted(self._lat, lat0 - dlat - eps, side="left"))
        hi = int(np.searchsorted(self._lat, lat0 + dlat + eps, side="right"))
        idx = np.arange(lo, hi)
        if mask is not None:
            idx = idx[mask[lo:hi]]
        cos0 = math.cos(math.radians(lat0))
        if delta < math.pi / 2 and math.sin(delta) < cos0:
            # Widest longitude span of a spherical cap (no pole inside it); wraps the antimeridian.
            dlon = math.degrees(math.asin(math.sin(delta) / cos0))
            off = np.abs((self._lon[idx] - lon0 + 180.0) % 360.0 - 180.0)
            idx = idx[off <= dlon + eps]
        return idx

    def _distances(self, lat0: float, lon0: float, idx: np.ndarray) -> np.ndarray:
        p0, l0 = math.radians(lat0), math.radians(lon0)
        dp = self._lat_r[idx] - p0
        dl = self._lon_r[idx] - l0
        a = np.sin(dp / 2) ** 2 + math.cos(p0) * self._cos_lat[idx] * np.sin(dl / 2) ** 2
        return 2 * EARTH_RADIUS_MILES * np.arcsin(np.sqrt(np.minimum(a, 1.0)))


def results_json(matches: Iterable[Match]) -> dict[str, Any]:
    """The JSON shape the API and `hotline referrals search --json` share."""
    results = [{"organisation": m.organisation.model_dump(mode="json"),
                "distance_miles": None if m.distance_miles is None else round(m.distance_miles, 1)}
               for m in matches]
    return {"results": results, "count": len(results)}


def default_directory_path() -> Path:
    return Path(__file__).resolve().parent / "data" / "organisations.jsonl.gz"


def _describe(exc: ValidationError) -> str:
    e = exc.errors()[0]
    loc = ".".join(str(p) for p in e["loc"]) or "(row)"
    msg = e["msg"].removeprefix("Value error, ")
    if e["type"] == "extra_forbidden":
        msg = "unknown field"
    elif e["type"] == "missing":
        msg = "missing field"
    elif e["type"] != "value_error" and "input" in e and not isinstance(e["input"], dict):
        got = repr(e["input"])  # our own value errors already quote the value
        msg = f"{msg} (got {got[:60] + '…' if len(got) > 60 else got})"
    # Count other fields only: a bad list item also makes pydantic report the list as too short.
    more = len({err["loc"][:1] for err in exc.errors()} - {e["loc"][:1]})
    return f"{loc}: {msg}" + (f" (and {more} more problem{'s' if more > 1 else ''} on this line)" if more else "")


def _open_lines(path: Path) -> Iterator[str]:
    if path.suffix == ".gz":
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            yield from fh
    else:
        with path.open(encoding="utf-8") as fh:
            yield from fh


def read_organisations(path: str | Path) -> list[Organisation]:
    """Every row of a JSON-lines file (gzip if it ends in .gz), validated; DirectoryError names
    the file, the line and the field of the first bad row."""
    path = Path(path)
    orgs: list[Organisation] = []
    first_line: dict[str, int] = {}
    n = 0
    try:
        for n, line in enumerate(_open_lines(path), start=1):
            if not line.strip():
                continue
            try:
                data: Any = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DirectoryError(
                    f"{path}: line {n}: not valid JSON ({exc.msg} at character {exc.pos + 1})") from exc
            if not isinstance(data, dict):
                raise DirectoryError(f"{path}: line {n}: expected a JSON object, one organisation a line")
            try:
                org = Organisation.model_validate(data)
            except ValidationError as exc:
                who = f" (id {data['id']})" if isinstance(data.get("id"), str) and re.fullmatch(
                    r"[\w-]{1,64}", data["id"]) else ""
                raise DirectoryError(f"{path}: line {n}{who}: {_describe(exc)}") from exc
            if org.id in first_line:
                raise DirectoryError(f"{path}: line {n}: id: {org.id!r} is already used on line {first_line[org.id]}")
            first_line[org.id] = n
            orgs.append(org)
    except FileNotFoundError as exc:
        raise DirectoryError(f"{path}: directory file not found") from exc
    except UnicodeDecodeError as exc:
        raise DirectoryError(f"{path}: line {n + 1}: not UTF-8 text") from exc
    except (gzip.BadGzipFile, EOFError) as exc:
        raise DirectoryError(f"{path}: not a complete gzip file ({exc.__class__.__name__})") from exc
    except OSError as exc:
        raise DirectoryError(f"{path}: cannot read ({exc.__class__.__name__}: {exc.strerror or exc})") from exc
    if not orgs:
        raise DirectoryError(f"{path}: no organisations in the file")
    return orgs


def load_directory(path: str | Path | None = None) -> Directory:
    """The directory from a data file (default: the bundled seed data)."""
    return Directory(read_organisations(path or default_directory_path()))
