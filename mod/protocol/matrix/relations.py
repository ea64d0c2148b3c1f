"""An event in its surroundings: `/context` (the events around it and the state then) and
`/relations` (the events that relate to it: reactions and other events naming it in
`m.relates_to`, and edits of a message).

Each is read in one reader job (`service.timeline.context`, `relations`), which checks the
caller may read the room, and rendered here on the event loop, as `views` renders.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse

from mod.changes import Change
from mod.protocol.matrix import ids, views
from mod.protocol.matrix.errors import Code, MatrixError
from mod.protocol.matrix.events import Renderer, parse, token_digest, users_named
from mod.protocol.matrix.rooms import room_flow
from mod.protocol.matrix.routing import Call
from mod.service import EventContext, Excerpt

DEFAULT_LIMIT = 10
MAX_LIMIT = 100


def _limit(call: Call, default: int) -> int:
    value = call.query("limit")
    if value is None:
        return default
    if not ids.is_number(value):
        raise MatrixError(400, Code.INVALID_PARAM, "limit must be a non-negative integer")
    return min(int(value), MAX_LIMIT)


def _target(event_id: str) -> tuple[str, int | None]:
    """The message or the change-log position an event ID names (neither: "", None)."""
    ref = ids.parse_event_id(event_id)
    if ref is None:
        return "", None
    return (ref.message, None) if ref.message else ("", ref.position)


def context_view(found: EventContext, server: str, viewer: str, flow: str, event_id: str
                 ) -> dict[str, Any] | None:
    def render(changes: tuple[Change, ...]) -> list[dict[str, Any]]:
        return views.rendered(Excerpt(changes, found.deletions, found.people), server, viewer,
                              flow)

    position = found.position
    event = [event for event in render(found.event) if event["event_id"] == event_id]
    if not event:
        return None
    state_items = parse(found.state)
    renderer = Renderer(server, viewer, people=found.people)
    renderer.load_users(users_named(state_items))
    before, after = found.before, found.after
    return {
        "event": event[0],
        "events_before": render(before),  # nearest first
        "events_after": render(after),
        "start": ids.token((before[-1].position if before else position) - 1),
        "end": ids.token(after[-1].position if after else position),
        "state": list(renderer.replay(state_items).values()),
    }


async def context(call: Call) -> JSONResponse:
    """GET /_matrix/client/v3/rooms/{roomId}/context/{eventId}"""
    flow = room_flow(call)
    event_id = call.param("eventId")
    message, position = _target(event_id)
    snapshot = await call.service.timeline.context(call.caller, flow, message, position,
                                                   _limit(call, DEFAULT_LIMIT))
    found = (context_view(snapshot, call.server_name, _viewer(call), flow, event_id)
             if snapshot is not None else None)
    if found is None:
        raise MatrixError(404, Code.NOT_FOUND, "No such event in this room")
    return JSONResponse(found)


def _viewer(call: Call) -> str:
    return token_digest(call.caller.token_hash)


def _relation(event: dict[str, Any]) -> str:
    relation = event.get("content", {}).get("m.relates_to")
    return str(relation.get("rel_type", "")) if isinstance(relation, dict) else ""


async def relations(call: Call) -> JSONResponse:
    """GET /_matrix/client/v1/rooms/{roomId}/relations/{eventId}[/{relType}[/{eventType}]]"""
    flow = room_flow(call)
    params = call.request.path_params
    rel_type, event_type = params.get("relType"), params.get("eventType")
    backwards = call.query("dir") != "f"
    start_text = call.query("from")
    start = ids.parse_token(start_text, "from") if start_text else None
    event_id = call.param("eventId")
    message, position = _target(event_id)
    limit = _limit(call, 50) or 1
    found = await call.service.timeline.relations(call.caller, flow, event_id, message, position,
                                                  start, limit, backwards)
    if found is None:
        raise MatrixError(404, Code.NOT_FOUND, "No such event in this room")
    events = views.rendered(found, call.server_name, _viewer(call), flow)
    more = found.changes[-1].position if len(found.changes) == limit else None
    chunk = [event for event in events
             if (rel_type is None or _relation(event) == rel_type)
             and (event_type is None or event["type"] == event_type)]
    body: dict[str, Any] = {"chunk": chunk}
    if more is not None:
        body["next_batch"] = ids.token(more)
    return JSONResponse(body)
