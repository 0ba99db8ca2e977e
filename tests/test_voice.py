"""Voice: the IVR's TwiML for every choice, callbacks in any order, signatures, transcripts."""

from __future__ import annotations

import secrets
import xml.etree.ElementTree as ET

import pytest
from conftest import drain, post_signed

from intake.store import calls
from workers.worker import finalise_stale_calls

CALLER = "+15555550181"


def call_params(sid: str, **extra: str) -> dict[str, str]:
    return {"CallSid": sid, "AccountSid": "AC" + "0" * 32, "From": CALLER, "To": "+18005550100",
            "Direction": "inbound", "CallStatus": "in-progress", "FromState": "OH", "FromCity": "TOLEDO",
            "FromZip": "43604", "FromCountry": "US", **extra}


def new_sid() -> str:
    return "CA" + secrets.token_hex(16)


def tw(resp) -> ET.Element:
    assert resp.status_code == 200, resp.data
    assert resp.mimetype == "application/xml"
    return ET.fromstring(resp.data)


def says(root: ET.Element) -> str:
    return " ".join(el.text or "" for el in root.iter("Say"))


# ---- TwiML for each step -------------------------------------------------------------------------

def test_greeting_is_bilingual_with_the_911_line_and_a_one_key_menu(client):
    root = tw(post_signed(client, call_params(new_sid()), path="/twilio/voice"))
    gather = root.find("Gather")
    assert gather.get("numDigits") == "1" and gather.get("action") == "/twilio/voice/menu"
    languages = {s.get("language") for s in gather.iter("Say")}
    assert languages == {"en-US", "es-US"}
    text = says(gather)
    assert "9 1 1" in text and "confidential" in text and "confidencial" in text
    assert "press 9" in text and "oprima 2" in text
    # no key pressed -> straight to an English advocate
    assert root.find("Redirect").text == "/twilio/voice/menu?Default=1"


@pytest.mark.parametrize(("digits", "queue", "lang"), [
    ("1", "advocates-en", "en"),
    ("2", "advocates-es", "es"),
    ("9", "crisis-priority", "en"),
    (None, "advocates-en", "en"),   # no input
])
def test_menu_choices_enqueue_to_the_right_advocate_queue(client, digits, queue, lang):
    sid = new_sid()
    post_signed(client, call_params(sid), path="/twilio/voice")
    params = call_params(sid, **({"Digits": digits} if digits else {}))
    path = "/twilio/voice/menu" if digits else "/twilio/voice/menu?Default=1"
    enqueue = tw(post_signed(client, params, path=path)).find("Enqueue")
    assert enqueue.text == queue
    assert enqueue.get("waitUrl") == f"/twilio/voice/wait?lang={lang}"
    assert enqueue.get("action") == f"/twilio/voice/queue?lang={lang}"


def test_option_3_dials_the_interpreter_service(client):
    sid = new_sid()
    root = tw(post_signed(client, call_params(sid, Digits="3"), path="/twilio/voice/menu"))
    assert root.find("Dial").get("action") == "/twilio/voice/interpreter"
    assert root.find("Dial/Number").text == "+15555550150"
    # interpreter did not answer -> voicemail, prompted in English and Spanish
    vm = tw(post_signed(client, call_params(sid, DialCallStatus="no-answer"), path="/twilio/voice/interpreter"))
    assert vm.find("Record") is not None
    assert {s.get("language") for s in vm.iter("Say")} == {"en-US", "es-US"}


def test_an_unknown_key_says_so_and_repeats_the_menu(client):
    root = tw(post_signed(client, call_params(new_sid(), Digits="7"), path="/twilio/voice/menu"))
    assert "not an option" in says(root) and "no existe" in says(root)
    assert root.find("Redirect").text == "/twilio/voice"


@pytest.mark.parametrize(("lang", "phrase", "language"), [("en", "waiting", "en-US"), ("es", "esperar", "es-US")])
def test_hold_message_in_the_callers_language_then_leave_after_max_wait(client, lang, phrase, language):
    sid = new_sid()
    hold = tw(post_signed(client, call_params(sid, QueueTime="30"), path=f"/twilio/voice/wait?lang={lang}"))
    assert phrase in says(hold) and hold.find("Say").get("language") == language
    late = tw(post_signed(client, call_params(sid, QueueTime="121"), path=f"/twilio/voice/wait?lang={lang}"))
    assert late.find("Leave") is not None


@pytest.mark.parametrize(("lang", "result"), [("en", "leave"), ("es", "queue-full"), ("en", "error"),
                                              ("es", "leave")])
def test_no_advocate_or_full_queue_goes_to_voicemail_in_the_callers_language(client, lang, result):
    sid = new_sid()
    root = tw(post_signed(client, call_params(sid, QueueResult=result), path=f"/twilio/voice/queue?lang={lang}"))
    record = root.find("Record")
    assert record.get("transcribe") == "true"
    assert record.get("transcribeCallback") == "/twilio/voice/transcription"
    assert record.get("recordingStatusCallback") == "/twilio/voice/recording"
    assert record.get("action") == f"/twilio/voice/recorded?lang={lang}"
    assert root.find("Say").get("language") == ("es-US" if lang == "es" else "en-US")


def test_bridged_call_needs_no_voicemail(client):
    root = tw(post_signed(client, call_params(new_sid(), QueueResult="bridged"), path="/twilio/voice/queue?lang=en"))
    assert list(root) == []


# ---- whole calls: callbacks in any order ---------------------------------------------------------

def _voicemail_call(client, sid: str, lang_digit: str = "1") -> None:
    lang = {"1": "en", "2": "es"}[lang_digit]
    post_signed(client, call_params(sid), path="/twilio/voice")
    post_signed(client, call_params(sid, Digits=lang_digit), path="/twilio/voice/menu")
    post_signed(client, call_params(sid, QueueResult="leave"), path=f"/twilio/voice/queue?lang={lang}")
    rec = {"RecordingSid": "RE" + sid[2:], "RecordingUrl": f"https://api.twilio.example/{sid}",
           "RecordingDuration": "42"}
    post_signed(client, call_params(sid, **rec), path=f"/twilio/voice/recorded?lang={lang}")
    post_signed(client, call_params(sid, RecordingStatus="completed", **rec), path="/twilio/voice/recording")


def _transcription(client, sid: str, text: str) -> None:
    post_signed(client, call_params(sid, RecordingSid="RE" + sid[2:], TranscriptionText=text,
                                    TranscriptionStatus="completed"), path="/twilio/voice/transcription")


def _status(client, sid: str, status: str = "completed") -> None:
    post_signed(client, call_params(sid, CallStatus=status, CallDuration="95"), path="/twilio/voice/status")


def test_crisis_voicemail_transcript_reaches_the_crisis_queue(client, runtime):
    sid = new_sid()
    _voicemail_call(client, sid)
    _status(client, sid)
    assert runtime.store.counts()["signals"] == 0  # waiting for the transcript
    _transcription(client, sid, "please help me they locked me in the basement and he has a gun")
    drain(runtime)
    [row] = runtime.store.recent_signals()
    assert (row["channel"], row["category"], row["urgency"], row["queue"]) == \
        ("voice", "crisis", "immediate", "crisis_line")
    signal = runtime.store.load_signal(row["id"]).signal
    assert signal.external_id == sid and signal.sender == CALLER
    assert signal.location.state == "OH" and "basement" in signal.text
    assert signal.raw["digits"] == "1" and signal.raw["recording_sid"] == "RE" + sid[2:]
    assert "voicemail" in signal.flags


def test_spanish_voicemail_is_triaged_in_spanish(client, runtime):
    sid = new_sid()
    _voicemail_call(client, sid, lang_digit="2")
    _transcription(client, sid, "necesito un abogado de inmigración para la visa T, no es una emergencia")
    _status(client, sid)
    drain(runtime)
    [row] = runtime.store.recent_signals()
    assert row["language"] == "es" and row["category"] == "referral"


def test_transcript_before_status_and_repeated_callbacks_make_one_complete_signal(client, runtime):
    sid = new_sid()
    _voicemail_call(client, sid)
    _transcription(client, sid, "I want to report a massage parlor where the women never leave")
    assert runtime.store.counts()["signals"] == 0  # the call is not over yet
    for _ in range(3):
        _status(client, sid)
    _transcription(client, sid, "I want to report a massage parlor where the women never leave")
    post_signed(client, call_params(sid, RecordingStatus="completed", RecordingSid="RE" + sid[2:]),
                path="/twilio/voice/recording")
    drain(runtime)
    assert runtime.store.counts()["signals"] == 1
    [row] = runtime.store.recent_signals()
    assert row["category"] == "tip"
    assert "massage parlor" in runtime.store.load_signal(row["id"]).signal.text


def test_danger_key_opens_a_crisis_case_while_the_caller_waits(client, runtime):
    sid = new_sid()
    post_signed(client, call_params(sid), path="/twilio/voice")
    post_signed(client, call_params(sid, Digits="9"), path="/twilio/voice/menu")
    drain(runtime)
    [row] = runtime.store.recent_signals()
    assert (row["category"], row["urgency"], row["queue"]) == ("crisis", "immediate", "crisis_line")
    assert "crisis.voice.danger_key" in row["matched"]
    case = runtime.store.case_by_number(row["case_number"])
    assert any(n["dedupe_key"].split(":")[1] == "crisis" for n in runtime.store.notifications_for(case.id))
    # the call goes on: queue, voicemail, status, a late transcript -> still one signal, text attached
    post_signed(client, call_params(sid, QueueResult="leave"), path="/twilio/voice/queue?lang=en")
    _status(client, sid)
    _transcription(client, sid, "he is outside with a knife, we are at the motel on route 9")
    drain(runtime)
    assert runtime.store.counts()["signals"] == 1
    assert "knife" in runtime.store.load_signal(row["id"]).signal.text
    assert "transcript_added" in [e["action"] for e in runtime.store.case_audit(case.id)]


def test_late_transcript_raises_a_finished_calls_case(client, runtime):
    sid = new_sid()
    _voicemail_call(client, sid)
    _status(client, sid)
    from datetime import UTC, datetime, timedelta

    assert finalise_stale_calls(runtime, now=datetime.now(UTC) + timedelta(minutes=10)) == 1
    drain(runtime)
    [row] = runtime.store.recent_signals()
    assert row["category"] != "crisis"
    _transcription(client, sid, "help me please they locked us in and he has a gun")
    drain(runtime)
    case = runtime.store.case_by_number(row["case_number"])
    assert (case.category, case.urgency) == ("crisis", "immediate")
    assert runtime.store.counts()["signals"] == 1


@pytest.mark.parametrize("status", ["no-answer", "busy", "failed", "canceled"])
def test_missed_calls_become_a_call_back_signal(client, runtime, status):
    sid = new_sid()
    post_signed(client, call_params(sid), path="/twilio/voice")
    _status(client, sid, status)
    drain(runtime)
    [row] = runtime.store.recent_signals()
    signal = runtime.store.load_signal(row["id"]).signal
    assert "missed_call" in signal.flags
    assert (row["category"], row["urgency"], row["queue"]) == ("general", "normal", "advocates")


def test_a_call_whose_callbacks_never_come_is_not_lost(client, runtime):
    from datetime import UTC, datetime, timedelta

    sid = new_sid()
    post_signed(client, call_params(sid), path="/twilio/voice")
    post_signed(client, call_params(sid, Digits="2"), path="/twilio/voice/menu")
    assert finalise_stale_calls(runtime) == 0  # too early
    assert finalise_stale_calls(runtime, now=datetime.now(UTC) + timedelta(minutes=6)) == 1
    drain(runtime)
    [row] = runtime.store.recent_signals()
    assert row["channel"] == "voice" and row["status"] == "triaged"


# ---- forged requests ----------------------------------------------------------------------------

VOICE_PATHS = ["/twilio/voice", "/twilio/voice/menu", "/twilio/voice/wait?lang=en", "/twilio/voice/queue?lang=en",
               "/twilio/voice/interpreter", "/twilio/voice/recorded?lang=en", "/twilio/voice/recording",
               "/twilio/voice/transcription", "/twilio/voice/status"]


@pytest.mark.parametrize("path", VOICE_PATHS)
@pytest.mark.parametrize("signature", ["", "Zm9yZ2Vk"])
def test_every_voice_endpoint_refuses_a_bad_signature_and_stores_nothing(client, runtime, path, signature):
    params = call_params(new_sid(), Digits="9", CallStatus="completed", TranscriptionText="help me",
                         TranscriptionStatus="completed", QueueResult="leave")
    resp = post_signed(client, params, path=path, signature=signature)
    assert resp.status_code == 403
    with runtime.store.engine.connect() as conn:
        assert conn.execute(calls.select()).first() is None
    assert runtime.store.counts()["signals"] == 0


def test_missing_call_sid_is_400(client, runtime):
    params = call_params("x")
    del params["CallSid"]
    resp = post_signed(client, params, path="/twilio/voice")
    assert resp.status_code == 400 and b"'CallSid'" in resp.data
