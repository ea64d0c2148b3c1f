"""manage.py user, flow and registration-token: the commands, and what a running server's
clients see of them (MTP and Matrix)."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import nio
import pytest
import websockets

from mod.db import dbhandler
from tests.support import (
    REDIS_URI,
    Client,
    ServerProcess,
    http_client,
    pushes_through,
    unique_login,
    write_database,
)
from tests.test_manage import fails, ok, run

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

SERVER_NAME = "morelia.test"
PASSWORD = "secret-password"


@pytest.fixture
def env(db_uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """manage.py and the server on one fresh database; the server polls the log quickly."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MORELIA_CONFIG", raising=False)
    monkeypatch.setenv("MORELIA_DATABASE_URI", db_uri)
    return {"MORELIA_DATABASE_URI": db_uri, "MORELIA_BROKER_CHECK_INTERVAL": "0.2",
            "MORELIA_MATRIX_SERVER_NAME": SERVER_NAME, "MORELIA_SECURITY_LOGIN_DELAY": "0"}


@pytest.fixture
def live(env: dict[str, str], tmp_path: Path) -> Iterator[ServerProcess]:
    with ServerProcess(tmp_path, env=env) as server:
        yield server


async def until(check: Callable[[], Awaitable[Any]], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = await check()
        if found or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.05)


async def closed_code(client: Client, timeout: float = 10.0) -> int | None:
    """The close code of a connection the server closes (pushes before it are skipped)."""
    try:
        async with asyncio.timeout(timeout):
            while True:
                await client.ws.recv()
    except websockets.ConnectionClosed as exc:
        return exc.rcvd.code if exc.rcvd is not None else None


async def login(url: str, name: str, password: str = PASSWORD) -> dict[str, Any]:
    client = await Client.connect(url)
    try:
        return await client.call("authentication", auth=False,
                                 user=[{"login": name, "password": password}])
    finally:
        await client.close()


# -- the commands -----------------------------------------------------------------------------


def test_user_commands(env: dict[str, str]) -> None:
    ok("db", "create")
    ok("superuser-create", "-l", "admin", "--username", "Admin", "-p", "pw")
    ok("db", "user-create", "-l", "bob", "--username", "Bob", "-p", "pw")
    listed = ok("user", "list").output.splitlines()
    assert listed[0].split() == ["LOGIN", "USERNAME", "CREATED", "(UTC)", "SUPERUSER", "LOCKED"]
    assert listed[1].split()[:2] == ["admin", "Admin"] and listed[1].split()[-2:] == ["yes", "no"]
    assert listed[2].split()[-2:] == ["no", "no"]
    assert "locked" in ok("user", "lock", "bob").output
    assert ok("user", "list").output.splitlines()[2].split()[-2:] == ["no", "yes"]
    ok("user", "unlock", "bob")
    ok("user", "promote", "bob")
    assert ok("user", "list").output.splitlines()[2].split()[-2:] == ["yes", "no"]
    ok("user", "demote", "bob")
    assert ok("user", "list").output.splitlines()[2].split()[-2:] == ["no", "no"]
    ok("user", "reset-password", "bob", input="new\nnew\n")
    for command in ("lock", "unlock", "promote", "demote", "reset-password"):
        assert fails("user", command, "nobody", "--password", "x") if command == \
            "reset-password" else fails("user", command, "nobody")
    assert "no user" in fails("user", "lock", "nobody")
    assert run("user", "lock", "--help").exit_code == 0


def test_flow_and_token_commands(env: dict[str, str]) -> None:
    ok("db", "create")
    ok("superuser-create", "-l", "admin", "--username", "Admin", "-p", "pw")
    flow = ok("db", "flow-create", "--title", "Lobby").stdout.strip()
    listed = ok("flow", "list").output.splitlines()
    assert listed[1].split() == [flow, "group", "1", "no", "Lobby"]
    assert ok("flow", "members", flow).output == "admin\tAdmin (owner)\n"
    assert "no flow" in fails("flow", "members", "123")
    assert "no flow" in fails("flow", "delete", "123", "--yes")
    assert run("flow", "delete", flow, input="n\n").exit_code == 1  # asked, and refused
    ok("flow", "delete", flow, "--yes")
    assert ok("flow", "list").output.splitlines()[1:] == []

    token = ok("registration-token", "create", "--uses", "2", "--expires", "1").stdout.strip()
    assert len(token) == 16
    ok("registration-token", "create", "--token", "mine")
    assert "already exists" in fails("registration-token", "create", "--token", "mine")
    assert "characters" in fails("registration-token", "create", "--token", "no spaces")
    rows = [line.split() for line in ok("registration-token", "list").output.splitlines()[1:]]
    assert rows[0][:3] == [token, "0", "2"] and rows[1] == ["mine", "0", "-", "never"]
    ok("registration-token", "delete", "mine")
    assert "no registration token" in fails("registration-token", "delete", "mine")


# -- what clients see -------------------------------------------------------------------------


async def test_lock_closes_connections_and_refuses_logins(live: ServerProcess) -> None:
    name = unique_login("alice")
    pushed = await Client.connect(live.url)
    await pushed.register(name, push=True)
    lockstep = await Client.connect(live.url)
    reply = await lockstep.call("authentication", auth=False,
                                user=[{"login": name, "password": PASSWORD}])
    lockstep.uuid, lockstep.auth_id = pushed.uuid, reply["data"]["user"][0]["auth_id"]
    bob = await Client.connect(live.url)
    await bob.register(unique_login("bob"))
    flow = await pushed.group("kept", users=[bob.uuid])
    assert (await pushed.send(flow, "still here"))["errors"]["code"] == 200

    matrix = nio.AsyncClient(live.http, f"@{name}:{SERVER_NAME}")
    http = http_client(base_url=live.http, timeout=20)
    try:
        assert isinstance(await matrix.login(PASSWORD), nio.LoginResponse)
        first = await matrix.sync(timeout=0)
        assert isinstance(first, nio.SyncResponse)
        poll = asyncio.create_task(http.get(
            "/_matrix/client/v3/sync", params={"since": first.next_batch, "timeout": "15000"},
            headers={"Authorization": f"Bearer {matrix.access_token}"}))
        await live.until_long_polls()
        assert not poll.done()

        started = time.monotonic()
        ok("user", "lock", name)
        assert await closed_code(pushed) == 1008
        assert await closed_code(lockstep) == 1008
        ended = await asyncio.wait_for(poll, 10)
        assert ended.status_code == 401 and ended.json()["errcode"] == "M_UNKNOWN_TOKEN"
        assert time.monotonic() - started < 5

        refused = await login(live.url, name)
        assert refused["errors"]["code"] == 401 and "locked" in refused["errors"]["detail"]
        wrong = await login(live.url, name, "wrong")
        assert wrong["errors"]["code"] == 401 and "locked" not in wrong["errors"]["detail"]
        denied = await http.post("/_matrix/client/v3/login", json={
            "type": "m.login.password", "identifier": {"type": "m.id.user", "user": name},
            "password": PASSWORD})
        assert denied.status_code == 403 and denied.json()["errcode"] == "M_USER_DEACTIVATED"
        gone = await matrix.sync(timeout=0)
        assert isinstance(gone, nio.SyncError) and gone.status_code == "M_UNKNOWN_TOKEN"

        history = await bob.call("all_messages", flow=[{"uuid": flow}])
        assert [m["text"] for m in history["data"]["message"]] == ["still here"]

        ok("user", "unlock", name)
        assert (await login(live.url, name))["errors"]["code"] == 200
    finally:
        await http.aclose()
        await matrix.close()
        for client in (pushed, lockstep, bob):
            await client.close()
    assert "Traceback" not in live.log()


async def test_reset_password_revokes_tokens(live: ServerProcess) -> None:
    name = unique_login("carol")
    client = await Client.connect(live.url)
    try:
        await client.register(name)
        ok("user", "reset-password", name, "--password", "brand-new")

        async def refused() -> bool:
            reply = await client.call("ping_pong")
            return bool(reply["errors"]["code"] == 401)

        assert await until(refused)
        assert (await login(live.url, name))["errors"]["code"] == 401
        assert (await login(live.url, name, "brand-new"))["errors"]["code"] == 200
    finally:
        await client.close()


async def test_flow_delete_tells_members(live: ServerProcess) -> None:
    owner = await Client.connect(live.url)
    await owner.register(unique_login("owner"), push=True)
    name = unique_login("mx")
    matrix = nio.AsyncClient(live.http, f"@{name}:{SERVER_NAME}")
    try:
        assert isinstance(await matrix.register(name, PASSWORD), nio.RegisterResponse)
        mx_uuid = write_database(os.environ["MORELIA_DATABASE_URI"], dbhandler.user_by_login,
                                 name)["uuid"]
        flow = await owner.group("doomed", users=[mx_uuid])
        room = f"!{flow}:{SERVER_NAME}"
        first = await matrix.sync(timeout=0)
        assert isinstance(first, nio.SyncResponse) and room in first.rooms.join
        assert [push["meta"]["event"] for push in await pushes_through(owner, flow)] == [
            "flow_created"]

        ok("flow", "delete", flow, "--yes")

        async def deleted() -> list[str]:
            try:
                push = await owner.push(timeout=0.5)
            except TimeoutError:
                return []
            events.append(push["meta"]["event"])
            return events if "flow_deleted" in events else []

        events: list[str] = []
        assert await until(deleted), events
        assert events == ["flow_left", "flow_left", "flow_deleted"]  # both members leave
        later = await matrix.sync(timeout=5000, since=first.next_batch)
        assert isinstance(later, nio.SyncResponse) and room in later.rooms.leave
        listed = await owner.call("all_flow")
        assert flow not in [f["uuid"] for f in (listed["data"] or {}).get("flow", [])]
    finally:
        await matrix.close()
        await owner.close()
    assert "Traceback" not in live.log()


async def test_promote_takes_effect_on_a_running_server(live: ServerProcess) -> None:
    owner = await Client.connect(live.url)
    await owner.register(unique_login("owner"))
    carol = await Client.connect(live.url)
    await carol.register(unique_login("carol"))
    try:
        flow = await owner.group("rights", users=[carol.uuid])
        sent = await owner.send(flow, "mine")
        message = [{"uuid": sent["data"]["message"][0]["uuid"]}]
        refused = await carol.call("delete_message", message=message)
        assert refused["errors"]["code"] == 403  # her token check is cached now
        ok("user", "promote", carol.login)

        async def deleted() -> bool:
            reply = await carol.call("delete_message", message=message)
            return bool(reply["errors"]["code"] == 200)

        started = time.monotonic()
        assert await until(deleted)
        assert time.monotonic() - started < 3  # before the 5 s token cache would expire
    finally:
        await owner.close()
        await carol.close()


@pytest.mark.parametrize("broker", ["memory", "redis"])
async def test_a_lock_reaches_a_running_server_at_once(broker: str, env: dict[str, str],
                                                       tmp_path: Path) -> None:
    """Not at the server's next safety-net poll of the log (an hour here): with a shared
    broker manage.py sends a hint, and with none a server checks the log every second."""
    if broker == "redis" and not REDIS_URI:
        pytest.skip("MORELIA_TEST_REDIS_URI unset")
    if broker == "redis" and not env["MORELIA_DATABASE_URI"].startswith("postgres"):
        pytest.skip("a shared broker is for servers on PostgreSQL")
    env = {**env, "MORELIA_BROKER_CHECK_INTERVAL": "3600",
           "MORELIA_BROKER_URI": REDIS_URI if broker == "redis" else "memory://",
           "MORELIA_BROKER_CHANNEL": f"morelia_test_{uuid.uuid4().hex[:10]}"}
    with ServerProcess(tmp_path, env=env) as server:
        name = unique_login("locked")
        client = await Client.connect(server.url)
        await client.register(name, push=True)
        started = time.monotonic()
        with pytest.MonkeyPatch.context() as patch:
            for key in ("MORELIA_BROKER_URI", "MORELIA_BROKER_CHANNEL"):
                patch.setenv(key, env[key])
            ok("user", "lock", name)
        assert await closed_code(client, timeout=8) == 1008
        assert time.monotonic() - started < 5
