"""The operations both protocols share, each with its rights check.

Workers translate frames and requests into these calls and render `ServiceError` in their own
format; no rule about who may do what lives anywhere else.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from loguru import logger

from mod import lib
from mod.config.validator import Settings
from mod.db import dbhandler as db
from mod.db.engine import ChangeRow, Engine, Tx
from mod.error import ServiceError

FLOW_TYPES = ("chat", "group", "channel")
RETRY_WINDOW = 24 * 3600


def now() -> int:
    return int(time.time())


@dataclass(slots=True, frozen=True)
class Caller:
    """An authenticated user, as a request's credentials identify them."""

    uuid: str
    token_hash: str
    is_superuser: bool
    device: str = ""


@dataclass(slots=True, frozen=True)
class Session:
    """What a successful registration or login hands back to the client."""

    user: db.UserRow
    token: str
    token_ttl: int
    device: str = ""

    @property
    def caller(self) -> Caller:
        return Caller(self.user["uuid"], lib.token_hash(self.token), self.user["is_superuser"],
                      self.device)


@dataclass(slots=True, frozen=True)
class MessagePage:
    """Messages of a flow as the JSON text of their list, oldest first."""

    json: str
    count: int
    total: int | None  # all the flow's messages, when this is only a page of them


@dataclass(slots=True)
class _CachedToken:
    caller: Caller
    expires: int
    checked: float


class Service:
    def __init__(self, settings: Settings, engine: Engine) -> None:
        self.settings = settings
        self.engine = engine
        self._hashing = ThreadPoolExecutor(2, thread_name_prefix="argon2")
        self._tokens: dict[str, _CachedToken] = {}

    async def purge_forever(self, every: float = 3600.0) -> None:
        """Delete expired tokens and retry records older than a day, now and then."""
        while True:
            stamp = now()
            try:
                removed = await self.engine.write(db.purge_expired, stamp, stamp - RETRY_WINDOW)
            except ServiceError as exc:
                logger.warning("purge of expired tokens failed: {}", exc.detail)
            else:
                if removed:
                    logger.info("purged {} expired tokens and retry records", removed)
            await asyncio.sleep(every)

    def close(self) -> None:
        self._hashing.shutdown(wait=False, cancel_futures=True)

    async def _hash(self, password: str) -> str:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._hashing, lib.hash_password, password)

    async def _verify(self, password_hash: str, password: str) -> bool:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._hashing, lib.verify_password, password_hash,
                                          password)

    # -- accounts ----------------------------------------------------------------------------

    async def register(self, login: str, password: str, username: str = "", email: str = "",
                       device: str = "", superuser: bool = False) -> Session:
        if not login or not password:
            raise ServiceError(400, "A login and a password are required")
        password_hash = await self._hash(password)
        ttl = self.settings.security.token_ttl
        token = lib.new_token()
        stamp = now()

        def create(tx: Any) -> db.UserRow | None:
            user = db.create_user(tx, lib.new_uuid(), login, password_hash, username or login,
                                  email, ttl, stamp, is_superuser=superuser)
            if user is not None:
                db.add_token(tx, user["uuid"], lib.token_hash(token), stamp, stamp + ttl, device)
            return user

        user = await self.engine.write(create)
        if user is None:
            raise ServiceError(409, f"The login {login!r} is already taken")
        logger.info("user registered: {}", user["uuid"])
        return Session(user, token, ttl, device)

    async def login(self, login: str, password: str, device: str = "") -> Session:
        if not login or not password:
            raise ServiceError(400, "A login and a password are required")
        user = await self.engine.read(db.user_by_login, login)
        if user is None:
            await asyncio.get_running_loop().run_in_executor(self._hashing, lib.verify_unknown,
                                                             password)
            raise ServiceError(401, "Wrong login or password")
        if not await self._verify(user["password_hash"], password):
            raise ServiceError(401, "Wrong login or password")
        ttl = user["token_ttl"] or self.settings.security.token_ttl
        token = lib.new_token()
        stamp = now()
        await self.engine.write(db.add_token, user["uuid"], lib.token_hash(token), stamp,
                                stamp + ttl, device)
        logger.info("user logged in: {}", user["uuid"])
        return Session(user, token, ttl, device)

    async def authenticate(self, token: str, user_uuid: str | None = None) -> Caller:
        """The caller a token belongs to; with `user_uuid`, it must be theirs. Else 401."""
        if not token:
            raise ServiceError(401, "Credentials are required")
        clock = time.monotonic()
        cached = self._tokens.get(token)  # by the token itself: no hashing on a cache hit
        if cached is None or clock - cached.checked > self.settings.security.token_cache_seconds:
            found = await self.engine.read(_token_caller, lib.token_hash(token), now())
            if found is None:
                self._tokens.pop(token, None)
                raise ServiceError(401, "The credentials are wrong, expired or revoked")
            caller, expires = found
            if len(self._tokens) > 100_000:
                self._tokens.clear()
            cached = self._tokens[token] = _CachedToken(caller, expires, clock)
        if cached.expires <= now() or (user_uuid is not None and cached.caller.uuid != user_uuid):
            raise ServiceError(401, "The credentials are wrong, expired or revoked")
        return cached.caller

    def forget_tokens(self, user_uuid: str) -> None:
        """Drop cached token checks of a user (their tokens were revoked)."""
        for token in [t for t, c in self._tokens.items() if c.caller.uuid == user_uuid]:
            del self._tokens[token]

    def _forget_token(self, token_hash: str) -> None:
        for token in [t for t, c in self._tokens.items() if c.caller.token_hash == token_hash]:
            del self._tokens[token]

    async def logout(self, caller: Caller) -> None:
        self._forget_token(caller.token_hash)

        def revoke(tx: Any) -> None:
            db.revoke_token(tx, caller.token_hash)
            db.log_change(tx, now(), "", "tokens_revoked", caller.uuid, caller.uuid,
                          {"token": caller.token_hash})

        await self.engine.write(revoke)

    async def logout_all(self, caller: Caller) -> None:
        """Revoke every token of the caller, on every device."""

        def revoke(tx: Any) -> None:
            db.revoke_user_tokens(tx, caller.uuid)
            db.log_change(tx, now(), "", "tokens_revoked", caller.uuid, caller.uuid, {})

        await self.engine.write(revoke)
        self.forget_tokens(caller.uuid)

    async def delete_user(self, caller: Caller, login: str, password: str) -> None:
        user = await self.engine.read(db.user_by_uuid, caller.uuid)
        if user is None or not password or login != user["login"]:
            raise ServiceError(401, "Wrong login or password")
        if not await self._verify(user["password_hash"], password):
            raise ServiceError(401, "Wrong login or password")

        def delete(tx: Any) -> None:
            db.delete_user(tx, caller.uuid)
            db.log_change(tx, now(), "", "tokens_revoked", caller.uuid, caller.uuid, {})

        await self.engine.write(delete)
        self.forget_tokens(caller.uuid)
        logger.info("user deleted: {}", caller.uuid)

    async def user_info(self, caller: Caller, uuids: Sequence[str]
                        ) -> tuple[list[dict[str, Any]], list[str]]:
        """Profiles of the users asked about, and the uuids that matched nobody."""
        if not uuids:
            raise ServiceError(400, "Name at least one user to look up")
        if len(uuids) > self.settings.protocol.users_limit:
            raise ServiceError(429, f"At most {self.settings.protocol.users_limit} users "
                                    "may be asked about at once")
        users = await self.engine.read(db.users_by_uuid, uuids)
        found = {user["uuid"] for user in users}
        profiles = []
        for user in users:
            profile = {**db.public_profile(user), "login": user["login"]}
            if user["uuid"] == caller.uuid:
                profile["email"] = user["email"]
            profiles.append(profile)
        return profiles, [uuid for uuid in dict.fromkeys(uuids) if uuid not in found]

    async def set_username(self, caller: Caller, username: str) -> None:
        await self.engine.write(db.set_username, caller.uuid, username)

    async def profile(self, user_uuid: str) -> db.UserRow:
        user = await self.engine.read(db.user_by_uuid, user_uuid)
        if user is None:
            raise ServiceError(404, f"No user {user_uuid}")
        return user

    async def user_by_login(self, login: str) -> db.UserRow:
        user = await self.engine.read(db.user_by_login, login)
        if user is None:
            raise ServiceError(404, f"No user {login!r}")
        return user

    # -- flows -------------------------------------------------------------------------------

    async def add_flow(self, caller: Caller, flow_type: str, title: str, info: str,
                       users: Sequence[str], owner: str | None = None, private: bool = False
                       ) -> db.FlowRow:
        """A new flow. `private` makes it invite-only (a chat is so anyway): only its members
        see it, and others join it only when invited."""
        if flow_type not in FLOW_TYPES:
            raise ServiceError(400, f"Flow type must be one of {', '.join(FLOW_TYPES)}")
        if owner is not None and owner != caller.uuid:
            raise ServiceError(403, "The owner of a new flow is its creator")
        members = list(dict.fromkeys([*users, caller.uuid] if caller.uuid not in users
                                     else users))
        if flow_type == "chat" and len(members) != 2:
            raise ServiceError(400, "A chat has exactly two members")
        known = {user["uuid"] for user in await self.engine.read(db.users_by_uuid, members)
                 if not user["deleted"]}
        missing = [uuid for uuid in members if uuid not in known]
        if missing:
            raise ServiceError(404, f"Unknown user: {', '.join(missing)}")
        chat_key = ":".join(sorted(members)) if flow_type == "chat" else None
        stamp = now()

        def create(tx: Any) -> tuple[db.FlowRow, bool]:
            if chat_key is not None:
                existing = db.chat_by_key(tx, chat_key)
                if existing is not None:
                    return existing, False
            return db.create_flow(tx, lib.new_uuid(), flow_type, title, info, caller.uuid,
                                  members, stamp, chat_key, private), True

        flow, created = await self.engine.write(create)
        if not created:
            raise ServiceError(409, "A chat between these two users already exists",
                               payload=flow)
        logger.info("flow created: {} ({}{})", flow["uuid"], flow_type,
                    ", invite-only" if flow["private"] else "")
        return flow

    async def all_flows(self, caller: Caller) -> list[db.FlowRow]:
        """Every public group and channel, and the invite-only flows the caller is in or
        invited to."""
        return await self.engine.read(db.visible_flows, caller.uuid)

    async def public_flows(self, search: str, offset: int, limit: int
                           ) -> tuple[list[db.FlowRow], int]:
        """A page of the flows anyone may join (none invite-only), and how many there are."""
        return await self.engine.read(db.public_flows, search, offset, limit)

    async def flow(self, caller: Caller, flow_uuid: str, members_only: bool = True
                   ) -> db.FlowRow:
        flow = await self.engine.read(db.flow_by_uuid, flow_uuid)
        if flow is None:
            raise ServiceError(404, f"No flow {flow_uuid}")
        if members_only and caller.uuid not in flow["users"] and flow["private"]:
            raise ServiceError(403, "Only the members of this flow may see it")
        return flow

    async def join_flow(self, caller: Caller, flow_uuid: str) -> db.FlowRow:
        """Become a member of a public group or channel, or of an invite-only one the caller
        is invited to (idempotent)."""
        flow_type, _, member = await self._access(flow_uuid, caller)
        if member:
            flow = await self.engine.read(db.flow_by_uuid, flow_uuid)
            assert flow is not None
            return flow
        if flow_type == "chat":
            raise ServiceError(403, "Nobody can join a chat")
        return await self.engine.write(_join, caller, flow_uuid, now())

    async def leave_flow(self, caller: Caller, flow_uuid: str) -> None:
        flow_type, owner, member = await self._access(flow_uuid, caller)
        if flow_type != "chat" and owner == caller.uuid:
            raise ServiceError(403, "The owner cannot leave their own flow")
        if member:
            await self.engine.write(db.remove_member, flow_uuid, caller.uuid, now())
        else:
            await self.engine.write(db.remove_invite, flow_uuid, caller.uuid, now())

    async def invite(self, caller: Caller, flow_uuid: str, user_uuid: str) -> None:
        flow_type, owner, member = await self._access(flow_uuid, caller)
        if not member:
            raise ServiceError(403, "Only members may invite to this flow")
        if flow_type == "chat":
            raise ServiceError(403, "Nobody can be invited to a chat")
        if flow_type == "channel" and owner != caller.uuid and not caller.is_superuser:
            raise ServiceError(403, "Only the owner may invite to a channel")
        invitee = await self.engine.read(db.user_by_uuid, user_uuid)
        if invitee is None or invitee["deleted"]:
            raise ServiceError(404, f"No user {user_uuid}")
        if user_uuid in await self.engine.read(db.flow_members, flow_uuid):
            raise ServiceError(403, "That user is already a member")
        await self.engine.write(db.add_invite, flow_uuid, user_uuid, caller.uuid, now())

    async def update_flow(self, caller: Caller, flow_uuid: str, title: str | None = None,
                          info: str | None = None) -> db.FlowRow:
        flow_type, owner, member = await self._access(flow_uuid, caller)
        if not member:
            raise ServiceError(403, "Only members may change this flow")
        if flow_type != "group" and owner != caller.uuid and not caller.is_superuser:
            raise ServiceError(403, "Only the owner may change this flow")
        return await self.engine.write(db.update_flow, flow_uuid, caller.uuid, now(), title,
                                       info)

    async def _access(self, flow_uuid: str, caller: Caller) -> tuple[str, str, bool]:
        access = await self.engine.read(db.flow_access, flow_uuid, caller.uuid)
        if access is None:
            raise ServiceError(404, f"No flow {flow_uuid}")
        return access

    async def require_member(self, caller: Caller, flow_uuid: str) -> tuple[str, str]:
        """(type, owner) of a flow the caller is a member of; 404 or 403 otherwise."""
        flow_type, owner, member = await self._access(flow_uuid, caller)
        if not member:
            raise ServiceError(403, "Only the members of this flow may read it")
        return flow_type, owner

    # -- messages ----------------------------------------------------------------------------

    async def send_message(self, caller: Caller, flow_uuid: str, client_id: int,
                           content: dict[str, str], retry_key: str | None = None,
                           extra: dict[str, Any] | None = None) -> db.MessageRow:
        """Store a message. Without `retry_key`, the MTP rule applies: a repeat of the same
        client_id, flow and content with the same token within 24 hours stores nothing new."""
        if retry_key is None:
            # Each part length-prefixed, so no two different requests give the same key.
            parts = [caller.token_hash, flow_uuid, str(client_id),
                     *(content.get(field, "") for field in db.CONTENT_FIELDS)]
            retry_key = "".join(f"{len(part)}:{part}" for part in parts)
        key = hashlib.sha256(retry_key.encode()).hexdigest()
        return await self.engine.write(_send, caller, flow_uuid, lib.new_uuid(), client_id,
                                       content, now(), key, extra)

    async def all_messages(self, caller: Caller, flow_uuid: str, start: int | None,
                           end: int | None, since: int = 0) -> MessagePage:
        """A flow's messages, oldest first, and the total when only a page is returned."""
        limit = self.settings.protocol.messages_limit
        if (start is not None and start < 0) or (end is not None and end < 0):
            raise ServiceError(400, "message_start and message_end cannot be negative")
        return await self.engine.read(_messages_or_page, caller, flow_uuid, start, end, since,
                                      limit)

    async def edit_message(self, caller: Caller, message_uuid: str, text: str,
                           extra: dict[str, Any] | None = None) -> db.MessageRow:
        message = await self._message(message_uuid)
        if message["from_user"] != caller.uuid:
            raise ServiceError(403, "Only the author may edit a message")
        return await self.engine.write(db.update_message, message_uuid, caller.uuid,
                                       {"text": text}, now(), "message_edited", extra)

    async def delete_message(self, caller: Caller, message_uuid: str,
                             extra: dict[str, Any] | None = None) -> db.MessageRow:
        message = await self._message(message_uuid)
        if message["from_user"] != caller.uuid and not caller.is_superuser:
            access = await self.engine.read(db.flow_access, message["from_flow"], caller.uuid)
            if access is None or access[1] != caller.uuid:
                raise ServiceError(403, "Only the author or the flow's owner may delete it")
        cleared = {"text": "Message deleted", **{f: "" for f in db.CONTENT_FIELDS[1:]}}
        return await self.engine.write(db.update_message, message_uuid, caller.uuid, cleared,
                                       now(), "message_deleted", extra)

    async def message(self, caller: Caller, message_uuid: str) -> db.MessageRow:
        message = await self._message(message_uuid)
        await self.require_member(caller, message["from_flow"])
        return message

    async def _message(self, message_uuid: str) -> db.MessageRow:
        message = await self.engine.read(db.message_by_uuid, message_uuid)
        if message is None:
            raise ServiceError(404, f"No message {message_uuid}")
        return message

    # -- updates -----------------------------------------------------------------------------

    async def get_update(self, caller: Caller, since: int
                         ) -> tuple[list[db.FlowRow], list[db.MessageRow], list[dict[str, Any]]]:
        flows, messages, users = await self.engine.read(db.update_since, caller.uuid, since)
        return flows, messages, [db.public_profile(user) for user in users]

    async def counts(self) -> dict[str, int]:
        return await self.engine.read(db.counts)

    def changes_committed(self, changes: list[ChangeRow]) -> None:
        """Keep cached token checks true to revocations committed anywhere."""
        for change in changes:
            if change.kind == "tokens_revoked":
                token = json.loads(change.payload).get("token")
                if token is None:
                    self.forget_tokens(change.actor)
                else:
                    self._forget_token(token)


def _token_caller(tx: Tx, digest: str, stamp: int) -> tuple[Caller, int] | None:
    owner = db.token_owner(tx, digest, stamp)
    if owner is None:
        return None
    user_uuid, expires, device = owner
    user = db.user_by_uuid(tx, user_uuid)
    if user is None or user["deleted"]:
        return None
    return Caller(user_uuid, digest, user["is_superuser"], device), expires


def _check_member(tx: Tx, caller: Caller, flow_uuid: str, action: str) -> tuple[str, str]:
    access = db.flow_access(tx, flow_uuid, caller.uuid)
    if access is None:
        raise ServiceError(404, f"No flow {flow_uuid}")
    flow_type, owner, member = access
    if not member:
        raise ServiceError(403, f"Only the members of this flow may {action} it")
    return flow_type, owner


def _join(tx: Tx, caller: Caller, flow_uuid: str, stamp: int) -> db.FlowRow:
    """Rights check and membership in one step on the writer thread, so an invitation
    withdrawn meanwhile is not used."""
    private, invited = db.join_rights(tx, flow_uuid, caller.uuid)
    if private and not invited:
        raise ServiceError(403, "This flow is invite-only: only those invited may join it")
    flow = db.add_member(tx, flow_uuid, caller.uuid, stamp) or db.flow_by_uuid(tx, flow_uuid)
    if flow is None:
        raise ServiceError(404, f"No flow {flow_uuid}")
    return flow


def _send(tx: Tx, caller: Caller, flow_uuid: str, uuid: str, client_id: int,
          content: dict[str, str], stamp: int, key: str, extra: dict[str, Any] | None
          ) -> db.MessageRow:
    """Rights check and insert in one step on the writer thread."""
    flow_type, owner = _check_member(tx, caller, flow_uuid, "write in")
    if flow_type == "channel" and owner != caller.uuid and not caller.is_superuser:
        raise ServiceError(403, "Only the owner may write in a channel")
    return db.insert_message(tx, uuid, flow_uuid, caller.uuid, client_id, content, stamp, key,
                             extra, RETRY_WINDOW)


def _messages_or_page(tx: Tx, caller: Caller, flow_uuid: str, start: int | None,
                      end: int | None, since: int, limit: int) -> MessagePage:
    _check_member(tx, caller, flow_uuid, "read")
    total = db.count_messages(tx, flow_uuid, since)
    if start is None and end is None and total <= limit:
        return MessagePage(db.messages_page_json(tx, flow_uuid, 0, limit, since), total, None)
    first = start or 0
    last = end if end is not None else first + limit
    if last < first:
        raise ServiceError(400, "message_end is before message_start")
    if last - first > limit:
        raise ServiceError(403, f"At most {limit} messages can be read at once")
    shown = max(0, min(last, total) - first)
    return MessagePage(db.messages_page_json(tx, flow_uuid, first, last - first, since), shown,
                       total)
