"""Invite-only flows over both protocols: Matrix private presets, DMs and `invite` join rules,
MTP `private` groups and channels. Non-members do not see them, cannot join them without an
invitation and cannot read them; public groups and channels stay open to all."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import nio
import pytest

from tests.inprocess import AppServer
from tests.support import Client, expect_reply, write_database
from tests.test_matrix_support import SERVER_NAME, Matrix

pytestmark = pytest.mark.anyio

V3 = "/_matrix/client/v3"
MTP_PASSWORD = "secret-password"  # what tests.support's Client.register uses

PRIVATE_ROOMS: dict[str, dict[str, Any]] = {
    "private_chat": {"preset": nio.RoomPreset.private_chat},
    "trusted_private_chat": {"preset": nio.RoomPreset.trusted_private_chat},
    "is_direct": {"is_direct": True},
    "join_rules_invite": {"initial_state": [{"type": "m.room.join_rules", "state_key": "",
                                              "content": {"join_rule": "invite"}}]},
}
PUBLIC_ROOMS: dict[str, dict[str, Any]] = {
    "no_preset": {},
    "public_chat": {"preset": nio.RoomPreset.public_chat},
    "join_rules_public": {"preset": nio.RoomPreset.private_chat,
                          "initial_state": [{"type": "m.room.join_rules", "state_key": "",
                                             "content": {"join_rule": "public"}}]},
}


def flow_of(room: str) -> str:
    return room[1:].split(":", 1)[0]


def room_of(flow: str) -> str:
    return f"!{flow}:{SERVER_NAME}"


async def matrix_as(mx: Matrix, mtp: Client) -> nio.AsyncClient:
    """A Matrix client logged in as the user of an MTP client."""
    client = mx.client(mtp.login)
    response = await client.login(MTP_PASSWORD)
    assert isinstance(response, nio.LoginResponse), response
    return client


async def all_flow(client: Client) -> dict[str, dict[str, Any]]:
    reply = await client.call("all_flow")
    if reply["errors"]["code"] == 404:
        return {}
    return {flow["uuid"]: flow for flow in expect_reply(reply, "all_flow", 200)["data"]["flow"]}


async def listed(mx: Matrix, token: str, room: str) -> tuple[bool, bool]:
    """Whether a room is in the public room directory: (GET, POST)."""
    got = await mx.raw("GET", f"{V3}/publicRooms", params={"limit": "1000"})
    assert got.status_code == 200, got.text
    posted = await mx.raw("POST", f"{V3}/publicRooms", token, json={"limit": 1000})
    assert posted.status_code == 200, posted.text
    return (any(entry["room_id"] == room for entry in got.json()["chunk"]),
            any(entry["room_id"] == room for entry in posted.json()["chunk"]))


async def join_rule(mx: Matrix, token: str, room: str) -> str:
    reply = await mx.raw("GET", f"{V3}/rooms/{room}/state/m.room.join_rules", token)
    assert reply.status_code == 200, reply.text
    return str(reply.json()["join_rule"])


async def assert_closed_to(mx: Matrix, outsider: Client, room: str) -> None:
    """Everything a non-member might try on an invite-only room, refused."""
    flow = flow_of(room)
    assert flow not in await all_flow(outsider)
    update = expect_reply(await outsider.call("get_update", time=0), "get_update", 200)
    assert flow not in {item["uuid"] for item in update["data"]["flow"]}
    expect_reply(await outsider.call("join_flow", flow=[{"uuid": flow}]), "join_flow", 403)
    expect_reply(await outsider.call("all_messages", flow=[{"uuid": flow}]), "all_messages",
                 403)
    matrix = await matrix_as(mx, outsider)
    assert await listed(mx, matrix.access_token, room) == (False, False)
    for path in (f"/join/{room}", f"/rooms/{room}/join"):
        reply = await mx.raw("POST", V3 + path, matrix.access_token, json={})
        assert reply.status_code == 403 and reply.json()["errcode"] == "M_FORBIDDEN", reply.text
    for path in (f"/rooms/{room}/messages", f"/rooms/{room}/state",
                 f"/rooms/{room}/joined_members"):
        reply = await mx.raw("GET", V3 + path, matrix.access_token)
        assert reply.status_code == 403 and reply.json()["errcode"] == "M_FORBIDDEN", reply.text
    assert flow not in await all_flow(outsider)  # still not a member


# -- Matrix -----------------------------------------------------------------------------------


@pytest.mark.parametrize("how", list(PRIVATE_ROOMS))
async def test_private_matrix_rooms_are_invite_only(mx: Matrix, how: str) -> None:
    alice = await mx.user("alice")
    created = await alice.room_create(name="secret", **PRIVATE_ROOMS[how])
    assert isinstance(created, nio.RoomCreateResponse), created
    room = created.room_id
    sent = await alice.room_send(room, "m.room.message", {"msgtype": "m.text", "body": "psst"},
                                 tx_id=str(uuid.uuid4()))
    assert isinstance(sent, nio.RoomSendResponse), sent
    assert await join_rule(mx, alice.access_token, room) == "invite"
    joined = (await mx.raw("GET", f"{V3}/sync", alice.access_token)).json()["rooms"]["join"]
    synced = {event["type"]: event["content"] for part in ("state", "timeline")
              for event in joined[room][part]["events"]}
    assert synced["m.room.join_rules"] == {"join_rule": "invite"}

    outsider = await mx.mtp.user("outsider")
    await assert_closed_to(mx, outsider, room)

    # With an invitation, joining works over either protocol, and the history is readable.
    guest, mtp_guest = await mx.user("guest"), await mx.mtp.user("mtpguest")
    mtp_guest_matrix_id = f"@{mtp_guest.login}:{SERVER_NAME}"
    for invitee in (guest.user_id, mtp_guest_matrix_id):
        assert isinstance(await alice.room_invite(room, invitee), nio.RoomInviteResponse)
    assert flow_of(room) in await all_flow(mtp_guest)  # the invitee sees what to join
    assert isinstance(await guest.join(room), nio.JoinResponse)
    expect_reply(await mtp_guest.call("join_flow", flow=[{"uuid": flow_of(room)}]),
                 "join_flow", 200)
    history = await guest.room_messages(room, start="", limit=50)
    assert isinstance(history, nio.RoomMessagesResponse), history
    assert "psst" in [event.source["content"].get("body") for event in history.chunk]
    reply = expect_reply(await mtp_guest.call("all_messages", flow=[{"uuid": flow_of(room)}]),
                         "all_messages", 200)
    assert [message["text"] for message in reply["data"]["message"]] == ["psst"]
    assert (await all_flow(mtp_guest))[flow_of(room)]["private"] is True


@pytest.mark.parametrize("how", list(PUBLIC_ROOMS))
async def test_public_matrix_rooms_stay_open(mx: Matrix, how: str) -> None:
    alice = await mx.user("alice")
    created = await alice.room_create(name="lobby", topic="all welcome", **PUBLIC_ROOMS[how])
    assert isinstance(created, nio.RoomCreateResponse), created
    room = created.room_id
    assert await join_rule(mx, alice.access_token, room) == "public"
    anyone = await mx.mtp.user("anyone")
    flows = await all_flow(anyone)
    assert flows[flow_of(room)]["private"] is False
    matrix = await matrix_as(mx, anyone)
    assert await listed(mx, matrix.access_token, room) == (True, True)
    assert isinstance(await matrix.join(room), nio.JoinResponse)
    assert len((await mx.raw("GET", f"{V3}/rooms/{room}/messages", matrix.access_token))
               .json()["chunk"]) > 0


async def test_public_rooms_directory_entries_search_and_pages(mx: Matrix) -> None:
    alice, bob = await mx.user("alice"), await mx.user("bob")
    word = uuid.uuid4().hex[:12]
    rooms = [await mx.room(alice, bob, name=f"{word} {index}", topic="about it")
             for index in range(3)]
    hidden = await alice.room_create(name=f"{word} hidden", preset=nio.RoomPreset.private_chat)
    assert isinstance(hidden, nio.RoomCreateResponse)
    search = {"filter": {"generic_search_term": word}}
    found = (await mx.raw("POST", f"{V3}/publicRooms", bob.access_token, json=search)).json()
    assert sorted(entry["room_id"] for entry in found["chunk"]) == sorted(rooms)
    entry = next(entry for entry in found["chunk"] if entry["room_id"] == rooms[0])
    assert entry["name"] == f"{word} 0" and entry["topic"] == "about it"
    assert entry["num_joined_members"] == 2 and entry["join_rule"] == "public"
    assert entry["world_readable"] is False and entry["guest_can_join"] is False

    pages: list[str] = []
    since: str | None = None
    for _ in range(5):
        body: dict[str, Any] = {**search, "limit": 2, **({"since": since} if since else {})}
        page = (await mx.raw("POST", f"{V3}/publicRooms", bob.access_token, json=body)).json()
        pages.extend(entry["room_id"] for entry in page["chunk"])
        since = page.get("next_batch")
        if since is None:
            break
    assert sorted(pages) == sorted(rooms)
    total = (await mx.raw("GET", f"{V3}/publicRooms")).json()["total_room_count_estimate"]
    assert total >= 3
    for query in ({"limit": "x"}, {"since": "nonsense"}):
        bad = await mx.raw("GET", f"{V3}/publicRooms", params=query)
        assert bad.status_code == 400 and bad.json()["errcode"] == "M_INVALID_PARAM", bad.text
    unauthenticated = await mx.raw("POST", f"{V3}/publicRooms", json={})
    assert unauthenticated.status_code == 401


# -- MTP --------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["group", "channel"])
async def test_private_mtp_flows_are_invite_only(mx: Matrix, kind: str) -> None:
    owner, member = await mx.mtp.user("owner"), await mx.mtp.user("member")
    reply = await owner.call("add_flow", flow=[{"type": kind, "title": "inner circle",
                                                "info": "", "users": [member.uuid],
                                                "private": True}])
    flow = expect_reply(reply, "add_flow", 200)["data"]["flow"][0]
    assert flow["private"] is True
    expect_reply(await owner.send(flow["uuid"], "for members"), "send_message", 200)
    assert (await all_flow(member))[flow["uuid"]]["private"] is True
    room = room_of(flow["uuid"])
    owner_matrix = await matrix_as(mx, owner)
    assert await join_rule(mx, owner_matrix.access_token, room) == "invite"

    outsider = await mx.mtp.user("outsider")
    await assert_closed_to(mx, outsider, room)
    invited = await mx.mtp.user("invited")
    assert isinstance(await owner_matrix.room_invite(room, f"@{invited.login}:{SERVER_NAME}"),
                      nio.RoomInviteResponse)
    expect_reply(await invited.call("join_flow", flow=[{"uuid": flow["uuid"]}]), "join_flow",
                 200)
    expect_reply(await invited.call("all_messages", flow=[{"uuid": flow["uuid"]}]),
                 "all_messages", 200)


async def test_public_mtp_flows_and_chats_say_what_they_are(mx: Matrix) -> None:
    owner, other = await mx.mtp.user("owner"), await mx.mtp.user("other")
    for private in (None, False):
        flow: dict[str, Any] = {"type": "group", "title": "open", "info": "", "users": []}
        if private is not None:
            flow["private"] = private
        made = expect_reply(await owner.call("add_flow", flow=[flow]), "add_flow", 200)
        group = made["data"]["flow"][0]
        assert group["private"] is False
        assert group["uuid"] in await all_flow(other)
        expect_reply(await other.call("join_flow", flow=[{"uuid": group["uuid"]}]),
                     "join_flow", 200)
    chat = expect_reply(await owner.call("add_flow", flow=[{
        "type": "chat", "title": "", "info": "", "users": [other.uuid], "private": False}]),
        "add_flow", 200)["data"]["flow"][0]
    assert chat["private"] is True  # a chat is invite-only by nature
    stranger = await mx.mtp.user("stranger")
    assert chat["uuid"] not in await all_flow(stranger)


async def test_bad_private_flag_gets_415(mx: Matrix) -> None:
    owner = await mx.mtp.user("owner")
    reply = await owner.call("add_flow", flow=[{"type": "group", "title": "", "info": "",
                                                "users": [], "private": "yes"}])
    expect_reply(reply, "add_flow", 415)


# -- databases made before the flag -----------------------------------------------------------


def _drop_flag(conn: Any) -> None:
    from mod.db import dbhandler

    dbhandler.create_tables(conn)
    conn.execute("ALTER TABLE flows DROP COLUMN invite_only")
    conn.execute("ALTER TABLE flows DROP COLUMN encrypted")  # added later still
    conn.execute("INSERT INTO flows (uuid, time_created, flow_type, title, info, owner) "
               "VALUES ('1234', 1, 'group', 'old group', '', '1')")


async def test_a_database_without_the_flag_still_starts(db_uri: str, tmp_path: Path) -> None:
    write_database(db_uri, _drop_flag)
    with AppServer(tmp_path, env={"MORELIA_DATABASE_URI": db_uri}) as server:
        client = await Client.connect(server.url)
        try:
            await client.register("upgrader")
            flows = await all_flow(client)
            assert flows["1234"]["private"] is False and flows["1234"]["title"] == "old group"
            made = await client.call("add_flow", flow=[{"type": "group", "title": "new",
                                                        "info": "", "users": [],
                                                        "private": True}])
            assert expect_reply(made, "add_flow", 200)["data"]["flow"][0]["private"] is True
        finally:
            await client.close()
