"""The console (/console) in a real headless Chromium against the local stack: log in with a
token, create a config against a real local receiver, watch it turn valid, read its test,
deactivate it; list an event's attempts, resend it, rotate a secret; errors in words; the
token kept in the tab alone. Screenshots of the main views go to test-output/console/.

A console can be newer than the API it talks to (an older stack behind it): where a route
answers the API's default "No such route.", the console says the feature is not available
there. Those tests answer the route inside the browser (Playwright's request routing) with
exactly that answer; everything else is the real local stack."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest
import requests

from devstack.receiver import Receiver
from tests.integration.console_page import DESKTOP, PHONE, Console, chromium, why_no_browser
from tests.support.stack import Client, LocalStack

if TYPE_CHECKING:
    from playwright.sync_api import Browser

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    reason = why_no_browser()
    if reason:
        pytest.skip(reason)
    with chromium() as launched:
        yield launched


@pytest.fixture
def console(browser: Browser, stack: LocalStack) -> Iterator[Console]:
    """A new tab in a new browser context (its own session storage), 1280x800."""
    context = browser.new_context(viewport=DESKTOP)
    try:
        yield Console(context.new_page(), stack.url)
    finally:
        context.close()


def api_error(client: Client, method: str, path: str, **kwargs: Any) -> str:
    """What the console must show for this request's error: "<message> (<code>)"."""
    response = requests.request(
        method, client.base + path, headers={"Authorization": f"Token {client.token}"}, timeout=30, **kwargs
    )
    assert response.status_code >= 400, response.text
    body = response.json()
    return f"{body['message']} ({body['error']})"


def route_missing(client: Client, method: str, path: str) -> bool:
    """True when the API's default route answers `path`: the route is not on this branch. The
    probe names an id that does not exist, so it changes nothing when the route is there."""
    response = requests.request(
        method, client.base + path, headers={"Authorization": f"Token {client.token}"}, timeout=30, json={}
    )
    return response.status_code == 404 and response.json() == {"error": "not-found", "message": "No such route."}


def _stand_in(console: Console, pattern: str, status: int, body: dict[str, Any], seen: list[dict[str, Any]]) -> None:
    def answer(route: Any) -> None:
        request = route.request
        seen.append({"method": request.method, "url": request.url, "body": request.post_data_json})
        route.fulfill(status=status, content_type="application/json", body=json.dumps(body))

    console.page.route(re.compile(pattern), answer)


NO_SUCH_ROUTE = {"error": "not-found", "message": "No such route."}  # the API's default route


def _route_missing_in_browser(console: Console, pattern: str) -> None:
    """Make the browser's requests matching `pattern` get the default route's answer, as from
    a stack without that route."""
    _stand_in(console, pattern, 404, NO_SUCH_ROUTE, [])


def valid_config(console: Console, client: Client, receiver: Receiver, path: str) -> tuple[str, dict[str, Any]]:
    """Create a config through the console and wait until it is valid; (its url, the API's view)."""
    url = receiver.url(path)
    console.create(url)
    console.wait_state(url, "valid")
    (config,) = [c for c in client.get("/configs/webhook", params={"limit": 100}).json()["data"] if c["url"] == url]
    return url, config


def published_event(stack: LocalStack, client: Client) -> dict[str, Any]:
    event = stack.publish(client.organisation, {"id": str(uuid.uuid4())})
    return client.wait_event(event["id"])


# -- serving ------------------------------------------------------------------------------


def test_console_page_and_files_are_served_with_strict_headers_and_no_token(stack: LocalStack) -> None:
    page = requests.get(f"{stack.url}/console", timeout=30)
    script = requests.get(f"{stack.url}/console/app.js", timeout=30)

    assert page.status_code == 200
    assert page.headers["Content-Type"] == "text/html; charset=utf-8"
    assert "script-src 'self';" in page.headers["Content-Security-Policy"]
    assert page.headers["Referrer-Policy"] == "no-referrer"
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    assert script.status_code == 200
    assert script.headers["Content-Type"] == "text/javascript; charset=utf-8"
    assert (
        requests.get(f"{stack.url}/console/app.js", headers={"If-None-Match": script.headers["ETag"]}, timeout=30)
    ).status_code == 304


def test_console_paths_cannot_reach_the_api_or_any_other_file(stack: LocalStack, dev: Client) -> None:
    """A console URL answers a static file or 404, whatever token comes with it: the console
    function reads no data (it has no access of its own)."""
    headers = {"Authorization": f"Token {dev.token}"}
    for path in ("organisation", "configs/webhook", "%2e%2e/organisation", "app.py", "index.html", "static/app.js"):
        response = requests.get(f"{stack.url}/console/{path}", headers=headers, timeout=30)
        assert response.status_code == 404, path
        assert response.text == "Not found.\n", path


# -- logging in --------------------------------------------------------------------------


def test_console_wrong_token_shows_the_apis_401_in_words(console: Console, dev: Client) -> None:
    wrong = "rwk_" + uuid.uuid4().hex + uuid.uuid4().hex[:11]
    expected = api_error(Client(dev.base, wrong, "", ""), "GET", "/key")
    console.open()
    console.shot("login-1280x800")

    console.login(wrong)

    shown = console.wait_status(r"\(unauthorized\)$")
    assert shown == f"The token was refused: {expected}"
    assert console.page.locator("#app").is_hidden()
    assert console.session_storage() == {}
    console.shot("login-refused-1280x800")


def test_console_keeps_the_token_in_session_storage_only_and_logout_forgets_it(
    console: Console, browser: Browser, fresh: Client
) -> None:
    console.logged_in(fresh.token)

    assert list(console.session_storage().values()) == [fresh.token]
    assert all(fresh.token not in url for url in console.requests)
    assert console.page.evaluate("() => localStorage.length") == 0
    assert console.page.context.cookies() == []
    console.page.reload()
    console.page.locator("#app").wait_for(state="visible")  # the same tab keeps it

    other_tab = browser.new_context().new_page()
    other_tab.goto(f"{console.base}/console")
    assert other_tab.locator("#login").is_visible()  # another tab (session) does not
    other_tab.context.close()

    console.page.get_by_role("button", name="Log out").click()
    console.wait_status("^Logged out")
    assert console.session_storage() == {}
    assert console.page.locator("#login").is_visible()


def test_console_logout_while_a_load_is_on_its_way_shows_nothing_of_it(
    console: Console, fresh: Client, receiver: Receiver
) -> None:
    """The configs list is held in the browser until after the logout; when it then arrives,
    the console neither renders it nor says "Loaded": the status stays "Logged out"."""
    url = receiver.url("/ok/console-late-load")
    assert fresh.post("/configs/webhook", json={"url": url}).status_code == 201
    console.logged_in(fresh.token)
    held: list[Any] = []
    console.page.route(re.compile(r"/configs/webhook\?limit="), lambda route: held.append(route))
    console.page.get_by_role("button", name="Refresh").click()
    for _ in range(200):  # at most 10 s for the console to ask
        if held:
            break
        console.page.wait_for_timeout(50)
    assert held, "the console never asked for its configs"

    console.page.get_by_role("button", name="Log out").click()
    console.wait_status("^Logged out")
    with console.page.expect_event("requestfinished"):
        held[0].continue_()
    console.page.evaluate("() => new Promise((resolve) => setTimeout(resolve, 300))")  # its handlers run

    assert console.status().startswith("Logged out"), console.status()
    assert console.page.locator("#configs").inner_text().strip() == ""
    assert url not in console.page.content()


# -- the main path -----------------------------------------------------------------------


def test_console_creates_a_config_watches_it_turn_valid_shows_its_test_and_deactivates_it(
    console: Console, fresh: Client, receiver: Receiver
) -> None:
    console.logged_in(fresh.token)
    url = receiver.url("/ok/console-main")

    console.create(url)

    console.wait_status(r"^Created the config for ")
    card = console.wait_state(url, "valid")
    console.wait_status(r"is valid: its test succeeded \(status 200, \d+ ms\)\.$")
    (config,) = fresh.get("/configs/webhook").json()["data"]
    assert config["url"] == url
    assert config["state"] == "valid"

    card.get_by_text("Recent tests").click()
    row = card.locator("tr[data-task]").first
    row.wait_for()
    (task,) = fresh.tasks_of(config["id"])
    assert row.get_attribute("data-task") == task["id"]
    assert row.locator("[data-field=status_code]").inner_text() == "200"
    assert row.locator("[data-field=duration]").inner_text() == f"{task['result']['duration_ms']} ms"
    assert row.locator("[data-field=excerpt]").inner_text() == "thanks"
    assert row.locator(".badge").inner_text() == "succeeded"
    console.shot("config-valid-1280x800")
    console.shot("main-1280x800-full", full_page=True)

    console.page.once("dialog", lambda dialog: dialog.accept())
    card.get_by_role("button", name="Deactivate").click()

    console.wait_state(url, "deactivated")
    console.wait_status(r"^Deactivated the config for ")
    assert fresh.get(f"/configs/webhook/{config['id']}").json()["state"] == "deactivated"
    console.shot("config-deactivated-1280x800")
    assert console.policy_violations() == []
    assert {u.split("/")[2] for u in console.requests} == {console.base.split("/")[2]}  # nothing from elsewhere


def test_console_shows_a_failing_receiver_as_invalid_with_its_status_and_excerpt(
    console: Console, fresh: Client, receiver: Receiver
) -> None:
    console.logged_in(fresh.token)
    url = receiver.url("/status/500/console")

    console.create(url)

    card = console.wait_state(url, "invalid")
    console.wait_status(r"is invalid: its test failed \(webhook-response-status, status 500, \d+ ms\)\.$")
    card.get_by_text("Recent tests").click()
    row = card.locator("tr[data-task]").first
    row.wait_for()
    assert row.locator("[data-field=status_code]").inner_text() == "500"
    assert row.locator("[data-field=error]").inner_text() == "webhook-response-status"


def test_console_shows_an_api_error_in_words_with_its_code(console: Console, fresh: Client) -> None:
    bad = "ftp://receiver.example/hooks"
    expected = api_error(fresh, "POST", "/configs/webhook", json={"url": bad})
    console.logged_in(fresh.token)

    console.create(bad)

    shown = console.wait_status(r"\(invalid-parameter\)")
    assert shown.startswith(f"Creating the config: {expected}")
    assert fresh.get("/configs/webhook").json()["total_count"] == 0


def test_console_tests_again_and_sets_the_organisation_default(
    console: Console, fresh: Client, receiver: Receiver
) -> None:
    console.logged_in(fresh.token)
    url, config = valid_config(console, fresh, receiver, "/ok/console-default")
    card = console.card(url)

    card.get_by_role("button", name="Make default").click()

    console.wait_status(r"^The organisation's default config is now ")
    assert fresh.get("/organisation").json()["webhook_config_default"] == config["id"]
    assert url in console.page.locator("#org").inner_text()
    assert card.get_by_role("button", name="Make default").count() == 0

    card.get_by_role("button", name="Test now").click()
    console.wait_status(r"^Test queued")
    console.wait_status(r"is valid: its test succeeded")
    assert len(fresh.tasks_of(config["id"])) == 2


def test_console_chart_and_events_count_deliveries_by_outcome(
    console: Console, fresh: Client, receiver: Receiver
) -> None:
    console.logged_in(fresh.token)
    valid_config(console, fresh, receiver, "/ok/console-chart")
    console.create(receiver.url("/status/503/console-chart"))
    console.wait_state(receiver.url("/status/503/console-chart"), "invalid")

    summary = console.page.locator("[data-chart-summary]")
    summary.filter(has_text="1 delivered, 1 failed, 0 pending").wait_for()
    rows = console.page.locator("#events tbody tr[data-event]")
    rows.nth(1).wait_for()
    assert rows.count() == 2
    states = sorted(rows.locator("td[data-label=State] .badge").all_inner_texts())  # the Config column has its own
    assert states == ["delivered", "failed"]
    api_states = sorted(e["state"] for e in fresh.get("/events", params={"type": "webhook_config"}).json()["data"])
    assert states == api_states
    bars = console.page.locator("#chart svg rect")
    assert bars.count() == 2  # one hour, two outcomes
    console.shot("chart-and-events-1280x800-full", full_page=True)


def _box(console: Console, selector: str) -> dict[str, float]:
    box = console.page.locator(selector).first.bounding_box()
    assert box is not None, selector
    return {"x": box["x"], "y": box["y"], "width": box["width"], "height": box["height"]}


def _overlap(a: dict[str, float], b: dict[str, float]) -> bool:
    return (
        a["x"] < b["x"] + b["width"]
        and b["x"] < a["x"] + a["width"]
        and (a["y"] < b["y"] + b["height"] and b["y"] < a["y"] + a["height"])
    )


def test_console_status_line_covers_neither_the_organisation_card_nor_what_is_scrolled_to(
    console: Console, fresh: Client
) -> None:
    console.logged_in(fresh.token)
    console.page.locator("#refresh").click()
    console.wait_status(r"^Loaded at ")

    for scrolled_to in ("#org-title", "#refresh", "#events-title"):  # each at the top of the window
        console.page.evaluate(f"() => document.querySelector('{scrolled_to}').scrollIntoView()")
        status = _box(console, "#status p")
        for part in (scrolled_to, "#refresh"):
            assert not _overlap(status, _box(console, part)), f"the status line covers {part}"
    console.page.evaluate("() => window.scrollTo(0, document.documentElement.scrollHeight)")
    last = _box(console, "#events .events, #events-empty")
    assert last["y"] + last["height"] <= _box(console, "#status p")["y"]  # the page's end scrolls above it
    console.shot("status-line-1280x800")


def test_console_default_config_deactivated_shows_its_url_and_state_not_an_id(
    console: Console, fresh: Client, receiver: Receiver
) -> None:
    url = receiver.url("/ok/console-default-off")
    config, _ = fresh.create_and_wait(url)
    assert fresh.post("/organisation", json={"webhook_config_default": config["id"]}).status_code == 200
    assert fresh.delete(f"/configs/webhook/{config['id']}").status_code == 200

    console.logged_in(fresh.token)

    default = console.page.locator("#org [data-fact=default]")
    assert url in default.inner_text()
    assert config["id"] not in default.inner_text()
    assert default.locator(".badge").inner_text() == "deactivated"
    assert "events fail unconfigured" in default.inner_text()
    console.shot("default-deactivated-1280x800")


def test_console_events_config_column_shows_every_config_as_its_url(
    console: Console, stack: LocalStack, fresh: Client, receiver: Receiver
) -> None:
    url = receiver.url("/ok/console-events-column")
    config, _ = fresh.create_and_wait(url)
    assert fresh.post("/organisation", json={"webhook_config_default": config["id"]}).status_code == 200
    event = published_event(stack, fresh)
    assert event["webhook_config"] == config["id"]
    assert fresh.delete(f"/configs/webhook/{config['id']}").status_code == 200  # no longer listed by default

    console.logged_in(fresh.token)

    column = console.page.locator(f"#events tr[data-event='{event['id']}'] td[data-label=Config]")
    column.filter(has_text=url).wait_for()
    assert config["id"] not in column.inner_text()
    assert "deactivated" in column.inner_text()


def test_console_shows_sets_and_clears_the_keys_own_config(console: Console, fresh: Client, receiver: Receiver) -> None:
    console.logged_in(fresh.token)
    key_config = console.page.locator("#org [data-fact=key-config]")
    assert "none" in key_config.inner_text()
    url, config = valid_config(console, fresh, receiver, "/ok/console-key-config")

    console.card(url).get_by_role("button", name="Use for this key").click()

    console.wait_status(r"^Events published with this key now go to ")
    assert fresh.get("/key").json()["webhook_config"] == config["id"]
    key_config.filter(has_text=url).wait_for()
    assert console.card(url).get_by_text("This key's config").count() == 1
    console.shot("key-config-1280x800")

    key_config.get_by_role("button", name="Clear").click()

    console.wait_status(r"^This key has no config of its own")
    assert fresh.get("/key").json()["webhook_config"] is None
    key_config.filter(has_text="none").wait_for()


# -- keyboard and small screens ----------------------------------------------------------


def test_console_works_from_the_keyboard_alone(console: Console, fresh: Client, receiver: Receiver) -> None:
    console.open()
    assert console.page.evaluate("() => document.activeElement.id") == "token"  # focus starts on the token
    console.page.keyboard.type(fresh.token)
    console.page.keyboard.press("Enter")
    console.wait_status(r"^Loaded at ")

    for _ in range(40):  # Tab through the controls to the create form (bounded)
        if console.page.evaluate("() => document.activeElement.id") == "create-url":
            break
        console.page.keyboard.press("Tab")
    assert console.page.evaluate("() => document.activeElement.id") == "create-url"
    url = receiver.url("/ok/console-keyboard")
    console.page.keyboard.type(url)
    console.page.keyboard.press("Enter")

    console.wait_state(url, "valid")
    console.shot("keyboard-focus-1280x800")


def test_console_fits_a_phone_width(browser: Browser, stack: LocalStack, fresh: Client, receiver: Receiver) -> None:
    context = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
    try:
        phone = Console(context.new_page(), stack.url)
        phone.open()
        phone.shot("login-390")
        phone.logged_in(fresh.token)
        url, _ = valid_config(phone, fresh, receiver, "/ok/console-phone")
        phone.card(url).get_by_text("Recent tests").click()
        phone.card(url).locator("tr[data-task]").first.wait_for()
        phone.page.locator("#events tbody tr[data-event]").first.wait_for()

        widest = phone.page.evaluate("() => document.documentElement.scrollWidth")
        assert widest <= PHONE["width"], f"the page is {widest}px wide on a {PHONE['width']}px screen"
        phone.shot("main-390-full", full_page=True)
    finally:
        context.close()


# -- attempts, resend, rotation ------------------------------------------------------------


def test_console_says_attempts_are_unavailable_where_the_route_is_missing(
    console: Console, fresh: Client, receiver: Receiver
) -> None:
    _route_missing_in_browser(console, r"/events/[^/]+/attempts")
    console.logged_in(fresh.token)
    valid_config(console, fresh, receiver, "/ok/console-attempts-missing")
    row = console.page.locator("#events tbody tr[data-event]").first
    row.wait_for()

    row.get_by_role("button", name="Attempts").click()

    note = console.page.locator("#events tr.detail .note.unavailable").first
    note.wait_for()
    assert note.inner_text() == "Delivery attempts are not available on this service yet: No such route. (not-found)"
    note.scroll_into_view_if_needed()
    console.shot("attempts-unavailable-1280x800")


def test_console_lists_an_events_attempts(console: Console, fresh: Client, receiver: Receiver) -> None:
    console.logged_in(fresh.token)
    url, _ = valid_config(console, fresh, receiver, "/ok/console-attempts")
    row = console.page.locator("#events tbody tr[data-event]").first
    row.wait_for()

    row.get_by_role("button", name="Attempts").click()

    attempt = console.page.locator("#events tr.detail tr[data-attempt]").first
    attempt.wait_for()
    assert attempt.locator("[data-field=status_code]").inner_text() == "200"
    assert attempt.locator("[data-field=excerpt]").inner_text() == "thanks"
    assert url in attempt.inner_text()
    console.shot("attempts-1280x800")


def _resend_setup(console: Console, stack: LocalStack, fresh: Client, receiver: Receiver, path: str) -> str:
    console.logged_in(fresh.token)
    _, config = valid_config(console, fresh, receiver, path)
    fresh.post("/organisation", json={"webhook_config_default": config["id"]})
    event = published_event(stack, fresh)
    assert event["state"] == "delivered"
    console.page.locator("#events-form button").click()
    console.page.locator(f"#events tr[data-event='{event['id']}']").wait_for()
    return str(event["id"])


def test_console_says_resend_is_unavailable_where_the_route_is_missing(
    console: Console, stack: LocalStack, fresh: Client, receiver: Receiver
) -> None:
    _route_missing_in_browser(console, r"/events/[^/]+/resend$")
    event_id = _resend_setup(console, stack, fresh, receiver, "/ok/console-resend-missing")

    console.page.locator(f"#events tr[data-event='{event_id}']").get_by_role("button", name="Resend").click()

    shown = console.wait_status(r"not available")
    assert shown == "Resending events is not available on this service yet: No such route. (not-found)"


def test_console_resends_a_delivered_event(
    console: Console, stack: LocalStack, fresh: Client, receiver: Receiver
) -> None:
    event_id = _resend_setup(console, stack, fresh, receiver, "/ok/console-resend")
    row = console.page.locator(f"#events tr[data-event='{event_id}']")

    row.get_by_role("button", name="Resend").click()

    console.wait_status(rf"^Event {event_id} is pending again")
    assert console.page.locator(f"#events tr[data-event='{event_id}'] .badge").inner_text() == "pending"
    assert fresh.wait_event(event_id)["state"] == "delivered"


def _rotate(console: Console, url: str) -> None:
    card = console.card(url)
    card.get_by_text("Rotate secret").click()
    console.page.once("dialog", lambda dialog: dialog.accept())
    card.get_by_role("button", name="Rotate now").click()


def test_console_says_rotation_is_unavailable_where_the_route_is_missing(
    console: Console, fresh: Client, receiver: Receiver
) -> None:
    _route_missing_in_browser(console, r"/configs/webhook/[^/]+/rotate_secret$")
    console.logged_in(fresh.token)
    url, config = valid_config(console, fresh, receiver, "/ok/console-rotate-missing")

    _rotate(console, url)

    shown = console.wait_status(r"not available")
    assert shown == "Secret rotation is not available on this service yet: No such route. (not-found)"
    card = console.card(url)
    assert card.get_by_role("button", name="Rotate now").is_disabled()
    assert fresh.get(f"/configs/webhook/{config['id']}").json()["secret"] == config["secret"]


def test_console_rotates_a_secret(console: Console, fresh: Client, receiver: Receiver) -> None:
    console.logged_in(fresh.token)
    url, config = valid_config(console, fresh, receiver, "/ok/console-rotate")

    _rotate(console, url)

    console.wait_status(r"^New signing secret made for .*; the old one keeps signing until ")
    now = fresh.get(f"/configs/webhook/{config['id']}").json()
    assert now["secret"] != config["secret"]
    assert now["previous_secret_expires"] is not None
    shown = console.card(url).locator("[data-secret]").inner_text()
    assert shown == now["secret"]


def test_the_unavailable_rule_matches_only_the_default_routes_answer(fresh: Client) -> None:
    """The console calls a feature unavailable only on the API's own 'No such route.': a
    missing event or config (404 with its own message) is an ordinary error."""
    headers = {"Authorization": f"Token {fresh.token}"}
    missing_event = requests.get(f"{fresh.base}/events/{uuid.uuid4()}", headers=headers, timeout=30)

    assert missing_event.status_code == 404
    assert missing_event.json()["message"] != "No such route."
    assert re.search(r"\broute\b", missing_event.json()["message"]) is None
    assert route_missing(fresh, "GET", f"/nothing/{uuid.uuid4()}")


# -- answers of the documented shapes the real stack does not easily give -------------------
# A hostile excerpt, a refused resend, a chosen overlap: answered inside the browser with
# bodies of the documented shapes, so the console's handling of each is tested exactly.


def test_console_shows_attempts_of_the_documented_shape_as_text(
    console: Console, fresh: Client, receiver: Receiver
) -> None:
    console.logged_in(fresh.token)
    url, config = valid_config(console, fresh, receiver, "/ok/console-attempts-shape")
    row = console.page.locator("#events tbody tr[data-event]").first
    row.wait_for()
    event_id = str(row.get_attribute("data-event"))
    attempt: dict[str, Any] = {"resource": "attempt", "organisation": fresh.organisation, "event": event_id}
    attempt |= {"webhook_config": config["id"], "url": f"{url}/{event_id}", "duration_ms": 12}
    hostile = "<b>busy</b><script>alert(1)</script>"
    page = {
        "resource": "list",
        "data": [
            attempt
            | {"id": str(uuid.uuid4()), "status_code": 200, "error": None, "response_excerpt": "thanks"}
            | {"date_created": "2026-11-28T10:00:05.000000Z"},
            attempt
            | {"id": str(uuid.uuid4()), "status_code": 503, "error": "webhook-response-status"}
            | {"response_excerpt": hostile, "date_created": "2026-11-28T10:00:00.000000Z"},
        ],
        "has_more": False,
        "total_count": 2,
        "url": f"/events/{event_id}/attempts",
    }
    seen: list[dict[str, Any]] = []
    _stand_in(console, r"/events/[^/]+/attempts(\?|$)", 200, page, seen)

    row.get_by_role("button", name="Attempts").click()

    rows = console.page.locator("#events tr.detail tr[data-attempt]")
    rows.nth(1).wait_for()
    assert rows.locator("[data-field=status_code]").all_inner_texts() == ["200", "503"]
    assert rows.locator("[data-field=error]").all_inner_texts() == ["—", "webhook-response-status"]
    # A receiver's excerpt is text on the page, never markup.
    assert rows.locator("[data-field=excerpt]").all_inner_texts() == ["thanks", hostile]
    assert console.page.locator("#events tr.detail b, #events tr.detail script").count() == 0
    assert seen[0]["method"] == "GET"
    assert f"/events/{event_id}/attempts?limit=10" in seen[0]["url"]
    rows.nth(1).scroll_into_view_if_needed()
    console.shot("attempts-shape-1280x800")


def test_console_resend_of_the_documented_shape_and_its_invalid_state_error(
    console: Console, stack: LocalStack, fresh: Client, receiver: Receiver
) -> None:
    event_id = _resend_setup(console, stack, fresh, receiver, "/ok/console-resend-shape")
    event = fresh.get(f"/events/{event_id}").json()
    seen: list[dict[str, Any]] = []
    _stand_in(console, r"/events/[^/]+/resend$", 200, event | {"state": "pending", "date_delivered": None}, seen)
    row = console.page.locator(f"#events tr[data-event='{event_id}']")

    row.get_by_role("button", name="Resend").click()

    console.wait_status(rf"^Event {event_id} is pending again")
    assert row.locator(".badge").inner_text() == "pending"
    assert row.get_by_role("button", name="Resend").count() == 0  # a pending event cannot be resent
    assert (seen[0]["method"], seen[0]["url"]) == ("POST", f"{stack.url}/events/{event_id}/resend")

    console.page.unroute(re.compile(r"/events/[^/]+/resend$"))
    refused = {"error": "invalid-state", "message": "Only a delivered or failed event can be resent."}
    _stand_in(console, r"/events/[^/]+/resend$", 400, refused, seen)
    console.page.locator("#events-form button").click()  # the real event again: delivered
    row.get_by_role("button", name="Resend").click()
    shown = console.wait_status(r"\(invalid-state\)$")
    assert shown == "Resending the event: Only a delivered or failed event can be resent. (invalid-state)"


def test_console_rotation_of_the_documented_shape(console: Console, fresh: Client, receiver: Receiver) -> None:
    console.logged_in(fresh.token)
    url, config = valid_config(console, fresh, receiver, "/ok/console-rotate-shape")
    rotated = config | {"secret": "whsec_" + "A" * 43 + "=", "previous_secret_expires": "2026-11-29T10:00:00.000000Z"}
    seen: list[dict[str, Any]] = []
    _stand_in(console, r"/configs/webhook/[^/]+/rotate_secret$", 200, rotated, seen)
    card = console.card(url)
    card.get_by_text("Rotate secret").click()
    card.locator("select").select_option("3600")
    console.page.once("dialog", lambda dialog: dialog.accept())

    card.get_by_role("button", name="Rotate now").click()

    console.wait_status(r"^New signing secret made for .*; the old one keeps signing until ")
    assert seen[0]["body"] == {"overlap_seconds": 3600}
    assert card.locator("[data-secret]").inner_text() == rotated["secret"]
    assert card.locator(".secret-box").get_attribute("open") is not None
    assert "The previous secret still signs until" in card.locator(".secret-box").inner_text()


# -- delivery rate and recovery -----------------------------------------------------------


def valid_and_said(console: Console, client: Client, receiver: Receiver, path: str) -> tuple[str, dict[str, Any]]:
    """`valid_config`, and the status line saying so: the test's outcome is said once the
    console sees it, and would otherwise replace what a test waits to read."""
    url, config = valid_config(console, client, receiver, path)
    console.wait_status(r"is valid: its test succeeded")
    return url, config


def _delivery_box(console: Console, url: str) -> Any:
    """The config's card with its delivery box open (a re-rendered card keeps it open)."""
    card = console.card(url)
    if card.locator("details.delivery-box").get_attribute("open") is None:
        card.get_by_text("Delivery rate").click()
    return card


def test_console_sets_and_clears_a_delivery_rate(console: Console, fresh: Client, receiver: Receiver) -> None:
    console.logged_in(fresh.token)
    url, config = valid_and_said(console, fresh, receiver, "/ok/console-rate")

    card = _delivery_box(console, url)
    card.get_by_label("Deliveries a second, at most").fill("5")
    card.get_by_role("button", name="Save rate").click()

    console.wait_status(r"^Deliveries to .* are paced at 5 a second at most\.$")
    now = fresh.get(f"/configs/webhook/{config['id']}").json()
    assert (now["rate_limit"], now["state"], now["secret"]) == (5, "valid", config["secret"])
    assert "at most 5 a second" in console.card(url).get_by_text("Delivery rate").inner_text()

    card = _delivery_box(console, url)
    card.get_by_label("Deliveries a second, at most").fill("")
    card.get_by_role("button", name="Save rate").click()

    console.wait_status(r"^Deliveries to .* are no longer paced\.$")
    assert fresh.get(f"/configs/webhook/{config['id']}").json()["rate_limit"] is None


def test_console_refuses_a_rate_out_of_range_without_calling_the_api(
    console: Console, fresh: Client, receiver: Receiver
) -> None:
    console.logged_in(fresh.token)
    url, config = valid_and_said(console, fresh, receiver, "/ok/console-rate-bad")
    seen: list[dict[str, Any]] = []
    console.page.on("request", lambda request: seen.append({"method": request.method, "url": request.url}))

    card = _delivery_box(console, url)
    card.get_by_label("Deliveries a second, at most").fill("20000")
    card.get_by_role("button", name="Save rate").click()

    console.wait_status(r"^The rate is a whole number of deliveries a second from 1 to 10000")
    assert [r for r in seen if r["method"] == "POST"] == []
    assert fresh.get(f"/configs/webhook/{config['id']}").json()["rate_limit"] is None


def test_console_recovers_failed_events_and_follows_the_task(
    console: Console, fresh: Client, receiver: Receiver
) -> None:
    """The recover action against the real route: a config with no failed event in the
    window gets a recover task that ends at once, found 0."""
    console.logged_in(fresh.token)
    url, config = valid_and_said(console, fresh, receiver, "/ok/console-recover")

    card = _delivery_box(console, url)
    console.page.once("dialog", lambda dialog: dialog.accept())
    card.get_by_role("button", name="Recover").click()

    console.wait_status(r"^Recovering the failed events of ")
    console.wait_status(r"^The recover of .* succeeded: found 0, resent 0\.$")
    tasks = [t for t in fresh.tasks_of(config["id"]) if t["type"] == "webhook_config.recover"]
    assert [(t["state"], t["result"]["found"], t["result"]["resent"]) for t in tasks] == [("succeeded", 0, 0)]


def test_console_says_recovery_is_unavailable_where_the_route_is_missing(
    console: Console, fresh: Client, receiver: Receiver
) -> None:
    _route_missing_in_browser(console, r"/configs/webhook/[^/]+/recover$")
    console.logged_in(fresh.token)
    url, _ = valid_and_said(console, fresh, receiver, "/ok/console-recover-missing")

    card = _delivery_box(console, url)
    console.page.once("dialog", lambda dialog: dialog.accept())
    card.get_by_role("button", name="Recover").click()

    shown = console.wait_status(r"not available")
    assert shown == "Recovering failed events is not available on this service yet: No such route. (not-found)"
    assert _delivery_box(console, url).get_by_role("button", name="Recover").is_disabled()
