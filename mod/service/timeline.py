"""What clients catch up from: MTP's get_update, and the snapshots of the change log the
Matrix views render (`snapshots`): /sync, history pages, room state, single events, an
event's context and its relations.

Each snapshot is read in one reader job; a flow's is read only by a caller who may read the
flow, checked in the same job (404, 403). Nothing is rendered here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mod.changes import Change, Kind
from mod.db import dbhandler as db
from mod.db import readstate as readstate_db
from mod.db import userdata
from mod.db.engine import Conn, Engine
from mod.service import readstate, rights, syncread
from mod.service.common import Caller
from mod.service.readstate import ReadState
from mod.service.records import Flow, Message
from mod.service.snapshots import (
    EventContext,
    Excerpt,
    InitialSync,
    SyncChanges,
    deletions,
    excerpt,
    named,
    people,
)


class Timeline:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    async def initial_sync(self, caller: Caller, upto: int, exact: bool, limit: int
                           ) -> InitialSync:
        """The caller's flows up to `upto` (`exact`), else up to the newest change, each
        with its newest `limit + 1` changes; their invitations and kept data."""
        return await self.engine.read(syncread.initial, caller.uuid, upto, exact, limit)

    async def sync_changes(self, caller: Caller, since: int, upto: int, limit: int,
                           full_state: bool) -> SyncChanges:
        """The changes in (since, upto] of the caller's flows and about the caller."""
        return await self.engine.read(syncread.incremental, caller.uuid, since, upto, limit,
                                      full_state)

    async def page(self, caller: Caller, flow_uuid: str, start: int | None, stop: int | None,
                   backwards: bool, limit: int) -> Excerpt:
        """Up to `limit` changes of a flow's timeline from position `start` (itself included
        going backwards) towards `stop`: newest first going backwards, else oldest first."""
        return await self.engine.read(_page, caller, flow_uuid, start, stop, backwards, limit)

    async def state(self, caller: Caller, flow_uuid: str) -> Excerpt:
        """A flow's state changes, oldest first."""
        return await self.engine.read(_state, caller, flow_uuid)

    async def event(self, caller: Caller, flow_uuid: str, message: str, position: int | None
                    ) -> Excerpt:
        """The change of a flow that sent a message, or the one at a position (none when
        neither is given or it is another flow's)."""
        return await self.engine.read(_event, caller, flow_uuid, message, position)

    async def context(self, caller: Caller, flow_uuid: str, message: str,
                      position: int | None, limit: int) -> EventContext | None:
        """An event's change (as `event` finds it) with up to `limit` changes around it and
        the state up to it; None when there is no such event."""
        return await self.engine.read(_context, caller, flow_uuid, message, position, limit)

    async def relations(self, caller: Caller, flow_uuid: str, event_id: str, message: str,
                        position: int | None, start: int | None, limit: int, backwards: bool
                        ) -> Excerpt | None:
        """Up to `limit` changes relating to an event (room events naming `event_id`, edits
        of its message), from position `start`; None when there is no such event."""
        return await self.engine.read(_relations, caller, flow_uuid, event_id, message,
                                      position, start, limit, backwards)

    async def get_update(self, caller: Caller, since: int, reactions: bool = False,
                         read: bool = False, mentions: bool = False) -> Update:
        """What changed at or after `since` in the caller's flows: flows, messages, the
        public profiles of their members; with `reactions`, each message with its
        `reactions` (and those whose reactions changed among them); with `read`, the
        caller's read state in each flow returned, and in those where it or the messages
        changed; with `mentions`, each message with whom it names."""
        return await self.engine.read(_update, caller.uuid, since, reactions, read, mentions)

    async def counts(self) -> dict[str, int]:
        return await self.engine.read(db.counts)

    async def ping(self) -> None:
        """A trivial query: whether the database answers (GET /health)."""
        await self.engine.read(db.ping)


def _readable(conn: Conn, caller: Caller, flow_uuid: str) -> None:
    rights.read(rights.access(conn, flow_uuid, caller), caller)


def _page(conn: Conn, caller: Caller, flow_uuid: str, start: int | None, stop: int | None,
          backwards: bool, limit: int) -> Excerpt:
    _readable(conn, caller, flow_uuid)
    if backwards:
        rows = db.flow_changes(conn, [flow_uuid], after=stop or 0,
                               before=None if start is None else start + 1, limit=limit,
                               backwards=True)
    else:
        rows = db.flow_changes(conn, [flow_uuid], after=start or 0,
                               before=None if stop is None else stop + 1, limit=limit)
    return excerpt(conn, flow_uuid, rows)


def _state(conn: Conn, caller: Caller, flow_uuid: str) -> Excerpt:
    _readable(conn, caller, flow_uuid)
    return excerpt(conn, flow_uuid, db.flow_state_changes(conn, flow_uuid),
                   with_deletions=False)


def _found(conn: Conn, flow_uuid: str, message: str, position: int | None) -> list[Change]:
    if message:
        return db.subject_changes(conn, flow_uuid, [Kind.MESSAGE_SENT], [message])[:1]
    row = db.change_at(conn, position) if position is not None else None
    return [row] if row is not None and row.flow_uuid == flow_uuid else []


def _event(conn: Conn, caller: Caller, flow_uuid: str, message: str, position: int | None
           ) -> Excerpt:
    _readable(conn, caller, flow_uuid)
    return excerpt(conn, flow_uuid, _found(conn, flow_uuid, message, position))


def _context(conn: Conn, caller: Caller, flow_uuid: str, message: str, position: int | None,
             limit: int) -> EventContext | None:
    _readable(conn, caller, flow_uuid)
    found = _found(conn, flow_uuid, message, position)
    if not found:
        return None
    at = found[0].position
    event = [row for row in [db.change_at(conn, at)] if row]
    before = db.flow_changes(conn, [flow_uuid], before=at, limit=limit // 2 + limit % 2,
                             backwards=True)
    after = db.flow_changes(conn, [flow_uuid], after=at, limit=limit // 2)
    state = db.flow_state_changes(conn, flow_uuid, before=at + 1)
    gone = deletions(conn, flow_uuid, [*event, *before, *after])
    return EventContext(at, tuple(event), tuple(before), tuple(after), tuple(state), gone,
                        people(conn, named([*event, *before, *after, *state, *gone])))


def _relations(conn: Conn, caller: Caller, flow_uuid: str, event_id: str, message: str,
               position: int | None, start: int | None, limit: int, backwards: bool
               ) -> Excerpt | None:
    _readable(conn, caller, flow_uuid)
    if not _found(conn, flow_uuid, message, position):
        return None
    if backwards:
        rows = userdata.related_changes(conn, flow_uuid, event_id, message, 0, start, limit,
                                        True)
    else:
        rows = userdata.related_changes(conn, flow_uuid, event_id, message, start or 0, None,
                                        limit, False)
    return excerpt(conn, flow_uuid, rows)


@dataclass(frozen=True, slots=True)
class Update:
    flows: list[Flow]
    messages: list[Message]
    users: list[dict[str, Any]]
    read: dict[str, ReadState]


def _update(conn: Conn, user_uuid: str, since: int, with_reactions: bool, read: bool,
            with_mentions: bool) -> Update:
    flows, messages, users = db.update_since(conn, user_uuid, since, with_reactions)
    db.with_extras(conn, messages, with_reactions, with_mentions)
    states: dict[str, ReadState] = {}
    if read:
        wanted = {flow["uuid"] for flow in flows} | {m["from_flow"] for m in messages} \
            | set(readstate_db.receipt_flows(conn, user_uuid, since))
        known = {flow["uuid"] for flow in flows}
        flows = flows + db.flows_by_uuid(conn, sorted(wanted - known))
        states = readstate.states(conn, user_uuid, sorted(wanted))
    return Update(flows, messages, [db.public_profile(user) for user in users], states)
