"""The web tip form and its JSON API: what a reporter sees, what gets stored, what gets refused.

The blueprint is served by a small Flask app built here from the runtime's sink and detector,
so these tests do not depend on how workers/web.py wires it."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, ClassVar

import pytest
from conftest import drain, make_settings
from flask import Flask

from intake.channels.webform import (
    WebformConfig,
    compose_text,
    make_blueprint,
    normalize_reference,
    openapi_document,
    tip_reference,
    validate_tip,
)
from intake.sink import Sink
from intake.store import Store, make_engine
from workers.runtime import Runtime, build_runtime

SECRET = "webform-test-secret-0123456789abcdef"
EXIT_URL = "https://www.weather.gov"
DEAD_REDIS = "redis://127.0.0.1:1/0"
# Invented example data only.
WHAT = "Three young women never leave the Example Nail Spa; the owner keeps their passports."
WHAT_ES = "Tres mujeres jóvenes nunca salen del salón de uñas; el dueño les quita los pasaportes."
PHONE = "(202) 555-0143"
PHONE_E164 = "+12025550143"
EMAIL = "reporter@example.org"


# ---- helpers -----------------------------------------------------------------------------------

class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def webform_app(rt: Runtime, storage_uri: str = "memory://", clock: Callable[[], datetime] | None = None,
                sink: Sink | None = None, **overrides: Any) -> Flask:
    config = WebformConfig(secret_key=SECRET, exit_url=EXIT_URL, hotline_number="+1 555 0100", **overrides)
    app = Flask("webform-test")
    kwargs = {"clock": clock} if clock else {}
    app.register_blueprint(make_blueprint(config, sink or rt.sink, rt.detector, storage_uri, **kwargs))
    return app


@pytest.fixture
def rt(tmp_path: Path, embedded_backend: Any) -> Iterator[Runtime]:
    """A runtime on the embedded default, for tests that are not about the database."""
    runtime = build_runtime(make_settings(tmp_path, embedded_backend))
    yield runtime
    runtime.close()


@pytest.fixture
def web(rt: Runtime) -> Any:
    return webform_app(rt).test_client()


@pytest.fixture
def web_db(runtime: Runtime) -> Any:
    """The same, on both backends (embedded and the machine's PostgreSQL + Redis)."""
    return webform_app(runtime).test_client()


class Page(HTMLParser):
    """Elements by id (with their ancestors' ids), every attribute, and inline script/style use."""

    VOID: ClassVar[frozenset[str]] = frozenset(
        {"input", "meta", "link", "br", "img", "hr", "source", "area", "base", "col", "embed", "wbr"})

    def __init__(self, html: str) -> None:
        super().__init__()
        self.stack: list[tuple[str, str | None]] = []
        self.by_id: dict[str, dict[str, Any]] = {}
        self.elements: list[tuple[str, dict[str, str]]] = []
        self.inline_script = False
        self.style_tags = 0
        self._in_script = False
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        self.elements.append((tag, a))
        if "id" in a:
            self.by_id[a["id"]] = {"tag": tag, "attrs": a, "ancestors": [i for _, i in self.stack if i]}
        if tag == "style":
            self.style_tags += 1
        if tag == "script":
            self._in_script = True
        if tag not in self.VOID:
            self.stack.append((tag, a.get("id")))

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False
        for i in range(len(self.stack) - 1, -1, -1):
            if self.stack[i][0] == tag:
                del self.stack[i:]
                break

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.inline_script = True

    def value(self, name: str) -> str:
        for tag, a in self.elements:
            if tag == "input" and a.get("name") == name:
                return a.get("value", "")
        raise AssertionError(f"no input named {name}")


def load_form(client: Any, path: str = "/tip", **headers: str) -> Page:
    resp = client.get(path, headers=headers)
    assert resp.status_code == 200
    return Page(resp.get_data(as_text=True))


def tip(**fields: str) -> dict[str, str]:
    data = {"danger_now": "no", "what_happened": WHAT}
    data.update(fields)
    return {k: v for k, v in data.items() if v is not None}


def submit(client: Any, page: Page | None = None, **fields: str) -> Any:
    page = page or load_form(client)
    data = {"csrf_token": page.value("csrf_token"), "submission_token": page.value("submission_token"),
            "lang": page.value("lang"), "website": ""}
    data.update(tip(**fields))
    return client.post("/tip", data=data)


def stored(rt: Runtime) -> list[Any]:
    return [rt.store.load_signal(row["id"]).signal for row in rt.store.recent_signals()
            if row["channel"] == "webform"]


def text_of(resp: Any) -> str:
    return resp.get_data(as_text=True)


# ---- the form --------------------------------------------------------------------------------

@pytest.mark.parametrize(("path", "accept_language", "lang", "heading"), [
    ("/tip", None, "en", "Report a tip"),
    ("/tip", "en-US,en;q=0.9", "en", "Report a tip"),
    ("/tip", "es-MX,es;q=0.9,en;q=0.5", "es", "Enviar un aviso"),
    ("/tip", "fr-FR,fr;q=0.9", "en", "Report a tip"),
    ("/tip?lang=es", "en-US", "es", "Enviar un aviso"),
    ("/tip?lang=en", "es-MX,es", "en", "Report a tip"),
])
def test_form_language_comes_from_lang_parameter_then_accept_language(web, path, accept_language, lang, heading):
    headers = {"Accept-Language": accept_language} if accept_language else {}
    resp = web.get(path, headers=headers)
    html = text_of(resp)
    assert resp.status_code == 200
    assert f'<html lang="{lang}">' in html
    assert f"<h1>{heading}</h1>" in html
    page = Page(html)
    assert page.value("lang") == lang
    switch = page.by_id["lang-switch"]["attrs"]
    assert switch["href"] == f"/tip?lang={'en' if lang == 'es' else 'es'}"


def test_form_has_every_field_and_a_visible_quick_exit(web):
    page = load_form(web)
    for name in ("what_happened", "address", "city", "state", "zip", "when", "people_count", "ages", "genders",
                 "nationality", "work_type", "vehicles", "websites", "phone_numbers", "contact_consent",
                 "contact_name", "contact_phone", "contact_email", "contact_safe_time"):
        assert f"f-{name}" in page.by_id, name
    for choice in ("danger_now-yes", "danger_now-no", "minors_involved-yes", "minors_involved-no",
                   "minors_involved-unknown", "exploitation_type-sex", "exploitation_type-labor"):
        assert f"f-{choice}" in page.by_id, choice
    exit_link = page.by_id["quick-exit"]["attrs"]
    assert "data-quick-exit" in exit_link and exit_link["href"] == "/tip/exit"
    body = next(a for tag, a in page.elements if tag == "body")
    assert body["data-exit-url"] == EXIT_URL


def test_no_autocomplete_on_any_field(web):
    page = load_form(web)
    form = page.by_id["tip-form"]["attrs"]
    assert form["autocomplete"] == "off"
    fields = [(tag, a) for tag, a in page.elements
              if tag in ("input", "textarea", "select") and a.get("type") != "hidden"]
    assert len(fields) > 20
    for tag, a in fields:
        assert a.get("autocomplete") == "off", (tag, a.get("name"))


def test_html_loads_nothing_from_another_host_and_has_no_inline_script_or_style(web, rt):
    pages = [text_of(web.get("/tip")), text_of(web.get("/tip?lang=es"))]
    done = submit(web)
    pages.append(text_of(web.get(done.headers["Location"])))
    for html in pages:
        page = Page(html)
        for tag, a in page.elements:
            for attr in ("src", "href", "action", "formaction", "poster", "srcset"):
                if attr in a:
                    assert a[attr].startswith(("/", "?", "#")), (tag, attr, a[attr])
                    assert not a[attr].startswith("//"), (tag, attr, a[attr])
        # The only absolute URL is the neutral site Quick Exit leaves for: a data attribute, never loaded.
        assert set(re.findall(r"https?://[^\s\"'<>]+", html)) <= {EXIT_URL}
        assert not page.inline_script and page.style_tags == 0
        assert " style=" not in html and "onclick" not in html.lower()
    for asset in ("/tip/static/tipform.js", "/tip/static/tipform.css"):
        body = web.get(asset).get_data(as_text=True)
        assert not re.search(r"(?:https?:)?//[a-z0-9.-]+\.[a-z]", body.replace(EXIT_URL, "")), asset
        assert "@import" not in body


@pytest.mark.parametrize("path", ["/tip", "/tip?lang=es", "/tip/static/tipform.js", "/api/openapi.json"])
def test_security_headers(web, path):
    resp = web.get(path)
    assert resp.status_code == 200
    csp = resp.headers["Content-Security-Policy"]
    directives = {d.split()[0]: d.split()[1:] for d in csp.split("; ")}
    assert directives["default-src"] == ["'self'"]
    assert directives["script-src"] == ["'self'"]
    assert directives["frame-ancestors"] == ["'none'"]
    assert "'unsafe-inline'" not in csp and "'unsafe-eval'" not in csp
    assert resp.headers["X-Frame-Options"] == "DENY"
    assert resp.headers["Referrer-Policy"] == "no-referrer"
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert resp.headers["Cache-Control"] == "no-store"


def test_confirmation_page_is_not_cached_and_has_the_same_headers(web):
    resp = web.get(submit(web).headers["Location"])
    assert resp.status_code == 200
    assert resp.headers["Cache-Control"] == "no-store"
    assert resp.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in resp.headers["Content-Security-Policy"]


def test_quick_exit_without_javascript_goes_to_the_neutral_site(web):
    resp = web.get("/tip/exit")
    assert resp.status_code == 303
    assert resp.headers["Location"] == EXIT_URL
    assert resp.headers["Referrer-Policy"] == "no-referrer"


def test_csrf_cookie_is_a_browser_session_cookie_scoped_to_the_form(web):
    cookie = web.get("/tip").headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "Path=/tip" in cookie and "SameSite=Lax" in cookie
    assert "Expires" not in cookie and "Max-Age" not in cookie


# ---- submitting --------------------------------------------------------------------------------

def test_a_tip_is_stored_as_one_signal_and_the_reporter_gets_a_reference(web_db, runtime):
    page = load_form(web_db)
    resp = submit(web_db, page, address="12 Example St", city="Springfield", state="il", zip="62701",
                  when="Last Tuesday night", people_count="3", minors_involved="unknown", ages="20s",
                  genders="women", nationality="unknown", exploitation_type="labor", work_type="nail salon",
                  vehicles="white van", websites="example.org/ads", phone_numbers="(217) 555-0199")
    assert resp.status_code == 303
    assert resp.headers["Location"].startswith("/tip/confirmation/")
    confirmation = web_db.get(resp.headers["Location"])
    html = text_of(confirmation)
    [reference] = set(re.findall(r"TIP-[0-9A-Z]{4}-[0-9A-Z]{4}", html))
    assert "Tips are reviewed every day" in html and "911" in html

    [signal] = stored(runtime)
    assert signal.channel.value == "webform"
    assert signal.external_id == page.value("submission_token")
    assert signal.subject is None and signal.sender is None
    assert signal.flags == ("anonymous",)
    assert signal.location.state == "IL" and signal.location.city == "Springfield" and signal.location.zip == "62701"
    assert signal.raw["reference"] == reference == tip_reference(SECRET, signal.external_id)
    assert signal.raw["fields"]["exploitation_type"] == "labor"
    assert signal.raw["source"] == "form" and signal.raw["form_language"] == "en"
    assert signal.language == "en"
    assert signal.text.startswith(f"What happened: {WHAT}\n")
    for line in ("Where: 12 Example St, Springfield, IL 62701", "When: Last Tuesday night", "Number of people: 3",
                 "Suspected: forced labor or labor exploitation", "Vehicles: white van",
                 "Phone numbers seen: (217) 555-0199", "Contact: anonymous"):
        assert line in signal.text


def test_refreshing_the_confirmation_does_not_resubmit(web_db, runtime):
    location = submit(web_db).headers["Location"]
    first, again = web_db.get(location), web_db.get(location)
    assert first.status_code == again.status_code == 200
    assert len(stored(runtime)) == 1


def test_the_same_form_sent_twice_is_one_signal(web_db, runtime):
    page = load_form(web_db)
    first = submit(web_db, page)
    second = submit(web_db, page)
    assert first.status_code == second.status_code == 303
    assert first.headers["Location"].split(".")[0] == second.headers["Location"].split(".")[0]  # same reference
    assert len(stored(runtime)) == 1


def test_two_forms_are_two_signals_with_different_references(web, rt):
    a, b = submit(web), submit(web)
    assert a.headers["Location"].split(".")[0] != b.headers["Location"].split(".")[0]
    assert len(stored(rt)) == 2


def test_danger_now_flags_the_signal_shows_911_and_is_triaged_as_crisis(web_db, runtime):
    resp = submit(web_db, danger_now="yes", what_happened="A girl is locked in the back room of the Example Motel.")
    html = text_of(web_db.get(resp.headers["Location"]))
    page = Page(html)
    assert "danger-now" in page.by_id
    assert page.by_id["danger-now"]["attrs"]["role"] == "alert"
    assert "Call 911 now" in html and "+1 555 0100" in html
    assert html.index("Call 911 now") < html.index("TIP-")  # before anything else

    [signal] = stored(runtime)
    assert "danger_now" in signal.flags
    assert signal.text.startswith("EMERGENCY:")
    drain(runtime)
    [row] = runtime.store.recent_signals()
    assert row["category"] == "crisis" and row["urgency"] == "immediate"


@pytest.mark.parametrize("what", [
    "Workers sleep in the restaurant and are not paid.",
    "Trabajan en el restaurante y no les pagan.",
])
def test_danger_yes_is_read_as_crisis_by_the_triage_rules_in_either_language(web, rt, what):
    from triage.engine import classify

    submit(web, danger_now="yes", what_happened=what)
    [signal] = stored(rt)
    assert classify(signal, rt.ruleset).category == "crisis"


def test_danger_no_shows_no_emergency_banner(web, rt):
    html = text_of(web.get(submit(web, danger_now="no").headers["Location"]))
    assert "danger-now" not in Page(html).by_id
    [signal] = stored(rt)
    assert "danger_now" not in signal.flags and "EMERGENCY" not in signal.text


def test_spanish_form_gives_a_spanish_confirmation_and_a_spanish_signal(web, rt):
    page = load_form(web, "/tip?lang=es")
    resp = submit(web, page, what_happened=WHAT_ES, danger_now="yes")
    html = text_of(web.get(resp.headers["Location"]))
    assert '<html lang="es">' in html
    assert "Gracias. Recibimos su aviso." in html and "Llame al 911 ahora" in html
    assert re.search(r"TIP-[0-9A-Z]{4}-[0-9A-Z]{4}", html)
    [signal] = stored(rt)
    assert signal.language == "es" and signal.raw["form_language"] == "es"


@pytest.mark.parametrize(("fields", "sender", "flags"), [
    ({"contact_consent": "yes", "contact_phone": PHONE, "contact_email": EMAIL}, PHONE_E164, ()),
    ({"contact_consent": "yes", "contact_email": EMAIL.upper()}, EMAIL, ()),
    ({"contact_phone": PHONE, "contact_email": EMAIL, "contact_name": "Pat"}, None, ("anonymous",)),
    # Without consent the contact fields are ignored, mistakes in them too.
    ({"contact_phone": "not a number", "contact_email": "nope"}, None, ("anonymous",)),
])
def test_contact_details_are_kept_only_with_consent(web, rt, fields, sender, flags):
    resp = submit(web, **fields)
    assert resp.status_code == 303
    [signal] = stored(rt)
    assert signal.sender == sender
    assert signal.flags == flags
    kept = {k for k in signal.raw["fields"] if k.startswith("contact_") and k != "contact_consent"}
    assert bool(kept) == bool(sender)
    if not sender:
        assert "Pat" not in signal.text and "555" not in signal.text


# ---- refusals ------------------------------------------------------------------------------------

@pytest.mark.parametrize("case", ["missing", "wrong", "other_form", "no_cookie", "expired"])
def test_a_form_without_a_valid_csrf_token_is_refused_and_shown_again(tmp_path, rt, case):
    clock = Clock()
    client = webform_app(rt, clock=clock).test_client()
    page = load_form(client)
    other = load_form(client)
    data = {"csrf_token": page.value("csrf_token"), "submission_token": page.value("submission_token"),
            "lang": "en", **tip(what_happened="Example text kept for the reporter")}
    if case == "missing":
        del data["csrf_token"]
    elif case == "wrong":
        data["csrf_token"] = data["csrf_token"][:-4] + "AAAA"
    elif case == "other_form":
        data["csrf_token"] = other.value("csrf_token")
    elif case == "no_cookie":
        client.delete_cookie("tf_sid", path="/tip")
    elif case == "expired":
        clock.now += timedelta(hours=5)
    resp = client.post("/tip", data=data)
    html = text_of(resp)
    assert resp.status_code == 400
    assert "This form has expired or could not be verified" in html
    assert "Example text kept for the reporter" in html  # nothing the reporter wrote is lost
    assert stored(rt) == []
    # ...and sending the form shown again works.
    again = Page(html)
    data.update(csrf_token=again.value("csrf_token"), submission_token=again.value("submission_token"))
    assert client.post("/tip", data=data).status_code == 303
    assert len(stored(rt)) == 1


def test_csrf_message_is_in_the_form_language(web):
    resp = web.post("/tip", data={"lang": "es", **tip()})
    assert resp.status_code == 400
    assert "Este formulario caducó o no se pudo verificar" in text_of(resp)


def test_a_forged_submission_token_is_never_used_as_an_id(web, rt):
    page = load_form(web)
    forged = "A" * 24 + "." + "B" * 22
    data = {"csrf_token": page.value("csrf_token"), "submission_token": forged, "lang": "en", **tip()}
    resp = web.post("/tip", data=data)
    assert resp.status_code == 400
    assert Page(text_of(resp)).value("submission_token") != forged
    assert stored(rt) == []


@pytest.mark.parametrize(("lang", "fields", "expected"), [
    ("en", {"what_happened": ""}, {"what_happened": "Please tell us what happened."}),
    ("es", {"what_happened": "  "}, {"what_happened": "Cuéntenos qué pasó."}),
    ("en", {"danger_now": None}, {"danger_now": "Please answer: is anyone in immediate danger right now?"}),
    ("es", {"danger_now": "maybe"}, {"danger_now": "Elija una de las opciones."}),
    ("en", {"zip": "1234"}, {"zip": "Enter a 5-digit ZIP code (like 12345), or leave it empty."}),
    ("es", {"zip": "ABCDE"}, {"zip": "Escriba un código postal de 5 dígitos (como 12345), o déjelo vacío."}),
    ("en", {"state": "XX"}, {"state": "Choose a state from the list, or leave it empty."}),
    ("en", {"contact_consent": "yes", "contact_email": "pat@"},
     {"contact_email": "This email address does not look right."}),
    ("es", {"contact_consent": "yes", "contact_phone": "12"},
     {"contact_phone": "Este número de teléfono no parece correcto. Incluya el código de área."}),
    ("en", {"contact_consent": "yes"},
     {"contact_phone": "To be contacted, give a phone number or an email, or untick the box to stay anonymous."}),
    ("en", {"ages": "x" * 201}, {"ages": "Please keep this under 200 characters."}),
])
def test_validation_errors_are_shown_next_to_their_field_in_the_form_language(web, rt, lang, fields, expected):
    page = load_form(web, f"/tip?lang={lang}")
    resp = submit(web, page, **fields)
    assert resp.status_code == 400
    result = Page(text_of(resp))
    for name, message in expected.items():
        error = result.by_id[f"e-{name}"]
        assert f"field-{name}" in error["ancestors"]  # inside the field's own block
        assert message in text_of(resp)
        control = result.by_id.get(f"f-{name}") or result.by_id[f"field-{name}"]
        assert f"e-{name}" in control["attrs"].get("aria-describedby", "")
        assert control["attrs"].get("aria-invalid") == "true"
    assert "error-summary" in result.by_id
    assert stored(rt) == []
    if "what_happened" not in fields:
        assert WHAT in text_of(resp)  # what the reporter wrote is still there


def test_honeypot_answers_like_a_success_but_stores_nothing_and_logs_only_a_count(web, rt, caplog):
    caplog.set_level(logging.DEBUG)
    resp = submit(web, website="http://spam.example.org/buy", what_happened="Buy cheap example widgets")
    assert resp.status_code == 303 and resp.headers["Location"].startswith("/tip/confirmation/")
    html = text_of(web.get(resp.headers["Location"]))
    assert "Thank you. Your tip was received." in html and re.search(r"TIP-[0-9A-Z]{4}-[0-9A-Z]{4}", html)
    assert stored(rt) == []
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "honeypot filled, submission discarded (1 since start)" in logged
    assert "spam" not in logged and "widgets" not in logged


def test_a_body_over_the_size_limit_is_refused_with_413(rt):
    client = webform_app(rt, max_request_bytes=4096).test_client()
    page = load_form(client)
    resp = submit(client, page, what_happened="x" * 5000)
    assert resp.status_code == 413
    assert "too long" in text_of(resp)
    resp = client.post("/api/tips", data=json.dumps(tip(what_happened="x" * 5000)), content_type="application/json")
    assert resp.status_code == 413
    assert resp.get_json() == {"errors": {"body": "The request is larger than 4096 bytes."}}
    assert stored(rt) == []


def test_a_description_over_its_limit_is_a_validation_error(rt):
    client = webform_app(rt, max_description_chars=100).test_client()
    resp = submit(client, what_happened="y" * 101)
    assert resp.status_code == 400
    assert "Please keep this under 100 characters." in text_of(resp)
    assert Page(text_of(resp)).by_id["f-what_happened"]["attrs"]["maxlength"] == "100"


def test_a_tampered_or_expired_confirmation_link_shows_nothing(rt):
    clock = Clock()
    client = webform_app(rt, clock=clock).test_client()
    location = submit(client).headers["Location"]
    tampered = location.replace(".en.0.", ".en.1.")
    assert client.get(tampered).status_code == 404
    clock.now += timedelta(hours=2)
    resp = client.get(location)
    assert resp.status_code == 404
    assert "TIP-" not in text_of(resp)


def test_when_the_database_is_down_the_form_comes_back_with_the_answers(tmp_path, rt):
    dead = Store(make_engine(f"sqlite:///{tmp_path / 'missing-dir' / 'x.db'}"), rt.store.cipher)
    client = webform_app(rt, sink=Sink(dead, rt.queue, rt.policy)).test_client()
    resp = submit(client, what_happened="Example words that must not be lost")
    assert resp.status_code == 503
    assert "We could not save your tip just now" in text_of(resp)
    assert "Example words that must not be lost" in text_of(resp)
    resp = client.post("/api/tips", json=tip())
    assert resp.status_code == 503 and "service" in resp.get_json()["errors"]


# ---- rate limiting ----------------------------------------------------------------------------------

def test_too_many_submissions_get_429_with_a_clear_message_and_the_answers_kept(rt):
    client = webform_app(rt, rate_limit="2 per minute").test_client()
    assert submit(client).status_code == 303
    assert submit(client).status_code == 303
    resp = submit(client, what_happened="Example third tip")
    assert resp.status_code == 429
    html = text_of(resp)
    assert "Too many tips were sent from your connection" in html and "911" in html
    assert "Example third tip" in html
    assert int(resp.headers["Retry-After"]) > 0
    api = client.post("/api/tips", json=tip())  # the form and the API share the limit
    assert api.status_code == 429
    assert "Too many tips" in api.get_json()["errors"]["rate_limit"]
    assert len(stored(rt)) == 2


def test_the_rate_limit_is_per_client(rt):
    client = webform_app(rt, rate_limit="1 per minute").test_client()
    assert submit(client).status_code == 303
    assert submit(client).status_code == 429
    page = load_form(client)
    data = {"csrf_token": page.value("csrf_token"), "submission_token": page.value("submission_token"),
            "lang": "en", **tip()}
    other = client.post("/tip", data=data, environ_base={"REMOTE_ADDR": "192.0.2.7"})
    assert other.status_code == 303


@pytest.mark.parametrize(("trusted_proxies", "separate"), [(0, False), (1, True)])
def test_behind_a_trusted_proxy_the_limit_is_per_forwarded_client(rt, trusted_proxies, separate):
    client = webform_app(rt, rate_limit="1 per minute", trusted_proxies=trusted_proxies).test_client()

    def send(forwarded_for: str) -> int:
        page = load_form(client)
        data = {"csrf_token": page.value("csrf_token"), "submission_token": page.value("submission_token"),
                "lang": "en", **tip()}
        return client.post("/tip", data=data, headers={"X-Forwarded-For": forwarded_for}).status_code

    assert send("198.51.100.1") == 303
    # Without a trusted proxy the header is the client's to forge, so it changes nothing.
    assert send("198.51.100.2") == (303 if separate else 429)
    assert send("203.0.113.9, 198.51.100.1") == 429


def test_the_rate_limit_counts_in_the_configured_redis(runtime, backend):
    client = webform_app(runtime, storage_uri=backend.redis_url, rate_limit="1 per minute").test_client()
    assert submit(client).status_code == 303
    assert submit(client).status_code == 429
    keys = [k.decode() for k in runtime.redis.scan_iter("*hotline-webform*")]
    assert keys, "the limiter did not use the configured Redis"
    assert not any("127.0.0.1" in k for k in keys)  # a keyed hash, never the address


def test_the_limiter_fails_open_when_its_redis_is_down(rt):
    client = webform_app(rt, storage_uri=DEAD_REDIS, rate_limit="3 per minute").test_client()
    resp = submit(client)
    assert resp.status_code == 303
    api = client.post("/api/tips", json=tip())
    assert api.status_code == 201
    assert len(stored(rt)) == 2
    # Meanwhile it counts in memory, so a flood is still held back.
    assert submit(client).status_code == 303
    assert submit(client).status_code == 429


def test_the_limiter_never_touches_other_routes(rt):
    # Even with app-wide default limits configured, other channels' webhooks are not counted.
    app = Flask("webform-test")
    app.config["RATELIMIT_DEFAULT"] = "1 per minute"
    config = WebformConfig(secret_key=SECRET, rate_limit="1 per minute")
    app.register_blueprint(make_blueprint(config, rt.sink, rt.detector, DEAD_REDIS))

    @app.get("/other")
    def other() -> str:
        return "ok"

    client = app.test_client()
    for _ in range(3):
        resp = client.get("/other")
        assert resp.status_code == 200 and "X-RateLimit-Limit" not in resp.headers


# ---- the JSON API --------------------------------------------------------------------------------

def test_api_accepts_a_tip_with_201_and_a_reference(web_db, runtime):
    resp = web_db.post("/api/tips", json=tip(state="TX", city="Houston", zip="77002", minors_involved="yes",
                                             people_count=4, contact_consent=True, contact_phone=PHONE))
    assert resp.status_code == 201
    body = resp.get_json()
    assert re.fullmatch(r"TIP-[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}", body["reference"])
    assert "reviewed every day" in body["next_steps"] and body["danger_now"] is False
    assert resp.headers["Cache-Control"] == "no-store"
    [signal] = stored(runtime)
    assert signal.raw["reference"] == body["reference"] and signal.raw["source"] == "api"
    assert signal.sender == PHONE_E164 and signal.flags == ()
    assert "Minors involved: yes" in signal.text and "Number of people: 4" in signal.text


def test_api_idempotency_key_makes_a_retry_the_same_tip(web_db, runtime):
    headers = {"Idempotency-Key": "3f1c2a9e-0000-4000-8000-000000000001"}
    first = web_db.post("/api/tips", json=tip(), headers=headers)
    again = web_db.post("/api/tips", json=tip(), headers=headers)
    assert first.status_code == again.status_code == 201
    assert first.get_json()["reference"] == again.get_json()["reference"]
    assert "Idempotent-Replayed" not in first.headers and again.headers["Idempotent-Replayed"] == "true"
    [signal] = stored(runtime)
    assert signal.external_id == "api-" + headers["Idempotency-Key"]
    other = web_db.post("/api/tips", json=tip())
    assert other.get_json()["reference"] != first.get_json()["reference"]
    assert len(stored(runtime)) == 2


def test_api_danger_now_puts_911_first(web, rt):
    body = web.post("/api/tips", json=tip(danger_now="yes", language="es")).get_json()
    assert body["danger_now"] is True and body["language"] == "es"
    assert body["next_steps"].startswith("Alguien está en peligro ahora mismo: llame al 911")
    [signal] = stored(rt)
    assert "danger_now" in signal.flags and "anonymous" in signal.flags


@pytest.mark.parametrize(("payload", "headers", "errors"), [
    ({"danger_now": "no"}, {}, {"what_happened": "Please tell us what happened."}),
    ({"what_happened": WHAT}, {}, {"danger_now": "Please answer: is anyone in immediate danger right now?"}),
    ({**tip(), "zip": 12345}, {}, {"zip": "Must be a string."}),
    ({**tip(), "contact_consent": "yes"}, {}, {"contact_consent": "Must be true or false."}),
    ({**tip(), "favourite_color": "blue"}, {}, {"favourite_color": "Unknown field."}),
    ({**tip(), "language": "de"}, {}, {"language": "Must be one of: en, es."}),
    ({**tip(), "website": "x"}, {}, {"website": "Unknown field."}),
    (tip(), {"Idempotency-Key": "short"},
     {"Idempotency-Key": "Must be 16 to 200 characters: letters, digits, '.', '_', ':' or '-'."}),
    ({"what_happened": "", "language": "es"}, {},
     {"what_happened": "Cuéntenos qué pasó.",
      "danger_now": "Responda: ¿hay alguien en peligro inmediato ahora mismo?"}),
    ([1, 2], {}, {"body": "The body must be a JSON object."}),
])
def test_api_validation_errors_are_json_by_field(web, rt, payload, headers, errors):
    resp = web.post("/api/tips", json=payload, headers=headers)
    assert resp.status_code == 400
    assert resp.mimetype == "application/json"
    assert resp.get_json() == {"errors": errors}
    assert stored(rt) == []


def test_api_errors_follow_accept_language(web):
    resp = web.post("/api/tips", json={"danger_now": "no"}, headers={"Accept-Language": "es"})
    assert resp.get_json() == {"errors": {"what_happened": "Cuéntenos qué pasó."}}


def test_api_refuses_malformed_json(web):
    resp = web.post("/api/tips", data="{not json", content_type="application/json")
    assert resp.status_code == 400
    assert resp.get_json() == {"errors": {"body": "The body must be a JSON object."}}


@pytest.mark.parametrize("content_type", ["application/x-www-form-urlencoded", "text/plain", None])
def test_api_wants_json_and_says_so_with_415(web, rt, content_type):
    kwargs = {"content_type": content_type} if content_type else {}
    resp = web.post("/api/tips", data="what_happened=x&danger_now=no", **kwargs)
    assert resp.status_code == 415
    assert resp.get_json() == {"errors": {"body": "Send the tip as JSON with 'Content-Type: application/json'."}}
    assert stored(rt) == []


def test_api_needs_no_csrf_token_or_cookie(web):
    assert web.post("/api/tips", json=tip()).status_code == 201
    assert "Set-Cookie" not in web.post("/api/tips", json=tip()).headers


def test_openapi_document_is_valid_and_describes_the_api(web):
    from jsonschema import Draft202012Validator
    from openapi_spec_validator import validate

    resp = web.get("/api/openapi.json")
    assert resp.status_code == 200 and resp.mimetype == "application/json"
    doc = json.loads(resp.get_data(as_text=True))
    validate(doc)
    assert doc["openapi"].startswith("3.1")
    post = doc["paths"]["/api/tips"]["post"]
    assert set(post["responses"]) >= {"201", "400", "413", "415", "429"}
    schema = doc["components"]["schemas"]["TipSubmission"]
    assert set(schema["required"]) == {"what_happened", "danger_now"}
    assert doc == openapi_document(WebformConfig(secret_key=SECRET))

    # The document and the server agree: its example is valid and accepted...
    example = post["requestBody"]["content"]["application/json"]["example"]
    Draft202012Validator(schema).validate(example)
    created = web.post("/api/tips", json=example)
    assert created.status_code == 201
    accepted = {**doc["components"]["schemas"]["TipAccepted"], "components": doc["components"]}
    Draft202012Validator(accepted).validate(created.get_json())
    # ...and what it calls invalid, the server refuses.
    for bad in ({"danger_now": "no"}, {**example, "zip": "1"}, {**example, "minors_involved": "maybe"}):
        assert list(Draft202012Validator(schema).iter_errors(bad))
        assert web.post("/api/tips", json=bad).status_code == 400


# ---- confidentiality --------------------------------------------------------------------------------

def test_logs_never_hold_what_the_reporter_wrote(web, rt, caplog):
    caplog.set_level(logging.DEBUG)
    secret_words = "Quenby Marisol Example Orchard"
    submit(web, what_happened=secret_words, contact_consent="yes", contact_phone=PHONE, contact_email=EMAIL)
    submit(web, what_happened=secret_words, zip="bad")
    web.post("/tip", data=tip(what_happened=secret_words))  # no CSRF token
    web.post("/api/tips", json=tip(what_happened=secret_words, contact_consent=True, contact_email=EMAIL))
    web.post("/api/tips", json={"what_happened": secret_words})
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "accepted" in logged and "zip" in logged  # the test sees the logs it is checking
    for secret in ("Quenby", "Orchard", "555-0143", "5550143", "example.org"):
        assert secret not in logged


# ---- pure functions -----------------------------------------------------------------------------------

@pytest.mark.parametrize(("typed", "canonical"), [
    ("TIP-7K3M-9QXD", "TIP-7K3M-9QXD"),
    ("tip 7k3m 9qxd", "TIP-7K3M-9QXD"),
    ("7K3M9QXD", "TIP-7K3M-9QXD"),
    ("TIP-7K3M-9QXO", "TIP-7K3M-9QX0"),
    ("TIP-IK3M-9QXD", "TIP-1K3M-9QXD"),
    ("TIP-7K3M-9QX", None),
    ("TIP-7K3M-9QXU", None),
    ("", None),
])
def test_references_are_read_as_people_type_them(typed, canonical):
    assert normalize_reference(typed) == canonical


def test_reference_is_stable_per_submission_and_keyed():
    ref = tip_reference(SECRET, "token-1")
    assert re.fullmatch(r"TIP-[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}", ref)
    assert tip_reference(SECRET, "token-1") == ref
    assert tip_reference(SECRET, "token-2") != ref
    assert tip_reference("another-secret-0123456789abcdef", "token-1") != ref
    assert normalize_reference(ref) == ref


@pytest.mark.parametrize(("minors", "line", "absent"), [
    ("yes", "Minors involved: yes", None),
    ("no", "Age group: adults only", "inor"),
    ("unknown", "Age group: not known", "inor"),
])
def test_only_a_yes_mentions_minors_in_the_text(minors, line, absent):
    fields, errors = validate_tip(tip(minors_involved=minors), "en")
    assert errors == {}
    text = compose_text(fields)
    assert line in text
    if absent:
        assert absent not in text


def test_validation_cleans_and_normalises():
    fields, errors = validate_tip({**tip(), "state": " tx ", "zip": "77002-1234", "city": "  Houston \n TX ",
                                   "contact_consent": "yes", "contact_phone": PHONE,
                                   "what_happened": "line one\r\nline two\x00"}, "en")
    assert errors == {}
    assert fields["state"] == "TX" and fields["zip"] == "77002-1234" and fields["city"] == "Houston TX"
    assert fields["contact_phone"] == PHONE_E164
    assert fields["what_happened"] == "line one\nline two"
    assert fields["minors_involved"] == "unknown" and fields["exploitation_type"] == "unknown"


def test_the_app_wires_the_form_when_web_py_registers_it(tmp_path, embedded_backend):
    from workers.web import create_app

    settings = make_settings(tmp_path, embedded_backend)
    runtime = build_runtime(settings)
    try:
        app = create_app(settings, runtime)
        if "webform" not in app.blueprints:
            pytest.skip("workers/web.py does not register the webform blueprint yet")
        client = app.test_client()
        resp = submit(client)
        assert resp.status_code == 303
        assert client.get(resp.headers["Location"]).status_code == 200
        assert client.get("/api/openapi.json").status_code == 200
    finally:
        runtime.close()
