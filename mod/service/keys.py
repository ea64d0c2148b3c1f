"""End-to-end encryption keys: device and one-time keys, to-device messages, device-list
changes, and what a device's /sync carries of them.

The server never reads key material: it keeps the JSON a client uploads and hands it out.
A device's identity keys changing logs a `device_keys_changed` change (no flow, subject the
user) addressed in its payload to everyone who shares a flow with the user; a to-device
message logs a `to_device` change addressed to its recipient. The hub delivers both to the
users named, which ends their waiting /sync; the change's position orders the message and
says when a device has acknowledged it (a /sync whose `since` is at or past it). Uploading
or claiming one-time keys logs `one_time_keys_changed`, addressed to the keys' owner, so a
/sync knows when the counts it last read may be stale (`streams.DeviceKeysCache`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from loguru import logger

from mod.db import dbhandler as db
from mod.db import keystore as ks
from mod.db.engine import Conn, Engine
from mod.error import ServiceError
from mod.service.common import RETRY_WINDOW, Caller, now, retry_key

ALL_DEVICES = "*"
MAX_TO_DEVICE = 500


@dataclass(slots=True, frozen=True)
class DeviceInfo:
    user: str
    device: str
    display_name: str
    keys: dict[str, Any] | None
    last_seen_ts: int = 0  # milliseconds; 0: not seen yet
    last_seen_ip: str = ""


@dataclass(slots=True, frozen=True)
class SyncKeys:
    """What a device's /sync carries besides rooms."""

    to_device: list[tuple[str, str, dict[str, Any]]]  # (sender uuid, type, content)
    changed: list[str]  # user uuids whose devices changed, or who newly share a flow
    counts: dict[str, int]
    unused_fallback: list[str]
    left: list[str] = field(default_factory=list)  # user uuids who share no flow any more

    @property
    def news(self) -> bool:
        """Whether this ends a waiting /sync."""
        return bool(self.to_device or self.changed or self.left)


def _device_changed(conn: Conn, user_uuid: str, stamp: int) -> None:
    users = sorted(ks.room_mates(conn, user_uuid))
    db.log_change(conn, stamp, "", "device_keys_changed", user_uuid, user_uuid, {"users": users})


def _parse(text: str) -> dict[str, Any] | None:
    if not text:
        return None
    value = json.loads(text)
    return value if isinstance(value, dict) else None


class Keys:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # -- device keys and one-time keys --------------------------------------------------------

    async def upload(self, caller: Caller, device_keys: dict[str, Any] | None,
                     one_time_keys: dict[str, Any], fallback_keys: dict[str, Any]
                     ) -> dict[str, int]:
        """Store the caller's device's keys; the unclaimed one-time keys per algorithm."""
        if not caller.device:
            raise ServiceError(400, "This access token has no device")
        return await self.engine.write(_upload, caller, device_keys, one_time_keys,
                                       fallback_keys, now())

    async def query(self, users: dict[str, list[str]]) -> dict[str, list[DeviceInfo]]:
        """The devices (all, or those named) of some users, with their keys."""
        rows = await self.engine.read(ks.devices_of, list(users))
        found: dict[str, list[DeviceInfo]] = {user: [] for user in users}
        for user, device, name, keys, _, _ in rows:
            wanted = users.get(user)
            if wanted and device not in wanted:
                continue
            found[user].append(DeviceInfo(user, device, name, _parse(keys)))
        return found

    async def claim(self, wanted: dict[str, dict[str, str]]
                    ) -> dict[str, dict[str, dict[str, Any]]]:
        """One key of each device asked for (user -> device -> algorithm): a one-time key,
        handed out once, else the device's fallback key."""
        return await self.engine.write(_claim, wanted, now())

    async def changes(self, caller: Caller, after: int, upto: int
                      ) -> tuple[list[str], list[str]]:
        """The users sharing a flow with the caller whose devices changed in (after, upto]
        or who came to share one, and those who no longer share any."""
        return await self.engine.read(_device_lists, caller.uuid, after, upto)

    # -- to-device messages -------------------------------------------------------------------

    async def send_to_device(self, caller: Caller, event_type: str,
                             messages: dict[str, dict[str, dict[str, Any]]], txn: str) -> None:
        """Queue messages (user -> device or "*" -> content); retry-safe by `txn`."""
        count = sum(len(devices) for devices in messages.values())
        if count > MAX_TO_DEVICE:
            raise ServiceError(413, f"At most {MAX_TO_DEVICE} to-device messages at once")
        key = retry_key("txn", caller.token_hash, "", "to_device", txn)
        await self.engine.write(_send_to_device, caller, event_type, messages, key, now())

    # -- /sync --------------------------------------------------------------------------------

    async def for_sync(self, caller: Caller, since: int | None, upto: int) -> SyncKeys:
        """What the caller's device gets in a /sync covering (since, upto]; messages the
        device acknowledged (logged at or before `since`) are deleted first."""
        if not caller.device:
            return SyncKeys([], [], {}, [], [])
        found, acknowledged = await self.engine.read(_for_sync, caller, since, upto)
        if acknowledged:
            await self.engine.write(ks.drop_to_device, caller.uuid, caller.device, since or 0)
        return found


def forget_devices(conn: Conn, user_uuid: str, device_ids: list[str], stamp: int) -> None:
    """Logging a device out ends it, as on Synapse: its keys and waiting messages go, and the
    user's room-mates hear of the change (the tokens are the caller's business)."""
    if any([ks.delete_device(conn, user_uuid, device, tokens=False) for device in device_ids]):
        _device_changed(conn, user_uuid, stamp)


def _upload(conn: Conn, caller: Caller, device_keys: dict[str, Any] | None,
            one_time_keys: dict[str, Any], fallback_keys: dict[str, Any], stamp: int
            ) -> dict[str, int]:
    if device_keys is not None and ks.set_device_keys(conn, caller.uuid, caller.device,
                                                      ks.dumps(device_keys), stamp):
        _device_changed(conn, caller.uuid, stamp)
        logger.info("device keys stored: {} {}", caller.uuid, caller.device)
    if one_time_keys:
        ks.add_one_time_keys(conn, caller.uuid, caller.device, one_time_keys, False)
    if fallback_keys:
        ks.add_one_time_keys(conn, caller.uuid, caller.device, fallback_keys, True)
    if one_time_keys or fallback_keys:
        _counts_changed(conn, caller.uuid, stamp)
    return ks.key_counts(conn, caller.uuid, caller.device)[0]


def _counts_changed(conn: Conn, user_uuid: str, stamp: int) -> None:
    """Log that a user's key counts changed, so their devices' /sync read them again."""
    db.log_change(conn, stamp, "", "one_time_keys_changed", user_uuid, user_uuid,
                  {"users": [user_uuid]})


def _claim(conn: Conn, wanted: dict[str, dict[str, str]], stamp: int
           ) -> dict[str, dict[str, dict[str, Any]]]:
    claimed: dict[str, dict[str, dict[str, Any]]] = {}
    for user, devices in wanted.items():
        for device, algorithm in devices.items():
            key = ks.claim_key(conn, user, device, algorithm)
            if key is not None:
                claimed.setdefault(user, {})[device] = {key[0]: json.loads(key[1])}
        if user in claimed:
            _counts_changed(conn, user, stamp)
    return claimed


def _device_lists(conn: Conn, user_uuid: str, after: int, upto: int
                  ) -> tuple[list[str], list[str]]:
    """`device_lists` of (after, upto]: (changed, left). Changed: users whose devices changed,
    and users who came to share a flow with the user (a join of theirs, or of the user's)
    and shared none before, so that the client asks for their keys; left: users who shared
    a flow with the user and share none now."""
    changed: dict[str, None] = {}
    for subject, payload in ks.device_changes(conn, after, upto):
        try:
            users = json.loads(payload).get("users", [])
        except (ValueError, AttributeError):
            continue
        if user_uuid in users:
            changed.setdefault(subject)
    rows = ks.membership_changes(conn, after, upto)
    if not rows:
        return list(changed), []
    by_flow = ks.flow_members_of(conn, user_uuid)
    mates = {user_uuid}.union(*by_flow.values())
    mine = set(by_flow) | {flow for flow, kind, subject, _ in rows
                           if kind == "flow_left" and subject == user_uuid}
    met: set[str] = set()
    parted: set[str] = set()
    gone: set[str] = set()
    fresh: set[tuple[str, str]] = set()  # (flow, user): memberships begun in the range
    for flow, kind, subject, payload in rows:
        if flow not in mine:
            continue
        if kind == "flow_left" and subject == user_uuid:
            gone.add(flow)
        elif kind == "flow_left":
            parted.add(subject)
        elif kind == "flow_joined":
            fresh.add((flow, subject))
            met.update(by_flow.get(flow, ()) if subject == user_uuid else (subject,))
        else:
            members = _created_with(payload)
            fresh.update((flow, member) for member in members)
            if user_uuid in members:
                met.update(members)
    parted |= ks.members_of(conn, gone)
    left = parted - mates

    def shared_before(user: str) -> bool:
        return any(user in members and (flow, user) not in fresh
                   and (flow, user_uuid) not in fresh for flow, members in by_flow.items())

    for user in sorted((met & mates) - {user_uuid}):
        if not shared_before(user):
            changed.setdefault(user)
    return [user for user in changed if user not in left], sorted(left)


def _created_with(payload: str) -> set[str]:
    """The members a flow was made with (a `flow_created` payload)."""
    try:
        users = json.loads(payload)["flow"]["users"]
    except (ValueError, KeyError, TypeError):
        return set()
    return {user for user in users if isinstance(user, str)} if isinstance(users, list) \
        else set()


def _send_to_device(conn: Conn, caller: Caller, event_type: str,
                    messages: dict[str, dict[str, dict[str, Any]]], key: str,
                    stamp: int) -> None:
    if db.txn_result(conn, key, stamp - RETRY_WINDOW) is not None:
        return
    for user, devices in messages.items():
        known = {row[1] for row in ks.devices_of(conn, [user])}
        targets: list[tuple[str, dict[str, Any]]] = []
        for device, content in devices.items():
            if device == ALL_DEVICES:
                targets.extend((each, content) for each in sorted(known))
            elif device in known:
                targets.append((device, content))
        if not targets:
            continue
        change = db.log_change(conn, stamp, "", "to_device", caller.uuid, user,
                               {"users": [user]})
        for device, content in targets:
            ks.add_to_device(conn, user, device, change.position, caller.uuid, event_type,
                             content)
    db.txn_store(conn, key, "sent", stamp)


def _for_sync(conn: Conn, caller: Caller, since: int | None, upto: int) -> tuple[SyncKeys, bool]:
    messages = [(sender, kind, json.loads(content)) for sender, kind, content in
                ks.to_device_between(conn, caller.uuid, caller.device, since or 0, upto)]
    changed, left = _device_lists(conn, caller.uuid, since, upto) if since is not None \
        else ([], [])
    counts, unused = ks.key_counts(conn, caller.uuid, caller.device)
    acknowledged = since is not None and ks.to_device_waiting(conn, caller.uuid, caller.device,
                                                              since)
    return SyncKeys(messages, changed, counts, unused, left), acknowledged
