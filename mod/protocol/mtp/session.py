"""One MTP websocket connection: reads frames in order, answers each, and takes pushes."""

from __future__ import annotations

import asyncio
import time

from loguru import logger
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from mod.config.validator import Server
from mod.controller import MTPController
from mod.db.engine import ChangeRow
from mod.hub import Hub
from mod.protocol.mtp import worker

PUSHED_KINDS = frozenset({"message_sent", "message_edited", "message_deleted", "flow_created",
                          "flow_joined", "flow_left", "flow_changed"})

CLOSE_TOO_BIG = 1009
CLOSE_TOO_SLOW = 1008


class RateLimit:
    """A token bucket: `rate` requests a second, up to `burst` at once."""

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


class MTPSession:
    def __init__(self, websocket: WebSocket, controller: MTPController, hub: Hub,
                 settings: Server) -> None:
        self.websocket = websocket
        self.controller = controller
        self.hub = hub
        self.settings = settings
        self.user_uuid = ""
        self.limit = RateLimit(settings.rate_limit, settings.rate_burst)
        self.outbox: asyncio.Queue[str | None] = asyncio.Queue(settings.send_queue)
        self.closing = False

    async def run(self) -> None:
        await self.websocket.accept()
        sender = asyncio.create_task(self._send_forever())
        try:
            await self._read_forever()
        finally:
            self.closing = True
            if self.user_uuid:
                self.hub.unregister(self)
            sender.cancel()
            try:
                await sender
            except asyncio.CancelledError:
                pass

    async def _read_forever(self) -> None:
        while not self.closing:
            try:
                message = await self.websocket.receive()
            except (WebSocketDisconnect, RuntimeError):
                return
            if message["type"] == "websocket.disconnect":
                return
            frame = message.get("text")
            if frame is None:
                frame = message.get("bytes") or b""
            if len(frame) > self.settings.max_frame_size:
                logger.info("closing a connection that sent a {} byte frame", len(frame))
                await self._close(CLOSE_TOO_BIG, "Frame too big")
                return
            if not self.limit.allow():
                self.enqueue(worker.error("error", 429, "Too many requests; slow down").dump())
                continue
            response, caller = await self.controller.handle(frame)
            if caller is not None and caller.uuid != self.user_uuid:
                if self.user_uuid:
                    self.hub.unregister(self)
                self.user_uuid = caller.uuid
                self.hub.register(self)
            self.enqueue(response.dump())

    def deliver(self, change: ChangeRow) -> None:
        if change.kind in PUSHED_KINDS:
            self.enqueue(worker.push_frame(change))

    def enqueue(self, text: str) -> None:
        if self.closing:
            return
        try:
            self.outbox.put_nowait(text)
        except asyncio.QueueFull:
            logger.warning("closing a connection that stopped reading (user {})",
                           self.user_uuid or "-")
            self.closing = True
            if self.user_uuid:
                self.hub.unregister(self)
            asyncio.get_running_loop().create_task(self._close(CLOSE_TOO_SLOW, "Too slow"))

    async def _send_forever(self) -> None:
        while True:
            text = await self.outbox.get()
            if text is None:
                return
            try:
                await self.websocket.send_text(text)
            except Exception:  # noqa: BLE001 - the peer is gone; the reader notices
                self.closing = True
                return

    async def _close(self, code: int, reason: str) -> None:
        if self.websocket.application_state == WebSocketState.CONNECTED:
            try:
                await self.websocket.close(code, reason)
            except Exception:  # noqa: BLE001 - already closed by the peer
                pass
