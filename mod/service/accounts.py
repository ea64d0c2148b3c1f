"""Accounts: registration, logging in and out, tokens, profiles."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import NoReturn, TypeVar

from loguru import logger

from mod import lib
from mod.changes import Change, Kind, RevokedPayload
from mod.config.validator import Settings
from mod.db import dbhandler as db
from mod.db import keystore as ks
from mod.db import media as mediadb
from mod.db import regtokens
from mod.db.engine import Conn, Engine
from mod.error import Locked, ServiceError, TokenRefused
from mod.service.accountrules import check_password, check_profile
from mod.service.bounds import check_device
from mod.service.common import RETRY_WINDOW, Caller, Credentials, now, retry_key
from mod.service.keys import forget_devices
from mod.service.records import user_of
from mod.service.throttle import LoginThrottle, TokenThrottle

T = TypeVar("T")

TOKEN_CACHE_SIZE = 100_000


def _usable_token(conn: Conn, token: str, stamp: int) -> None:
    state = regtokens.registration_token_state(conn, token, stamp)
    if state != "valid":
        raise TokenRefused(state == "unknown")


@dataclass(slots=True)
class _CachedToken:
    caller: Caller
    expires: int
    checked: float


class Accounts:
    def __init__(self, settings: Settings, engine: Engine) -> None:
        self.settings = settings
        self.engine = engine
        self._hashing = ThreadPoolExecutor(2, thread_name_prefix="argon2")
        self._tokens: dict[str, _CachedToken] = {}
        self.throttle = LoginThrottle(settings.security)
        self.token_throttle = TokenThrottle(settings.security)

    def close(self) -> None:
        self._hashing.shutdown(wait=False, cancel_futures=True)

    async def _hash(self, password: str) -> str:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._hashing, lib.hash_password, password)

    async def _verify(self, password_hash: str, password: str) -> bool:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._hashing, lib.verify_password, password_hash,
                                          password)

    # -- signing up and in -------------------------------------------------------------------

    @property
    def registration(self) -> str:
        """Who may register: "open", "token" (with a registration token) or "closed"."""
        return self.settings.security.registration

    async def registration_token_valid(self, token: str, address: str = "") -> bool:
        """Whether a registration token can be used now. Tokens never issued count against
        the client's `address`; past the limit, 429."""
        self.token_throttle.check(address)
        state = await self.engine.read(regtokens.registration_token_state, token, now())
        if state == "unknown":
            self.token_throttle.failed(address)
        return state == "valid"

    async def _token_tried(self, address: str, job: Awaitable[T]) -> T:
        """`job`, a database step that checks a registration token; a token never issued
        counts against `address`."""
        try:
            return await job
        except TokenRefused as refused:
            if refused.unknown:
                self.token_throttle.failed(address)
            raise

    async def hold_registration_token(self, session: str, token: str, address: str = ""
                                      ) -> None:
        """Remember a valid token for a multi-step registration (Matrix user-interactive
        authentication), in the database so any process finishes it; 403 if invalid. The
        token is used up only when the account is made."""
        self.token_throttle.check(address)

        def hold(conn: Conn) -> None:
            _usable_token(conn, token, now())
            db.txn_store(conn, retry_key("registration-session", session), token, now())

        await self._token_tried(address, self.engine.write(hold))

    async def held_registration_token(self, session: str) -> str | None:
        """The token `hold_registration_token` remembered for a session, for a day."""
        return await self.engine.read(db.txn_result, retry_key("registration-session", session),
                                      now() - RETRY_WINDOW)

    async def register(self, login: str, password: str, username: str = "", email: str = "",
                       device: str = "", superuser: bool = False,
                       registration_token: str | None = None,
                       device_name: str = "", address: str = "") -> Credentials:
        """Make an account, logged in on `device` (named `device_name` if it is new).
        `address` is the client's: registration tokens never issued are counted for it."""
        mode = self.registration
        if mode == "closed":
            raise ServiceError(403, "Registration is closed on this server")
        if mode == "token" and not registration_token:
            raise ServiceError(403, "Registration on this server needs a registration token")
        if not login or not password:
            raise ServiceError(400, "A login and a password are required")
        check_profile(username, email)
        check_device(device, device_name)
        with_token = registration_token is not None and mode == "token"
        if with_token:
            self.token_throttle.check(address)
        password_hash = await self._hash(password)
        ttl = self.settings.security.token_ttl
        token = lib.new_token()
        stamp = now()

        def create(conn: Conn) -> db.UserRow | None:
            if with_token:
                _usable_token(conn, str(registration_token), stamp)
            user = db.create_user(conn, lib.new_uuid(), login, password_hash, username or login,
                                  email, ttl, stamp, is_superuser=superuser)
            if user is not None:
                # the check above only spares a hash's worth of work; this one decides: a
                # registration that loses the race for the last use is undone with its account
                if with_token and not regtokens.use_registration_token(
                        conn, str(registration_token), stamp):
                    raise TokenRefused(unknown=False)
                db.add_token(conn, user["uuid"], lib.token_hash(token), stamp, stamp + ttl, device)
                if device:
                    ks.name_new_device(conn, user["uuid"], device, device_name, stamp)
            return user

        user = await self._token_tried(address, self.engine.write(create))
        if user is None:
            raise ServiceError(409, f"The login {login!r} is already taken")
        logger.info("user registered: {}", user["uuid"])
        return Credentials(user_of(user), token, ttl, device)

    async def login(self, login: str, password: str, device: str = "",
                    address: str = "", device_name: str = "") -> Credentials:
        """Log in on `device` (named `device_name` if it is new). `address` is the client's:
        failures from it are slowed, then refused."""
        if not login or not password:
            raise ServiceError(400, "A login and a password are required")
        check_device(device, device_name)
        self.throttle.check(login, address)
        user = await self.engine.read(db.user_by_login, login)
        if user is None:
            await asyncio.get_running_loop().run_in_executor(self._hashing, lib.verify_unknown,
                                                             password)
            await self._failed(login, address)
        elif not await self._verify(user["password_hash"], password):
            await self._failed(login, address)
        self.throttle.succeeded(login, address)
        if user["locked"]:
            logger.info("login refused, account locked: {}", user["uuid"])
            raise Locked()
        ttl = user["token_ttl"] or self.settings.security.token_ttl
        token = lib.new_token()
        stamp = now()
        await self.engine.write(_signed_in, user["uuid"], lib.token_hash(token), stamp,
                                stamp + ttl, device, device_name)
        logger.info("user logged in: {}", user["uuid"])
        return Credentials(user_of(user), token, ttl, device)

    async def _failed(self, login: str, address: str,
                      detail: str = "Wrong login or password") -> NoReturn:
        """Count a wrong password, answer it after the throttle's delay."""
        delay = self.throttle.failed(login, address)
        if delay:
            await asyncio.sleep(delay)
        raise ServiceError(401, detail)

    async def still_valid(self, caller: Caller) -> bool:
        """Whether the caller's token is still valid, asking the database (not the cache)."""
        return await self.engine.read(_token_caller, caller.token_hash, now()) is not None

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
            if len(self._tokens) > TOKEN_CACHE_SIZE:
                self._tokens.clear()
            cached = self._tokens[token] = _CachedToken(caller, expires, clock)
        if cached.expires <= now() or (user_uuid is not None and cached.caller.uuid != user_uuid):
            raise ServiceError(401, "The credentials are wrong, expired or revoked")
        return cached.caller

    # -- signing out -------------------------------------------------------------------------

    def _forget_user(self, user_uuid: str) -> None:
        for token in [t for t, c in self._tokens.items() if c.caller.uuid == user_uuid]:
            del self._tokens[token]

    def _forget_token(self, token_hash: str) -> None:
        for token in [t for t, c in self._tokens.items() if c.caller.token_hash == token_hash]:
            del self._tokens[token]

    def changes_committed(self, changes: list[Change]) -> None:
        """Keep cached token checks true to revocations committed by any process."""
        for change in changes:
            if change.kind == Kind.USER_CHANGED:  # rights changed: cached checks carry them
                self._forget_user(change.actor)
            elif change.kind == Kind.TOKENS_REVOKED:
                payload = change.data
                token = payload.token if isinstance(payload, RevokedPayload) else None
                if token is None:
                    self._forget_user(change.actor)
                else:
                    self._forget_token(token)

    async def logout(self, caller: Caller) -> None:
        self._forget_token(caller.token_hash)

        def revoke(conn: Conn) -> None:
            db.revoke_token(conn, caller.token_hash)
            db.log_change(conn, now(), "", Kind.TOKENS_REVOKED, caller.uuid, caller.uuid,
                          {"token": caller.token_hash})
            if caller.device:
                forget_devices(conn, caller.uuid, [caller.device], now())

        await self.engine.write(revoke)

    async def logout_all(self, caller: Caller) -> None:
        """Revoke every token of the caller, on every device."""
        await self.engine.write(_revoke_all, caller.uuid)
        self._forget_user(caller.uuid)

    async def check_password(self, caller: Caller, password: str) -> None:
        """401 unless `password` is the caller's (user-interactive authentication)."""
        user = await self.engine.read(db.user_by_uuid, caller.uuid)
        if user is None or not password or not await self._verify(user["password_hash"],
                                                                  password):
            raise ServiceError(401, "Wrong password")

    async def change_password(self, caller: Caller, current: str, new: str,
                              end_other_sessions: bool = True, address: str = "") -> int:
        """Replace the caller's password, given the current one (failures are slowed, then
        refused, as logins' are). With `end_other_sessions`, every other token of the caller
        is revoked and the devices they were on end; the caller's stays. Returns how many
        other sessions ended."""
        check_password(new)
        user = await self.engine.read(db.user_by_uuid, caller.uuid)
        if user is None:
            raise ServiceError(401, "Wrong password")
        self.throttle.check(user["login"], address)
        if not current or not await self._verify(user["password_hash"], current):
            await self._failed(user["login"], address, "Wrong password")
        self.throttle.succeeded(user["login"], address)
        digest = await self._hash(new)
        ended = await self.engine.write(_password_changed, caller, digest, end_other_sessions,
                                        now())
        self._forget_user(caller.uuid)
        logger.info("password changed: {} ({} other sessions ended)", caller.uuid, ended)
        return ended

    def forget_user_tokens(self, user_uuid: str) -> None:
        """Drop cached token checks of a user whose tokens were revoked elsewhere."""
        self._forget_user(user_uuid)

    async def delete_user(self, caller: Caller, login: str, password: str) -> None:
        user = await self.engine.read(db.user_by_uuid, caller.uuid)
        if user is None or not password or login != user["login"]:
            raise ServiceError(401, "Wrong login or password")
        if not await self._verify(user["password_hash"], password):
            raise ServiceError(401, "Wrong login or password")

        def delete(conn: Conn) -> None:
            db.delete_user(conn, caller.uuid)
            mediadb.drop_refs(conn, mediadb.AVATAR, caller.uuid)  # purgeable like any file
            _revoke_all(conn, caller.uuid)

        await self.engine.write(delete)
        self._forget_user(caller.uuid)
        logger.info("user deleted: {}", caller.uuid)

    async def purge_forever(self, every: float = 3600.0) -> None:
        """Delete expired tokens, retry records past the retry window and asynchronous
        uploads that expired unused, now and then."""
        while True:
            stamp = now()
            try:
                removed = await self.engine.write(
                    _purge, stamp, stamp - RETRY_WINDOW, stamp - self.settings.media.unused_expires)
            except ServiceError as exc:
                logger.warning("purge of expired tokens failed: {}", exc.detail)
            else:
                if removed:
                    logger.info("purged {} expired tokens, retry records and unused media IDs",
                                removed)
            await asyncio.sleep(every)


def _purge(conn: Conn, stamp: int, txn_before: int, pending_before: int) -> int:
    return db.purge_expired(conn, stamp, txn_before) + mediadb.drop_expired_pending(
        conn, pending_before)


def _revoke_all(conn: Conn, user_uuid: str) -> None:
    db.revoke_user_tokens(conn, user_uuid)
    db.log_change(conn, now(), "", Kind.TOKENS_REVOKED, user_uuid, user_uuid, {})
    forget_devices(conn, user_uuid, ks.device_ids(conn, user_uuid), now())


def _password_changed(conn: Conn, caller: Caller, digest: str, end_others: bool, stamp: int
                      ) -> int:
    db.update_user(conn, caller.uuid, password_hash=digest)
    if not end_others:
        return 0
    revoked = db.revoke_other_tokens(conn, caller.uuid, caller.token_hash)
    # every process drops the user's cached token checks; the caller's token is still valid
    db.log_change(conn, stamp, "", Kind.TOKENS_REVOKED, caller.uuid, caller.uuid,
                  {"kept": caller.token_hash})
    forget_devices(conn, caller.uuid, sorted({device for device in revoked if device}
                                             - {caller.device}), stamp)
    return len(revoked)


def _token_caller(conn: Conn, digest: str, stamp: int) -> tuple[Caller, int] | None:
    owner = db.token_owner(conn, digest, stamp)
    if owner is None:
        return None
    user_uuid, expires, device = owner
    user = db.user_by_uuid(conn, user_uuid)
    if user is None or user["deleted"] or user["locked"]:
        return None
    return Caller(user_uuid, digest, user["is_superuser"], device), expires


def _signed_in(conn: Conn, user_uuid: str, token_hash: str, stamp: int, expires: int,
               device: str, device_name: str) -> None:
    db.add_token(conn, user_uuid, token_hash, stamp, expires, device)
    if device:
        ks.name_new_device(conn, user_uuid, device, device_name, stamp)
