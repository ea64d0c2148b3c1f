"""Flows end to end: add_flow, all_flow, join_flow, leave_flow (PROTOCOL.md)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.support import (
    DATABASE_KINDS,
    Client,
    Clients,
    ServerProcess,
    expect_reply,
    running_server,
)

pytestmark = pytest.mark.anyio

FLOW_KEYS = {"uuid", "time", "type", "title", "info", "owner", "users"}


@pytest.fixture(scope="module", params=DATABASE_KINDS)
def mtp(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
        ) -> Iterator[ServerProcess]:
    with running_server(request.param, tmp_path_factory.mktemp("flows"), users=200,
                        in_process=True) as process:
        yield process


async def add_flow(client: Client, **flow: Any) -> dict[str, Any]:
    return await client.call("add_flow", flow=[{"title": "t", "info": "i", **flow}])


async def flow_uuids(client: Client) -> set[str]:
    reply = await client.call("all_flow")
    if reply["errors"]["code"] == 404:
        return set()
    return {flow["uuid"] for flow in expect_reply(reply, "all_flow", 200)["data"]["flow"]}


async def updated_flows(client: Client) -> set[str]:
    reply = expect_reply(await client.call("get_update", time=0), "get_update", 200)
    return {flow["uuid"] for flow in reply["data"]["flow"]}


async def members(client: Client, flow_uuid: str) -> list[str]:
    reply = expect_reply(await client.call("all_flow"), "all_flow", 200)
    [flow] = [flow for flow in reply["data"]["flow"] if flow["uuid"] == flow_uuid]
    return list(flow["users"])


# -- add_flow ---------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["group", "channel"])
async def test_add_flow_returns_the_whole_flow_owned_by_the_caller(clients: Clients,
                                                                   kind: str) -> None:
    alice = await clients.user("owner")
    bob = await clients.user("member")
    reply = await add_flow(alice, type=kind, title="Tea party", info="Every day at six",
                           users=[bob.uuid])
    flow = expect_reply(reply, "add_flow", 200)["data"]["flow"][0]
    assert set(flow) >= FLOW_KEYS
    assert flow["uuid"].isdigit()
    assert type(flow["time"]) is int
    assert flow["type"] == kind
    assert flow["title"] == "Tea party" and flow["info"] == "Every day at six"
    assert flow["owner"] == alice.uuid
    assert sorted(flow["users"]) == sorted([alice.uuid, bob.uuid])
    assert flow["uuid"] in await flow_uuids(bob)


async def test_the_caller_is_added_once(clients: Clients) -> None:
    alice = await clients.user("owner")
    bob = await clients.user("member")
    reply = await add_flow(alice, type="group", users=[alice.uuid, bob.uuid])
    users = expect_reply(reply, "add_flow", 200)["data"]["flow"][0]["users"]
    assert sorted(users) == sorted([alice.uuid, bob.uuid])
    reply = await add_flow(alice, type="group", users=[])
    assert expect_reply(reply, "add_flow", 200)["data"]["flow"][0]["users"] == [alice.uuid]


async def test_naming_oneself_as_owner_is_fine(clients: Clients) -> None:
    alice = await clients.user("owner")
    reply = await add_flow(alice, type="group", users=[], owner=alice.uuid)
    assert expect_reply(reply, "add_flow", 200)["data"]["flow"][0]["owner"] == alice.uuid


async def test_a_different_owner_gets_403_and_no_flow(clients: Clients) -> None:
    alice = await clients.user("owner")
    bob = await clients.user("member")
    before = await flow_uuids(bob)
    reply = await add_flow(alice, type="group", users=[bob.uuid], owner=bob.uuid)
    expect_reply(reply, "add_flow", 403)
    assert reply["data"] is None
    assert await flow_uuids(bob) == before
    assert await updated_flows(alice) == set()


@pytest.mark.parametrize("kind", ["room", "", "Group", None])
async def test_a_bad_flow_type_gets_400(clients: Clients, kind: str | None) -> None:
    alice = await clients.user("owner")
    flow: dict[str, Any] = {"users": []} if kind is None else {"type": kind, "users": []}
    expect_reply(await add_flow(alice, **flow), "add_flow", 400)
    assert await updated_flows(alice) == set()


async def test_add_flow_without_a_flow_gets_400(clients: Clients) -> None:
    alice = await clients.user("owner")
    expect_reply(await alice.call("add_flow"), "add_flow", 400)
    expect_reply(await alice.call("add_flow", flow=[]), "add_flow", 400)


async def test_a_chat_has_exactly_two_members(clients: Clients) -> None:
    alice = await clients.user("chat")
    bob = await clients.user("chat")
    carol = await clients.user("chat")
    expect_reply(await add_flow(alice, type="chat", users=[]), "add_flow", 400)
    expect_reply(await add_flow(alice, type="chat", users=[alice.uuid]), "add_flow", 400)
    reply = await add_flow(alice, type="chat", users=[bob.uuid, carol.uuid])
    expect_reply(reply, "add_flow", 400)
    assert await updated_flows(alice) == set()
    reply = await add_flow(alice, type="chat", users=[bob.uuid])
    flow = expect_reply(reply, "add_flow", 200)["data"]["flow"][0]
    assert flow["type"] == "chat" and flow["owner"] == alice.uuid
    assert sorted(flow["users"]) == sorted([alice.uuid, bob.uuid])


async def test_a_second_chat_between_the_same_users_gets_409_with_the_first(
        clients: Clients) -> None:
    alice = await clients.user("chat")
    bob = await clients.user("chat")
    first = expect_reply(await add_flow(alice, type="chat", users=[bob.uuid]), "add_flow",
                         200)["data"]["flow"][0]
    for reply in (await add_flow(bob, type="chat", users=[alice.uuid]),
                  await add_flow(alice, type="chat", users=[alice.uuid, bob.uuid])):
        expect_reply(reply, "add_flow", 409)
        [existing] = reply["data"]["flow"]
        assert existing["uuid"] == first["uuid"]
        assert sorted(existing["users"]) == sorted([alice.uuid, bob.uuid])
    assert await updated_flows(bob) == {first["uuid"]}


@pytest.mark.parametrize("kind", ["group", "channel", "chat"])
async def test_an_unknown_user_gets_404_and_writes_no_flow(clients: Clients, kind: str) -> None:
    alice = await clients.user("owner")
    bob = await clients.user("member")
    users = ["98765432109876543210"] if kind == "chat" else [bob.uuid, "98765432109876543210"]
    before_all = await flow_uuids(alice)
    reply = await add_flow(alice, type=kind, users=users)
    expect_reply(reply, "add_flow", 404)
    assert "98765432109876543210" in reply["errors"]["detail"]
    assert await flow_uuids(alice) == before_all
    assert await updated_flows(alice) == set()
    assert await updated_flows(bob) == set()


async def test_a_deleted_user_cannot_be_added(clients: Clients) -> None:
    alice = await clients.user("owner")
    gone = await clients.user("gone")
    entry = {**gone.cred, "login": gone.login, "password": "secret-password"}
    expect_reply(await gone.call("delete_user", auth=False, user=[entry]), "delete_user", 200)
    expect_reply(await add_flow(alice, type="group", users=[gone.uuid]), "add_flow", 404)
    assert await updated_flows(alice) == set()


# -- all_flow ---------------------------------------------------------------------------------


async def test_all_flow_lists_groups_channels_and_only_own_chats(clients: Clients) -> None:
    alice = await clients.user("all")
    bob = await clients.user("all")
    carol = await clients.user("all")
    group = await alice.group("open group")
    channel = await alice.group("news", kind="channel")
    alice_bob = await alice.group("ab", users=[bob.uuid], kind="chat")
    bob_carol = await bob.group("bc", users=[carol.uuid], kind="chat")

    seen_by_carol = await flow_uuids(carol)
    assert {group, channel, bob_carol} <= seen_by_carol
    assert alice_bob not in seen_by_carol
    seen_by_alice = await flow_uuids(alice)
    assert {group, channel, alice_bob} <= seen_by_alice
    assert bob_carol not in seen_by_alice

    reply = expect_reply(await carol.call("all_flow"), "all_flow", 200)
    for flow in reply["data"]["flow"]:
        assert set(flow) >= FLOW_KEYS
        if flow["type"] == "chat":
            assert carol.uuid in flow["users"]


async def test_all_flow_with_no_flows_gets_404(alice: Client) -> None:
    """On a fresh server (the conftest `server`)."""
    reply = await alice.call("all_flow")
    expect_reply(reply, "all_flow", 404)
    assert reply["data"] is None


# -- join_flow --------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["group", "channel"])
async def test_join_flow_makes_the_caller_a_member_idempotently(clients: Clients,
                                                                kind: str) -> None:
    alice = await clients.user("owner")
    bob = await clients.user("joiner")
    flow = await alice.group("joinable", kind=kind)
    for _ in range(2):
        reply = await bob.call("join_flow", flow=[{"uuid": flow}])
        expect_reply(reply, "join_flow", 200)
        assert sorted(await members(bob, flow)) == sorted([alice.uuid, bob.uuid])
    assert flow in await updated_flows(bob)
    reply = await bob.call("all_messages", flow=[{"uuid": flow}])
    expect_reply(reply, "all_messages", 200)


async def test_the_owner_joining_again_changes_nothing(clients: Clients) -> None:
    alice = await clients.user("owner")
    flow = await alice.group("mine")
    expect_reply(await alice.call("join_flow", flow=[{"uuid": flow}]), "join_flow", 200)
    assert await members(alice, flow) == [alice.uuid]


async def test_nobody_joins_a_chat(clients: Clients) -> None:
    alice = await clients.user("chat")
    bob = await clients.user("chat")
    carol = await clients.user("intruder")
    chat = await alice.group("ab", users=[bob.uuid], kind="chat")
    expect_reply(await carol.call("join_flow", flow=[{"uuid": chat}]), "join_flow", 403)
    assert chat not in await updated_flows(carol)
    reply = await carol.call("all_messages", flow=[{"uuid": chat}])
    expect_reply(reply, "all_messages", 403)


async def test_join_flow_unknown_or_unnamed_flow(clients: Clients) -> None:
    alice = await clients.user("joiner")
    expect_reply(await alice.call("join_flow", flow=[{"uuid": "31337"}]), "join_flow", 404)
    expect_reply(await alice.call("join_flow"), "join_flow", 400)
    expect_reply(await alice.call("join_flow", flow=[{"title": "x"}]), "join_flow", 400)


# -- leave_flow -------------------------------------------------------------------------------


async def test_leave_flow_ends_the_membership(clients: Clients) -> None:
    alice = await clients.user("owner")
    bob = await clients.user("leaver")
    flow = await alice.group("leavable", users=[bob.uuid])
    expect_reply(await bob.send(flow, "bye"), "send_message", 200)
    reply = await bob.call("leave_flow", flow=[{"uuid": flow}])
    assert expect_reply(reply, "leave_flow", 200)["data"] is None
    assert await members(alice, flow) == [alice.uuid]
    expect_reply(await bob.send(flow, "again?"), "send_message", 403)
    expect_reply(await bob.call("all_messages", flow=[{"uuid": flow}]), "all_messages", 403)
    assert flow not in await updated_flows(bob)
    # A group can be joined again after leaving it.
    expect_reply(await bob.call("join_flow", flow=[{"uuid": flow}]), "join_flow", 200)
    expect_reply(await bob.send(flow, "back"), "send_message", 200)


@pytest.mark.parametrize("kind", ["group", "channel"])
async def test_the_owner_cannot_leave_a_group_or_channel(clients: Clients, kind: str) -> None:
    alice = await clients.user("owner")
    flow = await alice.group("stuck", kind=kind)
    expect_reply(await alice.call("leave_flow", flow=[{"uuid": flow}]), "leave_flow", 403)
    assert await members(alice, flow) == [alice.uuid]


async def test_a_chat_member_may_leave(clients: Clients) -> None:
    alice = await clients.user("chat")
    bob = await clients.user("chat")
    chat = await alice.group("ab", users=[bob.uuid], kind="chat")
    expect_reply(await bob.call("leave_flow", flow=[{"uuid": chat}]), "leave_flow", 200)
    expect_reply(await bob.send(chat, "hello?"), "send_message", 403)
    expect_reply(await alice.call("leave_flow", flow=[{"uuid": chat}]), "leave_flow", 200)


async def test_leave_flow_unknown_or_unnamed_flow(clients: Clients) -> None:
    alice = await clients.user("leaver")
    expect_reply(await alice.call("leave_flow", flow=[{"uuid": "31337"}]), "leave_flow", 404)
    expect_reply(await alice.call("leave_flow"), "leave_flow", 400)


# -- invite_flow (an extension) ---------------------------------------------------------------


async def invite(client: Client, flow: str, users: list[str]) -> dict[str, Any]:
    return await client.call("invite_flow", flow=[{"uuid": flow, "users": users}])


async def test_an_invitation_is_pushed_listed_and_accepted(clients: Clients) -> None:
    owner = await clients.user("owner")
    guest = await clients.user("guest", push=True)
    flow = expect_reply(await add_flow(owner, type="group", private=True), "add_flow",
                        200)["data"]["flow"][0]["uuid"]
    assert flow not in await flow_uuids(guest)
    reply = expect_reply(await invite(owner, flow, [guest.uuid]), "invite_flow", 200)
    assert reply["data"] is None
    push = await guest.push()
    assert push["meta"]["event"] == "flow_invited"
    assert push["data"]["flow"][0]["uuid"] == flow
    assert push["data"]["user"] == [{"uuid": guest.uuid}]
    assert flow in await flow_uuids(guest)
    expect_reply(await guest.call("join_flow", flow=[{"uuid": flow}]), "join_flow", 200)
    assert guest.uuid in await members(owner, flow)


async def test_invite_flow_invites_all_or_none(clients: Clients) -> None:
    owner, first, second = (await clients.user("owner"), await clients.user("first"),
                            await clients.user("second"))
    flow = expect_reply(await add_flow(owner, type="group", private=True), "add_flow",
                        200)["data"]["flow"][0]["uuid"]
    expect_reply(await invite(owner, flow, [first.uuid, "no-such-user"]), "invite_flow", 404)
    expect_reply(await invite(owner, flow, [first.uuid, owner.uuid]), "invite_flow", 403)
    expect_reply(await invite(owner, flow, []), "invite_flow", 400)
    expect_reply(await invite(owner, flow, [first.uuid] * 101), "invite_flow", 400)
    expect_reply(await owner.call("invite_flow", flow=[{"uuid": flow}]), "invite_flow", 400)
    # Nobody was invited by the refused requests: the private group stays closed to them.
    expect_reply(await first.call("join_flow", flow=[{"uuid": flow}]), "join_flow", 403)
    expect_reply(await invite(owner, flow, [first.uuid, second.uuid]), "invite_flow", 200)
    for invited in (first, second):
        expect_reply(await invited.call("join_flow", flow=[{"uuid": flow}]), "join_flow", 200)
    # Declined with leave_flow: the invitation is used up.
    third = await clients.user("third")
    expect_reply(await invite(owner, flow, [third.uuid]), "invite_flow", 200)
    expect_reply(await third.call("leave_flow", flow=[{"uuid": flow}]), "leave_flow", 200)
    expect_reply(await third.call("join_flow", flow=[{"uuid": flow}]), "join_flow", 403)
