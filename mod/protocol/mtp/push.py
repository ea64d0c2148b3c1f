"""MTP pushes: the frame that tells a connection of one committed change."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache

from pydantic_core import from_json, to_json

from mod import changes as kinds
from mod.changes import Change, ContentPayload, Kind, ReactionPayload
from mod.protocol.mtp.api import EXTENSION_FIELDS
from mod.protocol.mtp.responses import JSONAPI

# The change kinds pushed to MTP connections that asked for pushes; each is the frame's
# `meta.event`, as PROTOCOL.md lists them.
PUSH_EVENTS = kinds.MTP_PUSHED


@lru_cache(maxsize=len(PUSH_EVENTS) + len(kinds.REACTIONS) + 2)
def _push_tail(event: str) -> str:
    tail = {"jsonapi": JSONAPI.model_dump(), "meta": {"push": True, "event": event}}
    return json.dumps(tail, separators=(",", ":"))[1:]


@dataclass(slots=True)
class Rendered:
    """A change's push frames made so far, by the fields each leaves out, and the extension
    fields its message holds ((extension, field); most messages hold none)."""

    fields: tuple[tuple[str, str], ...]
    frames: dict[tuple[str, ...], str]


# The hub hands each change to all its recipients in a row, so remembering the frames of the
# last change renders each once (1,000 renders for a 1,000-member flow without it);
# remembering more changes would only pin frames, each as large as its change. A change
# whose message holds an extension's field has a frame with it and one without.
@lru_cache(maxsize=1)
def rendered(change: Change) -> Rendered:
    # A key such as `"reply_to":` can only stand unescaped in the payload's JSON as a key.
    return Rendered(tuple((extension, field) for extension, fields in EXTENSION_FIELDS.items()
                          for field in fields if f'"{field}":' in change.payload), {})


def push_frame(change: Change, extensions: frozenset[str] = frozenset()) -> str:
    """The get_update-shaped frame that tells members of one committed change, for a
    connection with these extensions (a field of one it lacks is left out)."""
    known = rendered(change)
    hide = tuple(field for extension, field in known.fields if extension not in extensions) \
        if known.fields else ()
    frame = known.frames.get(hide)
    if frame is None:
        frame = known.frames[hide] = render(change, hide)
    return frame


def render(change: Change, hide: tuple[str, ...]) -> str:
    """The frame has the shape of `Response` (tests hold every pushed frame to that model), but
    is written out directly: its objects are snapshots the database layer made from typed
    rows, and a push is built for every committed change, so validating them again would be
    the most expensive step of a send.
    """
    payload = from_json(change.payload)
    flow = payload.get("flow") or ({"uuid": change.flow_uuid} if change.flow_uuid else None)
    user = payload.get("user")
    if user is None and change.kind in (Kind.FLOW_INVITED, Kind.INVITE_DECLINED):
        user = {"uuid": change.subject}  # who was invited, or declined
    message = payload.get("message")
    if message is not None and hide:
        message = {key: value for key, value in message.items() if key not in hide}
    data = {
        "time": change.time,
        "flow": [flow] if flow and message is None else [],
        "message": [message] if message is not None else [],
        "user": [user] if user else [],
        "meta": None,
    }
    errors = {"code": 200, "status": "OK", "time": change.time,
              "detail": change.kind.replace("_", " ")}
    head = to_json({"type": "get_update", "data": data, "errors": errors}).decode()
    return f"{head[:-1]},{_push_tail(change.kind)}"


@lru_cache(maxsize=1)
def reaction_frame(change: Change) -> str:
    """The push of the `reactions` extension: a message's reactions after one was added or
    taken back, and who did it."""
    reaction = change.data
    assert isinstance(reaction, ReactionPayload)
    message = {"uuid": reaction.message, "from_flow": change.flow_uuid,
               "reactions": reaction.reactions}
    data = {"time": change.time, "flow": [], "message": [message],
            "user": [{"uuid": change.actor}], "meta": None}
    errors = {"code": 200, "status": "OK", "time": change.time,
              "detail": f"{change.kind.replace('_', ' ')}: {reaction.key}"}
    head = to_json({"type": "get_update", "data": data, "errors": errors}).decode()
    return f"{head[:-1]},{_push_tail(change.kind)}"


READ_EVENT = "flow_read"  # the `read` extension's push


def read_frame(change: Change) -> str | None:
    """The push of the `read` extension: the receipting user's read state in the flow of
    their receipt (None for a receipt logged before it carried one)."""
    payload = change.data
    if not isinstance(payload, ContentPayload) or not isinstance(payload.data.get("read"), dict):
        return None
    state = payload.data["read"]
    flow = {"uuid": payload.data["room"], "read": state.get("read"),
            "unread": state.get("unread"), "mentions": state.get("mentions")}
    data = {"time": change.time, "flow": [flow], "message": [], "user": [], "meta": None}
    errors = {"code": 200, "status": "OK", "time": change.time, "detail": "flow read"}
    head = to_json({"type": "get_update", "data": data, "errors": errors}).decode()
    return f"{head[:-1]},{_push_tail(READ_EVENT)}"


@lru_cache(maxsize=1)
def typing_frame(change: Change, typists: tuple[str, ...]) -> str:
    """The push of the `typing` extension: who types in the flow now."""
    data = {"time": change.time, "flow": [{"uuid": change.flow_uuid, "typing": list(typists)}],
            "message": [], "user": [], "meta": None}
    errors = {"code": 200, "status": "OK", "time": change.time, "detail": str(change.kind)}
    head = to_json({"type": "get_update", "data": data, "errors": errors}).decode()
    return f"{head[:-1]},{_push_tail(Kind.TYPING)}"
