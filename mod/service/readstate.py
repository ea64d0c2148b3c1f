"""Read state, one for both protocols and every device: where a user has read up to in a flow,
and how many messages of others came after.

A user's read marker in a flow is the latest message named by their read receipts of its main
timeline (Matrix `m.read` and `m.read.private`; MTP's `mark_read` sets `m.read` and Matrix's
`m.fully_read` marker), or their own latest message there, whichever is later: writing in a
flow reads it, as in Matrix servers. Their unread count is the messages of others after the
marker that are not deleted (with no marker, those since they joined), counted up to
MAX_UNREAD, and of those, how many name them (mentions). A receipt's change-log payload
carries the receipting user's new state (`"read"`), so the MTP push of the `read` extension
needs no read.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from mod.db import mentions as mentiondb
from mod.db import readstate as store
from mod.db import userdata
from mod.db.engine import Conn, Engine
from mod.error import ServiceError
from mod.service import rights
from mod.service.common import Caller, Committed, logged_since, now
from mod.service.eventids import message_event_id, parse_event_id

MAX_UNREAD = 9999  # a count past this shows as this (a bound on the rows one count reads)
FULLY_READ = "m.fully_read"  # Matrix's read marker: room account data


@dataclass(frozen=True, slots=True)
class ReadState:
    """The uuid of the last message read (None: none yet), the unread messages, and how
    many of them mention the user."""

    read: str | None
    unread: int
    mentions: int = 0

    def payload(self) -> dict[str, Any]:
        return {"read": self.read, "unread": self.unread, "mentions": self.mentions}


def states(conn: Conn, user_uuid: str, flow_uuids: list[str]) -> dict[str, ReadState]:
    """The user's read state in each of these flows they are a member of."""
    joined = store.joined(conn, user_uuid, flow_uuids)
    receipts = store.receipts_of(conn, user_uuid, list(joined))
    found = {}
    for flow, since in joined.items():
        named = [uuid for event_id in receipts.get(flow, [])
                 if (uuid := _message_of(conn, flow, event_id))]
        own = store.last_own(conn, flow, user_uuid)
        ids = store.message_ids(conn, flow, [*named, *([own] if own else [])])
        read = max(ids, key=ids.__getitem__) if ids else None
        after, start = (ids[read], 0) if read else (0, since)
        unread = store.count_unread(conn, flow, user_uuid, after, start, MAX_UNREAD)
        mentioned = mentiondb.count_unread(conn, flow, user_uuid, after, start, MAX_UNREAD) \
            if unread else 0
        found[flow] = ReadState(read, unread, mentioned)
    return found


def _message_of(conn: Conn, flow_uuid: str, event_id: str) -> str | None:
    """The message an event ID stands for in reading order: its own, or the last one sent
    before that change (a receipt of a reaction or a membership)."""
    ref = parse_event_id(event_id)
    if ref is None:
        return None
    return ref.message or store.message_before(conn, flow_uuid, ref.position)


def receipt(conn: Conn, flow_uuid: str, user_uuid: str, receipt_type: str, thread: str,
            event_id: str, ts: int, stamp: int, private: bool) -> None:
    """Keep and log a receipt, the user's read state after it in the log's payload."""
    userdata.keep_receipt(conn, flow_uuid, user_uuid, receipt_type, thread, event_id, ts)
    state = states(conn, user_uuid, [flow_uuid]).get(flow_uuid)
    extra = {"read": state.payload()} if state is not None else None
    userdata.log_receipt(conn, flow_uuid, user_uuid, receipt_type, thread, event_id, ts, stamp,
                         private, extra)


class ReadStates:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    async def of(self, caller: Caller, flow_uuids: list[str]) -> dict[str, ReadState]:
        """The caller's read state in each of these flows they are a member of."""
        return await self.engine.read(states, caller.uuid, flow_uuids)

    async def mark(self, caller: Caller, flow_uuid: str, message_uuid: str
                   ) -> Committed[ReadState]:
        """Read up to a message of a flow (members; 404 for another flow's or an unknown
        message). A marker never moves back: a message before it changes nothing."""
        return await self.engine.write(_mark, caller, flow_uuid, message_uuid,
                                       int(time.time() * 1000), now())


def _mark(conn: Conn, caller: Caller, flow_uuid: str, message_uuid: str, ts: int, stamp: int
          ) -> Committed[ReadState]:
    rights.read(rights.access(conn, flow_uuid, caller), caller)
    position = store.message_ids(conn, flow_uuid, [message_uuid]).get(message_uuid)
    if position is None:
        raise ServiceError(404, f"No message {message_uuid} in this flow")
    state = states(conn, caller.uuid, [flow_uuid])[flow_uuid]
    if state.read is not None and \
            store.message_ids(conn, flow_uuid, [state.read])[state.read] >= position:
        return Committed(state, 0)
    mark = len(conn.changes)
    event_id = message_event_id(message_uuid)
    receipt(conn, flow_uuid, caller.uuid, "m.read", "", event_id, ts, stamp, False)
    userdata.put_account_data(conn, caller.uuid, flow_uuid, FULLY_READ, {"event_id": event_id},
                              stamp)
    return Committed(states(conn, caller.uuid, [flow_uuid])[flow_uuid],
                     logged_since(conn, mark))
