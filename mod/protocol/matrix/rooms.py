"""Matrix rooms: create, invite, join, leave, state, members, history and single events.

A room is a flow. Every room created over Matrix is a group (MTP chats have exactly two
members from the start and take no invites, which Matrix rooms and DMs cannot promise); its
creator is its only member and everyone in `invite` gets an invite, also for `is_direct`.
The private presets, `is_direct` and an initial `invite` join rule make it invite-only.
Rights are the service's: whatever MTP forbids answers 403 M_FORBIDDEN here.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse

from mod.protocol.matrix import ids, views
from mod.protocol.matrix.api import (
    CreateRoomRequest,
    Empty,
    EventIdReply,
    InviteRequest,
    JoinedMembers,
    JoinedRooms,
    JoinRulesContent,
    MemberInfo,
    MembershipRequest,
    Messages,
    NameContent,
    RoomIdReply,
    TopicContent,
)
from mod.protocol.matrix.errors import Code, MatrixError
from mod.protocol.matrix.events import token_digest
from mod.protocol.matrix.routing import Call, validate

MAX_PAGE = 1000
ENCRYPTION = "m.room.encryption"
PRIVATE_PRESETS = ("private_chat", "trusted_private_chat")


def room_flow(call: Call, name: str = "roomId") -> str:
    return ids.flow_of(call.param(name), call.server_name)


async def user_uuid(call: Call, user: str) -> str:
    """The uuid of the local user a user ID names; 404 otherwise."""
    name = ids.login_of(user, call.server_name) if user.startswith("@") else None
    if name is None:
        raise MatrixError(404, Code.NOT_FOUND, f"Unknown user {user}")
    return (await call.service.profiles.by_login(name)).uuid


async def create_room(call: Call) -> RoomIdReply:
    """POST /_matrix/client/v3/createRoom"""
    body = await call.body(CreateRoomRequest)
    name, topic = body.name, body.topic
    private = body.is_direct or body.preset in PRIVATE_PRESETS
    encryption: dict[str, Any] | None = None
    for event in body.initial_state:
        if event.type == "m.room.name" and name is None:
            name = validate(NameContent, event.content).name
        elif event.type == "m.room.topic" and topic is None:
            topic = validate(TopicContent, event.content).topic
        elif event.type == "m.room.join_rules":
            # Initial state outranks the preset; rules this server lacks (knock, restricted)
            # close the room rather than open it.
            private = validate(JoinRulesContent, event.content).join_rule != "public"
        elif event.type == ENCRYPTION:
            encryption = _encryption(event.content)
    invitees = [await user_uuid(call, user) for user in dict.fromkeys(body.invite)]
    flow = (await call.service.flows.add(call.caller, "group", name or "", topic or "", [],
                                         private=private, encryption=encryption)).value
    for invitee in invitees:
        if invitee != call.caller.uuid:
            await call.service.flows.invite(call.caller, flow["uuid"], invitee,
                                            direct=body.is_direct)
    return RoomIdReply(room_id=ids.room_id(flow["uuid"], call.server_name))


async def invite(call: Call) -> Empty:
    """POST /_matrix/client/v3/rooms/{roomId}/invite"""
    body = await call.body(InviteRequest)
    flow = room_flow(call)
    await call.service.flows.invite(call.caller, flow, await user_uuid(call, body.user_id))
    return Empty()


async def _join(call: Call, room: str) -> RoomIdReply:
    await call.body(MembershipRequest)
    if room.startswith("#"):
        raise MatrixError(404, Code.NOT_FOUND, "Room aliases are not supported")
    flow = ids.flow_of(room, call.server_name)
    await call.service.flows.join(call.caller, flow)
    return RoomIdReply(room_id=ids.room_id(flow, call.server_name))


async def join(call: Call) -> RoomIdReply:
    """POST /_matrix/client/v3/join/{roomIdOrAlias}"""
    return await _join(call, call.param("roomIdOrAlias"))


async def join_room(call: Call) -> RoomIdReply:
    """POST /_matrix/client/v3/rooms/{roomId}/join"""
    return await _join(call, call.param("roomId"))


async def leave(call: Call) -> Empty:
    """POST /_matrix/client/v3/rooms/{roomId}/leave"""
    await call.body(MembershipRequest)
    await call.service.flows.leave(call.caller, room_flow(call))
    return Empty()


async def forget(call: Call) -> Empty:
    """POST /_matrix/client/v3/rooms/{roomId}/forget"""
    await call.json()
    room_flow(call)
    return Empty()


async def joined_rooms(call: Call) -> JoinedRooms:
    """GET /_matrix/client/v3/joined_rooms"""
    flows = await call.service.flows.joined(call.caller)
    return JoinedRooms(joined_rooms=[ids.room_id(flow, call.server_name) for flow in flows])


async def joined_members(call: Call) -> JoinedMembers:
    """GET /_matrix/client/v3/rooms/{roomId}/joined_members"""
    users = await call.service.flows.members(call.caller, room_flow(call))
    avatars = await call.service.avatars.urls([user.uuid for user in users])
    return JoinedMembers(joined={
        ids.user_id(user.login, call.server_name): MemberInfo(
            display_name=user.username, avatar_url=avatars.get(user.uuid))
        for user in users})


async def _state(call: Call) -> list[dict[str, Any]]:
    snapshot = await call.service.timeline.state(call.caller, room_flow(call))
    return views.state(snapshot, call.server_name)


async def members(call: Call) -> JSONResponse:
    """GET /_matrix/client/v3/rooms/{roomId}/members"""
    wanted, unwanted = call.query("membership"), call.query("not_membership")
    chunk = [event for event in await _state(call) if event["type"] == "m.room.member"
             and wanted in (None, event["content"]["membership"])
             and unwanted != event["content"]["membership"]]
    return JSONResponse({"chunk": chunk})


async def state(call: Call) -> JSONResponse:
    """GET /_matrix/client/v3/rooms/{roomId}/state"""
    return JSONResponse(await _state(call))


async def _state_event(call: Call, state_key: str) -> JSONResponse:
    kind = call.param("eventType")
    for event in await _state(call):
        if event["type"] == kind and event["state_key"] == state_key:
            return JSONResponse(event["content"])
    raise MatrixError(404, Code.NOT_FOUND, f"No {kind} state with key {state_key!r}")


async def state_event_empty_key(call: Call) -> JSONResponse:
    """GET /_matrix/client/v3/rooms/{roomId}/state/{eventType}"""
    return await _state_event(call, "")


async def state_event(call: Call) -> JSONResponse:
    """GET /_matrix/client/v3/rooms/{roomId}/state/{eventType}/{stateKey}"""
    return await _state_event(call, call.param("stateKey"))


def _encryption(content: dict[str, Any]) -> dict[str, Any]:
    if not isinstance(content.get("algorithm"), str):
        raise MatrixError(400, Code.BAD_JSON, "m.room.encryption needs an algorithm")
    return content


async def _put_state(call: Call, state_key: str) -> EventIdReply:
    kind = call.param("eventType")
    content = await call.json()
    flow = room_flow(call)
    if kind == ENCRYPTION and not state_key:
        encrypted = await call.service.flows.encrypt(call.caller, flow, _encryption(content))
        return EventIdReply(event_id=ids.change_event_id(encrypted.position))
    if kind not in ("m.room.name", "m.room.topic") or state_key:
        raise MatrixError(403, Code.FORBIDDEN,
                          "This server keeps only the m.room.name, m.room.topic and "
                          "m.room.encryption state")
    if kind == "m.room.name":
        done = await call.service.flows.rename(call.caller, flow,
                                               title=validate(NameContent, content).name)
    else:
        done = await call.service.flows.rename(call.caller, flow,
                                               info=validate(TopicContent, content).topic)
    return EventIdReply(event_id=ids.change_event_id(done.position, 0 if kind == "m.room.name"
                                                     else 1))


async def put_state_empty_key(call: Call) -> EventIdReply:
    """PUT /_matrix/client/v3/rooms/{roomId}/state/{eventType}"""
    return await _put_state(call, "")


async def put_state(call: Call) -> EventIdReply:
    """PUT /_matrix/client/v3/rooms/{roomId}/state/{eventType}/{stateKey}"""
    return await _put_state(call, call.param("stateKey"))


async def get_event(call: Call) -> JSONResponse:
    """GET /_matrix/client/v3/rooms/{roomId}/event/{eventId}"""
    flow = room_flow(call)
    event_id = call.param("eventId")
    ref = ids.parse_event_id(event_id)
    snapshot = await call.service.timeline.event(
        call.caller, flow, ref.message if ref is not None else "",
        ref.position if ref is not None and not ref.message else None)
    event = (views.event(snapshot, call.server_name, token_digest(call.caller.token_hash), flow,
                         event_id) if ref is not None else None)
    if event is None:
        raise MatrixError(404, Code.NOT_FOUND, "Event not found")
    return JSONResponse(event)


def _int(call: Call, name: str, default: int, high: int) -> int:
    """A non-negative integer query parameter, at most `high` (larger asks get `high`)."""
    value = call.query(name)
    if value is None:
        return default
    if not ids.is_number(value):
        raise MatrixError(400, Code.INVALID_PARAM,
                          f"{name} must be a non-negative integer of at most "
                          f"{ids.MAX_NUMBER} digits")
    return min(int(value), high)


async def messages(call: Call) -> Messages:
    """GET /_matrix/client/v3/rooms/{roomId}/messages"""
    flow = room_flow(call)
    direction = call.query("dir") or "b"
    if direction not in ("b", "f"):
        raise MatrixError(400, Code.INVALID_PARAM, "dir must be b or f")
    start, stop = call.query("from"), call.query("to")
    limit = _int(call, "limit", 10, MAX_PAGE)
    first = ids.parse_token(start, "from") if start else None
    backwards = direction == "b"
    page = await call.service.timeline.page(
        call.caller, flow, first, ids.parse_token(stop, "to") if stop else None, backwards,
        limit)
    return views.messages(page, call.server_name, token_digest(call.caller.token_hash), flow,
                          first, backwards, limit)
