"""SIGTERM: the server stops within seconds, answering what it has read."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import websockets

from mod.hub import Hub
from tests.support import Client, ServerProcess, database_uri, frame, http_client, unique_login

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

SYNC = "/_matrix/client/v3/sync"


# Connections that each send 300 messages (within the rate limit's burst) before the stop.
CLIENTS = 8


@pytest.fixture
def stoppable(db_uri: str, tmp_path: Path, request: pytest.FixtureRequest
              ) -> Iterator[ServerProcess]:
    env = {"MORELIA_DATABASE_URI": db_uri, "MORELIA_MATRIX_SYNC_TIMEOUT_MAX": "60"}
    ws = getattr(request, "param", "auto")  # the original's command line: --ws websockets
    with ServerProcess(tmp_path, env=env, args=["--ws", ws]) as process:
        yield process


def terminate(server: ServerProcess) -> float:
    assert server.process is not None
    server.process.send_signal(signal.SIGTERM)
    return time.monotonic()


async def exited(server: ServerProcess, timeout: float) -> float:
    """Seconds until the process ended (fails past `timeout`)."""
    assert server.process is not None
    started = time.monotonic()
    while server.process.poll() is None:
        assert time.monotonic() - started < timeout, f"still running:\n{server.log()}"
        await asyncio.sleep(0.05)
    # uvicorn re-raises the signal once it has shut down
    assert server.process.returncode in (0, -signal.SIGTERM), server.log()
    return time.monotonic() - started


async def test_sigterm_ends_a_waiting_sync_with_200_and_stops_within_seconds(
        stoppable: ServerProcess) -> None:
    async with http_client(base_url=stoppable.http, timeout=30) as http:
        login = unique_login("mx")
        reply = await http.post("/_matrix/client/v3/register", json={
            "username": login, "password": "matrix-secret-1",
            "auth": {"type": "m.login.dummy"}})
        assert reply.status_code == 200, reply.text
        token = reply.json()["access_token"]
        idle = await Client.connect(stoppable.url)
        sync = asyncio.ensure_future(http.get(SYNC, params={"since": "s0", "timeout": "60000"},
                                              headers={"Authorization": f"Bearer {token}"}))
        await stoppable.until_long_polls()
        assert not sync.done()
        signalled = terminate(stoppable)
        answer = await asyncio.wait_for(sync, 10)
        assert answer.status_code == 200, answer.text
        assert answer.json()["next_batch"].startswith("s")
        assert time.monotonic() - signalled < 3
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await idle.receive(5)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1012
    assert await exited(stoppable, 5) < 5
    log = stoppable.log()
    assert "Traceback" not in log and "ERROR" not in log, log


def committed_client_ids(uri: str) -> set[int]:
    if uri.startswith("sqlite:"):
        with sqlite3.connect(uri.removeprefix("sqlite:")) as db:
            return {row[0] for row in db.execute("SELECT client_id FROM messages")}
    import psycopg

    with psycopg.connect(uri.replace("postgres://", "postgresql://", 1)) as db:
        return {row[0] for row in db.execute("SELECT client_id FROM messages")}


async def drain(client: Client) -> tuple[list[dict[str, Any]], int | None]:
    """Every response until the server closes; and the close code."""
    answers: list[dict[str, Any]] = []
    try:
        while True:
            answers.append(await client.response(10))
    except websockets.ConnectionClosed as closed:
        return answers, closed.rcvd.code if closed.rcvd else None


@pytest.mark.parametrize("stoppable", ["auto", "websockets"], indirect=True)
async def test_sigterm_answers_every_mtp_request_it_read_then_closes_with_1012(
        stoppable: ServerProcess, db_uri: str) -> None:
    clients = []
    flows = []
    for _ in range(CLIENTS):
        client = await Client.connect(stoppable.url)
        await client.register(unique_login())
        flows.append(await client.group())
        clients.append(client)
    per_client = 300
    # Built before any is sent, so they go out faster than the server commits them.
    frames = [[frame("send_message", {
        "user": [client.cred], "flow": [{"uuid": flow}],
        "message": [{"client_id": client_id, "text": f"m{client_id}"}]})
        for client_id in range(index * per_client + 1, (index + 1) * per_client + 1)]
        for index, (client, flow) in enumerate(zip(clients, flows, strict=True))]
    for client, sends in zip(clients, frames, strict=True):
        for sent in sends:
            await client.ws.send(sent)
    # Once some are answered the server is busy with the rest: stop it now.
    await clients[0].response(10)
    terminate(stoppable)
    results = await asyncio.gather(*(drain(client) for client in clients))
    assert await exited(stoppable, 8) < 8

    answered: set[int] = set()
    for answers, code in results:
        assert code == 1012, (code, len(answers))
        ids = [a["data"]["message"][0]["client_id"] for a in answers]
        assert ids == sorted(ids)  # in order
        assert all(a["errors"]["code"] == 200 for a in answers)
        answered.update(ids)
    answered.add(1)  # the first answer, read before the signal
    committed = committed_client_ids(db_uri)
    assert committed <= answered, sorted(committed - answered)[:10]
    assert len(committed) < CLIENTS * per_client, "all were handled before the stop: no test"
    log = stoppable.log()
    assert "Traceback" not in log, log


async def test_the_hub_wakes_waiters_and_later_waits_return_at_once(tmp_path: Path) -> None:
    from mod.config.validator import Database
    from mod.db import dbhandler
    from mod.db.engine import Engine

    with database_uri("sqlite", tmp_path) as uri:
        engine = Engine(Database(uri=uri))
        engine.start(asyncio.get_running_loop())
        try:
            await engine.write(dbhandler.create_tables)
            hub = Hub(engine)
            await hub.start()

            class Stream:
                user_uuid = "u1"
                woken = 0

                def deliver(self, change: object) -> None: ...

                def revoked(self, revocation: object) -> None: ...

                def wake(self) -> None:
                    self.woken += 1

            stream = Stream()
            hub.register(stream)
            waiting = asyncio.ensure_future(hub.wait("u2", hub.position, 60))
            await asyncio.sleep(0)
            started = time.monotonic()
            hub.stopping()
            await asyncio.wait_for(waiting, 2)
            assert stream.woken == 1
            await asyncio.wait_for(hub.wait("u2", hub.position, 60), 1)
            assert time.monotonic() - started < 1
            await hub.stop()
        finally:
            engine.stop()
