"""Flows: creating them, who is in them, joining, leaving, inviting, renaming.

Every write runs its rights check (`rights`) in the same writer job, and returns what it
committed with the change-log position of its change.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from loguru import logger

from mod import lib
from mod.db import dbhandler as db
from mod.db.engine import Conn, Engine
from mod.error import ServiceError
from mod.service import rights
from mod.service.common import Caller, Committed, logged_since, now
from mod.service.records import Flow, User, users_of

FLOW_TYPES = ("chat", "group", "channel")
MAX_INVITES = 100  # users invited by one request


class Flows:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    async def add(self, caller: Caller, flow_type: str, title: str, info: str,
                  users: Sequence[str], owner: str | None = None, private: bool = False,
                  encryption: dict[str, Any] | None = None) -> Committed[Flow]:
        """A new flow. `private` makes it invite-only (a chat is so anyway): only its members
        see it, and others join it only when invited. With `encryption` (Matrix
        m.room.encryption content) it is end-to-end encrypted from the start."""
        if flow_type not in FLOW_TYPES:
            raise ServiceError(400, f"Flow type must be one of {', '.join(FLOW_TYPES)}")
        if owner is not None and owner != caller.uuid:
            raise ServiceError(403, "The owner of a new flow is its creator")
        members = list(dict.fromkeys([*users, caller.uuid]))
        if flow_type == "chat" and len(members) != 2:
            raise ServiceError(400, "A chat has exactly two members")
        done = await self.engine.write(_create, caller, flow_type, title, info, members, private,
                                       now(), encryption)
        logger.info("flow created: {} ({}{})", done.value["uuid"], flow_type,
                    ", invite-only" if done.value["private"] else "")
        return done

    async def visible(self, caller: Caller) -> list[Flow]:
        """Every public group and channel, and the invite-only flows the caller is in or
        invited to."""
        return await self.engine.read(db.visible_flows, caller.uuid)

    async def public(self, search: str, offset: int, limit: int) -> tuple[list[Flow], int]:
        """A page of the flows anyone may join (none invite-only), and how many there are."""
        return await self.engine.read(db.public_flows, search, offset, limit)

    async def joined(self, caller: Caller) -> list[str]:
        """The uuids of the flows the caller is a member of."""
        return await self.engine.read(db.member_flows, caller.uuid)

    async def members(self, caller: Caller, flow_uuid: str) -> list[User]:
        """The accounts of a flow's members; members only."""
        return users_of(await self.engine.read(_members, caller, flow_uuid))

    async def join(self, caller: Caller, flow_uuid: str) -> Committed[Flow]:
        """Become a member of a public group or channel, or of an invite-only one the caller
        is invited to (idempotent: position 0 when already a member)."""
        return await self.engine.write(_join, caller, flow_uuid, now())

    async def leave(self, caller: Caller, flow_uuid: str) -> Committed[None]:
        """Stop being a member, or decline an invitation."""
        return await self.engine.write(_leave, caller, flow_uuid, now())

    async def encrypt(self, caller: Caller, flow_uuid: str, encryption: dict[str, Any]
                      ) -> Committed[None]:
        """Turn on end-to-end encryption (Matrix m.room.encryption content); it stays on."""
        return await self.engine.write(_encrypt, caller, flow_uuid, encryption, now())

    async def invite(self, caller: Caller, flow_uuid: str, user_uuid: str, direct: bool = False
                     ) -> Committed[None]:
        """Invite a user; `direct`: to a direct chat (a Matrix DM, which shows it as one)."""
        return await self.engine.write(_invite, caller, flow_uuid, [user_uuid], now(), direct)

    async def invite_all(self, caller: Caller, flow_uuid: str, user_uuids: list[str]
                         ) -> Committed[None]:
        """Invite several users at once: all of them, or (refused) none."""
        if not 0 < len(user_uuids) <= MAX_INVITES:
            raise ServiceError(400, f"Invite 1 to {MAX_INVITES} users at once")
        return await self.engine.write(_invite, caller, flow_uuid, list(dict.fromkeys(user_uuids)),
                                       now())

    async def rename(self, caller: Caller, flow_uuid: str, title: str | None = None,
                     info: str | None = None) -> Committed[Flow]:
        """Change a flow's title or info."""
        return await self.engine.write(_rename, caller, flow_uuid, title, info, now())


def _create(conn: Conn, caller: Caller, flow_type: str, title: str, info: str,
            members: list[str], private: bool, stamp: int,
            encryption: dict[str, Any] | None = None) -> Committed[Flow]:
    mark = len(conn.changes)
    known = {user["uuid"] for user in db.users_by_uuid(conn, members) if not user["deleted"]}
    missing = [uuid for uuid in members if uuid not in known]
    if missing:
        raise ServiceError(404, f"Unknown user: {', '.join(missing)}")
    chat_key = ":".join(sorted(members)) if flow_type == "chat" else None
    if chat_key is not None:
        existing = db.chat_by_key(conn, chat_key)
        if existing is not None:
            raise ServiceError(409, "A chat between these two users already exists",
                               payload=existing)
    flow = db.create_flow(conn, lib.new_uuid(), flow_type, title, info, caller.uuid, members,
                          stamp, chat_key, private)
    if encryption is not None:
        db.set_encrypted(conn, flow["uuid"], caller.uuid, stamp, encryption)
    return Committed(flow, logged_since(conn, mark))


def _encrypt(conn: Conn, caller: Caller, flow_uuid: str, encryption: dict[str, Any], stamp: int
             ) -> Committed[None]:
    rights.encrypt(rights.access(conn, flow_uuid, caller), caller)
    change = db.set_encrypted(conn, flow_uuid, caller.uuid, stamp, encryption)
    logger.info("flow encrypted: {}", flow_uuid)
    return Committed(None, change.position)


def _readable(conn: Conn, caller: Caller, flow_uuid: str) -> rights.Access:
    flow = rights.access(conn, flow_uuid, caller)
    rights.read(flow, caller)
    return flow


def _members(conn: Conn, caller: Caller, flow_uuid: str) -> list[db.UserRow]:
    _readable(conn, caller, flow_uuid)
    return [user for user in db.users_by_uuid(conn, db.flow_members(conn, flow_uuid))
            if not user["deleted"]]


def _join(conn: Conn, caller: Caller, flow_uuid: str, stamp: int) -> Committed[Flow]:
    mark = len(conn.changes)
    flow = rights.access(conn, flow_uuid, caller)
    if not flow.member:
        rights.join(flow, *db.join_rights(conn, flow_uuid, caller.uuid))
        db.add_member(conn, flow_uuid, caller.uuid, stamp)
    found = db.flow_by_uuid(conn, flow_uuid)
    assert found is not None
    return Committed(found, logged_since(conn, mark))


def _leave(conn: Conn, caller: Caller, flow_uuid: str, stamp: int) -> Committed[None]:
    mark = len(conn.changes)
    flow = rights.access(conn, flow_uuid, caller)
    rights.leave(flow, caller)
    if flow.member:
        db.remove_member(conn, flow_uuid, caller.uuid, stamp)
    else:
        db.remove_invite(conn, flow_uuid, caller.uuid, stamp)
    return Committed(None, logged_since(conn, mark))


def _invite(conn: Conn, caller: Caller, flow_uuid: str, user_uuids: list[str], stamp: int,
            direct: bool = False) -> Committed[None]:
    mark = len(conn.changes)
    rights.invite(rights.access(conn, flow_uuid, caller), caller)
    members = db.flow_members(conn, flow_uuid)
    known = {user["uuid"] for user in db.users_by_uuid(conn, user_uuids) if not user["deleted"]}
    for user_uuid in user_uuids:  # all checked before any is invited
        if user_uuid not in known:
            raise ServiceError(404, f"No user {user_uuid}")
        if user_uuid in members:
            raise ServiceError(403, "That user is already a member")
    for user_uuid in user_uuids:
        db.add_invite(conn, flow_uuid, user_uuid, caller.uuid, stamp, direct)
    return Committed(None, logged_since(conn, mark))


def _rename(conn: Conn, caller: Caller, flow_uuid: str, title: str | None, info: str | None,
            stamp: int) -> Committed[Flow]:
    mark = len(conn.changes)
    rights.rename(rights.access(conn, flow_uuid, caller), caller)
    flow = db.update_flow(conn, flow_uuid, caller.uuid, stamp, title, info)
    return Committed(flow, logged_since(conn, mark))
