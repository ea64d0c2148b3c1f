"""Typing notices, read receipts and read markers (the service's `ephemeral`).

`m.read` and `m.read.private` receipts are kept by the service; `m.fully_read` (the read
marker) is room account data, as the spec has it.
"""

from __future__ import annotations

from typing import Any

from mod.protocol.matrix.api import Empty
from mod.protocol.matrix.errors import Code, MatrixError
from mod.protocol.matrix.rooms import room_flow, user_uuid
from mod.protocol.matrix.routing import Call
from mod.service import readstate

FULLY_READ = readstate.FULLY_READ


async def own_user(call: Call) -> str:
    """The caller's uuid, when the path's userId names the caller; 403 otherwise."""
    uuid = await user_uuid(call, call.param("userId"))
    if uuid != call.caller.uuid:
        raise MatrixError(403, Code.FORBIDDEN, "You may only do this as yourself")
    return uuid


async def typing(call: Call) -> Empty:
    """PUT /_matrix/client/v3/rooms/{roomId}/typing/{userId}"""
    flow = room_flow(call)
    body = await call.json()
    await own_user(call)
    state, timeout = body.get("typing"), body.get("timeout")
    if not isinstance(state, bool):
        raise MatrixError(400, Code.BAD_JSON, "typing must be true or false")
    if timeout is not None and (not isinstance(timeout, int) or isinstance(timeout, bool)
                                or timeout < 0):
        raise MatrixError(400, Code.BAD_JSON, "timeout must be milliseconds")
    await call.service.ephemeral.typing(call.caller, flow, state, timeout)
    return Empty()


def _event_id(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value.startswith("$"):
        raise MatrixError(400, Code.BAD_JSON, f"{what} must be an event ID")
    return value


async def _mark(call: Call, flow: str, receipt_type: str, event_id: str, thread: str = ""
                ) -> None:
    if receipt_type == FULLY_READ:
        await call.service.userdata.put(call.caller, call.caller.uuid, flow, FULLY_READ,
                                        {"event_id": event_id})
    else:
        await call.service.ephemeral.receipt(call.caller, flow, receipt_type, event_id, thread)


async def receipt(call: Call) -> Empty:
    """POST /_matrix/client/v3/rooms/{roomId}/receipt/{receiptType}/{eventId}"""
    flow = room_flow(call)
    body = await call.json()
    thread = body.get("thread_id", "")
    if not isinstance(thread, str) or len(thread) > 255:
        raise MatrixError(400, Code.BAD_JSON, "thread_id must be a thread's event ID or main")
    await _mark(call, flow, call.param("receiptType"),
                _event_id(call.param("eventId"), "eventId"), thread)
    return Empty()


async def read_markers(call: Call) -> Empty:
    """POST /_matrix/client/v3/rooms/{roomId}/read_markers"""
    flow = room_flow(call)
    body = await call.json()
    for marker in (FULLY_READ, "m.read", "m.read.private"):
        if body.get(marker) is not None:
            await _mark(call, flow, marker, _event_id(body[marker], marker))
    return Empty()
