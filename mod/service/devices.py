"""Devices and cross-signing: a user's devices (a token names its device), their names,
when and from where each was last seen, deleting them (their keys, waiting messages and
tokens go with them), and the user's cross-signing keys and the signatures made with them."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from loguru import logger

from mod.changes import Kind
from mod.db import dbhandler as db
from mod.db import keystore as ks
from mod.db.engine import Conn, Engine
from mod.error import ServiceError
from mod.service.accounts import Accounts
from mod.service.bounds import MAX_KEY_JSON, check_device_name
from mod.service.common import Caller, now
from mod.service.keys import DeviceInfo, log_device_change, parse_key_json

KEY_TYPES = ("master", "self_signing", "user_signing")
SEEN_EVERY = 60.0  # seconds between two records of one device's last use
SEEN_KEEP = 100_000


class LastSeen:
    """When and from where each device was last used, written at most once every SEEN_EVERY
    seconds per device, in one writer job for all devices due, off the request's path."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._recorded: dict[tuple[str, str], float] = {}  # monotonic time of the last record
        self._latest: dict[tuple[str, str], tuple[int, str]] = {}  # what this process saw
        self._due: dict[tuple[str, str], tuple[int, str]] = {}
        self._writing: asyncio.Task[None] | None = None

    def saw(self, caller: Caller, address: str) -> None:
        """A request of the caller's came from `address` (cheap: no I/O on most calls)."""
        if not caller.device:
            return
        key = (caller.uuid, caller.device)
        clock = time.monotonic()
        last = self._recorded.get(key)
        if last is not None and clock - last < SEEN_EVERY:
            return
        if len(self._recorded) >= SEEN_KEEP:
            self._recorded.clear()
            self._latest.clear()
        self._recorded[key] = clock
        self._latest[key] = self._due[key] = (int(time.time() * 1000), address)
        if self._writing is None:
            self._writing = asyncio.get_running_loop().create_task(self._write())

    async def _write(self) -> None:
        try:
            while self._due:
                due, self._due = self._due, {}
                seen = [(user, device, stamp, address)
                        for (user, device), (stamp, address) in due.items()]
                try:
                    await self.engine.write(ks.touch_devices, seen, now())
                except Exception as exc:  # a record of use is not worth failing a request
                    logger.warning("device last-seen not recorded: {}", exc)
        finally:
            self._writing = None

    def latest(self, user_uuid: str, device: str, stamp: int, address: str) -> tuple[int, str]:
        """A stored (last seen, address), or what this process saw since, if newer."""
        mine = self._latest.get((user_uuid, device))
        return mine if mine is not None and mine[0] > stamp else (stamp, address)


class Devices:
    def __init__(self, engine: Engine, accounts: Accounts) -> None:
        self.engine = engine
        self.accounts = accounts
        self.seen = LastSeen(engine)

    async def all(self, caller: Caller) -> list[DeviceInfo]:
        rows = await self.engine.read(ks.devices_of, [caller.uuid])
        return [DeviceInfo(user, device, name, parse_key_json(keys),
                           *self.seen.latest(user, device, ts, ip))
                for user, device, name, keys, ts, ip in rows]

    async def get(self, caller: Caller, device_id: str) -> DeviceInfo:
        for device in await self.all(caller):
            if device.device == device_id:
                return device
        raise ServiceError(404, f"No device {device_id}")

    async def rename(self, caller: Caller, device_id: str, name: str) -> None:
        check_device_name(name)
        await self.get(caller, device_id)
        await self.engine.write(ks.set_display_name, caller.uuid, device_id, name, now())

    async def delete(self, caller: Caller, device_ids: list[str], password: str) -> None:
        """Delete devices of the caller's, after their password: their keys and waiting
        messages go, and their tokens are revoked (they are logged out)."""
        await self.accounts.check_password(caller, password)
        await self.engine.write(_delete, caller.uuid, device_ids, now())
        self.accounts.forget_user_tokens(caller.uuid)
        logger.info("devices deleted: {} ({})", caller.uuid, len(device_ids))

    # -- cross-signing ------------------------------------------------------------------------

    async def signing_keys(self, user_uuids: list[str]) -> dict[tuple[str, str], dict[str, Any]]:
        found = await self.engine.read(ks.cross_signing_keys, user_uuids)
        return {key: json.loads(text) for key, text in found.items()}

    async def upload_signing_keys(self, caller: Caller, keys: dict[str, dict[str, Any]],
                                  password: str | None) -> None:
        """Store cross-signing keys. The first ones need no password (as Element sets them
        up right after registering); replacing a master key does."""
        stored = await self.engine.read(ks.cross_signing_keys, [caller.uuid])
        master = stored.get((caller.uuid, "master"))
        replacing = master is not None and "master" in keys and \
            json.loads(master) != keys["master"]
        if replacing:
            if password is None:
                raise ServiceError(401, "Replacing cross-signing keys needs your password")
            await self.accounts.check_password(caller, password)
        await self.engine.write(_store_signing_keys, caller.uuid, keys, now())
        logger.info("cross-signing keys stored: {}", caller.uuid)

    async def upload_signatures(self, caller: Caller,
                                signed: dict[str, dict[str, dict[str, Any]]]
                                ) -> dict[str, dict[str, str]]:
        """Add signatures to stored device or master keys (user -> key ID -> signed object);
        the keys that matched nothing, with the reason."""
        return await self.engine.write(_store_signatures, caller.uuid, signed, now())


def _delete(conn: Conn, user_uuid: str, device_ids: list[str], stamp: int) -> None:
    for device in device_ids:
        ks.delete_device(conn, user_uuid, device)
    db.log_change(conn, stamp, "", Kind.TOKENS_REVOKED, user_uuid, user_uuid, {})
    log_device_change(conn, user_uuid, stamp)


def _store_signing_keys(conn: Conn, user_uuid: str, keys: dict[str, dict[str, Any]],
                        stamp: int) -> None:
    for key_type in KEY_TYPES:
        if key_type in keys:
            ks.set_cross_signing_key(conn, user_uuid, key_type, ks.dumps(keys[key_type]))
    log_device_change(conn, user_uuid, stamp)


def _merge(stored: dict[str, Any], signed: dict[str, Any]) -> dict[str, Any]:
    signatures = stored.setdefault("signatures", {})
    for signer, sigs in (signed.get("signatures") or {}).items():
        if isinstance(sigs, dict):
            signatures.setdefault(signer, {}).update(sigs)
    return stored


def _store_signatures(conn: Conn, caller_uuid: str, signed: dict[str, dict[str, dict[str, Any]]],
                      stamp: int) -> dict[str, dict[str, str]]:
    failures: dict[str, dict[str, str]] = {}
    for user, objects in signed.items():
        masters = ks.cross_signing_keys(conn, [user])
        master_text = masters.get((user, "master"))
        master = json.loads(master_text) if master_text else None
        changed = False
        for key_id, obj in objects.items():
            device_text = ks.device_keys(conn, user, key_id) if user == caller_uuid else ""
            if device_text:
                merged = ks.dumps(_merge(json.loads(device_text), obj))
                if len(merged) > MAX_KEY_JSON:
                    failures.setdefault(user, {})[key_id] = "too many signatures"
                    continue
                ks.set_device_keys(conn, user, key_id, merged, stamp)
                changed = True
            elif master is not None and key_id in (master.get("keys") or {}).values():
                merged = ks.dumps(_merge(json.loads(ks.dumps(master)), obj))
                if len(merged) > MAX_KEY_JSON:
                    failures.setdefault(user, {})[key_id] = "too many signatures"
                    continue
                master = json.loads(merged)
                ks.set_cross_signing_key(conn, user, "master", merged)
                changed = True
            else:
                failures.setdefault(user, {})[key_id] = "unknown key"
        if changed:
            log_device_change(conn, user, stamp)
    return failures
