"""Slow and dead clients end to end, and the hub's small helpers."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import socket
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from loguru import logger

import mod.hub as hub_module
from mod.changes import Change
from mod.db import dbhandler as db
from mod.hub import Hub, MemoryBroker, members_at, worker_processes
from mod.protocol.mtp.push import push_frame, rendered
from tests.support import Client, ServerProcess, pushes_through

pytestmark = pytest.mark.anyio


def noise() -> str:
    """64 KiB of text that no compression shrinks much."""
    return base64.b64encode(os.urandom(49152)).decode()


def connections(server: ServerProcess) -> int:
    """Bound connections, as the status page counts them."""
    with urllib.request.urlopen(server.http + "/status", timeout=5) as page:
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
        await asyncio.sleep(0.02)
    return time.monotonic() - started


async def stalled_client(server: ServerProcess, login: str) -> Client:
    """A registered client that then stops reading and never answers pings."""
    client = await Client.connect(server.url, ping_interval=None, max_queue=1)
    client.ws.transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET,
                                                            socket.SO_RCVBUF, 65536)
    await client.register(login, push=True)
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


@pytest.mark.serial
async def test_a_client_that_stops_reading_is_dropped_without_slowing_others(
        tmp_path: Path) -> None:
    env = {"MORELIA_DATABASE_URI": f"sqlite:{tmp_path / 'm.db'}",
           "MORELIA_SERVER_SEND_QUEUE": "64", "MORELIA_SERVER_SEND_QUEUE_BYTES": "1048576"}
    with ServerProcess(tmp_path, env=env) as server:
        alice = await Client.connect(server.url)
        await alice.register("alice")
        bob = await Client.connect(server.url)
        await bob.register("bob", push=True)
        carol = await stalled_client(server, "carol")
        try:
            flow = await alice.group("big", users=[bob.uuid, carol.uuid])
            assert len(await pushes_through(bob, flow)) == 1  # flow_created
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


@pytest.mark.serial
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


# -- the hub alone, on a change log kept in memory ------------------------------------------


class FakeLog:
    """Stands in for the Engine: a change log and flow memberships in memory."""

    def __init__(self) -> None:
        self.changes: list[Change] = []
        self.members: dict[str, list[str]] = {}
        self.on_commit: Any = None
        self.reads = 0

    def add(self, flow: str, kind: str = "message_sent", subject: str = "",
            payload: str = "{}") -> Change:
        position = (self.changes[-1].position if self.changes else 0) + 1
        change = Change(position, 0, flow, kind, "actor", subject or f"m{position}",
                           payload)
        self.changes.append(change)
        return change

    async def read(self, fn: Any, *args: Any) -> Any:
        self.reads += 1
        if fn is db.last_position:
            return self.changes[-1].position if self.changes else 0
        if fn is db.changes_after:
            after, limit = args
            return [c for c in self.changes if c.position > after][:limit]
        if fn is members_at:
            return set(self.members[args[0]])
        raise AssertionError(fn)


class Shared(MemoryBroker):
    def __init__(self) -> None:
        super().__init__(shared=True)
        self.published: list[int] = []

    def publish(self, position: int) -> None:
        self.published.append(position)


class Sink:
    def __init__(self, user_uuid: str) -> None:
        self.user_uuid = user_uuid
        self.got: list[int] = []

    def deliver(self, change: Change) -> None:
        self.got.append(change.position)


async def settle_hub() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def test_hub_delivers_local_commits_in_order_to_members_only() -> None:
    log = FakeLog()
    log.members["f"] = ["u1", "u2"]
    hub = Hub(log, MemoryBroker())  # type: ignore[arg-type]
    await hub.start()
    try:
        sinks = [Sink("u1"), Sink("u1"), Sink("u2"), Sink("u3")]
        for sink in sinks:
            hub.register(sink)
        hub.committed([log.add("f"), log.add("f")])
        hub.committed([log.add("f")])
        await settle_hub()
        assert [s.got for s in sinks] == [[1, 2, 3], [1, 2, 3], [1, 2, 3], []]
        assert hub.position == 3
    finally:
        await hub.stop()


async def test_shared_hub_reads_the_log_after_gaps_and_never_repeats() -> None:
    log = FakeLog()
    log.members["f"] = ["u1"]
    broker = Shared()
    hub = Hub(log, broker)  # type: ignore[arg-type]
    await hub.start()
    try:
        sink = Sink("u1")
        hub.register(sink)
        log.add("f")  # committed by another process, its hint lost
        local = log.add("f")
        hub.committed([local])  # not next to what was delivered: read from the log
        await settle_hub()
        assert sink.got == [1, 2]
        assert broker.published == [2]
        hub.hint(2)  # a late hint for what was delivered already
        hub.hint(0)  # a reconnect's catch-up with nothing new
        await settle_hub()
        assert sink.got == [1, 2]
        log.add("f")
        log.add("f")
        hub.hint(0)  # a reconnect after two changes went unannounced
        hub.hint(4)
        await settle_hub()
        assert sink.got == [1, 2, 3, 4]
        reads = log.reads
        hub.committed([log.add("f")])  # next to the last delivered: no read needed
        await settle_hub()
        assert sink.got == [1, 2, 3, 4, 5] and log.reads == reads
    finally:
        await hub.stop()


class Pusher(Sink):
    """A listener that renders each change as MTP's push frame, as a connection does."""

    def deliver(self, change: Change) -> None:
        push_frame(change)
        super().deliver(change)


async def test_a_change_is_rendered_once_for_all_its_recipients_and_only_its_frame_is_kept(
        ) -> None:
    log = FakeLog()
    log.members["f"] = [f"u{index}" for index in range(50)]
    hub = Hub(log, MemoryBroker())  # type: ignore[arg-type]
    await hub.start()
    try:
        sinks = [Pusher(f"u{index}") for index in range(50)]
        for sink in sinks:
            hub.register(sink)
        rendered.cache_clear()
        text = "x" * 100_000
        hub.committed([log.add("f", payload=json.dumps({"message": {"uuid": str(n),
                                                                     "text": text}}))
                       for n in range(3)])
        await settle_hub()
        assert all(sink.got == [1, 2, 3] for sink in sinks)
        cache = rendered.cache_info()
        assert cache.misses == 3 and cache.hits == 3 * 49  # rendered once per change
        assert cache.currsize == 1  # a large frame is not kept past the next change
        assert list(rendered(log.changes[-1]).frames) == [()]  # one: nobody hid a field
    finally:
        await hub.stop()


@pytest.mark.parametrize("shared", [False, True])
async def test_a_change_that_cannot_be_rendered_is_skipped_once(shared: bool) -> None:
    log = FakeLog()
    log.members["f"] = ["u1"]
    log.members["g"] = ["u1"]
    hub = Hub(log, Shared() if shared else MemoryBroker())  # type: ignore[arg-type]
    sink = Pusher("u1")
    seen: list[int] = []

    def observer(changes: list[Change]) -> None:
        seen.extend([change.position for change in changes if json.loads(change.payload) != 0])

    hub.observers.append(observer)
    hub_module._SKIPPED.clear()  # positions logged by an earlier test
    lines: list[str] = []
    handler = logger.add(lines.append, level="INFO", format="{level} {message}")
    await hub.start()
    try:
        hub.register(sink)
        message = json.dumps({"message": {"uuid": "1", "text": "fine"}})
        deep = '{"message": ' + "[" * 300 + "]" * 300 + "}"
        changes = [log.add("f", payload=message), log.add("f", payload=deep),
                   log.add("f", payload="{not json"),
                   log.add("g", "flow_created", payload="{}"),
                   log.add("", "tokens_revoked", payload="[1"),
                   log.add("f", payload=message), log.add("g", payload=message)]
        if shared:  # every change read back from the log, as on Redis or PostgreSQL
            hub.hint(changes[-1].position)
        else:
            hub.committed(changes)
        await settle_hub()
        assert sink.got == [1, 4, 6, 7]
        assert hub.position == 7
        assert seen == [1, 2, 4, 6, 7]
        later = log.add("f", payload=message)
        if shared:
            hub.hint(later.position)
        else:
            hub.committed([later])
        await settle_hub()
        assert sink.got == [1, 4, 6, 7, 8]
    finally:
        await hub.stop()
        logger.remove(handler)
    err = "".join(lines)
    for position in (2, 3, 5):
        assert err.count(f"change {position} (") == 1, err
    assert "paused" not in err and "Traceback" not in err
