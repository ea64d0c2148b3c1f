"""Who is connected, and the fan-out of committed changes to them.

Every committed change reaches the hub in commit order, as `Change`s of the change log.
With the in-memory broker (one process) they come straight from the writer thread. With a
shared broker, the writer's commits and other processes' hints are wake-ups: the hub reads
the change log after the last position it delivered, so each change is delivered once, in
order, whichever process committed it. (A local commit that directly follows the last
delivered position is dispatched as it is: nothing can lie between.) After any gap — a broker
reconnect, a lost hint, a database outage — the hub catches up from that position; a periodic
poll of the log's last position bounds how long a silently lost hint can delay delivery.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Protocol

from loguru import logger

from mod import changes as kinds
from mod import metrics
from mod.broker import Broker, HintHandler, MemoryBroker, make_broker
from mod.changes import Change, FlowPayload, Kind, RevokedPayload, UsersPayload
from mod.config.validator import Settings
from mod.db import dbhandler as db
from mod.db.engine import Conn, Engine

__all__ = ["Broker", "HintHandler", "Hub", "Listener", "MemoryBroker", "hub_for", "make_broker",
           "skipped"]

READ_BATCH = 1000
MEMBER_CACHE = 20_000
YIELD_EVERY = 64


class Listener(Protocol):
    """A connected client of one user that takes pushed changes."""

    user_uuid: str

    def deliver(self, change: Change) -> None: ...

    def revoked(self, revocation: RevokedPayload) -> None:
        """Tokens of the user were revoked (`revocation.ends(token_hash)` says which)."""


def recipients_extra(change: Change) -> set[str]:
    """Users told of a change besides the flow's current members."""
    if change.kind in kinds.TOLD_SUBJECT:
        return {change.subject}
    if change.kind == Kind.FLOW_DELETED:  # its members have left it: tell who they were
        try:
            payload = change.data
        except ValueError:
            return set()
        return set(payload.users) if isinstance(payload, UsersPayload) else set()
    return set()


def addressed(change: Change) -> list[str]:
    try:
        payload = change.data
    except ValueError as exc:
        skipped(change, exc)
        return []
    return list(payload.users) if isinstance(payload, UsersPayload) else []


def members_at(conn: Conn, flow_uuid: str, position: int) -> set[str]:
    """The members of a flow as they were right after change `position`.

    The members now, with the membership changes logged after `position` undone newest
    first; any change committed between the two reads is in the second and undoes nothing
    wrongly, so the answer is exact even while others commit.
    """
    members = set(db.flow_members(conn, flow_uuid))
    later = db.flow_changes(conn, [flow_uuid], after=position, limit=READ_BATCH)
    for change in reversed(later):
        if change.kind == Kind.FLOW_JOINED:
            members.discard(change.subject)
        elif change.kind == Kind.FLOW_LEFT:
            members.add(change.subject)
    return members


_SKIPPED: set[int] = set()
SKIPPED_KEPT = 10_000


def skipped(change: Change, reason: BaseException | str, what: str = "") -> None:
    """Log, once per change and process, that a change could not be read or rendered and
    was passed over (`what`: for what or whom, when not for everyone)."""
    if change.position in _SKIPPED:
        return
    if len(_SKIPPED) >= SKIPPED_KEPT:
        _SKIPPED.clear()
    _SKIPPED.add(change.position)
    text = reason if isinstance(reason, str) else (
        f"{type(reason).__name__}: {str(reason).splitlines()[0][:200] if str(reason) else ''}")
    logger.warning("change {} ({}) skipped{}: {}", change.position, change.kind[:32],
                   f" ({what})" if what else "", text)


class Hub:
    def __init__(self, engine: Engine, broker: Broker | None = None,
                 poll_interval: float | None = None) -> None:
        self.engine = engine
        self.broker: Broker = broker or MemoryBroker()
        self.poll_interval = poll_interval
        self.position = 0
        self.observers: list[Callable[[list[Change]], None]] = []
        self._listeners: dict[str, set[Listener]] = defaultdict(set)
        self._members: dict[str, set[str]] = {}
        self._local: list[Change] = []
        self._local_since = 0.0  # when the oldest undelivered local commit was made
        self._hinted = 0
        self._catch_up = False
        self._paused = False
        self._wake = asyncio.Event()
        self._waiters: dict[str, set[asyncio.Event]] = defaultdict(set)
        self._tasks: list[asyncio.Task[None]] = []
        self.stopped = False

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        self.position = await self.engine.read(db.last_position)
        self.engine.on_commit = self.committed
        self._tasks.append(asyncio.create_task(self._deliver_forever(), name="hub"))
        await self.broker.start(self.hint)
        if self.poll_interval:
            self._tasks.append(asyncio.create_task(self._poll_forever(), name="hub poll"))
        logger.info("hub started at change {} ({})", self.position,
                    type(self.broker).__name__)

    def stopping(self) -> None:
        """The server is stopping: end every wait now (listeners with a `wake` method are
        woken too), and let later waits return at once, so no long-poll holds the stop up."""
        self.stopped = True
        for events in self._waiters.values():
            for event in events:
                event.set()
        for listeners in list(self._listeners.values()):
            for listener in list(listeners):
                wake = getattr(listener, "wake", None)
                if wake is not None:
                    wake()

    async def stop(self) -> None:
        self.engine.on_commit = None
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        await self.broker.stop()

    # -- connections -------------------------------------------------------------------------

    def register(self, listener: Listener) -> None:
        self._listeners[listener.user_uuid].add(listener)

    def unregister(self, listener: Listener) -> None:
        listeners = self._listeners.get(listener.user_uuid)
        if listeners is not None:
            listeners.discard(listener)
            if not listeners:
                del self._listeners[listener.user_uuid]

    def connected(self) -> int:
        return sum(len(listeners) for listeners in self._listeners.values())

    async def wait(self, user_uuid: str, after: int, timeout: float) -> int:
        """Wait up to `timeout` s for a change after position `after` that concerns the user.

        Returns the hub's position then. A change committed before the call is seen as well.
        """
        if self.position > after or timeout <= 0 or self.stopped:
            return self.position
        event = asyncio.Event()
        self._waiters[user_uuid].add(event)
        try:
            await asyncio.wait_for(event.wait(), timeout)
        except TimeoutError:
            pass
        finally:
            waiters = self._waiters.get(user_uuid)
            if waiters is not None:
                waiters.discard(event)
                if not waiters:
                    del self._waiters[user_uuid]
        return self.position

    # -- intake ------------------------------------------------------------------------------

    def committed(self, changes: list[Change]) -> None:
        """Changes this process just committed (called on the event loop, in commit order)."""
        if not self._local:
            self._local_since = time.perf_counter()
        self._local.extend(changes)
        if self.broker.shared:
            self.broker.publish(changes[-1].position)
        self._wake.set()

    def hint(self, position: int) -> None:
        """The log grew to `position` somewhere; 0: catch up on whatever may have been missed."""
        if position <= 0:
            self._catch_up = True
        elif position > self._hinted:
            self._hinted = position
        else:
            return
        self._wake.set()

    # -- delivery ----------------------------------------------------------------------------

    async def _deliver_forever(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                await self._deliver_pending()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not self._paused:
                    logger.warning("delivery paused at change {}: {}", self.position,
                                   str(exc).splitlines()[0] if str(exc) else repr(exc))
                self._paused = True
                self._catch_up = True
                await asyncio.sleep(0.5)
                self._wake.set()
                continue
            if self._paused:
                self._paused = False
                logger.info("delivery resumed at change {}", self.position)

    async def _deliver_pending(self) -> None:
        while True:
            if self._local:
                batch, self._local = self._local, []
                # A gap before it: another process (manage.py, another worker) committed.
                if batch[0].position <= self.position + 1:
                    try:
                        await self._dispatch(batch)
                    except BaseException:
                        self._catch_up = True  # the rest is read back from the log
                        raise
                    metrics.DELIVERY_LAG.observe(time.perf_counter() - self._local_since)
                    continue
                self._hinted = max(self._hinted, batch[-1].position)
            if not (self._catch_up or self._hinted > self.position):
                return
            self._catch_up = False
            changes = await self.engine.read(db.changes_after, self.position, READ_BATCH)
            if not changes:
                self._hinted = self.position
                return
            if len(changes) == READ_BATCH:
                self._catch_up = True
            await self._dispatch(changes)

    async def _poll_forever(self) -> None:
        """Read the log's last position now and then: a safety net under lost hints."""
        assert self.poll_interval is not None
        while True:
            await asyncio.sleep(self.poll_interval)
            try:
                last = await self.engine.read(db.last_position)
            except asyncio.CancelledError:
                raise
            except Exception:
                continue
            if last > self.position and last > self._hinted and not self._local:
                logger.debug("poll found changes up to {} (delivered {})", last, self.position)
                self.hint(last)

    async def _dispatch(self, changes: list[Change]) -> None:
        for index, change in enumerate(changes):
            if change.position <= self.position:
                continue
            if index and not index % YIELD_EVERY:
                await asyncio.sleep(0)  # let senders drain: a long catch-up is no slow client
            if change.flow_uuid:
                members = self._members.get(change.flow_uuid)
                if members is None or change.kind in kinds.MEMBER_SET:
                    members = await self._flow_members(change)
                for user_uuid in members | recipients_extra(change):
                    self._deliver_to(user_uuid, change)
            elif change.kind in kinds.PERSONAL:
                self._deliver_to(change.subject, change)
            elif change.kind == Kind.TOKENS_REVOKED:
                self._revoke(change)
            elif change.kind in kinds.ADDRESSED:
                for user_uuid in addressed(change):
                    self._deliver_to(user_uuid, change)
            self.position = change.position
        for observer in self.observers:
            try:
                observer(changes)
            except Exception:
                for change in changes:  # again one by one, past the change it cannot take
                    try:
                        observer([change])
                    except Exception as exc:
                        skipped(change, exc)

    def _deliver_to(self, user_uuid: str, change: Change) -> None:
        for listener in list(self._listeners.get(user_uuid, ())):
            try:
                listener.deliver(change)
            except Exception as exc:  # a change it cannot render: the others still get it
                skipped(change, exc)
        for event in self._waiters.get(user_uuid, ()):
            event.set()

    def _revoke(self, change: Change) -> None:
        try:
            payload = change.data
        except ValueError as exc:
            skipped(change, exc)
            return
        if not isinstance(payload, RevokedPayload):
            payload = RevokedPayload(None, False)
        for listener in list(self._listeners.get(change.actor, ())):
            listener.revoked(payload)

    async def _flow_members(self, change: Change) -> set[str]:
        """The flow's members right after `change`, kept in step with the log."""
        flow_uuid = change.flow_uuid
        if change.kind == Kind.FLOW_CREATED:
            try:
                payload = change.data
                if not isinstance(payload, FlowPayload):
                    raise ValueError("not a flow's snapshot")
                members = set(payload.members)
            except ValueError as exc:  # the database knows them all the same
                skipped(change, exc, "its snapshot")
                members = await self.engine.read(members_at, flow_uuid, change.position)
        else:
            cached = self._members.get(flow_uuid)
            if cached is None:
                cached = await self.engine.read(members_at, flow_uuid, change.position)
                return self._remember(flow_uuid, cached)
            members = cached
            if change.kind == Kind.FLOW_JOINED:
                members.add(change.subject)
            elif change.kind == Kind.FLOW_LEFT:
                members.discard(change.subject)
            elif change.kind == Kind.FLOW_DELETED:
                members = set()
        return self._remember(flow_uuid, members)

    def _remember(self, flow_uuid: str, members: set[str]) -> set[str]:
        if flow_uuid not in self._members and len(self._members) >= MEMBER_CACHE:
            del self._members[next(iter(self._members))]
        self._members[flow_uuid] = members
        return members


def worker_processes(argv: list[str] | None = None) -> int:
    """How many worker processes serve this app, as far as this process can tell.

    Uvicorn's `--workers N` (and `manage.py runserver --workers N`, and `WEB_CONCURRENCY`)
    start spawned children that see their parent's command line.
    """
    if multiprocessing.parent_process() is None:
        return 1
    args = sys.argv if argv is None else argv
    count = os.environ.get("WEB_CONCURRENCY", "1")
    for index, arg in enumerate(args):
        if arg == "--workers" and index + 1 < len(args):
            count = args[index + 1]
        elif arg.startswith("--workers="):
            count = arg.split("=", 1)[1]
    return int(count) if count.isdigit() and int(count) > 0 else 1


def hub_for(settings: Settings, engine: Engine) -> Hub:
    """The hub and broker the settings ask for."""
    broker = make_broker(settings.broker, engine)
    if broker.shared:
        return Hub(engine, broker, poll_interval=settings.broker.check_interval)
    workers = worker_processes()
    if workers > 1:
        logger.warning("{} worker processes share the in-memory broker: pushes of changes "
                       "made through another worker are only found by polling the change log "
                       "every second; set [BROKER] URI to redis:// or postgres://", workers)
        return Hub(engine, MemoryBroker(shared=True), poll_interval=1.0)
    # Polled all the same, every second at most: manage.py's changes (a locked user, a deleted
    # flow) come from another process, and with no broker nothing else tells of them.
    return Hub(engine, broker, poll_interval=min(1.0, settings.broker.check_interval))
