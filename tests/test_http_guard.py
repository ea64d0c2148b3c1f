"""The request-head deadline and the per-address connection cap, on a real server."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import websockets

from mod.config.validator import Server
from mod.http_guard import AddressBook, Tally
from tests.support import Client, ServerProcess

pytestmark = [pytest.mark.anyio, pytest.mark.serial]

OTHER = "127.0.0.2"  # loopback is a /8: a second client address on the same machine


@pytest.fixture
def guarded(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[ServerProcess]:
    cap, timeout, ws = getattr(request, "param", (400, 1.0, "auto"))
    env = {"MORELIA_DATABASE_URI": f"sqlite:{tmp_path / 'morelia.db'}",
           "MORELIA_SERVER_HEADER_TIMEOUT": str(timeout),
           "MORELIA_SERVER_MAX_CONNECTIONS_PER_ADDRESS": str(cap)}
    with ServerProcess(tmp_path, env=env, args=["--ws", ws]) as process:
        yield process


class Slow:
    """A client that sends a request head one byte at a time, and notes when it was cut."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.opened = 0.0
        self.cut = 0.0
        self.answer = b""

    async def run(self, interval: float, give_up: float) -> None:
        self.opened = time.monotonic()
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port,
                                                       local_addr=("127.0.0.1", 0))
        head = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 10_000
        reading = asyncio.ensure_future(reader.read(1000))
        try:
            for byte in head:
                try:
                    writer.write(bytes([byte]))
                    await writer.drain()
                except ConnectionError:
                    break
                done, _ = await asyncio.wait([reading], timeout=interval)
                if done or time.monotonic() - self.opened > give_up:
                    break
            with contextlib.suppress(ConnectionError, TimeoutError):
                self.answer = await asyncio.wait_for(reading, 1.0)
            if reading.done() or reader.at_eof():
                self.cut = time.monotonic()
        finally:
            reading.cancel()
            writer.close()


async def served(server: ServerProcess, address: str = "127.0.0.1") -> int:
    transport = httpx.AsyncHTTPTransport(local_address=address)
    async with httpx.AsyncClient(transport=transport, timeout=5) as http:
        return (await http.get(server.http + "/")).status_code


async def test_slow_heads_are_cut_after_the_timeout_and_over_the_cap_refused_at_once(
        guarded: ServerProcess) -> None:
    slow = [Slow(guarded.port) for _ in range(500)]
    tasks = [asyncio.ensure_future(client.run(interval=0.3, give_up=8.0)) for client in slow]
    try:
        await asyncio.sleep(0)
        # While they dribble, another address is served, over HTTP and over MTP.
        assert await served(guarded, OTHER) == 200
        mtp = await Client.connect(guarded.url, local_addr=(OTHER, 0))
        assert (await mtp.call("ping_pong"))["type"] == "ping_pong"
        await mtp.close()
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    assert all(client.cut for client in slow), "a slow connection was never cut"
    # Over the cap a connection is aborted unanswered; under it, cut with a 408 at the
    # timeout. (Told apart by their answers, not their lifetimes: on a loaded machine even
    # an immediate refusal can take longer than the timeout to be seen.)
    refused = [client for client in slow if client.answer == b""]
    cut = sorted(client.cut - client.opened for client in slow
                 if client.answer.startswith(b"HTTP/1.1 408 "))
    assert len(refused) == 100 and len(cut) == 400, [client.answer[:20] for client in slow]
    assert cut[0] > 0.99 and cut[-1] < 6.0, cut
    # Their places are free again.
    assert await served(guarded) == 200
    log = guarded.log()
    assert "Traceback" not in log
    assert log.count("(over 400 open from one address)") == 1, log
    assert log.count("(no request head within 1 s)") == 1, log


@pytest.mark.parametrize("guarded", [(3, 1.0, "auto"), (3, 1.0, "websockets")], indirect=True)
async def test_websockets_keep_their_place_under_the_cap_until_they_close(
        guarded: ServerProcess) -> None:
    sockets = [await websockets.connect(guarded.url) for _ in range(3)]
    try:
        # Past the head timeout an open websocket is not cut: idling longer than the timeout
        # (1 s) is the point, so this sleep stays.
        await asyncio.sleep(1.5)
        for ws in sockets:
            await ws.send('{"type": "ping_pong", "jsonapi": {"version": "1.0"}}')
            assert '"type":"ping_pong"' in str(await ws.recv())
        started = time.monotonic()
        with pytest.raises(httpx.TransportError):
            await served(guarded)
        assert time.monotonic() - started < 0.5  # refused at once, not held
        assert await served(guarded, OTHER) == 200
        await sockets.pop().close()
        deadline = time.monotonic() + 5
        while True:
            try:
                assert await served(guarded) == 200
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the closed websocket kept its place"
                await asyncio.sleep(0.05)
    finally:
        for ws in sockets:
            await ws.close()


async def test_keep_alive_between_requests_is_uvicorns_and_a_silent_connection_is_closed(
        guarded: ServerProcess) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", guarded.port)
    request = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    for _ in range(2):
        writer.write(request)
        assert (await reader.readuntil(b"\r\n")).startswith(b"HTTP/1.1 200")
        length = 0
        while (line := await reader.readuntil(b"\r\n")) != b"\r\n":
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        await reader.readexactly(length)
        await asyncio.sleep(1.5)  # idle longer than the head timeout, within keep-alive (5 s)
    writer.close()

    reader, writer = await asyncio.open_connection("127.0.0.1", guarded.port)
    started = time.monotonic()
    assert await asyncio.wait_for(reader.read(100), 5) == b""  # closed, no 408
    assert 0.9 < time.monotonic() - started < 4
    writer.close()


# -- in process ----------------------------------------------------------------------------------


class FakeTransport:
    def __init__(self) -> None:
        self.closing = False

    def is_closing(self) -> bool:
        return self.closing


def test_the_address_book_caps_each_address_and_forgets_lost_connections() -> None:
    book = AddressBook(2)
    first, second, third = FakeTransport(), FakeTransport(), FakeTransport()
    assert book.admit("a", first) and book.admit("a", second)  # type: ignore[arg-type]
    assert not book.admit("a", third)  # type: ignore[arg-type]
    assert book.admit("b", third)  # type: ignore[arg-type]
    book.release(first)  # type: ignore[arg-type]
    assert book.admit("a", first)  # type: ignore[arg-type]
    second.closing = True  # lost without a release
    assert book.admit("a", FakeTransport())  # type: ignore[arg-type]
    assert book.count("a") == 2
    unlimited = AddressBook(0)
    assert all(unlimited.admit("a", FakeTransport()) for _ in range(1000))  # type: ignore


async def test_the_tally_logs_one_line_per_address_per_interval() -> None:
    from loguru import logger

    lines: list[str] = []
    sink = logger.add(lambda message: lines.append(str(message)), format="{message}")
    try:
        tally = Tally("refused", "full", interval=0.2)
        for _ in range(50):
            tally.note("10.0.0.1")
        tally.note("10.0.0.2")
        assert lines == ["refused 1 connection from 10.0.0.1 (full)\n",
                         "refused 1 connection from 10.0.0.2 (full)\n"]
        deadline = time.monotonic() + 5
        while len(lines) < 3 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert lines[2] == "refused 49 connections from 10.0.0.1 (full)\n"
        assert tally.total == 51
    finally:
        logger.remove(sink)


def test_defaults_suit_an_office_behind_one_address() -> None:
    assert Server().header_timeout == 10.0
    assert Server().max_connections_per_address == 500
    with pytest.raises(ValueError):
        Server(header_timeout=-1)
