"""Helpers for browser tests: Debian's headless Chromium driven by selenium.

Nothing is downloaded: the browser and its driver are /usr/bin/chromium and
/usr/bin/chromedriver (the packages `chromium` and `chromium-driver`, which .ci/run installs),
given to selenium explicitly, so selenium-manager never runs.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

CHROMIUM = os.environ.get("MORELIA_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("MORELIA_TEST_CHROMEDRIVER", "/usr/bin/chromedriver")
MISSING = not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER))
needs_browser = pytest.mark.skipif(
    MISSING, reason=f"needs Debian's chromium and chromium-driver ({CHROMIUM}, {CHROMEDRIVER}): "
                    "apt-get install chromium chromium-driver (.ci/run does)")

T = TypeVar("T")


def browser(width: int = 1100, height: int = 760, language: str = "en-US") -> Any:
    """A new headless Chromium window, its console log kept for `console_errors`."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.selenium_manager import SeleniumManager

    def refuse(*args: Any) -> Any:
        raise RuntimeError("selenium-manager would download a driver: use Debian's")

    SeleniumManager.binary_paths = refuse  # type: ignore[method-assign,assignment]

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu",
                     "--disable-dev-shm-usage", "--no-first-run", "--disable-extensions",
                     f"--window-size={width},{height}", f"--lang={language}",
                     "--disable-background-networking", "--disable-component-update"):
        options.add_argument(argument)
    options.add_experimental_option("prefs", {"intl.accept_languages": language})
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_window_size(width, height)
    return driver


def console_errors(driver: Any) -> list[dict[str, Any]]:
    """The browser console's errors since the last call (the log is drained by reading it)."""
    return [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def wait_for(condition: Callable[[], T | None], timeout: float = 10.0, what: str = "") -> T:
    """Poll `condition` until it returns something truthy; return it."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = condition()
            if value:
                return value
        except Exception as exc:  # the page is changing under us: try again
            last = exc
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what or condition}: {last}")


class Page:
    """The web client in one browser window."""

    def __init__(self, driver: Any, base: str) -> None:
        self.driver = driver
        self.base = base

    def css(self, selector: str) -> Any:
        from selenium.webdriver.common.by import By
        return self.driver.find_element(By.CSS_SELECTOR, selector)

    def all(self, selector: str) -> list[Any]:
        from selenium.webdriver.common.by import By
        return list(self.driver.find_elements(By.CSS_SELECTOR, selector))

    def open(self) -> Page:
        self.driver.get(self.base + "/")
        wait_for(lambda: self.css("#login-view").is_displayed()
                 or self.css("#chat-view").is_displayed(), what="the client to start")
        return self

    def type(self, selector: str, text: str) -> None:
        field = self.css(selector)
        field.clear()
        field.send_keys(text)

    def register(self, login: str, password: str = "secret-password",
                 username: str = "") -> None:
        self.open()
        self.css("#auth-switch").click()
        self.type("#auth-login", login)
        self.type("#auth-password", password)
        if username:
            self.type("#auth-username", username)
        self.css("#auth-submit").click()
        wait_for(lambda: self.css("#chat-view").is_displayed(), what="registration")

    def log_in(self, login: str, password: str = "secret-password",
               remember: bool = False) -> None:
        self.open()
        self.type("#auth-login", login)
        self.type("#auth-password", password)
        if remember:
            self.css("#auth-remember").click()
        self.css("#auth-submit").click()
        wait_for(lambda: self.css("#chat-view").is_displayed(), what="login")

    def flow_button(self, title: str) -> Any:
        return wait_for(lambda: next((button for button in self.all("#flows button.flow")
                                      if button.find_element("css selector", ".flow-title").text
                                      == title), None), what=f"flow {title!r} in the list")

    def open_flow(self, title: str) -> None:
        # The list is drawn anew on news (a message, a read elsewhere): click again if the
        # button found went away before the click.
        wait_for(lambda: self.flow_button(title).click() or True, what=f"a click on {title!r}")
        wait_for(lambda: self.css("#flow-title").text == title, what=f"flow {title!r} open")
        wait_for(lambda: not self.all("#messages .day") or
                 self.all("#messages li")[0].text != "Loading…", what="history")

    def join(self, title: str) -> None:
        """Join a public group or channel from the browse dialog; it opens."""
        self.css("#browse").click()
        wait_for(lambda: next((item.find_element("css selector", "button")
                               for item in self.all("#public-flows li")
                               if title in item.text), None), what=f"{title!r} to join").click()
        wait_for(lambda: self.css("#flow-title").text == title, what=f"{title!r} joined")

    def create(self, kind: str, title: str = "", login: str = "") -> None:
        from selenium.webdriver.support.ui import Select
        self.css("#new-flow").click()
        Select(self.css("#new-type")).select_by_value(kind)
        if kind == "chat":
            self.type("#new-login", login)
        else:
            self.type("#new-title", title)
        self.css("#new-create").click()
        wait_for(lambda: not self.css("#new-dialog").is_displayed(), what="the flow created")

    def say(self, text: str) -> None:
        from selenium.webdriver.common.keys import Keys
        box = self.css("#text")
        for index, line in enumerate(text.split("\n")):
            if index:
                box.send_keys(Keys.SHIFT, Keys.ENTER)  # a new line, not a send
            box.send_keys(line)
        box.send_keys(Keys.ENTER)

    def texts(self) -> list[str]:
        """The texts of the open flow's messages, sent ones only (not pending), in order."""
        return [str(text) for text in self.driver.execute_script(
            "return [...document.querySelectorAll('#messages .message[data-uuid] .text')]"
            ".map((node) => node.textContent)")]

    def sees(self, text: str, timeout: float = 10.0) -> None:
        wait_for(lambda: text in self.texts(), timeout, what=f"{text!r} shown")

    def row(self, text: str) -> Any:
        return wait_for(lambda: next((row for row in self.all("#messages .message[data-uuid]")
                                      if row.find_element("css selector", ".text").text == text),
                                     None), what=f"the message {text!r}")

    def screenshot(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.driver.save_screenshot(str(path))


def action(page: Page, text: str, name: str) -> None:
    """Hover over a message and click its `name` button (edit, delete)."""
    from selenium.webdriver.common.action_chains import ActionChains
    row = page.row(text)
    ActionChains(page.driver).move_to_element(row).perform()
    covers = page.driver.execute_script(  # the buttons never hide the message they act on
        "const a = arguments[0].querySelector('.actions').getBoundingClientRect();"
        "const b = arguments[0].querySelector('.bubble').getBoundingClientRect();"
        "return a.left < b.right && b.left < a.right && a.top < b.bottom && b.top < a.bottom;",
        row)
    assert not covers, f"the {name} button covers {text!r}"
    row.find_element("css selector", f"button.{name}").click()
