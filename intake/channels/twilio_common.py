"""What every Twilio webhook does first: size check, strict form decoding, signature check."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qsl

from flask import Request, Response
from werkzeug.datastructures import MultiDict

from ..twilio_auth import public_url, signature_ok


class BadWebhook(ValueError):
    """A request we must refuse, with a message safe to show (no contact data)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class TwilioAuth:
    auth_token: str | None
    public_base_url: str | None
    max_request_bytes: int


def decode_form(body: bytes) -> MultiDict[str, str]:
    """Parse an x-www-form-urlencoded body strictly: invalid UTF-8 is an error, not '?'."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadWebhook(400, f"request body is not valid UTF-8 (byte {exc.start})") from exc
    try:
        pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=False, errors="strict")
    except UnicodeDecodeError as exc:
        raise BadWebhook(400, "a form field is not valid UTF-8 after percent-decoding") from exc
    return MultiDict(pairs)


def verified_form(request: Request, auth: TwilioAuth) -> MultiDict[str, str]:
    """The POSTed parameters of a genuine Twilio request, or BadWebhook (413/400/403)."""
    length = request.content_length
    if length is not None and length > auth.max_request_bytes:
        raise BadWebhook(413, f"request body too large ({length} bytes; limit {auth.max_request_bytes})")
    body = request.stream.read(auth.max_request_bytes + 1)
    if len(body) > auth.max_request_bytes:
        raise BadWebhook(413, f"request body too large (limit {auth.max_request_bytes} bytes)")
    params = decode_form(body)
    url = public_url(auth.public_base_url, request.url, request.full_path)
    if not signature_ok(auth.auth_token, url, params, request.headers.get("X-Twilio-Signature"),
                        request.headers.get("X-Twilio-Webhooks-Signature-Settings")):
        raise BadWebhook(403, "invalid or missing X-Twilio-Signature")
    # No Twilio parameter means a NUL, and PostgreSQL text cannot hold one (a 500, and the contact
    # lost to retries): drop them here, once, after the signature (which covers what was sent).
    if any("\x00" in k or "\x00" in v for k, v in params.items(multi=True)):
        params = MultiDict([(k.replace("\x00", ""), v.replace("\x00", "")) for k, v in params.items(multi=True)])
    return params


def refuse(err: BadWebhook) -> Response:
    return Response(err.message + "\n", status=err.status, mimetype="text/plain")


def twiml(xml: str) -> Response:
    return Response(xml, status=200, mimetype="application/xml")
