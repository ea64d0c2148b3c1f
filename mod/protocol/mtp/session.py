"""One MTP websocket connection: reads frames in order, answers each, and takes pushes.

A connection is lockstep, as clients of the original server expect: one frame per request,
its answer, and nothing else. Only once a request that authenticates has asked for pushes
(`"meta": {"push": true}`) is the connection bound to its user in the hub and sent the user's
changes; `"push": false` unbinds it. Pushes that arrive while a request is being handled are
held until its answer is queued, so an answer always precedes the push of the change it made.

Everything the server sends on a connection — responses and pushes, in order — goes through one
bounded outbox (at most `send_queue` frames and `send_queue_bytes` bytes) and one sender task,
started with the first frame, that lives as long as the connection and sleeps while the outbox
is empty (cheaper than a task per burst). Pushes are put in the outbox without ever waiting, so
a client that stops reading slows nobody: once its outbox is full it is disconnected (close
code 1008, or an abort when it cannot even take a close frame) and its outbox is dropped. Dead
peers are found by the server's websocket pings; a connection whose peer accepts no bytes for a
whole sweep interval is aborted by the sweeper (`registry.SessionRegistry`), because a graceful
close never finishes on a socket nobody drains.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque

from loguru import logger
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from mod import metrics
from mod.changes import ENDS_TYPING, READ_RECEIPTS, Change, Kind, RevokedPayload
from mod.changes import REACTIONS as REACTION_KINDS
from mod.config.validator import Server
from mod.hub import Hub
from mod.protocol.mtp.api import REACTIONS, READ, TYPING
from mod.protocol.mtp.dispatch import MTPController
from mod.protocol.mtp.push import (
    PUSH_EVENTS,
    push_frame,
    reaction_frame,
    read_frame,
    typing_frame,
)
from mod.protocol.mtp.registry import SessionRegistry
from mod.service import Caller

CLOSE_TOO_BIG = 1009
CLOSE_TOO_SLOW = 1008
CLOSE_RESTARTING = 1012
TRANSPORT_KEY = "morelia.transport"
# The reader takes the next request only while fewer frames than this wait in the outbox, so
# a client that sends many requests back to back is answered as fast as it reads, in order,
# and its answers never fill the outbox; only pushes, which never wait, can.
READ_AHEAD = 32
FLUSH_TIMEOUT = 2.0  # how long a stopping server waits for a connection's outbox to empty


class RateLimit:
    """A token bucket: `rate` requests a second, up to `burst` at once."""

    __slots__ = ("burst", "rate", "stamp", "tokens")

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.stamp = time.monotonic()

    def allow(self) -> bool:
        clock = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (clock - self.stamp) * self.rate)
        self.stamp = clock
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


class TransportAccess:
    """ASGI middleware: hands a websocket's transport to the app, where the server has one.

    Uvicorn's websocket `send` is a method of its protocol object, which holds the asyncio
    transport. With it a session can abort a connection whose peer stopped reading; without
    it (another server) sessions fall back to closing gracefully.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            transport = getattr(getattr(send, "__self__", None), "transport", None)
            # Duck-typed: uvloop's transports are not asyncio.WriteTransport subclasses.
            if hasattr(transport, "abort") and hasattr(transport, "get_write_buffer_size"):
                scope[TRANSPORT_KEY] = transport
        await self.app(scope, receive, send)


class MTPSession:
    __slots__ = (
        "__weakref__",
        "_drained",
        "_sender",
        "_swept",
        "_waiter",
        "address",
        "caller_uuid",
        "closing",
        "controller",
        "extensions",
        "handling",
        "held",
        "hub",
        "limit",
        "outbox",
        "push",
        "queued_bytes",
        "registry",
        "sent",
        "settings",
        "stopping",
        "token_hash",
        "transport",
        "user_uuid",
        "websocket",
    )

    def __init__(self, websocket: WebSocket, controller: MTPController, hub: Hub,
                 settings: Server, registry: SessionRegistry) -> None:
        self.websocket = websocket
        self.registry = registry
        self.controller = controller
        self.hub = hub
        self.settings = settings
        self.user_uuid = ""  # the user whose pushes this connection takes; "" for none
        self.token_hash = ""
        self.caller_uuid = ""  # whom the last authenticated request came from
        self.extensions: frozenset[str] = frozenset()  # asked for in a request's meta
        client = websocket.scope.get("client")
        self.address: str = client[0] if client else ""
        self.push = False
        self.handling = False
        self.held: list[str] = []
        self.limit = RateLimit(settings.rate_limit, settings.rate_burst)
        self.outbox: deque[str] = deque()
        self.queued_bytes = 0
        self.sent = 0
        self.closing = False
        self.transport: asyncio.WriteTransport | None = websocket.scope.get(TRANSPORT_KEY)
        self._sender: asyncio.Task[None] | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._drained: asyncio.Future[None] | None = None
        self._swept: tuple[int, int] = (0, 0)
        self.stopping = False

    async def run(self) -> None:
        await self.websocket.accept()
        self.registry.add(self)
        try:
            await self._read_forever()
            if self.stopping:
                await self._flush()
                await self.close(CLOSE_RESTARTING, "Server restarting")
        finally:
            self.registry.discard(self)
            self.drop()
            sender = self._sender
            if sender is not None:
                sender.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sender

    async def _read_forever(self) -> None:
        while not (self.closing or self.stopping):
            if len(self.outbox) >= READ_AHEAD:
                await self._wait_drained()
                continue
            try:
                message = await self.websocket.receive()
            except (WebSocketDisconnect, RuntimeError):
                return
            if message["type"] == "websocket.disconnect" or self.stopping:
                return
            if not await self._handle(message):
                return
            del message  # an idle connection keeps nothing of its last request

    async def _handle(self, message: Message) -> bool:
        """Answer one frame; False when the connection is to be closed."""
        frame = message.get("text")
        if frame is None:
            frame = message.get("bytes") or b""
        if len(frame) > self.settings.max_frame_size:
            logger.info("closing a connection that sent a {} byte frame", len(frame))
            await self.close(CLOSE_TOO_BIG, "Frame too big")
            return False
        if not self.limit.allow():
            self.enqueue(self.controller.refuse(frame, 429,
                                                "Too many requests; slow down").dump())
            return True
        self.handling = True
        try:
            handled = await self.controller.handle(frame, self.address, self.extensions)
        finally:
            self.handling = False
        if handled.caller is not None and not self.closing:
            self._bind(handled.caller, handled.push)
            if handled.extensions is not None:
                self.extensions = handled.extensions
        try:
            text = handled.response.dump()
        except Exception:
            logger.exception("an answer to {} could not be written", handled.response.type)
            text = self.controller.refuse(frame, 500, "The server failed to answer").dump()
        self.enqueue(text)
        held, self.held = self.held, []
        for text in held:
            self.enqueue(text)
        return True

    def _bind(self, caller: Caller, push: bool | None) -> None:
        """Take the caller's pushes from now on if this connection asked for them."""
        self.token_hash = caller.token_hash
        self.caller_uuid = caller.uuid
        if push is not None:
            self.push = push
        listening = caller.uuid if self.push else ""
        if listening != self.user_uuid:
            if self.user_uuid:
                self.hub.unregister(self)
            self.user_uuid = listening
            if listening:
                self.hub.register(self)

    async def stop(self) -> None:
        """The server is stopping: answer the request in hand, send what is queued, close 1012.

        A request being handled is finished by the reading loop, which then closes; an idle
        connection is closed here, which also ends its wait for the next frame.
        """
        self.stopping = True
        self._wake_reader()
        if not self.handling:
            await self._flush()
            await self.close(CLOSE_RESTARTING, "Server restarting")

    async def _flush(self) -> None:
        """Wait (at most FLUSH_TIMEOUT) until everything queued is handed to the transport."""
        deadline = time.monotonic() + FLUSH_TIMEOUT
        while (self.outbox or (self._sender is not None and not self._sender.done()
                               and self._waiter is None)) and time.monotonic() < deadline:
            await asyncio.sleep(0.01)

    # -- sending -----------------------------------------------------------------------------

    def deliver(self, change: Change) -> None:
        frames = []
        try:
            if change.kind in PUSH_EVENTS:  # each built once for all recipients
                frames.append(push_frame(change, self.extensions))
            elif change.kind in REACTION_KINDS and REACTIONS in self.extensions:
                frames.append(reaction_frame(change))
            elif change.kind in READ_RECEIPTS and READ in self.extensions \
                    and change.actor == self.user_uuid:
                read = read_frame(change)  # this user's read state moved (any device)
                if read is not None:
                    frames.append(read)
            if TYPING in self.extensions and (change.kind == Kind.TYPING
                                                or change.kind in ENDS_TYPING):
                typists = self.controller.service.ephemeral.typing_now.after(change)
                if typists is not None:
                    frames.append(typing_frame(change, tuple(typists)))
        except (ValueError, TypeError, KeyError, RecursionError) as exc:
            self.registry.unrenderable(change, exc)
            return
        for text in frames:
            if not self.handling:
                self.enqueue(text)
            elif len(self.held) < self.settings.send_queue:
                self.held.append(text)  # sent right after the answer being prepared
            else:
                self._too_slow()
                return

    def revoked(self, revocation: RevokedPayload) -> None:
        """If the credentials this connection was bound with are gone: no more pushes."""
        if self.user_uuid and revocation.ends(self.token_hash):
            self.hub.unregister(self)
            self.user_uuid = self.token_hash = ""

    def enqueue(self, text: str) -> None:
        """Queue a frame; never waits. A full outbox disconnects the client."""
        if self.closing:
            return
        size = len(text)
        if self.outbox and (len(self.outbox) >= self.settings.send_queue
                            or self.queued_bytes + size > self.settings.send_queue_bytes):
            self._too_slow()
            return
        self.outbox.append(text)
        self.queued_bytes += size
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)
        elif self._sender is None:
            self._sender = asyncio.get_running_loop().create_task(self._send_forever())

    async def _send_forever(self) -> None:
        """Send what is queued, then sleep until more is (cheaper than a task per burst)."""
        loop = asyncio.get_running_loop()
        while not self.closing:
            while self.outbox and not self.closing:
                text = self.outbox.popleft()
                self.queued_bytes -= len(text)
                try:
                    await self.websocket.send_text(text)
                except Exception:
                    self.drop()
                    return
                self.sent += 1
                if self._drained is not None and len(self.outbox) < READ_AHEAD // 2:
                    self._wake_reader()
            if self.closing:
                return
            self._waiter = loop.create_future()
            await self._waiter

    async def _wait_drained(self) -> None:
        """Wait until the sender has taken the outbox down to half of READ_AHEAD."""
        self._drained = asyncio.get_running_loop().create_future()
        try:
            await self._drained
        finally:
            self._drained = None

    def _wake_reader(self) -> None:
        drained = self._drained
        if drained is not None and not drained.done():
            drained.set_result(None)

    def _too_slow(self) -> None:
        metrics.DROPPED_SLOW.inc()
        logger.warning("disconnecting a client that stopped reading ({} frames, {} bytes "
                       "queued; user {})", len(self.outbox), self.queued_bytes,
                       self.user_uuid or "-")
        self.drop()
        transport = self.transport
        if transport is not None and transport.get_write_buffer_size() > 0:
            transport.abort()  # it cannot take a close frame either
        else:
            asyncio.get_running_loop().create_task(self.close(CLOSE_TOO_SLOW, "Too slow"))

    def drop(self) -> None:
        """Stop taking pushes and free the outbox."""
        self.closing = True
        if self.user_uuid:
            self.hub.unregister(self)
        self.outbox.clear()
        self.held.clear()
        self.queued_bytes = 0
        self._wake_reader()

    async def close(self, code: int, reason: str) -> None:
        if self.websocket.application_state != WebSocketState.CONNECTED:
            return
        try:
            async with asyncio.timeout(1.0):
                await self.websocket.close(code, reason)
        except Exception:
            if self.transport is not None:
                self.transport.abort()

    def sweep(self) -> bool:
        """Called every sweep interval: False when the peer took no bytes since the last one."""
        transport = self.transport
        if transport is None:
            return True
        size = transport.get_write_buffer_size()
        last_size, last_sent = self._swept
        self._swept = (size, self.sent)
        return not (size and last_size and size >= last_size and self.sent == last_sent)
