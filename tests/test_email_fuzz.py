"""Fuzzing the email parser (intake/channels/email_parse.py; issue 11).

Whatever bytes arrive, `parse_email` returns a ParsedEmail (with its Signal) or raises EmailError
with a one-line reason, never anything else, and within a time bound: 2 s plus 1 s per MB of
input (the stdlib parser reads ~2 MB/s line by line; what this catches is blow-ups: before this
file, a 0.5 MB Content-Type with 100,000 parameters took 174 s, 100,000 nested <blockquote>s 206 s,
and 20,000 RFC 2231 file-name pieces 17 s).

Seeds are the real third-party corpora in ../shared/corpora/email (unmodified upstream test files:
SpamScope/mail-parser, Apache-2.0; CPython's email tests, PSF-2.0; zapier/email-reply-parser,
MIT - read at test time, never copied here) and the invented fixtures in tests/fixtures/email.
Hypothesis mutates them: truncation, flipped bytes, injected hostile headers, nesting inside
multiparts and forwarded messages, wrong charsets, huge headers, broken boundaries, splices.
The pathological shapes found this way are kept below as a table with the defect each one is
now reported with.

Run with -s to see how many messages were tried and the slowest one.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from intake.channels.email_parse import EmailError, EmailLimits, ParsedEmail, parse_email
from intake.normalize import LanguageDetector
from intake.signal import Channel

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpora" / "email"
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "email"
NOT_MAIL = {"LICENSE", "NOTICE.md", "UPSTREAM-NOTICE.txt"}
NOW = datetime(2026, 11, 26, 15, 0, tzinfo=UTC)
LIMITS = EmailLimits()
FUZZ = settings(max_examples=200, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture])
HEAD = b"From: Quill Ambers <quill.ambers@example.org>\r\nTo: help@example.org\r\nSubject: a question\r\n"


def time_cap(size: int) -> float:
    return 2.0 + size / 1_000_000


@dataclass
class Tally:
    tried: int = 0
    refused: int = 0
    worst: tuple[float, int, str] = (0.0, 0, "")
    refusals: dict[str, int] = field(default_factory=dict)


TALLY = Tally()


@pytest.fixture(scope="module", autouse=True)
def report() -> Iterator[None]:
    yield
    seconds, size, what = TALLY.worst
    print(f"\nemail fuzz: {TALLY.tried} messages, {TALLY.refused} refused with EmailError "
          f"({', '.join(f'{k}: {v}' for k, v in sorted(TALLY.refusals.items()))}); "
          f"slowest {seconds:.3f} s ({size} bytes, {what})")


@pytest.fixture(scope="module")
def detector() -> LanguageDetector:
    d = LanguageDetector()
    d.detect("load the models before the clock starts")
    return d


def check(raw: bytes, detector: LanguageDetector, what: str) -> ParsedEmail | None:
    """The whole contract for one message; returns the ParsedEmail, or None when refused."""
    start = time.perf_counter()
    try:
        parsed: ParsedEmail | None = parse_email(raw, NOW, detector, LIMITS)
    except EmailError as exc:
        parsed = None
        reason = str(exc)
        assert reason and "\n" not in reason and len(reason) < 200
        TALLY.refused += 1
        key = reason.split(" (")[0]
        TALLY.refusals[key] = TALLY.refusals.get(key, 0) + 1
    elapsed = time.perf_counter() - start
    TALLY.tried += 1
    TALLY.worst = max(TALLY.worst, (elapsed, len(raw), what))
    assert elapsed < time_cap(len(raw)), f"{what}: {elapsed:.1f} s for {len(raw)} bytes"
    if parsed is not None:
        s = parsed.signal
        assert s.channel is Channel.EMAIL and 1 <= len(s.external_id) <= 255
        assert len(s.text) <= 100_000 and len(parsed.full_text) <= 100_000
        assert len(parsed.defects) <= 20 and len(parsed.attachments) <= LIMITS.max_attachments
        s.model_dump_json()  # storable: no lone surrogate, nothing unserialisable
    return parsed


# ---- seeds and mutations ------------------------------------------------------------------------

def _seeds() -> list[tuple[str, bytes]]:
    seeds = [(f"fixtures/{p.name}", p.read_bytes()) for p in sorted(FIXTURES.glob("*.eml"))]
    if CORPUS.is_dir():
        for p in sorted(CORPUS.rglob("*")):
            if not p.is_file() or p.name in NOT_MAIL or p.stat().st_size > 64_000:
                continue
            data = p.read_bytes()
            if p.parent.name == "reply-parser":  # bodies without headers: give them some
                data = HEAD + b"\r\n" + data
            seeds.append((str(p.relative_to(CORPUS)), data))
    return seeds


SEEDS = _seeds()
HOSTILE_HEADERS = [
    b"Content-Type: multipart/mixed; boundary=\"\"",
    b"Content-Type: multipart/alternative",
    b"Content-Type: text/plain; charset=\"x-unknown-\xff\"",
    b"Content-Type: text/html; charset=utf-7",
    b"Content-Type: message/rfc822",
    b"Content-Type: ;;;;;;;=;=\"\\",
    b"Content-Transfer-Encoding: base64",
    b"Content-Transfer-Encoding: quoted-printable",
    b"Content-Transfer-Encoding: x-uuencode",
    b"Content-Disposition: attachment; filename*=utf-8''%ff%fe%00.exe",
    b"Content-Disposition: attachment; filename=\"..\\..\\..\\windows\\gpj.exe\"",
    b"Subject: =?utf-8?B?" + b"A" * 50 + b"?= =?x-junk?Q?=FF=FE?= =?utf-8?q?=E2=80=AE?=",
    b"From: \"\\\"<>,;:@\" <@>, (((((((((((a@example.org",
    b"Message-ID: <" + b"x" * 2000 + b">",
    b"Message-ID:",
    b"Date: Mon, 31 Feb 99999 25:61:61 +9999",
    b"References: " + b"<a@b> " * 200,
    b"Auto-Submitted: auto-replied",
    b"Received: from " + b"x" * 3000,
    b"X-\xff\xfe: \x80\x81",
    b"\tfolded-continuation-without-a-header",
    b"No-Colon-Header",
    b"MIME-Version: 1.0 (" + b"(" * 500,
]
BAD_CHARSETS = [b"utf-7", b"x-unknown", b"rot13", b"zlib", b"base64", b"utf-16", b"utf-32-be", b"\"\"", b"'",
                b"unicode-1-1-utf-7", b"iso-2022-jp", b"gb18030", b"x" * 200, b"idna", b"cp65001"]


def truncate(raw: bytes, draw: st.DrawFn) -> bytes:
    return raw[: draw(st.integers(0, len(raw)))]


def flip(raw: bytes, draw: st.DrawFn) -> bytes:
    data = bytearray(raw)
    for _ in range(draw(st.integers(1, 16))):
        if data:
            i = draw(st.integers(0, len(data) - 1))
            data[i] ^= 1 << draw(st.integers(0, 7))
    return bytes(data)


def inject_header(raw: bytes, draw: st.DrawFn) -> bytes:
    header = draw(st.sampled_from(HOSTILE_HEADERS) | st.binary(max_size=80))
    starts = [0] + [m.end() for m in re.finditer(rb"\n", raw[:20_000])]
    at = draw(st.sampled_from(starts))
    return raw[:at] + header + b"\r\n" + raw[at:]


def nest(raw: bytes, draw: st.DrawFn) -> bytes:
    """Wrap in multiparts and forwarded messages, up to past the parser's container limit."""
    for i in range(draw(st.integers(1, 150))):
        if draw(st.booleans()):
            raw = (HEAD + b"MIME-Version: 1.0\r\nContent-Type: message/rfc822\r\n\r\n" + raw)
        else:
            b = b"b%d" % i
            closing = b"\r\n--" + b + b"--\r\n" if draw(st.booleans()) else b""
            raw = (HEAD + b"Content-Type: multipart/mixed; boundary=" + b + b"\r\n\r\n--" + b + b"\r\n" + raw
                   + closing)
    return raw


def bad_charset(raw: bytes, draw: st.DrawFn) -> bytes:
    charset = draw(st.sampled_from(BAD_CHARSETS))
    out = re.sub(rb"(?i)charset=(\"?)[^\";\s]*\1", b"charset=" + charset, raw)
    return out if out != raw else inject_header(raw, draw)


def huge_header(raw: bytes, draw: st.DrawFn) -> bytes:
    name = draw(st.sampled_from([b"Subject", b"X-Junk", b"Content-Type", b"Content-Disposition", b"References",
                                 b"To", b"Received"]))
    unit = draw(st.sampled_from([b"a", b"; a=b", b"=?utf-8?q?a?= ", b"<x@y> ", b"a@example.org, ", b"(",
                                 b"\r\n ", b"; filename*0*=utf-8''%41"]))
    return name + b": " + unit * draw(st.integers(1_000, 60_000)) + b"\r\n" + raw


def break_boundaries(raw: bytes, draw: st.DrawFn) -> bytes:
    lines = raw.split(b"\n")
    marks = [i for i, ln in enumerate(lines) if ln.startswith(b"--")]
    if not marks:
        return raw + b"\n--" * draw(st.integers(1, 3000))
    i = draw(st.sampled_from(marks))
    if draw(st.booleans()):
        del lines[i]
    else:
        lines[i:i] = [lines[i]] * draw(st.integers(1, 2000))
    return b"\n".join(lines)


def splice(raw: bytes, draw: st.DrawFn) -> bytes:
    _, other = draw(st.sampled_from(SEEDS))
    return raw[: draw(st.integers(0, len(raw)))] + other[draw(st.integers(0, len(other))):]


MUTATIONS: dict[str, Callable[[bytes, st.DrawFn], bytes]] = {
    "truncate": truncate, "flip": flip, "inject_header": inject_header, "nest": nest,
    "bad_charset": bad_charset, "huge_header": huge_header, "break_boundaries": break_boundaries, "splice": splice,
}


@st.composite
def mutated(draw: st.DrawFn, only: str | None = None) -> tuple[str, bytes]:
    name, raw = draw(st.sampled_from(SEEDS))
    steps = [only] if only else draw(st.lists(st.sampled_from(sorted(MUTATIONS)), min_size=1, max_size=4))
    for step in steps:
        raw = MUTATIONS[step](raw, draw)
    return f"{name} + {'+'.join(steps)}", raw[: LIMITS.max_bytes]


# ---- the fuzz tests ----------------------------------------------------------------------------

def test_there_are_seeds() -> None:
    assert len(SEEDS) >= 10


@FUZZ
@given(case=mutated())
def test_mutated_real_mail_parses_or_is_refused_in_bounded_time(case: tuple[str, bytes],
                                                                 detector: LanguageDetector) -> None:
    check(case[1], detector, case[0])


@pytest.mark.parametrize("mutation", sorted(MUTATIONS))
@settings(FUZZ, max_examples=40)
@given(data=st.data())
def test_each_mutation_alone(mutation: str, data: st.DataObject, detector: LanguageDetector) -> None:
    what, raw = data.draw(mutated(only=mutation))
    check(raw, detector, what)


@FUZZ
@given(raw=st.binary(min_size=1, max_size=4_000).map(lambda b: HEAD + b))
def test_random_bytes_after_real_headers(raw: bytes, detector: LanguageDetector) -> None:
    check(raw, detector, "random body")


# ---- the pathological shapes, kept -------------------------------------------------------------

H = HEAD + b"Message-ID: <patho@example.org>\r\n"
PATHOLOGICAL: list[tuple[str, bytes, str | None]] = [
    # (what, message, the defect it is reported with (None: parsed normally))
    ("content-type-with-100000-parameters", H + b"Content-Type: text/plain" + b"; a=b" * 100_000 + b"\r\n\r\nhi",
     "OversizedMimeStructure"),  # was 174 s
    ("content-disposition-20000-rfc2231-pieces", H + b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n"
     b"Content-Disposition: attachment" + b"".join(b"; filename*%d*=utf-8''%%41" % i for i in range(20_000))
     + b"\r\n\r\nx\r\n--b--\r\n", "OversizedMimeStructure"),  # was 17 s
    ("900-parts-each-with-30-parameters", H + b"Content-Type: multipart/mixed; boundary=b\r\n\r\n"
     + (b"--b\r\nContent-Type: text/plain; charset=utf-8" + b"; a=b" * 30 + b"\r\n\r\nhi\r\n") * 900 + b"--b--\r\n",
     "TooManyMimeParameters"),  # 1000 took 13.7 s
    ("200-parts-with-1KB-junk-content-types", H + b"Content-Type: multipart/mixed; boundary=b\r\n\r\n"
     + (b"--b\r\nContent-Type: " + b"<x@y> " * 170 + b"\r\n\r\nhi\r\n") * 200 + b"--b--\r\n",
     "UnusualMimeHeader"),  # policy.default: a quarter of a second per access to each
    ("forwarded-message-with-a-0.4MB-To", H + b"Content-Type: message/rfc822\r\n\r\nTo: " + b"<x@y> " * 60_000
     + b"\r\nSubject: fwd\r\n\r\nhelp", None),  # found by the fuzzer: 137 s (refolded when hashed)
    ("80000-nested-blockquotes", H + b"Content-Type: text/html\r\n\r\n" + b"<blockquote>" * 80_000 + b"help",
     None),  # 100,000 took 206 s (each quote level re-prefixed the text inside it)
    ("4000-parts", H + b"Content-Type: multipart/mixed; boundary=b\r\n\r\n"
     + b"--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n" * 4000 + b"--b--\r\n", "TooManyParts"),  # was 1.7 s
    ("1.4-million-boundary-lines", H + b"Content-Type: multipart/mixed; boundary=b\r\n\r\n"
     + b"--b\r\n\r\n" * 1_400_000, "OversizedMimeStructure"),  # 10 MB: past 20,000 boundary lines is never reached
    ("250-nested-multiparts", H + b"".join(b"Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n" % (i, i)
                                           for i in range(250)) + b"\r\nx\r\n", "TooManyNestedParts"),
    # ^ read with compat32; text below 25 levels is not looked at (TooDeeplyNested)
    ("5000-nested-multiparts", H + b"".join(b"Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n" % (i, i)
                                            for i in range(5000)) + b"\r\nhelp\r\n", "MimeStructureUnreadable"),
    # ^ was refused ("malformed message") after 2-3 s
    ("3000-nested-forwards", H + b"Content-Type: message/rfc822\r\n\r\n"
     + b"From: a@example.org\r\nContent-Type: message/rfc822\r\n\r\n" * 3000 + b"From: a@example.org\r\n\r\nhelp",
     "MimeStructureUnreadable"),  # was refused: past the recursion limit the body is read as text
    ("1MB-header-line", H + b"X-Junk: " + b"a" * 1_000_000 + b"\r\n\r\nhelp", None),
    ("70000-encoded-words", H.replace(b"Subject: a question", b"Subject: " + b"=?utf-8?q?a?= " * 70_000)
     + b"\r\nhelp", None),
    ("50000-headers", H + b"".join(b"X-H%d: v\r\n" % i for i in range(50_000)) + b"\r\nhelp", None),
    ("100000-open-parentheses-in-from", H.replace(b"From: Quill", b"From: " + b"(" * 100_000 + b"Quill")
     + b"\r\nhelp", None),
    ("8MB-of-invalid-base64", H + b"Content-Transfer-Encoding: base64\r\n\r\n" + b"!@#$" * 2_000_000, None),
    ("9MB-of-newlines", H + b"\r\n" + b"\n" * 9_000_000, None),
    ("1-million-nested-divs", H + b"Content-Type: text/html\r\n\r\n" + b"<div>" * 1_000_000, None),
]


@pytest.mark.parametrize(("what", "raw", "defect"), PATHOLOGICAL, ids=[p[0] for p in PATHOLOGICAL])
def test_pathological_shapes_cost_bounded_time(what: str, raw: bytes, defect: str | None,
                                               detector: LanguageDetector) -> None:
    parsed = check(raw, detector, what)
    assert parsed is not None, f"{what} was refused"
    if defect:
        assert defect in parsed.defects
    if raw.rstrip().endswith(b"help"):
        assert "help" in parsed.full_text  # the words still come through
