"""Matrix rooms end to end with matrix-nio: create, invite, join, leave, state, members,
sending (idempotent), edits, redactions, single events and history in both directions."""

from __future__ import annotations

import uuid
from typing import Any

import nio
import pytest

from tests.test_matrix_support import (
    SERVER_NAME,
    Matrix,
    events_of,
    sources,
    sync_until,
)

pytestmark = pytest.mark.anyio

V3 = "/_matrix/client/v3"


def text(body: str) -> dict[str, Any]:
    return {"msgtype": "m.text", "body": body}


async def send(client: nio.AsyncClient, room: str, body: str, txn: str | None = None) -> str:
    response = await client.room_send(room, "m.room.message", text(body),
                                      tx_id=txn or str(uuid.uuid4()))
    assert isinstance(response, nio.RoomSendResponse), response
    return str(response.event_id)


async def test_create_room_with_name_topic_and_invites(mx: Matrix) -> None:
    alice, bob, carol = await mx.user("alice"), await mx.user("bob"), await mx.user("carol")
    created = await alice.room_create(name="Planning", topic="Q3 plans", preset=nio.RoomPreset
                                      .private_chat, invite=[bob.user_id, carol.user_id])
    assert isinstance(created, nio.RoomCreateResponse), created
    room = created.room_id
    assert room.startswith("!") and room.endswith(":" + SERVER_NAME)

    first = await bob.sync(timeout=0)
    assert isinstance(first, nio.SyncResponse), first
    assert room in bob.invited_rooms
    invited = bob.invited_rooms[room]
    assert invited.name == "Planning" and invited.inviter == alice.user_id
    raw = (await mx.raw("GET", f"{V3}/sync", bob.access_token)).json()
    stripped = raw["rooms"]["invite"][room]["invite_state"]["events"]
    assert {"type": "m.room.topic", "state_key": "", "sender": alice.user_id,
            "content": {"topic": "Q3 plans"}} in stripped

    joined = await bob.join(room)
    assert isinstance(joined, nio.JoinResponse) and joined.room_id == room
    await bob.sync(timeout=0, since=bob.next_batch)
    assert room in bob.rooms and room not in bob.invited_rooms
    assert bob.rooms[room].name == "Planning" and bob.rooms[room].topic == "Q3 plans"
    assert set(bob.rooms[room].users) == {alice.user_id, bob.user_id, carol.user_id}
    assert bob.rooms[room].invited_users.keys() == {carol.user_id}
    assert bob.rooms[room].joined_count == 2

    by_room_path = await mx.raw("POST", f"{V3}/rooms/{room}/join", carol.access_token,
                                json={})
    assert by_room_path.json() == {"room_id": room}
    rooms = await carol.joined_rooms()
    assert isinstance(rooms, nio.JoinedRoomsResponse) and rooms.rooms == [room]


async def test_direct_room_is_a_group_with_an_invite(mx: Matrix) -> None:
    alice, bob = await mx.user(), await mx.user()
    created = await alice.room_create(is_direct=True, invite=[bob.user_id],
                                      preset=nio.RoomPreset.trusted_private_chat)
    assert isinstance(created, nio.RoomCreateResponse), created
    await bob.sync(timeout=0)
    assert created.room_id in bob.invited_rooms
    members = await alice.joined_members(created.room_id)
    assert isinstance(members, nio.JoinedMembersResponse)
    assert [member.user_id for member in members.members] == [alice.user_id]


async def test_invite_join_leave_and_members(mx: Matrix) -> None:
    alice, bob = await mx.user("alice"), await mx.user("bob")
    room = await mx.room(alice, name="club")
    assert isinstance(await alice.room_invite(room, bob.user_id), nio.RoomInviteResponse)
    again = await alice.room_invite(room, bob.user_id)
    assert isinstance(again, nio.RoomInviteResponse)  # still only invited: idempotent
    assert isinstance(await bob.join(room), nio.JoinResponse)
    already = await alice.room_invite(room, bob.user_id)
    assert isinstance(already, nio.RoomInviteError) and already.status_code == "M_FORBIDDEN"

    members = await alice.joined_members(room)
    assert isinstance(members, nio.JoinedMembersResponse)
    assert {member.user_id: member.display_name for member in members.members} == {
        alice.user_id: alice.user, bob.user_id: bob.user}
    chunk = (await mx.raw("GET", f"{V3}/rooms/{room}/members", alice.access_token)).json()
    memberships = {event["state_key"]: event["content"]["membership"]
                   for event in chunk["chunk"]}
    assert memberships == {alice.user_id: "join", bob.user_id: "join"}

    await bob.sync(timeout=0)
    assert isinstance(await bob.room_leave(room), nio.RoomLeaveResponse)
    response = await bob.sync(timeout=0, since=bob.next_batch)
    assert isinstance(response, nio.SyncResponse)
    assert room in response.rooms.leave
    leave = [event.source for event in response.rooms.leave[room].timeline.events]
    assert leave[-1]["content"]["membership"] == "leave"
    assert leave[-1]["state_key"] == bob.user_id
    chunk = (await mx.raw("GET", f"{V3}/rooms/{room}/members", alice.access_token,
                          params={"membership": "leave"})).json()
    assert [event["state_key"] for event in chunk["chunk"]] == [bob.user_id]
    rooms = await bob.joined_rooms()
    assert isinstance(rooms, nio.JoinedRoomsResponse) and rooms.rooms == []


async def test_state_read_and_written(mx: Matrix) -> None:
    alice, bob = await mx.user(), await mx.user()
    room = await mx.room(alice, bob, name="old name", topic="old topic")
    state = await bob.room_get_state(room)
    assert isinstance(state, nio.RoomGetStateResponse), state
    kinds = {(event["type"], event["state_key"]) for event in state.events}
    assert {("m.room.create", ""), ("m.room.power_levels", ""), ("m.room.join_rules", ""),
            ("m.room.name", ""), ("m.room.topic", ""), ("m.room.member", alice.user_id),
            ("m.room.member", bob.user_id)} <= kinds
    renamed = await bob.room_put_state(room, "m.room.name", {"name": "new name"})
    assert isinstance(renamed, nio.RoomPutStateResponse), renamed
    topic = await bob.room_put_state(room, "m.room.topic", {"topic": "new topic"})
    assert isinstance(topic, nio.RoomPutStateResponse), topic
    name = await alice.room_get_state_event(room, "m.room.name")
    assert isinstance(name, nio.RoomGetStateEventResponse) and name.content == {
        "name": "new name"}
    event = await alice.room_get_event(room, renamed.event_id)
    assert isinstance(event, nio.RoomGetEventResponse), event
    assert event.event.source["content"] == {"name": "new name"}
    assert event.event.sender == bob.user_id
    other = await alice.room_put_state(room, "m.room.avatar", {"url": "mxc://x/y"})
    assert isinstance(other, nio.RoomPutStateError) and other.status_code == "M_FORBIDDEN"
    missing = await alice.room_get_state_event(room, "m.room.avatar")
    assert isinstance(missing, nio.RoomGetStateEventError)


async def test_send_is_idempotent_per_token_and_txn(mx: Matrix) -> None:
    alice, bob = await mx.user(), await mx.user()
    room = await mx.room(alice, bob)
    first = await send(alice, room, "once", txn="t-1")
    assert await send(alice, room, "once", txn="t-1") == first
    assert await send(alice, room, "twice", txn="t-2") != first
    assert await send(bob, room, "bob's", txn="t-1") != first
    other = mx.client(alice.user)
    other.access_token, other.user_id = "", alice.user_id
    assert isinstance(await other.login("matrix-secret-1"), nio.LoginResponse)
    assert await send(other, room, "once", txn="t-1") != first  # another token

    page = await bob.room_messages(room, start="", limit=10)
    assert isinstance(page, nio.RoomMessagesResponse)
    bodies = [event.body for event in page.chunk if isinstance(event, nio.RoomMessageText)]
    assert bodies == ["once", "bob's", "twice", "once"]


async def test_transaction_id_only_for_the_sender(mx: Matrix) -> None:
    alice, bob = await mx.user(), await mx.user()
    room = await mx.room(alice, bob)
    await alice.sync(timeout=0)
    await bob.sync(timeout=0)
    event_id = await send(alice, room, "mine", txn="txn-for-alice")
    mine = await sync_until(alice, room, lambda event: event["event_id"] == event_id)
    theirs = await sync_until(bob, room, lambda event: event["event_id"] == event_id)
    assert next(e for e in mine if e["event_id"] == event_id)["unsigned"] == {
        "transaction_id": "txn-for-alice"}
    assert "unsigned" not in next(e for e in theirs if e["event_id"] == event_id)


async def test_edit_and_redact(mx: Matrix) -> None:
    alice, bob = await mx.user(), await mx.user()
    room = await mx.room(alice, bob)
    await bob.sync(timeout=0)
    original = await send(alice, room, "helo")
    edit_content = {"msgtype": "m.text", "body": "* hello",
                    "m.new_content": text("hello"),
                    "m.relates_to": {"rel_type": "m.replace", "event_id": original}}
    edit = await alice.room_send(room, "m.room.message", edit_content, tx_id="edit-1")
    assert isinstance(edit, nio.RoomSendResponse), edit
    repeat = await alice.room_send(room, "m.room.message", edit_content, tx_id="edit-1")
    assert isinstance(repeat, nio.RoomSendResponse) and repeat.event_id == edit.event_id
    foreign = await bob.room_send(room, "m.room.message", edit_content, tx_id="edit-2")
    assert isinstance(foreign, nio.RoomSendError) and foreign.status_code == "M_FORBIDDEN"

    seen = await sync_until(bob, room, lambda event: event["event_id"] == edit.event_id)
    replace = next(event for event in seen if event["event_id"] == edit.event_id)
    assert replace["content"]["m.new_content"]["body"] == "hello"
    assert replace["content"]["m.relates_to"] == {"rel_type": "m.replace",
                                                  "event_id": original}

    not_yours = await bob.room_redact(room, original)
    assert isinstance(not_yours, nio.RoomRedactError) and not_yours.status_code == "M_FORBIDDEN"
    redaction = await alice.room_redact(room, original, reason="typo", tx_id="redact-1")
    assert isinstance(redaction, nio.RoomRedactResponse), redaction
    again = await alice.room_redact(room, original, reason="typo", tx_id="redact-1")
    assert isinstance(again, nio.RoomRedactResponse)
    assert again.event_id == redaction.event_id
    seen = await sync_until(bob, room, lambda event: event["event_id"] == redaction.event_id)
    event = next(event for event in seen if event["event_id"] == redaction.event_id)
    assert event["type"] == "m.room.redaction"
    assert event["redacts"] == original and event["content"]["redacts"] == original
    assert event["content"]["reason"] == "typo"

    fetched = await bob.room_get_event(room, original)
    assert isinstance(fetched, nio.RoomGetEventResponse), fetched
    assert fetched.event.source["content"] == {}
    assert fetched.event.source["unsigned"]["redacted_because"]["event_id"] == \
        redaction.event_id
    state_event = await alice.room_redact(room, "$1.0")
    assert isinstance(state_event, nio.RoomRedactError)


async def test_get_event(mx: Matrix) -> None:
    alice, bob = await mx.user(), await mx.user()
    room = await mx.room(alice)
    event_id = await send(alice, room, "fetch me")
    got = await alice.room_get_event(room, event_id)
    assert isinstance(got, nio.RoomGetEventResponse), got
    assert isinstance(got.event, nio.RoomMessageText) and got.event.body == "fetch me"
    assert got.event.sender == alice.user_id
    outsider = await bob.room_get_event(room, event_id)
    assert isinstance(outsider, nio.RoomGetEventError)
    assert outsider.status_code == "M_FORBIDDEN"
    elsewhere = await mx.room(alice)
    wrong_room = await alice.room_get_event(elsewhere, event_id)
    assert isinstance(wrong_room, nio.RoomGetEventError)
    assert wrong_room.status_code == "M_NOT_FOUND"


async def test_messages_in_order_both_ways(mx: Matrix) -> None:
    alice = await mx.user()
    room = await mx.room(alice, name="history")
    bodies = [f"message {n}" for n in range(25)]
    for body in bodies:
        await send(alice, room, body)

    seen: list[str] = []
    token = ""
    while True:
        page = await alice.room_messages(room, start=token, limit=7)
        assert isinstance(page, nio.RoomMessagesResponse), page
        assert len(page.chunk) <= 7
        seen.extend(e.body for e in page.chunk if isinstance(e, nio.RoomMessageText))
        if not page.end:
            break
        token = page.end
    assert seen == list(reversed(bodies))

    forward: list[str] = []
    token = "s0"
    for _ in range(20):
        page = await alice.room_messages(room, start=token, limit=6,
                                         direction=nio.MessageDirection.front)
        assert isinstance(page, nio.RoomMessagesResponse), page
        if not page.chunk:
            break
        forward.extend(e.body for e in page.chunk if isinstance(e, nio.RoomMessageText))
        token = page.end
    assert forward == bodies

    # The sync timeline's prev_batch continues where the timeline starts.
    response = await alice.sync(timeout=0, sync_filter={"room": {"timeline": {"limit": 3}}})
    assert isinstance(response, nio.SyncResponse)
    timeline = response.rooms.join[room].timeline
    assert timeline.limited and [e.body for e in timeline.events] == bodies[-3:]
    page = await alice.room_messages(room, start=timeline.prev_batch, limit=2)
    assert isinstance(page, nio.RoomMessagesResponse)
    assert [e.body for e in page.chunk] == [bodies[-4], bodies[-5]]
    assert page.start == timeline.prev_batch

    stop = await alice.room_messages(room, start=timeline.prev_batch, end=page.end, limit=50)
    assert isinstance(stop, nio.RoomMessagesResponse)
    assert [e.body for e in stop.chunk] == [bodies[-4], bodies[-5]]
    assert sources(events_of(response, room))[-1]["content"]["body"] == bodies[-1]
