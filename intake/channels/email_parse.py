"""Email channel, the pure half: raw RFC 5322 bytes -> ParsedEmail (and the Signal it becomes).

No I/O and no state: everything comes in as arguments, so the webhook, the IMAP poller and
`hotline email parse` turn the same bytes into the same Signal (apart from its random id).

Mail in the wild is messy, and a hotline cannot afford to drop a message because a mailer got
MIME wrong. So this module degrades instead of failing:
  * headers are decoded by hand from their raw form (RFC 2047 encoded words, raw 8-bit bytes in
    any charset), because the stdlib's structured header parsing raises on some malformed input;
  * a body part's declared charset is tried first, then UTF-8, then cp1252, then latin-1 (which
    cannot fail), so a wrong or missing charset costs accents, never the message;
  * if the stdlib parser itself raises on a message under `policy.default` (it does, on some
    malformed Content-Type parameters), the message is parsed again with the lenient
    `policy.compat32`, and the fallback is named in `ParsedEmail.defects`;
  * hostile shapes cost bounded time: MIME nesting, part count, HTML size and text size are capped.
Only input that is not an email at all (empty, no headers, binary junk, an Outlook .msg) or is
over the size limit raises `EmailError`, whose text is safe to show: it never quotes the message.

Quoted replies and signatures are stripped for triage (`strip_quoted`): a reply usually quotes
the hotline's own acknowledgement or the contact's earlier message, and triaging that again
would raise false alarms or bury the new words. The full text is kept too.
"""

from __future__ import annotations

import binascii
import codecs
import hashlib
import html
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from email import policy
from email.message import Message
from email.parser import BytesParser
from email.utils import parsedate_to_datetime
from typing import Any

from bs4 import BeautifulSoup
from bs4.element import Comment, Declaration, Doctype, NavigableString, PageElement, ProcessingInstruction, Tag

from ..normalize import LanguageDetector, clean_text
from ..signal import Channel, Signal

__all__ = [
    "Attachment",
    "EmailError",
    "EmailLimits",
    "ParsedEmail",
    "content_hash",
    "decode_bytes",
    "decode_header_text",
    "html_to_text",
    "is_forward",
    "parse_email",
    "strip_quoted",
]

MAX_TEXT_CHARS = 100_000
MAX_HTML_CHARS = 1_000_000  # html.parser reads ~1 MB/s; bigger HTML is a newsletter, and the text is capped anyway
MAX_SUBJECT_CHARS = 1_000
MAX_REFERENCES = 50  # the newest ones (References lists grow at the end)
MAX_EXTERNAL_ID = 255
_MAX_DEPTH = 25  # MIME nesting; real mail rarely goes past 5
_MAX_PARTS = 1_000  # leaf parts looked at, whatever the attachment limit
_MAX_DEFECTS = 20
_MAX_BOUNDARY_LINES = 1_000  # past this many, compat32 (policy.default costs ~0.4 ms per part)
_MAX_READ_BOUNDARY_LINES = 20 * _MAX_PARTS  # past this many, the rest is never reached: not parsed at all
_MAX_MIME_PARAMS = 300  # ';' in all Content-Type/-Disposition fields together (real mail: a few per part)
_MAX_MIME_FIELD = 4_096  # bytes of one such field (a long RFC 2231 file name fits)
_MAX_CONTAINERS = 100  # multipart/* and message/* parts
_MAX_HTML_TAGS = 20_000  # past this many, a linear tag stripper instead of BeautifulSoup
_MAX_QUOTE_DEPTH = 20  # nested <blockquote>s rendered as "> " levels; deeper ones read as plain blocks

# Headers one of which any real email carries; a blob with none of them is not an email.
_EMAIL_HEADERS = frozenset({
    "from", "sender", "to", "cc", "subject", "date", "message-id", "mime-version", "content-type",
    "received", "return-path", "reply-to", "delivered-to", "in-reply-to", "references",
})
_SIGNATURE_TYPES = frozenset({"application/pgp-signature", "application/pkcs7-signature",
                              "application/x-pkcs7-signature"})
_BULK_PRECEDENCE = frozenset({"bulk", "junk", "list", "auto_reply"})
_DAEMON_SENDERS = frozenset({"mailer-daemon", "postmaster"})

# Labels mail clients get wrong in predictable ways (the WHATWG encoding standard does the same):
# mail labelled latin-1 or GB2312 is usually cp1252 or GBK/GB18030.
_CHARSET_ALIASES = {
    "iso-8859-1": "cp1252", "iso8859-1": "cp1252", "latin1": "cp1252", "latin-1": "cp1252",
    "l1": "cp1252", "iso_8859-1": "cp1252",
    "gb2312": "gb18030", "gbk": "gb18030", "x-gbk": "gb18030", "cp936": "gb18030", "euc-cn": "gb18030",
    "ks_c_5601-1987": "cp949", "euc-kr": "cp949", "ks_c_5601": "cp949",
    "shift_jis": "cp932", "shift-jis": "cp932", "x-sjis": "cp932", "sjis": "cp932",
    "big5": "big5hkscs", "iso-8859-8-i": "iso-8859-8", "tis-620": "cp874", "windows-874": "cp874",
    "unicode-1-1-utf-7": "utf-7", "x-unknown": "", "unknown-8bit": "", "unknown": "", "default": "",
}


class EmailError(ValueError):
    """Unusable input. The text is one line, safe to show and log: no message text or addresses."""


@dataclass(frozen=True)
class EmailLimits:
    """Caps that keep one hostile or broken message from costing memory or a worker's time."""

    max_bytes: int = 10 * 1024 * 1024
    max_attachment_bytes: int = 5 * 1024 * 1024
    max_attachments: int = 20


@dataclass(frozen=True)
class Attachment:
    """An attachment as metadata only: the bytes are never stored or opened here."""

    name: str | None
    content_type: str
    size: int
    sha256: str | None
    skipped: str | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "content_type": self.content_type, "size": self.size,
                               "sha256": self.sha256}
        if self.skipped:
            out["skipped"] = self.skipped
        return out


@dataclass(frozen=True)
class ParsedEmail:
    """One parsed email and the Signal it becomes.

    `signal.text` is `text_for_triage` (the new words, quotes and signatures stripped), because
    the triage engine reads `Signal.text` and a Signal has one text; the whole body is kept in
    `signal.raw["full_text"]` and here as `full_text`. `text_for_triage` is the full text when
    stripping would leave nothing (a bare forward or quote still has to be read) and for
    forwarded messages (there the quoted part is the tip). Everything here is contact data:
    never log it (`auto_submitted`, `loop_reason` and `defects` excepted).
    """

    signal: Signal
    message_id: str | None
    in_reply_to: str | None
    references: tuple[str, ...]
    auto_submitted: bool
    loop_reason: str | None
    sender: str | None
    to: tuple[str, ...]
    subject: str | None
    date: str | None  # ISO 8601 of the Date header, None when missing or unparseable
    date_header: str | None  # the Date header as written (for the content hash when unparseable)
    full_text: str
    text_for_triage: str
    attachments: tuple[Attachment, ...]
    attachments_omitted: int
    size: int
    defects: tuple[str, ...]  # names of the MIME defects the parser noticed (a report, not an error)

    @property
    def external_id(self) -> str:
        return self.signal.external_id


# ---- public helpers -----------------------------------------------------------------------------


def content_hash(parsed: ParsedEmail) -> str:
    """Hex SHA-256 of what makes a message this message: From, Date, Subject, body, attachments.

    The id for a message without a Message-ID, and what the caller compares when two messages
    share a Message-ID (some mailers reuse them). Stable across runs and machines.
    """
    return _content_digest(parsed.sender, parsed.date, parsed.date_header, parsed.subject, parsed.full_text,
                           parsed.attachments)


def decode_bytes(data: bytes, charset: str | None) -> str:
    """Bytes -> text, never raising: the declared charset, then UTF-8, then cp1252, then latin-1."""
    declared = _codec(charset)
    candidates = list(dict.fromkeys(n for n in (declared, "utf-8") if n))
    for name in candidates:
        try:
            return data.decode(name)
        except (UnicodeDecodeError, LookupError):
            continue
    # A stray bad byte in text that is otherwise plainly in its charset (mailers and forwarders
    # truncate): keep the charset and replace the byte, rather than turn the whole message into
    # cp1252 mojibake. Without that much evidence (e.g. "caf\xe9" labelled UTF-8), cp1252 wins.
    for name in candidates:
        try:
            text = data.decode(name, errors="replace")
        except LookupError:
            continue
        bad = text.count("\ufffd")
        good = sum(1 for ch in text if ord(ch) > 127) - bad
        if good >= 20 * bad:
            return text
    try:
        return data.decode("cp1252")
    except UnicodeDecodeError:
        return data.decode("latin-1", errors="replace")


def decode_header_text(raw: str | None) -> str:
    """A raw header value -> readable text: raw 8-bit bytes and RFC 2047 encoded words decoded,
    folding removed, whitespace collapsed. Never raises."""
    if not raw:
        return ""
    text = _unsurrogate(raw)
    text = re.sub(r"\r?\n(?=[ \t])", "", text)
    if "=?" in text:
        text = _decode_encoded_words(text)
    text = _CONTROL_CHARS.sub(" ", text)
    return " ".join(text.split())


def html_to_text(markup: str) -> str:
    """HTML -> plain text for reading and triage. Script, style and other non-content elements are
    dropped with their contents; blockquotes become "> " lines so `strip_quoted` treats them as
    quotes. Uses BeautifulSoup's pure-Python html.parser: nothing is fetched or executed. The tree
    is walked once, without recursion or edits, so hostile nesting costs linear time."""
    if "<" not in markup:
        return _tidy(" ".join(html.unescape(markup).split()))
    markup = markup[:MAX_HTML_CHARS]
    if markup.count("<") > _MAX_HTML_TAGS:
        return _crude_html_to_text(markup)
    # An XML declaration makes bs4 warn on stderr; it carries no text.
    soup = BeautifulSoup(_XML_DECL.sub("", markup), "html.parser")
    buffers: list[list[str]] = [[]]
    pre = 0
    # (tag, its children, whether it opened a quote level): each level re-prefixes the text inside
    # it, so the levels stop at _MAX_QUOTE_DEPTH (100,000 nested quotes took minutes).
    stack: list[tuple[Tag, Iterator[PageElement], bool]] = [(soup, iter(soup.contents), False)]
    while stack:
        tag, children, quoted = stack[-1]
        child = next(children, None)
        if child is None:
            stack.pop()
            name = tag.name
            if name == "pre":
                pre -= 1
            elif quoted:
                inner = _tidy(_SPACES.sub(" ", "".join(buffers.pop())))
                buffers[-1].append("\n" + "\n".join(f"> {ln}" if ln else ">" for ln in inner.split("\n")) + "\n")
            if name in _BLOCK_TAGS:
                buffers[-1].append("\n")
            elif name in ("td", "th"):
                buffers[-1].append(" ")
            continue
        if isinstance(child, NavigableString):
            if not isinstance(child, Comment | Declaration | Doctype | ProcessingInstruction):
                buffers[-1].append(str(child) if pre else _WHITESPACE.sub(" ", str(child)))
            continue
        if not isinstance(child, Tag) or child.name in _DROP_TAGS:
            continue
        if child.name == "br":
            buffers[-1].append("\n")
            continue
        if child.name in _BLOCK_TAGS:
            buffers[-1].append("\n")
        opens_quote = child.name == "blockquote" and len(buffers) <= _MAX_QUOTE_DEPTH
        if child.name == "pre":
            pre += 1
        elif opens_quote:
            buffers.append([])
        stack.append((child, iter(child.contents), opens_quote))
    return _tidy(_SPACES.sub(" ", "".join(buffers[0])))


def _crude_html_to_text(markup: str) -> str:
    """HTML with more tags than BeautifulSoup reads in reasonable time (it builds an object per
    tag: 200,000 nested <div>s took 4-8 s): text between tags, a line break for block tags,
    non-content elements dropped. One pass with str.find, linear on any input; no quote levels."""
    out: list[str] = []
    pos, n, skipping = 0, len(markup), ""
    while pos < n:
        lt = markup.find("<", pos)
        lt = n if lt < 0 else lt
        if not skipping and lt > pos:
            out.append(_WHITESPACE.sub(" ", markup[pos:lt]))
        if lt >= n:
            break
        if markup.startswith("<!--", lt):
            end = markup.find("-->", lt + 4)
            pos = n if end < 0 else end + 3
            continue
        after = markup[lt + 1:lt + 2]
        if not (after.isascii() and (after.isalpha() or after in "/!?")):
            if not skipping:
                out.append("<")  # "a < b": text, not a tag
            pos = lt + 1
            continue
        gt = markup.find(">", lt + 1)
        if gt < 0:  # a lone "<": the rest is text
            if not skipping:
                out.append(_WHITESPACE.sub(" ", markup[lt:]))
            break
        pos = gt + 1
        tag = _TAG_NAME.match(markup, lt + 1, gt)
        if not tag:
            continue
        closing, name = tag.group(1) == "/", tag.group(2).lower()
        if skipping:
            skipping = "" if closing and name == skipping else skipping
        elif not closing and name in _DROP_TAGS and not markup.startswith("/", gt - 1):
            skipping = name
        elif name in _BLOCK_TAGS or name == "br":
            out.append("\n")
    return _tidy(_SPACES.sub(" ", html.unescape("".join(out))))


def is_forward(subject: str | None, text: str) -> bool:
    """A forwarded message: its quoted part is the point (a tip passed on), so it is not stripped."""
    if subject and _FORWARD_SUBJECT.match(subject):
        return True
    return any(_FORWARD_MARKER.match(line) for line in text.split("\n", 400)[:400])


def strip_quoted(text: str) -> str:
    """The newly written part of a message body: drops "> " lines, "On ... wrote:" /
    "El ... escribió:" headers (and everything after them when the quote is not "> " marked),
    Outlook "-----Original Message-----" and "From:/Sent:" blocks, and signatures ("-- ",
    "Sent from my iPhone", "Enviado desde mi ..."). Line by line with anchored patterns: linear
    time on any input."""
    lines = text.replace("\r\n", "\n").split("\n")
    out: list[str] = []
    i, n = 0, len(lines)
    while i < n:
        line = lines[i]
        stripped = line.strip()
        if stripped.startswith(">"):
            i += 1
            continue
        if (_SIG_DELIMITER.match(line) or _MOBILE_SIGNATURE.match(stripped) or _ORIGINAL_MESSAGE.match(stripped)
                or _outlook_header_at(lines, i)):
            break
        header_lines = _reply_header_at(lines, i)
        if header_lines:
            j = i + header_lines
            while j < n and not lines[j].strip():
                j += 1
            if j < n and lines[j].lstrip().startswith(">"):
                i += header_lines  # the quote is ">"-marked: drop the header, keep inline answers
                continue
            break  # an unmarked quote (Gmail, Outlook): everything below is the old message
        out.append(line.rstrip())
        i += 1
    while out and _SEPARATOR_LINE.match(out[-1]):
        out.pop()
    return re.sub(r"\n{3,}", "\n\n", "\n".join(out)).strip("\n").rstrip()


# ---- parse_email ----------------------------------------------------------------------------------


def parse_email(raw: bytes, received_at: datetime, detector: LanguageDetector, limits: EmailLimits) -> ParsedEmail:
    """Raw RFC 5322 bytes -> ParsedEmail (with its Signal). Raises EmailError for unusable input:
    empty, over `limits.max_bytes`, or not an email at all.

    The Signal: channel email; external_id the Message-ID (without <>; a SHA-256 of it when longer
    than 255), or "sha256:" + `content_hash` when there is none; sender the From addr-spec,
    lower-cased; subject; text = `text_for_triage` (see ParsedEmail), the full text in
    raw["full_text"]; language detected on subject + text; flags "auto_submitted" (a robot: never
    answer it) and "has_attachments".
    """
    if not isinstance(raw, bytes | bytearray):
        raise EmailError("not an email: expected raw bytes")
    raw = bytes(raw)
    if len(raw) > limits.max_bytes:
        raise EmailError(f"message too large ({len(raw)} bytes; limit {limits.max_bytes})")
    if not raw.strip():
        raise EmailError("empty message")
    if raw.startswith(_OLE_MAGIC):
        raise EmailError("not an email: an Outlook .msg file, not RFC 5322 (save it as .eml)")
    if b"\x00" in raw[:_header_block_end(raw)]:
        raise EmailError("not an email: binary data in the header block")

    # policy.default parses every part's headers as it goes, again on every access (~0.1 ms per
    # header, more per parameter and per nesting level): a message of 100,000 empty parts, of
    # thousands of Content-Type parameters or of hundreds of nested parts would cost a worker
    # minutes. Past those counts, and when the stdlib's structured header parser crashes (it has
    # bugs on malformed input), the message is read with the lenient, fast compat32 policy instead.
    # Both parse a Content-Type parameter list in quadratic time, so an absurdly long one is cut
    # first, as is everything past 20,000 boundary lines (only 1,000 parts are read anyway); and
    # when even compat32 cannot read the structure (nesting past Python's recursion limit) the
    # body is read as plain text rather than the message refused. Each cut is named in `defects`.
    original = raw
    raw, mime_params, cut, unusual = _tame_mime_fields(raw)
    too_many = _nth(raw, b"\n--", _MAX_READ_BOUNDARY_LINES)
    if too_many >= 0:  # only _MAX_PARTS leaf parts are read anyway; parsing the rest costs seconds per MB
        raw, cut = raw[:too_many + 1], True
    extracted: _Extracted | None = None
    fallback = ("TooManyParts" if raw.count(b"\n--") > _MAX_BOUNDARY_LINES
                else "TooManyMimeParameters" if mime_params > _MAX_MIME_PARAMS
                else "TooManyNestedParts" if _count_upto(_CONTAINER, raw, _MAX_CONTAINERS + 1) > _MAX_CONTAINERS
                else "UnusualMimeHeader" if unusual
                else "")
    if not fallback:
        try:
            extracted = _extract(BytesParser(policy=policy.default).parsebytes(raw), limits)
        except EmailError:
            raise
        except Exception:  # degrade to compat32, below
            fallback = "StdlibHeaderParserError"
    if extracted is None:
        try:
            extracted = _extract(BytesParser(policy=policy.compat32).parsebytes(raw), limits)
        except EmailError:
            raise
        except Exception:  # compat32 failed too (e.g. RecursionError): the body as plain text
            extracted, fallback = _flat(raw), f"{fallback} MimeStructureUnreadable"
    noted = set(fallback.split()) | ({"OversizedMimeStructure"} if cut else set())
    if noted:
        extracted = replace(extracted, defects=tuple(sorted({*extracted.defects, *noted}))[:_MAX_DEFECTS])
    return _build(extracted, original, received_at, detector)


# ---- internals: extraction -----------------------------------------------------------------------


@dataclass
class _Walk:
    """What a walk over the MIME tree collects."""

    limits: EmailLimits
    texts: list[str] = field(default_factory=list)
    attached_texts: list[str] = field(default_factory=list)
    attachments: list[Attachment] = field(default_factory=list)
    omitted: int = 0
    parts: int = 0
    defects: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class _Extracted:
    headers: dict[str, str]  # lower-cased name -> first raw value
    to_values: tuple[str, ...]  # every To header's raw value
    content_type: str
    full_text: str
    attachments: tuple[Attachment, ...]
    omitted: int
    defects: tuple[str, ...]


def _headers(msg: Message) -> tuple[dict[str, str], list[str]]:
    headers: dict[str, str] = {}
    to_values: list[str] = []
    for name, value in msg.raw_items():
        key = str(name).strip().lower()
        value = str(value)
        headers.setdefault(key, value)
        if key == "to":
            to_values.append(value)
    if not _EMAIL_HEADERS.intersection(headers):
        raise EmailError("not an email: no message headers found")
    return headers, to_values


def _extract(msg: Message, limits: EmailLimits) -> _Extracted:
    headers, to_values = _headers(msg)
    walk = _Walk(limits)
    _walk(msg, walk, depth=0, want_text=True)
    pieces = [t for t in walk.texts if t.strip()]
    full = "\n\n".join(p.strip("\n") for p in [*pieces, *walk.attached_texts])
    full = re.sub(r"\n[ \t]*\n(?:[ \t]*\n)+", "\n\n", full.replace("\r\n", "\n"))
    defects = walk.defects | {type(d).__name__ for d in getattr(msg, "defects", [])}
    return _Extracted(headers=headers, to_values=tuple(to_values), content_type=msg.get_content_type(),
                      full_text=clean_text(full, max_chars=MAX_TEXT_CHARS), attachments=tuple(walk.attachments),
                      omitted=walk.omitted, defects=tuple(sorted(defects))[:_MAX_DEFECTS])


def _flat(raw: bytes) -> _Extracted:
    """The last resort for a message whose MIME structure no parser can read: its top-level
    headers, and everything after them as plain text without boundary and part-header lines."""
    headers, to_values = _headers(BytesParser(policy=policy.compat32).parsebytes(raw, headersonly=True))
    end = _header_block_end(raw)
    body = decode_bytes(raw[end:], None)
    lines = [ln for ln in body.replace("\r\n", "\n").split("\n") if not _MIME_LINE.match(ln)]
    return _Extracted(headers=headers, to_values=tuple(to_values), content_type="text/plain",
                      full_text=clean_text("\n".join(lines), max_chars=MAX_TEXT_CHARS), attachments=(), omitted=0,
                      defects=())


def _tame_mime_fields(raw: bytes) -> tuple[bytes, int, bool, bool]:
    """Look at every Content-Type / -Disposition / -Transfer-Encoding field (at any MIME level):
    count their parameters, cut one longer than _MAX_MIME_FIELD bytes at a ';' (keeping its head,
    where the type, boundary and charset are), and tell whether one is not plain `type/sub;
    name=value` syntax. policy.default's parser takes a quarter of a second on 1 KB of junk there
    (and recurses on nested parentheses), so such a message goes to compat32, which splits at ';'.
    Returns (raw, parameters, whether a field was cut, whether one is unusual)."""
    params, pieces, pos, unusual = 0, [], 0, False
    for m in _MIME_FIELD.finditer(raw):
        field = m.group(0)
        if len(field) > _MAX_MIME_FIELD:
            head = field[:_MAX_MIME_FIELD]
            semi = head.rfind(b";")
            field = (head[:semi] if semi > 0 else head).rstrip(b"\r\n \t")
            pieces += [raw[pos:m.start()], field]
            pos = m.end()
        params += field.count(b";")
        if not unusual:
            value = _FOLD.sub(b" ", field.split(b":", 1)[1])
            unusual = _SANE_MIME_VALUE.fullmatch(value) is None
    if not pieces:
        return raw, params, False, unusual
    return b"".join([*pieces, raw[pos:]]), params, True, unusual


def _nth(data: bytes, needle: bytes, n: int) -> int:
    """Index of the n-th occurrence of needle in data, or -1."""
    pos = -1
    for _ in range(n):
        pos = data.find(needle, pos + 1)
        if pos < 0:
            return -1
    return pos


def _count_upto(pattern: re.Pattern[bytes], data: bytes, limit: int) -> int:
    n = 0
    for _ in pattern.finditer(data):
        n += 1
        if n >= limit:
            break
    return n


def _walk(part: Message, walk: _Walk, depth: int, want_text: bool) -> None:
    """Depth-first over the MIME tree in display order. `want_text` is False inside the
    alternatives not chosen (their text duplicates the chosen one; their attachments still count)."""
    if depth > _MAX_DEPTH:
        walk.defects.add("TooDeeplyNested")
        return
    walk.defects.update(type(d).__name__ for d in getattr(part, "defects", []) if depth)
    ctype = part.get_content_type()
    if part.is_multipart():
        children = [c for c in (part.get_payload() or []) if isinstance(c, Message)]
        if ctype.startswith("message/"):
            _message_part(part, children, walk, depth, want_text)
        elif ctype == "multipart/alternative" and want_text:
            chosen = _choose_alternative(children)
            for child in children:
                _walk(child, walk, depth + 1, want_text=child is chosen)
        else:
            for child in children:
                _walk(child, walk, depth + 1, want_text)
        return
    walk.parts += 1
    if walk.parts > _MAX_PARTS:
        walk.defects.add("TooManyParts")
        return
    if _is_body_text(part, ctype):
        if want_text:
            walk.texts.append(_part_text(part, ctype))
        return
    if ctype in _SIGNATURE_TYPES:
        return
    _record(walk, _filename(part), ctype, _payload(part))


def _message_part(part: Message, children: list[Message], walk: _Walk, depth: int, want_text: bool) -> None:
    """message/rfc822 (a forwarded or bounced email) is an attachment; its text also goes into the
    full text, after a marker, so a tip forwarded as an attachment is not lost."""
    _record(walk, _filename(part) or _inner_subject_name(children), part.get_content_type(), _serialize(part))
    if want_text and part.get_content_type() in ("message/rfc822", "message/global"):
        for inner in children:
            sub = _Walk(walk.limits, parts=walk.parts)
            _walk(inner, sub, depth + 1, want_text=True)
            walk.parts = sub.parts
            walk.defects |= sub.defects
            text = "\n\n".join(t for t in sub.texts + sub.attached_texts if t.strip())
            if text.strip():
                walk.attached_texts.append("---------- Attached message ----------\n" + text)


def _choose_alternative(children: list[Message]) -> Message | None:
    """text/plain (when it says something) over text/html over anything else, as the brief of
    multipart/alternative is 'the same content, pick one'."""
    def kind(c: Message) -> str:
        return c.get_content_type()

    for c in children:
        if kind(c) == "text/plain" and not c.is_multipart() and _is_body_text(c, "text/plain") \
                and _part_text(c, "text/plain").strip():
            return c
    for c in children:
        if kind(c) == "text/html" and not c.is_multipart() and _is_body_text(c, "text/html"):
            return c
    for c in children:
        if c.is_multipart():
            return c
    return children[0] if children else None


def _is_body_text(part: Message, ctype: str) -> bool:
    if ctype not in ("text/plain", "text/html") and not ctype.startswith("multipart/"):
        return False  # a leaf claiming multipart (no boundary) is read as text: better than nothing
    disposition = part.get_content_disposition()
    if disposition == "attachment":
        return False
    # Inline text is shown as part of the message by mail clients, file name or not.
    return disposition == "inline" or not _filename(part)


def _part_text(part: Message, ctype: str) -> str:
    text = decode_bytes(_payload(part), _charset(part))
    return html_to_text(text) if ctype == "text/html" else text.replace("\r\n", "\n")


def _payload(part: Message) -> bytes:
    """A leaf's decoded bytes (quoted-printable/base64 undone; broken encodings give what the
    stdlib salvages, recorded as a defect)."""
    data = part.get_payload(decode=True)
    if isinstance(data, bytes):
        return data
    return _serialize(part)


def _serialize(part: Message) -> bytes:
    try:
        inner = part.get_payload()
        target = inner[0] if isinstance(inner, list) and len(inner) == 1 and part.get_content_type() in (
            "message/rfc822", "message/global") else part
        return target.as_bytes(policy=_AS_WRITTEN)
    except Exception:  # serialising a malformed part: its size is all we want
        try:
            return part.as_string().encode("utf-8", "replace")
        except Exception:  # as above
            return b""


def _charset(part: Message) -> str | None:
    charset = part.get_content_charset()
    return charset if isinstance(charset, str) else None


def _filename(part: Message) -> str | None:
    name = part.get_filename() or part.get_param("name")
    if isinstance(name, tuple):  # compat32 returns RFC 2231 values as (charset, language, value)
        name = decode_bytes(str(name[2]).encode("latin-1", "replace"), name[0])
    if not isinstance(name, str):
        return None
    return _sanitize_filename(decode_header_text(name))


def _inner_subject_name(children: list[Message]) -> str | None:
    for inner in children:
        for key, value in inner.raw_items():
            if str(key).lower() == "subject":
                subject = decode_header_text(str(value))[:80]
                return _sanitize_filename(f"{subject}.eml") if subject else None
    return None


def _record(walk: _Walk, name: str | None, ctype: str, data: bytes) -> None:
    if len(walk.attachments) >= walk.limits.max_attachments:
        walk.omitted += 1
        return
    ctype = _sanitize_ctype(ctype)
    if len(data) > walk.limits.max_attachment_bytes:
        walk.attachments.append(Attachment(name, ctype, len(data), None, "too large"))
    else:
        walk.attachments.append(Attachment(name, ctype, len(data), hashlib.sha256(data).hexdigest()))


# ---- internals: building the Signal --------------------------------------------------------------


def _build(ex: _Extracted, raw: bytes, received_at: datetime, detector: LanguageDetector) -> ParsedEmail:
    h = ex.headers
    subject = decode_header_text(h.get("subject"))[:MAX_SUBJECT_CHARS] or None
    subject = clean_text(subject) or None
    sender = _first_address(h.get("from"))
    to = tuple(dict.fromkeys(a for v in ex.to_values for a in _addresses(v)))[:100]
    message_id = _msg_id(h.get("message-id"))
    in_reply_to = _msg_id(h.get("in-reply-to"))
    references = _references(h.get("references"))
    date_header = decode_header_text(h.get("date")) or None
    date = _parse_date(date_header)
    auto, reason = _loop_guard(h, sender, subject, ex.content_type)

    full_text = ex.full_text
    if is_forward(subject, full_text):
        triage_text = full_text
    else:
        # A reply that only quotes (or only signs) still has to be read by someone: fall back.
        triage_text = strip_quoted(full_text) or full_text

    if message_id and len(message_id) <= MAX_EXTERNAL_ID:
        external_id = message_id
    elif message_id:
        external_id = "mid-sha256:" + hashlib.sha256(message_id.encode("utf-8", "replace")).hexdigest()
    else:
        external_id = "sha256:" + _content_digest(sender, date, date_header, subject, full_text, ex.attachments)

    lang = detector.detect("\n".join(p for p in (subject, triage_text) if p))
    flags: list[str] = []
    if auto:
        flags.append("auto_submitted")
    if ex.attachments or ex.omitted:
        flags.append("has_attachments")
    signal = Signal(
        channel=Channel.EMAIL,
        external_id=external_id,
        received_at=received_at,
        sender=sender,
        sender_region=None,
        subject=subject,
        text=triage_text,
        language=lang.code,
        language_confidence=lang.confidence,
        raw={
            "message_id": message_id,
            "in_reply_to": in_reply_to,
            "references": list(references),
            "to": list(to),
            "date": date,
            "attachments": [a.as_dict() for a in ex.attachments],
            "attachments_omitted": ex.omitted,
            "auto_submitted": auto,
            "loop_reason": reason,
            "full_text": full_text,
            "size": len(raw),
        },
        flags=tuple(flags),
    )
    return ParsedEmail(signal=signal, message_id=message_id, in_reply_to=in_reply_to, references=references,
                       auto_submitted=auto, loop_reason=reason, sender=sender, to=to, subject=subject, date=date,
                       date_header=date_header, full_text=full_text, text_for_triage=triage_text,
                       attachments=ex.attachments, attachments_omitted=ex.omitted, size=len(raw),
                       defects=ex.defects)


def _loop_guard(h: dict[str, str], sender: str | None, subject: str | None, ctype: str) -> tuple[bool, str | None]:
    """Is this mail from a robot (auto-reply, bounce, list)? Never answer those: two robots
    answering each other is a mail loop, and a list would spread the hotline's reply.
    The reason names the deciding header; it holds no contact data."""
    auto_submitted = _token(h.get("auto-submitted"))
    if auto_submitted and auto_submitted != "no":
        return True, f"Auto-Submitted: {auto_submitted}"
    for name, label in (("x-autoreply", "X-Autoreply"), ("x-autorespond", "X-Autorespond")):
        if name in h and _token(h.get(name)) not in ("no", "false", "0"):
            return True, label
    if ctype == "multipart/report":
        return True, "Content-Type: multipart/report"
    if "return-path" in h and re.fullmatch(r"\s*<\s*>\s*", _unsurrogate(h["return-path"])):
        return True, "Return-Path: <>"
    local = (sender or "").split("@", 1)[0]
    if local in _DAEMON_SENDERS:
        return True, f"From: {local}"
    if subject and _BOUNCE_SUBJECT.match(subject):
        return True, "Subject: delivery status notification"
    precedence = _token(h.get("precedence"))
    if precedence in _BULK_PRECEDENCE:
        return True, f"Precedence: {precedence}"
    if "list-id" in h:
        return True, "List-Id"
    if "list-unsubscribe" in h:
        return True, "List-Unsubscribe"
    return False, None


def _content_digest(sender: str | None, date: str | None, date_header: str | None, subject: str | None,
                    full_text: str, attachments: tuple[Attachment, ...]) -> str:
    normalised_date = date_header or ""
    if date:
        parsed = datetime.fromisoformat(date)
        normalised_date = (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC).isoformat()
    files = ",".join(f"{a.sha256 or ''}:{a.size}" for a in attachments)
    parts = [(sender or "").lower(), normalised_date, subject or "", full_text, files]
    return hashlib.sha256("\x00".join(parts).encode("utf-8", "replace")).hexdigest()


# ---- internals: headers ---------------------------------------------------------------------------


def _unsurrogate(value: str) -> str:
    """The stdlib keeps a header's raw 8-bit bytes as lone surrogates; decode them for real."""
    if not any("\udc80" <= ch <= "\udcff" for ch in value):
        return value
    return decode_bytes(value.encode("utf-8", "surrogateescape"), "utf-8")


def _decode_encoded_words(text: str) -> str:
    """RFC 2047: decode encoded words; whitespace between two encoded words is dropped, and
    adjacent words in one charset are decoded together (mailers split multibyte characters)."""
    out: list[str] = []
    pending: bytearray = bytearray()
    pending_charset: str | None = None
    pos = 0

    def flush() -> None:
        nonlocal pending, pending_charset
        if pending_charset is not None:
            out.append(decode_bytes(bytes(pending), pending_charset))
        pending, pending_charset = bytearray(), None

    for m in _ENCODED_WORD.finditer(text):
        gap = text[pos:m.start()]
        charset = m.group(1).split("*", 1)[0]
        data = _decode_word(m.group(2), m.group(3))
        if data is None:  # undecodable: keep it as written
            flush()
            out.append(gap + m.group(0))
            pos = m.end()
            continue
        if pending_charset is not None and gap.strip() == "":
            if charset.lower() == pending_charset.lower():
                pending.extend(data)
            else:
                flush()
                pending, pending_charset = bytearray(data), charset
        else:
            flush()
            out.append(gap)
            pending, pending_charset = bytearray(data), charset
        pos = m.end()
    flush()
    out.append(text[pos:])
    return "".join(out)


def _decode_word(encoding: str, data: str) -> bytes | None:
    try:
        if encoding in "qQ":
            return binascii.a2b_qp(data.encode("ascii", "replace"), header=True)
        if not re.fullmatch(r"[A-Za-z0-9+/]*={0,2}", data):
            return None
        data = data.rstrip("=")
        return binascii.a2b_base64(data.encode("ascii") + b"=" * (-len(data) % 4))
    except (binascii.Error, ValueError):
        return None


def _token(value: str | None) -> str:
    """First word of a header value, lower-cased and reduced to safe characters (for reasons)."""
    if not value:
        return ""
    word = decode_header_text(value).split(";", 1)[0].strip().lower()
    word = word.split()[0] if word.split() else ""
    return re.sub(r"[^a-z0-9_.-]", "", word)[:32]


def _msg_id(value: str | None) -> str | None:
    if not value:
        return None
    text = decode_header_text(value)
    m = re.search(r"<([^<>]{1,998})>", text)
    candidate = m.group(1) if m else (text if len(text.split()) == 1 else "")
    candidate = "".join(candidate.split())
    candidate = _CONTROL_CHARS.sub("", candidate).strip("<>")
    return candidate[:998] or None


def _references(value: str | None) -> tuple[str, ...]:
    if not value:
        return ()
    text = decode_header_text(value)
    ids = re.findall(r"<([^<>\s]{1,998})>", text) or [t.strip("<>") for t in text.split() if t.strip("<>")]
    ids = [_CONTROL_CHARS.sub("", i) for i in ids]
    return tuple(dict.fromkeys(i for i in ids if i))[-MAX_REFERENCES:]


def _split_address_list(value: str) -> list[str]:
    """Split at commas outside quotes, angle brackets and comments (linear, never raises)."""
    pieces: list[str] = []
    buf: list[str] = []
    quoted = escaped = False
    angle = paren = 0
    for ch in value:
        if escaped:
            escaped = False
        elif ch == "\\":
            escaped = True
        elif quoted:
            quoted = ch != '"'
        elif ch == '"':
            quoted = True
        elif ch == "<":
            angle += 1
        elif ch == ">":
            angle = max(0, angle - 1)
        elif ch == "(":
            paren += 1
        elif ch == ")":
            paren = max(0, paren - 1)
        elif ch == "," and not angle and not paren:
            pieces.append("".join(buf))
            buf = []
            continue
        buf.append(ch)
    pieces.append("".join(buf))
    return pieces


def _addresses(value: str | None) -> list[str]:
    """addr-specs of an address header, lower-cased. The <angle-addr> wins over the display name
    ("alice@example.com <bob@example.com>" is bob), which is what mail clients reply to."""
    if not value:
        return []
    text = re.sub(r"\r?\n(?=[ \t])", "", _unsurrogate(value))
    found: list[str] = []
    for piece in _split_address_list(text[:20_000]):
        angle = re.findall(r"<([^<>]*)>", piece)
        candidates = [angle[-1]] if angle else [
            w for w in re.sub(r'"[^"]*"|\([^()]*\)', " ", piece).replace(":", " ").split() if "@" in w]
        for c in candidates[:1]:
            addr = c.strip().strip(";,").lower()
            if addr.startswith("mailto:"):
                addr = addr[7:]
            if _ADDR_SPEC.fullmatch(addr):
                found.append(addr)
    return found


def _first_address(value: str | None) -> str | None:
    found = _addresses(value)
    if found:
        return found[0]
    bare = decode_header_text(value).strip().strip("<>").lower()
    return bare if _BARE_LOCAL.fullmatch(bare) else None  # "MAILER-DAEMON" without a domain


def _parse_date(value: str | None) -> str | None:
    if not value:
        return None
    try:
        return parsedate_to_datetime(value).isoformat()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


# ---- internals: text ------------------------------------------------------------------------------


def _codec(charset: str | None) -> str | None:
    """A declared charset -> a Python text codec name, or None when unknown or not a text codec."""
    if not charset:
        return None
    name = charset.strip().strip("\"'").lower()[:40]
    name = _CHARSET_ALIASES.get(name, name)
    if not name:
        return None
    try:
        info = codecs.lookup(name)
    except (LookupError, ValueError):
        return None
    if not getattr(info, "_is_text_encoding", True):  # rot13, zlib, base64 ...
        return None
    return info.name


def _sanitize_filename(name: str | None) -> str | None:
    """A name safe to show: no path, no control or bidi-override characters (which disguise
    'gpj.exe' as 'exe.jpg'), at most 255 characters with the extension kept."""
    if not name:
        return None
    name = unicodedata.normalize("NFC", name)
    name = re.split(r"[/\\]", name)[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch) not in ("Cc", "Cf", "Cs", "Co", "Zl", "Zp"))
    name = " ".join(name.split()).strip(" .")
    if len(name) > 255:
        stem, dot, ext = name.rpartition(".")
        name = (stem[: 254 - len(ext)] + dot + ext) if dot and len(ext) <= 16 else name[:255]
    return name or None


def _sanitize_ctype(ctype: str) -> str:
    ctype = ctype.strip().lower()
    return ctype[:100] if re.fullmatch(r"[a-z0-9!#$&^_.+-]+/[a-z0-9!#$&^_.+-]+", ctype) else "application/octet-stream"


def _tidy(text: str) -> str:
    """Trim each line, and no more than one blank line in a row."""
    lines = [line.strip() for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def _header_block_end(raw: bytes) -> int:
    ends = [i for i in (raw.find(b"\n\n"), raw.find(b"\r\n\r\n")) if i >= 0]
    return min(ends) if ends else min(len(raw), 64 * 1024)


def _reply_header_at(lines: list[str], i: int) -> int:
    """How many lines (1-3) an "On <date>, <someone> wrote:" header starting at line i spans, or 0."""
    if not _REPLY_HEADER_START.match(lines[i]):
        return 0
    joined = ""
    for k in range(3):
        if i + k >= len(lines) or not lines[i + k].strip():
            return 0
        joined = f"{joined} {lines[i + k].strip()}" if joined else lines[i + k].strip()
        if len(joined) > 400:
            return 0
        if _REPLY_HEADER_END.search(joined):
            return k + 1 if re.search(r"\d", joined) else 0
    return 0


def _outlook_header_at(lines: list[str], i: int) -> bool:
    """Outlook's quoted-message block: a From:/De: line followed by Sent:/Date:/Enviado:/Fecha:."""
    if not _OUTLOOK_FROM.match(lines[i]):
        return False
    for k in range(i + 1, min(i + 4, len(lines))):
        if lines[k].strip():
            return bool(_OUTLOOK_SENT.match(lines[k]))
    return False


_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # Outlook .msg and other OLE compound files


class _AsWrittenPolicy(policy.Compat32):
    """Writes every header as it was parsed. Both stdlib policies refold headers when writing, in
    quadratic time on a long one (a forwarded message with a 0.4 MB To: took minutes); an
    attachment's size and hash need no refolding."""

    def fold(self, name: str, value: Any) -> str:
        return f"{name}: {value}{self.linesep}"

    def fold_binary(self, name: str, value: Any) -> bytes:
        return self.fold(name, value).encode("utf-8", "surrogateescape")


_AS_WRITTEN = _AsWrittenPolicy()
_MIME_FIELD = re.compile(rb"^content-(?:type|disposition|transfer-encoding)[ \t]*:[^\n]*(?:\n[ \t][^\n]*)*",
                         re.I | re.M)
_FOLD = re.compile(rb"\r?\n(?=[ \t])|\r$")
_MIME_TOKEN = rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_SANE_MIME_VALUE = re.compile(  # type[/subtype] then ; name=value (a token, or a quoted string) pairs
    rb"[ \t]*" + _MIME_TOKEN + rb"(?:/" + _MIME_TOKEN + rb")?[ \t]*"
    rb"(?:;[ \t]*(?:" + _MIME_TOKEN + rb"[ \t]*=[ \t]*(?:\"(?:[^\"\\\r\n]|\\.)*\"|[^;\s\"]*)[ \t]*)?)*[ \t]*")
_CONTAINER = re.compile(rb"^content-type[ \t]*:[ \t\r\n]*\"?(?:multipart|message)/", re.I | re.M)
_MIME_LINE = re.compile(r"\s*(?:--\S*\s*$|content-[\w-]+\s*:|mime-version\s*:)", re.I)
_CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_WHITESPACE = re.compile(r"\s+")
_SPACES = re.compile(r"[ \t\u00a0]{2,}")
_TAG_NAME = re.compile(r"(/?)([A-Za-z][\w:-]*)")
_XML_DECL = re.compile(r"<\?xml[^>]{0,500}>", re.I)
_ENCODED_WORD = re.compile(r"=\?([^?\s]{1,75})\?([qQbB])\?([^?\s]{0,2000})\?=")
_ADDR_SPEC = re.compile(r"[^\s@<>()\[\],;:\"\\]{1,64}@[^\s@<>()\[\],;:\"\\]{1,253}")
_BARE_LOCAL = re.compile(r"[a-z0-9._+-]{1,64}")
_DROP_TAGS = frozenset(["script", "style", "head", "title", "noscript", "template", "svg", "math", "iframe", "object",
              "embed", "applet", "frame", "frameset", "canvas", "audio", "video", "map", "select", "button"])
_BLOCK_TAGS = frozenset(["address", "article", "aside", "blockquote", "center", "dd", "details", "dialog", "dir", "div",
               "dl", "dt", "fieldset", "figcaption", "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5",
               "h6", "header", "hr", "li", "main", "nav", "ol", "p", "pre", "section", "summary", "table",
               "tr", "ul", "caption"])

_REPLY_HEADER_START = re.compile(r"\s*(?:on|el|le|em|am)\s", re.I)
_REPLY_HEADER_END = re.compile(r"(?:wrote|escribió|escribio|a écrit|a ecrit|escreveu|schrieb)\s*:\s*$", re.I)
_ORIGINAL_MESSAGE = re.compile(
    r"-{2,}\s*(?:original message|mensaje original|message d'origine|mensagem original|"
    r"ursprüngliche nachricht)\s*-{2,}$", re.I)
_OUTLOOK_FROM = re.compile(r"\s*\**\s*(?:from|de|von)\s*\**\s*:", re.I)
_OUTLOOK_SENT = re.compile(r"\s*\**\s*(?:sent|date|enviado|enviada|fecha|envoyé|gesendet|datum)\s*\**\s*:", re.I)
_SIG_DELIMITER = re.compile(r"-- ?$")
_MOBILE_SIGNATURE = re.compile(
    r"(?:(?:sent from my|enviado desde mi|enviado de mi|envoyé de mon|enviado do meu)\s+[\w'’.-]+(?:\s+[\w'’.-]+){0,4}"
    r"|(?:sent from|enviado desde)\s+(?:yahoo|outlook|mail|gmail|samsung|aol|proton)\b[\w '.-]{0,40}"
    r"|get outlook for (?:ios|android))\s*$", re.I)
_SEPARATOR_LINE = re.compile(r"[\s_=*—–-]*$")
_BOUNCE_SUBJECT = re.compile(
    r"\s*(?:delivery status notification|undelivered mail returned|undeliverable:|returned mail:|failure notice\s*$|"
    r"mail delivery (?:failed|failure|system)|delivery failure)", re.I)
_FORWARD_SUBJECT = re.compile(r"\s*(?:fwd?|fw|rv|tr|enc|wg)\s*:", re.I)
_FORWARD_MARKER = re.compile(
    r"\s*(?:-{2,}\s*(?:forwarded message|mensaje reenviado|message transféré|mensagem encaminhada|"
    r"weitergeleitete nachricht)\s*-{2,}|begin forwarded message:|inicio del mensaje reenviado:)\s*$", re.I)
