"""server.py: the status page, and start-up refusing what it cannot run on."""

from __future__ import annotations

import re
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from mod import __version__
from tests.support import ROOT, Client, ServerProcess, free_port

pytestmark = pytest.mark.anyio


def status(server: ServerProcess) -> tuple[int, str, str]:
    with urllib.request.urlopen(server.http + "/status", timeout=10) as reply:
        return reply.status, reply.headers["content-type"], reply.read().decode()


def row(page: str, label: str) -> str:
    match = re.search(rf"<th>{label}</th><td>([^<]*)</td>", page)
    assert match, page
    return match.group(1)


async def test_status_page_shows_name_version_uptime_and_counts(
        server: ServerProcess, alice: Client, bob: Client) -> None:
    code, kind, page = status(server)
    assert code == 200 and kind.startswith("text/html")
    assert "<h1>Morelia Server</h1>" in page
    assert row(page, "Version") == __version__
    assert row(page, "Protocol") == "MTP 1.0 revision 17"
    assert re.fullmatch(r"\d+d \d\d:\d\d:\d\d", row(page, "Uptime"))
    assert (row(page, "Users"), row(page, "Flows"), row(page, "Messages")) == ("2", "0", "0")

    flow = await alice.group("counted", users=[bob.uuid])
    for number in range(3):
        assert (await alice.send(flow, f"m{number}", client_id=number))["errors"]["code"] == 200
    _, _, page = status(server)
    assert (row(page, "Users"), row(page, "Flows"), row(page, "Messages")) == ("2", "1", "3")
    assert row(page, "Connections") == "2"


def test_status_page_escapes_the_configured_name(tmp_path: Path) -> None:
    env = {"MORELIA_SERVER_NAME": "<b>Ours</b> & co"}
    with ServerProcess(tmp_path, env=env) as server:
        _, _, page = status(server)
    assert "<h1>&lt;b&gt;Ours&lt;/b&gt; &amp; co</h1>" in page


@pytest.mark.parametrize(("uri", "said"), [
    ("sqlite:/no/such/directory/morelia.db", "there is no directory /no/such/directory"),
    ("postgres://nobody@127.0.0.1:{port}/nothing", "connection"),
])
def test_an_unreachable_database_stops_start_up_with_one_line(
        tmp_path: Path, uri: str, said: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "uvicorn", "server:app", "--app-dir", str(ROOT),
         "--port", str(free_port())],
        cwd=tmp_path, capture_output=True, text=True, timeout=30,
        env={"PATH": "/usr/bin:/bin", "MORELIA_DATABASE_URI": uri.format(port=free_port())},
    )
    assert result.returncode == 1
    [line] = [text for text in result.stderr.splitlines() if "cannot start" in text]
    assert line.startswith("Morelia Server cannot start: [DATABASE] URI: ")
    assert said in line
    assert "Traceback" not in result.stderr
