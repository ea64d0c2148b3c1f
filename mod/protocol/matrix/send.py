"""Matrix message events: send (new messages and `m.replace` edits) and redact.

An `m.room.message` becomes an MTP message whose text is the event's `body`; an edit becomes
`edited_message`, a redaction `delete_message`. The full Matrix content, the transaction ID
and a one-way tag of the sending token travel in the change's payload under "mx", so Matrix
readers get back exactly what was sent, and the sender its `unsigned.transaction_id`; so does
the time the server took the event in, in milliseconds, for `origin_server_ts`.

Retries are safe per access token and transaction ID: a new message through the service's
retry key (in the same transaction as the message), an edit or redaction through the
retried-request table, which maps the request to the event it created.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

from mod.db import dbhandler as db
from mod.error import ServiceError
from mod.protocol.matrix import ids, views
from mod.protocol.matrix.api import EditContent, EventIdReply, MessageContent, RedactRequest
from mod.protocol.matrix.errors import Code, MatrixError
from mod.protocol.matrix.events import token_digest
from mod.protocol.matrix.rooms import room_flow
from mod.protocol.matrix.routing import Call, route, validate

RETRY_WINDOW = 24 * 3600


def _key(call: Call, what: str, flow: str) -> str:
    text = "\0".join(("matrix", what, call.caller.token_hash, flow, call.param("txnId")))
    return hashlib.sha256(text.encode()).hexdigest()


def _extra(call: Call, mark: str = "", **more: Any) -> dict[str, Any]:
    extra: dict[str, Any] = {"txn": call.param("txnId"), "ts": int(time.time() * 1000),
                             "tok": token_digest(call.caller.token_hash), **more}
    if mark:
        extra["mark"] = mark
    return {"mx": extra}


def _plain(content: dict[str, Any]) -> bool:
    return content.keys() == {"msgtype", "body"} and content["msgtype"] == "m.text"


@route("PUT", "/rooms/{roomId}/send/{eventType}/{txnId}")
async def send(call: Call) -> EventIdReply:
    """PUT /_matrix/client/v3/rooms/{roomId}/send/{eventType}/{txnId}"""
    flow = room_flow(call)
    content = await call.json()
    if call.param("eventType") != "m.room.message":
        raise MatrixError(400, Code.UNRECOGNIZED,
                          "This server stores only m.room.message events")
    relation = content.get("m.relates_to")
    if isinstance(relation, dict) and relation.get("rel_type") == "m.replace":
        return await _edit(call, flow, content)
    message = validate(MessageContent, content)
    extra = _extra(call) if _plain(content) else _extra(call, content=content)
    stored = await call.service.send_message(
        call.caller, flow, 0, {"text": message.body}, retry_key=_key(call, "send", flow),
        extra=extra)
    return EventIdReply(event_id=ids.message_event_id(stored["uuid"]))


async def _target(call: Call, flow: str, event_id: str) -> str:
    """The uuid of the message an event ID names in this room."""
    ref = ids.parse_event_id(event_id)
    if ref is None or not ref.message:
        raise MatrixError(400, Code.INVALID_PARAM, f"{event_id} is not a message event")
    message = await call.service.message(call.caller, ref.message)
    if message["from_flow"] != flow:
        raise MatrixError(404, Code.NOT_FOUND, f"No event {event_id} in this room")
    return ref.message


async def _repeat(call: Call, key: str) -> str | None:
    return await call.matrix.engine.read(db.txn_result, key, int(time.time()) - RETRY_WINDOW)


async def _remember(call: Call, key: str, flow: str, kind: str, uuid: str, start: int
                    ) -> str:
    position = await call.matrix.engine.read(views.change_position, flow, kind, uuid, start,
                                             key[:24])
    if position is None:
        raise ServiceError(500, "The change was stored but cannot be found")
    event_id = ids.change_event_id(position)
    await call.matrix.engine.write(db.txn_store, key, event_id, int(time.time()))
    return event_id


async def _edit(call: Call, flow: str, content: dict[str, Any]) -> EventIdReply:
    edit = validate(EditContent, content)
    key = _key(call, "edit", flow)
    earlier = await _repeat(call, key)
    if earlier is not None:
        return EventIdReply(event_id=earlier)
    uuid = await _target(call, flow, edit.relates_to.event_id or "")
    start = call.matrix.hub.position
    await call.service.edit_message(call.caller, uuid, edit.new_content.body,
                                    extra=_extra(call, key[:24], content=content))
    return EventIdReply(event_id=await _remember(call, key, flow, "message_edited", uuid,
                                                 start))


@route("PUT", "/rooms/{roomId}/redact/{eventId}/{txnId}")
async def redact(call: Call) -> EventIdReply:
    """PUT /_matrix/client/v3/rooms/{roomId}/redact/{eventId}/{txnId}"""
    flow = room_flow(call)
    body = await call.body(RedactRequest)
    key = _key(call, "redact", flow)
    earlier = await _repeat(call, key)
    if earlier is not None:
        return EventIdReply(event_id=earlier)
    uuid = await _target(call, flow, call.param("eventId"))
    start = call.matrix.hub.position
    more = {"reason": body.reason} if body.reason else {}
    await call.service.delete_message(call.caller, uuid, extra=_extra(call, key[:24], **more))
    return EventIdReply(event_id=await _remember(call, key, flow, "message_deleted", uuid,
                                                 start))
