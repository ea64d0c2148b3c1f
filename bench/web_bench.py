"""The web client in headless Chromium: how long a flow of 1,000 messages takes to show.

    python bench/web_bench.py [--runs 5] [--messages 1000]

Starts a server on a free loopback port (SQLite in a temporary directory), fills one group
with the messages over MTP, logs a browser in (Debian's chromium and chromedriver, as the
tests use them), and prints two figures, median and worst of the runs:

open    a click on the flow in the list until its latest page is rendered (two all_messages
        round trips and the rendering of 50 messages)
cold    a fresh page load of /#<flow> (the session remembered) until that page is rendered:
        the files, the connection, the flow list, then the flow

Both are read from the page's own clock (`performance.mark("morelia:flow-shown")`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support import Client, ServerProcess, frame
from tests.web_support import MISSING, Page, browser, wait_for

QUIET = {"MORELIA_LOGGING_LEVEL": "WARNING", "MORELIA_SERVER_RATE_LIMIT": "100000",
         "MORELIA_SERVER_RATE_BURST": "100000"}
SHOWN = ("return performance.getEntriesByName('morelia:flow-shown')"
         ".map((mark) => mark.startTime)")


async def seed(server: ServerProcess, count: int) -> tuple[str, str]:
    """A user and a group holding `count` messages; the user's login and the flow's uuid."""
    client = await Client.connect(server.url)
    login = "bench-reader"
    await client.register(login)
    flow = await client.group("Bench: 1,000 messages")
    for start in range(0, count, 100):
        for index in range(start, min(count, start + 100)):
            await client.ws.send(frame("send_message", {
                "user": [client.cred], "flow": [{"uuid": flow}],
                "message": [{"client_id": index, "text": f"message {index}"}]}))
        for _ in range(start, min(count, start + 100)):
            assert (await client.response())["errors"]["code"] == 200
    await client.close()
    return login, flow


def shown(driver: Any, after: float = -1.0) -> float:
    """The page's time (ms since navigation) of the first flow-shown mark after `after`."""
    return float(wait_for(lambda: next((mark for mark in driver.execute_script(SHOWN)
                                        if mark > after), None), 20, what="the flow shown"))


def measure(page: Page, flow: str, count: int, runs: int) -> dict[str, list[float]]:
    driver = page.driver
    figures: dict[str, list[float]] = {"open": [], "cold": []}
    last = f"message {count - 1}"
    for _ in range(runs):
        driver.get(page.base + "/")
        button = wait_for(lambda: driver.find_element("css selector",
                                                      f'button[data-flow="{flow}"]'))
        started = float(driver.execute_script(
            "const t = performance.now(); arguments[0].click(); return t;", button))
        figures["open"].append(shown(driver, started) - started)
        assert last in page.texts()
        driver.get(page.base + f"/#{flow}")
        figures["cold"].append(shown(driver))
        assert last in page.texts()
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--messages", type=int, default=1000)
    options = parser.parse_args()
    if MISSING:
        print("needs Debian's chromium and chromium-driver: apt-get install chromium "
              "chromium-driver")
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        env = {**QUIET, "MORELIA_DATABASE_URI": f"sqlite:{directory / 'bench.db'}"}
        with ServerProcess(directory, env=env, args=["--log-level", "warning",
                                                     "--no-access-log"]) as server:
            started = time.perf_counter()
            login, flow = asyncio.run(seed(server, options.messages))
            print(f"seeded {options.messages} messages in {time.perf_counter() - started:.1f} s")
            driver = browser()
            try:
                page = Page(driver, server.http)
                page.log_in(login, remember=True)
                figures = measure(page, flow, options.messages, options.runs)
            finally:
                driver.quit()
    for name, values in figures.items():
        print(f"{name:5}  median {statistics.median(values):6.1f} ms   worst "
              f"{max(values):6.1f} ms   ({options.runs} runs: "
              f"{json.dumps([round(value) for value in values])})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
