"""What clients catch up from: get_update, and read access to the change log for renderers.

The Matrix side renders change-log rows as events. A rendering runs whole on a database
reader thread, with a `Reader`: the queries it may make, and nothing that writes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, Concatenate, ParamSpec, TypeVar

from mod.changes import Change
from mod.db import dbhandler as db
from mod.db import media as mediadb
from mod.db import userdata
from mod.db.engine import Conn, Engine
from mod.service import rights
from mod.service.common import Caller
from mod.service.records import Flow, Message, User, users_of

P = ParamSpec("P")
T = TypeVar("T")


class Reader:
    """Read-only queries of the change log, flows and users, inside one reader job."""

    __slots__ = ("_tx",)

    def __init__(self, conn: Conn) -> None:
        self._tx = conn

    def last_position(self) -> int:
        return db.last_position(self._tx)

    def member_flows(self, user_uuid: str) -> list[str]:
        return db.member_flows(self._tx, user_uuid)

    def flow_changes(self, flow_uuids: Sequence[str], after: int = 0, before: int | None = None,
                     limit: int = 100, backwards: bool = False) -> list[Change]:
        return db.flow_changes(self._tx, flow_uuids, after, before, limit, backwards)

    def flow_state_changes(self, flow_uuid: str, before: int | None = None) -> list[Change]:
        return db.flow_state_changes(self._tx, flow_uuid, before)

    def user_changes(self, flow_uuids: Sequence[str], user_uuid: str, after: int, upto: int,
                     limit: int) -> list[Change]:
        return db.user_changes(self._tx, flow_uuids, user_uuid, after, upto, limit)

    def subject_changes(self, flow_uuid: str, kinds: Sequence[str], subjects: Sequence[str],
                        after: int = 0) -> list[Change]:
        return db.subject_changes(self._tx, flow_uuid, kinds, subjects, after)

    def change_at(self, position: int) -> Change | None:
        return db.change_at(self._tx, position)

    def invites_for(self, user_uuid: str) -> list[tuple[str, str, int]]:
        return db.invites_for(self._tx, user_uuid)

    def flows(self, uuids: Iterable[str]) -> list[Flow]:
        return db.flows_by_uuid(self._tx, uuids)

    def users(self, uuids: Iterable[str]) -> list[User]:
        return users_of(db.users_by_uuid(self._tx, uuids))

    def avatars(self, uuids: Iterable[str]) -> dict[str, str]:
        """user uuid -> the media ID of the user's avatar, for those who have one."""
        return mediadb.avatars(self._tx, list(uuids))

    def receipts(self, flow_uuids: list[str], viewer: str
                 ) -> list[tuple[str, str, str, str, str, int]]:
        """(flow, user, type, thread, event ID, ts): everyone's public receipts in these
        flows, and the viewer's private ones."""
        return userdata.receipts(self._tx, flow_uuids, viewer)

    def account_data(self, user_uuid: str) -> list[tuple[str, str, str]]:
        """(room, type, content JSON) of the user's account data."""
        return userdata.all_account_data(self._tx, user_uuid)

    def related_changes(self, flow_uuid: str, event_id: str, message_uuid: str, after: int,
                        before: int | None, limit: int, backwards: bool) -> list[Change]:
        return userdata.related_changes(self._tx, flow_uuid, event_id, message_uuid, after,
                                        before, limit, backwards)


def _run(conn: Conn, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
    return fn(Reader(conn), *args)


def _run_readable(conn: Conn, caller: Caller, flow_uuid: str, fn: Callable[..., T],
                  args: tuple[Any, ...]) -> T:
    rights.read(rights.access(conn, flow_uuid, caller), caller)
    return fn(Reader(conn), *args)


class Timeline:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    async def read(self, fn: Callable[Concatenate[Reader, P], T], *args: P.args,
                   **kwargs: P.kwargs) -> T:
        """Run `fn(reader, *args)` on a reader thread. It must read only what its caller may
        see (a sync reads the caller's own flows and invites)."""
        assert not kwargs, "the engine takes positional arguments"
        return await self.engine.read(_run, fn, args)

    async def read_flow(self, caller: Caller, flow_uuid: str,
                        fn: Callable[Concatenate[Reader, P], T], *args: P.args,
                        **kwargs: P.kwargs) -> T:
        """`read`, for a flow the caller may read (checked in the same job: 404, 403)."""
        assert not kwargs, "the engine takes positional arguments"
        return await self.engine.read(_run_readable, caller, flow_uuid, fn, args)

    async def get_update(self, caller: Caller, since: int
                         ) -> tuple[list[Flow], list[Message], list[dict[str, Any]]]:
        """What changed at or after `since` in the caller's flows: flows, messages, the
        public profiles of their members."""
        flows, messages, users = await self.engine.read(db.update_since, caller.uuid, since)
        return flows, messages, [db.public_profile(user) for user in users]

    async def counts(self) -> dict[str, int]:
        return await self.engine.read(db.counts)

    async def ping(self) -> None:
        """A trivial query: whether the database answers (GET /health)."""
        await self.engine.read(db.ping)
