"""SMS channel: Twilio's inbound message webhook -> Signal, and its Flask blueprint."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from flask import Blueprint, Response, request
from twilio.twiml.messaging_response import MessagingResponse

from ..normalize import LanguageDetector, clean_text, normalize_phone
from ..signal import Channel, Location, Signal
from ..sink import Sink
from .twilio_common import BadWebhook, TwilioAuth, refuse, verified_form

log = logging.getLogger(__name__)

# Twilio fields kept in the (encrypted) raw payload; anything else is dropped.
_RAW_FIELDS = ("MessageSid", "SmsSid", "AccountSid", "MessagingServiceSid", "From", "To", "Body",
               "NumMedia", "NumSegments", "FromCity", "FromState", "FromZip", "FromCountry",
               "ToCity", "ToState", "ToZip", "ToCountry", "OptOutType", "ApiVersion")
MAX_BODY_CHARS = 10_000


@dataclass(frozen=True)
class SmsConfig:
    auth_token: str | None
    public_base_url: str | None
    max_request_bytes: int
    auto_reply: Mapping[str, str]


def parse_sms(params: Mapping[str, str], received_at: datetime, detector: LanguageDetector) -> Signal:
    """Twilio inbound SMS/MMS parameters -> Signal. Raises BadWebhook for unusable input."""
    sid = (params.get("MessageSid") or params.get("SmsSid") or "").strip()
    if not sid:
        raise BadWebhook(400, "missing required parameter 'MessageSid'")
    if not (params.get("From") or "").strip():
        raise BadWebhook(400, "missing required parameter 'From'")
    phone = normalize_phone(params.get("From"), default_region="US")
    # An MMS with only a picture has an empty Body; a missing Body is treated the same.
    text = clean_text(params.get("Body"), max_chars=MAX_BODY_CHARS)
    lang = detector.detect(text)
    raw = {k: params.get(k) for k in _RAW_FIELDS if params.get(k) is not None}
    media = []
    try:
        num_media = int(params.get("NumMedia") or 0)
    except ValueError:
        num_media = 0
    for i in range(min(num_media, 10)):
        if params.get(f"MediaUrl{i}"):
            media.append({"url": params.get(f"MediaUrl{i}"), "content_type": params.get(f"MediaContentType{i}")})
    if media:
        raw["media"] = media
    return Signal(
        channel=Channel.SMS,
        external_id=sid[:255],
        received_at=received_at,
        sender=phone.e164 if phone else None,
        sender_region=phone.region if phone else None,
        location=Location(
            state=(params.get("FromState") or None),
            city=(params.get("FromCity") or None),
            zip=(params.get("FromZip") or None),
            country=(params.get("FromCountry") or None),
        ),
        text=text,
        language=lang.code,
        language_confidence=lang.confidence,
        raw=raw,
    )


def twiml_reply(text: str | None) -> str:
    resp = MessagingResponse()
    if text:
        resp.message(text)
    return str(resp)


def make_blueprint(config: SmsConfig, sink: Sink, detector: LanguageDetector,
                   should_reply: Callable[[str], bool],
                   clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> Blueprint:
    bp = Blueprint("sms", __name__)

    auth = TwilioAuth(config.auth_token, config.public_base_url, config.max_request_bytes)

    @bp.post("/twilio/sms")
    def inbound_sms() -> Response:
        try:
            params = verified_form(request, auth)
            signal = parse_sms(params, clock(), detector)
        except BadWebhook as err:
            if err.status == 403:
                log.warning("sms webhook refused: invalid or missing signature")
            return refuse(err)
        accepted = sink.accept(signal)
        reply = None
        if should_reply(accepted.signal_id):
            lang = accepted.language if accepted.language in config.auto_reply else "en"
            reply = config.auto_reply.get(lang) or None
        return Response(twiml_reply(reply), status=200, mimetype="application/xml")

    return bp
