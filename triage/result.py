"""TriageResult: what triage decided about a signal, and why."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

Category = Literal["crisis", "tip", "tta", "referral", "general", "at_risk", "unrelated"]
Urgency = Literal["immediate", "high", "normal", "low"]
TraffickingType = Literal["sex", "labor", "both", "none", "unknown"]

CATEGORIES: tuple[Category, ...] = ("crisis", "tip", "tta", "referral", "general", "at_risk", "unrelated")
URGENCIES: tuple[Urgency, ...] = ("immediate", "high", "normal", "low")


class Span(BaseModel):
    model_config = ConfigDict(frozen=True)

    rule: str
    start: int
    end: int


class Indicators(BaseModel):
    model_config = ConfigDict(frozen=True)

    minor_involved: bool = False
    trafficking_type: TraffickingType = "unknown"


class TriageResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    category: Category
    urgency: Urgency
    language: str
    indicators: Indicators
    matched: tuple[str, ...]
    spans: tuple[Span, ...] = ()
    explanation: str
    ruleset: str
