"""Connection guards uvicorn lacks: a deadline for the request head, a cap per client address.

`guarded(base, settings)` subclasses uvicorn's HTTP protocol class in use (httptools or
h11). Each connection must complete a request head within `header_timeout` seconds of its
first byte (of being opened, for its first request): a client that dribbles a head one byte
a second is cut, whatever it sends. Between requests uvicorn's own keep-alive timeout
applies, unchanged. A connection over `max_connections_per_address` open ones from the same
address is aborted at once, before anything is read. A connection upgraded to a websocket
keeps its place under the cap until it closes.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, ClassVar, cast

from loguru import logger

from mod.config.validator import Server

REPORT_INTERVAL = 60.0
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


class GuardedProtocol(asyncio.Protocol):
    """Mixin over uvicorn's HTTP protocol classes; see the module's docstring."""

    book: ClassVar[AddressBook]
    refused: ClassVar[Tally]
    timed_out: ClassVar[Tally]
    header_timeout: ClassVar[float]

    transport: Any
    cycle: Any
    ws_protocol_class: Any
    _guard_address: str | None
    _guard_timer: asyncio.TimerHandle | None
    _guard_bytes: bool
    _guard_refused: bool

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._guard_address = None
        self._guard_timer = None
        self._guard_bytes = False
        self._guard_refused = False
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
        super().data_received(data)
        if self.cycle is not cycle or self.transport.get_protocol() is not self:
            self._disarm()  # a head is complete (or the connection became a websocket)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._guard_refused:
            return
        self._disarm()
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
    """`base` with the head deadline and the per-address cap of `settings`."""
    if issubclass(base, GuardedProtocol):
        return base
    namespace = {
        "book": AddressBook(settings.max_connections_per_address),
        "refused": Tally("refused", f"over {settings.max_connections_per_address} open from "
                         "one address"),
        "timed_out": Tally("cut", f"no request head within {settings.header_timeout:g} s"),
        "header_timeout": settings.header_timeout,
    }
    return type(f"Guarded{base.__name__}", (GuardedProtocol, base), namespace)
