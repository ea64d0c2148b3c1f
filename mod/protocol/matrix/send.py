"""Matrix room events: send (new messages, `m.replace` edits, any other type) and redact.

An `m.room.message` becomes an MTP message whose text is the event's `body` (a file of this
server's media store, `m.image` and the like, also its bytes: `service.media.for_mtp`); an
edit becomes `edited_message`, a redaction `delete_message`; a reply names the message it
answers (`reply_to`). An `m.annotation` of a message is a reaction (the service's
`reactions`, shared with MTP), and redacting it takes it back. Any other event type is kept
whole and relayed to Matrix clients only (the service's `room_events`), and so is the
redaction of such an event. The full Matrix content, the
transaction ID and a one-way tag of the sending token travel in the change's payload under
"mx", so Matrix readers get back exactly what was sent, and the sender its
`unsigned.transaction_id`; so does the time the server took the event in, in milliseconds,
for `origin_server_ts`.

Retries are safe per access token and transaction ID: the service keeps what the first run
committed under the transaction ID, and a retry gets the same event ID back.
"""

from __future__ import annotations

import time
from typing import Any

from mod.error import ServiceError
from mod.protocol.matrix import ids
from mod.protocol.matrix.api import EditContent, EventIdReply, MessageContent, RedactRequest
from mod.protocol.matrix.errors import REACT, Code, MatrixError, from_service
from mod.protocol.matrix.events import token_digest
from mod.protocol.matrix.rooms import room_flow
from mod.protocol.matrix.routing import Call, validate
from mod.service import richtext

ENCRYPTED = "m.room.encrypted"
REACTION = "m.reaction"


def _extra(call: Call, **more: Any) -> dict[str, Any]:
    extra: dict[str, Any] = {"txn": call.param("txnId"), "ts": int(time.time() * 1000),
                             "tok": token_digest(call.caller.token_hash), **more}
    return {"mx": extra}


def _plain(content: dict[str, Any]) -> bool:
    return content.keys() == {"msgtype", "body"} and content["msgtype"] == "m.text"


async def send(call: Call) -> EventIdReply:
    """PUT /_matrix/client/v3/rooms/{roomId}/send/{eventType}/{txnId}"""
    flow = room_flow(call)
    content = await call.json()
    if call.param("eventType") == ENCRYPTED:
        return await _encrypted(call, flow, content)
    if call.param("eventType") != "m.room.message":
        return await _opaque(call, flow, call.param("eventType"), content)
    _sanitised(content)
    relation = content.get("m.relates_to")
    if isinstance(relation, dict) and relation.get("rel_type") == "m.replace":
        _sanitised(content.get("m.new_content"))
        return await _edit(call, flow, content)
    validate(MessageContent, content)
    extra = _extra(call) if _plain(content) else _extra(call, content=content)
    text, media = await call.service.media.for_mtp(content)
    stored = await call.service.messages.send(call.caller, flow, 0, text,
                                              txn=call.param("txnId"), extra=extra, media=media,
                                              reply_to=_answered(content),
                                              mention_logins=_named(call, content))
    return EventIdReply(event_id=ids.message_event_id(stored.value["uuid"]))


def _sanitised(content: Any) -> None:
    """A formatted body, kept as the safe subset (the service's `richtext`)."""
    if isinstance(content, dict) and content.get("format") == richtext.HTML \
            and isinstance(content.get("formatted_body"), str):
        content["formatted_body"] = richtext.sanitise(content["formatted_body"])


def _named(call: Call, content: dict[str, Any]) -> list[str]:
    """The logins of this server's users an `m.mentions` names."""
    mentions = content.get("m.mentions")
    users = mentions.get("user_ids") if isinstance(mentions, dict) else None
    if not isinstance(users, list):
        return []
    logins = (ids.login_of(user, call.server_name) for user in users if isinstance(user, str))
    return [login for login in logins if login]


def _answered(content: dict[str, Any]) -> str:
    """The uuid of the message a reply answers ("" for none, or for an event that is not a
    message: MTP cannot name it)."""
    relation = content.get("m.relates_to")
    reply = relation.get("m.in_reply_to") if isinstance(relation, dict) else None
    event_id = reply.get("event_id") if isinstance(reply, dict) else None
    ref = ids.parse_event_id(event_id) if isinstance(event_id, str) else None
    return ref.message if ref is not None and ref.message else ""


async def _encrypted(call: Call, flow: str, content: dict[str, Any]) -> EventIdReply:
    """Ciphertext, stored whole and relayed as it came; MTP reads the service's
    ENCRYPTED_TEXT instead."""
    if not isinstance(content.get("algorithm"), str):
        raise MatrixError(400, Code.BAD_JSON, "m.room.encrypted needs an algorithm")
    stored = await call.service.messages.send(
        call.caller, flow, 0, {}, txn=call.param("txnId"),
        extra=_extra(call, content=content, type=ENCRYPTED), encrypted=True)
    return EventIdReply(event_id=ids.message_event_id(stored.value["uuid"]))


async def _opaque(call: Call, flow: str, event_type: str, content: dict[str, Any]
                  ) -> EventIdReply:
    """Any other event type (a reaction, a custom one): kept and relayed as it came."""
    if not event_type or len(event_type) > 255:
        raise MatrixError(400, Code.INVALID_PARAM, "An event type has 1 to 255 characters")
    relation: dict[str, Any] = content.get("m.relates_to") or {}
    if not isinstance(relation, dict):
        relation = {}
    target = relation.get("event_id")
    ref = ids.parse_event_id(target) if isinstance(target, str) else None
    key = relation.get("key")
    if event_type == REACTION and ref is not None and ref.message \
            and relation.get("rel_type") == "m.annotation" and isinstance(key, str):
        try:
            added = await call.service.reactions.add(
                call.caller, ref.message, key, flow, call.param("txnId"),
                _extra(call, type=event_type, content=content))
        except ServiceError as exc:
            raise from_service(exc, REACT) from exc
        return EventIdReply(event_id=ids.change_event_id(added.position))
    done = await call.service.room_events.send(
        call.caller, flow, event_type, target if isinstance(target, str) else "",
        call.param("txnId"), _extra(call, type=event_type, content=content))
    return EventIdReply(event_id=ids.change_event_id(done.position))


def _target(event_id: str) -> str:
    """The uuid of the message an event ID names."""
    ref = ids.parse_event_id(event_id)
    if ref is None or not ref.message:
        raise MatrixError(400, Code.INVALID_PARAM, f"{event_id} is not a message event")
    return ref.message


async def _edit(call: Call, flow: str, content: dict[str, Any]) -> EventIdReply:
    edit = validate(EditContent, content)
    done = await call.service.messages.edit(
        call.caller, _target(edit.relates_to.event_id or ""), edit.new_content.body, flow,
        txn=call.param("txnId"), extra=_extra(call, content=content))
    return EventIdReply(event_id=ids.change_event_id(done.position))


async def redact(call: Call) -> EventIdReply:
    """PUT /_matrix/client/v3/rooms/{roomId}/redact/{eventId}/{txnId}"""
    flow = room_flow(call)
    body = await call.body(RedactRequest)
    more = {"reason": body.reason} if body.reason else {}
    ref = ids.parse_event_id(call.param("eventId"))
    if ref is not None and not ref.message and ref.index is None:
        content = {"redacts": call.param("eventId"), **more}
        redacted = await call.service.room_events.redact(
            call.caller, flow, ref.position, call.param("txnId"),
            _extra(call, type="m.room.redaction", content=content))
        return EventIdReply(event_id=ids.change_event_id(redacted.position))
    done = await call.service.messages.delete(
        call.caller, _target(call.param("eventId")), flow, txn=call.param("txnId"),
        extra=_extra(call, **more))
    return EventIdReply(event_id=ids.change_event_id(done.position))
