"""Brokers: how processes that share one database wake each other up.

A broker carries hints only ("the change log grew to position N"); the change log in the
database is the truth. Every broker reconnects by itself with backoff, logs each loss and
each reconnect, and after a reconnect asks the hub to catch up (a hint of 0), because hints
sent while it was away are lost for good.

- `memory://`: one process, nothing to carry.
- `redis://HOST:PORT/DB`: Redis pub/sub on one channel; a hint is published after commit.
- `postgres://...`: LISTEN/NOTIFY on the database itself; the NOTIFY is sent inside the
  committing transaction (`Engine.before_commit`), so a hint can never precede its commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Callable
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from loguru import logger

from mod import metrics
from mod.config.validator import Broker as BrokerSettings
from mod.db.engine import Conn, Engine

HintHandler = Callable[[int], None]
"""Called with a position the log grew to, or 0 for "catch up from where you are"."""

BACKOFF_FIRST = 0.1
BACKOFF_MAX = 5.0
CHANNEL_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class Broker(Protocol):
    """Carries wake-up hints between processes."""

    shared: bool

    async def start(self, on_hint: HintHandler) -> None: ...

    def publish(self, position: int) -> None: ...

    async def stop(self) -> None: ...


class MemoryBroker:
    """One process: nothing to carry. `shared` makes the hub read the change log anyway (for
    several processes on one SQLite file, where the hub's poll is the only wake-up)."""

    def __init__(self, shared: bool = False) -> None:
        self.shared = shared

    async def start(self, on_hint: HintHandler) -> None:
        return None

    def publish(self, position: int) -> None:
        return None

    async def stop(self) -> None:
        return None


def _redact(uri: str) -> str:
    """A URI fit for the log: no password."""
    parts = urlsplit(uri)
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


class _Reconnecting:
    """A task that keeps one subscription alive: connect, listen, and on failure back off."""

    name = "broker"

    def __init__(self, uri: str, check_interval: float) -> None:
        self.uri = uri
        self.check_interval = check_interval
        self.connected = asyncio.Event()
        self._ever_connected = False
        self._on_hint: HintHandler = lambda position: None
        self._task: asyncio.Task[None] | None = None

    async def start(self, on_hint: HintHandler) -> None:
        self._on_hint = on_hint
        self._task = asyncio.create_task(self._run(), name=self.name)
        # Give a reachable broker a moment, so the first hints are not missed; an unreachable
        # one does not stop the server from starting (the hub polls the log meanwhile).
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.connected.wait(), 3.0)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        failures = 0
        while True:
            try:
                await self._listen()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                if self.connected.is_set():
                    failures = 0
                    self.connected.clear()
                    logger.warning("{} lost ({}): {}; reconnecting", self.name,
                                   _redact(self.uri), reason)
                    metrics.BROKER_RECONNECTS.inc()
                delay = min(BACKOFF_FIRST * 2 ** failures, BACKOFF_MAX)
                failures += 1
                if failures > 1 or not self._ever_connected:
                    logger.warning("{} connection attempt {} failed: {}; next in {:.1f} s",
                                   self.name, failures, reason, delay)
                await asyncio.sleep(delay)

    def _subscribed(self) -> None:
        """The subscription is live: catch up on whatever its absence may have missed."""
        logger.info("{} connected ({})", self.name, _redact(self.uri))
        self._ever_connected = True
        self.connected.set()
        self._on_hint(0)

    def _hint(self, payload: str | bytes) -> None:
        try:
            position = int(payload)
        except ValueError:
            logger.warning("{}: ignoring a hint that is not a position: {!r}", self.name,
                           payload[:40])
            return
        if position > 0:
            self._on_hint(position)

    async def _listen(self) -> None:
        """Connect and subscribe, call `_subscribed`, then relay hints until the link fails."""
        raise NotImplementedError


class RedisBroker(_Reconnecting):
    """Redis pub/sub (`redis.asyncio`): hints are published after commit."""

    name = "redis broker"
    shared = True

    def __init__(self, uri: str, channel: str, check_interval: float) -> None:
        super().__init__(uri, check_interval)
        self.channel = channel
        self._pending = 0
        self._wake = asyncio.Event()
        self._publisher: asyncio.Task[None] | None = None

    def _client(self) -> Any:
        from redis.asyncio import Redis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        # No retries inside redis-py: it would reconnect and resubscribe behind our back,
        # and the hints lost meanwhile would go unnoticed. We reconnect, and catch up.
        return Redis.from_url(self.uri, retry=Retry(NoBackoff(), 0), socket_connect_timeout=2,
                              socket_timeout=None, health_check_interval=0)

    async def start(self, on_hint: HintHandler) -> None:
        self._publisher = asyncio.create_task(self._publish_forever(), name="redis publish")
        await super().start(on_hint)

    async def stop(self) -> None:
        if self._publisher is not None:
            self._publisher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._publisher
            self._publisher = None
        await super().stop()

    def publish(self, position: int) -> None:
        """Tell the others the log grew to `position` (sent soon, retried until it is)."""
        self._pending = max(self._pending, position)
        self._wake.set()

    async def _publish_forever(self) -> None:
        client = self._client()
        delay = BACKOFF_FIRST
        failing = False
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                position = self._pending
                try:
                    await asyncio.wait_for(client.publish(self.channel, str(position)), 2.0)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    if not failing:
                        logger.warning("redis publish failed: {}; retrying",
                                       str(exc).splitlines()[0] if str(exc) else
                                       type(exc).__name__)
                    failing = True
                    self._wake.set()
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, BACKOFF_MAX)
                    continue
                if failing:
                    logger.info("redis publish works again")
                failing, delay = False, BACKOFF_FIRST
        finally:
            with contextlib.suppress(Exception):
                await client.aclose()

    async def _listen(self) -> None:
        client = self._client()
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        try:
            await asyncio.wait_for(pubsub.subscribe(self.channel), 3.0)
            self._subscribed()
            heard = time.monotonic()
            pinged = heard
            while True:
                message = await pubsub.get_message(timeout=self.check_interval)
                clock = time.monotonic()
                if message is not None:
                    heard = clock
                    if message.get("type") == "message":
                        self._hint(message["data"])
                    continue
                if clock - heard > 3 * self.check_interval:
                    raise ConnectionError("no answer to pings")
                if clock - pinged >= self.check_interval:
                    # A pong comes back as a message, and proves the subscription alive.
                    pinged = clock
                    await asyncio.wait_for(pubsub.ping(), self.check_interval)
        finally:
            with contextlib.suppress(Exception):
                await pubsub.aclose()
            with contextlib.suppress(Exception):
                await client.aclose()


def libpq_uri(uri: str) -> str:
    """A configured postgres:// URI as libpq takes it (SQLObject's own options dropped)."""
    parts = urlsplit(uri)
    known = {"sslmode", "sslrootcert", "sslcert", "sslkey", "connect_timeout", "options",
             "application_name", "target_session_attrs", "passfile", "service"}
    query = [(key, value) for key, value in parse_qsl(parts.query) if key in known]
    if not any(key == "connect_timeout" for key, _ in query):
        query.append(("connect_timeout", "3"))
    return urlunsplit(("postgresql", parts.netloc, parts.path, urlencode(query), ""))


def notify_last_change(conn: Conn, channel: str) -> None:
    """NOTIFY the position of the last change of the transaction about to commit (on the
    thread that commits it), so the hint goes out with the commit, never before it."""
    conn.execute(f"SELECT pg_notify('{channel}', '{conn.changes[-1].position}')")


class PostgresBroker(_Reconnecting):
    """PostgreSQL LISTEN/NOTIFY; the NOTIFY goes out inside the committing transaction."""

    name = "postgres broker"
    shared = True

    def __init__(self, uri: str, channel: str, engine: Engine,
                 check_interval: float) -> None:
        super().__init__(uri, check_interval)
        if not engine.postgres:
            raise ValueError("[BROKER] URI postgres:// needs [DATABASE] URI on PostgreSQL too")
        if not CHANNEL_RE.match(channel):
            raise ValueError("[BROKER] CHANNEL must be a lower-case SQL identifier")
        self.channel = channel
        self.engine = engine
        engine.before_commit = self.notify_in

    def notify_in(self, conn: Conn) -> None:
        """Send the hint inside the transaction about to commit (runs on the writer thread)."""
        notify_last_change(conn, self.channel)

    def publish(self, position: int) -> None:
        return None  # already sent by notify_in, with the commit

    async def stop(self) -> None:
        if self.engine.before_commit == self.notify_in:
            self.engine.before_commit = None
        await super().stop()

    async def _listen(self) -> None:
        import psycopg

        connection = await asyncio.wait_for(
            psycopg.AsyncConnection.connect(libpq_uri(self.uri), autocommit=True), 5.0)
        try:
            await connection.execute(f"LISTEN {self.channel}")
            self._subscribed()
            while True:
                async for notify in connection.notifies(timeout=self.check_interval):
                    self._hint(notify.payload)
                # Quiet for a while: prove the connection alive (LISTEN dies silently).
                await asyncio.wait_for(connection.execute("SELECT 1"), self.check_interval)
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(connection.close(), 2.0)


def make_broker(settings: BrokerSettings, engine: Engine) -> Broker:
    """The broker a `[BROKER] URI` names."""
    uri = settings.uri
    if uri.startswith("memory://"):
        return MemoryBroker()
    if uri.startswith("redis://"):
        return RedisBroker(uri, settings.channel, settings.check_interval)
    if uri.startswith(("postgres://", "postgresql://")):
        return PostgresBroker(uri, settings.channel, engine, settings.check_interval)
    raise ValueError(f"[BROKER] URI: no broker for {uri.split(':', 1)[0]}://")



class CommandHints:
    """Hints for changes a command outside the servers commits (manage.py), so that running
    servers act on them at once rather than at their next poll of the change log."""

    def __init__(self, settings: BrokerSettings, engine: Engine) -> None:
        self.uri = settings.uri
        self.channel = settings.channel
        self.position = 0
        if self.uri.startswith(("postgres://", "postgresql://")) and engine.postgres \
                and CHANNEL_RE.match(self.channel):
            engine.before_commit = self._notify_in
        elif self.uri.startswith("redis://"):
            engine.before_commit = self._remember

    def _notify_in(self, conn: Conn) -> None:
        notify_last_change(conn, self.channel)

    def _remember(self, conn: Conn) -> None:
        self.position = conn.changes[-1].position

    def committed(self) -> None:
        """Publish the hint of the last commit (Redis: after it, as the servers do)."""
        position, self.position = self.position, 0
        if not position:
            return
        import redis

        try:
            client = redis.Redis.from_url(self.uri, socket_timeout=2, socket_connect_timeout=2)
            try:
                client.publish(self.channel, str(position))
            finally:
                client.close()
        except redis.RedisError as exc:
            logger.warning("cannot tell running servers of change {} through the broker ({}); "
                           "they find it at their next poll", position, exc)
