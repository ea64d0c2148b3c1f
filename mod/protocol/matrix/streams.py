"""What the Matrix side keeps in memory to answer /sync without a database round trip.

- `UserStream`: a hub listener per syncing user, like an MTP connection. It keeps the
  changes the hub delivered for that user since it was registered, so an incremental /sync
  whose `since` it covers takes its batch from memory, and a long-poll wakes on `event`.
  It holds at most KEEP changes; a /sync that asks for more goes to the database.
- `UserCache`: user rows for rendering events (logins, display names), for a few seconds.
- `DeviceKeysCache`: what each device's last /sync read of its keys found, so that a /sync
  whose user stream shows no change of the device's keys since then skips that read.

Both are only ever an optimisation: the change log stays the truth, and whatever they
cannot answer is read from it.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

from mod import changes as kinds
from mod.changes import Change, RevokedPayload
from mod.hub import Hub
from mod.service import Service, SyncKeys, User

KEEP = 512
IDLE = 120.0
USER_TTL = 10.0
USER_CACHE = 20_000
DEVICE_CACHE = 100_000
# Changes that may alter what a device's /sync carries of its keys (`service.keys`).
KEY_KINDS = kinds.KEY_SYNC


class UserStream:
    """The changes the hub delivered for one user, newest last."""

    __slots__ = ("busy", "changes", "dropped", "event", "revocations", "used", "user_uuid")

    def __init__(self, user_uuid: str, position: int) -> None:
        self.user_uuid = user_uuid
        self.changes: deque[Change] = deque()
        # Changes at or before this position may be missing (before registration or dropped).
        self.dropped = position
        self.event = asyncio.Event()
        self.used = time.monotonic()
        self.busy = 0
        self.revocations = 0  # counts the user's token revocations: a waiting /sync rechecks

    def deliver(self, change: Change) -> None:
        self.changes.append(change)
        if len(self.changes) > KEEP:
            self.dropped = self.changes.popleft().position
        self.event.set()

    def revoked(self, revocation: RevokedPayload) -> None:
        """A token of the user was revoked: a waiting /sync checks whether it was its own."""
        self.revocations += 1
        self.event.set()

    def wake(self) -> None:
        """The server is stopping: a waiting /sync answers with what it has."""
        self.event.set()

    def covers(self, since: int) -> bool:
        return since >= self.dropped

    def acknowledge(self, since: int) -> None:
        """A client has everything up to `since`: older changes need not be kept."""
        while self.changes and self.changes[0].position <= since:
            self.dropped = max(self.dropped, self.changes.popleft().position)

    def between(self, since: int, upto: int) -> list[Change]:
        return [change for change in self.changes if since < change.position <= upto]

    def newer_than(self, position: int) -> bool:
        return bool(self.changes) and self.changes[-1].position > position


class Streams:
    """One `UserStream` per user who syncs here; idle ones are dropped."""

    def __init__(self, hub: Hub, idle: float = IDLE) -> None:
        self.hub = hub
        self.idle = idle
        self._streams: dict[str, UserStream] = {}
        self._swept = time.monotonic()

    def open(self, user_uuid: str) -> UserStream:
        clock = time.monotonic()
        stream = self._streams.get(user_uuid)
        if stream is None:
            stream = self._streams[user_uuid] = UserStream(user_uuid, self.hub.position)
            self.hub.register(stream)
        stream.used = clock
        stream.busy += 1
        if clock - self._swept > self.idle / 4:
            self._sweep(clock)
        return stream

    def close(self, stream: UserStream) -> None:
        stream.busy -= 1
        stream.used = time.monotonic()

    def _sweep(self, clock: float) -> None:
        self._swept = clock
        for user_uuid, stream in list(self._streams.items()):
            if not stream.busy and clock - stream.used > self.idle:
                self.hub.unregister(stream)
                del self._streams[user_uuid]

    def __len__(self) -> int:
        return len(self._streams)


class UserCache:
    """User rows by uuid (and, once asked for, their avatars' media IDs), each kept USER_TTL
    seconds."""

    def __init__(self, service: Service) -> None:
        self.service = service
        self._rows: dict[str, tuple[User, str | None, float]] = {}

    async def get(self, uuids: Iterable[str]) -> dict[str, User]:
        return (await self._get(uuids, False))[0]

    async def with_avatars(self, uuids: Iterable[str]
                           ) -> tuple[dict[str, User], dict[str, str]]:
        """The users' rows, and the media IDs of the avatars of those who have one."""
        return await self._get(uuids, True)

    async def _get(self, uuids: Iterable[str], pictures: bool
                   ) -> tuple[dict[str, User], dict[str, str]]:
        clock = time.monotonic()
        found: dict[str, User] = {}
        avatars: dict[str, str] = {}
        missing = []
        for uuid in uuids:
            entry = self._rows.get(uuid)
            if entry is not None and clock - entry[2] < USER_TTL and not (
                    pictures and entry[1] is None):
                found[uuid] = entry[0]
                if entry[1]:
                    avatars[uuid] = entry[1]
            else:
                missing.append(uuid)
        if missing:
            if len(self._rows) + len(missing) > USER_CACHE:
                self._rows.clear()
            users = await self.service.profiles.users(missing)
            read = await self.service.avatars.ids(missing) if pictures else {}
            avatars.update(read)
            for user in users:
                found[user.uuid] = user
                self._rows[user.uuid] = (
                    user, read.get(user.uuid, "") if pictures else None, clock)
        return found, avatars

    def forget(self, uuid: str) -> None:
        self._rows.pop(uuid, None)


@dataclass(slots=True, frozen=True)
class _KeysRead:
    since: int | None
    upto: int
    keys: SyncKeys


class DeviceKeysCache:
    """The last read of each device's keys for /sync, by (user uuid, device ID)."""

    def __init__(self) -> None:
        self._reads: dict[tuple[str, str], _KeysRead] = {}

    def get(self, stream: UserStream, device: str, since: int | None, upto: int
            ) -> SyncKeys | None:
        """The counts a read would find now, without reading, when nothing can have changed:
        the last read covered (since, its upto] and returned no messages or device changes,
        and the user's stream holds every change after it, none of KEY_KINDS."""
        last = self._reads.get((stream.user_uuid, device))
        if (last is None or since is None or last.since is None or last.since > since
                or last.keys.news or not stream.covers(last.upto)):
            return None
        if any(change.kind in KEY_KINDS for change in stream.between(last.upto, upto)):
            return None
        if upto > last.upto:  # the read stands for (last.since, upto] now: the next /sync,
            # whose `since` drops the stream's changes up to here, can still use it
            self._reads[(stream.user_uuid, device)] = _KeysRead(last.since, upto, last.keys)
        return SyncKeys([], [], last.keys.counts, last.keys.unused_fallback)

    def put(self, user_uuid: str, device: str, since: int | None, upto: int,
            keys: SyncKeys) -> None:
        if len(self._reads) >= DEVICE_CACHE:
            self._reads.clear()
        self._reads[(user_uuid, device)] = _KeysRead(since, upto, keys)
