"""Matrix throughput and /sync delivery latency, the way the Synapse figures were taken.

    python bench/matrix_bench.py [--seconds 10] [--senders 8] [--client httpx|nio]

Starts the server (one process, SQLite in a temporary directory) on a free loopback port,
registers the senders and a receiver over Matrix, and puts them in one room. Each sender then
sends `m.room.message` events back to back (`PUT .../send/m.room.message/{txnId}`, the next
one as soon as the last is answered) while the receiver long-polls `/sync`. Each event's body
is the time (this process's `perf_counter`) just before its PUT was sent, so the receiver
measures delivery latency from the start of the send to the arrival in its `/sync`.

Prints events/s (events the server acknowledged, per second of the run), the receiver's
latency p50/p99/max, whether every event arrived, and the server process's RSS (VmRSS from
/proc) after the run.
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
from pathlib import Path
from typing import Any, Protocol

import httpx

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


class HttpxUser:
    """One Matrix user over raw HTTP (httpx, one keep-alive connection)."""

    def __init__(self, base: str) -> None:
        self.http = httpx.AsyncClient(base_url=base, timeout=60,
                                      limits=httpx.Limits(max_connections=1))
        self.token = ""
        self.user_id = ""

    async def call(self, method: str, path: str, body: dict[str, Any] | None = None,
                   params: dict[str, str] | None = None) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        response = await self.http.request(method, V3 + path, json=body, params=params,
                                           headers=headers)
        if response.status_code != 200:
            raise RuntimeError(f"{method} {path}: {response.status_code} {response.text}")
        data: dict[str, Any] = response.json()
        return data

    async def register(self, login: str) -> None:
        data = await self.call("POST", "/register", {
            "username": login, "password": PASSWORD, "auth": {"type": "m.login.dummy"}})
        self.token, self.user_id = data["access_token"], data["user_id"]

    async def send(self, room: str, body: str) -> None:
        await self.call("PUT", f"/rooms/{room}/send/m.room.message/{uuid.uuid4().hex}",
                        {"msgtype": "m.text", "body": body})

    async def close(self) -> None:
        await self.http.aclose()


class AiohttpUser:
    """One Matrix user over raw HTTP with aiohttp (the transport nio uses), lighter than httpx."""

    def __init__(self, base: str, token: str) -> None:
        import aiohttp

        self.base = base
        self.session = aiohttp.ClientSession(
            headers={"Authorization": f"Bearer {token}"},
            connector=aiohttp.TCPConnector(limit=1))

    async def send(self, room: str, body: str) -> None:
        url = f"{self.base}{V3}/rooms/{room}/send/m.room.message/{uuid.uuid4().hex}"
        async with self.session.put(url, json={"msgtype": "m.text", "body": body}) as response:
            if response.status != 200:
                raise RuntimeError(f"send failed: {response.status} {await response.text()}")
            await response.read()

    async def close(self) -> None:
        await self.session.close()


class NioUser:
    """One Matrix user through matrix-nio (which validates every response it reads)."""

    def __init__(self, base: str, login: str, token: str, user_id: str) -> None:
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


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


class Receiver:
    """Long-polls /sync and notes when each bench event arrives."""

    def __init__(self, user: HttpxUser, room: str) -> None:
        self.user = user
        self.room = room
        self.latencies: list[float] = []
        self.from_server: list[float] = []
        self.since = ""
        self.syncs = 0
        self.stopping = False

    async def start(self) -> None:
        data = await self.user.call("GET", "/sync", params={"filter": SYNC_FILTER})
        self.since = data["next_batch"]

    async def run(self) -> None:
        while not self.stopping:
            data = await self.user.call("GET", "/sync", params={
                "since": self.since, "timeout": "1000", "filter": SYNC_FILTER})
            clock, wall = time.perf_counter(), time.time()
            self.syncs += 1
            self.since = data["next_batch"]
            room = data.get("rooms", {}).get("join", {}).get(self.room)
            if room is None:
                continue
            if room["timeline"].get("limited"):
                raise RuntimeError("the receiver fell behind by more than a timeline")
            for event in room["timeline"]["events"]:
                if event["type"] == "m.room.message":
                    self.latencies.append(clock - float(event["content"]["body"]))
                    self.from_server.append(wall - event["origin_server_ts"] / 1000)


async def run(seconds: float, senders: int, client: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        env = {"MORELIA_DATABASE_URI": f"sqlite:{directory / 'bench.db'}", **QUIET}
        with ServerProcess(directory, env=env, args=UVICORN_ARGS) as server:
            assert server.process is not None
            base = server.http
            users = [HttpxUser(base) for _ in range(senders + 1)]
            tag = uuid.uuid4().hex[:6]
            await asyncio.gather(*(user.register(f"bench-{tag}-{number}")
                                   for number, user in enumerate(users)))
            owner, receiver_user = users[0], users[-1]
            room = (await owner.call("POST", "/createRoom", {"name": "bench"}))["room_id"]
            for user in users[1:]:
                await user.call("POST", f"/join/{room}", {})
            sending: list[Sender] = list(users[:senders])
            if client == "nio":
                sending = [NioUser(base, "", user.token, user.user_id)
                           for user in users[:senders]]
            elif client == "aiohttp":
                sending = [AiohttpUser(base, user.token) for user in users[:senders]]
            receiver = Receiver(receiver_user, room)
            await receiver.start()
            polling = asyncio.create_task(receiver.run())
            await asyncio.sleep(0.3)

            sent = 0
            deadline = time.perf_counter() + seconds

            async def loop(sender: Sender) -> None:
                nonlocal sent
                while time.perf_counter() < deadline:
                    await sender.send(room, f"{time.perf_counter():.6f}")
                    sent += 1

            started = time.perf_counter()
            server_cpu, client_cpu = cpu_seconds(server.process.pid), own_cpu_seconds()
            await asyncio.gather(*(loop(sender) for sender in sending))
            elapsed = time.perf_counter() - started
            server_cpu = cpu_seconds(server.process.pid) - server_cpu
            client_cpu = own_cpu_seconds() - client_cpu
            settle = time.perf_counter() + 10
            while len(receiver.latencies) < sent and time.perf_counter() < settle:
                await asyncio.sleep(0.05)
            receiver.stopping = True
            await polling
            rss = rss_mib(server.process.pid)
            for sender in sending:
                await sender.close()
            for user in users:
                await user.close()

    got = receiver.latencies
    ms = [value * 1000 for value in got]
    accepted = [value * 1000 for value in receiver.from_server]
    print(f"matrix: {senders} senders ({client}) into one room, one receiver on /sync, "
          f"SQLite, one process, {elapsed:.1f} s")
    print(f"  events/s:        {sent / elapsed:.0f} ({sent} sent, {len(got)} received, "
          f"{receiver.syncs} syncs)")
    print(f"  delivery (ms):   p50 {statistics.median(accepted):.1f}  "
          f"p99 {percentile(accepted, 0.99):.1f}  max {max(accepted):.1f}  "
          "(origin_server_ts -> in the receiver's /sync)")
    print(f"  end to end (ms): p50 {statistics.median(ms):.1f}  p99 {percentile(ms, 0.99):.1f}"
          f"  max {max(ms):.1f}  (sender starts the PUT -> in the receiver's /sync)")
    print(f"  server RSS:      {rss:.0f} MiB after the run")
    print(f"  CPU during run:  server {server_cpu / elapsed:.0%}, bench clients "
          f"{client_cpu / elapsed:.0%} (of one core; {os.cpu_count()} cores)")
    if len(got) != sent:
        raise SystemExit(f"lost events: sent {sent}, received {len(got)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--senders", type=int, default=8)
    parser.add_argument("--client", choices=("httpx", "aiohttp", "nio"), default="httpx")
    args = parser.parse_args()
    asyncio.run(run(args.seconds, args.senders, args.client))


if __name__ == "__main__":
    main()
