"""manage.py testclient: request building, `send` and `chat` against a live server."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner, Result

from manage import cli
from mod.cli.frames import (
    METHODS,
    Fields,
    apply_override,
    build_request,
    parse_override,
    render,
    status_of,
)
from mod.protocol.mtp.api import Request
from tests.support import ROOT, Client, ServerProcess, free_port

PASSWORD = "secret-password"
CRED = {"uuid": "123", "auth_id": "token"}


def run(*args: str, input: str | None = None, color: bool = False) -> Result:
    return CliRunner().invoke(cli, list(args), input=input, color=color)


def send(server: ServerProcess, *args: str) -> tuple[int, dict[str, Any], str]:
    """Run `testclient send` against the server: (exit status, response, standard error)."""
    result = run("testclient", "send", "-a", server.url, *args)
    assert "Traceback" not in result.output
    response = json.loads(result.stdout) if result.stdout.strip() else {}
    return result.exit_code, response, result.stderr


async def _register(url: str, login: str, push: bool = False) -> Client:
    client = await Client.connect(url)
    await client.register(login, PASSWORD, push=push)
    return client


def setup(url: str, script: Any) -> Any:
    """Run an async set-up with MTP clients from a synchronous test (the CLI runs asyncio)."""
    async def go() -> Any:
        clients: list[Client] = []

        async def user(login: str) -> Client:
            clients.append(await _register(url, login))
            return clients[-1]
        try:
            return await script(user)
        finally:
            for client in clients:
                await client.close()
    return asyncio.run(go())


# -- building requests ------------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(METHODS))
def test_every_method_builds_a_valid_request(kind: str) -> None:
    given = Fields(login="alice", password="pw", flow="42", text="hi", message="7",
                   users=("8", "9"), title="T", info="I", time=5)
    frame = build_request(kind, given, CRED)
    Request.model_validate(frame)
    assert frame["type"] == kind
    assert frame["jsonapi"] == {"version": "1.0", "revision": "17"}
    user = frame["data"]["user"][0]
    if METHODS[kind]:
        assert (user["uuid"], user["auth_id"]) == ("123", "token")
    else:
        assert (user["login"], user["password"]) == ("alice", "pw")
        assert "auth_id" not in user


def test_method_defaults() -> None:
    sent = build_request("send_message", Fields(flow="42"), CRED)["data"]
    assert sent["flow"] == [{"uuid": "42"}]
    assert sent["message"][0]["text"] == "Hello from manage.py"
    assert isinstance(sent["message"][0]["client_id"], int)
    flow = build_request("add_flow", Fields(users=("5",)), CRED)["data"]["flow"][0]
    assert (flow["type"], flow["users"]) == ("group", ["5"])
    assert build_request("get_update", Fields(), CRED)["data"]["time"] == 0
    info = build_request("user_info", Fields(users=("5", "6")), CRED)["data"]["user"]
    assert info == [CRED, {"uuid": "5"}, {"uuid": "6"}]
    delete = build_request("delete_user", Fields(login="a", password="p"), CRED)["data"]
    assert delete["user"][0] == {**CRED, "login": "a", "password": "p"}
    edit = build_request("edited_message", Fields(message="7", text="new"), CRED)["data"]
    assert edit["message"] == [{"uuid": "7", "text": "new"}]
    ping = build_request("ping_pong", Fields(), None)["data"]
    assert ping == {"user": [{}]}


def test_overrides() -> None:
    frame = build_request("add_flow", Fields(), CRED)
    for item in ("data.flow.0.title=Hi", "--data.flow.0.info=x=y", "data.time:=17",
                 "data.message.1.text=second", "jsonapi.revision:=null", "meta.note=n"):
        apply_override(frame, parse_override(item))
    assert frame["data"]["flow"][0]["title"] == "Hi"
    assert frame["data"]["flow"][0]["info"] == "x=y"
    assert frame["data"]["time"] == 17
    assert frame["data"]["message"] == [{}, {"text": "second"}]
    assert frame["jsonapi"]["revision"] is None and frame["meta"] == {"note": "n"}
    assert parse_override("data.time=5").value == "5"
    assert parse_override("data.users:=[1, 2]").value == [1, 2]


@pytest.mark.parametrize("item", ["bogus", "=x", "a..b=1", "data.time:=not json", ":=1"])
def test_bad_overrides(item: str) -> None:
    with pytest.raises(click.UsageError):
        parse_override(item)


def test_override_cannot_go_into_a_string() -> None:
    frame = build_request("ping_pong", Fields(), CRED)
    with pytest.raises(click.UsageError, match="cannot go into"):
        apply_override(frame, parse_override("type.x=1"))
    with pytest.raises(click.UsageError, match="give an index"):
        apply_override(frame, parse_override("data.user.x=1"))


def test_render_highlights_the_status() -> None:
    good = {"type": "t", "data": None, "errors": {"code": 200, "status": "OK", "time": 1,
                                                   "detail": "\"code\": 200"}}
    shown = render(good)
    assert click.style("200", fg="green", bold=True) in shown
    assert click.style('"OK"', fg="green", bold=True) in shown
    assert json.loads(click.unstyle(shown)) == good
    bad = {**good, "errors": {**good["errors"], "code": 404, "status": "Not Found"}}
    assert click.style("404", fg="red", bold=True) in render(bad)
    assert status_of(bad) == 404 and status_of({"errors": None}) == 520
    assert json.loads(render({"odd": True})) == {"odd": True}


# -- send, against a live server --------------------------------------------------------------


def test_send_every_method(server: ServerProcess) -> None:
    async def users(user: Any) -> tuple[str, str]:
        bob = await user("bob")
        return bob.uuid, await bob.group("bob's group")
    bob_uuid, bobs_group = setup(server.url, users)
    me = ("-l", "alice", "-p", PASSWORD)

    code, reply, _ = send(server, "-t", "register_user", *me, "--username", "Alice")
    assert code == 0 and reply["errors"]["code"] == 201
    alice = reply["data"]["user"][0]["uuid"]
    code, reply, _ = send(server, "-t", "authentication", *me)
    assert code == 0 and reply["data"]["user"][0]["uuid"] == alice
    code, reply, _ = send(server, "-t", "ping_pong", *me)
    assert (code, reply["type"], reply["errors"]["code"]) == (0, "ping_pong", 200)

    code, reply, _ = send(server, "-t", "add_flow", *me, "--title", "Plain",
                          "--info", "about", "--user", bob_uuid, "data.flow.0.title=Overridden")
    flow = reply["data"]["flow"][0]
    assert code == 0 and (flow["title"], flow["info"]) == ("Overridden", "about")
    assert flow["users"] == [bob_uuid, alice] and flow["type"] == "group"
    code, reply, _ = send(server, "-t", "add_flow", *me, "--flow-type", "chat",
                          "--user", bob_uuid)
    assert code == 0 and reply["data"]["flow"][0]["type"] == "chat"

    code, reply, _ = send(server, "-t", "send_message", *me, "--flow", flow["uuid"],
                          "--text", "hello over the CLI")
    assert code == 0 and reply["type"] == "send_message" and reply["meta"] is None
    message = reply["data"]["message"][0]["uuid"]
    code, reply, _ = send(server, "-t", "edited_message", *me, "--message", message,
                          "--text", "edited over the CLI")
    assert code == 0
    code, reply, _ = send(server, "-t", "all_messages", *me, "--flow", flow["uuid"])
    assert code == 0 and [m["text"] for m in reply["data"]["message"]] == ["edited over the CLI"]
    code, reply, _ = send(server, "-t", "get_update", *me, "--time", "0")
    assert code == 0 and message in [m["uuid"] for m in reply["data"]["message"]]
    code, reply, _ = send(server, "-t", "delete_message", *me, "--message", message)
    assert code == 0
    code, reply, _ = send(server, "-t", "all_flow", *me)
    assert code == 0 and bobs_group in [f["uuid"] for f in reply["data"]["flow"]]
    code, reply, _ = send(server, "-t", "user_info", *me, "--user", bob_uuid, "-u", alice)
    assert code == 0 and {u["uuid"] for u in reply["data"]["user"]} == {bob_uuid, alice}
    code, reply, _ = send(server, "-t", "join_flow", *me, "--flow", bobs_group)
    assert code == 0 and alice in reply["data"]["flow"][0]["users"]
    code, reply, _ = send(server, "-t", "leave_flow", *me, "--flow", bobs_group)
    assert code == 0
    code, reply, _ = send(server, "-t", "delete_user", *me)
    assert code == 0 and reply["errors"]["code"] == 200
    code, reply, stderr = send(server, "-t", "ping_pong", *me)
    assert code == 1 and reply["errors"]["code"] == 401 and "failed" in stderr


def test_send_error_codes_exit_1(server: ServerProcess) -> None:
    setup(server.url, lambda user: user("carol"))
    me = ("-l", "carol", "-p", PASSWORD)
    code, reply, _ = send(server, "-t", "all_messages", *me, "--flow", "404404")
    assert (code, reply["errors"]["code"]) == (1, 404)
    code, reply, stderr = send(server, "-t", "ping_pong")
    assert (code, reply["errors"]["code"]) == (1, 401) and "needs a user" in stderr
    code, reply, stderr = send(server, "-t", "no_such_method", *me)
    assert (code, reply["errors"]["code"]) == (1, 405) and "not an MTP method" in stderr
    code, reply, _ = send(server, "-t", "ping_pong", *me, "jsonapi.version=7.0")
    assert (code, reply["errors"]["code"]) == (1, 505)
    code, reply, stderr = send(server, "-t", "all_flow", "-l", "carol", "-p", "wrong")
    assert (code, reply["type"], reply["errors"]["code"]) == (1, "authentication", 401)
    assert "Logging in as 'carol' failed" in stderr


def test_send_prompts_for_a_missing_password(server: ServerProcess) -> None:
    setup(server.url, lambda user: user("dave"))
    result = run("testclient", "send", "-a", server.url, "-t", "ping_pong", "-l", "dave",
                 input=PASSWORD + "\n")
    assert result.exit_code == 0, result.output
    assert PASSWORD not in result.output


def test_send_usage_errors_do_not_connect() -> None:
    address = f"ws://127.0.0.1:{free_port()}/ws"
    for bad in ("bogus", "--no-such-option", "data..x=1"):
        result = run("testclient", "send", "-a", address, bad)
        assert result.exit_code == 2 and "cannot reach" not in result.output


@pytest.mark.parametrize("address", ["closed port", "http://127.0.0.1/ws", "not a uri"])
def test_send_server_down_exits_2(address: str) -> None:
    if address == "closed port":
        address = f"ws://127.0.0.1:{free_port()}/ws"
    result = run("testclient", "send", "-a", address, "-t", "ping_pong", "-l", "a", "-p", "b")
    assert result.exit_code == 2
    assert "Traceback" not in result.output and result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith("Error: cannot reach the server at ")


def test_send_default_address_and_color(server: ServerProcess) -> None:
    result = run("testclient", "send", "--help")
    assert "ws://127.0.0.1:8080/ws" in result.output and "ping_pong" in result.output
    setup(server.url, lambda user: user("erin"))
    colored = run("testclient", "send", "-a", server.url, "-l", "erin", "-p", PASSWORD,
                  color=True)
    assert click.style("200", fg="green", bold=True) in colored.stdout


# -- chat -------------------------------------------------------------------------------------


def test_chat_sends_lines_and_shows_history(server: ServerProcess) -> None:
    async def users(user: Any) -> str:
        alice = await user("alice")
        await user("bob")
        flow = await alice.group("lobby")
        for number in range(3):
            await alice.send(flow, f"earlier {number}", client_id=number)
        return flow
    flow = setup(server.url, users)
    result = run("testclient", "chat", "-a", server.url, "--flow", flow, "--join",
                 "-l", "bob", "-p", PASSWORD, "--history", "2",
                 input="first line\n\n   \nsecond line\n/quit\nnot sent\n")
    assert result.exit_code == 0, result.output
    assert "Connected to" in result.stdout and "'lobby'" in result.stdout
    assert "earlier 0" not in result.stdout
    assert "alice: earlier 1" in result.stdout and "alice: earlier 2" in result.stdout

    async def texts(user: Any) -> list[str]:
        carol = await user("carol")
        await carol.call("join_flow", flow=[{"uuid": flow}])
        reply = await carol.call("all_messages", flow=[{"uuid": flow}])
        return [message["text"] for message in reply["data"]["message"]]
    assert setup(server.url, texts) == ["earlier 0", "earlier 1", "earlier 2", "first line",
                                        "second line"]


def test_chat_errors(server: ServerProcess) -> None:
    async def users(user: Any) -> str:
        owner = await user("owner")
        await user("reader")
        return str(await owner.group("news", kind="channel"))
    channel = setup(server.url, users)
    base = ("testclient", "chat", "-a", server.url, "--flow", channel)

    result = run(*base, "-l", "reader", "-p", "wrong", input="")
    assert result.exit_code == 1 and "cannot log in as 'reader'" in result.stderr
    result = run(*base, "-l", "reader", "-p", PASSWORD, input="")
    assert result.exit_code == 1 and "--join" in result.stderr
    assert "Traceback" not in result.output
    result = run(*base, "-l", "reader", "-p", PASSWORD, "--join", input="may I?\n")
    assert result.exit_code == 0 and "not sent: Only the owner" in result.stderr
    result = run("testclient", "chat", "-a", server.url, "--flow", "404", "-l", "reader",
                 "-p", PASSWORD, input="")
    assert result.exit_code == 1 and "No flow 404" in result.stderr
    result = run("testclient", "chat", "-a", f"ws://127.0.0.1:{free_port()}/ws",
                 "--flow", channel, "-l", "reader", "-p", PASSWORD, input="")
    assert result.exit_code == 2 and "cannot reach the server" in result.stderr
    assert run("testclient", "chat", "-l", "x", "-p", "y").exit_code == 2  # --flow required


async def _line_with(stream: asyncio.StreamReader, text: str, seen: list[str]) -> str:
    while True:
        raw = await asyncio.wait_for(stream.readline(), 15)
        assert raw, f"chat ended before {text!r}; it printed: {seen}"
        line = click.unstyle(raw.decode())
        seen.append(line)
        if text in line:
            return line


@pytest.mark.anyio
async def test_chat_live_both_ways(server: ServerProcess, tmp_path: Path) -> None:
    alice = await _register(server.url, "alice", push=True)
    await (await _register(server.url, "bob")).close()
    flow = await alice.group("lobby")
    await alice.send(flow, "before bob came", client_id=1)
    chat = await asyncio.create_subprocess_exec(
        sys.executable, str(ROOT / "manage.py"), "testclient", "chat", "-a", server.url,
        "--flow", flow, "--join", "-l", "bob", "-p", PASSWORD, cwd=tmp_path,
        env={**os.environ, "PYTHONUNBUFFERED": "1"}, stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    assert chat.stdin is not None and chat.stdout is not None and chat.stderr is not None
    seen: list[str] = []
    try:
        await _line_with(chat.stdout, "Connected to", seen)
        assert "alice: before bob came" in await _line_with(chat.stdout, "before bob", seen)

        chat.stdin.write("hello from the terminal ✓\n".encode())
        await chat.stdin.drain()
        while True:
            push = await alice.push(timeout=15)
            texts = [m["text"] for m in push["data"].get("message") or []]
            if "hello from the terminal ✓" in texts:
                break

        await alice.send(flow, "hi bob, welcome", client_id=2)
        line = await _line_with(chat.stdout, "hi bob, welcome", seen)
        assert "alice: hi bob, welcome" in line

        chat.stdin.write(b"/quit\n")
        await chat.stdin.drain()
        rest = (await asyncio.wait_for(chat.stdout.read(), 15)).decode()
        assert await asyncio.wait_for(chat.wait(), 15) == 0
        assert "hello from the terminal" not in "".join(seen) + rest  # not echoed back
    finally:
        if chat.returncode is None:
            chat.kill()
            await chat.wait()
        await alice.close()
    assert (await chat.stderr.read()) == b""


@pytest.mark.anyio
async def test_chat_quits_when_the_server_stops(tmp_path: Path) -> None:
    with ServerProcess(tmp_path, env={"MORELIA_DATABASE_URI": f"sqlite:{tmp_path}/c.db"}
                       ) as server:
        alice = await _register(server.url, "alice")
        flow = await alice.group("lobby")
        await alice.close()
        chat = await asyncio.create_subprocess_exec(
            sys.executable, str(ROOT / "manage.py"), "testclient", "chat", "-a", server.url,
            "--flow", flow, "-l", "alice", "-p", PASSWORD, cwd=tmp_path,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE)
        assert chat.stdout is not None and chat.stderr is not None
        await _line_with(chat.stdout, "Connected to", [])
        server.stop()
        assert await asyncio.wait_for(chat.wait(), 20) == 2
        error = (await chat.stderr.read()).decode()
        assert error.startswith("Error: the server closed the connection"), error
        assert "Traceback" not in error
