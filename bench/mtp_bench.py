"""MTP throughput against a bare echo endpoint, both under the same uvicorn settings.

Starts Morelia Server (SQLite in a temporary directory) and bench/echo_app.py on free loopback
ports, drives each with the same number of concurrent websocket clients, each sending one
request and waiting for its answer, and prints requests per second and the ratio to echo:

    python bench/mtp_bench.py [--connections 16] [--seconds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import websockets

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support import ServerProcess, frame

UVICORN_ARGS = ["--log-level", "warning", "--no-access-log"]
NextFrame = Callable[[int], str]


async def connect(url: str) -> websockets.ClientConnection:
    return await websockets.connect(url, max_size=None, compression=None)


async def answer(ws: websockets.ClientConnection) -> str:
    """The next frame that is not a push."""
    while True:
        text = await ws.recv()
        assert isinstance(text, str)
        if '"push":true' not in text:
            return text


async def drive(sockets: list[websockets.ClientConnection], next_frame: NextFrame,
                seconds: float, check: Callable[[int, str], None] | None = None) -> float:
    """Closed loop on every socket for `seconds`; return completed requests per second."""
    done = 0
    deadline = time.perf_counter() + seconds

    async def loop(index: int, ws: websockets.ClientConnection) -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            await ws.send(next_frame(index))
            reply = await answer(ws)
            if check is not None:
                check(index, reply)
            done += 1

    start = time.perf_counter()
    await asyncio.gather(*(loop(i, ws) for i, ws in enumerate(sockets)))
    return done / (time.perf_counter() - start)


async def call(ws: websockets.ClientConnection, kind: str, **data: object) -> dict[str, object]:
    await ws.send(frame(kind, dict(data)))
    reply: dict[str, object] = json.loads(await answer(ws))
    return reply


async def bench_echo(url: str, connections: int, seconds: float) -> float:
    sockets = [await connect(url) for _ in range(connections)]
    ping = frame("ping_pong", {"user": [{"uuid": "1", "auth_id": "x"}]})
    await drive(sockets, lambda _: ping, 1.0)
    rate = await drive(sockets, lambda _: ping, seconds)
    for ws in sockets:
        await ws.close()
    return rate


async def bench_server(url: str, connections: int, seconds: float) -> dict[str, float]:
    sockets = [await connect(url) for _ in range(connections)]
    creds: list[dict[str, str]] = []
    for index, ws in enumerate(sockets):
        reply = await call(ws, "register_user",
                           user=[{"login": f"bench{index}", "password": "bench-password"}])
        user = reply["data"]["user"][0]  # type: ignore[index]
        creds.append({"uuid": user["uuid"], "auth_id": user["auth_id"]})
    flows = []
    for index, ws in enumerate(sockets):
        reply = await call(ws, "add_flow", user=[creds[index]],
                           flow=[{"type": "group", "title": f"bench {index}", "info": "",
                                  "users": []}])
        flows.append(reply["data"]["flow"][0]["uuid"])  # type: ignore[index]

    pings = [frame("ping_pong", {"user": [cred]}) for cred in creds]
    await drive(sockets, lambda i: pings[i], 1.0)
    results = {"ping_pong": await drive(sockets, lambda i: pings[i], seconds)}

    counter = [0] * connections
    acked: list[set[str]] = [set() for _ in range(connections)]

    def send_frame(index: int) -> str:
        counter[index] += 1
        return frame("send_message", {
            "user": [creds[index]], "flow": [{"uuid": flows[index]}],
            "message": [{"client_id": counter[index], "text": f"message {counter[index]}"}]})

    def record(index: int, text: str) -> None:
        reply = json.loads(text)
        assert reply["errors"]["code"] == 200, reply
        acked[index].add(reply["data"]["message"][0]["uuid"])

    results["send_message"] = await drive(sockets, send_frame, seconds, record)

    lost = duplicated = 0
    for index, ws in enumerate(sockets):
        stored: list[str] = []
        start = 0
        while True:
            reply = await call(ws, "all_messages", user=[creds[index]],
                               flow=[{"uuid": flows[index], "message_start": start,
                                      "message_end": start + 100}])
            page = reply["data"]["message"]  # type: ignore[index]
            stored.extend(message["uuid"] for message in page)
            start += 100
            if len(page) < 100:
                break
        lost += len(acked[index] - set(stored))
        duplicated += len(stored) - len(set(stored)) + len(set(stored) - acked[index])
    results["lost"] = lost
    results["duplicated"] = duplicated
    results["sent"] = sum(len(a) for a in acked)

    # A flow of exactly 1,000 messages, read as random 100-message pages.
    reader = sockets[0]
    reply = await call(reader, "add_flow", user=[creds[0]],
                       flow=[{"type": "group", "title": "history", "info": "",
                              "users": [c["uuid"] for c in creds[1:]]}])
    history = reply["data"]["flow"][0]["uuid"]  # type: ignore[index]
    for number in range(1000):
        await call(reader, "send_message", user=[creds[0]], flow=[{"uuid": history}],
                   message=[{"client_id": 10**9 + number, "text": f"history {number}"}])

    def page_frame(index: int) -> str:
        start = random.randrange(10) * 100
        return frame("all_messages", {"user": [creds[index]], "flow": [
            {"uuid": history, "message_start": start, "message_end": start + 100}]})

    def page_check(index: int, text: str) -> None:
        assert '"code":206' in text, text[:300]

    await drive(sockets, page_frame, 1.0, page_check)
    results["all_messages"] = await drive(sockets, page_frame, seconds, page_check)
    for ws in sockets:
        await ws.close()
    return results


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=5.0)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory)
        with ServerProcess(root, app="bench.echo_app:app", args=UVICORN_ARGS) as echo:
            echo_rate = await bench_echo(echo.url, options.connections, options.seconds)
        with ServerProcess(root, args=UVICORN_ARGS,
                           env={"MORELIA_LOGGING_LEVEL": "WARNING",
                                "MORELIA_SERVER_RATE_LIMIT": "1000000",
                                "MORELIA_SERVER_RATE_BURST": "1000000"}) as server:
            figures = await bench_server(server.url, options.connections, options.seconds)
    print(f"connections: {options.connections}, seconds per figure: {options.seconds}")
    print(f"echo ping_pong           {echo_rate:10.0f} req/s")
    for name, target in (("ping_pong", 0.30), ("send_message", 0.15), ("all_messages", 0.05)):
        rate = figures[name]
        ratio = rate / echo_rate
        unit = "pages/s" if name == "all_messages" else "req/s"
        verdict = "ok" if ratio >= target else "BELOW TARGET"
        print(f"{name:24} {rate:10.0f} {unit:8} {ratio:6.3f} of echo (target >= {target}) "
              f"{verdict}")
    print(f"send_message read-back: {int(figures['sent'])} acknowledged, "
          f"{int(figures['lost'])} lost, {int(figures['duplicated'])} duplicated")


if __name__ == "__main__":
    asyncio.run(main())
