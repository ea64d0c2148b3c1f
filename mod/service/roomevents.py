"""Room events that are not messages (reactions, custom types): kept whole, relayed as they
came, to Matrix clients only.

Such an event is one change-log row of kind "room_event" and nothing else: MTP has no
message for it, so `get_update` and MTP pushes pass it over. Members send reactions; other
events follow the rules of sending a message (in a channel, only its owner). Their author,
the flow's owner or a superuser redacts them (a reaction taken back), which is one more such
row. Retries by the client's transaction ID return the first run's change.
"""

from __future__ import annotations

from typing import Any

from mod.changes import Kind
from mod.db import dbhandler as db
from mod.db import userdata
from mod.db.engine import Conn, Engine
from mod.error import ServiceError
from mod.service import reactions, rights
from mod.service.common import Caller, Committed, committed_before, logged_since, now, retry_key

REACTION = "m.reaction"


class RoomEvents:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    async def send(self, caller: Caller, flow_uuid: str, event_type: str, relates_to: str,
                   txn: str, payload: dict[str, Any]) -> Committed[None]:
        """Log an event of `event_type`; `relates_to` is the event it relates to (or "")."""
        key = retry_key("txn", caller.token_hash, flow_uuid, "event", txn)
        return await self.engine.write(_send, caller, flow_uuid, event_type, relates_to, key,
                                       payload, now())

    async def redact(self, caller: Caller, flow_uuid: str, position: int, txn: str,
                     payload: dict[str, Any]) -> Committed[None]:
        """Log the redaction of the room event logged at `position` (404 if there is none)."""
        key = retry_key("txn", caller.token_hash, flow_uuid, "redact", txn)
        return await self.engine.write(_redact, caller, flow_uuid, position, key, payload,
                                       now())


def _repeat(conn: Conn, key: str, stamp: int) -> Committed[None] | None:
    earlier = committed_before(conn, key, stamp)
    return None if earlier is None else Committed(None, earlier)


def _log(conn: Conn, caller: Caller, flow_uuid: str, relates_to: str, key: str,
         payload: dict[str, Any], stamp: int) -> Committed[None]:
    mark = len(conn.changes)
    userdata.log_room_event(conn, flow_uuid, caller.uuid, relates_to, stamp, payload)
    done = Committed(None, logged_since(conn, mark))
    db.txn_store(conn, key, str(done.position), stamp)
    return done


def _send(conn: Conn, caller: Caller, flow_uuid: str, event_type: str, relates_to: str, key: str,
          payload: dict[str, Any], stamp: int) -> Committed[None]:
    earlier = _repeat(conn, key, stamp)
    if earlier is not None:
        return earlier
    flow = rights.access(conn, flow_uuid, caller)
    if event_type == REACTION:
        rights.read(flow, caller)
    else:
        rights.send(flow, caller)
    return _log(conn, caller, flow_uuid, relates_to, key, payload, stamp)


def _redact(conn: Conn, caller: Caller, flow_uuid: str, position: int, key: str,
            payload: dict[str, Any], stamp: int) -> Committed[None]:
    earlier = _repeat(conn, key, stamp)
    if earlier is not None:
        return earlier
    flow = rights.access(conn, flow_uuid, caller)
    rights.read(flow, caller)
    target = db.change_at(conn, position)
    if target is not None and target.flow_uuid == flow_uuid \
            and target.kind == Kind.REACTION_ADDED:
        done = reactions.remove_at(conn, caller, flow, position, payload, stamp)
        db.txn_store(conn, key, str(done.position), stamp)
        return Committed(None, done.position)
    if target is None or target.flow_uuid != flow_uuid or target.kind != Kind.ROOM_EVENT:
        raise ServiceError(404, f"No event ${position} that can be redacted in this room")
    if target.actor != caller.uuid and flow.owner != caller.uuid and not caller.is_superuser:
        raise ServiceError(403, "Only the author or the flow's owner may redact it")
    return _log(conn, caller, flow_uuid, "", key, payload, stamp)
