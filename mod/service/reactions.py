"""Reactions to messages, for both protocols: MTP's `react` and Matrix `m.annotation` events
are one store (`reactions`) and one pair of change kinds, so each side sees the other's.

A reaction is a key (an emoji, or any short text) a member puts on a message, once per key;
adding one logs `reaction_added` (Matrix renders it as an `m.reaction` event, and a Matrix
redaction of that event takes it back), taking one back logs `reaction_removed`. Both
payloads carry the message's reactions after the change, so pushes need no further read.
"""

from __future__ import annotations

from typing import Any

from mod.changes import Kind
from mod.db import dbhandler as db
from mod.db import reactions as store
from mod.db.engine import Conn, Engine
from mod.error import ServiceError
from mod.records import ReactionGroup
from mod.service import rights
from mod.service.common import Caller, Committed, committed_before, now, retry_key

MAX_KEY = 64  # characters of a reaction key (the column's size)


def check_key(key: str) -> None:
    if not key:
        raise ServiceError(400, "A reaction needs a key (an emoji or a short text)")
    if len(key) > MAX_KEY:
        raise ServiceError(415, f"A reaction key has at most {MAX_KEY} characters")


class Reactions:
    def __init__(self, engine: Engine, limit: int) -> None:
        self.engine = engine
        self.limit = limit  # different keys one user may put on one message

    async def add(self, caller: Caller, message_uuid: str, key: str, flow_uuid: str = "",
                  txn: str | None = None, extra: dict[str, Any] | None = None
                  ) -> Committed[list[ReactionGroup]]:
        """React to a message with `key` (409 if the caller already did). With `flow_uuid`,
        the message must be in that flow; `extra` (a Matrix sender's event) goes into the
        change's payload, and `txn` makes it retry-safe."""
        check_key(key)
        retry = None if txn is None else retry_key("txn", caller.token_hash, flow_uuid,
                                                   "react", txn)
        return await self.engine.write(_add, caller, message_uuid, key, flow_uuid, self.limit,
                                       retry, extra, now())

    async def remove(self, caller: Caller, message_uuid: str, key: str
                     ) -> Committed[list[ReactionGroup]]:
        """Take back the caller's reaction `key` to a message (404 if there is none)."""
        check_key(key)
        return await self.engine.write(_remove_own, caller, message_uuid, key, now())


def _message(conn: Conn, caller: Caller, message_uuid: str, flow_uuid: str) -> rights.Access:
    """The flow of a message the caller may react to (404 if deleted or not in `flow_uuid`)."""
    found = db.message_state(conn, message_uuid)
    if found is None or (flow_uuid and found[0]["from_flow"] != flow_uuid):
        raise ServiceError(404, f"No message {message_uuid}")
    message, deleted = found
    if deleted:
        raise ServiceError(404, f"Message {message_uuid} was deleted")
    flow = rights.access(conn, message["from_flow"], caller)
    rights.react(flow, caller)
    return flow


def _log(conn: Conn, kind: Kind, flow_uuid: str, actor: str, message_uuid: str, key: str,
         stamp: int, extra: dict[str, Any] | None, redacts: int = 0
         ) -> Committed[list[ReactionGroup]]:
    groups = store.of_messages(conn, [message_uuid]).get(message_uuid, [])
    reaction: dict[str, Any] = {"message": message_uuid, "key": key, "reactions": groups}
    if redacts:
        reaction["redacts"] = redacts
    change = db.log_change(conn, stamp, flow_uuid, kind, actor, message_uuid,
                           {"reaction": reaction, **(extra or {})})
    return Committed(groups, change.position)


def _add(conn: Conn, caller: Caller, message_uuid: str, key: str, flow_uuid: str, limit: int,
         retry: str | None, extra: dict[str, Any] | None, stamp: int
         ) -> Committed[list[ReactionGroup]]:
    earlier = committed_before(conn, retry, stamp)
    if earlier is not None:  # a Matrix retry: its event ID is all it needs
        return Committed([], earlier)
    flow = _message(conn, caller, message_uuid, flow_uuid)
    if extra is None:
        rights.plaintext(flow)  # an encrypted room's members expect only ciphertext
    if store.find(conn, message_uuid, caller.uuid, key) is not None:
        raise ServiceError(409, f"You already reacted with {key} to this message")
    if store.count_by(conn, message_uuid, caller.uuid) >= limit:
        raise ServiceError(403, f"At most {limit} different reactions per message and user")
    store.add(conn, flow.flow, message_uuid, caller.uuid, key)
    done = _log(conn, Kind.REACTION_ADDED, flow.flow, caller.uuid, message_uuid, key, stamp,
                extra)
    store.placed(conn, message_uuid, caller.uuid, key, done.position)
    if retry is not None:
        db.txn_store(conn, retry, str(done.position), stamp)
    return done


def _remove_own(conn: Conn, caller: Caller, message_uuid: str, key: str, stamp: int
                ) -> Committed[list[ReactionGroup]]:
    flow = _message(conn, caller, message_uuid, "")
    position = store.find(conn, message_uuid, caller.uuid, key)
    if position is None:
        raise ServiceError(404, f"You have no reaction {key} on this message")
    store.remove(conn, message_uuid, caller.uuid, key)
    return _log(conn, Kind.REACTION_REMOVED, flow.flow, caller.uuid, message_uuid, key, stamp,
                None, position)


def remove_at(conn: Conn, caller: Caller, flow: rights.Access, position: int,
              extra: dict[str, Any], stamp: int) -> Committed[list[ReactionGroup]]:
    """Take back the reaction the change at `position` added (a Matrix redaction of it):
    its author, the flow's owner or a superuser. 404 if it was already taken back."""
    found = store.at(conn, flow.flow, position)
    if found is None:
        raise ServiceError(404, f"The reaction ${position} was already taken back")
    message_uuid, user_uuid, key = found
    rights.react(flow, caller, user_uuid)
    store.remove(conn, message_uuid, user_uuid, key)
    return _log(conn, Kind.REACTION_REMOVED, flow.flow, caller.uuid, message_uuid, key, stamp,
                extra, position)
