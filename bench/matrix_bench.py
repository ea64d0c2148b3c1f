"""Matrix throughput and /sync delivery latency: 8 senders into one room, one receiver.

    python bench/matrix_bench.py [--seconds 10] [--senders 8] [--client nio|aiohttp|httpx]

Starts the server (one process, SQLite in a temporary directory) on a free loopback port,
registers the senders and a receiver over Matrix, and puts them in one room. Each sender then
sends `m.room.message` events back to back (`PUT .../send/m.room.message/{txnId}`, the next
as soon as the last is answered) while the receiver, in a process of its own so the senders'
CPU does not delay it, long-polls `/sync`. Senders are matrix-nio clients by default; `aiohttp`
and `httpx` send the same requests raw, with less (aiohttp) or more (httpx) client CPU.

Each event's body is the monotonic clock just before its PUT went out. The receiver measures
delivery latency from the event's `origin_server_ts` (the server took it in) to its arrival
in /sync, and end to end from the start of the PUT.

Prints events/s (events the server acknowledged, per second of the run), latency p50/p99/max,
whether every event arrived, CPU use, and the server process's RSS (VmRSS) after the run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import resource
import statistics
import sys
import tempfile
import time
import uuid
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Event as StopEvent
from pathlib import Path
from typing import Any, Protocol

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support import ServerProcess

UVICORN_ARGS = ["--log-level", "warning", "--no-access-log"]
QUIET = {"MORELIA_LOGGING_LEVEL": "WARNING"}
V3 = "/_matrix/client/v3"
PASSWORD = "bench-password"
SYNC_FILTER = json.dumps({"room": {"timeline": {"limit": 500}}})


class Sender(Protocol):
    async def send(self, room: str, body: str) -> None: ...

    async def close(self) -> None: ...


class RawUser:
    """One Matrix user over raw HTTP with aiohttp (one keep-alive connection)."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1))
        self.token = ""
        self.user_id = ""

    async def call(self, method: str, path: str, body: dict[str, Any] | None = None,
                   params: dict[str, str] | None = None) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        async with self.session.request(method, self.base + V3 + path, json=body,
                                        params=params, headers=headers) as response:
            if response.status != 200:
                raise RuntimeError(f"{method} {path}: {response.status} "
                                   f"{await response.text()}")
            data: dict[str, Any] = await response.json()
            return data

    async def register(self, login: str) -> None:
        data = await self.call("POST", "/register", {
            "username": login, "password": PASSWORD, "auth": {"type": "m.login.dummy"}})
        self.token, self.user_id = data["access_token"], data["user_id"]

    async def send(self, room: str, body: str) -> None:
        await self.call("PUT", f"/rooms/{room}/send/m.room.message/{uuid.uuid4().hex}",
                        {"msgtype": "m.text", "body": body})

    async def close(self) -> None:
        await self.session.close()


class HttpxSender:
    """One sender over raw HTTP with httpx."""

    def __init__(self, base: str, token: str) -> None:
        import httpx

        self.http = httpx.AsyncClient(base_url=base, timeout=60,
                                      headers={"Authorization": f"Bearer {token}"},
                                      limits=httpx.Limits(max_connections=1))

    async def send(self, room: str, body: str) -> None:
        response = await self.http.put(
            f"{V3}/rooms/{room}/send/m.room.message/{uuid.uuid4().hex}",
            json={"msgtype": "m.text", "body": body})
        if response.status_code != 200:
            raise RuntimeError(f"send failed: {response.status_code} {response.text}")

    async def close(self) -> None:
        await self.http.aclose()


class NioSender:
    """One sender through matrix-nio (which validates every response it reads)."""

    def __init__(self, base: str, token: str, user_id: str) -> None:
        import nio

        self.client = nio.AsyncClient(base, user_id)
        self.client.access_token = token
        self.client.user_id = user_id
        self.ok = nio.RoomSendResponse

    async def send(self, room: str, body: str) -> None:
        response = await self.client.room_send(room, "m.room.message",
                                               {"msgtype": "m.text", "body": body})
        if not isinstance(response, self.ok):
            raise RuntimeError(f"send failed: {response}")

    async def close(self) -> None:
        await self.client.close()


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def cpu_seconds(pid: int, task: int | None = None) -> float:
    """User + system CPU time a process (or one of its threads) has used so far."""
    path = f"/proc/{pid}/task/{task}/stat" if task is not None else f"/proc/{pid}/stat"
    fields = Path(path).read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


# -- the receiver, in its own process -----------------------------------------------------------


async def receive(base: str, token: str, room: str, stop: StopEvent, ready: StopEvent
                  ) -> dict[str, Any]:
    user = RawUser(base)
    user.token = token
    latencies: list[float] = []
    from_server: list[float] = []
    syncs = 0
    try:
        since = (await user.call("GET", "/sync", params={"filter": SYNC_FILTER}))["next_batch"]
        ready.set()
        while not stop.is_set():
            data = await user.call("GET", "/sync", params={
                "since": since, "timeout": "500", "filter": SYNC_FILTER})
            clock, wall = time.monotonic(), time.time()
            syncs += 1
            since = data["next_batch"]
            joined = data.get("rooms", {}).get("join", {}).get(room)
            if joined is None:
                continue
            if joined["timeline"].get("limited"):
                raise RuntimeError("the receiver fell behind by more than a timeline")
            for event in joined["timeline"]["events"]:
                if event["type"] == "m.room.message":
                    latencies.append(clock - float(event["content"]["body"]))
                    from_server.append(wall - event["origin_server_ts"] / 1000)
    finally:
        await user.close()
    return {"latencies": latencies, "from_server": from_server, "syncs": syncs,
            "cpu": own_cpu_seconds()}


def receiver_main(base: str, token: str, room: str, stop: StopEvent, ready: StopEvent,
                  results: Connection) -> None:
    results.send(asyncio.run(receive(base, token, room, stop, ready)))


# -- the run ------------------------------------------------------------------------------------


async def run(seconds: float, senders: int, client: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        env = {"MORELIA_DATABASE_URI": f"sqlite:{directory / 'bench.db'}", **QUIET}
        with ServerProcess(directory, env=env, args=UVICORN_ARGS) as server:
            assert server.process is not None
            base = server.http
            users = [RawUser(base) for _ in range(senders + 1)]
            tag = uuid.uuid4().hex[:6]
            await asyncio.gather(*(user.register(f"bench-{tag}-{number}")
                                   for number, user in enumerate(users)))
            owner, listener = users[0], users[-1]
            room = (await owner.call("POST", "/createRoom", {"name": "bench"}))["room_id"]
            for user in users[1:]:
                await user.call("POST", f"/join/{room}", {})
            sending: list[Sender] = list(users[:senders])
            if client == "nio":
                sending = [NioSender(base, user.token, user.user_id) for user in users[:senders]]
            elif client == "httpx":
                sending = [HttpxSender(base, user.token) for user in users[:senders]]

            spawn = multiprocessing.get_context("spawn")
            stop, ready = spawn.Event(), spawn.Event()
            results, results_in = spawn.Pipe(duplex=False)
            receiver = spawn.Process(target=receiver_main, args=(
                base, listener.token, room, stop, ready, results_in))
            receiver.start()
            while not ready.wait(0.01):
                await asyncio.sleep(0.05)

            sent = 0
            deadline = time.monotonic() + seconds

            async def loop(sender: Sender) -> None:
                nonlocal sent
                while time.monotonic() < deadline:
                    await sender.send(room, f"{time.monotonic():.6f}")
                    sent += 1

            started = time.monotonic()
            pid = server.process.pid
            server_cpu, client_cpu = cpu_seconds(pid), own_cpu_seconds()
            loop_cpu = cpu_seconds(pid, pid)  # the event loop's thread
            await asyncio.gather(*(loop(sender) for sender in sending))
            elapsed = time.monotonic() - started
            server_cpu = cpu_seconds(pid) - server_cpu
            loop_cpu = cpu_seconds(pid, pid) - loop_cpu
            client_cpu = own_cpu_seconds() - client_cpu
            await asyncio.sleep(1.0)  # let the last events arrive
            stop.set()
            while not results.poll():
                await asyncio.sleep(0.05)
            got: dict[str, Any] = results.recv()
            receiver.join()
            rss = rss_mib(server.process.pid)
            for sender in sending:
                await sender.close()
            for user in users:
                await user.close()

    ms = [value * 1000 for value in got["latencies"]]
    accepted = [value * 1000 for value in got["from_server"]]
    print(f"matrix: {senders} senders ({client}) into one room, one receiver on /sync, "
          f"SQLite, one server process, {elapsed:.1f} s")
    print(f"  events/s:        {sent / elapsed:.0f} ({sent} sent, {len(ms)} received, "
          f"{got['syncs']} syncs)")
    print(f"  delivery (ms):   p50 {statistics.median(accepted):.1f}  "
          f"p99 {percentile(accepted, 0.99):.1f}  max {max(accepted):.1f}  "
          "(origin_server_ts -> in the receiver's /sync)")
    print(f"  end to end (ms): p50 {statistics.median(ms):.1f}  p99 {percentile(ms, 0.99):.1f}"
          f"  max {max(ms):.1f}  (sender starts the PUT -> in the receiver's /sync)")
    print(f"  server RSS:      {rss:.0f} MiB after the run")
    print(f"  CPU during run:  server {server_cpu / elapsed:.0%}, senders "
          f"{client_cpu / elapsed:.0%} of one core ({os.cpu_count()} cores); receiver "
          f"{got['cpu']:.1f} s in all")
    print(f"  server CPU:      {server_cpu / max(sent, 1) * 1e6:.0f} µs per event "
          f"({loop_cpu / max(sent, 1) * 1e6:.0f} on the event loop's thread)")
    if len(ms) != sent:
        raise SystemExit(f"lost events: sent {sent}, received {len(ms)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--senders", type=int, default=8)
    parser.add_argument("--client", choices=("nio", "aiohttp", "httpx"), default="nio")
    args = parser.parse_args()
    asyncio.run(run(args.seconds, args.senders, args.client))


if __name__ == "__main__":
    main()
