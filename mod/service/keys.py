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

from mod.changes import FlowPayload, Kind, UsersPayload, payload_of
from mod.config.validator import Matrix
from mod.db import dbhandler as db
from mod.db import keystore as ks
from mod.db.engine import Conn, Engine
from mod.error import OverLimit, ServiceError, TooLong
from mod.service.bounds import MAX_EVENT_TYPE, MAX_FALLBACK_ALGORITHMS, MAX_KEY_NAME
from mod.service.buckets import Buckets
from mod.service.common import RETRY_WINDOW, Caller, now, retry_key

ALL_DEVICES = "*"
MAX_TO_DEVICE = 500
SYNC_TO_DEVICE_BYTES = 1024 * 1024  # content characters one /sync carries (at least one)


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
    # Set when more messages wait than one /sync carries: the position the batch must end at
    # (that of the last message carried), so that the rest come in the next /sync.
    through: int | None = None

    @property
    def news(self) -> bool:
        """Whether this ends a waiting /sync."""
        return bool(self.to_device or self.changed or self.left)


def log_device_change(conn: Conn, user_uuid: str, stamp: int) -> None:
    """Tell the user and everyone sharing a room with them that their devices changed."""
    users = sorted(ks.room_mates(conn, user_uuid))
    db.log_change(conn, stamp, "", Kind.DEVICE_KEYS_CHANGED, user_uuid, user_uuid, {"users": users})


def parse_key_json(text: str) -> dict[str, Any] | None:
    """Key material as stored (JSON text; "" for none): the object, or None."""
    if not text:
        return None
    value = json.loads(text)
    return value if isinstance(value, dict) else None


def _key_names(keys: dict[str, Any], what: str) -> list[tuple[str, str, Any]]:
    """(algorithm, key ID, key) of keys named "<algorithm>:<key id>"."""
    named: list[tuple[str, str, Any]] = []
    for name, key in keys.items():
        algorithm, colon, key_id = name.partition(":")
        if not colon or not algorithm or not key_id:
            raise ServiceError(400, f"{what}: {name[:64]!r} is not <algorithm>:<key id>")
        if len(name) > MAX_KEY_NAME:
            raise TooLong(f"{what}: a key name is at most {MAX_KEY_NAME} characters")
        named.append((algorithm, key_id, key))
    return named


class Keys:
    def __init__(self, engine: Engine, settings: Matrix | None = None) -> None:
        self.engine = engine
        self.settings = settings or Matrix()
        self.senders = Buckets(self.settings.to_device_rate, self.settings.to_device_burst)

    # -- device keys and one-time keys --------------------------------------------------------

    async def upload(self, caller: Caller, device_keys: dict[str, Any] | None,
                     one_time_keys: dict[str, Any], fallback_keys: dict[str, Any]
                     ) -> dict[str, int]:
        """Store the caller's device's keys; the unclaimed one-time keys per algorithm."""
        if not caller.device:
            raise ServiceError(400, "This access token has no device")
        return await self.engine.write(
            _upload, caller, device_keys, _key_names(one_time_keys, "one_time_keys"),
            _key_names(fallback_keys, "fallback_keys"), self.settings.max_one_time_keys, now())

    async def query(self, users: dict[str, list[str]]) -> dict[str, list[DeviceInfo]]:
        """The devices (all, or those named) of some users, with their keys."""
        rows = await self.engine.read(ks.devices_of, list(users))
        found: dict[str, list[DeviceInfo]] = {user: [] for user in users}
        for user, device, name, keys, _, _ in rows:
            wanted = users.get(user)
            if wanted and device not in wanted:
                continue
            found[user].append(DeviceInfo(user, device, name, parse_key_json(keys)))
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
        """Queue messages (user -> device or "*" -> content); retry-safe by `txn`.
        A sender makes at most TO_DEVICE_RATE requests a second (a burst of TO_DEVICE_BURST)
        and has at most TO_DEVICE_PENDING messages waiting for one user: messages to a user
        past it are not queued, and a request none of whose messages could be is refused."""
        if not event_type or len(event_type) > MAX_EVENT_TYPE:
            raise ServiceError(400, f"A to-device type has 1 to {MAX_EVENT_TYPE} characters")
        count = sum(len(devices) for devices in messages.values())
        if count > MAX_TO_DEVICE:
            raise ServiceError(413, f"At most {MAX_TO_DEVICE} to-device messages at once")
        self.senders.take(caller.uuid, "Too many to-device messages")
        key = retry_key("txn", caller.token_hash, "", Kind.TO_DEVICE, txn)
        full, queued = await self.engine.write(_send_to_device, caller, event_type, messages, key,
                                       self.settings.to_device_pending, now())
        if full:
            logger.info("to-device messages not queued: {} -> {} (over {} waiting)",
                        caller.uuid, ", ".join(full), self.settings.to_device_pending)
            if not queued:
                raise OverLimit(429, f"Too many to-device messages wait for {len(full)} "
                                f"user(s): at most {self.settings.to_device_pending} from "
                                "one sender, until they are received")

    # -- /sync --------------------------------------------------------------------------------

    async def for_sync(self, caller: Caller, since: int | None, upto: int) -> SyncKeys:
        """What the caller's device gets in a /sync covering (since, upto]; messages the
        device acknowledged (logged at or before `since`) are deleted first."""
        if not caller.device:
            return SyncKeys([], [], {}, [], [])
        found, acknowledged = await self.engine.read(_for_sync, caller, since, upto,
                                                     self.settings.to_device_per_sync)
        if acknowledged:
            await self.engine.write(ks.drop_to_device, caller.uuid, caller.device, since or 0)
        return found


def forget_devices(conn: Conn, user_uuid: str, device_ids: list[str], stamp: int) -> None:
    """Logging a device out ends it, as on Synapse: its keys and waiting messages go, and the
    user's room-mates hear of the change (the tokens are the caller's business)."""
    if any([ks.delete_device(conn, user_uuid, device, tokens=False) for device in device_ids]):
        log_device_change(conn, user_uuid, stamp)


def _upload(conn: Conn, caller: Caller, device_keys: dict[str, Any] | None,
            one_time_keys: list[tuple[str, str, Any]], fallback_keys: list[tuple[str, str, Any]],
            cap: int, stamp: int) -> dict[str, int]:
    user, device = caller.uuid, caller.device
    counts, _ = ks.key_counts(conn, user, device)
    stored = ks.stored_key_ids(conn, user, device, [key_id for _, key_id, _ in one_time_keys])
    fresh = [key for key in one_time_keys if (key[0], key[1]) not in stored]
    if fresh and sum(counts.values()) + len(fresh) > cap:
        raise OverLimit(400, f"A device holds at most {cap} one-time keys: it has "
                        f"{sum(counts.values())}, and this upload adds {len(fresh)}")
    if fallback_keys and len(ks.fallback_algorithms(conn, user, device) | {
            algorithm for algorithm, _, _ in fallback_keys}) > MAX_FALLBACK_ALGORITHMS:
        raise OverLimit(400, f"A device holds fallback keys of at most "
                        f"{MAX_FALLBACK_ALGORITHMS} algorithms")
    if device_keys is not None and ks.set_device_keys(conn, user, device,
                                                      ks.dumps(device_keys), stamp):
        log_device_change(conn, user, stamp)
        logger.info("device keys stored: {} {}", user, device)
    if fresh:
        ks.add_one_time_keys(conn, user, device, fresh, False)
    if fallback_keys:
        ks.add_one_time_keys(conn, user, device, fallback_keys, True)
    if fresh or fallback_keys:
        _counts_changed(conn, user, stamp)
        return ks.key_counts(conn, user, device)[0]
    return counts


def _counts_changed(conn: Conn, user_uuid: str, stamp: int) -> None:
    """Log that a user's key counts changed, so their devices' /sync read them again."""
    db.log_change(conn, stamp, "", Kind.ONE_TIME_KEYS_CHANGED, user_uuid, user_uuid,
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
            found = payload_of(Kind.DEVICE_KEYS_CHANGED, json.loads(payload))
        except ValueError:
            continue
        if isinstance(found, UsersPayload) and user_uuid in found.users:
            changed.setdefault(subject)
    rows = ks.membership_changes(conn, after, upto)
    if not rows:
        return list(changed), []
    by_flow = ks.flow_members_of(conn, user_uuid)
    mates = {user_uuid}.union(*by_flow.values())
    mine = set(by_flow) | {flow for flow, kind, subject, _ in rows
                           if kind == Kind.FLOW_LEFT and subject == user_uuid}
    met: set[str] = set()
    parted: set[str] = set()
    gone: set[str] = set()
    fresh: set[tuple[str, str]] = set()  # (flow, user): memberships begun in the range
    for flow, kind, subject, payload in rows:
        if flow not in mine:
            continue
        if kind == Kind.FLOW_LEFT and subject == user_uuid:
            gone.add(flow)
        elif kind == Kind.FLOW_LEFT:
            parted.add(subject)
        elif kind == Kind.FLOW_JOINED:
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
        found = payload_of(Kind.FLOW_CREATED, json.loads(payload))
    except ValueError:
        return set()
    return set(found.members) if isinstance(found, FlowPayload) else set()


def _send_to_device(conn: Conn, caller: Caller, event_type: str,
                    messages: dict[str, dict[str, dict[str, Any]]], key: str, cap: int,
                    stamp: int) -> tuple[list[str], bool]:
    """Queue the messages: the recipients whose messages were not (over `cap` waiting), and
    whether any was queued (or the request was a repeat)."""
    if db.txn_result(conn, key, stamp - RETRY_WINDOW) is not None:
        return [], True
    full: list[str] = []
    queued = False
    for user, devices in messages.items():
        known = {row[1] for row in ks.devices_of(conn, [user])}
        targets: dict[str, dict[str, Any]] = {}
        for device, content in devices.items():
            if device == ALL_DEVICES:
                for each in sorted(known):
                    targets.setdefault(each, content)
            elif device in known:
                targets[device] = content  # named: over "*"
        if not targets:
            continue
        waiting = ks.to_device_pending(conn, user, caller.uuid, cap)
        if waiting and waiting + len(targets) > cap:
            full.append(user)
            continue
        change = db.log_change(conn, stamp, "", Kind.TO_DEVICE, caller.uuid, user,
                               {"users": [user]})
        for device, content in targets.items():
            ks.add_to_device(conn, user, device, change.position, caller.uuid, event_type,
                             content)
        queued = True
    if queued or not full:
        db.txn_store(conn, key, "sent", stamp)
    return full, queued


def _for_sync(conn: Conn, caller: Caller, since: int | None, upto: int, limit: int
              ) -> tuple[SyncKeys, bool]:
    """A device's share of (since, upto]: at most `limit` messages and SYNC_TO_DEVICE_BYTES
    of them (at least one); when more wait, `through` ends the batch at the last one."""
    rows = ks.to_device_between(conn, caller.uuid, caller.device, since or 0, upto, limit + 1)
    messages: list[tuple[str, str, dict[str, Any]]] = []
    through = None
    size = last = 0
    for position, sender, kind, content in rows:
        if messages and (len(messages) >= limit or size + len(content) > SYNC_TO_DEVICE_BYTES):
            through = last
            break
        messages.append((sender, kind, json.loads(content)))
        size += len(content)
        last = position
    end = upto if through is None else through
    changed, left = _device_lists(conn, caller.uuid, since, end) if since is not None \
        else ([], [])
    counts, unused = ks.key_counts(conn, caller.uuid, caller.device)
    acknowledged = since is not None and ks.to_device_waiting(conn, caller.uuid, caller.device,
                                                              since)
    return SyncKeys(messages, changed, counts, unused, left, through), acknowledged
