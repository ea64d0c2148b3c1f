"""Logs: uvicorn's lines take the server's form (text or JSON, one event a line) under plain
uvicorn and manage.py runserver alike, and no password, token or auth_id is ever written."""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from loguru import logger

from mod.config.validator import Logging
from mod.log_handler import redact, setup_logging
from tests.support import ROOT, Client, ServerProcess, free_port, http_client

pytestmark = pytest.mark.anyio

TEXT_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} \| [A-Z]+ +\| \S+:\S+:\d+ - ")


@pytest.fixture
def captured() -> Iterator[list[str]]:
    lines: list[str] = []
    setup_logging(Logging(format="json"), lines.append)
    yield lines
    logger.remove()
    logging.basicConfig(handlers=[], force=True)


def test_json_lines_carry_time_level_message_and_module(captured: list[str]) -> None:
    logger.info("braces {} stay {literal}")
    logging.getLogger("uvicorn.access").info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:1", "GET",
                                             "/x?access_token=abc&since=s1", "1.1", 200)
    try:
        raise ValueError("boom")
    except ValueError:
        logger.exception("failed")
    records = [json.loads(line) for line in captured]
    assert all(line.endswith("\n") and line.count("\n") == 1 for line in captured)
    assert [set(record) for record in records[:2]] == [{"time", "level", "message", "module"}] * 2
    assert records[0]["message"] == "braces {} stay {literal}"
    assert records[0]["level"] == "INFO" and records[0]["module"] == __name__
    assert records[1]["message"] == '127.0.0.1:1 - "GET /x?access_token=<redacted>&since=s1 ' \
                                    'HTTP/1.1" 200'
    assert records[2]["level"] == "ERROR" and "ValueError: boom" in records[2]["exception"]


def test_secret_query_parameters_are_redacted() -> None:
    assert redact("/sync?access_token=syt_x&timeout=0") == "/sync?access_token=<redacted>&timeout=0"
    assert redact("?auth_id=abc password=p TOKEN=t") == \
        "?auth_id=<redacted> password=<redacted> TOKEN=<redacted>"
    assert redact("nothing to hide") == "nothing to hide"


def test_a_bad_format_is_refused() -> None:
    assert Logging(format=" JSON ").format == "json"  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="format"):
        Logging(format="xml")  # type: ignore[arg-type]


def _wait_for(predicate: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(predicate) and predicate():
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def test_plain_uvicorn_logs_every_line_as_json(tmp_path: Path) -> None:
    env = {"MORELIA_DATABASE_URI": f"sqlite:{tmp_path / 'db.sqlite'}",
           "MORELIA_LOGGING_FORMAT": "json"}
    with ServerProcess(tmp_path, env=env) as server:
        assert httpx.get(server.http + "/").status_code == 200
        _wait_for(lambda: 'GET / HTTP/1.1' in server.log())
    lines = server.log().splitlines()
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    modules = {record["module"].split(".")[0] for record in records}
    assert {"uvicorn", "server", "mod"} <= modules
    assert any(record["message"].startswith("Started server process") for record in records)


def test_runserver_logs_uvicorn_lines_in_the_servers_form(tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "runserver.log"
    env = {"MORELIA_DATABASE_URI": f"sqlite:{tmp_path / 'db.sqlite'}", "PATH": "/usr/bin:/bin"}
    with log.open("wb") as out:
        process = subprocess.Popen([sys.executable, str(ROOT / "manage.py"), "runserver",
                                    "--port", str(port)], cwd=tmp_path, env=env, stdout=out,
                                   stderr=subprocess.STDOUT)
    try:
        _wait_for(lambda: "Application startup complete" in log.read_text(), 20)
        assert httpx.get(f"http://127.0.0.1:{port}/").status_code == 200
        _wait_for(lambda: '"GET / HTTP/1.1" 200' in log.read_text())
    finally:
        process.terminate()
        process.wait(10)
    lines = log.read_text().splitlines()
    assert lines and all(TEXT_LINE.match(line) for line in lines), lines
    assert not any(line.startswith("INFO:") for line in lines)


async def test_no_password_token_or_auth_id_is_logged(tmp_path: Path) -> None:
    mtp_password, mx_password = "mtp-pass-Q8zX", "mx-pass-W4kV"
    env = {"MORELIA_DATABASE_URI": f"sqlite:{tmp_path / 'db.sqlite'}",
           "MORELIA_LOGGING_LEVEL": "DEBUG"}
    with ServerProcess(tmp_path, env=env) as server:
        client = await Client.connect(server.url)
        try:
            await client.register("carol", mtp_password)
            reply = await client.call("authentication", auth=False,
                                      user=[{"login": "carol", "password": mtp_password}])
            auth_ids = [client.auth_id, reply["data"]["user"][0]["auth_id"]]
            await client.call("all_flow")
            await client.call("authentication", auth=False,
                              user=[{"login": "carol", "password": mtp_password + "x"}])
        finally:
            await client.close()
        async with http_client(base_url=server.http + "/_matrix/client/v3") as http:
            registered = await http.post("/register", json={
                "username": "dave", "password": mx_password, "auth": {"type": "m.login.dummy"}})
            assert registered.status_code == 200, registered.text
            login = await http.post("/login", json={
                "type": "m.login.password", "identifier": {"type": "m.id.user", "user": "dave"},
                "password": mx_password})
            assert login.status_code == 200, login.text
            tokens = [registered.json()["access_token"], login.json()["access_token"]]
            assert (await http.get("/account/whoami", params={"access_token": tokens[1]})
                    ).status_code == 200
            assert (await http.get("/account/whoami", headers={
                "Authorization": f"Bearer {tokens[0]}"})).status_code == 200
            await http.post("/login", json={"type": "m.login.password", "user": "dave",
                                            "password": mx_password + "x"})
            _wait_for(lambda: server.log().count('"GET /_matrix/client/v3/account/whoami') >= 2)
    text = server.log()
    assert "carol" in text or "POST /_matrix/client/v3/login" in text  # the log was written
    for secret in (mtp_password, mx_password, *auth_ids, *tokens):
        assert secret not in text, secret


def test_uvicorn_no_access_log_stays_off() -> None:
    access = logging.getLogger("uvicorn.access")
    kept = access.handlers, access.propagate
    access.handlers, access.propagate = [], False  # as uvicorn --no-access-log leaves it
    try:
        setup_logging(Logging())
        assert not access.hasHandlers()
    finally:
        access.handlers, access.propagate = kept
        logger.remove()
        logging.basicConfig(handlers=[], force=True)
