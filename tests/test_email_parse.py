"""The email channel's parsing half, as a specification: raw RFC 5322 bytes -> ParsedEmail -> Signal.

Runs over real third-party mail (../shared/corpora/email, skipped only when absent), over small
invented fixtures (tests/fixtures/email; names invented, addresses @example.org/.com, phones
555-01xx), over fuzzed input, and through `hotline email parse`.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from intake.channels.email_parse import (
    EmailError,
    EmailLimits,
    ParsedEmail,
    content_hash,
    decode_bytes,
    decode_header_text,
    html_to_text,
    parse_email,
    strip_quoted,
)
from intake.normalize import LanguageDetector
from intake.signal import Channel
from workers import email_cli

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpora" / "email"
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "email"
NOT_MAIL = {"LICENSE", "NOTICE.md", "UPSTREAM-NOTICE.txt"}
NOW = datetime(2026, 11, 26, 15, 0, tzinfo=UTC)
LIMITS = EmailLimits()
RAW_KEYS = {"message_id", "in_reply_to", "references", "to", "date", "attachments", "attachments_omitted",
            "auto_submitted", "loop_reason", "full_text", "size"}

needs_corpus = pytest.mark.skipif(not CORPUS.is_dir(), reason="../shared/corpora/email is not beside the repo")


@pytest.fixture(scope="module")
def detector() -> LanguageDetector:
    return LanguageDetector()


def corpus_files() -> list[Path]:
    if not CORPUS.is_dir():
        return []
    return sorted(p for p in CORPUS.rglob("*") if p.is_file() and p.name not in NOT_MAIL)


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def parse(raw: bytes, detector: LanguageDetector, limits: EmailLimits = LIMITS,
          received_at: datetime = NOW) -> ParsedEmail:
    return parse_email(raw, received_at, detector, limits)


def eml(headers: str = "", body: str = "Hello, I have a question.",
        sender: str = "Quill Ambers <quill.ambers@example.org>", subject: str = "A question") -> bytes:
    head = (f"From: {sender}\r\nTo: help@example.org\r\nSubject: {subject}\r\n"
            "Date: Tue, 24 Nov 2026 10:00:00 -0500\r\nMessage-ID: <base-0001@example.org>\r\n")
    return (head + headers + "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
            + body + "\r\n").encode()


def assert_usable(parsed: ParsedEmail) -> None:
    s = parsed.signal
    assert s.channel is Channel.EMAIL
    assert 1 <= len(s.external_id) <= 255
    assert set(s.raw) == RAW_KEYS
    assert s.raw["full_text"] == parsed.full_text and s.text == parsed.text_for_triage
    assert ("auto_submitted" in s.flags) == parsed.auto_submitted
    json.dumps(s.model_dump(mode="json"))  # storable as JSON


# ---- the real corpora --------------------------------------------------------------------------

# Files that are not RFC 5322 messages and must be refused with a clear reason.
CORPUS_REFUSED = {
    "mail-parser/mail_outlook_1": "Outlook .msg",  # an OLE compound file, not MIME
    "cpython-test-email/msg_19.txt": "no message headers",  # a digest body without headers
    **{f"reply-parser/{p.name}": "no message headers"
       for p in (CORPUS / "reply-parser").glob("*.txt")},  # bodies only, by design of that corpus
}


@needs_corpus
@pytest.mark.parametrize("path", corpus_files(), ids=lambda p: str(p.relative_to(CORPUS)))
def test_every_corpus_file_parses_or_is_refused_with_a_reason(path, detector):
    key = str(path.relative_to(CORPUS))
    try:
        parsed = parse(path.read_bytes(), detector)
    except EmailError as exc:
        assert key in CORPUS_REFUSED, f"{key} refused: {exc}"
        assert CORPUS_REFUSED[key] in str(exc) and "\n" not in str(exc)
        return
    assert key not in CORPUS_REFUSED, f"{key} should have been refused"
    assert_usable(parsed)


@needs_corpus
@pytest.mark.parametrize(("name", "check"), [
    # RFC 2047 encoded words in GB2312 (read as GB18030, its superset), Russian UTF-8, Q-encoding
    ("mail-parser/mail_test_12", lambda p: p.subject == "代开各地增值税发票" and p.signal.language == "zh"),
    ("mail-parser/mail_test_9", lambda p: "\ufffd" not in (p.subject or "") and p.signal.language == "zh"),
    ("mail-parser/mail_test_6", lambda p: p.subject == "Быстрее вкладывайте в золото!"),
    ("mail-parser/mail_test_18", lambda p: p.sender == "comma.name@example.com"
     and p.to == ("tony.stark@example.com",)),
    # the angle-addr is the mailbox, even when the display name looks like an address
    ("mail-parser/mail_test_19", lambda p: p.sender == "bob@example.com"
     and p.to == ("charlie@example.com", "dave@example.com")),
    # HTML-only with a stray bad UTF-8 byte: still Russian, not cp1252 mojibake; a newsletter
    ("mail-parser/mail_test_6", lambda p: "Профессионалы.ru" in p.full_text and p.signal.language == "ru"
     and p.loop_reason == "List-Id"),
    # quoted-printable latin-1 and base64 parts side by side
    ("cpython-test-email/msg_10.txt", lambda p: "¡This is a Quoted Printable encoded message!" in p.full_text
     and "This is a Base64 encoded message." in p.full_text),
    # nested multiparts: mixed > alternative (empty plain -> html) and an inline antivirus note
    ("mail-parser/mail_test_17", lambda p: p.text_for_triage == "Test"),
    ("mail-parser/mail_test_3", lambda p: p.full_text.startswith("I am sending you the bills")
     and "WatchGuard" in p.full_text),
    # attachments: metadata only, hashed; big PDF in a 1.5 MB message
    ("mail-parser/mail_test_2", lambda p: [a.name for a in p.attachments][-1] == "Bollettino.pdf"
     and all(len(a.sha256 or "") == 64 for a in p.attachments) and "has_attachments" in p.signal.flags),
    ("mail-parser/mail_test_7", lambda p: len(p.attachments) == 8 and "20170609091403417.pdf" in
     [a.name for a in p.attachments]),
    ("cpython-test-email/msg_07.txt", lambda p: [(a.name, a.content_type) for a in p.attachments]
     == [("dingusfish.gif", "image/gif")]),
    # broken MIME degrades with a defect report instead of failing
    ("cpython-test-email/msg_35.txt", lambda p: "no separating newline" in p.full_text
     and "MissingHeaderBodySeparatorDefect" in p.defects),
    ("cpython-test-email/msg_41.txt", lambda p: p.full_text == "Blah blah blah"
     and "NoBoundaryInMultipartDefect" in p.defects),
    ("mail-parser/mail_malformed_1", lambda p: p.message_id == "791407.263728.a23f87@y.ewreqr.org"),
    # a forwarded message/rfc822 is an attachment and its text is kept
    ("cpython-test-email/msg_11.txt", lambda p: "Here is the body of the message." in p.text_for_triage
     and [a.content_type for a in p.attachments] == ["message/rfc822"]),
    # robots: bounces, lists, junk
    ("mail-parser/mail_malformed_2", lambda p: p.auto_submitted and p.loop_reason == "Content-Type: multipart/report"),
    ("cpython-test-email/msg_25.txt", lambda p: p.loop_reason == "Auto-Submitted: auto-generated"),
    ("mail-parser/mail_test_16", lambda p: p.loop_reason == "Precedence: junk"),
    ("mail-parser/mail_test_13", lambda p: p.loop_reason == "List-Id"),
    ("cpython-test-email/msg_01.txt", lambda p: not p.auto_submitted and p.loop_reason is None),
])
def test_tricky_corpus_messages(name, check, detector):
    parsed = parse((CORPUS / name).read_bytes(), detector)
    assert_usable(parsed)
    assert check(parsed)


# Expectations from email-reply-parser's own tests, for the same bodies.
REPLIES = [
    ("email_1_2.txt", ["Hi,", "You can list the keys for the bucket"], ["> Hi folks", "wrote:"]),
    ("email_1_3.txt", ["Oh thanks.", "Having the function would be great."], ["Russell Brown wrote:", "> Hi,"]),
    ("email_1_4.txt", ["Awesome! I haven't had another problem with it."], ["defunkt", "Loader seems"]),
    ("email_1_5.txt", ["- This would be the first bullet point", "It goes on and on"], []),
    ("email_1_6.txt", ["I get proper rendering as well.", "Sent from a magnificent torch of pixels"],
     ["On Dec 16", "Was this caching"]),
    ("email_1_7.txt", [":+1:"], ["Chris Wanstrath", "Steps 0-2"]),
    ("email_1_8.txt", ["I will reply under this one", "and under this."], ["okay?", "this is my signature"]),
    ("email_2_1.txt", ["Outlook with a reply"], ["Google Apps Sync", "From:"]),
    ("email_2_2.txt", ["Outlook with a reply directly above line"], ["CRM Comments", "___"]),
    ("email_2_3.txt", ["Outlook with a reply above headers using unusual format"], ["Kim via Site"]),
    ("email_BlackBerry.txt", ["Here is another email"], ["BlackBerry"]),
    ("email_bullets.txt", ["test 2 this should list second", "- how about bullets"], ["Joe Smith", "Give us"]),
    ("email_gmail.txt", ["This is a test for inbox replying to a github message."], ["Steven Scott", "outdated"]),
    ("email_headers_no_delimiter.txt", ["And another reply!"], ["A reply", "This is a message."]),
    ("email_iPhone.txt", ["Here is another email"], ["iPhone"]),
    ("email_multi_word_sent_from_my_mobile_device.txt", ["Here is another email"], ["Verizon"]),
    ("email_one_is_not_on.txt", ["One outstanding question I had:", "when I run..."], ["Dave Tapley", "good news"]),
    ("email_partial_quote_header.txt", ["On your remote host you can run:", "telnet 127.0.0.1 52698",
                                        "This should connect to TextMate"], ["George Plymale"]),
    ("greedy_on.txt", ["On your remote host you can run:"], ["George Plymale", "Reply to this email"]),
    ("email_sent_from_my_not_signature.txt", ["Sent from my desk, is much easier then my mobile phone."], []),
    ("email_sig_delimiter_in_middle_of_line.txt", ["And here is a fix -- this is not a signature.", "kthxbai"], []),
    ("correct_sig.txt", ["this is an email with a correct -- signature."], ["rick"]),
    ("pathological.txt", ["I think you're onto something."], ["John Sullivan", "organism.sequence"]),
]


@needs_corpus
@pytest.mark.parametrize(("name", "kept", "dropped"), REPLIES, ids=[r[0] for r in REPLIES])
def test_reply_parser_corpus_quotes_and_signatures_are_stripped(name, kept, dropped):
    reply = strip_quoted((CORPUS / "reply-parser" / name).read_text(encoding="utf-8"))
    for text in kept:
        assert text in reply
    for text in dropped:
        assert text not in reply


# ---- quoted replies and signatures (own fixtures) ----------------------------------------------


def test_english_reply_keeps_only_the_new_words(detector):
    p = parse(fixture("reply_en.eml"), detector)  # CRLF line endings, folded References
    assert p.text_for_triage == ("Thank you. He took my passport again and I cannot leave the house.\n"
                                 "You can call me at 555-0142 after 6pm.")
    assert p.signal.text == p.text_for_triage
    assert "call 911" in p.full_text and "Volunteer, Example Community Garden" in p.full_text
    assert p.signal.raw["full_text"] == p.full_text
    assert (p.message_id, p.in_reply_to, p.references) == (
        "reply-en-0001@example.org", "ack-0001@example.org",
        ("first-0001@example.org", "ack-0001@example.org"))
    assert p.subject == "Re: Your message to the hotline [HT-7K3M-9QXD-4]" and p.signal.language == "en"


def test_spanish_reply_latin1_quoted_printable_and_mobile_signature(detector):
    p = parse(fixture("reply_es.eml"), detector)
    assert p.text_for_triage == ("Mi jefe no me paga desde hace tres meses y guardó mi pasaporte.\n"
                                 "¿Qué puedo hacer? Mi número es 555-0187.")
    assert "Enviado desde mi iPhone" in p.full_text and "llame al 911" in p.full_text
    assert p.subject == "Re: Necesito información" and p.sender == "marisol.ordonez@example.com"
    assert p.signal.language == "es"


def test_outlook_original_message_block_and_cp1252_labelled_latin1(detector):
    p = parse(fixture("outlook_reply.eml"), detector)
    assert p.text_for_triage == "We’d like a “training” for our clinic staff on labor trafficking indicators."
    assert "OLD-ACK-TEXT" in p.full_text


def test_a_forward_is_triaged_whole(detector):
    p = parse(fixture("forward.eml"), detector)
    assert "hostess work abroad" in p.text_for_triage and "This looks suspicious" in p.text_for_triage


def test_a_reply_that_only_quotes_is_still_triaged_on_its_text(detector):
    p = parse(eml(body="> I need a shelter for me and my kids."), detector)
    assert p.text_for_triage == p.full_text == "> I need a shelter for me and my kids."


@pytest.mark.parametrize(("body", "expected"), [
    ("Help me please.\n\nSent from my iPhone", "Help me please."),
    ("Ayúdenme.\n\nEnviado desde mi Samsung Galaxy", "Ayúdenme."),
    ("Need help.\n-- \nQ. Ambers\n555-0142", "Need help."),
    ("Need help.\n--\nQ. Ambers", "Need help."),
    ("New words.\n\n> old words\n> more old words", "New words."),
    ("Answer one.\n> question one\nAnswer two.\n> question two", "Answer one.\nAnswer two."),
    ("Yes.\n\nOn Tue, Nov 24, 2026 at 9:00 AM Hotline <help@example.org> wrote:\n> Are you safe?", "Yes."),
    ("Sí.\n\nEl mar, 24 nov 2026 a las 9:00, Línea <ayuda@example.org> escribió:\n> ¿Está a salvo?", "Sí."),
    ("Oui.\n\nLe mar. 24 nov. 2026 à 09:00, Ligne <aide@example.org> a écrit :\n> Êtes-vous en sécurité ?", "Oui."),
    ("Sim.\n\nEm ter., 24 de nov. de 2026 às 09:00, Linha <ajuda@example.org> escreveu:\n> Está seguro?", "Sim."),
    ("Done.\n\n-----Mensaje original-----\nDe: Línea\nEnviado: martes\nOld text", "Done."),
    ("Done.\n\nDe: Línea <ayuda@example.org>\nEnviado: martes, 24 de noviembre de 2026\nPara: Marisol\nOld",
     "Done."),
    ("Done.\n________________________________\nFrom: Hotline <help@example.org>\nSent: Tuesday\nOld", "Done."),
    # not quotes or signatures: kept
    ("On Monday my boss wrote: you cannot leave.", "On Monday my boss wrote: you cannot leave."),
    ("Sent from my work phone, which he checks.", "Sent from my work phone, which he checks."),
    ("a -- b\nc", "a -- b\nc"),
])
def test_strip_quoted(body, expected):
    assert strip_quoted(body) == expected


def test_strip_quoted_is_linear_on_pathological_input():
    import time

    text = ("On " + "x, " * 5000 + "\n") * 50 + ">" * 100_000 + "\n" + ("-" * 5000 + "\n") * 50
    start = time.perf_counter()
    strip_quoted(text)
    assert time.perf_counter() - start < 1.0


# ---- loop guards --------------------------------------------------------------------------------


@pytest.mark.parametrize(("headers", "sender", "subject", "reason"), [
    ("Auto-Submitted: auto-replied\r\n", None, None, "Auto-Submitted: auto-replied"),
    ("Auto-Submitted: auto-generated (failure)\r\n", None, None, "Auto-Submitted: auto-generated"),
    ("Auto-Submitted: no\r\n", None, None, None),
    ("Precedence: bulk\r\n", None, None, "Precedence: bulk"),
    ("Precedence: junk\r\n", None, None, "Precedence: junk"),
    ("Precedence: list\r\n", None, None, "Precedence: list"),
    ("Precedence: first-class\r\n", None, None, None),
    ("List-Id: Announcements <announce.example.org>\r\n", None, None, "List-Id"),
    ("List-Unsubscribe: <mailto:leave@example.org>\r\n", None, None, "List-Unsubscribe"),
    ("X-Autoreply: yes\r\n", None, None, "X-Autoreply"),
    ("X-Autorespond: vacation\r\n", None, None, "X-Autorespond"),
    ("Return-Path: <>\r\n", None, None, "Return-Path: <>"),
    ("Return-Path: <quill.ambers@example.org>\r\n", None, None, None),
    ("", "Mail Delivery System <MAILER-DAEMON@example.org>", None, "From: mailer-daemon"),
    ("", "postmaster@example.com", None, "From: postmaster"),
    ("", "MAILER-DAEMON", None, "From: mailer-daemon"),
    ("", None, "Delivery Status Notification (Failure)", "Subject: delivery status notification"),
    ("", None, "Undeliverable: Your message", "Subject: delivery status notification"),
    ("", None, "Out of the office? I need help", None),
])
def test_loop_guard_names_the_deciding_header(headers, sender, subject, reason, detector):
    raw = eml(headers, sender=sender or "Quill Ambers <quill.ambers@example.org>", subject=subject or "Hello")
    p = parse(raw, detector)
    assert p.loop_reason == reason
    assert p.auto_submitted is (reason is not None)
    assert ("auto_submitted" in p.signal.flags) is (reason is not None)
    assert p.signal.raw["auto_submitted"] is p.auto_submitted and p.signal.raw["loop_reason"] == reason
    assert "@" not in (reason or "")  # a reason is logged: it must not carry an address


@pytest.mark.parametrize(("name", "reason"), [
    ("auto_reply.eml", "Auto-Submitted: auto-replied"),
    ("bounce.eml", "Content-Type: multipart/report"),
    ("mailing_list.eml", "List-Id"),
    ("reply_en.eml", None),
])
def test_loop_guard_fixtures(name, reason, detector):
    p = parse(fixture(name), detector)
    assert p.loop_reason == reason and p.auto_submitted is (reason is not None)


def test_a_bounce_records_its_report_and_returned_message(detector):
    p = parse(fixture("bounce.eml"), detector)
    assert p.sender == "mailer-daemon@example.com"
    assert [a.content_type for a in p.attachments] == ["message/delivery-status", "message/rfc822"]
    assert "could not be delivered" in p.text_for_triage


# ---- ids ----------------------------------------------------------------------------------------


def test_missing_message_id_falls_back_to_a_stable_content_hash(detector):
    raw = fixture("no_message_id.eml")
    first = parse(raw, detector, received_at=NOW)
    again = parse(raw, detector, received_at=NOW + timedelta(days=3))
    assert first.message_id is None and first.signal.raw["message_id"] is None
    assert first.external_id == again.external_id == "sha256:" + content_hash(first)
    # the same on every machine and run: the hash covers From, Date, Subject and body only
    expected = hashlib.sha256("\x00".join([
        "tobias.wren@example.com", "2026-11-25T16:00:00+00:00", "Question from an old mail program",
        "What are the signs that someone is being trafficked?", ""]).encode()).hexdigest()
    assert first.external_id == "sha256:" + expected
    other = parse(raw.replace(b"trafficked?", b"trafficked??"), detector)
    assert other.external_id != first.external_id


def test_content_hash_differs_for_a_reused_message_id(detector):
    a = parse(eml(body="First message."), detector)
    b = parse(eml(body="A different message."), detector)
    assert a.external_id == b.external_id == "base-0001@example.org"
    assert content_hash(a) != content_hash(b)


@pytest.mark.parametrize(("header", "message_id"), [
    ("Message-ID: <abc@example.org>", "abc@example.org"),
    ("Message-ID:   <abc@example.org>  (comment)", "abc@example.org"),
    ("Message-Id: abc@example.org", "abc@example.org"),
    ("Message-ID: <abc@\r\n example.org>", "abc@example.org"),
    ("Message-ID: <>", None),
    ("Message-ID: two words", None),
])
def test_message_id_is_normalised(header, message_id, detector):
    raw = eml().replace(b"Message-ID: <base-0001@example.org>", header.encode())
    p = parse(raw, detector)
    assert p.message_id == message_id
    assert p.external_id == message_id if message_id else p.external_id.startswith("sha256:")


def test_a_long_message_id_is_hashed_into_the_external_id(detector):
    long_id = "x" * 400 + "@example.org"
    p = parse(eml().replace(b"base-0001@example.org", long_id.encode()), detector)
    assert p.message_id == long_id
    assert p.external_id == "mid-sha256:" + hashlib.sha256(long_id.encode()).hexdigest()


def test_references_keep_the_newest_fifty(detector):
    refs = " ".join(f"<r{i}@example.org>" for i in range(80))
    p = parse(eml(f"References: {refs}\r\nIn-Reply-To: <r79@example.org> (sent Tuesday)\r\n"), detector)
    assert p.references == tuple(f"r{i}@example.org" for i in range(30, 80))
    assert p.in_reply_to == "r79@example.org"


# ---- attachments --------------------------------------------------------------------------------

PDF = b"%PDF-1.4\n% invented test file, not a real document\n"
JPG = b"\xff\xd8\xff\xe0 invented test image \xff\xd9"
EXE = b"MZ invented test bytes"


def test_attachments_are_metadata_with_size_and_sha256(detector):
    p = parse(fixture("attachments.eml"), detector)
    assert [a.as_dict() for a in p.attachments] == [
        {"name": "report.pdf", "content_type": "application/pdf", "size": len(PDF),
         "sha256": hashlib.sha256(PDF).hexdigest()},
        # RFC 2231 name in UTF-8
        {"name": "foto de la casa año.jpg", "content_type": "image/jpeg", "size": len(JPG),
         "sha256": hashlib.sha256(JPG).hexdigest()},
        # encoded-word name with a path and a right-to-left override: both removed
        {"name": "invoicegpj.exe", "content_type": "application/octet-stream", "size": len(EXE),
         "sha256": hashlib.sha256(EXE).hexdigest()},
    ]
    assert p.signal.raw["attachments"] == [a.as_dict() for a in p.attachments]
    assert p.text_for_triage == "I attached the pictures of the house where the girls are kept."
    assert "has_attachments" in p.signal.flags


def test_attachment_size_limit_records_without_hash(detector):
    p = parse(fixture("attachments.eml"), detector, EmailLimits(max_attachment_bytes=len(JPG)))
    pdf, jpg, exe = p.signal.raw["attachments"]
    assert pdf == {"name": "report.pdf", "content_type": "application/pdf", "size": len(PDF), "sha256": None,
                   "skipped": "too large"}
    assert jpg["sha256"] == hashlib.sha256(JPG).hexdigest() and "skipped" not in jpg
    assert exe["sha256"] is not None


def test_attachment_count_limit(detector):
    p = parse(fixture("attachments.eml"), detector, EmailLimits(max_attachments=2))
    assert [a.name for a in p.attachments] == ["report.pdf", "foto de la casa año.jpg"]
    assert p.attachments_omitted == 1 and p.signal.raw["attachments_omitted"] == 1


def test_nested_multiparts_choose_plain_text_and_record_every_attachment(detector):
    p = parse(fixture("nested.eml"), detector)
    assert p.full_text.startswith("The plain version: a van picks the workers up at 5 a.m. every day.")
    assert "HTML-ONLY-TEXT" not in p.full_text  # the alternative not chosen
    assert "INNER-MESSAGE-TEXT" in p.full_text  # an attached email's text is kept
    assert [(a.name, a.content_type) for a in p.attachments] == [
        (None, "image/png"), ("schedule.csv", "text/csv"), ("the job offer.eml", "message/rfc822")]


# ---- HTML, charsets, headers --------------------------------------------------------------------


def test_html_only_mail_never_leaks_script_or_style(detector):
    p = parse(fixture("html_script.eml"), detector)
    assert "LEAK" not in p.full_text and "alert" not in p.full_text and "color: red" not in p.full_text
    assert p.text_for_triage == ("Please help, my sister is working at the nail salon on Elm St & cannot leave.\n\n"
                                 "Call me at 555-0163.\nThank you")
    assert "> Thank you for contacting the hotline. OLD-ACK-TEXT" in p.full_text  # blockquote -> quote
    assert p.subject == "Report – nail salon"


@pytest.mark.parametrize(("markup", "expected"), [
    ("<p>one</p><p>two</p>", "one\n\ntwo"),
    ("a<br>b<br/>c", "a\nb\nc"),
    ("<p>ok</p><script>SCRIPT-LEAK", "ok"),  # an unclosed script swallows the rest, never shows it
    ("<p>fish &amp; chips &lt;3</p>", "fish & chips <3"),
    ("<pre>keep\nlines</pre><p>a\n  b</p>", "keep\nlines\n\na b"),  # <pre> keeps its line breaks
    ("<blockquote>old<blockquote>older</blockquote></blockquote>new", "> old\n>\n> > older\n\nnew"),
    ("<?xml version='1.0'?><html><body>x</body></html>", "x"),
    ("no markup &amp; here", "no markup & here"),
    ("<table><tr><td>a</td><td>b</td></tr></table>", "a b"),
    ("<svg><text>SVG-LEAK</text></svg><iframe>IFRAME-LEAK</iframe>ok", "ok"),
])
def test_html_to_text(markup, expected):
    assert html_to_text(markup) == expected


def test_wrong_or_missing_charsets_fall_back(detector):
    p = parse(fixture("bad_charset.eml"), detector)
    assert p.full_text == ("Señora, necesito ayuda.\n\nEstoy en el café de la esquina.\n\n"
                           "No tengo mis documentos. Niños aquí.")
    assert p.subject == "Ayúdame por favor"  # raw 8-bit UTF-8 in a header
    assert p.date is None and p.signal.raw["date"] is None  # "this is not a date"
    assert p.signal.language == "es"


@pytest.mark.parametrize(("data", "charset", "expected"), [
    (b"caf\xc3\xa9", "utf-8", "café"),
    (b"caf\xe9", "utf-8", "café"),  # mislabelled: cp1252
    (b"Se\xc3\xb1ora", "x-no-such-charset", "Señora"),
    (b"Se\xc3\xb1ora", None, "Señora"),
    (b"\x93hi\x94", "iso-8859-1", "“hi”"),  # latin-1 labels are cp1252 in practice
    (b"abc", "rot13", "abc"),  # not a text codec: ignored
    (b"abc", "base64", "abc"),
    (b"\xd6\xd0\xce\xc4", "gb2312", "中文"),
    (b"\x81\x8d\x8f", "utf-8", "\x81\x8d\x8f"),  # undecodable anywhere: latin-1, never an exception
])
def test_decode_bytes(data, charset, expected):
    assert decode_bytes(data, charset) == expected


@pytest.mark.parametrize(("raw", "expected"), [
    ("=?iso-8859-1?Q?caf=E9?=", "café"),
    ("=?utf-8?B?Y2Fmww==?= =?utf-8?B?qQ==?=", "café"),  # a character split across two words
    ("=?utf-8?q?a?= =?utf-8?q?b?= c", "ab c"),  # whitespace between encoded words is dropped
    ("Re: =?utf-8?Q?Necesito_ayuda?= ya", "Re: Necesito ayuda ya"),
    ("=?UTF-8*es?Q?s=C3=AD?=", "sí"),  # RFC 2231 language tag
    ("=?x-unknown?Q?caf=C3=A9?=", "café"),
    ("=?utf-8?B?####?=", "=?utf-8?B?####?="),  # undecodable: kept as written
    ("folded\r\n  subject", "folded subject"),
    ("plain é 中", "plain é 中"),
    ("bell\x07 and \x1b[31mred", "bell and [31mred"),
])
def test_decode_header_text(raw, expected):
    assert decode_header_text(raw) == expected


def test_a_header_the_stdlib_parser_crashes_on_degrades_to_compat32(detector):
    # policy.default raises IndexError inside BytesParser on this Content-Type (CPython 3.11-3.13);
    # the parser now sees the odd syntax before (UnusualMimeHeader) and goes to compat32 directly.
    raw = eml().replace(b"charset=utf-8", b"charset=us-ascii;\r\n title*")
    p = parse(raw, detector)
    assert p.full_text == "Hello, I have a question." and p.sender == "quill.ambers@example.org"
    assert {"StdlibHeaderParserError", "UnusualMimeHeader"} & set(p.defects)


def test_signal_fields(detector):
    p = parse(fixture("reply_en.eml"), detector)
    s = p.signal
    assert_usable(p)
    assert (s.channel, s.sender, s.sender_region, s.received_at) == (
        Channel.EMAIL, "quill.ambers@example.org", None, NOW)
    assert s.raw["to"] == ["help@example.org"] and s.raw["date"] == "2026-11-24T09:15:00-05:00"
    assert s.raw["size"] == len(fixture("reply_en.eml")) and s.flags == ()


# ---- unusable input -----------------------------------------------------------------------------


@pytest.mark.parametrize(("raw", "reason"), [
    (b"", "empty message"),
    (b" \r\n\t\n", "empty message"),
    (b"just some words, not an email\n", "not an email"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "not an email"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 64, "Outlook .msg"),
    (b"X-Whatever: 1\r\n\r\nbody", "not an email"),
    (b"From: a@example.org\x00\r\n\r\nbody", "binary data"),
])
def test_unusable_input_is_refused_with_a_safe_reason(raw, reason, detector):
    with pytest.raises(EmailError) as info:
        parse(raw, detector)
    assert reason in str(info.value) and "\n" not in str(info.value)


def test_size_limit(detector):
    raw = eml(body="secret words " * 20)
    with pytest.raises(EmailError, match=r"too large \(\d+ bytes; limit 100\)") as info:
        parse(raw, detector, EmailLimits(max_bytes=100))
    assert "secret" not in str(info.value) and "@" not in str(info.value)
    assert parse(raw, detector, EmailLimits(max_bytes=len(raw))).signal


# ---- fuzzing: only EmailError or a valid ParsedEmail ---------------------------------------------

_SEEDS = [p.read_bytes() for p in sorted(FIXTURES.glob("*.eml"))] + [
    p.read_bytes() for p in corpus_files() if p.stat().st_size <= 12_000 and p.parent.name != "reply-parser"]
_TOKENS = [b"\r\n", b"\n\n", b"--", b"=?", b"?=", b"=?utf-8?B?", b"=?x?Q?=FF", b"<", b">", b"\"", b";", b"\x00",
           b"\xff\xfe", b"Content-Type: multipart/mixed; boundary=\"b\"\r\n", b"Content-Transfer-Encoding: base64\r\n",
           b"charset=\"utf-7\"", b"\r\n--b\r\n", b"\r\n--b--\r\n", b"Message-ID: <", b"filename*=utf-8''%ff%fe",
           b"Content-Type: message/rfc822\r\n\r\n", b"<script>", b"<blockquote>"]


def _parses_or_refuses(raw: bytes, detector: LanguageDetector) -> None:
    try:
        parsed = parse(raw, detector)
    except EmailError as exc:
        assert str(exc) and "\n" not in str(exc)
        return
    assert_usable(parsed)


FUZZ = settings(max_examples=120, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


@FUZZ
@given(raw=st.binary(max_size=2_000))
def test_fuzz_random_bytes(raw, detector):
    _parses_or_refuses(raw, detector)


@FUZZ
@given(raw=st.lists(st.sampled_from(_TOKENS) | st.binary(max_size=6), max_size=40).map(
    lambda parts: b"From: a@example.org\r\nSubject: x\r\n" + b"".join(parts)))
def test_fuzz_header_shaped_junk(raw, detector):
    _parses_or_refuses(raw, detector)


@FUZZ
@given(data=st.data())
def test_fuzz_mutated_real_emails(data, detector):
    raw = bytearray(data.draw(st.sampled_from(_SEEDS)))
    edits = data.draw(st.lists(st.tuples(st.integers(0, 2), st.integers(0, 1 << 20),
                                         st.sampled_from(_TOKENS) | st.binary(min_size=1, max_size=8)), max_size=6))
    for kind, pos, chunk in edits:
        pos %= len(raw) + 1
        if kind == 0:
            raw[pos:pos] = chunk
        elif kind == 1:
            del raw[pos:pos + len(chunk)]
        else:
            raw[pos:pos + len(chunk)] = chunk
    if data.draw(st.booleans()):
        raw = raw[: data.draw(st.integers(0, len(raw)))]
    _parses_or_refuses(bytes(raw), detector)


# ---- hotline email parse ------------------------------------------------------------------------


def run_cli(*args: str, stdin: bytes | None = None):
    return CliRunner().invoke(email_cli.email, list(args), input=stdin)


def test_cli_json_shape():
    result = run_cli("parse", str(FIXTURES / "reply_en.eml"), "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert set(out) == {"signal", "email"}
    signal = out["signal"]
    assert signal["channel"] == "email" and signal["external_id"] == "reply-en-0001@example.org"
    assert signal["sender"] == "quill.ambers@example.org" and signal["language"] == "en"
    assert set(signal["raw"]) == RAW_KEYS and "passport" in signal["text"]
    assert out["email"] == {
        "message_id": "reply-en-0001@example.org", "in_reply_to": "ack-0001@example.org",
        "references": ["first-0001@example.org", "ack-0001@example.org"],
        "auto_submitted": False, "loop_reason": None, "content_hash": out["email"]["content_hash"],
        "attachments_omitted": 0, "defects": []}
    assert len(out["email"]["content_hash"]) == 64


def test_cli_text_output_and_stdin():
    result = run_cli("parse", "-", stdin=fixture("auto_reply.eml"))
    assert result.exit_code == 0, result.output
    assert "channel:        email" in result.stdout
    assert "auto_submitted: yes (Auto-Submitted: auto-replied)" in result.stdout


def _bad_inputs(tmp: Path) -> dict[str, tuple[str, str]]:
    (tmp / "empty.eml").write_bytes(b"")
    (tmp / "junk.eml").write_bytes(bytes(range(256)) * 8)
    (tmp / "body_only.eml").write_bytes(b"I need help, the house on Elm St, call 555-0142\n")
    with (tmp / "huge.eml").open("wb") as fh:
        fh.truncate(LIMITS.max_bytes + 1)  # sparse: costs no disk
    (tmp / "a_directory").mkdir()
    return {
        "missing": (str(tmp / "nope.eml"), "no such file"),
        "directory": (str(tmp / "a_directory"), "is a directory"),
        "empty": (str(tmp / "empty.eml"), "empty message"),
        "junk": (str(tmp / "junk.eml"), "not an email"),
        "body_only": (str(tmp / "body_only.eml"), "not an email"),
        "huge": (str(tmp / "huge.eml"), "too large"),
    }


@pytest.mark.parametrize("case", ["missing", "directory", "empty", "junk", "body_only", "huge"])
def test_cli_bad_input_exits_2_with_one_line(case, tmp_path):
    path, reason = _bad_inputs(tmp_path)[case]
    result = run_cli("parse", path, "--json")
    assert result.exit_code == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and reason in lines[0] and lines[0].startswith("email parse: ")
    assert "Traceback" not in result.output and "555-0142" not in result.output and "Elm" not in result.output


def test_cli_internal_failure_exits_1_without_traceback(monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("boom with secret text")

    monkeypatch.setattr(email_cli, "parse_email", broken)
    monkeypatch.delenv("HOTLINE_DEBUG", raising=False)
    result = run_cli("parse", str(FIXTURES / "reply_en.eml"))
    assert result.exit_code == 1
    assert result.stderr.strip() == ("email parse: internal error (RuntimeError); "
                                     "set HOTLINE_DEBUG=1 to see details")
    assert "Traceback" not in result.output and "secret" not in result.output


@needs_corpus
def test_cli_parses_every_corpus_message_without_a_traceback(monkeypatch, detector):
    monkeypatch.setattr(email_cli, "LanguageDetector", lambda: detector)  # load the models once, not per run
    for path in corpus_files():
        result = run_cli("parse", str(path), "--json")
        assert result.exit_code in (0, 2), (path, result.output)
        assert "Traceback" not in result.output
        if result.exit_code == 0:
            assert json.loads(result.stdout)["signal"]["channel"] == "email"
