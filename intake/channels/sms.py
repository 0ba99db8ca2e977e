"""SMS channel: Twilio's inbound message webhook -> Signal, and its Flask blueprint."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from flask import Blueprint, Response, request
from twilio.twiml.messaging_response import MessagingResponse

from ..normalize import LanguageDetector, clean_text, normalize_phone
from ..signal import Channel, Location, Signal
from ..sink import Sink
from ..store import Store
from .textline import Hours, ReplyTexts, choose_reply, is_staffed, keyword
from .twilio_common import BadWebhook, TwilioAuth, refuse, twiml, verified_form

log = logging.getLogger(__name__)

# Twilio fields kept in the (encrypted) raw payload; anything else is dropped.
_RAW_FIELDS = ("MessageSid", "SmsSid", "AccountSid", "MessagingServiceSid", "From", "To", "Body",
               "NumMedia", "NumSegments", "FromCity", "FromState", "FromZip", "FromCountry",
               "ToCity", "ToState", "ToZip", "ToCountry", "OptOutType", "ApiVersion")
MAX_BODY_CHARS = 10_000


@dataclass(frozen=True)
class SmsConfig:
    auth: TwilioAuth
    replies: Mapping[str, ReplyTexts]
    hours: Hours
    safe_word: str | None
    conversation_timeout: timedelta


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


def make_blueprint(config: SmsConfig, store: Store, sink: Sink, detector: LanguageDetector,
                   clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> Blueprint:
    bp = Blueprint("sms", __name__)

    @bp.post("/twilio/sms")
    def inbound_sms() -> Response:
        try:
            params = verified_form(request, config.auth)
            signal = parse_sms(params, clock(), detector)
        except BadWebhook as err:
            if err.status == 403:
                log.warning("sms webhook refused: invalid or missing signature")
            return refuse(err)
        kw = keyword(signal.text, params.get("OptOutType"), config.safe_word)
        # Every text is taken in and triaged, keywords too: on a hotline "HELP" may be a real plea.
        accepted = sink.accept(signal)
        received = accepted.received_at or signal.received_at
        sender_hash = store.identity(signal)  # hashes under the current and any previous key
        if sender_hash and accepted.created:
            if kw == "stop":
                store.textline_set(sender_hash, received, opted_out=True)
            elif kw == "start":
                store.textline_set(sender_hash, received, opted_out=False)
        opted_out, silenced_until = store.textline_get(sender_hash) if sender_hash else (False, None)
        if sender_hash and accepted.created and (kw == "safe_word" or (silenced_until and silenced_until > received)):
            # The safe word (and anything after it in the conversation) keeps the line quiet.
            store.textline_set(sender_hash, received, silenced_until=received + config.conversation_timeout)
            silenced_until = received + config.conversation_timeout
        silenced = kw == "safe_word" or bool(silenced_until and silenced_until > received)
        kind = choose_reply(kw, store.opens_conversation(accepted.signal_id, config.conversation_timeout),
                            is_staffed(received, config.hours), opted_out, silenced)
        lang = accepted.language if accepted.language in config.replies else "en"
        text = getattr(config.replies[lang], kind) if kind != "none" else None
        return twiml(twiml_reply(text))

    @bp.post("/twilio/sms/status")
    def delivery_status() -> Response:
        try:
            params = verified_form(request, config.auth)
            sid = (params.get("MessageSid") or params.get("SmsSid") or "").strip()
            status = (params.get("MessageStatus") or params.get("SmsStatus") or "").strip().lower()
            if not sid or not status:
                raise BadWebhook(400, "missing required parameter 'MessageSid' or 'MessageStatus'")
        except BadWebhook as err:
            return refuse(err)
        outcome = store.delivery_status(sid[:64], status[:16], (params.get("ErrorCode") or "")[:64] or None, clock())
        if outcome == "orphan":
            log.warning("sms status callback for an unknown message; kept")
        return Response("", status=204)

    return bp
