"""The tip form in a real browser (Debian's Chromium driven by Playwright): a person fills it in,
sees errors, gets a reference number, and leaves in a hurry with Quick Exit or Esc.

No network: the app is served on 127.0.0.1, the neutral exit site is answered locally by
Playwright, and any other host is refused. Screenshots go to test-artifacts/."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser_support import ARTIFACTS, BROWSER_MARKS, serve
from conftest import make_settings
from flask import Flask

from intake.channels.webform import WebformConfig, make_blueprint
from workers.runtime import Runtime, build_runtime

EXIT_URL = "https://www.weather.gov"
REFERENCE = re.compile(r"TIP-[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}")

pytestmark = BROWSER_MARKS


@pytest.fixture
def rt(tmp_path: Path, embedded_backend: Any) -> Iterator[Runtime]:
    runtime = build_runtime(make_settings(tmp_path, embedded_backend))
    yield runtime
    runtime.close()


@pytest.fixture
def server(rt: Runtime) -> Iterator[str]:
    app = Flask("webform-browser-test")
    config = WebformConfig(secret_key="browser-test-secret-0123456789abcdef", exit_url=EXIT_URL,
                           hotline_number="+1 555 0100")
    app.register_blueprint(make_blueprint(config, rt.sink, rt.detector, "memory://"))

    @app.get("/start")
    def start() -> str:  # a page the person was on before the form
        return "<!doctype html><title>Start</title><p>start page</p>"

    with serve(app) as base:
        yield base


class Visit:
    """A browser tab with every request outside the test server answered locally or refused."""

    def __init__(self, browser: Any, base: str, locale: str = "en-US") -> None:
        self.context = browser.new_context(locale=locale, viewport={"width": 900, "height": 1000})
        self.page = self.context.new_page()
        self.base = base
        self.requests: list[str] = []
        self.csp_errors: list[str] = []
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.on("console", lambda m: self.csp_errors.append(m.text) if "Content Security Policy" in m.text
                     else None)
        self.context.route("**/*", self._route)

    def _route(self, route: Any) -> None:
        url = route.request.url
        if url.startswith(self.base):
            route.continue_()
        elif url.startswith(EXIT_URL):
            route.fulfill(status=200, content_type="text/html",
                          body="<!doctype html><title>Weather</title><p>Forecast: sunny</p>")
        else:
            route.abort()

    def close(self) -> None:
        self.context.close()

    def outside_requests(self) -> list[str]:
        return [u for u in self.requests if not u.startswith((self.base, EXIT_URL))]


@pytest.fixture
def visit(browser: Any, server: str) -> Iterator[Visit]:
    v = Visit(browser, server)
    yield v
    v.close()


def screenshot(page: Any, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 1000
    return path


def webform_signals(rt: Runtime) -> list[Any]:
    return [rt.store.load_signal(r["id"]).signal for r in rt.store.recent_signals() if r["channel"] == "webform"]


# ---- filling in and sending -----------------------------------------------------------------------

def test_fill_in_and_send_in_english_shows_a_reference(visit, rt):
    page = visit.page
    page.goto(f"{visit.base}/tip")
    assert page.locator("h1").inner_text() == "Report a tip"
    assert page.locator("#quick-exit").is_visible()
    assert page.locator(".exit-hint").is_visible()  # "or press Esc": the script ran under the CSP

    page.check("#f-danger_now-no")
    page.fill("#f-what_happened", "Three young women never leave the Example Nail Spa; the owner keeps "
                                  "their passports and drives them home in a white van every night.")
    page.fill("#f-address", "12 Example St")
    page.fill("#f-city", "Springfield")
    page.select_option("#f-state", "IL")
    page.fill("#f-zip", "62701")
    page.fill("#f-when", "Every evening for the last two weeks")
    page.fill("#f-people_count", "3")
    page.check("#f-minors_involved-unknown")
    page.fill("#f-ages", "about 20")
    page.check("#f-exploitation_type-labor")
    page.fill("#f-work_type", "Nail salon")
    page.fill("#f-vehicles", "White van, plate unknown")
    page.fill("#f-phone_numbers", "(217) 555-0199")
    screenshot(page, "webform-filled-en.png")

    page.click("#send")
    page.wait_for_url(re.compile(r".*/tip/confirmation/.*"))
    reference = page.locator("#reference").inner_text()
    assert REFERENCE.fullmatch(reference)
    assert page.locator("h1").inner_text() == "Thank you. Your tip was received."
    assert "Tips are reviewed every day" in page.locator(".next-steps").inner_text()
    assert page.locator("#danger-now").count() == 0
    screenshot(page, "webform-confirmation-en.png")

    [signal] = webform_signals(rt)
    assert signal.raw["reference"] == reference
    assert signal.location.state == "IL" and "anonymous" in signal.flags
    assert visit.outside_requests() == [] and visit.csp_errors == []

    page.reload()  # POST/redirect/GET: a reload shows the page again and sends nothing
    assert page.locator("#reference").inner_text() == reference
    assert len(webform_signals(rt)) == 1


def test_fill_in_and_send_in_spanish_with_danger_now(visit, rt):
    page = visit.page
    page.goto(f"{visit.base}/tip")
    page.click("#lang-switch")
    page.wait_for_url(re.compile(r".*lang=es"))
    assert page.locator("h1").inner_text() == "Enviar un aviso"
    assert page.locator("#quick-exit").inner_text() == "Salida rápida"

    banner = page.locator("#danger-banner")
    assert not banner.is_visible()
    page.check("#f-danger_now-yes")
    assert banner.is_visible() and "Llame al 911 ahora" in banner.inner_text()
    page.fill("#f-what_happened", "Una muchacha está encerrada en el cuarto de atrás del Motel Ejemplo y "
                                  "no la dejan salir.")
    page.fill("#f-city", "Houston")
    page.select_option("#f-state", "TX")
    page.check("#f-minors_involved-yes")
    page.check("#f-contact_consent")
    page.fill("#f-contact_phone", "(202) 555-0143")
    page.fill("#f-contact_safe_time", "Por la tarde, no deje mensaje")
    screenshot(page, "webform-filled-es.png")

    page.click("#send")
    page.wait_for_url(re.compile(r".*/tip/confirmation/.*"))
    assert page.locator("h1").inner_text() == "Gracias. Recibimos su aviso."
    danger = page.locator("#danger-now")
    assert danger.is_visible() and "Llame al 911 ahora" in danger.inner_text()
    reference = page.locator("#reference").inner_text()
    assert REFERENCE.fullmatch(reference)
    screenshot(page, "webform-confirmation-es.png")

    [signal] = webform_signals(rt)
    assert signal.raw["reference"] == reference
    assert signal.language == "es" and "danger_now" in signal.flags
    assert signal.sender == "+12025550143"
    assert visit.outside_requests() == [] and visit.csp_errors == []


def test_validation_errors_are_shown_next_to_the_fields(visit, rt):
    page = visit.page
    page.goto(f"{visit.base}/tip")
    page.fill("#f-zip", "1234")
    page.fill("#f-city", "Springfield")
    page.click("#send")
    page.wait_for_load_state()
    summary = page.locator("#error-summary")
    assert summary.is_visible()
    assert "Please tell us what happened." in page.locator("#field-what_happened .field-error").inner_text()
    assert "5-digit ZIP" in page.locator("#field-zip .field-error").inner_text()
    assert "immediate danger" in page.locator("#field-danger_now .field-error").inner_text()
    assert page.input_value("#f-city") == "Springfield"  # nothing typed is lost
    screenshot(page, "webform-errors-en.png")

    page.click("#error-summary a[href='#f-what_happened']")
    assert page.evaluate("document.activeElement.id") == "f-what_happened"
    page.fill("#f-what_happened", "Workers sleep in the back of the Example Diner.")
    page.fill("#f-zip", "62701")
    page.check("#f-danger_now-no")
    page.click("#send")
    page.wait_for_url(re.compile(r".*/tip/confirmation/.*"))
    assert REFERENCE.fullmatch(page.locator("#reference").inner_text())
    assert len(webform_signals(rt)) == 1


# ---- Quick Exit ------------------------------------------------------------------------------------

def _assert_left_without_trace(visit: Visit, history_on_form: int) -> None:
    page = visit.page
    page.wait_for_url(f"{EXIT_URL}/**")
    assert page.url.startswith(EXIT_URL)
    assert page.title() == "Weather"
    # The form's entry was replaced, not followed: history did not grow, and Back goes to the
    # page before the form, never to the form.
    assert page.evaluate("history.length") == history_on_form
    page.go_back()
    assert page.url == f"{visit.base}/start"
    assert "/tip" not in page.url


def test_quick_exit_button_leaves_for_the_neutral_site_without_a_history_entry(visit, rt):
    page = visit.page
    page.goto(f"{visit.base}/start")
    page.goto(f"{visit.base}/tip")
    page.fill("#f-what_happened", "Something the reporter does not want seen")
    history_on_form = page.evaluate("history.length")
    page.click("#quick-exit")
    _assert_left_without_trace(visit, history_on_form)
    assert webform_signals(rt) == []


def test_esc_key_leaves_for_the_neutral_site_without_a_history_entry(visit):
    page = visit.page
    page.goto(f"{visit.base}/start")
    page.goto(f"{visit.base}/tip?lang=es")
    page.click("#f-what_happened")
    page.keyboard.type("Algo que nadie debe ver")
    history_on_form = page.evaluate("history.length")
    page.keyboard.press("Escape")
    _assert_left_without_trace(visit, history_on_form)


def test_quick_exit_from_the_confirmation_page(visit):
    page = visit.page
    page.goto(f"{visit.base}/tip")
    page.check("#f-danger_now-no")
    page.fill("#f-what_happened", "Example tip")
    page.click("#send")
    page.wait_for_url(re.compile(r".*/tip/confirmation/.*"))
    page.keyboard.press("Escape")
    page.wait_for_url(f"{EXIT_URL}/**")
    page.go_back()
    assert "/tip/confirmation/" not in page.url
