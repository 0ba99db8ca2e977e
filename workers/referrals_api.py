"""GET /api/referrals: the referral directory over HTTP, for the console and other tools.

    GET /api/referrals?zip=77002&radius=50&service=shelter_emergency&service=legal_immigration&language=es
    -> 200 {"results": [{"organisation": {...}, "distance_miles": 12.3}], "count": n, "near": {...} | null}
    -> 400 {"error": "...", "field": "radius"}   for a bad or unknown parameter

Parameters: zip | city ("Houston, TX") | lat+lon; radius (miles); service (repeatable, all
required); gender; age_group; nationality (ISO 3166); trafficking_type; language (ISO 639);
open_24_7 (true/false); limit (1-100, default 20). Unknown parameters are refused rather than
ignored, so a misspelt filter can never silently widen the results.

The query carries where a contact is: it is neither logged nor cached (Cache-Control: no-store).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable

from flask import Blueprint, Response, jsonify, request

from routing.directory import Directory, DirectoryError, SearchError, results_json
from routing.geo import Geocoder, GeoError, Place

log = logging.getLogger(__name__)

SINGLE = ("zip", "city", "lat", "lon", "radius", "gender", "age_group", "nationality", "trafficking_type",
          "language", "open_24_7", "limit")
MULTI = ("service",)
MAX_LIMIT = 100


def _error(message: str, field: str | None, status: int = 400) -> Response:
    resp = jsonify(error=message, field=field)
    resp.status_code = status
    resp.headers["Cache-Control"] = "no-store"
    return resp


def _number(name: str, raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise SearchError(name, f"{name} must be a number, not {raw[:40]!r}") from None
    if not math.isfinite(value):
        raise SearchError(name, f"{name} must be a finite number")
    return value


def _flag(name: str, raw: str) -> bool:
    low = raw.strip().lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off", ""):
        return False
    raise SearchError(name, f"{name} must be true or false")


def _place(args: dict[str, str], geocoder: Geocoder) -> Place | None:
    given = [k for k in ("zip", "city") if k in args] + (["lat/lon"] if "lat" in args or "lon" in args else [])
    if len(given) > 1:
        raise SearchError(given[1].split("/")[0], f"give one of zip, city or lat/lon, not {' and '.join(given)}")
    try:
        if "zip" in args:
            return geocoder.zip(args["zip"])
        if "city" in args:
            return geocoder.city(args["city"])
    except GeoError as exc:
        raise SearchError("zip" if "zip" in args else "city", str(exc)) from exc
    if "lat" in args or "lon" in args:
        if "lat" not in args or "lon" not in args:
            raise SearchError("lat" if "lat" not in args else "lon", "give both lat and lon")
        lat, lon = _number("lat", args["lat"]), _number("lon", args["lon"])
        if not -90 <= lat <= 90:
            raise SearchError("lat", "lat must be between -90 and 90")
        if not -180 <= lon <= 180:
            raise SearchError("lon", "lon must be between -180 and 180")
        return Place(lat, lon, f"{lat:.4f},{lon:.4f}", "")
    return None


def make_blueprint(directory_provider: Callable[[], Directory], geocoder: Geocoder | None = None) -> Blueprint:
    """`directory_provider()` returns the Directory (the caller loads it once, lazily)."""
    geo = geocoder or Geocoder()
    bp = Blueprint("referrals", __name__)

    @bp.get("/api/referrals")
    def search() -> Response:
        for name in request.args:
            if name not in SINGLE and name not in MULTI:
                return _error(f"unknown parameter {name[:40]!r}; expected one of: "
                              f"{', '.join(sorted(SINGLE + MULTI))}", name[:40])
            if name in SINGLE and len(request.args.getlist(name)) > 1:
                return _error(f"give {name} once", name)
        args = {k: request.args[k] for k in SINGLE if k in request.args}
        try:
            place = _place(args, geo)
            radius = _number("radius", args["radius"]) if "radius" in args else None
            limit = 20
            if "limit" in args:
                raw_limit = args["limit"]  # isascii: "²".isdigit() is True, but int("²") raises
                if not (raw_limit.isascii() and raw_limit.isdigit()) or not 1 <= int(raw_limit) <= MAX_LIMIT:
                    raise SearchError("limit", f"limit must be a whole number from 1 to {MAX_LIMIT}")
                limit = int(args["limit"])
            if radius is not None and place is None:
                raise SearchError("radius", "a radius needs zip, city or lat/lon to measure from")
            try:
                directory = directory_provider()
            except DirectoryError as exc:
                log.error("referral directory unavailable: %s", exc)
                return _error("the referral directory is unavailable", None, 503)
            matches = directory.search(
                (place.lat, place.lon) if place else None, radius,
                services=request.args.getlist("service"), gender=args.get("gender"),
                age_group=args.get("age_group"), nationality=args.get("nationality"),
                trafficking_type=args.get("trafficking_type"), language=args.get("language"),
                open_24_7=_flag("open_24_7", args["open_24_7"]) if "open_24_7" in args else False, limit=limit)
        except SearchError as exc:
            return _error(str(exc), exc.field)
        body = results_json(matches)
        body["near"] = None if place is None else {"label": place.label, "lat": place.lat, "lon": place.lon}
        resp = jsonify(body)
        resp.headers["Cache-Control"] = "no-store"
        return resp

    return bp
