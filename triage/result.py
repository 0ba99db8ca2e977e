"""TriageResult: what triage decided about a signal, and why."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

Category = Literal["crisis", "tip", "tta", "referral", "general", "at_risk", "unrelated"]
Urgency = Literal["immediate", "high", "normal", "low"]
TraffickingType = Literal["sex", "labor", "both", "none", "unknown"]

CATEGORIES: tuple[Category, ...] = ("crisis", "tip", "tta", "referral", "general", "at_risk", "unrelated")
URGENCIES: tuple[Urgency, ...] = ("immediate", "high", "normal", "low")
URGENCY_RANK: dict[str, int] = {"low": 0, "normal": 1, "high": 2, "immediate": 3}
# Most severe first: used to compare results (conversation escalation, re-triage).
CATEGORY_SEVERITY: tuple[Category, ...] = ("crisis", "tip", "at_risk", "referral", "tta", "general", "unrelated")


class Span(BaseModel):
    """Where a rule fired: offsets into the analysed text (subject + newline + text)."""

    model_config = ConfigDict(frozen=True)

    rule: str
    start: int
    end: int


class Location(BaseModel):
    model_config = ConfigDict(frozen=True)

    state: str | None = None
    city: str | None = None
    zip: str | None = None


class Indicators(BaseModel):
    model_config = ConfigDict(frozen=True)

    minor_involved: bool = False
    trafficking_type: TraffickingType = "unknown"
    imminent_danger: bool = False
    location: Location | None = None
    case_number: str | None = None


class TriageResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    category: Category
    urgency: Urgency
    language: str
    indicators: Indicators
    matched: tuple[str, ...]
    spans: tuple[Span, ...] = ()
    scores: dict[str, float] = {}
    # The learned model's category probabilities (empty when no model ran).
    learned: dict[str, float] = {}
    explanation: str
    ruleset: str

    def severity(self) -> tuple[int, int]:
        return severity(self.category, self.urgency)


def severity(category: str, urgency: str) -> tuple[int, int]:
    """Higher is more severe: urgency first, then the category's place in the order."""
    return (URGENCY_RANK[urgency], len(CATEGORY_SEVERITY) - CATEGORY_SEVERITY.index(category))  # type: ignore[arg-type]
