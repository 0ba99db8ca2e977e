"""Voice channel: a 24/7 Twilio IVR (TwiML from the SDK's VoiceResponse) and its callbacks.

Call flow:
  /twilio/voice            greeting (en + es), confidentiality, "in danger call 911", menu:
                           1 English, 2 Español, 3 interpreter, 9 danger -> crisis queue;
                           no key -> English advocate
  /twilio/voice/menu       the key pressed -> <Enqueue> to the language's advocate queue
  /twilio/voice/wait       hold message while queued; past max_wait -> <Leave/>
  /twilio/voice/queue      <Enqueue> ended: bridged -> done; left/full/error -> voicemail
  /twilio/voice/interpreter <Dial> to the interpreter ended: not answered -> voicemail
  /twilio/voice/recorded   <Record> finished -> thanks, goodbye
  /twilio/voice/recording  recording status callback
  /twilio/voice/transcription  transcript callback
  /twilio/voice/status     call status callback (completed, no-answer, busy, failed, canceled)

Every callback is signature-checked and idempotent, and may come in any order. Each one
updates the call's row; the call becomes one voice Signal (external id = CallSid) when it is
over and its transcript is in, or when the worker's sweeper decides it waited long enough.
711/TRS relay calls are ordinary calls: the relay operator hears the same menu.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, Response, request
from twilio.twiml.voice_response import Gather, VoiceResponse

from ..normalize import LanguageDetector, clean_text, normalize_phone
from ..signal import Channel, Location, Signal
from ..sink import Sink
from ..store import Store
from .twilio_common import BadWebhook, TwilioAuth, refuse, twiml, verified_form

log = logging.getLogger(__name__)

TERMINAL_STATUSES = frozenset({"completed", "no-answer", "busy", "failed", "canceled"})
MISSED_STATUSES = frozenset({"no-answer", "busy", "failed", "canceled"})
CHOICES = {"1": "en", "2": "es", "3": "interpreter", "9": "crisis"}
MAX_SID_CHARS = 64  # CallSid / RecordingSid columns; Twilio's SIDs are 34 characters


@dataclass(frozen=True)
class Prompts:
    voice: str
    language: str
    queue: str
    greeting: str
    danger: str
    menu: str
    hold: str
    voicemail: str
    interpreter: str
    thanks: str
    invalid: str


@dataclass(frozen=True)
class VoiceConfig:
    prompts: Mapping[str, Prompts]
    menu_timeout_seconds: int
    max_wait_seconds: int
    voicemail_max_seconds: int
    crisis_queue: str
    interpreter_number: str | None
    interpreter_sip: str | None
    interpreter_timeout_seconds: int


# ---- TwiML: pure functions of the config and what the caller did -----------------------------


def _say(r: VoiceResponse | Gather, text: str, p: Prompts) -> None:
    r.say(text, voice=p.voice, language=p.language)


def greeting_twiml(cfg: VoiceConfig) -> str:
    en, es = cfg.prompts["en"], cfg.prompts["es"]
    r = VoiceResponse()
    g = Gather(num_digits=1, action="/twilio/voice/menu", method="POST", timeout=cfg.menu_timeout_seconds,
               action_on_empty_result=False)
    for p in (en, es):
        _say(g, p.greeting, p)
        _say(g, p.danger, p)
        _say(g, p.menu, p)
    r.append(g)
    # No key pressed: an English-speaking advocate, without another menu.
    r.redirect("/twilio/voice/menu?Default=1", method="POST")
    return str(r)


def enqueue_twiml(cfg: VoiceConfig, lang: str, crisis: bool = False) -> str:
    p = cfg.prompts[lang]
    r = VoiceResponse()
    queue = cfg.crisis_queue if crisis else p.queue
    r.enqueue(queue, wait_url=f"/twilio/voice/wait?lang={lang}", wait_url_method="POST",
              action=f"/twilio/voice/queue?lang={lang}", method="POST")
    return str(r)


def menu_twiml(cfg: VoiceConfig, digits: str | None) -> tuple[str, str | None, str]:
    """(TwiML, language, choice) for the key pressed. Unknown key -> say so, menu again."""
    choice = CHOICES.get((digits or "").strip()[:1]) if digits else "en"
    if digits and choice is None:
        r = VoiceResponse()
        _say(r, cfg.prompts["en"].invalid, cfg.prompts["en"])
        _say(r, cfg.prompts["es"].invalid, cfg.prompts["es"])
        r.redirect("/twilio/voice", method="POST")
        return str(r), None, "invalid"
    if choice == "interpreter":
        r = VoiceResponse()
        _say(r, cfg.prompts["en"].interpreter, cfg.prompts["en"])
        _say(r, cfg.prompts["es"].interpreter, cfg.prompts["es"])
        if cfg.interpreter_number or cfg.interpreter_sip:
            d = r.dial(action="/twilio/voice/interpreter", method="POST", timeout=cfg.interpreter_timeout_seconds)
            if cfg.interpreter_sip:
                d.sip(cfg.interpreter_sip)
            else:
                d.number(cfg.interpreter_number)
            return str(r), "und", "interpreter"
        return voicemail_twiml(cfg, "en"), "und", "interpreter"
    if choice == "crisis":
        return enqueue_twiml(cfg, "en", crisis=True), "en", "crisis"
    lang = choice or "en"
    return enqueue_twiml(cfg, lang), lang, lang


def wait_twiml(cfg: VoiceConfig, lang: str, queue_time: int) -> str:
    p = cfg.prompts.get(lang) or cfg.prompts["en"]
    r = VoiceResponse()
    if queue_time >= cfg.max_wait_seconds:
        r.leave()  # -> the <Enqueue> action with QueueResult=leave -> voicemail
        return str(r)
    _say(r, p.hold, p)
    r.pause(length=10)
    return str(r)


def voicemail_twiml(cfg: VoiceConfig, lang: str) -> str:
    p = cfg.prompts.get(lang) or cfg.prompts["en"]
    r = VoiceResponse()
    _say(r, p.voicemail, p)
    if lang not in cfg.prompts:  # interpreter not reached: say it in Spanish too
        _say(r, cfg.prompts["es"].voicemail, cfg.prompts["es"])
    r.record(max_length=cfg.voicemail_max_seconds, play_beep=True, finish_on_key="#", transcribe=True,
             transcribe_callback="/twilio/voice/transcription",
             recording_status_callback="/twilio/voice/recording", recording_status_callback_method="POST",
             action=f"/twilio/voice/recorded?lang={lang if lang in cfg.prompts else 'en'}", method="POST")
    return str(r)


def after_queue_twiml(cfg: VoiceConfig, lang: str, result: str) -> str:
    """The <Enqueue> ended. Bridged (an advocate talked to the caller) or the caller hung up:
    nothing more to say. Anything else - left after max wait, queue full, error - voicemail."""
    if result in ("bridged", "hangup", "redirected"):
        return str(VoiceResponse())
    return voicemail_twiml(cfg, lang)


def thanks_twiml(cfg: VoiceConfig, lang: str) -> str:
    p = cfg.prompts.get(lang) or cfg.prompts["en"]
    r = VoiceResponse()
    _say(r, p.thanks, p)
    r.hangup()
    return str(r)


# ---- turning a finished call into a Signal -----------------------------------------------------


def ready_to_finalise(call: Mapping[str, Any]) -> bool:
    """A call becomes a Signal once it is over and nothing more is coming: no voicemail was
    recorded, or its transcript is in (failed transcriptions count as in). A caller who
    pressed the danger key is never kept waiting for a transcript."""
    if call.get("finalised_at"):
        return False
    over = call.get("call_status") in TERMINAL_STATUSES
    if not over:
        return False
    if "9" in (call.get("digits") or "") and call.get("choice") == "crisis":
        return True
    if call.get("recording_sid") and not call.get("transcription_status"):
        return False
    return True


def call_signal(call: Mapping[str, Any], received_at: datetime, detector: LanguageDetector) -> Signal:
    """The Signal a finished call becomes. Pure apart from language detection."""
    phone = normalize_phone(call.get("from"))
    transcript = clean_text(call.get("transcript"))
    flags: list[str] = []
    if call.get("choice") == "crisis":
        flags.append("danger_key")
    if call.get("recording_sid"):
        flags.append("voicemail")
    if call.get("choice") == "interpreter":
        flags.append("interpreter")
    bridged = call.get("queue_result") == "bridged"
    if call.get("call_status") in TERMINAL_STATUSES and not bridged and not transcript:
        flags.append("missed_call")  # nobody spoke with the caller and no message: call back
    lang_code, confidence = (call.get("lang") or "und"), 0.9
    if transcript:
        detected = detector.detect(transcript)
        if detected.code != "und":
            lang_code, confidence = detected.code, detected.confidence
    if lang_code not in ("en", "es") and not transcript:
        confidence = 0.0
    loc = call.get("location") or {}
    return Signal(
        channel=Channel.VOICE,
        external_id=call["call_sid"],
        received_at=received_at,
        sender=phone.e164 if phone else None,
        sender_region=phone.region if phone else None,
        location=Location(**{k: v for k, v in loc.items() if k in ("state", "city", "zip", "country")}),
        text=transcript,
        language=lang_code,
        language_confidence=confidence if lang_code != "und" else 0.0,
        raw={"digits": call.get("digits") or "", "choice": call.get("choice"),
             "queue_result": call.get("queue_result"), "call_status": call.get("call_status"),
             "recording_sid": call.get("recording_sid"), "recording_url": call.get("recording_url"),
             "recording_duration": call.get("recording_duration"),
             "transcription_status": call.get("transcription_status")},
        flags=tuple(flags),
    )


def finalise_call(store: Store, sink: Sink, detector: LanguageDetector, call_sid: str, now: datetime,
                  force: bool = False) -> str | None:
    """Turn a finished call into its Signal, once. Returns the signal id, or None if not ready."""
    call = store.call_get(call_sid)
    if call is None or call.get("finalised_at"):
        return None
    if not (force or ready_to_finalise(call)):
        return None
    signal = call_signal(call, call["created_at"], detector)
    accepted = sink.accept(signal)
    store.call_mark_finalised(call_sid, accepted.signal_id, now)
    return accepted.signal_id


# ---- the blueprint ----------------------------------------------------------------------------


def make_blueprint(cfg: VoiceConfig, auth: TwilioAuth, store: Store, sink: Sink, detector: LanguageDetector,
                   on_late_transcript: Callable[[str], None],
                   clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> Blueprint:
    bp = Blueprint("voice", __name__)

    def handle(fn: Callable[[Mapping[str, str], datetime], str]) -> Callable[[], Response]:
        def view() -> Response:
            try:
                params = verified_form(request, auth)
                sid = (params.get("CallSid") or "").strip()
                if not sid:
                    raise BadWebhook(400, "missing required parameter 'CallSid'")
                if len(sid) > MAX_SID_CHARS:  # Twilio's are 34; the calls table keys on at most 64
                    raise BadWebhook(400, f"parameter 'CallSid' is too long ({len(sid)} characters; "
                                          f"at most {MAX_SID_CHARS})")
            except BadWebhook as err:
                if err.status == 403:
                    log.warning("voice webhook %s refused: invalid or missing signature", request.path)
                return refuse(err)
            return twiml(fn(params, clock()))

        view.__name__ = fn.__name__
        return view

    def started(params: Mapping[str, str], now: datetime) -> None:
        store.call_touch(params["CallSid"], now, **{
            "from": params.get("From") or params.get("Caller"),
            "location": {k: params.get(f"From{k.capitalize()}") for k in ("state", "city", "zip", "country")
                         if params.get(f"From{k.capitalize()}")} or None,
        })

    def incoming(params: Mapping[str, str], now: datetime) -> str:
        started(params, now)  # committed before we answer: the call is on record
        log.info("voice: call started")
        return greeting_twiml(cfg)

    def menu(params: Mapping[str, str], now: datetime) -> str:
        started(params, now)
        digits = None if request.args.get("Default") else (params.get("Digits") or None)
        xml, lang, choice = menu_twiml(cfg, digits)
        if digits:
            store.call_add_digits(params["CallSid"], digits, now)
        if choice != "invalid":
            offered = "<Record" in xml
            store.call_touch(params["CallSid"], now, lang=lang, choice=choice,
                             voicemail_offered=True if offered else None)
        if choice == "crisis":
            # Danger key: the case opens (and on-call is paged) while the caller waits.
            finalise_call(store, sink, detector, params["CallSid"], now, force=True)
        return xml

    def wait(params: Mapping[str, str], now: datetime) -> str:
        try:
            queue_time = int(params.get("QueueTime") or 0)
        except ValueError:
            queue_time = 0
        return wait_twiml(cfg, request.args.get("lang", "en"), queue_time)

    def queue_result(params: Mapping[str, str], now: datetime) -> str:
        result = (params.get("QueueResult") or "error")[:32]
        lang = request.args.get("lang", "en")
        xml = after_queue_twiml(cfg, lang, result)
        store.call_touch(params["CallSid"], now, queue_result=result,
                         voicemail_offered=True if "<Record" in xml else None)
        return xml

    def interpreter(params: Mapping[str, str], now: datetime) -> str:
        status = params.get("DialCallStatus") or "failed"
        if status == "completed":
            store.call_touch(params["CallSid"], now, queue_result="bridged")
            return str(VoiceResponse())
        store.call_touch(params["CallSid"], now, queue_result=f"interpreter-{status}"[:32], voicemail_offered=True)
        return voicemail_twiml(cfg, "und")

    def recorded(params: Mapping[str, str], now: datetime) -> str:
        store.call_touch(params["CallSid"], now, recording_sid=_recording_sid(params),
                         recording_url=params.get("RecordingUrl") or None,
                         recording_duration=_int(params.get("RecordingDuration")))
        return thanks_twiml(cfg, request.args.get("lang", "en"))

    def recording(params: Mapping[str, str], now: datetime) -> str:
        store.call_touch(params["CallSid"], now, recording_sid=_recording_sid(params),
                         recording_url=params.get("RecordingUrl") or None,
                         recording_duration=_int(params.get("RecordingDuration")))
        finalise_call(store, sink, detector, params["CallSid"], now)
        return str(VoiceResponse())

    def transcription(params: Mapping[str, str], now: datetime) -> str:
        sid = params["CallSid"]
        text = params.get("TranscriptionText") or ""
        status = (params.get("TranscriptionStatus") or ("completed" if text else "failed"))[:16]
        store.call_touch(sid, now, transcript=text or None, transcription_status=status,
                         recording_sid=_recording_sid(params))
        call = store.call_get(sid)
        if call and call.get("finalised_at") and call.get("signal_id") and text:
            # The call became a signal before its transcript came: add it and look again.
            store.attach_transcript(call["signal_id"], clean_text(text), now)
            on_late_transcript(call["signal_id"])
        else:
            finalise_call(store, sink, detector, sid, now)
        return str(VoiceResponse())

    def status(params: Mapping[str, str], now: datetime) -> str:
        call_status = (params.get("CallStatus") or "")[:16] or None
        started(params, now)
        store.call_touch(params["CallSid"], now, call_status=call_status)
        finalise_call(store, sink, detector, params["CallSid"], now)
        return str(VoiceResponse())

    for path, fn in (("/twilio/voice", incoming), ("/twilio/voice/menu", menu), ("/twilio/voice/wait", wait),
                     ("/twilio/voice/queue", queue_result), ("/twilio/voice/interpreter", interpreter),
                     ("/twilio/voice/recorded", recorded), ("/twilio/voice/recording", recording),
                     ("/twilio/voice/transcription", transcription), ("/twilio/voice/status", status)):
        bp.add_url_rule(path, endpoint=fn.__name__, view_func=handle(fn), methods=["POST"])
    return bp


def _recording_sid(params: Mapping[str, str]) -> str | None:
    return (params.get("RecordingSid") or "").strip()[:MAX_SID_CHARS] or None


def _int(value: str | None) -> int | None:
    """A whole number that fits an INTEGER column, else None (a huge one would be a 500)."""
    try:
        number = int(value) if value not in (None, "") else None
    except ValueError:
        return None
    return number if number is None or 0 <= number < 2**31 else None
