"""The one shape every channel produces."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Channel(StrEnum):
    SMS = "sms"
    VOICE = "voice"
    EMAIL = "email"
    WEBFORM = "webform"


def new_signal_id() -> str:
    """Random, opaque, unguessable: a signal id reveals neither order nor volume."""
    return uuid.uuid4().hex


class Location(BaseModel):
    """Where the contact may be, as the carrier or the contact told us (all optional)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    state: str | None = None
    city: str | None = None
    zip: str | None = None
    country: str | None = None


class Signal(BaseModel):
    """One inbound contact, normalised. Everything here is sensitive: never log it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(default_factory=new_signal_id)
    channel: Channel
    external_id: str = Field(min_length=1, max_length=255)
    received_at: datetime
    sender: str | None = None
    sender_region: str | None = None
    location: Location = Location()
    text: str = ""
    subject: str | None = None
    language: str = "und"
    language_confidence: float = Field(0.0, ge=0.0, le=1.0)
    raw: dict[str, Any] = Field(default_factory=dict)
    # Facts the channel knows for certain, e.g. "danger_key" (the caller pressed 9),
    # "missed_call", "voicemail". Triage reads them; they hold no contact data.
    flags: tuple[str, ...] = ()

    def __repr__(self) -> str:  # never let a stray repr() put contact data in a log
        return f"Signal(id={self.id!r}, channel={self.channel.value!r})"

    __str__ = __repr__
