"""Queries of end-to-end encryption: devices and their keys, to-device messages,
cross-signing keys and key backups. Functions take an open `Conn` and return plain data;
key material is kept as the JSON text the client sent."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from pydantic_core import to_json
from sqlobject.sqlbuilder import AND, IN, Delete, Insert, Select, Update, func

from mod import changes as kinds
from mod.changes import Kind
from mod.db.engine import Conn
from mod.db.models import (
    BackupKey,
    Change,
    CrossSigningKey,
    Device,
    KeyBackup,
    Member,
    OneTimeKey,
    ToDevice,
    Token,
)


def dumps(value: Any) -> str:
    return to_json(value).decode()


# -- devices ----------------------------------------------------------------------------------


def ensure_device(conn: Conn, user_uuid: str, device_id: str, now: int) -> bool:
    """Make sure a device has a row; whether it was made now."""
    found = conn.one(Select(Device.q.id, where=AND(Device.q.user_uuid == user_uuid,
                                                 Device.q.device_id == device_id)))
    if found is None:
        conn.execute(Insert(Device.sqlmeta.table, values={
            "user_uuid": user_uuid, "device_id": device_id, "display_name": "", "keys": "",
            "time_created": now, "last_seen_ts": 0, "last_seen_ip": ""}))
    return found is None


def name_new_device(conn: Conn, user_uuid: str, device_id: str, name: str, now: int) -> None:
    """Give a device logged in with its initial name that name, unless it has one."""
    mine = AND(Device.q.user_uuid == user_uuid, Device.q.device_id == device_id)
    if ensure_device(conn, user_uuid, device_id, now) or (name and conn.one(
            Select(Device.q.id, where=AND(mine, Device.q.display_name == "")))):
        conn.execute(Update(Device.sqlmeta.table, values={"display_name": name}, where=mine))


def touch_devices(conn: Conn, seen: Sequence[tuple[str, str, int, str]], now: int) -> None:
    """Record when (milliseconds) and from where devices were last seen:
    (user uuid, device ID, time, address) each."""
    for user_uuid, device_id, stamp, address in seen:
        ensure_device(conn, user_uuid, device_id, now)
        conn.execute(Update(Device.sqlmeta.table,
                          values={"last_seen_ts": stamp, "last_seen_ip": address},
                          where=AND(Device.q.user_uuid == user_uuid,
                                    Device.q.device_id == device_id)))


def set_device_keys(conn: Conn, user_uuid: str, device_id: str, keys: str, now: int) -> bool:
    """Store a device's identity keys; whether they differ from those stored."""
    ensure_device(conn, user_uuid, device_id, now)
    row = conn.one(Select(Device.q.keys, where=AND(Device.q.user_uuid == user_uuid,
                                                 Device.q.device_id == device_id)))
    if row is not None and row[0] == keys:
        return False
    conn.execute(Update(Device.sqlmeta.table, values={"keys": keys},
                      where=AND(Device.q.user_uuid == user_uuid, Device.q.device_id == device_id)))
    return True


def set_display_name(conn: Conn, user_uuid: str, device_id: str, name: str, now: int) -> None:
    ensure_device(conn, user_uuid, device_id, now)
    conn.execute(Update(Device.sqlmeta.table, values={"display_name": name},
                      where=AND(Device.q.user_uuid == user_uuid, Device.q.device_id == device_id)))


DeviceRow = tuple[str, str, str, str, int, str]


def devices_of(conn: Conn, user_uuids: Sequence[str]) -> list[DeviceRow]:
    """(user uuid, device ID, display name, keys JSON or "", last seen (ms, 0: not yet),
    last address) of users' devices: those with a row and those that only have a token."""
    if not user_uuids:
        return []
    found: dict[tuple[str, str], DeviceRow] = {}
    for user, device, name, keys, seen, address in conn.all(Select(
            [Device.q.user_uuid, Device.q.device_id, Device.q.display_name, Device.q.keys,
             Device.q.last_seen_ts, Device.q.last_seen_ip],
            where=IN(Device.q.user_uuid, list(user_uuids)), orderBy=Device.q.id)):
        found[(user, device)] = (user, device, name, keys, int(seen or 0), address)
    for user, device in conn.all(Select([Token.q.user_uuid, Token.q.device],
                                      where=AND(IN(Token.q.user_uuid, list(user_uuids)),
                                                Token.q.device != ""), distinct=True)):
        found.setdefault((user, device), (user, device, "", "", 0, ""))
    return list(found.values())


def delete_device(conn: Conn, user_uuid: str, device_id: str, tokens: bool = True) -> bool:
    """Forget a device: its row, keys, waiting messages and (unless `tokens` is False) its
    tokens. Whether it had a row (it had made itself known beyond a token)."""
    mine = AND(Device.q.user_uuid == user_uuid, Device.q.device_id == device_id)
    had = conn.execute(Delete(Device.sqlmeta.table, where=mine)) > 0
    conn.execute(Delete(OneTimeKey.sqlmeta.table, where=AND(
        OneTimeKey.q.user_uuid == user_uuid, OneTimeKey.q.device_id == device_id)))
    conn.execute(Delete(ToDevice.sqlmeta.table, where=AND(
        ToDevice.q.user_uuid == user_uuid, ToDevice.q.device_id == device_id)))
    if tokens:
        conn.execute(Delete(Token.sqlmeta.table, where=AND(Token.q.user_uuid == user_uuid,
                                                         Token.q.device == device_id)))
    return had


def device_ids(conn: Conn, user_uuid: str) -> list[str]:
    """The devices of a user that have a row."""
    return [row[0] for row in conn.all(Select(Device.q.device_id,
                                            where=Device.q.user_uuid == user_uuid))]


# -- one-time and fallback keys ---------------------------------------------------------------


IN_CHUNK = 500  # values in one IN (...): well under SQLite's and PostgreSQL's limits


def stored_key_ids(conn: Conn, user_uuid: str, device_id: str, key_ids: Sequence[str]
                   ) -> set[tuple[str, str]]:
    """(algorithm, key ID) of a device's keys among `key_ids`: looked up by key ID (index
    `one_time_keys_by_key`), so the cost follows the keys asked about, not the keys stored."""
    found: set[tuple[str, str]] = set()
    wanted = sorted(set(key_ids))
    for start in range(0, len(wanted), IN_CHUNK):
        found.update((row[0], row[1]) for row in conn.all(Select(
            [OneTimeKey.q.algorithm, OneTimeKey.q.key_id],
            where=AND(OneTimeKey.q.user_uuid == user_uuid, OneTimeKey.q.device_id == device_id,
                      IN(OneTimeKey.q.key_id, wanted[start:start + IN_CHUNK])))))
    return found


def add_one_time_keys(conn: Conn, user_uuid: str, device_id: str,
                      keys: Sequence[tuple[str, str, Any]], fallback: bool) -> None:
    """Store keys, (algorithm, key ID, key) each, none of them stored already (one-time keys:
    see `stored_key_ids`); a fallback key replaces the device's earlier ones of its
    algorithm."""
    mine = AND(OneTimeKey.q.user_uuid == user_uuid, OneTimeKey.q.device_id == device_id)
    for algorithm, key_id, key in keys:
        if fallback:
            conn.execute(Delete(OneTimeKey.sqlmeta.table, where=AND(
                mine, OneTimeKey.q.algorithm == algorithm, OneTimeKey.q.fallback == True)))  # noqa: E712
        conn.execute(Insert(OneTimeKey.sqlmeta.table, values={
            "user_uuid": user_uuid, "device_id": device_id, "algorithm": algorithm,
            "key_id": key_id, "key_json": dumps(key), "fallback": fallback, "used": False}))


def key_counts(conn: Conn, user_uuid: str, device_id: str) -> tuple[dict[str, int], list[str]]:
    """Unclaimed one-time keys per algorithm, and the algorithms of unused fallback keys."""
    counts: dict[str, int] = {}
    unused: list[str] = []
    rows = conn.all(Select([OneTimeKey.q.algorithm, OneTimeKey.q.fallback, OneTimeKey.q.used,
                          func.COUNT(OneTimeKey.q.id)],
                         where=AND(OneTimeKey.q.user_uuid == user_uuid,
                                   OneTimeKey.q.device_id == device_id),
                         groupBy=[OneTimeKey.q.algorithm, OneTimeKey.q.fallback,
                                  OneTimeKey.q.used]))
    for algorithm, fallback, used, count in rows:
        if not fallback:
            counts[algorithm] = counts.get(algorithm, 0) + int(count)
        elif not used:
            unused.append(algorithm)
    return counts, sorted(unused)


def fallback_algorithms(conn: Conn, user_uuid: str, device_id: str) -> set[str]:
    """The algorithms of a device's fallback keys, used or not."""
    return {row[0] for row in conn.all(Select(OneTimeKey.q.algorithm, where=AND(
        OneTimeKey.q.user_uuid == user_uuid, OneTimeKey.q.device_id == device_id,
        OneTimeKey.q.fallback == True), distinct=True))}  # noqa: E712


def claim_key(conn: Conn, user_uuid: str, device_id: str, algorithm: str
              ) -> tuple[str, str] | None:
    """("<algorithm>:<key id>", key JSON) of a one-time key, removed as it is handed out;
    the fallback key (marked used, kept) when none is left; None without either."""
    mine = AND(OneTimeKey.q.user_uuid == user_uuid, OneTimeKey.q.device_id == device_id,
               OneTimeKey.q.algorithm == algorithm)
    row = conn.one(Select([OneTimeKey.q.id, OneTimeKey.q.key_id, OneTimeKey.q.key_json],
                        where=AND(mine, OneTimeKey.q.fallback == False),  # noqa: E712
                        orderBy=OneTimeKey.q.id, limit=1))
    if row is not None:
        conn.execute(Delete(OneTimeKey.sqlmeta.table, where=OneTimeKey.q.id == row[0]))
        return f"{algorithm}:{row[1]}", row[2]
    row = conn.one(Select([OneTimeKey.q.id, OneTimeKey.q.key_id, OneTimeKey.q.key_json],
                        where=AND(mine, OneTimeKey.q.fallback == True),  # noqa: E712
                        orderBy=OneTimeKey.q.id, limit=1))
    if row is None:
        return None
    conn.execute(Update(OneTimeKey.sqlmeta.table, values={"used": True},
                      where=OneTimeKey.q.id == row[0]))
    return f"{algorithm}:{row[1]}", row[2]


# -- to-device messages -----------------------------------------------------------------------


def add_to_device(conn: Conn, user_uuid: str, device_id: str, position: int, sender: str,
                  event_type: str, content: dict[str, Any]) -> None:
    conn.execute(Insert(ToDevice.sqlmeta.table, values={
        "user_uuid": user_uuid, "device_id": device_id, "position": position, "sender": sender,
        "event_type": event_type, "content": dumps(content)}))


def to_device_between(conn: Conn, user_uuid: str, device_id: str, after: int, upto: int,
                      limit: int) -> list[tuple[int, str, str, str]]:
    """(position, sender uuid, type, content JSON) of the first `limit` of a device's messages
    logged in (after, upto], in order."""
    rows = conn.all(Select([ToDevice.q.position, ToDevice.q.sender, ToDevice.q.event_type,
                            ToDevice.q.content],
                           where=AND(ToDevice.q.user_uuid == user_uuid,
                                     ToDevice.q.device_id == device_id,
                                     ToDevice.q.position > after, ToDevice.q.position <= upto),
                           orderBy=[ToDevice.q.position, ToDevice.q.id], limit=limit))
    return [(int(row[0]), row[1], row[2], row[3]) for row in rows]


def to_device_pending(conn: Conn, user_uuid: str, sender: str, limit: int) -> int:
    """How many messages from `sender` wait for a user's devices, counted up to `limit`
    (index `to_device_by_sender`: the cost is bounded by the limit)."""
    rows = conn.all(Select(ToDevice.q.id, where=AND(ToDevice.q.user_uuid == user_uuid,
                                                  ToDevice.q.sender == sender), limit=limit))
    return len(rows)


def to_device_waiting(conn: Conn, user_uuid: str, device_id: str, upto: int) -> bool:
    return conn.one(Select(ToDevice.q.id, where=AND(
        ToDevice.q.user_uuid == user_uuid, ToDevice.q.device_id == device_id,
        ToDevice.q.position <= upto), limit=1)) is not None


def drop_to_device(conn: Conn, user_uuid: str, device_id: str, upto: int) -> int:
    """Delete a device's messages the device has acknowledged (logged at or before `upto`)."""
    return int(conn.execute(Delete(ToDevice.sqlmeta.table, where=AND(
        ToDevice.q.user_uuid == user_uuid, ToDevice.q.device_id == device_id,
        ToDevice.q.position <= upto))))


# -- cross-signing ----------------------------------------------------------------------------


def cross_signing_keys(conn: Conn, user_uuids: Iterable[str]) -> dict[tuple[str, str], str]:
    """(user uuid, key type) -> key JSON."""
    wanted = list(user_uuids)
    if not wanted:
        return {}
    rows = conn.all(Select([CrossSigningKey.q.user_uuid, CrossSigningKey.q.key_type,
                          CrossSigningKey.q.key_json],
                         where=IN(CrossSigningKey.q.user_uuid, wanted)))
    return {(row[0], row[1]): row[2] for row in rows}


def set_cross_signing_key(conn: Conn, user_uuid: str, key_type: str, key_json: str) -> None:
    where = AND(CrossSigningKey.q.user_uuid == user_uuid, CrossSigningKey.q.key_type == key_type)
    if conn.one(Select(CrossSigningKey.q.id, where=where)) is None:
        conn.execute(Insert(CrossSigningKey.sqlmeta.table, values={
            "user_uuid": user_uuid, "key_type": key_type, "key_json": key_json}))
    else:
        conn.execute(Update(CrossSigningKey.sqlmeta.table, values={"key_json": key_json},
                          where=where))


def device_keys(conn: Conn, user_uuid: str, device_id: str) -> str:
    row = conn.one(Select(Device.q.keys, where=AND(Device.q.user_uuid == user_uuid,
                                                 Device.q.device_id == device_id)))
    return str(row[0]) if row else ""


# -- key backup -------------------------------------------------------------------------------


def backup_version(conn: Conn, user_uuid: str, version: int | None
                   ) -> tuple[int, str, str, int] | None:
    """(version, algorithm, auth data JSON, etag) of a backup (the newest when None)."""
    where = [KeyBackup.q.user_uuid == user_uuid, KeyBackup.q.deleted == False]  # noqa: E712
    if version is not None:
        where.append(KeyBackup.q.version == version)
    row = conn.one(Select([KeyBackup.q.version, KeyBackup.q.algorithm, KeyBackup.q.auth_data,
                         KeyBackup.q.etag], where=AND(*where),
                        orderBy=KeyBackup.q.version.__neg__(), limit=1))
    return (int(row[0]), row[1], row[2], int(row[3])) if row else None


def add_backup_version(conn: Conn, user_uuid: str, algorithm: str, auth_data: str) -> int:
    row = conn.one(Select(func.MAX(KeyBackup.q.version), where=KeyBackup.q.user_uuid == user_uuid))
    version = (int(row[0]) if row and row[0] is not None else 0) + 1
    conn.execute(Insert(KeyBackup.sqlmeta.table, values={
        "user_uuid": user_uuid, "version": version, "algorithm": algorithm,
        "auth_data": auth_data, "etag": 0, "deleted": False}))
    return version


def update_backup_version(conn: Conn, user_uuid: str, version: int, values: dict[str, Any]) -> None:
    conn.execute(Update(KeyBackup.sqlmeta.table, values=values, where=AND(
        KeyBackup.q.user_uuid == user_uuid, KeyBackup.q.version == version)))


def delete_backup_keys(conn: Conn, user_uuid: str, version: int, room_id: str | None = None,
                       session_id: str | None = None) -> int:
    where = [BackupKey.q.user_uuid == user_uuid, BackupKey.q.version == version]
    if room_id is not None:
        where.append(BackupKey.q.room_id == room_id)
    if session_id is not None:
        where.append(BackupKey.q.session_id == session_id)
    return int(conn.execute(Delete(BackupKey.sqlmeta.table, where=AND(*where))))


def put_backup_key(conn: Conn, user_uuid: str, version: int, room_id: str, session_id: str,
                   key_json: str) -> None:
    delete_backup_keys(conn, user_uuid, version, room_id, session_id)
    conn.execute(Insert(BackupKey.sqlmeta.table, values={
        "user_uuid": user_uuid, "version": version, "room_id": room_id,
        "session_id": session_id, "key_json": key_json}))


def backup_keys(conn: Conn, user_uuid: str, version: int, room_id: str | None = None,
                session_id: str | None = None) -> list[tuple[str, str, str]]:
    """(room ID, session ID, key JSON) of a backup version's keys."""
    where = [BackupKey.q.user_uuid == user_uuid, BackupKey.q.version == version]
    if room_id is not None:
        where.append(BackupKey.q.room_id == room_id)
    if session_id is not None:
        where.append(BackupKey.q.session_id == session_id)
    rows = conn.all(Select([BackupKey.q.room_id, BackupKey.q.session_id, BackupKey.q.key_json],
                         where=AND(*where), orderBy=BackupKey.q.id))
    return [(row[0], row[1], row[2]) for row in rows]


def count_backup_keys(conn: Conn, user_uuid: str, version: int) -> int:
    row = conn.one(Select(func.COUNT(BackupKey.q.id), where=AND(
        BackupKey.q.user_uuid == user_uuid, BackupKey.q.version == version)))
    return int(row[0]) if row else 0


# -- who hears of a user's device changes -----------------------------------------------------


def room_mates(conn: Conn, user_uuid: str) -> set[str]:
    """The users who share a flow with a user, the user included."""
    flows = [row[0] for row in conn.all(Select(Member.q.flow_uuid,
                                             where=Member.q.user_uuid == user_uuid))]
    mates = {user_uuid}
    if flows:
        mates.update(row[0] for row in conn.all(Select(Member.q.user_uuid,
                                                     where=IN(Member.q.flow_uuid, flows),
                                                     distinct=True)))
    return mates


def flow_members_of(conn: Conn, user_uuid: str) -> dict[str, set[str]]:
    """The members of each flow a user is a member of, by flow."""
    flows = [row[0] for row in conn.all(Select(Member.q.flow_uuid,
                                             where=Member.q.user_uuid == user_uuid))]
    found: dict[str, set[str]] = {flow: set() for flow in flows}
    if flows:
        for flow, user in conn.all(Select([Member.q.flow_uuid, Member.q.user_uuid],
                                        where=IN(Member.q.flow_uuid, flows))):
            found[flow].add(user)
    return found


def members_of(conn: Conn, flow_uuids: Iterable[str]) -> set[str]:
    wanted = list(flow_uuids)
    if not wanted:
        return set()
    return {row[0] for row in conn.all(Select(Member.q.user_uuid,
                                            where=IN(Member.q.flow_uuid, wanted),
                                            distinct=True))}


_SHARING = sorted(kinds.SHARING)


def membership_changes(conn: Conn, after: int, upto: int) -> list[tuple[str, str, str, str]]:
    """(flow uuid, kind, subject, payload JSON) of the membership changes logged in
    (after, upto]: flows made with their members, joins and leaves."""
    rows = conn.all(Select([Change.q.flow_uuid, Change.q.kind, Change.q.subject,
                          Change.q.payload], where=AND(
        IN(Change.q.kind, _SHARING), Change.q.id > after, Change.q.id <= upto),
        orderBy=Change.q.id))
    return [(row[0], row[1], row[2], row[3]) for row in rows]


def device_changes(conn: Conn, after: int, upto: int) -> list[tuple[str, str]]:
    """(user uuid, payload JSON) of the device-key changes logged in (after, upto]."""
    rows = conn.all(Select([Change.q.subject, Change.q.payload], where=AND(
        Change.q.kind == Kind.DEVICE_KEYS_CHANGED, Change.q.flow_uuid == "",
        Change.q.id > after, Change.q.id <= upto), orderBy=Change.q.id))
    return [(row[0], row[1]) for row in rows]
