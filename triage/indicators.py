"""Indicators that are not plain word lists: location hints and quoted case numbers."""

from __future__ import annotations

import re

from intake.case_numbers import find_case_numbers

from .result import Location

US_STATES: dict[str, str] = {
    "alabama": "AL", "alaska": "AK", "arizona": "AZ", "arkansas": "AR", "california": "CA",
    "colorado": "CO", "connecticut": "CT", "delaware": "DE", "florida": "FL", "georgia": "GA",
    "hawaii": "HI", "idaho": "ID", "illinois": "IL", "indiana": "IN", "iowa": "IA", "kansas": "KS",
    "kentucky": "KY", "louisiana": "LA", "maine": "ME", "maryland": "MD", "massachusetts": "MA",
    "michigan": "MI", "minnesota": "MN", "mississippi": "MS", "missouri": "MO", "montana": "MT",
    "nebraska": "NE", "nevada": "NV", "new hampshire": "NH", "new jersey": "NJ", "new mexico": "NM",
    "new york": "NY", "north carolina": "NC", "north dakota": "ND", "ohio": "OH", "oklahoma": "OK",
    "oregon": "OR", "pennsylvania": "PA", "rhode island": "RI", "south carolina": "SC",
    "south dakota": "SD", "tennessee": "TN", "texas": "TX", "utah": "UT", "vermont": "VT",
    "virginia": "VA", "washington": "WA", "west virginia": "WV", "wisconsin": "WI", "wyoming": "WY",
    "district of columbia": "DC", "puerto rico": "PR", "guam": "GU", "us virgin islands": "VI",
    "nueva york": "NY", "nuevo mexico": "NM", "carolina del norte": "NC", "carolina del sur": "SC",
    "luisiana": "LA", "misisipi": "MS", "pensilvania": "PA", "virginia occidental": "WV",
}
_ABBREVS = frozenset(US_STATES.values())
_NAMES = sorted(US_STATES, key=len, reverse=True)
_STATE_NAME = re.compile(r"\b(" + "|".join(re.escape(n) for n in _NAMES) + r")\b", re.IGNORECASE)
# "Houston, TX", "Houston TX 77002": an abbreviation counts only in an address shape, since
# IN, OR, ME, OK, HI are also words.
_CITY_STATE = re.compile(r"\b([A-Z][a-zA-Z.'-]+(?: [A-Z][a-zA-Z.'-]+){0,2}),? ([A-Z]{2})\b(?:,? (\d{5})(?:-\d{4})?)?")
_ZIP = re.compile(r"(?<![\d-])(\d{5})(?:-\d{4})?(?![\d-])")
_ZIP_CONTEXT = re.compile(r"\b(zip|zipcode|zip code|codigo postal|c\.p\.|[A-Z]{2})\W{0,3}$", re.IGNORECASE)
_CITY_BEFORE_NAME = re.compile(
    r"\b(?:in|en|near|cerca de|at|from|de)\s+([A-Z][a-zA-Z.'-]+(?: [A-Z][a-zA-Z.'-]+){0,2}),?\s*$")


def location_hints(text: str) -> Location | None:
    """City/state/ZIP mentioned in the text, if any. Conservative: a wrong state misroutes."""
    state = city = zip_code = None
    for m in _CITY_STATE.finditer(text):
        if m.group(2) in _ABBREVS:
            city, state, zip_code = m.group(1), m.group(2), m.group(3)
            break
    if state is None:
        m = _STATE_NAME.search(text)
        if m:
            state = US_STATES[m.group(1).lower()]
            before = _CITY_BEFORE_NAME.search(text[: m.start()])
            if before and before.group(1).lower() not in US_STATES:
                city = before.group(1)
    if zip_code is None:
        for m in _ZIP.finditer(text):
            # A bare five-digit number is a ZIP only next to an address or the word "zip".
            if _ZIP_CONTEXT.search(text[max(0, m.start() - 20): m.start()]) or state:
                zip_code = m.group(1)
                break
    if state is None and city is None and zip_code is None:
        return None
    return Location(state=state, city=city, zip=zip_code)


def quoted_case_number(text: str) -> str | None:
    found = find_case_numbers(text)
    return found[0] if found else None
