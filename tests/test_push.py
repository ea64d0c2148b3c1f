"""Push (PROTOCOL.md, "Push") end to end on one server process, on SQLite and PostgreSQL.

Every connection here asks for pushes as it logs in; tests/test_mtp_lockstep.py holds the
connections that do not.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.support import (
    Client,
    ServerProcess,
    fence,
    pushes_before_answer,
    pushes_through,
)

pytestmark = pytest.mark.anyio


@pytest.fixture
async def alice(server: ServerProcess) -> AsyncIterator[Client]:
    client = await Client.connect(server.url)
    await client.register("alice", push=True)
    yield client
    await client.close()


@pytest.fixture
async def bob(server: ServerProcess) -> AsyncIterator[Client]:
    client = await Client.connect(server.url)
    await client.register("bob", push=True)
    yield client
    await client.close()


def events(pushes: list[dict[str, Any]]) -> list[str]:
    return [push["meta"]["event"] for push in pushes]


async def login(server: ServerProcess, user: Client, push: bool = True) -> Client:
    """Another connection of the same user (a second device), asking for pushes."""
    client = await Client.connect(server.url)
    reply = await client.call("authentication", auth=False,
                              meta={"push": push},
                              user=[{"login": user.login, "password": "secret-password"}])
    assert reply["errors"]["code"] == 200, reply
    client.uuid = reply["data"]["user"][0]["uuid"]
    client.auth_id = reply["data"]["user"][0]["auth_id"]
    client.login = user.login
    return client


def check_push(push: dict[str, Any], event: str | None = None) -> dict[str, Any]:
    assert set(push) == {"type", "data", "errors", "jsonapi", "meta"}
    assert push["type"] == "get_update"
    assert push["meta"]["push"] is True and set(push["meta"]) == {"push", "event"}
    assert event is None or push["meta"]["event"] == event, push
    assert push["errors"]["code"] == 200 and push["errors"]["status"] == "OK"
    assert push["jsonapi"] == {"version": "1.0", "revision": "17"}
    assert isinstance(push["data"]["time"], int)
    return push["data"]  # type: ignore[no-any-return]


async def test_every_change_reaches_every_member_connection_once(
        server: ServerProcess, alice: Client, bob: Client) -> None:
    bob2, bob3 = await login(server, bob), await login(server, bob)
    carol = await Client.connect(server.url)
    await carol.register("carol", push=True)
    try:
        flow = await alice.group("team", users=[bob.uuid])
        members = [alice, bob, bob2, bob3]
        for client in members:
            [push] = await pushes_through(client, flow)
            data = check_push(push, "flow_created")
            assert data["flow"][0]["uuid"] == flow
            assert sorted(data["flow"][0]["users"]) == sorted([alice.uuid, bob.uuid])

        sent = await alice.send(flow, "hello", client_id=7)
        message = sent["data"]["message"][0]["uuid"]
        edited = await bob.call("edited_message", message=[{"uuid": message, "text": "x"}])
        assert edited["errors"]["code"] == 403  # only the author edits; nothing is pushed
        edited = await alice.call("edited_message", message=[{"uuid": message, "text": "hi"}])
        assert edited["errors"]["code"] == 200
        deleted = await alice.call("delete_message", message=[{"uuid": message}])
        assert deleted["errors"]["code"] == 200

        for frames in await fence(alice, *members, flow=flow):
            assert events(frames) == [
                "message_sent", "message_edited", "message_deleted"]
            pushes = [check_push(push) for push in frames]
            assert [p["message"][0]["uuid"] for p in pushes] == [message] * 3
            texts = [p["message"][0]["text"] for p in pushes]
            assert texts == ["hello", "hi", "Message deleted"]
            assert [p["message"][0]["edited_status"] for p in pushes] == [False, True, True]
            assert pushes[0]["message"][0]["from_user"] == alice.uuid
            assert pushes[0]["message"][0]["from_flow"] == flow
        # Applying the pushes gives what a fresh read gives.
        history = await bob.call("all_messages", flow=[{"uuid": flow}])
        assert history["data"]["message"][0]["text"] == "Message deleted"
        assert await fence(alice, carol) == [[]]
    finally:
        for client in (bob2, bob3, carol):
            await client.close()


async def extended(server: ServerProcess, user: Client, extensions: list[str]
                   ) -> tuple[Client, dict[str, Any]]:
    """Another connection of `user` that asks for pushes and for these extensions."""
    client = await Client.connect(server.url)
    reply = await client.call("authentication", auth=False,
                              meta={"push": True, "extensions": extensions},
                              user=[{"login": user.login, "password": "secret-password"}])
    assert reply["errors"]["code"] == 200, reply
    client.uuid, client.auth_id = user.uuid, reply["data"]["user"][0]["auth_id"]
    client.login = user.login
    return client, reply


async def test_a_connection_asks_for_extensions_and_hears_which_it_has(
        server: ServerProcess, alice: Client) -> None:
    client, reply = await extended(server, alice, ["typing", "telepathy"])
    try:
        assert reply["meta"] == {"extensions": ["typing"]}
        assert (await client.call("ping_pong", meta={"push": True}))["meta"] is None
        nothing = await client.call("ping_pong", meta={"extensions": []})
        assert nothing["meta"] == {"extensions": []}
        for wrong in ("typing", ["x" * 65], ["typing"] * 33, [5]):
            refused = await client.call("ping_pong", meta={"extensions": wrong})
            assert refused["errors"]["code"] == 415 and refused["meta"] is None
    finally:
        await client.close()


def typists(push: dict[str, Any]) -> list[str]:
    flow = check_push(push, "typing")["flow"]
    assert len(flow) == 1 and set(flow[0]) == {"uuid", "typing"}
    return flow[0]["typing"]  # type: ignore[no-any-return]


async def test_typing_reaches_the_connections_that_asked_for_it(
        server: ServerProcess, alice: Client, bob: Client) -> None:
    flow = await alice.group("typing", users=[bob.uuid])
    await pushes_through(bob, flow)
    watcher, _ = await extended(server, bob, ["typing"])
    try:
        for typing in (True, True, False):
            reply = await alice.call("typing", flow=[{"uuid": flow, "typing": typing}])
            assert reply["errors"]["code"] == 200 and reply["data"] is None
        assert (await alice.call("typing", flow=[{"uuid": flow, "typing": True}])
                )["errors"]["code"] == 200
        await alice.send(flow, "sent: no longer typing")
        watched, plain = await fence(alice, watcher, bob, flow=flow)
        assert events(watched) == ["typing", "typing", "typing", "typing", "message_sent",
                                   "typing"]
        assert [typists(push) for push in watched if push["meta"]["event"] == "typing"] == [
            [alice.uuid], [alice.uuid], [], [alice.uuid], []]
        assert events(plain) == ["message_sent"]

        outsider = await Client.connect(server.url)
        await outsider.register("outsider")
        for frame, code in [({"uuid": flow, "typing": True}, 403), ({"uuid": flow}, 400),
                            ({"uuid": flow, "typing": "yes"}, 415)]:
            who = outsider if code == 403 else alice
            assert (await who.call("typing", flow=[frame]))["errors"]["code"] == code
        await outsider.close()
        assert await fence(alice, watcher, flow=flow) == [[]]
    finally:
        await watcher.close()


async def test_join_and_leave_are_pushed_and_end_delivery(
        server: ServerProcess, alice: Client, bob: Client) -> None:
    flow = await alice.group("open")
    assert events(await pushes_through(alice, flow)) == ["flow_created"]
    joined = await bob.call("join_flow", flow=[{"uuid": flow}])
    assert joined["errors"]["code"] == 200
    await alice.send(flow, "while bob is in")
    for pushes in await fence(alice, alice, bob, flow=flow):
        assert events(pushes) == ["flow_joined", "message_sent"]
        data = check_push(pushes[0], "flow_joined")
        assert bob.uuid in data["flow"][0]["users"]
        assert data["user"][0]["uuid"] == bob.uuid
    left = await bob.call("leave_flow", flow=[{"uuid": flow}])
    assert left["errors"]["code"] == 200
    await alice.send(flow, "after bob left", client_id=2)
    # The one who left is told too, and gets nothing of the flow after.
    to_alice, to_bob = await fence(alice, alice, bob)
    assert events(to_alice) == ["flow_left", "message_sent"]
    assert events(to_bob) == ["flow_left"]
    for push in (to_alice[0], to_bob[0]):
        assert bob.uuid not in check_push(push, "flow_left")["flow"][0]["users"]


async def test_pushes_follow_commit_order(server: ServerProcess, alice: Client,
                                          bob: Client) -> None:
    flow = await alice.group("busy", users=[bob.uuid])
    watcher = await login(server, bob)
    try:
        for client in (alice, bob):
            await pushes_through(client, flow)
        count = 40

        async def burst(client: Client, prefix: str) -> None:
            for number in range(count):
                reply = await client.send(flow, f"{prefix}{number}", client_id=number + 1)
                assert reply["errors"]["code"] == 200

        await asyncio.gather(burst(alice, "a"), burst(bob, "b"))
        history = await bob.call("all_messages", flow=[{"uuid": flow}])
        stored = [m["text"] for m in history["data"]["message"]]
        seen = [[check_push(push)["message"][0]["text"] for push in pushes]
                for pushes in await fence(alice, alice, bob, watcher, flow=flow)]
        assert seen[0] == seen[1] == seen[2]
        assert len(seen[0]) == 2 * count
        for prefix in "ab":
            mine = [text for text in seen[0] if text.startswith(prefix)]
            assert mine == [f"{prefix}{n}" for n in range(count)]
        assert stored == seen[0]
    finally:
        await watcher.close()


async def test_unbound_and_other_users_get_nothing(server: ServerProcess, alice: Client,
                                                   bob: Client) -> None:
    anonymous = await Client.connect(server.url)
    try:
        chat = await alice.call("add_flow", flow=[{"type": "chat", "title": "", "info": "",
                                                   "users": [bob.uuid]}])
        assert chat["errors"]["code"] == 200
        flow = chat["data"]["flow"][0]["uuid"]
        await alice.send(flow, "private")
        [to_bob] = await fence(alice, bob, flow=flow)
        assert events(to_bob) == ["flow_created", "message_sent"]
        assert await pushes_before_answer(anonymous) == []
    finally:
        await anonymous.close()


async def test_deleting_an_account_stops_pushes_to_its_open_connections(
        server: ServerProcess, alice: Client, bob: Client) -> None:
    flow = await alice.group("before and after", users=[bob.uuid])
    other_device = await login(server, bob)
    try:
        sent = await alice.send(flow, "while bob exists")
        message = sent["data"]["message"][0]["uuid"]
        assert events(await pushes_through(other_device, message)) == ["message_sent"]
        assert events(await pushes_through(bob, message)) == ["flow_created", "message_sent"]
        deleted = await bob.call("delete_user", auth=False,
                                 user=[{**bob.cred, "login": bob.login,
                                        "password": "secret-password"}])
        assert deleted["errors"]["code"] == 200, deleted
        await alice.send(flow, "after bob left us", client_id=2)
        await fence(alice, alice, flow=flow)
        assert await pushes_before_answer(other_device) == []
        assert await pushes_before_answer(bob) == []
        assert (await other_device.call("ping_pong"))["errors"]["code"] == 401
    finally:
        await other_device.close()
