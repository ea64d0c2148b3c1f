"""What a user keeps for their clients: account data (global and per room), push rules (kept
as the `m.push_rules` account data), and the user directory.

Account data is the user's own: only they read or write it. Every write is logged as an
"account_data" change about that user alone, so their other devices' /sync echo it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic_core import from_json, to_json

from mod.config.validator import Settings
from mod.db import dbhandler as db
from mod.db import userdata
from mod.db.engine import Conn, Engine
from mod.error import OverLimit, ServiceError, TooLong
from mod.service import rights
from mod.service.bounds import MAX_PUSH_RULES, MAX_TAG
from mod.service.common import Caller, Committed, logged_since, now
from mod.service.pushrules_default import default_rules
from mod.service.records import User, users_of

PUSH_RULES = "m.push_rules"
TAGS = "m.tag"  # a room's tags: its room account data {"tags": {name: {"order": 0.5}}}
MAX_TYPE = 255


class UserData:
    def __init__(self, settings: Settings, engine: Engine) -> None:
        self.settings = settings
        self.engine = engine

    async def put(self, caller: Caller, user_uuid: str, room: str, data_type: str,
                  content: dict[str, Any]) -> Committed[None]:
        """Store account data: global (`room` empty) or for a room the caller is in or was
        invited to."""
        _own(caller, user_uuid)
        if not data_type or len(data_type) > MAX_TYPE:
            raise ServiceError(400, f"An account data type has 1 to {MAX_TYPE} characters")
        if data_type == PUSH_RULES:
            raise ServiceError(400, "Push rules are changed through /pushrules")
        return await self.engine.write(_put, caller, room, data_type, content,
                                       self.settings.matrix.max_account_data, now())

    async def get(self, caller: Caller, user_uuid: str, room: str, data_type: str
                  ) -> dict[str, Any]:
        _own(caller, user_uuid)
        text = await self.engine.read(userdata.account_data, caller.uuid, room, data_type)
        if text is None:
            raise ServiceError(404, f"No account data of type {data_type}")
        found: dict[str, Any] = from_json(text)
        return found

    async def tags(self, caller: Caller, user_uuid: str, room: str) -> dict[str, Any]:
        """The tags the caller put on a room (its `m.tag` account data), {} for none."""
        try:
            content = await self.get(caller, user_uuid, room, TAGS)
        except ServiceError as exc:
            if exc.code != 404:
                raise
            return {}
        tags = content.get("tags")
        return tags if isinstance(tags, dict) else {}

    async def tag(self, caller: Caller, user_uuid: str, room: str, name: str,
                  content: dict[str, Any] | None) -> Committed[None]:
        """Put a tag on a room (`content`: its `order`, a number from 0 to 1, if any) or take
        it off (None), in one job with the rest of the room's tags."""
        _own(caller, user_uuid)
        if not name or len(name) > MAX_TAG:
            raise ServiceError(400, f"A tag has 1 to {MAX_TAG} characters")
        order = (content or {}).get("order")
        if order is not None and (isinstance(order, bool) or not isinstance(order, int | float)
                                  or not 0 <= order <= 1):
            raise ServiceError(400, "A tag's order is a number from 0 to 1")
        return await self.engine.write(_tag, caller, room, name, content,
                                       self.settings.matrix.max_room_tags,
                                       self.settings.matrix.max_account_data, now())

    async def everything(self, caller: Caller) -> list[tuple[str, str, dict[str, Any]]]:
        """(room, type, content) of all the caller's account data."""
        rows = await self.engine.read(userdata.all_account_data, caller.uuid)
        return [(room, data_type, from_json(text)) for room, data_type, text in rows]

    # -- push rules --------------------------------------------------------------------------

    async def push_rules(self, caller: Caller, user_id: str, localpart: str) -> dict[str, Any]:
        """The caller's push rules: the default set until they change one."""
        text = await self.engine.read(userdata.account_data, caller.uuid, "", PUSH_RULES)
        if text is None:
            return default_rules(user_id, localpart)
        rules: dict[str, Any] = from_json(text)
        return rules

    async def change_push_rules(self, caller: Caller, user_id: str, localpart: str,
                                change: Callable[..., None], *args: Any) -> Committed[None]:
        """Apply `change(rules, *args)` (a `pushrules` function) to the caller's rules and
        keep the result, in one writer job."""
        return await self.engine.write(_change_rules, caller, user_id, localpart, change, args,
                                       now())

    # -- user directory ----------------------------------------------------------------------

    async def search_users(self, caller: Caller, term: str, limit: int
                           ) -> tuple[list[User], bool]:
        """Users whose login or name holds `term`: those who share a flow with the caller, or
        everyone when `[MATRIX] USER_DIRECTORY = all`. And whether there were more."""
        everyone = self.settings.matrix.user_directory == "all"
        users, more = await self.engine.read(userdata.search_users, caller.uuid, term,
                                             max(0, min(limit, 100)), everyone)
        return users_of(users), more


def _own(caller: Caller, user_uuid: str) -> None:
    if caller.uuid != user_uuid:
        raise ServiceError(403, "Only the user themself may use their account data")


def _put(conn: Conn, caller: Caller, room: str, data_type: str, content: dict[str, Any],
         cap: int, stamp: int) -> Committed[None]:
    if room:
        flow = rights.access(conn, room, caller)
        if not flow.member and not db.join_rights(conn, room, caller.uuid)[1]:
            raise ServiceError(403, "Only members keep account data for a room")
    if userdata.account_data(conn, caller.uuid, room, data_type) is None and \
            userdata.count_account_data(conn, caller.uuid, cap) >= cap:
        raise OverLimit(400, f"A user keeps at most {cap} pieces of account data")
    mark = len(conn.changes)
    userdata.put_account_data(conn, caller.uuid, room, data_type, content, stamp)
    return Committed(None, logged_since(conn, mark))


def _change_rules(conn: Conn, caller: Caller, user_id: str, localpart: str,
                  change: Callable[..., None], args: tuple[Any, ...], stamp: int
                  ) -> Committed[None]:
    text = userdata.account_data(conn, caller.uuid, "", PUSH_RULES)
    rules = default_rules(user_id, localpart) if text is None else from_json(text)
    change(rules, *args)
    if len(to_json(rules)) > MAX_PUSH_RULES:
        raise TooLong(f"A user's push rules are at most {MAX_PUSH_RULES} bytes of JSON")
    mark = len(conn.changes)
    userdata.put_account_data(conn, caller.uuid, "", PUSH_RULES, rules, stamp)
    return Committed(None, logged_since(conn, mark))


def _tag(conn: Conn, caller: Caller, room: str, name: str, content: dict[str, Any] | None,
         most: int, cap: int, stamp: int) -> Committed[None]:
    stored = userdata.account_data(conn, caller.uuid, room, TAGS)
    found = from_json(stored).get("tags") if stored else None  # a client may have put any
    tags = dict(found) if isinstance(found, dict) else {}
    if content is None:
        tags.pop(name, None)
    else:
        if name not in tags and len(tags) >= most:
            raise OverLimit(400, f"A room has at most {most} tags")
        tags[name] = content
    return _put(conn, caller, room, TAGS, {"tags": tags}, cap, stamp)

