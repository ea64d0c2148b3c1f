"""A storm of thumbnails against other users' sends (issue 19, case 2).

    python bench/thumbnail_bench.py [--rounds 3] [--senders 4] [--idle-seconds 5]
    python bench/thumbnail_bench.py --root DIR   # another tree, e.g. the code before

Starts the server (one process, SQLite in a temporary directory) on a free loopback port.
`--senders` MTP connections send text messages in a closed loop (each in its own group), and
the latency of every `send_message` is recorded: first for `--idle-seconds` with nothing
else going on, then during `--rounds` storms. A storm uploads a 7900x7900 RGBA PNG of zeros
(about 242 KB; each round's picture differs by a pixel, so none is made already) and asks
for 12 thumbnails of it at once, widths 100 to 111 (height 100, `scale`), half on the
authenticated path and half on the legacy one. Prints send latency p50/p99 idle and during
the storms, how long the storms took, and the peak RSS of the server process (its VmHWM)
and of its thumbnail worker processes (sampled from /proc every 10 ms).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import aiohttp
import websockets

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import tests.support as support
from bench.matrix_bench import RawUser, percentile
from bench.mtp_bench import answer, call, connect
from tests.support import frame, zero_png

UVICORN_ARGS = ["--log-level", "warning", "--no-access-log"]
ENV = {"MORELIA_LOGGING_LEVEL": "WARNING", "MORELIA_SERVER_RATE_LIMIT": "1000000",
       "MORELIA_SERVER_RATE_BURST": "1000000"}
MIB = 1024 * 1024


def status_kib(pid: int, field: str) -> int:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                if int(fields[1]) == pid:
                    found.append(int(entry.name))
    return found


class Sampler(threading.Thread):
    """Peak RSS of the server and of its child processes, sampled every 10 ms."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.server_peak = 0
        self.workers_peak = 0
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.wait(0.01):
            self.server_peak = max(self.server_peak, status_kib(self.pid, "VmRSS"))
            workers = sum(status_kib(child, "VmRSS") for child in children(self.pid))
            self.workers_peak = max(self.workers_peak, workers)


class Senders:
    """MTP connections sending in a closed loop; every latency, in ms, with its start time."""

    def __init__(self, url: str, count: int) -> None:
        self.url = url
        self.count = count
        self.samples: list[tuple[float, float]] = []
        self.running = False
        self.tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        self.running = True
        for index in range(self.count):
            ws = await connect(self.url)
            reply = await call(ws, "register_user", user=[{
                "login": f"sender{index}-{uuid.uuid4().hex[:6]}", "password": "bench-password"}])
            data = reply["data"]
            assert isinstance(data, dict)
            cred = {key: data["user"][0][key] for key in ("uuid", "auth_id")}
            reply = await call(ws, "add_flow", user=[cred], flow=[{
                "type": "group", "title": "bench", "info": "", "users": []}])
            data = reply["data"]
            assert isinstance(data, dict)
            flow = data["flow"][0]["uuid"]
            self.tasks.append(asyncio.create_task(self._loop(ws, cred, flow)))

    async def _loop(self, ws: websockets.ClientConnection, cred: dict[str, str], flow: str) -> None:
        counter = itertools.count(1)
        while self.running:
            number = next(counter)
            text = frame("send_message", {"user": [cred], "flow": [{"uuid": flow}], "message": [
                {"client_id": number, "text": f"message {number}"}]})
            start = time.perf_counter()
            await ws.send(text)
            reply = json.loads(await answer(ws))
            if reply["errors"]["code"] != 200:
                raise RuntimeError(f"send failed: {reply['errors']}")
            self.samples.append((start, (time.perf_counter() - start) * 1000))

    async def stop(self) -> None:
        self.running = False
        await asyncio.gather(*self.tasks)


async def storm(session: aiohttp.ClientSession, base: str, token: str, picture: bytes
                ) -> tuple[float, float, list[int]]:
    """Upload, then 12 thumbnails at once: (start, end, statuses)."""
    async with session.post(f"{base}/_matrix/media/v3/upload", data=picture, headers={
            "Authorization": f"Bearer {token}", "Content-Type": "image/png"}) as response:
        one = str((await response.json())["content_uri"]).removeprefix("mxc://")

    async def get(width: int) -> int:
        query = f"width={width}&height=100&method=scale"
        if width % 2:
            url, headers = f"{base}/_matrix/client/v1/media/thumbnail/{one}?{query}", {
                "Authorization": f"Bearer {token}"}
        else:
            url, headers = f"{base}/_matrix/media/v3/thumbnail/{one}?{query}", {}
        async with session.get(url, headers=headers) as reply:
            await reply.read()
            return reply.status

    start = time.perf_counter()
    statuses = await asyncio.gather(*(get(width) for width in range(100, 112)))
    return start, time.perf_counter(), list(statuses)


def figures(samples: list[float]) -> str:
    if not samples:
        return "no sends"
    return (f"p50 {statistics.median(samples):6.2f} ms, p99 {percentile(samples, 0.99):6.2f} ms"
            f" ({len(samples)} sends)")


async def run(options: argparse.Namespace) -> None:
    if options.root:
        support.ROOT = Path(options.root).resolve()
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        env = {**ENV, "MORELIA_DATABASE_URI": f"sqlite:{directory / 'bench.db'}"}
        with support.ServerProcess(directory, env=env, args=UVICORN_ARGS) as server:
            assert server.process is not None
            sampler = Sampler(server.process.pid)
            sampler.start()
            user = RawUser(server.http)
            senders = Senders(server.url, options.senders)
            timeout = aiohttp.ClientTimeout(total=options.timeout)
            try:
                await user.register(f"bench-{uuid.uuid4().hex[:6]}")
                await senders.start()
                await asyncio.sleep(1.0)  # warm up
                senders.samples.clear()
                await asyncio.sleep(options.idle_seconds)
                idle = [ms for _, ms in senders.samples]
                senders.samples.clear()
                windows: list[tuple[float, float]] = []
                statuses: list[int] = []
                async with aiohttp.ClientSession(timeout=timeout) as session:
                    for round_ in range(options.rounds):
                        begin, end, got = await storm(session, server.http, user.token,
                                                      zero_png(7900 - round_))
                        windows.append((begin, end))
                        statuses += got
                await senders.stop()
                during = [ms for start, ms in senders.samples
                          if any(begin <= start <= end for begin, end in windows)]
                thumbs = sum(1 for _ in (directory / "media" / "thumbs").rglob("*-*"))
                server_hwm = status_kib(server.process.pid, "VmHWM")
            finally:
                sampler.halt.set()
                await user.close()
    print(f"{options.senders} MTP senders; {options.rounds} storms of 12 thumbnail requests "
          f"(7900x7900 zero PNG, widths 100-111)")
    print(f"send latency idle          {figures(idle)}")
    print(f"send latency during storms {figures(during)}")
    if idle and during:
        print(f"p99 during / idle          {percentile(during, 0.99) / percentile(idle, 0.99):.2f}"
              f" (target <= 2)")
    seconds = [end - begin for begin, end in windows]
    print(f"storms took                {', '.join(f'{s:.2f} s' for s in seconds)}; "
          f"answers {sorted(set(statuses))}; thumbnail files kept {thumbs}")
    print(f"server peak RSS            {server_hwm / 1024:.0f} MiB (VmHWM; target < 300 MiB)")
    print(f"thumbnail workers peak RSS {sampler.workers_peak / 1024:.0f} MiB (sampled)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--senders", type=int, default=4)
    parser.add_argument("--idle-seconds", type=float, default=5.0)
    parser.add_argument("--timeout", type=float, default=600.0,
                        help="seconds a thumbnail request may take")
    parser.add_argument("--root", default="", help="the server tree to run (default: this)")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
