"""Matrix /sync end to end: initial and incremental batches, the long-poll that really waits
and wakes at once, timeline filters, invites, and room state."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import nio
import pytest

from tests.inprocess import AppServer
from tests.test_matrix_support import (
    Matrix,
    events_of,
    sources,
)

pytestmark = pytest.mark.anyio

V3 = "/_matrix/client/v3"


async def say(client: nio.AsyncClient, room: str, body: str) -> str:
    response = await client.room_send(room, "m.room.message",
                                      {"msgtype": "m.text", "body": body})
    assert isinstance(response, nio.RoomSendResponse), response
    return str(response.event_id)


async def test_initial_sync_has_state_and_timeline(mx: Matrix) -> None:
    alice, bob = await mx.user(), await mx.user()
    room = await mx.room(alice, bob, name="Lobby", topic="Say hi")
    await say(alice, room, "first")
    await say(bob, room, "second")
    response = await bob.sync(timeout=0)
    assert isinstance(response, nio.SyncResponse), response
    assert response.next_batch.startswith("s")
    joined = response.rooms.join[room]
    bodies = [event.body for event in joined.timeline.events
              if isinstance(event, nio.RoomMessageText)]
    assert bodies == ["first", "second"]
    assert bob.rooms[room].name == "Lobby" and bob.rooms[room].topic == "Say hi"
    assert bob.rooms[room].room_version == "10"
    assert bob.rooms[room].power_levels.users == {alice.user_id: 100}
    assert bob.rooms[room].join_rule == "public"


async def test_incremental_sync_returns_only_what_is_new(mx: Matrix) -> None:
    alice, bob = await mx.user(), await mx.user()
    room = await mx.room(alice, bob)
    await bob.sync(timeout=0)
    since = bob.next_batch
    nothing = await bob.sync(timeout=0, since=since)
    assert isinstance(nothing, nio.SyncResponse)
    assert room not in nothing.rooms.join
    assert nothing.next_batch >= since
    event_id = await say(alice, room, "news")
    response = await bob.sync(timeout=0, since=nothing.next_batch)
    assert isinstance(response, nio.SyncResponse)
    assert [event["event_id"] for event in sources(events_of(response, room))] == [event_id]
    assert response.rooms.join[room].state == []
    assert not response.rooms.join[room].timeline.limited


async def test_long_poll_waits_then_wakes_at_once(mx: Matrix) -> None:
    alice, bob = await mx.user(), await mx.user()
    room = await mx.room(alice, bob)
    other = await mx.room(alice)
    await bob.sync(timeout=0)

    started = time.monotonic()
    idle = await bob.sync(timeout=1200, since=bob.next_batch)
    waited = time.monotonic() - started
    assert isinstance(idle, nio.SyncResponse)
    assert 1.1 <= waited < 3, waited
    assert not idle.rooms.join

    # Bob's poll waits while alice speaks in a room he is not in, which must not end his
    # wait: the poll's one answer holds the message that woke it and nothing of the other
    # room.
    poll = asyncio.create_task(bob.sync(timeout=5000, since=bob.next_batch))
    assert isinstance(mx.server, AppServer)
    await mx.server.until_long_polls()
    await say(alice, other, "bob is not in this room")
    sent_at = time.monotonic()
    event_id = await say(alice, room, "wake up")
    response = await asyncio.wait_for(poll, 3)
    latency = time.monotonic() - sent_at
    assert isinstance(response, nio.SyncResponse)
    assert set(response.rooms.join) == {room}
    assert [event["event_id"] for event in sources(events_of(response, room))] == [event_id]
    assert latency < 0.5, latency


async def test_timeline_limit_filter(mx: Matrix) -> None:
    alice = await mx.user()
    room = await mx.room(alice)
    for n in range(6):
        await say(alice, room, f"m{n}")
    response = await alice.sync(timeout=0, sync_filter={"room": {"timeline": {"limit": 2}}})
    assert isinstance(response, nio.SyncResponse)
    timeline = response.rooms.join[room].timeline
    assert [event.body for event in timeline.events] == ["m4", "m5"]
    assert timeline.limited and timeline.prev_batch
    # The state before the window still names the room's creator and members.
    assert alice.rooms[room].room_version == "10"
    assert alice.user_id in alice.rooms[room].users

    for n in range(6, 10):
        await say(alice, room, f"m{n}")
    uploaded = await alice.upload_filter(room={"timeline": {"limit": 3}})
    assert isinstance(uploaded, nio.UploadFilterResponse), uploaded
    later = await alice.sync(timeout=0, since=response.next_batch,
                             sync_filter=uploaded.filter_id)
    assert isinstance(later, nio.SyncResponse)
    timeline = later.rooms.join[room].timeline
    assert [event.body for event in timeline.events] == ["m7", "m8", "m9"]
    assert timeline.limited
    kept = await mx.raw("GET", f"{V3}/user/{alice.user_id}/filter/{uploaded.filter_id}",
                        alice.access_token)
    assert kept.json()["room"] == {"timeline": {"limit": 3}}


async def test_invites_arrive_in_sync(mx: Matrix) -> None:
    alice, bob = await mx.user(), await mx.user()
    room = await mx.room(alice, name="invite only")
    await bob.sync(timeout=0)
    poll = asyncio.create_task(bob.sync(timeout=5000, since=bob.next_batch))
    # A round trip meanwhile, so the poll is most likely waiting when the invite lands; it
    # gets the invite either way.
    await say(alice, room, "before the invite")
    assert isinstance(await alice.room_invite(room, bob.user_id), nio.RoomInviteResponse)
    response = await asyncio.wait_for(poll, 3)
    assert isinstance(response, nio.SyncResponse)
    assert room in response.rooms.invite
    assert bob.invited_rooms[room].name == "invite only"
    members = {event.state_key: event.membership
               for event in response.rooms.invite[room].invite_state
               if isinstance(event, nio.InviteMemberEvent)}
    assert members == {alice.user_id: "join", bob.user_id: "invite"}
    # The invite shows once; joining moves the room to `join` with its full state.
    await bob.join(room)
    joined = await bob.sync(timeout=0, since=bob.next_batch)
    assert isinstance(joined, nio.SyncResponse)
    assert room in joined.rooms.join and room not in joined.rooms.invite
    assert bob.rooms[room].name == "invite only"
    assert room not in bob.invited_rooms


async def test_name_and_topic_changes_in_sync(mx: Matrix) -> None:
    alice, bob = await mx.user(), await mx.user()
    room = await mx.room(alice, bob, name="before")
    await bob.sync(timeout=0)
    await alice.room_put_state(room, "m.room.name", {"name": "after"})
    await alice.room_put_state(room, "m.room.topic", {"topic": "a topic"})
    response = await bob.sync(timeout=1000, since=bob.next_batch)
    assert isinstance(response, nio.SyncResponse)
    for _ in range(3):
        if bob.rooms[room].topic == "a topic":
            break
        await bob.sync(timeout=1000, since=bob.next_batch)
    assert bob.rooms[room].name == "after" and bob.rooms[room].topic == "a topic"


async def test_full_state(mx: Matrix) -> None:
    alice = await mx.user()
    room = await mx.room(alice, name="full")
    await alice.sync(timeout=0)
    response = await alice.sync(timeout=0, since=alice.next_batch, full_state=True)
    assert isinstance(response, nio.SyncResponse)
    kinds = {event.source["type"] for event in response.rooms.join[room].state}
    assert {"m.room.create", "m.room.member", "m.room.name", "m.room.power_levels"} <= kinds


async def test_batches_from_memory_and_from_the_log_agree(mx: Matrix) -> None:
    alice, bob, carol = await mx.user(), await mx.user(), await mx.user()
    room = await mx.room(alice, bob, name="agree")
    path = f"{V3}/sync"
    first = (await mx.raw("GET", path, bob.access_token)).json()
    start = first["next_batch"]
    original = await say(alice, room, "one")
    await say(bob, room, "two")
    await alice.room_send(room, "m.room.message", {
        "msgtype": "m.text", "body": "* uno", "m.new_content": {"msgtype": "m.text",
                                                               "body": "uno"},
        "m.relates_to": {"rel_type": "m.replace", "event_id": original}})
    await alice.room_redact(room, original)
    await carol.join(room)
    await carol.room_leave(room)
    await alice.room_put_state(room, "m.room.topic", {"topic": "agreed"})

    # From the user's stream in memory (it has every change since the first sync) ...
    from_memory = (await mx.raw("GET", path, bob.access_token, params={"since": start})).json()
    later = from_memory["next_batch"]
    # ... then, once the stream has let those changes go, from the change log.
    await mx.raw("GET", path, bob.access_token, params={"since": later})
    from_log = (await mx.raw("GET", path, bob.access_token, params={"since": start})).json()
    assert from_log["next_batch"] == later
    assert from_memory["rooms"] == from_log["rooms"]
    events = from_memory["rooms"]["join"][room]["timeline"]["events"]
    assert [event["type"] for event in events] == [
        "m.room.message", "m.room.message", "m.room.message", "m.room.redaction",
        "m.room.member", "m.room.member", "m.room.name", "m.room.topic"]
    assert [event["content"].get("body") for event in events[:3]] == ["one", "two", "* uno"]


async def test_declined_invite_leaves_the_invite_list(mx: Matrix) -> None:
    alice, bob = await mx.user(), await mx.user()
    room = await mx.room(alice, name="no thanks")
    await alice.room_invite(room, bob.user_id)
    await bob.sync(timeout=0)
    await alice.sync(timeout=0)
    assert room in bob.invited_rooms
    assert isinstance(await bob.room_leave(room), nio.RoomLeaveResponse)
    response = await bob.sync(timeout=2000, since=bob.next_batch)
    assert isinstance(response, nio.SyncResponse)
    # (nio itself keeps declined invites in `invited_rooms` until the room is forgotten.)
    assert room in response.rooms.leave and room not in response.rooms.invite
    event = response.rooms.leave[room].timeline.events[-1]
    assert isinstance(event, nio.RoomMemberEvent) and event.membership == "leave"
    raw = (await mx.raw("GET", f"{V3}/sync", bob.access_token)).json()
    assert room not in raw["rooms"]["invite"]
    seen = await alice.sync(timeout=2000, since=alice.next_batch)
    assert isinstance(seen, nio.SyncResponse)
    decline = sources(events_of(seen, room))[-1]
    assert decline["state_key"] == bob.user_id and decline["sender"] == bob.user_id
    assert decline["content"] == {"membership": "leave"}
    again = await bob.join(room)  # a group stays open to anyone, as in MTP
    assert isinstance(again, nio.JoinResponse)


async def test_a_token_revoked_while_a_sync_reads_its_batch_ends_it_with_401(
        mx: Matrix, monkeypatch: pytest.MonkeyPatch) -> None:
    """A logout whose wake-up comes while the long-poll reads its first batch (before it
    starts waiting) still ends it at once with 401, not with a 200 at its timeout."""
    from mod.protocol.matrix import sync as sync_route

    user = await mx.user()
    await user.sync(timeout=0)
    reading = sync_route._batch
    revoked: list[int] = []

    async def batch_then_logout(call: Any, query: Any, stream: Any) -> Any:
        result = await reading(call, query, stream)
        if query.since is not None and not revoked:
            revoked.append(stream.revocations)
            await call.service.accounts.logout(call.caller)
            while stream.revocations == revoked[0]:  # the hub delivered the revocation
                await asyncio.sleep(0.005)
        return result

    monkeypatch.setattr(sync_route, "_batch", batch_then_logout)
    started = time.monotonic()
    reply = await mx.http.get(f"{V3}/sync", params={"since": user.next_batch, "timeout": 5000},
                              headers={"Authorization": f"Bearer {user.access_token}"})
    assert revoked, "the sync never read a batch"
    assert reply.status_code == 401 and reply.json()["errcode"] == "M_UNKNOWN_TOKEN", reply.text
    assert time.monotonic() - started < 2.5
