"""The web client's accessibility: axe-core (npm, tests/js) finds no violation in any of its
views and dialogs, in both languages and both colour schemes, in headless Chromium."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support import Client, ServerProcess, running_server, unique_login
from tests.test_matrix_support import JS
from tests.web_support import Page, action, browser, console_errors, needs_browser, wait_for

AXE = JS / "node_modules" / "axe-core" / "axe.min.js"
pytestmark = [needs_browser, pytest.mark.slow,
              pytest.mark.skipif(not AXE.exists(), reason="tests/js has no axe-core: run "
                                                          "`npm ci` there (make test does)")]


@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with running_server("sqlite", tmp_path_factory.mktemp("a11y"), in_process=True) as server:
        yield server


@pytest.fixture(scope="module", params=["en-US", "ru-RU"])
def driver(request: pytest.FixtureRequest) -> Iterator[Any]:
    opened = browser(language=request.param)
    try:
        yield opened
    finally:
        opened.quit()


def scheme(driver: Any, dark: bool) -> None:
    driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": [
        {"name": "prefers-color-scheme", "value": "dark" if dark else "light"}]})


def violations(driver: Any, where: str) -> list[str]:
    """What axe-core finds wrong in the page as it is now, one line per rule and element."""
    if not driver.execute_script("return typeof window.axe === 'object'"):
        driver.execute_script(AXE.read_text())
    found = driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "axe.run(document).then((r) => done(JSON.stringify(r.violations)),"
        " (e) => done(JSON.stringify([{id: 'axe failed', help: String(e), nodes: []}])));")
    return [f"{where}: {item['id']} ({item['help']}) at {node['target']}"
            for item in json.loads(found) for node in item["nodes"] or [{"target": "-"}]]


def in_both_schemes(driver: Any, where: str) -> list[str]:
    """The violations of the page as it is now, in the light scheme and in the dark one."""
    found = []
    for dark in (False, True):
        scheme(driver, dark)
        found += violations(driver, f"{where} ({'dark' if dark else 'light'})")
    return found


def test_no_violations_in_any_view(web: ServerProcess, driver: Any) -> None:
    driver.get(web.http + "/status")
    driver.execute_script("sessionStorage.clear(); localStorage.clear();")
    console_errors(driver)
    page = Page(driver, web.http).open()
    found = in_both_schemes(driver, "login")
    page.css("#auth-switch").click()
    found += in_both_schemes(driver, "registration")

    page.register(unique_login("a11y"), username="Ally")
    page.create("group", "Accessible")
    page.open_flow("Accessible")
    found += in_both_schemes(driver, "empty conversation")
    page.say("> a quote\n**Bold**, *italic*, `code` and https://example.org/page")
    wait_for(lambda: page.all("#messages .message[data-uuid] blockquote"), what="formatting")
    page.say("Hello, is this readable?")
    page.sees("Hello, is this readable?")
    action(page, "Hello, is this readable?", "reply")
    page.say("A reply, quoting it")
    page.sees("A reply, quoting it")
    action(page, "A reply, quoting it", "react")
    wait_for(lambda: page.css("#react-dialog").is_displayed(), what="the reaction picker")
    found += in_both_schemes(driver, "#react-dialog")
    page.css("#react-picks button").click()
    wait_for(lambda: page.all("#messages .reactions button"), what="a reaction")
    action(page, "A reply, quoting it", "reply")
    asyncio.run(_member_joins(web, driver.execute_script("return location.hash.slice(1)")))
    page.css("#text").send_keys("@")
    wait_for(lambda: page.all("#mention-list [role=option]"), what="a member offered")
    found += in_both_schemes(driver, "conversation, with a reply, a reaction, replying")
    page.css("#cancel-reply").click()
    page.type("#flow-filter", "readable")
    wait_for(lambda: page.css("#search-messages").is_displayed(), what="the offer to search")
    found += in_both_schemes(driver, "conversations filtered")
    page.css("#search-messages").click()
    wait_for(lambda: page.all("#results-list mark"), what="a message found")
    found += in_both_schemes(driver, "messages found")
    page.css("#results-close").click()
    for button, dialog in [("#new-flow", "#new-dialog"), ("#browse", "#browse-dialog"),
                           ("#members-button", "#members-dialog"),
                           ("#settings", "#settings-dialog")]:
        page.css(button).click()
        wait_for(lambda dialog=dialog: page.css(dialog).is_displayed(), what=dialog)
        found += in_both_schemes(driver, dialog)
        driver.execute_script("arguments[0].close()", page.css(dialog))
    assert not found, "\n".join(found)
    assert console_errors(driver) == []


async def _member_joins(web: ServerProcess, flow: str) -> None:
    """Another member, so that "@" has someone to offer."""
    client = await Client.connect(web.url)
    try:
        await client.register(unique_login("member"), username="Member")
        joined = await client.call("join_flow", flow=[{"uuid": flow}])
        assert joined["errors"]["code"] == 200, joined
    finally:
        await client.close()
