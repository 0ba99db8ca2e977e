"""The operator console in a real browser (Debian's Chromium driven by Playwright): an advocate
works a crisis from the queue to closed, reclassifies it with a reason and sees the audit entry;
the browser and the server both refuse a reclassification without a reason; the queue refreshes
itself when a new crisis arrives; hostile message text stays text; time left turns amber and red;
the referral search is pre-filled from the case; supervisors land on their dashboard and analysts
are turned away from a case they type into the address bar.

No network: the app (create_app with the embedded backend) is served on 127.0.0.1 and any other
host is refused. Every console message of type error or warning and every uncaught page error
fails the test unless the test names it as expected. Screenshots go to test-artifacts/."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from browser_support import ARTIFACTS, BROWSER_MARKS, serve
from conftest import drain, make_settings, post_signed, sms_params
from sqlalchemy import select, update

from console.users import UserStore
from intake.store import cases
from workers.runtime import Runtime, build_runtime
from workers.web import create_app

PASSWORD = "correct horse battery staple"
USERS = (("advocate1", "advocate"), ("supervisor1", "supervisor"), ("analyst1", "analyst"))
CRISIS = "help he locked me in the room and took my passport, he is coming back tonight"
TIME_LEFT = re.compile(r"-?(\d+d \d+h|\d+h \d\dm|\d+m)")

pytestmark = BROWSER_MARKS


@pytest.fixture
def refresh_seconds() -> int:
    """console.refresh_seconds for the served app; a test parametrizes it to override."""
    return 15


@dataclass
class Live:
    rt: Runtime
    app: Any
    base: str


@pytest.fixture
def live(tmp_path: Path, embedded_backend: Any, refresh_seconds: int) -> Iterator[Live]:
    settings = make_settings(tmp_path, embedded_backend)
    if refresh_seconds != settings.console.refresh_seconds:
        console = settings.console.model_copy(update={"refresh_seconds": refresh_seconds})
        settings = settings.model_copy(update={"console": console})
    rt = build_runtime(settings)
    app = create_app(settings, rt)
    users = UserStore(rt.store.engine)
    for name, role in USERS:
        users.add(name, role, PASSWORD, datetime.now(UTC))
    try:
        with serve(app) as base:
            yield Live(rt, app, base)
    finally:
        rt.close()


class Visit:
    """A browser tab that may only talk to the test server, with its console messages collected."""

    def __init__(self, browser: Any, base: str) -> None:
        self.context = browser.new_context(locale="en-US", viewport={"width": 1300, "height": 1000})
        self.page = self.context.new_page()
        self.base = base
        self.requests: list[str] = []
        self.messages: list[tuple[str, str]] = []
        self.page.on("request", lambda r: self.requests.append(f"{r.method} {r.url}"))
        self.page.on("console", lambda m: self.messages.append((m.type, m.text)))
        self.page.on("pageerror", lambda exc: self.messages.append(("pageerror", str(exc))))
        self.context.route("**/*", self._route)

    def _route(self, route: Any) -> None:
        if route.request.url.startswith(self.base):
            route.continue_()
        else:
            route.abort()

    def close(self) -> None:
        self.context.close()

    def goto(self, path: str) -> Any:
        return self.page.goto(self.base + path)

    def login(self, username: str) -> None:
        page = self.page
        if "/console/login" not in page.url:
            self.goto("/console/login")
        page.fill("#username", username)
        page.fill("#password", PASSWORD)
        page.click("form.card button[type=submit]")
        page.wait_for_url(lambda url: "/console/login" not in url)

    def assert_clean(self, expected: tuple[str, ...] = ()) -> None:
        """No request left the test server; no console error or warning and no uncaught
        exception, other than messages containing one of `expected` (each must have appeared)."""
        outside = [r for r in self.requests if not r.split(" ", 1)[1].startswith(self.base)]
        assert outside == []
        problems = [(t, m) for t, m in self.messages
                    if (t in ("error", "warning", "pageerror") or "Content Security Policy" in m)]
        for e in expected:
            assert any(e in m for _t, m in problems), f"expected console message {e!r} not seen: {problems}"
        assert [p for p in problems if not any(e in p[1] for e in expected)] == []


@pytest.fixture
def visit(browser: Any, live: Live) -> Iterator[Visit]:
    v = Visit(browser, live.base)
    yield v
    v.close()


def screenshot(page: Any, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 1000
    return path


def case_numbers(rt: Runtime) -> set[str]:
    with rt.store.engine.connect() as conn:
        return set(conn.execute(select(cases.c.number)).scalars())


def new_case(live: Live, body: str, sender: str) -> str:
    """A text arrives by the signed Twilio webhook and the worker triages and routes it."""
    before = case_numbers(live.rt)
    resp = post_signed(live.app.test_client(), sms_params(body=body, from_=sender))
    assert resp.status_code == 200
    drain(live.rt)
    [number] = case_numbers(live.rt) - before
    return number


def set_clock(rt: Runtime, number: str, opened_ago: timedelta, left: timedelta) -> None:
    now = datetime.now(UTC)
    with rt.store.engine.begin() as conn:
        conn.execute(update(cases).where(cases.c.number == number)
                     .values(opened_at=now - opened_ago, deadline=now + left))


def queue_row(page: Any, number: str) -> Any:
    return page.locator("#queue tbody tr", has_text=number)


def cells(row: Any) -> list[str]:
    return [t.strip() for t in row.locator("td").all_inner_texts()]


# ---- 1. from the queue to closed ---------------------------------------------------------------

def test_an_advocate_works_a_crisis_from_the_queue_to_closed(visit: Visit, live: Live) -> None:
    number = new_case(live, CRISIS, "+15555550121")
    page = visit.page
    visit.goto("/console/")
    assert "/console/login" in page.url
    visit.login("advocate1")
    assert page.url.endswith("/console/queues")
    assert "advocate1 (advocate)" in page.locator("header .who").inner_text()

    row = queue_row(page, number)
    left, shown_number, category, urgency, channel, language, status, assigned, flags = cells(row)
    assert TIME_LEFT.fullmatch(left), left
    assert (shown_number, category, urgency, channel, status, assigned) == (
        number, "crisis", "immediate", "sms", "open", "")
    assert language == "en" and "danger" in flags
    screenshot(page, "console-queue.png")

    row.locator("a", has_text=number).click()
    page.wait_for_url(f"**/console/cases/{number}")
    assert page.locator("#case-number").inner_text() == number
    assert page.locator("#case-status").inner_text() == "open"
    message = page.locator(".timeline .signal .text").first
    assert message.inner_text() == CRISIS
    why = page.locator(".timeline .signal .why").first
    assert why.is_visible()
    assert "crisis.en.trapped" in why.locator(".explanation").inner_text()
    rules = why.locator("code").all_inner_texts()
    assert "crisis.en.trapped" in rules and "crisis.en.control" in rules
    fired = why.locator(".spans mark").all_inner_texts()
    assert "locked me in" in fired and "took my passport" in fired
    assert "+15555550121" not in page.content()  # the number only when asked for, and logged
    screenshot(page, "console-case.png")

    page.click("#acknowledge")
    page.wait_for_load_state()
    assert page.locator("p.notice").inner_text() == "Case acknowledged."
    assert page.locator("#case-status").inner_text() == "acknowledged"
    assert page.locator("#acknowledge").count() == 0

    page.select_option("#new-category", "tip")
    page.select_option("#new-urgency", "normal")
    page.fill("#reclassify-reason", "Caller is a neighbour reporting, not the victim")
    page.click("#reclassify button[type=submit]")
    page.wait_for_load_state()
    assert page.locator("p.notice").inner_text() == "Category and urgency changed."
    assert page.locator("#case-category").inner_text() == "tip"
    assert page.locator("#case-urgency").inner_text() == "normal"
    entry = page.locator("#audit li", has_text="reclassified")
    assert entry.count() == 1
    text = entry.inner_text()
    assert "advocate1" in text and "Caller is a neighbour reporting, not the victim" in text
    assert "crisis/immediate" in text and "tip/normal" in text, text
    screenshot(page, "console-reclassified.png")

    page.fill("#close-reason", "Passed to the local tip line; caller has a safe place tonight")
    page.click("#close")
    page.wait_for_load_state()
    assert page.locator("p.notice").inner_text() == "Case closed."
    assert page.locator("#case-status").inner_text() == "closed"
    assert page.locator("#reopen").is_visible() and page.locator("#close").count() == 0
    closed = page.locator("#audit li", has_text="closed").inner_text()
    assert "advocate1" in closed and "safe place tonight" in closed
    screenshot(page, "console-closed.png")

    case = live.rt.store.case_by_number(number)
    assert (case.status, case.category, case.urgency) == ("closed", "tip", "normal")
    page.click("nav a:has-text('Queues')")
    page.wait_for_url("**/console/queues")
    assert queue_row(page, number).count() == 0
    visit.assert_clean()


# ---- 2. a reclassification needs a reason ---------------------------------------------------

def test_reclassifying_without_a_reason_is_stopped_by_the_browser_and_by_the_server(
        visit: Visit, live: Live) -> None:
    number = new_case(live, CRISIS, "+15555550122")
    page = visit.page
    visit.login("advocate1")
    visit.goto(f"/console/cases/{number}")
    case_url = page.url

    page.select_option("#new-category", "tip")
    page.click("#reclassify button[type=submit]")
    assert page.evaluate("document.getElementById('reclassify-reason').validity.valueMissing") is True
    assert page.url == case_url
    assert not [r for r in visit.requests if r.startswith("POST ") and r.endswith("/reclassify")]

    # Spaces pass the browser's check; the server refuses them.
    page.fill("#reclassify-reason", "   ")
    page.click("#reclassify button[type=submit]")
    page.wait_for_url("**/reclassify")
    alert = page.locator("p.error[role=alert]")
    assert "reason: say why the category or urgency changes (required)" in alert.inner_text()

    # Without the attribute the empty form is sent, and the server says what is missing.
    visit.goto(f"/console/cases/{number}")
    page.select_option("#new-category", "tip")
    page.evaluate("document.getElementById('reclassify-reason').removeAttribute('required')")
    page.click("#reclassify button[type=submit]")
    page.wait_for_url("**/reclassify")
    assert "reason: say why the category or urgency changes (required)" in alert.inner_text()
    assert page.locator("#case-category").inner_text() == "crisis"
    assert page.locator("p.notice").count() == 0
    assert page.locator("#audit li", has_text="reclassified").count() == 0
    screenshot(page, "console-reclassify-no-reason.png")

    case = live.rt.store.case_by_number(number)
    assert (case.category, case.urgency) == ("crisis", "immediate")
    assert "reclassified" not in [e["action"] for e in live.rt.store.case_audit(case.id)]
    visit.assert_clean(expected=("status of 400",))


# ---- 3. the queue refreshes itself ------------------------------------------------------------

@pytest.mark.parametrize("refresh_seconds", [2])
def test_a_new_crisis_appears_in_the_open_queue_without_a_reload(visit: Visit, live: Live) -> None:
    first = new_case(live, CRISIS, "+15555550131")
    page = visit.page
    visit.login("advocate1")
    assert page.locator("#queue").get_attribute("data-refresh") == "2"
    assert queue_row(page, first).count() == 1
    before = cells(queue_row(page, first))
    navigations: list[str] = []
    page.on("framenavigated", lambda frame: navigations.append(frame.url))
    page.evaluate("window.__sameDocument = 'still here'")

    second = new_case(live, "they keep us locked in the basement, please help us now", "+15555550132")
    row = queue_row(page, second)
    row.wait_for(timeout=15_000)
    left, shown, category, urgency, channel, *_ = cells(row)
    assert TIME_LEFT.fullmatch(left) and shown == second
    assert (category, urgency, channel) == ("crisis", "immediate", "sms")
    assert row.locator(f"a[href$='/console/cases/{second}']").count() == 1
    # The row the server rendered and the row the script rendered say the same things.
    assert cells(queue_row(page, first))[1:] == before[1:]
    assert page.evaluate("window.__sameDocument") == "still here"
    assert navigations == []
    assert page.locator("#refreshed").inner_text().startswith("Updated ")
    screenshot(page, "console-queue-refreshed.png")
    visit.assert_clean()


# ---- 4. hostile message text -------------------------------------------------------------------

HOSTILE = '<img src=x onerror="window.__xss=1">help he took my passport'


def test_hostile_message_text_is_shown_as_text_and_never_runs(visit: Visit, live: Live) -> None:
    number = new_case(live, HOSTILE, "+15555550141")
    page = visit.page
    visit.login("advocate1")
    page.locator("#queue a", has_text=number).click()
    page.wait_for_url(f"**/console/cases/{number}")
    message = page.locator(".timeline .signal .text").first
    assert message.inner_text() == HOSTILE
    assert page.locator("main img").count() == 0
    assert page.evaluate("typeof window.__xss") == "undefined"
    assert not [r for r in visit.requests if r.endswith("/x")]

    # A note and a reclassification reason written with markup come back as text too.
    page.fill("#note-body", '<b onmouseover="window.__xss=2">note</b>')
    page.click("form:has(#note-body) button[type=submit]")
    page.wait_for_load_state()
    assert page.locator(".note .text").inner_text() == '<b onmouseover="window.__xss=2">note</b>'
    page.select_option("#new-urgency", "high")
    page.fill("#reclassify-reason", '<svg onload="window.__xss=3">')
    page.click("#reclassify button[type=submit]")
    page.wait_for_load_state()
    assert '<svg onload="window.__xss=3">' in page.locator("#audit li", has_text="reclassified").inner_text()
    assert page.locator("main svg, main b[onmouseover]").count() == 0
    # The page's own script ran under the CSP: the referral search answers.
    with page.expect_response(lambda r: "/api/referrals?" in r.url) as answer:
        page.click("#referral-search button[type=submit]")
    assert answer.value.status == 200
    page.locator("#referral-results ol.referrals > li").first.wait_for()
    assert page.evaluate("typeof window.__xss") == "undefined"
    screenshot(page, "console-hostile-text.png")
    visit.assert_clean()


# ---- 5. time left turns amber, then red --------------------------------------------------------

def test_time_left_is_amber_near_the_deadline_and_red_past_it(visit: Visit, live: Live) -> None:
    late = new_case(live, CRISIS, "+15555550151")
    near = new_case(live, "he took my passport and I cannot leave the farm", "+15555550152")
    fresh = new_case(live, "I think my neighbour's nanny is not allowed to leave", "+15555550153")
    set_clock(live.rt, late, timedelta(hours=2), -timedelta(minutes=10))
    set_clock(live.rt, near, timedelta(hours=2), timedelta(minutes=10))
    set_clock(live.rt, fresh, timedelta(minutes=1), timedelta(hours=2))
    page = visit.page
    visit.login("advocate1")

    order = [t.strip() for t in page.locator("#queue tbody tr td:nth-child(2)").all_inner_texts()]
    assert order == [late, near, fresh]  # most pressing deadline first
    red, amber, ok = (queue_row(page, n) for n in (late, near, fresh))
    assert red.get_attribute("class") == "t-red"
    assert amber.get_attribute("class") == "t-amber"
    assert ok.get_attribute("class") == "t-ok"
    assert cells(red)[0].startswith("-10m") or cells(red)[0].startswith("-11m")
    assert cells(amber)[0] in ("10m", "9m")

    def look(row: Any) -> dict[str, str]:
        return row.locator("td.left").evaluate(
            "td => ({bg: getComputedStyle(td).backgroundColor, after: getComputedStyle(td, '::after').content})")
    assert look(red) == {"bg": "rgb(253, 226, 226)", "after": '" late"'}
    assert look(amber) == {"bg": "rgb(255, 243, 214)", "after": '" soon"'}
    assert look(ok)["after"] == "none"
    screenshot(page, "console-queue-time-left.png")
    visit.assert_clean()


# ---- 6. referral search -------------------------------------------------------------------------

def test_referral_search_is_prefilled_from_the_case_and_lists_organisations(visit: Visit, live: Live) -> None:
    number = new_case(live, "he took my passport, I need a shelter tonight, I am near zip 10001",
                      "+15555550161")
    page = visit.page
    visit.login("advocate1")
    visit.goto(f"/console/cases/{number}")
    form = page.locator("#referral-search")
    assert form.locator("input[name=zip]").input_value() == "10001"
    assert form.locator("input[name=service][value=shelter_emergency]").is_checked()
    assert not form.locator("input[name=service][value=legal]").is_checked()

    with page.expect_response(lambda r: "/api/referrals?" in r.url) as answer:
        form.locator("button[type=submit]").click()
    resp = answer.value
    assert resp.status == 200
    assert "zip=10001" in resp.url and "service=shelter_emergency" in resp.url
    results = resp.json()["results"]
    assert results, "the bundled directory has shelters near ZIP 10001"
    items = page.locator("#referral-results ol.referrals > li")
    items.first.wait_for()
    assert items.count() == len(results)
    names = items.locator("strong").all_inner_texts()
    assert names == [r["organisation"]["name"] for r in results]
    first = items.first.inner_text()
    assert re.search(r"· \d+ mi", first) and "shelter_emergency" in first
    assert page.url.endswith(f"/console/cases/{number}")  # the search did not leave the case
    screenshot(page, "console-referrals.png")

    # A place the directory cannot find is named in the results area, not a blank list.
    form.locator("input[name=zip]").fill("00000")
    form.locator("button[type=submit]").click()
    page.locator("#referral-results p.error").wait_for()
    assert page.locator("#referral-results p.error").inner_text().strip() != ""
    visit.assert_clean(expected=("status of 400",))


# ---- 7. roles ---------------------------------------------------------------------------------

def test_supervisor_lands_on_the_dashboard_and_an_analyst_cannot_open_a_case(
        browser: Any, visit: Visit, live: Live) -> None:
    number = new_case(live, CRISIS, "+15555550171")
    page = visit.page
    visit.login("supervisor1")
    assert page.url.endswith("/console/dashboard")
    assert page.locator("h1").inner_text() == "Supervisor dashboard"
    assert page.locator("#crisis-count").inner_text() == "1"
    page.locator("section[aria-label='Unacknowledged crises'] a", has_text=number).wait_for()
    screenshot(page, "console-dashboard.png")
    visit.assert_clean()

    analyst = Visit(browser, live.base)
    try:
        apage = analyst.page
        analyst.goto(f"/console/cases/{number}")  # typed into the address bar
        assert "/console/login" in apage.url
        analyst.login("analyst1")
        assert apage.url.endswith(f"/console/cases/{number}")
        assert apage.locator("h1").inner_text() == "403"
        assert apage.locator("#error-message").inner_text() == "Your role does not allow this page or action."
        resp = analyst.goto(f"/console/cases/{number}")
        assert resp.status == 403
        body = apage.content()
        assert "locked me in" not in body and number not in apage.locator("body").inner_text()
        assert apage.locator("nav a", has_text="Queues").count() == 0
        screenshot(apage, "console-analyst-403.png")
        resp = analyst.goto(f"/console/api/cases/{number}")
        assert resp.status == 403 and "locked me in" not in apage.content()
        analyst.assert_clean(expected=("status of 403",))
    finally:
        analyst.close()
