"""Server-side key backup (Matrix `room_keys`): versions with the client's auth data, and the
room keys backed up under a version, all encrypted by the client and kept as sent."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from mod.db import keystore as ks
from mod.db.engine import Conn, Engine
from mod.error import ServiceError
from mod.service.common import Caller


@dataclass(slots=True, frozen=True)
class BackupVersion:
    version: int
    algorithm: str
    auth_data: dict[str, Any]
    etag: int
    count: int


def _version(conn: Conn, user_uuid: str, version: int | None) -> BackupVersion:
    found = ks.backup_version(conn, user_uuid, version)
    if found is None:
        raise ServiceError(404, "No backup version" if version is None
                           else f"No backup version {version}")
    number, algorithm, auth_data, etag = found
    return BackupVersion(number, algorithm, json.loads(auth_data), etag,
                         ks.count_backup_keys(conn, user_uuid, number))


class Backup:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    async def create(self, caller: Caller, algorithm: str, auth_data: dict[str, Any]) -> int:
        return await self.engine.write(ks.add_backup_version, caller.uuid, algorithm,
                                       ks.dumps(auth_data))

    async def get(self, caller: Caller, version: int | None) -> BackupVersion:
        """A backup version; the newest when None."""
        return await self.engine.read(_version, caller.uuid, version)

    async def update(self, caller: Caller, version: int, algorithm: str,
                     auth_data: dict[str, Any]) -> None:
        await self.engine.write(_update, caller.uuid, version, algorithm, auth_data)

    async def delete(self, caller: Caller, version: int) -> None:
        await self.engine.write(_delete, caller.uuid, version)

    async def put_keys(self, caller: Caller, version: int,
                       rooms: dict[str, dict[str, dict[str, Any]]]) -> BackupVersion:
        """Store keys (room -> session -> key data) under the newest version only."""
        return await self.engine.write(_put_keys, caller.uuid, version, rooms)

    async def keys(self, caller: Caller, version: int, room: str | None = None,
                   session: str | None = None) -> dict[str, dict[str, dict[str, Any]]]:
        rows = await self.engine.read(ks.backup_keys, caller.uuid, version, room, session)
        found: dict[str, dict[str, dict[str, Any]]] = {}
        for room_id, session_id, text in rows:
            found.setdefault(room_id, {})[session_id] = json.loads(text)
        return found

    async def delete_keys(self, caller: Caller, version: int, room: str | None = None,
                          session: str | None = None) -> BackupVersion:
        return await self.engine.write(_delete_keys, caller.uuid, version, room, session)


def _update(conn: Conn, user_uuid: str, version: int, algorithm: str,
            auth_data: dict[str, Any]) -> None:
    current = _version(conn, user_uuid, version)
    if algorithm != current.algorithm:
        raise ServiceError(400, "The algorithm of a backup version cannot change")
    ks.update_backup_version(conn, user_uuid, version, {"auth_data": ks.dumps(auth_data)})


def _delete(conn: Conn, user_uuid: str, version: int) -> None:
    _version(conn, user_uuid, version)
    ks.delete_backup_keys(conn, user_uuid, version)
    ks.update_backup_version(conn, user_uuid, version, {"deleted": True})


def _put_keys(conn: Conn, user_uuid: str, version: int,
              rooms: dict[str, dict[str, dict[str, Any]]]) -> BackupVersion:
    newest = _version(conn, user_uuid, None)
    if newest.version != version:
        raise ServiceError(403, f"Backup version {version} is not the current one "
                                f"({newest.version})", payload={"current_version":
                                                                str(newest.version)})
    for room_id, sessions in rooms.items():
        for session_id, data in sessions.items():
            ks.put_backup_key(conn, user_uuid, version, room_id, session_id, ks.dumps(data))
    ks.update_backup_version(conn, user_uuid, version, {"etag": newest.etag + 1})
    return _version(conn, user_uuid, version)


def _delete_keys(conn: Conn, user_uuid: str, version: int, room: str | None,
                 session: str | None) -> BackupVersion:
    current = _version(conn, user_uuid, version)
    ks.delete_backup_keys(conn, user_uuid, version, room, session)
    ks.update_backup_version(conn, user_uuid, version, {"etag": current.etag + 1})
    return _version(conn, user_uuid, version)
