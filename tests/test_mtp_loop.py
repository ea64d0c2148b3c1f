"""The event loop is never blocked: slow work on some connections does not delay ping_pong on
another (DESIGN.md: no SQLObject call, no password hash on the loop)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Iterator
from typing import Any

import pytest

from tests.support import (
    DATABASE_KINDS,
    REAL_PASSWORDS,
    SEED_PASSWORD,
    Client,
    ServerProcess,
    database_uri,
    expect_reply,
    frame,
    seed_users,
    unique_login,
    write_database,
)

pytestmark = [pytest.mark.anyio, pytest.mark.serial]

MESSAGES = 10_000
TEXT = "lorem ipsum dolor sit amet " * 8


def percentile(samples: list[float], share: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))]


async def ping_while(client: Client, work: Awaitable[Any], every: float = 0.005
                     ) -> tuple[list[float], float, Any]:
    """Ping on `client` every `every` seconds while `work` runs, without waiting for the
    answers (so the pings sample time evenly, and a stalled loop delays every ping sent while
    it stalls); return the pings' round trips (seconds), how long the work took, and its
    result."""
    sent: list[float] = []
    rtts: list[float] = []

    async def receive() -> None:
        while len(rtts) < len(sent) or not task.done():
            if len(rtts) == len(sent):
                await asyncio.sleep(every / 2)
                continue
            expect_reply(await client.response(), "ping_pong", 200)
            rtts.append(time.perf_counter() - sent[len(rtts)])

    ping = frame("ping_pong", {"user": [client.cred]})
    task = asyncio.ensure_future(work)
    receiver = asyncio.ensure_future(receive())
    started = time.perf_counter()
    while not task.done() or len(sent) < 20:
        sent.append(time.perf_counter())
        await client.ws.send(ping)
        await asyncio.sleep(every)
    busy = time.perf_counter() - started
    await receiver
    return rtts, busy, await task


@pytest.fixture(scope="module", params=DATABASE_KINDS)
def big_flow(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
             ) -> Iterator[tuple[ServerProcess, list[str]]]:
    """A server whose database holds a flow of MESSAGES messages among seeded users."""
    from mod.db import dbhandler
    from mod.lib import new_uuid

    directory = tmp_path_factory.mktemp("loop")
    with database_uri(request.param, directory) as uri:
        logins = seed_users(uri, 12)

        def fill(conn: Any) -> None:
            users = [dbhandler.user_by_login(conn, login) for login in logins]
            members = [user["uuid"] for user in users if user is not None]
            flow = new_uuid()
            stamp = int(time.time()) - 3600
            dbhandler.create_flow(conn, flow, "group", "big", "", members[0], members, stamp)
            for index in range(MESSAGES):
                dbhandler.insert_message(conn, new_uuid(), flow, members[index % len(members)],
                                         index, {"text": f"{index} {TEXT}"}, stamp + index // 10)

        write_database(uri, fill)
        # The pinger pings back to back, faster than the default rate limit allows.
        env = {"MORELIA_DATABASE_URI": uri, "MORELIA_SERVER_RATE_LIMIT": "100000",
               "MORELIA_SERVER_RATE_BURST": "100000", **REAL_PASSWORDS}
        with ServerProcess(directory, env=env) as process:
            yield process, logins


async def connect_as(server: ServerProcess, login: str) -> Client:
    # No permessage-deflate: uvicorn would compress each large frame on its event loop, and
    # this client would inflate it on its own; this test is about the server's query work.
    client = await Client.connect(server.url, compression=None)
    reply = await client.call("authentication", auth=False,
                              user=[{"login": login, "password": SEED_PASSWORD}])
    user = expect_reply(reply, "authentication", 200)["data"]["user"][0]
    client.uuid, client.auth_id, client.login = user["uuid"], user["auth_id"], login
    return client


async def test_password_hashing_does_not_block_other_connections(
        big_flow: tuple[ServerProcess, list[str]]) -> None:
    server, logins = big_flow
    pinger = await connect_as(server, logins[0])
    registering = [await Client.connect(server.url) for _ in range(10)]
    try:
        # One registration alone: what a hash costs on this machine.
        started = time.perf_counter()
        await registering[0].register(unique_login("solo"))
        one_hash = time.perf_counter() - started

        async def register_all() -> None:
            await asyncio.gather(*(client.register(unique_login("busy"))
                                   for client in registering))

        rtts, busy, _ = await ping_while(pinger, register_all())
        median, p99 = percentile(rtts, 0.5), percentile(rtts, 0.99)
        report = (f"one registration {one_hash * 1000:.0f} ms, ten took {busy * 1000:.0f} ms; "
                  f"ping median {median * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms, "
                  f"n={len(rtts)}")
        print(report)
        # Hashing on the loop would stall it a whole hash at a time: the evenly sent pings
        # would wait about one_hash / 2 in the median, and p99 would reach one_hash.
        assert busy > 3 * one_hash, report
        assert median < one_hash / 10, report
        assert p99 < one_hash / 3, report
    finally:
        for client in (pinger, *registering):
            await client.close()


async def test_a_large_get_update_does_not_block_other_connections(
        big_flow: tuple[ServerProcess, list[str]]) -> None:
    server, logins = big_flow
    pinger = await connect_as(server, logins[1])
    readers = [await connect_as(server, login) for login in logins[2:10]]
    try:
        started = time.perf_counter()
        reply = await readers[0].call("get_update", time=0)
        one_read = time.perf_counter() - started
        assert len(expect_reply(reply, "get_update", 200)["data"]["message"]) == MESSAGES

        async def read(reader: Client) -> str:
            # Not parsed here: parsing megabytes of JSON would stall this process's own loop,
            # and with it the pinger's measurements.
            await reader.ws.send(frame("get_update", {"user": [reader.cred], "time": 0}))
            return str(await asyncio.wait_for(reader.ws.recv(), 30))

        async def read_all() -> list[str]:
            return list(await asyncio.gather(*(read(reader) for reader in readers)))

        rtts, busy, replies = await ping_while(pinger, read_all())
        for text in replies:
            assert text.startswith('{"type":"get_update"') and '"code":200' in text[-300:]
            assert text.count('"from_flow"') == MESSAGES
        median, p90, p99 = (percentile(rtts, share) for share in (0.5, 0.9, 0.99))
        report = (f"one get_update of {MESSAGES} messages {one_read * 1000:.0f} ms, eight "
                  f"took {busy * 1000:.0f} ms; ping median {median * 1000:.1f} ms, p90 "
                  f"{p90 * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms, n={len(rtts)}")
        print(report)
        # Had the loop run the queries, it would stall for a whole get_update at a time: the
        # evenly sent pings would wait about one_read / 2 in the median, and p99 would come
        # near the whole work's duration. What is left is the CPU all the work shares.
        assert median < one_read / 4, report
        assert p90 < one_read / 2, report
        assert p99 < busy / 4, report
    finally:
        for client in (pinger, *readers):
            await client.close()

