"""Reporting protocols: which agencies a routed case must be reported to, in what order and by
when. The table is data (routing/data/protocols.yaml); choosing the steps is a pure function."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import phonenumbers
import yaml
from phonenumbers import geocoder
from pydantic import BaseModel, ConfigDict, Field, ValidationError

LISTS = ("crisis", "minor", "adult", "labor", "at_risk_minor")


class ProtocolError(ValueError):
    """A protocol file problem, naming the file and key."""


class Step(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    agency: str = Field(min_length=1)
    action: str = Field(min_length=1)
    within_hours: float = Field(gt=0, le=24 * 30)
    consent: bool = False


class StateEntry(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=2)


class StateOverride(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    extra_crisis: tuple[Step, ...] = ()
    extra_minor: tuple[Step, ...] = ()
    extra_adult: tuple[Step, ...] = ()
    extra_labor: tuple[Step, ...] = ()
    extra_at_risk_minor: tuple[Step, ...] = ()


class NationalLists(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    crisis: tuple[Step, ...]
    minor: tuple[Step, ...]
    adult: tuple[Step, ...]
    labor: tuple[Step, ...]
    at_risk_minor: tuple[Step, ...]


class ProtocolTable(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    version: str
    national: NationalLists
    states: dict[str, StateEntry]
    overrides: dict[str, StateOverride] = {}


@dataclass(frozen=True)
class PlannedStep:
    """One checklist item for a case: a step with its agency named for the state and a due time."""

    protocol: str
    step_id: str
    agency: str
    action: str
    due_at: datetime
    consent: bool


def default_protocols_path() -> Path:
    return Path(__file__).resolve().parent / "data" / "protocols.yaml"


def load_protocols(path: Path | None = None) -> ProtocolTable:
    path = path or default_protocols_path()
    try:
        data: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ProtocolError(f"{path}: protocol file not found") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}:" if mark else ""
        raise ProtocolError(f"{path}:{where} invalid YAML") from exc
    try:
        table = ProtocolTable.model_validate(data)
    except ValidationError as exc:
        e = exc.errors()[0]
        loc = ".".join(str(p) for p in e["loc"])
        msg = "unknown key" if e["type"] == "extra_forbidden" else e["msg"]
        raise ProtocolError(f"{path}: {loc}: {msg}") from exc
    for code in list(table.states) + list(table.overrides):
        if not (len(code) == 2 and code.isupper() and code.isalpha()):
            raise ProtocolError(f"{path}: states.{code}: state codes are two capital letters (e.g. TX)")
    for code in table.overrides:
        if code not in table.states:
            raise ProtocolError(f"{path}: overrides.{code}: not a state listed under 'states'")
    for name in LISTS:
        ids = [s.id for s in getattr(table.national, name)]
        if len(ids) != len(set(ids)):
            raise ProtocolError(f"{path}: national.{name}: duplicate step ids")
    return table


def lists_for(category: str, minor: bool, trafficking_type: str) -> tuple[str, ...]:
    """Which protocol lists apply. Pure."""
    out: list[str] = []
    if category == "crisis":
        out.append("crisis")
    if category in ("crisis", "tip"):
        out.append("minor" if minor else "adult")
        if trafficking_type in ("labor", "both"):
            out.append("labor")
    elif category == "at_risk" and minor:
        out.append("at_risk_minor")
    return tuple(out)


def plan_steps(table: ProtocolTable, category: str, minor: bool, trafficking_type: str,
               state: str | None, opened_at: datetime) -> list[PlannedStep]:
    """The case's checklist: national steps for the lists that apply, named for the state,
    plus the state's own extra steps. Unknown state -> national protocol ("the state")."""
    known = state if state in table.states else None
    state_name = table.states[known].name if known else "the contact's state"
    override = table.overrides.get(known) if known else None
    planned: list[PlannedStep] = []
    for name in lists_for(category, minor, trafficking_type):
        steps = list(getattr(table.national, name))
        if override:
            steps += list(getattr(override, f"extra_{name}"))
        for s in steps:
            planned.append(PlannedStep(
                protocol=name, step_id=s.id, agency=s.agency.replace("{state}", state_name),
                action=s.action.replace("{state}", state_name),
                due_at=opened_at + timedelta(hours=s.within_hours), consent=s.consent,
            ))
    return planned



def state_from_phone(e164: str | None, table: ProtocolTable) -> str | None:
    """The state of a US/territory number's area code, from phonenumbers' geocoding data."""
    if not e164 or not e164.startswith("+1"):
        return None
    try:
        num = phonenumbers.parse(e164)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(num):
        return None
    desc = geocoder.description_for_number(num, "en")
    if not desc:
        return None
    tail = desc.rsplit(", ", 1)[-1]
    if tail in table.states:
        return tail
    by_name = {e.name.lower(): code for code, e in table.states.items()}
    return by_name.get(desc.lower())


def resolve_state(table: ProtocolTable, text_state: str | None, carrier_state: str | None,
                  sender: str | None) -> tuple[str | None, str]:
    """(state, source). Where the contact says it is happening beats where the phone is
    registered, which beats the area code; None -> the national protocol."""
    for state, source in ((text_state, "text"), (carrier_state, "carrier")):
        if state and state.upper() in table.states:
            return state.upper(), source
    from_phone = state_from_phone(sender, table)
    if from_phone:
        return from_phone, "area_code"
    return None, "unknown"
