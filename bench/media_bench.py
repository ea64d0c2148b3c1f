"""The media store: upload and download throughput, thumbnail latency, and whether MTP's
send_message without files got slower when the store arrived.

    python bench/media_bench.py [--files 8] [--size-mib 16] [--clients 4]
    python bench/media_bench.py --compare DIR [--rounds 4] [--seconds 3]

Starts the server (one process, SQLite in a temporary directory) on a free loopback port and
registers one Matrix user over raw HTTP (aiohttp). Uploads `--files` files of `--size-mib`
MiB of random bytes (no two alike, so nothing is deduplicated) with `--clients` uploads at
once (`POST /_matrix/media/v3/upload`), then downloads every file from each client
(`GET /_matrix/client/v1/media/download/...`): MiB/s of bytes the server took in or sent,
over wall-clock time. Thumbnails of a 2048×1536 JPEG of about 3 MiB (noise, as badly
compressible as a photo): the first request of each of 20 sizes (made with Pillow), then 200
requests of sizes already made (served from disk), one at a time: latency p50/p99.

`--compare DIR` drives MTP `send_message` (16 connections, text only, as mtp_bench does)
against this tree and the tree in DIR (e.g. `git archive <commit> | tar -x -C DIR`),
alternating, `--rounds` times each, and prints each round's requests/s and the server
process's CPU time per message (steadier than requests/s on a shared machine), and medians.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import io
import itertools
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import tests.support as support
from bench.matrix_bench import RawUser, cpu_seconds, percentile
from bench.mtp_bench import call, connect, drive
from tests.support import frame

UVICORN_ARGS = ["--log-level", "warning", "--no-access-log"]
QUIET = {"MORELIA_LOGGING_LEVEL": "WARNING"}
MIB = 1024 * 1024


def photo() -> bytes:
    size = (2048, 1536)
    noise = Image.frombytes("RGB", size, random.Random(7).randbytes(size[0] * size[1] * 3))
    out = io.BytesIO()
    noise.save(out, "JPEG", quality=95)
    return out.getvalue()


async def upload(session: aiohttp.ClientSession, base: str, token: str, data: bytes,
                 kind: str) -> str:
    async with session.post(f"{base}/_matrix/media/v3/upload", data=data, headers={
            "Authorization": f"Bearer {token}", "Content-Type": kind}) as response:
        if response.status != 200:
            raise RuntimeError(f"upload: {response.status} {await response.text()}")
        return str((await response.json())["content_uri"]).removeprefix("mxc://")


async def fetch(session: aiohttp.ClientSession, url: str, token: str) -> int:
    size = 0
    async with session.get(url, headers={"Authorization": f"Bearer {token}"}) as response:
        if response.status != 200:
            raise RuntimeError(f"GET {url}: {response.status} {await response.text()}")
        async for chunk in response.content.iter_chunked(1 << 20):
            size += len(chunk)
    return size


async def transfer(base: str, token: str, files: int, size: int, clients: int
                   ) -> tuple[float, float]:
    """(upload MiB/s, download MiB/s) with `clients` requests at once."""
    blobs = [os.urandom(size) for _ in range(files)]
    sessions = [aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1))
                for _ in range(clients)]
    try:
        queue = list(blobs)
        uris: list[str] = []

        async def uploader(session: aiohttp.ClientSession) -> None:
            while queue:
                uris.append(await upload(session, base, token, queue.pop(),
                                         "application/octet-stream"))

        start = time.perf_counter()
        await asyncio.gather(*(uploader(session) for session in sessions))
        up = files * size / MIB / (time.perf_counter() - start)

        async def downloader(session: aiohttp.ClientSession) -> int:
            return sum([await fetch(session, f"{base}/_matrix/client/v1/media/download/{uri}",
                                    token) for uri in uris])

        start = time.perf_counter()
        got = sum(await asyncio.gather(*(downloader(session) for session in sessions)))
        down = got / MIB / (time.perf_counter() - start)
        assert got == files * size * clients
        return up, down
    finally:
        for session in sessions:
            await session.close()


async def thumbnails(base: str, token: str) -> tuple[list[float], list[float], int]:
    """Latencies (ms) of first and repeated thumbnail requests, and the photo's size."""
    picture = photo()
    async with aiohttp.ClientSession() as session:
        uri = await upload(session, base, token, picture, "image/jpeg")
        url = f"{base}/_matrix/client/v1/media/thumbnail/{uri}"
        sizes = [(32 + 16 * index, 24 + 12 * index) for index in range(20)]
        cold: list[float] = []
        for number, (width, height) in enumerate(sizes):
            method = "crop" if number % 2 else "scale"
            start = time.perf_counter()
            await fetch(session, f"{url}?width={width}&height={height}&method={method}", token)
            cold.append((time.perf_counter() - start) * 1000)
        warm: list[float] = []
        for number in range(200):
            width, height = sizes[number % len(sizes)]
            method = "crop" if number % len(sizes) % 2 else "scale"
            start = time.perf_counter()
            await fetch(session, f"{url}?width={width}&height={height}&method={method}", token)
            warm.append((time.perf_counter() - start) * 1000)
    return cold, warm, len(picture)


async def run_media(options: argparse.Namespace) -> None:
    size = options.size_mib * MIB
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        env = {"MORELIA_DATABASE_URI": f"sqlite:{directory / 'bench.db'}", **QUIET,
               "MORELIA_MEDIA_MAX_UPLOAD_SIZE": str(max(size, 8 * MIB) + MIB)}
        with support.ServerProcess(directory, env=env, args=UVICORN_ARGS) as server:
            user = RawUser(server.http)
            try:
                await user.register(f"bench-{uuid.uuid4().hex[:6]}")
                up, down = await transfer(server.http, user.token, options.files, size,
                                          options.clients)
                cold, warm, photo_size = await thumbnails(server.http, user.token)
            finally:
                await user.close()
    print(f"{options.files} files of {options.size_mib} MiB, {options.clients} at once")
    print(f"upload      {up:8.1f} MiB/s")
    print(f"download    {down:8.1f} MiB/s ({options.clients} clients x every file)")
    print(f"thumbnail of a {photo_size / MIB:.1f} MiB 2048x1536 JPEG, first of each size: "
          f"p50 {statistics.median(cold):.1f} ms, p99 {percentile(cold, 0.99):.1f} ms")
    print(f"thumbnail already made: p50 {statistics.median(warm):.2f} ms, "
          f"p99 {percentile(warm, 0.99):.2f} ms")


async def send_rate(root: Path, seconds: float) -> tuple[float, float]:
    """MTP send_message (text only, 16 connections, each its own group) against the server
    code under `root`: requests/s, and the server's CPU time per message in µs."""
    kept = support.ROOT
    support.ROOT = root  # ServerProcess runs uvicorn with --app-dir ROOT
    try:
        with tempfile.TemporaryDirectory() as tmp, support.ServerProcess(
                Path(tmp), args=UVICORN_ARGS,
                env={**QUIET, "MORELIA_SERVER_RATE_LIMIT": "1000000",
                     "MORELIA_SERVER_RATE_BURST": "1000000"}) as server:
            assert server.process is not None
            sockets = [await connect(server.url) for _ in range(16)]
            frames: list[Callable[[int], str]] = []
            for index, ws in enumerate(sockets):
                reply: Any = await call(ws, "register_user", user=[{
                    "login": f"bench{index}", "password": "bench-password"}])
                cred = {key: reply["data"]["user"][0][key] for key in ("uuid", "auth_id")}
                reply = await call(ws, "add_flow", user=[cred], flow=[{
                    "type": "group", "title": "bench", "info": "", "users": []}])
                flow = reply["data"]["flow"][0]["uuid"]
                frames.append(functools.partial(_send_frame, cred, flow))
            counter = itertools.count(1)
            await drive(sockets, lambda index: frames[index](next(counter)), 1.0)
            cpu = cpu_seconds(server.process.pid)
            before = next(counter)
            rate = await drive(sockets, lambda index: frames[index](next(counter)), seconds)
            cpu = cpu_seconds(server.process.pid) - cpu
            sent = next(counter) - before
            for ws in sockets:
                await ws.close()
    finally:
        support.ROOT = kept
    return rate, cpu / sent * 1e6


def _send_frame(cred: dict[str, str], flow: str, number: int) -> str:
    return frame("send_message", {"user": [cred], "flow": [{"uuid": flow}], "message": [
        {"client_id": number, "text": f"message {number}"}]})


async def compare(other: Path, rounds: int, seconds: float) -> None:
    here = Path(__file__).resolve().parent.parent
    rates: dict[str, list[tuple[float, float]]] = {"this tree": [], str(other): []}
    for number in range(rounds):
        order = [(str(other), other), ("this tree", here)]
        if number % 2:
            order.reverse()
        for name, root in order:
            rate, cpu = await send_rate(root, seconds)
            rates[name].append((rate, cpu))
            print(f"round {number + 1}: {name:30} send_message {rate:7.0f} req/s, "
                  f"server CPU {cpu:5.0f} µs/message", flush=True)
    for name, values in rates.items():
        print(f"median {name:30} {statistics.median(v[0] for v in values):7.0f} req/s, "
              f"{statistics.median(v[1] for v in values):5.0f} µs CPU/message")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=8)
    parser.add_argument("--size-mib", type=int, default=16)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--compare", type=Path)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=3.0)
    options = parser.parse_args()
    if options.compare is not None:
        asyncio.run(compare(options.compare.resolve(), options.rounds, options.seconds))
    else:
        asyncio.run(run_media(options))


if __name__ == "__main__":
    main()
