"""Push delivery: latency, fan-out, idle connections, and latency across processes.

Starts its own servers on free loopback ports and prints one line per figure:

    python bench/push_bench.py [--only render,latency,fanout,idle,cross] [--seconds 5]

render   in this process: rendering one change's push frame for 1,000 recipients, with the
         one-frame cache of `push_frame` and without it
latency  16 senders in one group flow, one process on SQLite: send-to-push latency p50/p99
fanout   one message to a group of 1,000 connected members: all delivered, p50/p99
idle     5,000 idle bound connections held by one process: server RSS per connection
cross    two processes on PostgreSQL + Redis, senders on one, receivers on the other: p50/p99
         (needs MORELIA_TEST_POSTGRES_URI and MORELIA_TEST_REDIS_URI; skipped without them)

A pushed message carries its send time (`time.perf_counter()` of this process) as its text,
so each receiving connection measures its own latency. Users of the fan-out and idle runs are
written into the database before the server starts (argon2 makes 1,000 registrations slow).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import websockets

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mod import lib
from mod.changes import Change
from mod.config.validator import Database as DatabaseSettings
from mod.db import dbhandler
from mod.db.engine import Conn as DbConn
from mod.db.engine import Engine
from tests.support import POSTGRES_URI, REDIS_URI, ServerProcess, frame, postgres_database

UVICORN_ARGS = ["--log-level", "warning", "--no-access-log"]
# Every connection comes from 127.0.0.1, so the per-address cap is off here.
QUIET = {"MORELIA_LOGGING_LEVEL": "WARNING", "MORELIA_SERVER_MAX_CONNECTIONS_PER_ADDRESS": "0"}
COMPRESSION: dict[str, str | None] = {"client": "deflate"}  # what clients offer: "deflate" or None


class Conn:
    """One websocket: responses come back in order; pushes are timed as they arrive."""

    def __init__(self, ws: websockets.ClientConnection, user: str, token: str) -> None:
        self.ws = ws
        self.user = user
        self.token = token
        self.latencies: list[float] = []
        self.pushes = 0
        self.replies: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.reader = asyncio.create_task(self._read())

    @classmethod
    async def open(cls, url: str, user: str = "", token: str = "") -> Conn:
        ws = await websockets.connect(url, max_size=None, open_timeout=60,
                                      compression=COMPRESSION["client"])
        return cls(ws, user, token)

    async def _read(self) -> None:
        try:
            async for text in self.ws:
                if '"push":true' in text:
                    clock = time.perf_counter()
                    self.pushes += 1
                    data = json.loads(text)["data"]
                    for message in data.get("message") or []:
                        self.latencies.append(clock - float(message["text"]))
                else:
                    self.replies.put_nowait(json.loads(text))
        except websockets.ConnectionClosed:
            pass

    async def call(self, kind: str, meta: dict[str, Any] | None = None, **data: Any
                   ) -> dict[str, Any]:
        data["user"] = [{"uuid": self.user, "auth_id": self.token}, *data.get("user", [])]
        await self.ws.send(frame(kind, data, meta=meta))
        return await asyncio.wait_for(self.replies.get(), 30)

    async def send_stamp(self, flow: str, client_id: int) -> None:
        reply = await self.call("send_message", flow=[{"uuid": flow}],
                                message=[{"client_id": client_id,
                                          "text": f"{time.perf_counter():.6f}"}])
        assert reply["errors"]["code"] == 200, reply

    async def close(self) -> None:
        await self.ws.close()
        self.reader.cancel()


def seed(uri: str, users: int) -> tuple[list[tuple[str, str]], str]:
    """Write `users` users with a token each and one group of them all; (uuid, token)s, flow."""
    engine = Engine(DatabaseSettings(uri=uri))
    password_hash = lib.hash_password("bench-password")
    stamp = int(time.time())
    people = [(lib.new_uuid(), lib.new_token()) for _ in range(users)]
    flow = lib.new_uuid()

    def write(conn: DbConn) -> None:
        for number, (user, token) in enumerate(people):
            dbhandler.create_user(conn, user, f"bench{number}", password_hash, f"bench{number}",
                                  "", 86400, stamp)
            dbhandler.add_token(conn, user, lib.token_hash(token), stamp, stamp + 86400)
        dbhandler.create_flow(conn, flow, "group", "bench", "", people[0][0],
                              [user for user, _ in people], stamp)

    engine.write_sync(dbhandler.create_tables)
    engine.write_sync(write)
    engine.stop()
    return people, flow


async def bind_all(url: str, people: list[tuple[str, str]], parallel: int = 200) -> list[Conn]:
    """Open one connection per (user, token) that takes pushes, `parallel` at a time."""
    conns: list[Conn] = []
    for start in range(0, len(people), parallel):
        batch = people[start:start + parallel]
        opened = await asyncio.gather(*(Conn.open(url, user, token) for user, token in batch))
        replies = await asyncio.gather(*(conn.call("ping_pong", meta={"push": True})
                                         for conn in opened))
        assert all(reply["errors"]["code"] == 200 for reply in replies), replies[:1]
        conns.extend(opened)
    return conns


def percentiles(samples: list[float]) -> str:
    ordered = sorted(samples)
    p50 = statistics.median(ordered) * 1000
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000
    return f"p50 {p50:.1f} ms, p99 {p99:.1f} ms, max {ordered[-1] * 1000:.1f} ms"


async def paced_senders(senders: list[Conn], flow: str, seconds: float,
                        interval: float) -> int:
    """Each sender sends a stamped message every `interval` s for `seconds`; count them."""
    sent = 0
    deadline = time.perf_counter() + seconds

    async def loop(index: int, conn: Conn) -> None:
        nonlocal sent
        await asyncio.sleep(interval * index / len(senders))
        number = 0
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            number += 1
            await conn.send_stamp(flow, number)
            sent += 1
            await asyncio.sleep(max(0.0, interval - (time.perf_counter() - started)))

    await asyncio.gather(*(loop(i, conn) for i, conn in enumerate(senders)))
    return sent


async def settle(conns: list[Conn], expected: int, timeout: float = 10.0) -> None:
    deadline = time.perf_counter() + timeout
    while sum(len(c.latencies) for c in conns) < expected and time.perf_counter() < deadline:
        await asyncio.sleep(0.05)


@contextmanager
def sqlite_server(directory: Path, users: int) -> Iterator[tuple[ServerProcess,
                                                                list[tuple[str, str]], str]]:
    uri = f"sqlite:{directory / 'bench.db'}"
    people, flow = seed(uri, users)
    with ServerProcess(directory, env={"MORELIA_DATABASE_URI": uri, **QUIET},
                       args=UVICORN_ARGS) as server:
        yield server, people, flow


def bench_render(recipients: int = 1000, rounds: int = 5) -> None:
    """What `Session.deliver` spends on frames when one change reaches `recipients`."""
    from mod.protocol.mtp.push import push_frame
    from mod.protocol.mtp.push import render as render_uncached

    def uncached(change: Change) -> str:
        return render_uncached(change, ())

    message = {"uuid": "1", "client_id": 1, "text": "x" * 100, "from_user": "u",
               "from_flow": "f", "time": 1_700_000_000, "edited_status": False}
    figures = []
    for name, render in (("cached", push_frame), ("uncached", uncached)):
        runs = []
        for number in range(rounds):
            change = Change(number + 1, 1_700_000_000, "f", "message_sent", "u", "1",
                               json.dumps({"message": message}))
            started = time.perf_counter()
            for _ in range(recipients):
                render(change)
            runs.append((time.perf_counter() - started) * 1000)
        figures.append(f"{name} {statistics.median(runs):.2f} ms "
                       f"({min(runs):.2f}-{max(runs):.2f})")
    print(f"render: one change's push frame for {recipients} recipients, median of {rounds}: "
          + ", ".join(figures))


async def bench_latency(seconds: float) -> None:
    with tempfile.TemporaryDirectory() as tmp, sqlite_server(Path(tmp), 16) as (server, people,
                                                                               flow):
        conns = await bind_all(server.url, people)
        await paced_senders(conns, flow, 1.0, 0.05)  # warm-up
        await settle(conns, 1)
        await asyncio.sleep(0.5)
        for conn in conns:
            conn.latencies.clear()
        sent = await paced_senders(conns, flow, seconds, 0.05)
        await settle(conns, sent * 16)
        samples = [s for conn in conns for s in conn.latencies]
        print(f"latency: 16 senders, one group, SQLite, one process: {sent} messages, "
              f"{len(samples)} pushes ({len(samples) / (sent * 16):.0%} delivered): "
              f"{percentiles(samples)}")
        for conn in conns:
            await conn.close()


async def bench_fanout(rounds: int) -> None:
    members = 1000
    with tempfile.TemporaryDirectory() as tmp, sqlite_server(Path(tmp), members) as (
            server, people, flow):
        conns = await bind_all(server.url, people)
        sender = conns[0]
        samples: list[float] = []
        for number in range(rounds + 1):
            for conn in conns:
                conn.latencies.clear()
            await sender.send_stamp(flow, number + 1)
            await settle(conns, members)
            got = [s for conn in conns for s in conn.latencies]
            if number:  # the first round warms up
                assert len(got) == members, f"only {len(got)} of {members} delivered"
                samples.extend(got)
            await asyncio.sleep(0.2)
        print(f"fanout: one message to {members} connected members, {rounds} rounds, all "
              f"delivered: {percentiles(samples)}")
        for conn in conns:
            await conn.close()


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


async def bench_idle(count: int) -> None:
    """Per-connection memory, with clients that do not offer compression (as the original's
    figure was taken) and with clients that offer permessage-deflate, which costs the server
    a zlib compressor and decompressor per connection."""
    for compression in (None, "deflate"):
        COMPRESSION["client"] = compression
        await idle_once(count, compression or "no")
    COMPRESSION["client"] = "deflate"


async def idle_once(count: int, label: str) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = min(hard, 2 * count + 1000)
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    with tempfile.TemporaryDirectory() as tmp, sqlite_server(Path(tmp), 1) as (server, people,
                                                                              _flow):
        assert server.process is not None
        pid = server.process.pid
        warm = await bind_all(server.url, people * 200)
        await asyncio.sleep(1.0)
        before = rss_kib(pid)
        conns = await bind_all(server.url, people * count)
        await asyncio.sleep(2.0)
        after = rss_kib(pid)
        per = (after - before) / count
        print(f"idle ({label} compression): {count} more bound idle connections (after "
              f"{len(warm)} warm-up ones): "
              f"server RSS {before / 1024:.0f} -> {after / 1024:.0f} MiB, "
              f"{per:.1f} KiB per connection")
        for conn in warm + conns:
            await conn.close()


async def bench_cross(seconds: float) -> None:
    if not (POSTGRES_URI and REDIS_URI):
        print("cross: skipped (set MORELIA_TEST_POSTGRES_URI and MORELIA_TEST_REDIS_URI)")
        return
    with tempfile.TemporaryDirectory() as tmp, postgres_database() as database:
        directory = Path(tmp)
        people, flow = seed(database, 16)
        env = {"MORELIA_DATABASE_URI": database, "MORELIA_BROKER_URI": REDIS_URI,
               "MORELIA_BROKER_CHANNEL": f"bench_{uuid.uuid4().hex[:10]}", **QUIET}
        with ServerProcess(directory, env=env, args=UVICORN_ARGS) as first, \
                ServerProcess(directory, env=env, args=UVICORN_ARGS) as second:
            senders = await bind_all(first.url, people[:8])
            receivers = await bind_all(second.url, people[8:])
            await paced_senders(senders, flow, 1.0, 0.05)
            await asyncio.sleep(0.5)
            for conn in receivers:
                conn.latencies.clear()
            sent = await paced_senders(senders, flow, seconds, 0.05)
            await settle(receivers, sent * len(receivers))
            samples = [s for conn in receivers for s in conn.latencies]
            print(f"cross: 8 senders on one process, 8 receivers on another, PostgreSQL + "
                  f"Redis: {sent} messages, {len(samples)} pushes "
                  f"({len(samples) / (sent * len(receivers)):.0%} delivered): "
                  f"{percentiles(samples)}")
            for conn in senders + receivers:
                await conn.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="render,latency,fanout,idle,cross")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--idle", type=int, default=5000)
    parser.add_argument("--compression", choices=["deflate", "none"], default="deflate",
                        help="what the latency, fanout and cross clients offer")
    args = parser.parse_args()
    COMPRESSION["client"] = None if args.compression == "none" else "deflate"
    wanted = set(args.only.split(","))
    if "render" in wanted:
        bench_render()
    if "latency" in wanted:
        await bench_latency(args.seconds)
    if "fanout" in wanted:
        await bench_fanout(args.rounds)
    if "idle" in wanted:
        await bench_idle(args.idle)
        COMPRESSION["client"] = None if args.compression == "none" else "deflate"
    if "cross" in wanted:
        await bench_cross(args.seconds)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    asyncio.run(main())
