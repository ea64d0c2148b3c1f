"""Lighthouse 12.2.3's accessibility audit of the web client, in both languages and both
colour schemes: a real server with a conversation holding a reply, a reaction and a mention,
audited as its member sees it (bench/lighthouse/audit.mjs). Prints the scores (out of 100)
and any audit that failed.

    (cd bench/lighthouse && npm ci) && .venv/bin/python bench/lighthouse_audit.py
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support import Client, ServerProcess

HERE = Path(__file__).resolve().parent / "lighthouse"
PASSWORD = "secret-password"


async def seed(url: str) -> str:
    """A conversation of two, with a reply, a reaction and a mention; the reader's login."""
    reader, friend = await Client.connect(url), await Client.connect(url)
    await reader.register("reader", PASSWORD, username="Reader")
    await friend.register("friend", PASSWORD, username="Friend")
    flow = await reader.group("Audit", users=[friend.uuid])
    sent = await friend.send(flow, "Hello **there**, see https://example.org", client_id=1)
    first = sent["data"]["message"][0]["uuid"]
    await reader.call("send_message", flow=[{"uuid": flow}], message=[
        {"client_id": 2, "text": "A reply", "reply_to": first}])
    await reader.call("react", message=[{"uuid": first, "reaction": "👍"}])
    await friend.call("send_message", flow=[{"uuid": flow}], message=[
        {"client_id": 3, "text": "@Reader have a look", "mentions": [reader.uuid]}])
    for client in (reader, friend):
        await client.close()
    return "reader"


def main() -> None:
    if not (HERE / "node_modules").exists():
        sys.exit("run `npm ci` in bench/lighthouse first")
    with tempfile.TemporaryDirectory() as directory, ServerProcess(Path(directory)) as server:
        login = asyncio.run(seed(server.url))
        worst = 100
        for language in ("en-US", "ru-RU"):
            for scheme in ("light", "dark"):
                done = subprocess.run(["node", str(HERE / "audit.mjs"), server.http, login,
                                       PASSWORD, language, scheme], capture_output=True,
                                      text=True, timeout=300, check=False, cwd=HERE)
                lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
                if not lines:
                    sys.exit(f"lighthouse failed: {done.stderr[-2000:]}")
                result = json.loads(lines[-1])
                failed = result.pop("failed")
                worst = min(worst, *result.values())
                scores = ", ".join(f"{view} {score}" for view, score in result.items())
                print(f"{language} {scheme:5}: {scores}")
                for line in failed:
                    print(f"    failed: {line}")
        print(f"lowest accessibility score: {worst} (target 100)")


if __name__ == "__main__":
    main()
