"""The textline's decisions, pure: staffed hours, keywords, and which auto-reply (if any).

A hotline texter may be a victim whose phone is read by someone else: replies are short, say
no more than needed, and the safe word makes the line go quiet.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

import holidays

Keyword = Literal["help", "open", "stop", "start", "safe_word"]
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

# Whole-message keywords (after trimming, case folding, accents and punctuation removed).
STOP_WORDS = frozenset({"stop", "stopall", "unsubscribe", "cancel", "end", "quit"})
START_WORDS = frozenset({"start", "unstop", "yes"})
HELP_WORDS = frozenset({"help", "info", "ayuda", "aide", "ajuda", "auxilio", "socorro"})
OPEN_WORDS = frozenset({"befree", "be free", "libre", "hola", "hi", "hello"})


@dataclass(frozen=True)
class Window:
    start: time
    end: time  # may be <= start: the window runs past midnight


@dataclass(frozen=True)
class Hours:
    tz: ZoneInfo
    weekly: Mapping[str, tuple[Window, ...]]
    holiday_country: str | None
    closed_dates: frozenset[date]


def parse_window(text: str) -> Window:
    m = re.fullmatch(r"\s*([01]\d|2[0-3]):([0-5]\d)\s*-\s*([01]\d|2[0-4]):([0-5]\d)\s*", text)
    if not m:
        raise ValueError(f"{text!r} is not a window like 15:00-23:00")
    end_h = int(m.group(3))
    end = time(23, 59, 59, 999999) if end_h == 24 else time(end_h, int(m.group(4)))
    return Window(time(int(m.group(1)), int(m.group(2))), end)


def _closed_on(d: date, hours: Hours) -> bool:
    if d in hours.closed_dates:
        return True
    return bool(hours.holiday_country) and d in holidays.country_holidays(hours.holiday_country, years=d.year)


def is_staffed(at: datetime, hours: Hours) -> bool:
    """Is an advocate on the textline at this moment? Windows past midnight belong to the
    day they start on (Friday 20:00-02:00 covers Saturday 01:00)."""
    local = at.astimezone(hours.tz)
    today, t = local.date(), local.timetz().replace(tzinfo=None)
    for w in hours.weekly.get(WEEKDAYS[today.weekday()], ()):
        if w.start < w.end and w.start <= t < w.end and not _closed_on(today, hours):
            return True
        if w.end <= w.start and t >= w.start and not _closed_on(today, hours):
            return True
    yesterday = today - timedelta(days=1)
    for w in hours.weekly.get(WEEKDAYS[yesterday.weekday()], ()):
        if w.end <= w.start and t < w.end and not _closed_on(yesterday, hours):
            return True
    return False


def _norm(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text.lower())
    folded = "".join(c for c in folded if not unicodedata.combining(c))
    return re.sub(r"[^a-z0-9 ]+", "", re.sub(r"\s+", " ", folded)).strip()


def _near(word: str, vocab: Iterable[str]) -> bool:
    """Equal, or one typo away for words of five letters or more ("befre", "bfree")."""
    for v in vocab:
        if word == v:
            return True
        if len(v) >= 5 and abs(len(word) - len(v)) <= 1 and _edit_distance_at_most_one(word, v):
            return True
    return False


def _edit_distance_at_most_one(a: str, b: str) -> bool:
    if a == b:
        return True
    if len(a) > len(b):
        a, b = b, a
    i = 0
    while i < len(a) and a[i] == b[i]:
        i += 1
    if len(a) == len(b):
        return a[i + 1:] == b[i + 1:]
    return a[i:] == b[i + 1:]


def keyword(text: str, opt_out_type: str | None = None, safe_word: str | None = None) -> Keyword | None:
    """The keyword a whole message is, if any. Twilio's OptOutType (Advanced Opt-Out) wins."""
    if opt_out_type:
        kind = opt_out_type.strip().upper()
        if kind == "STOP":
            return "stop"
        if kind == "START":
            return "start"
        if kind == "HELP":
            return "help"
    word = _norm(text)
    if not word or len(word) > 20:
        return None
    if safe_word and word == _norm(safe_word):
        return "safe_word"
    if word.replace(" ", "") in STOP_WORDS:
        return "stop"
    if word.replace(" ", "") in START_WORDS and word != "yes":
        return "start"
    if _near(word, HELP_WORDS):
        return "help"
    if _near(word, OPEN_WORDS) or _near(word.replace(" ", ""), {"befree"}):
        return "open"
    return None


@dataclass(frozen=True)
class ReplyTexts:
    greeting: str
    after_hours: str
    help: str


ReplyKind = Literal["greeting", "after_hours", "help", "none"]


def choose_reply(kw: Keyword | None, opens_conversation: bool, staffed: bool, opted_out: bool,
                 silenced: bool) -> ReplyKind:
    """Which auto-reply a message gets. Nothing goes to a number that opted out or used the
    safe word; HELP always gets the help text (it names the hotline and 911); the first
    message of a conversation gets the greeting, or once the after-hours text."""
    if kw in ("stop", "safe_word") or opted_out or silenced:
        return "none"
    if kw == "help":
        return "help"
    if kw == "start":
        return "greeting"
    if opens_conversation:
        return "greeting" if staffed else "after_hours"
    return "none"
