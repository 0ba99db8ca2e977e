"""`hotline email …`: the email channel from a terminal.

`hotline email parse FILE.eml [--json]` shows the Signal a raw email becomes, without a server
or a database: the way to look at a message that was flagged in the mailbox, or to check a
tricky one before it arrives. Attach with `cli.add_command(email)`. Exit codes as everywhere:
0 success, 2 bad input (one line on stderr), 1 internal failure; never a traceback.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from intake.channels.email_parse import EmailError, EmailLimits, ParsedEmail, content_hash, parse_email
from intake.normalize import LanguageDetector

from .cli_guard import guard


class _BadInput(Exception):
    """A problem with what the user gave us; its text is the one line we print."""


_guarded = guard(_BadInput, EmailError)


def read_message(file: str, limits: EmailLimits) -> bytes:
    """The file's bytes, at most one byte over the limit (so a huge file is never read whole).
    Problems become _BadInput with a reason that names neither the path nor its contents."""
    if file == "-":
        data = sys.stdin.buffer.read(limits.max_bytes + 1)
    else:
        path = Path(file)
        try:
            if path.is_dir():
                raise _BadInput("cannot read the file: it is a directory")
            size = path.stat().st_size
            if path.is_file() and size > limits.max_bytes:
                raise _BadInput(f"message too large ({size} bytes; limit {limits.max_bytes})")
            with path.open("rb") as fh:
                data = fh.read(limits.max_bytes + 1)
        except FileNotFoundError:
            raise _BadInput("cannot read the file: no such file") from None
        except PermissionError:
            raise _BadInput("cannot read the file: permission denied") from None
        except OSError as exc:
            raise _BadInput(f"cannot read the file: {exc.strerror or exc.__class__.__name__}") from None
    if len(data) > limits.max_bytes:
        raise _BadInput(f"message too large (over the {limits.max_bytes} byte limit)")
    return data


def parsed_json(parsed: ParsedEmail) -> dict[str, Any]:
    """The JSON shape `hotline email parse --json` prints: the Signal as stored, and what the
    email channel knows beside it (threading, loop guard, content hash, MIME defects)."""
    return {
        "signal": parsed.signal.model_dump(mode="json"),
        "email": {
            "message_id": parsed.message_id,
            "in_reply_to": parsed.in_reply_to,
            "references": list(parsed.references),
            "auto_submitted": parsed.auto_submitted,
            "loop_reason": parsed.loop_reason,
            "content_hash": content_hash(parsed),
            "attachments_omitted": parsed.attachments_omitted,
            "defects": list(parsed.defects),
        },
    }


def _print_text(parsed: ParsedEmail) -> None:
    s = parsed.signal
    rows = [
        ("channel", s.channel.value),
        ("external_id", s.external_id),
        ("sender", s.sender or "-"),
        ("subject", s.subject or "-"),
        ("language", f"{s.language} ({s.language_confidence:.2f})"),
        ("flags", ", ".join(s.flags) or "-"),
        ("message_id", parsed.message_id or "-"),
        ("in_reply_to", parsed.in_reply_to or "-"),
        ("references", " ".join(parsed.references) or "-"),
        ("auto_submitted", f"yes ({parsed.loop_reason})" if parsed.auto_submitted else "no"),
        ("size", f"{parsed.size} bytes"),
        ("defects", ", ".join(parsed.defects) or "-"),
    ]
    for key, value in rows:
        click.echo(f"{key + ':':16}{value}")
    click.echo(f"{'attachments:':16}{len(parsed.attachments)}"
               + (f" (+{parsed.attachments_omitted} over the limit)" if parsed.attachments_omitted else ""))
    for a in parsed.attachments:
        extra = f", skipped: {a.skipped}" if a.skipped else f", sha256 {a.sha256}"
        click.echo(f"  - {a.name or '(no name)'} ({a.content_type}, {a.size} bytes{extra})")
    click.echo("text for triage:")
    for line in (s.text or "(empty)").split("\n"):
        click.echo(f"  {line}")
    if parsed.full_text != s.text:
        click.echo(f"(full text: {len(parsed.full_text)} characters, with quotes and signature)")


@click.group("email", help="The email channel: parse a raw message, poll the mailbox.")
def email() -> None:
    pass


@email.command("parse", short_help="Show the Signal a raw email becomes.",
               help="Show the Signal a raw RFC 5322 email (FILE.eml, or - for stdin) becomes. "
                    "Nothing is stored or sent.")
@click.argument("file", metavar="FILE.eml")
@click.option("--json", "as_json", is_flag=True, help="Print JSON: {signal: …, email: {message_id, …}}.")
@_guarded
def parse(file: str, as_json: bool) -> None:
    limits = EmailLimits()
    raw = read_message(file, limits)
    parsed = parse_email(raw, datetime.now(UTC), LanguageDetector(), limits)
    if as_json:
        click.echo(json.dumps(parsed_json(parsed), ensure_ascii=False, indent=2))
    else:
        _print_text(parsed)
