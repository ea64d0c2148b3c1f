"""Pushes and incremental syncs are enough: a client that applies them to the state it read
once holds what a fresh read returns.

MTP: a connection that asked for pushes reads `get_update` once, then applies every push it
receives while other users send, edit and delete messages, create, rename, join, leave,
invite to and delete flows, and change their profiles; at the end its state equals a fresh
`get_update` (flows, messages, the users it can see). Matrix: a client's incremental /sync
results applied to its initial /sync equal a fresh initial /sync (rooms, invitations, each
room's name, topic and members, its timeline's last event).

Each test waits for a sentinel (a last message it knows of) instead of sleeping: pushes and
/sync follow the change log's order, so once the sentinel arrived everything before it did.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import nio
import pytest

from mod.service import moderation
from tests.support import DATABASE_KINDS, Client, ServerProcess, running_server, write_database
from tests.test_matrix_support import SERVER_NAME, Matrix, matrix_session

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module", params=DATABASE_KINDS)
def replay_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
                  ) -> Iterator[ServerProcess]:
    """MTP and Matrix on one server; the hub reads the log often (operator deletions)."""
    with running_server(request.param, tmp_path_factory.mktemp("replay"), env={
            "MORELIA_MATRIX_SERVER_NAME": SERVER_NAME,
            "MORELIA_MATRIX_SYNC_TIMEOUT_MAX": "5",
            "MORELIA_BROKER_CHECK_INTERVAL": "0.2"}) as server:
        yield server


@pytest.fixture
async def mx(replay_server: ServerProcess) -> Any:
    async for matrix in matrix_session(replay_server):
        yield matrix


def room_of(flow: str) -> str:
    return f"!{flow}:{SERVER_NAME}"


def flow_of(room: str) -> str:
    return room[1:].split(":", 1)[0]


def ok(reply: dict[str, Any], code: int = 200) -> dict[str, Any]:
    assert reply["errors"]["code"] == code, reply
    return reply


# -- MTP ----------------------------------------------------------------------------------------


def public(user: dict[str, Any]) -> dict[str, Any]:
    """A profile as get_update shows it (user_info adds the login)."""
    return {key: value for key, value in user.items() if key != "login"}


class MtpState:
    """What an MTP client knows: flows it is in, their messages, the users it has seen."""

    def __init__(self, me: str, data: dict[str, Any]) -> None:
        self.me = me
        self.flows = {flow["uuid"]: flow for flow in data["flow"]}
        self.messages = {message["uuid"]: message for message in data["message"]}
        self.users = {user["uuid"]: user for user in data["user"]}

    def apply(self, push: dict[str, Any]) -> None:
        event, data = push["meta"]["event"], push["data"]
        for user in data["user"]:
            if "username" in user:  # a whole profile, not just whom the change is about
                self.users[user["uuid"]] = public(user)
        for flow in data["flow"]:
            if "title" in flow:
                self.flows[flow["uuid"]] = flow
        for message in data["message"]:
            self.messages[message["uuid"]] = message
        gone = {flow["uuid"] for flow in data["flow"]} if event == "flow_deleted" else set()
        for uuid, flow in list(self.flows.items()):
            if uuid in gone or self.me not in flow["users"]:
                del self.flows[uuid]  # deleted, left, or only invited to
        self.messages = {uuid: message for uuid, message in self.messages.items()
                         if message["from_flow"] in self.flows}

    def named(self) -> set[str]:
        """The users get_update names: the flows' members and the messages' authors."""
        named = {user for flow in self.flows.values() for user in flow["users"]}
        return named | {message["from_user"] for message in self.messages.values()}

    async def complete(self, client: Client) -> None:
        """Look up the users it sees but has no profile of (pushes name a new flow's members
        by uuid only; PROTOCOL.md, "Push"), as a client does with user_info."""
        unknown = sorted(self.named() - set(self.users))
        if unknown:
            reply = ok(await client.call("user_info", user=[{"uuid": uuid} for uuid in unknown]))
            self.users.update({user["uuid"]: public(user) for user in reply["data"]["user"]})

    def seen(self) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        """flows, messages, and the profiles of the users get_update names."""
        named = self.named()
        return self.flows, self.messages, {uuid: user for uuid, user in self.users.items()
                                           if uuid in named}


async def pushes_until(client: Client, text: str, timeout: float = 15.0
                       ) -> list[dict[str, Any]]:
    """Every push up to and including the one of the message reading `text`."""
    seen: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while True:
        push = await client.push(max(0.05, deadline - time.monotonic()))
        seen.append(push)
        if any(message.get("text") == text for message in push["data"]["message"]):
            return seen


async def test_mtp_pushes_applied_to_get_update_equal_a_fresh_get_update(
        mx: Matrix, replay_server: ServerProcess) -> None:
    me = await mx.mtp.user("me", push=True)
    other = await mx.mtp.user("other")
    third = await mx.mtp.user("third")
    lounge = await other.group("lounge", users=[me.uuid])
    first = ok(await other.send(lounge, "before the read"))["data"]["message"][0]["uuid"]
    doomed = ok(await other.send(lounge, "to be deleted", client_id=2)
                )["data"]["message"][0]["uuid"]
    state = MtpState(me.uuid, ok(await me.call("get_update", time=0))["data"])
    me.pushes.clear()
    assert lounge in state.flows and first in state.messages

    mxuser = await mx.user("mxu")

    # messages: sent, edited, deleted
    second = ok(await other.send(lounge, "after the read", client_id=3))
    second_uuid = second["data"]["message"][0]["uuid"]
    ok(await other.call("edited_message", message=[{"uuid": second_uuid, "text": "edited"}]))
    ok(await other.call("delete_message", message=[{"uuid": doomed}]))
    # flows: made with me in it, joined and left by others, left by me
    side = await other.group("side room", users=[me.uuid, third.uuid])
    ok(await third.call("leave_flow", flow=[{"uuid": side}]))
    ok(await third.call("join_flow", flow=[{"uuid": lounge}]))
    ok(await third.send(lounge, "third was here", client_id=4))
    ok(await me.call("leave_flow", flow=[{"uuid": side}]))
    # Matrix: a room I am invited to, join, that is renamed; a new name for its owner
    created = await mxuser.room_create(name="matrix room")
    assert isinstance(created, nio.RoomCreateResponse), created
    room = created.room_id
    invited = await mxuser.room_invite(room, f"@{me.login}:{SERVER_NAME}")
    assert isinstance(invited, nio.RoomInviteResponse), invited
    ok(await me.call("join_flow", flow=[{"uuid": flow_of(room)}]))
    renamed = await mxuser.room_put_state(room, "m.room.name", {"name": "renamed room"})
    assert isinstance(renamed, nio.RoomPutStateResponse), renamed
    sent = await mxuser.room_send(room, "m.room.message", {"msgtype": "m.text", "body": "hi"})
    assert isinstance(sent, nio.RoomSendResponse), sent
    # a new name, for a user whose profile the client holds by now
    for push in await pushes_until(me, "hi"):
        state.apply(push)
    await state.complete(me)
    mx_uuid = state.flows[flow_of(room)]["owner"]
    assert state.users[mx_uuid]["username"] != "New Name"
    renamed_user = await mxuser.set_displayname("New Name")
    assert isinstance(renamed_user, nio.ProfileSetDisplayNameResponse), renamed_user
    # a flow the operator deletes
    doomed_flow = await other.group("doomed", users=[me.uuid])
    ok(await other.send(doomed_flow, "gone soon", client_id=5))
    uri = replay_server.env["MORELIA_DATABASE_URI"]
    assert write_database(uri, moderation.delete_flow, doomed_flow, int(time.time()))
    # the sentinel comes after the operator's deletion in the log
    sentinel = f"sentinel {time.monotonic_ns()}"
    ok(await other.send(lounge, sentinel, client_id=6))
    deletion_seen = False

    for push in await pushes_until(me, sentinel):
        deletion_seen |= push["meta"]["event"] == "flow_deleted"
        state.apply(push)
    assert deletion_seen
    await state.complete(me)

    fresh = MtpState(me.uuid, ok(await me.call("get_update", time=0))["data"])
    flows, messages, users = state.seen()
    assert flows == fresh.flows
    assert messages == fresh.messages
    # A changed name is the one change MTP pushes nothing for (PROTOCOL.md: "no push frame";
    # get_update returns it): the client holds the old one.
    assert set(users) == set(fresh.users)
    assert {uuid for uuid, user in users.items() if user != fresh.users[uuid]} == {mx_uuid}
    assert {**users[mx_uuid], "username": "New Name"} == fresh.users[mx_uuid]
    assert set(flows) == {lounge, flow_of(room)}


# -- Matrix -------------------------------------------------------------------------------------


class MatrixState:
    """What a Matrix client knows from /sync: rooms joined (name, topic, members with their
    display names, the timeline's last event) and invited to."""

    def __init__(self) -> None:
        self.joined: dict[str, dict[str, Any]] = {}
        self.invited: set[str] = set()

    def apply(self, body: dict[str, Any]) -> None:
        rooms = body.get("rooms") or {}
        for room_id, room in (rooms.get("join") or {}).items():
            known = self.joined.setdefault(room_id, {"name": None, "topic": None,
                                                     "members": {}, "last": None})
            self.invited.discard(room_id)
            timeline = (room.get("timeline") or {}).get("events") or []
            for event in [*((room.get("state") or {}).get("events") or []), *timeline]:
                if "state_key" in event:
                    self._state(known, event)
            if timeline:
                known["last"] = timeline[-1]["event_id"]
        for room_id in rooms.get("leave") or {}:
            self.joined.pop(room_id, None)
            self.invited.discard(room_id)
        for room_id in rooms.get("invite") or {}:
            if room_id not in self.joined:
                self.invited.add(room_id)

    @staticmethod
    def _state(known: dict[str, Any], event: dict[str, Any]) -> None:
        content = event.get("content") or {}
        if event["type"] == "m.room.name":
            known["name"] = content.get("name")
        elif event["type"] == "m.room.topic":
            known["topic"] = content.get("topic")
        elif event["type"] == "m.room.member":
            if content.get("membership") == "join":
                known["members"][event["state_key"]] = content.get("displayname")
            else:
                known["members"].pop(event["state_key"], None)


async def sync(mx: Matrix, token: str, since: str | None = None) -> dict[str, Any]:
    params = {"timeout": "0"} if since is None else {"since": since, "timeout": "2000"}
    response = await mx.raw("GET", "/_matrix/client/v3/sync", token, params=params)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def said(body: dict[str, Any], room: str, text: str) -> bool:
    room_body = ((body.get("rooms") or {}).get("join") or {}).get(room) or {}
    return any((event.get("content") or {}).get("body") == text
               for event in (room_body.get("timeline") or {}).get("events") or [])


async def test_matrix_incremental_syncs_applied_to_an_initial_one_equal_a_fresh_one(
        mx: Matrix) -> None:
    me = await mx.user("me")
    other = await mx.user("other")
    third = await mx.user("third")
    lounge = await mx.room(other, me, name="lounge", topic="talk")
    leaving = await mx.room(other, me, name="to leave")
    first = await other.room_send(lounge, "m.room.message", {"msgtype": "m.text", "body": "a"})
    assert isinstance(first, nio.RoomSendResponse), first

    state = MatrixState()
    body = await sync(mx, me.access_token)
    state.apply(body)
    since = body["next_batch"]
    assert lounge in state.joined and leaving in state.joined

    # messages: sent, edited, redacted; a name and a topic
    sent = await other.room_send(lounge, "m.room.message", {"msgtype": "m.text", "body": "b"})
    assert isinstance(sent, nio.RoomSendResponse), sent
    edit = {"msgtype": "m.text", "body": "* b2", "m.new_content": {"msgtype": "m.text",
                                                                   "body": "b2"},
            "m.relates_to": {"rel_type": "m.replace", "event_id": sent.event_id}}
    assert isinstance(await other.room_send(lounge, "m.room.message", edit),
                      nio.RoomSendResponse)
    assert isinstance(await other.room_redact(lounge, first.event_id), nio.RoomRedactResponse)
    assert isinstance(await other.room_put_state(lounge, "m.room.name", {"name": "renamed"}),
                      nio.RoomPutStateResponse)
    assert isinstance(await other.room_put_state(lounge, "m.room.topic", {"topic": "new"}),
                      nio.RoomPutStateResponse)
    # members: one joins and leaves, an MTP user joins and writes, a new display name
    assert isinstance(await other.room_invite(lounge, third.user_id), nio.RoomInviteResponse)
    assert isinstance(await third.join(lounge), nio.JoinResponse)
    assert isinstance(await third.room_leave(lounge), nio.RoomLeaveResponse)
    writer = await mx.mtp.user("mtp")
    assert isinstance(await other.room_invite(lounge, f"@{writer.login}:{SERVER_NAME}"),
                      nio.RoomInviteResponse)
    ok(await writer.call("join_flow", flow=[{"uuid": flow_of(lounge)}]))
    ok(await writer.send(flow_of(lounge), "from MTP"))
    assert isinstance(await other.set_displayname("Other Name"),
                      nio.ProfileSetDisplayNameResponse)
    # rooms: one I am invited to and join, one I am only invited to, one I leave
    joined = await mx.room(other, name="joined later")
    assert isinstance(await other.room_invite(joined, me.user_id), nio.RoomInviteResponse)
    assert isinstance(await me.join(joined), nio.JoinResponse)
    pending = await mx.room(other, name="invited only")
    assert isinstance(await other.room_invite(pending, me.user_id), nio.RoomInviteResponse)
    assert isinstance(await me.room_leave(leaving), nio.RoomLeaveResponse)
    sentinel = f"sentinel {time.monotonic_ns()}"
    assert isinstance(await other.room_send(lounge, "m.room.message", {
        "msgtype": "m.text", "body": sentinel}), nio.RoomSendResponse)

    for _ in range(20):
        body = await sync(mx, me.access_token, since)
        state.apply(body)
        since = body["next_batch"]
        if said(body, lounge, sentinel):
            break
    else:
        raise AssertionError("the sentinel never came")

    fresh = MatrixState()
    fresh.apply(await sync(mx, me.access_token))
    assert state.joined == fresh.joined
    assert state.invited == fresh.invited == {pending}
    assert set(state.joined) == {lounge, joined}
    assert state.joined[lounge]["name"] == "renamed"
    assert state.joined[lounge]["members"][other.user_id] == "Other Name"
