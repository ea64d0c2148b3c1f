"""Connection guards uvicorn lacks: deadlines for the request head and body, a cap per client
address.

`guarded(base, settings)` subclasses uvicorn's HTTP protocol class in use (httptools or
h11). Each connection must complete a request head within `header_timeout` seconds of its
first byte (of being opened, for its first request): a client that dribbles a head one byte
a second is cut, whatever it sends. Between requests uvicorn's own keep-alive timeout
applies, unchanged. A request body must then keep coming: a connection whose body has sent
nothing for `body_timeout` seconds, or has averaged under `body_min_rate` bytes a second
once `body_grace` seconds have passed since its head, is cut too (with a 408 if nothing was
answered yet; the app sees the client disconnect, so an upload drops its temporary file).
While the server itself holds the body back (uvicorn pauses reading while the app has not
taken what came, or a client waits for its `100 Continue`), the clock starts again: only the
client's own slowness is counted. A connection over `max_connections_per_address` open ones
from the same address is aborted at once, before anything is read. A connection upgraded to
a websocket keeps its place under the cap until it closes.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any, ClassVar, cast

from loguru import logger

from mod.config.validator import Server

REPORT_INTERVAL = 60.0
BODY_TICK = 1.0  # seconds between looks at a request body's progress
TIMEOUT_RESPONSE = (b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\n"
                    b"content-length: 16\r\nconnection: close\r\n\r\nRequest Timeout\n")


class Tally:
    """Counts events per address and logs at most one line per address per interval."""

    def __init__(self, what: str, why: str, interval: float = REPORT_INTERVAL) -> None:
        self.what = what
        self.why = why
        self.interval = interval
        self._pending: dict[str, int] = {}
        self._reported: dict[str, float] = {}
        self.total = 0

    def note(self, address: str) -> None:
        self.total += 1
        self._pending[address] = self._pending.get(address, 0) + 1
        if address not in self._reported:
            self._report(address)

    def _report(self, address: str) -> None:
        """Log what is pending for the address; while events keep coming, again in a while."""
        count = self._pending.pop(address, 0)
        if not count:
            self._reported.pop(address, None)
            return
        self._reported[address] = time.monotonic()
        asyncio.get_running_loop().call_later(self.interval, self._report, address)
        logger.info("{} {} connection{} from {} ({})", self.what, count,
                    "" if count == 1 else "s", address, self.why)


class AddressBook:
    """The open connections (transports) of each client address."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self._open: dict[str, set[asyncio.BaseTransport]] = {}
        self._owner: dict[asyncio.BaseTransport, str] = {}

    def admit(self, address: str, transport: asyncio.BaseTransport) -> bool:
        held = self._open.setdefault(address, set())
        if self.cap and len(held) >= self.cap:
            for stale in [t for t in held if t.is_closing()]:  # a loss we were not told of
                self.release(stale)
            held = self._open.setdefault(address, set())
            if len(held) >= self.cap:
                return False
        held.add(transport)
        self._owner[transport] = address
        return True

    def release(self, transport: asyncio.BaseTransport) -> None:
        address = self._owner.pop(transport, None)
        if address is None:
            return
        held = self._open.get(address)
        if held is not None:
            held.discard(transport)
            if not held:
                del self._open[address]

    def count(self, address: str) -> int:
        return len(self._open.get(address, ()))


def client_address(transport: asyncio.BaseTransport) -> str | None:
    peer = transport.get_extra_info("peername")
    if isinstance(peer, tuple | list) and peer:
        return str(peer[0])
    return None  # a unix socket: no address to cap


@dataclass(slots=True)
class BodyWatch:
    """The progress of one request body since its head."""

    cycle: Any
    started: float
    last: float
    received: int = 0

    def restart(self, clock: float) -> None:
        self.started = self.last = clock
        self.received = 0

    def too_slow(self, clock: float, timeout: float, min_rate: float, grace: float
                 ) -> str | None:
        """Why the body has been too slow by now, or None."""
        if timeout and clock - self.last >= timeout:
            return f"no request body byte in {timeout:g} s"
        elapsed = clock - self.started
        if min_rate and elapsed >= grace and self.received < min_rate * elapsed:
            return f"request body under {min_rate:g} bytes/s after {grace:g} s"
        return None


class GuardedProtocol(asyncio.Protocol):
    """Mixin over uvicorn's HTTP protocol classes; see the module's docstring."""

    book: ClassVar[AddressBook]
    refused: ClassVar[Tally]
    timed_out: ClassVar[Tally]
    header_timeout: ClassVar[float]
    body_timeout: ClassVar[float]
    body_min_rate: ClassVar[float]
    body_grace: ClassVar[float]
    body_cut: ClassVar[Tally]

    transport: Any
    cycle: Any
    ws_protocol_class: Any
    _guard_address: str | None
    _guard_timer: asyncio.TimerHandle | None
    _guard_bytes: bool
    _guard_refused: bool
    _body: BodyWatch | None
    _body_timer: asyncio.TimerHandle | None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._guard_address = None
        self._guard_timer = None
        self._guard_bytes = False
        self._guard_refused = False
        self._body = None
        self._body_timer = None
        if self.ws_protocol_class is not None:
            self.ws_protocol_class = released_on_loss(self.ws_protocol_class, self.book)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        address = self._guard_address = client_address(transport)
        if address is not None and not self.book.admit(address, transport):
            self._guard_refused = True
            self.refused.note(address)
            cast(asyncio.Transport, transport).abort()
            return
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        if self._guard_refused:
            return
        cycle = self.cycle
        if self._guard_timer is None and (cycle is None or cycle.response_complete):
            self._arm()  # the next request's head begins
        self._guard_bytes = True
        body = self._body
        if body is not None and body.cycle is cycle:
            body.received += len(data)
            body.last = time.monotonic()
        super().data_received(data)
        if self.transport.get_protocol() is not self:
            self._disarm()  # the connection became a websocket
            self._unwatch_body()
        elif self.cycle is not cycle:
            self._disarm()  # a head is complete
            self._watch_body()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._guard_refused:
            return
        self._disarm()
        self._unwatch_body()
        self.book.release(self.transport)
        super().connection_lost(exc)

    def _arm(self) -> None:
        if self.header_timeout:
            self._guard_bytes = False
            self._guard_timer = asyncio.get_running_loop().call_later(
                self.header_timeout, self._head_too_slow)

    def _disarm(self) -> None:
        if self._guard_timer is not None:
            self._guard_timer.cancel()
            self._guard_timer = None

    def _head_too_slow(self) -> None:
        self._guard_timer = None
        transport = self.transport
        if transport.is_closing() or transport.get_protocol() is not self:
            return
        if self._guard_address is not None:
            self.timed_out.note(self._guard_address)
        if self._guard_bytes:
            transport.write(TIMEOUT_RESPONSE)
        transport.close()


    # -- the body deadline ---------------------------------------------------------------------

    def _watch_body(self) -> None:
        """Watch the body of the request whose head just completed, if one is to come."""
        self._unwatch_body()
        cycle = self.cycle
        if cycle is None or not getattr(cycle, "more_body", False):
            return
        if not (self.body_timeout or self.body_min_rate):
            return
        clock = time.monotonic()
        self._body = BodyWatch(cycle, clock, clock)
        self._body_timer = asyncio.get_running_loop().call_later(self._tick(), self._body_check)

    def _unwatch_body(self) -> None:
        self._body = None
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None

    def _tick(self) -> float:
        spans = [span for span in (self.body_timeout, self.body_grace) if span]
        return max(0.05, min([BODY_TICK, *(span / 2 for span in spans)]))

    def _body_check(self) -> None:
        self._body_timer = None
        body, transport = self._body, self.transport
        if body is None or body.cycle is not self.cycle or not body.cycle.more_body or \
                transport.is_closing() or transport.get_protocol() is not self:
            self._body = None
            return
        clock = time.monotonic()
        flow = getattr(self, "flow", None)
        if (flow is not None and flow.read_paused) or \
                getattr(body.cycle, "waiting_for_100_continue", False):
            body.restart(clock)  # the server holds the body back, not the client
        why = body.too_slow(clock, self.body_timeout, self.body_min_rate, self.body_grace)
        if why is None:
            self._body_timer = asyncio.get_running_loop().call_later(self._tick(),
                                                                     self._body_check)
            return
        self._body = None
        if self._guard_address is not None:
            self.body_cut.note(self._guard_address)
        if not body.cycle.response_started:
            transport.write(TIMEOUT_RESPONSE)
        transport.close()


_RELEASING: dict[tuple[type[Any], int], type[Any]] = {}


def released_on_loss(base: type[Any], book: AddressBook) -> type[Any]:
    """`base` (uvicorn's websocket protocol) that gives its transport's place back on close."""
    key = (base, id(book))
    cls = _RELEASING.get(key)
    if cls is None:
        def connection_lost(self: Any, exc: Exception | None) -> None:
            try:
                base.connection_lost(self, exc)
            finally:
                book.release(self.transport)

        cls = _RELEASING[key] = type(base.__name__, (base,),
                                     {"connection_lost": connection_lost})
    return cls


def guarded(base: type[asyncio.Protocol], settings: Server) -> type[asyncio.Protocol]:
    """`base` with the head and body deadlines and the per-address cap of `settings`."""
    if issubclass(base, GuardedProtocol):
        return base
    namespace = {
        "book": AddressBook(settings.max_connections_per_address),
        "refused": Tally("refused", f"over {settings.max_connections_per_address} open from "
                         "one address"),
        "timed_out": Tally("cut", f"no request head within {settings.header_timeout:g} s"),
        "header_timeout": settings.header_timeout,
        "body_timeout": settings.body_timeout,
        "body_min_rate": float(settings.body_min_rate),
        "body_grace": settings.body_grace,
        "body_cut": Tally("cut", f"request body idle {settings.body_timeout:g} s or under "
                          f"{settings.body_min_rate} bytes/s after {settings.body_grace:g} s"),
    }
    return type(f"Guarded{base.__name__}", (GuardedProtocol, base), namespace)
