"""Slow and dead clients end to end, and the hub's small helpers."""

from __future__ import annotations

import asyncio
import base64
import os
import re
import socket
import time
import urllib.request
from pathlib import Path

import pytest

from mod.hub import worker_processes
from tests.support import Client, ServerProcess
from tests.test_push import drain

pytestmark = pytest.mark.anyio


def noise() -> str:
    """64 KiB of text that no compression shrinks much."""
    return base64.b64encode(os.urandom(49152)).decode()


def connections(server: ServerProcess) -> int:
    """Bound connections, as the status page counts them."""
    with urllib.request.urlopen(server.http + "/", timeout=5) as page:
        text = page.read().decode()
    found = re.search(r"<th>Connections</th><td>(\d+)</td>", text)
    assert found, text
    return int(found.group(1))


def rss_kib(server: ServerProcess) -> int:
    assert server.process is not None
    status = Path(f"/proc/{server.process.pid}/status").read_text()
    found = re.search(r"VmRSS:\s+(\d+) kB", status)
    assert found
    return int(found.group(1))


async def wait_connections(server: ServerProcess, count: int, timeout: float) -> float:
    """Seconds until the status page shows `count` bound connections."""
    started = time.monotonic()
    while connections(server) != count:
        assert time.monotonic() - started < timeout, server.log()[-3000:]
        await asyncio.sleep(0.1)
    return time.monotonic() - started


async def stalled_client(server: ServerProcess, login: str) -> Client:
    """A registered client that then stops reading and never answers pings."""
    client = await Client.connect(server.url, ping_interval=None, max_queue=1)
    client.ws.transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET,
                                                            socket.SO_RCVBUF, 65536)
    await client.register(login)
    client.ws.transport.pause_reading()
    return client


def test_worker_processes_reads_the_command_line() -> None:
    assert worker_processes() == 1  # pytest is nobody's worker
    import multiprocessing

    class Parent:
        pass

    original = multiprocessing.parent_process
    multiprocessing.parent_process = lambda: Parent()  # type: ignore[assignment,return-value]
    try:
        assert worker_processes(["uvicorn", "server:app", "--workers", "3"]) == 3
        assert worker_processes(["manage.py", "runserver", "--workers=2"]) == 2
        assert worker_processes(["uvicorn", "server:app", "--reload"]) == 1
    finally:
        multiprocessing.parent_process = original


async def test_a_client_that_stops_reading_is_dropped_without_slowing_others(
        tmp_path: Path) -> None:
    env = {"MORELIA_DATABASE_URI": f"sqlite:{tmp_path / 'm.db'}",
           "MORELIA_SERVER_SEND_QUEUE": "64", "MORELIA_SERVER_SEND_QUEUE_BYTES": "1048576"}
    with ServerProcess(tmp_path, env=env) as server:
        alice = await Client.connect(server.url)
        await alice.register("alice")
        bob = await Client.connect(server.url)
        await bob.register("bob")
        carol = await stalled_client(server, "carol")
        try:
            flow = await alice.group("big", users=[bob.uuid, carol.uuid])
            await drain(bob)
            before = rss_kib(server)
            count = 200  # 13 MB to each member: more than any socket buffer holds
            received = 0
            slowest = 0.0
            for number in range(count):
                sent = time.monotonic()
                reply = await alice.send(flow, f"{number} {noise()}", client_id=number + 1)
                assert reply["errors"]["code"] == 200
                push = await bob.push(timeout=5)
                slowest = max(slowest, time.monotonic() - sent)
                assert push["data"]["message"][0]["text"].startswith(f"{number} ")
                received += 1
            assert received == count
            assert slowest < 1.0  # carol's backlog never held bob up
            assert "disconnecting a client that stopped reading" in server.log()
            await wait_connections(server, 2, timeout=5)  # alice and bob
            assert rss_kib(server) - before < 64 * 1024
        finally:
            for client in (alice, bob):
                await client.close()
            carol.ws.transport.abort()


async def test_dead_peers_are_found_by_pings_and_freed(tmp_path: Path) -> None:
    env = {"MORELIA_DATABASE_URI": f"sqlite:{tmp_path / 'm.db'}",
           "MORELIA_SERVER_PING_INTERVAL": "0.5",
           # Queue anything: only the pings and the sweeper may find these peers.
           "MORELIA_SERVER_SEND_QUEUE": "100000", "MORELIA_SERVER_SEND_QUEUE_BYTES": "1000000000"}
    # Pings go out after 2 s, the sweeper looks every 0.5 s: by the time the stuck peer's ping
    # times out (and uvicorn's graceful close stalls on its full buffer) the sweeper has it.
    args = ["--ws-ping-interval", "2", "--ws-ping-timeout", "1"]
    with ServerProcess(tmp_path, env=env, args=args) as server:
        alice = await Client.connect(server.url)
        await alice.register("alice")
        idle = await stalled_client(server, "idle")
        stuck = await stalled_client(server, "stuck")
        try:
            assert connections(server) == 3
            # An idle dead peer: its pings go unanswered and uvicorn closes it.
            flow = await alice.group("dead", users=[stuck.uuid])
            for number in range(150):  # a peer that took nothing, with megabytes queued
                reply = await alice.send(flow, f"{number} {noise()}", client_id=number + 1)
                assert reply["errors"]["code"] == 200
            elapsed = await wait_connections(server, 1, timeout=8)
            assert elapsed < 8
            assert "aborting a connection whose peer took no data" in server.log()
            reply = await alice.call("ping_pong")
            assert reply["errors"]["code"] == 200
        finally:
            await alice.close()
            for client in (idle, stuck):
                client.ws.transport.abort()
