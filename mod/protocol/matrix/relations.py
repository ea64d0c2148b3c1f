"""An event in its surroundings: `/context` (the events around it and the state then) and
`/relations` (the events that relate to it: reactions and other events naming it in
`m.relates_to`, and edits of a message).

The reads run whole on a reader thread (`timeline.read_flow`), as `views` does.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse

from mod.changes import Change, Kind
from mod.protocol.matrix import ids
from mod.protocol.matrix.errors import Code, MatrixError
from mod.protocol.matrix.events import Renderer, parse, token_digest, users_named
from mod.protocol.matrix.rooms import room_flow
from mod.protocol.matrix.routing import Call
from mod.service import Reader

DEFAULT_LIMIT = 10
MAX_LIMIT = 100


def _limit(call: Call, default: int) -> int:
    value = call.query("limit")
    if value is None:
        return default
    if not ids.is_number(value):
        raise MatrixError(400, Code.INVALID_PARAM, "limit must be a non-negative integer")
    return min(int(value), MAX_LIMIT)


def _position(reader: Reader, flow: str, event_id: str) -> int | None:
    """The change-log position of a room's event."""
    ref = ids.parse_event_id(event_id)
    if ref is None:
        return None
    if ref.message:
        rows = reader.subject_changes(flow, [Kind.MESSAGE_SENT], [ref.message])
        return rows[0].position if rows else None
    row = reader.change_at(ref.position)
    return row.position if row is not None and row.flow_uuid == flow else None


def _render(reader: Reader, server: str, viewer: str, flow: str, rows: list[Change]
            ) -> list[dict[str, Any]]:
    items = parse(rows)
    renderer = Renderer(server, viewer)
    renderer.load_users(reader, users_named(items))
    renderer.load_redactions(reader, flow, items)
    return renderer.all_events(items)


def context_read(reader: Reader, server: str, viewer: str, flow: str, event_id: str,
                 limit: int) -> dict[str, Any] | None:
    position = _position(reader, flow, event_id)
    if position is None:
        return None
    found = [event for event in _render(reader, server, viewer, flow,
                                        [row for row in [reader.change_at(position)] if row])
             if event["event_id"] == event_id]
    if not found:
        return None
    before = reader.flow_changes([flow], before=position, limit=limit // 2 + limit % 2,
                                 backwards=True)
    after = reader.flow_changes([flow], after=position, limit=limit // 2)
    state_items = parse(reader.flow_state_changes(flow, before=position + 1))
    renderer = Renderer(server, viewer)
    renderer.load_users(reader, users_named(state_items))
    return {
        "event": found[0],
        "events_before": _render(reader, server, viewer, flow, before),  # nearest first
        "events_after": _render(reader, server, viewer, flow, after),
        "start": ids.token((before[-1].position if before else position) - 1),
        "end": ids.token(after[-1].position if after else position),
        "state": list(renderer.replay(state_items).values()),
    }


async def context(call: Call) -> JSONResponse:
    """GET /_matrix/client/v3/rooms/{roomId}/context/{eventId}"""
    flow = room_flow(call)
    found = await call.service.timeline.read_flow(
        call.caller, flow, context_read, call.server_name, _viewer(call), flow,
        call.param("eventId"), _limit(call, DEFAULT_LIMIT))
    if found is None:
        raise MatrixError(404, Code.NOT_FOUND, "No such event in this room")
    return JSONResponse(found)


def _viewer(call: Call) -> str:
    return token_digest(call.caller.token_hash)


def relations_read(reader: Reader, server: str, viewer: str, flow: str, event_id: str,
                   start: int | None, limit: int, backwards: bool
                   ) -> tuple[list[dict[str, Any]], int | None] | None:
    """The events relating to an event, and the position to continue from (if more)."""
    if _position(reader, flow, event_id) is None:
        return None
    ref = ids.parse_event_id(event_id)
    message = ref.message if ref is not None else ""
    if backwards:
        rows = reader.related_changes(flow, event_id, message, 0, start, limit, True)
    else:
        rows = reader.related_changes(flow, event_id, message, start or 0, None, limit, False)
    more = rows[-1].position if len(rows) == limit else None
    return _render(reader, server, viewer, flow, rows), more


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
    found = await call.service.timeline.read_flow(
        call.caller, flow, relations_read, call.server_name, _viewer(call), flow,
        call.param("eventId"), start, _limit(call, 50) or 1, backwards)
    if found is None:
        raise MatrixError(404, Code.NOT_FOUND, "No such event in this room")
    events, more = found
    chunk = [event for event in events
             if (rel_type is None or _relation(event) == rel_type)
             and (event_type is None or event["type"] == event_type)]
    body: dict[str, Any] = {"chunk": chunk}
    if more is not None:
        body["next_batch"] = ids.token(more)
    return JSONResponse(body)
