"""Room events that are not messages (reactions, custom types): kept whole, relayed as they
came, to Matrix clients only.

Such an event is one change-log row of kind "room_event" and nothing else: MTP has no
message for it, so `get_update` and MTP pushes pass it over. Members send reactions; other
events follow the rules of sending a message (in a channel, only its owner). Retries by the
client's transaction ID return the first run's change.
"""

from __future__ import annotations

from typing import Any

from mod.db import dbhandler as db
from mod.db import userdata
from mod.db.engine import Engine, Tx
from mod.service import rights
from mod.service.common import RETRY_WINDOW, Caller, Committed, logged_since, now, retry_key

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


def _send(tx: Tx, caller: Caller, flow_uuid: str, event_type: str, relates_to: str, key: str,
          payload: dict[str, Any], stamp: int) -> Committed[None]:
    earlier = db.txn_result(tx, key, stamp - RETRY_WINDOW)
    if earlier is not None:
        return Committed(None, int(earlier))
    flow = rights.access(tx, flow_uuid, caller)
    if event_type == REACTION:
        rights.read(flow, caller)
    else:
        rights.send(flow, caller)
    mark = len(tx.changes)
    userdata.log_room_event(tx, flow_uuid, caller.uuid, relates_to, stamp, payload)
    done = Committed(None, logged_since(tx, mark))
    db.txn_store(tx, key, str(done.position), stamp)
    return done
