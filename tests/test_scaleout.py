"""Several server processes on one PostgreSQL database deliver each other's changes.

Two `uvicorn server:app` processes on different ports (Redis broker, then the PostgreSQL
broker), `uvicorn --workers 2` and `manage.py runserver --workers 2`; and the warning for
several workers on the in-memory broker, which then falls back to polling the change log.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import (
    POSTGRES_URI,
    REDIS_URI,
    ROOT,
    Client,
    ServerProcess,
    fence,
    postgres_database,
)

pytestmark = [pytest.mark.anyio, pytest.mark.postgres, pytest.mark.slow]

needs_postgres = pytest.mark.skipif(not POSTGRES_URI, reason="MORELIA_TEST_POSTGRES_URI unset")
needs_redis = pytest.mark.skipif(not REDIS_URI, reason="MORELIA_TEST_REDIS_URI unset")


def broker_env(kind: str, database: str) -> dict[str, str]:
    """Settings for a server on `database` with a broker of `kind` on a channel of its own."""
    channel = f"morelia_test_{uuid.uuid4().hex[:12]}"
    uri = {"redis": REDIS_URI, "postgres": database, "memory": "memory://"}[kind]
    return {"MORELIA_DATABASE_URI": database, "MORELIA_BROKER_URI": uri,
            "MORELIA_BROKER_CHANNEL": channel, "MORELIA_BROKER_CHECK_INTERVAL": "2"}


def wait_for_log(process: ServerProcess, text: str, count: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while process.log().count(text) < count:
        assert time.monotonic() < deadline, process.log()
        time.sleep(0.05)


class ManageProcess(ServerProcess):
    """`manage.py runserver` in a subprocess."""

    def start(self, timeout: float = 20.0) -> ServerProcess:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, str(ROOT / "manage.py"), "runserver", "--host", "127.0.0.1",
                 "--port", str(self.port), *self.args],
                cwd=self.directory, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        return self


@contextlib.contextmanager
def two_servers(kind: str, directory: Path, extra: dict[str, str] | None = None
                ) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    with postgres_database() as database:
        env = {**broker_env(kind, database), **(extra or {})}
        with ServerProcess(directory, env=env) as first, \
                ServerProcess(directory, env=env) as second:
            yield first, second


async def member(url: str, login: str) -> Client:
    client = await Client.connect(url)
    await client.register(login, push=True)
    return client


async def exchange(sender_url: str, receiver_urls: list[str], count: int = 20) -> None:
    """Changes made through one process reach connections on others exactly once, in order."""
    tag = uuid.uuid4().hex[:6]
    alice = await member(sender_url, f"alice-{tag}")
    receivers = [await member(url, f"bob{n}-{tag}") for n, url in enumerate(receiver_urls)]
    outsider = await member(receiver_urls[-1], f"eve-{tag}")
    try:
        flow = await alice.group("across", users=[r.uuid for r in receivers])
        for number in range(count):
            reply = await alice.send(flow, f"m{number}", client_id=number + 1)
            assert reply["errors"]["code"] == 200
        expected = [None] + [f"m{n}" for n in range(count)]
        for pushes in await fence(alice, alice, *receivers, flow=flow):
            texts = [p["data"]["message"][0]["text"] if p["data"].get("message") else None
                     for p in pushes]
            assert texts == expected
            assert pushes[0]["data"]["flow"][0]["uuid"] == flow
        # ...and back the other way: a reply from the last receiver reaches the sender; the
        # outsider, on a receiver's process, gets nothing.
        await receivers[-1].send(flow, "reply", client_id=999)
        *members, to_outsider = await fence(alice, alice, *receivers, outsider)
        for pushes in members:
            assert [p["data"]["message"][0]["text"] for p in pushes] == ["reply"]
        assert to_outsider == []
    finally:
        for client in (alice, *receivers, outsider):
            await client.close()


@needs_postgres
@pytest.mark.parametrize("kind", [pytest.param("redis", marks=[needs_redis,
                                                                pytest.mark.redis]),
                                  "postgres"])
async def test_two_processes_deliver_each_others_changes(kind: str, tmp_path: Path) -> None:
    with two_servers(kind, tmp_path) as (first, second):
        await exchange(first.url, [second.url, first.url, second.url])
        await exchange(second.url, [first.url])
        for process in (first, second):
            assert "Traceback" not in process.log()


@needs_postgres
@needs_redis
@pytest.mark.redis
@pytest.mark.parametrize("launcher", ["uvicorn", "manage.py"])
async def test_two_workers(launcher: str, tmp_path: Path) -> None:
    with postgres_database() as database:
        cls = ServerProcess if launcher == "uvicorn" else ManageProcess
        process = cls(tmp_path, env=broker_env("redis", database), args=["--workers", "2"])
        with process:
            wait_for_log(process, "hub started", 2)
            senders = [await member(process.url, f"s{n}-{uuid.uuid4().hex[:6]}")
                       for n in range(6)]
            receivers = [await member(process.url, f"r{n}-{uuid.uuid4().hex[:6]}")
                         for n in range(6)]
            try:
                flow = await senders[0].group("workers", users=[c.uuid for c in
                                                                senders[1:] + receivers])
                for number, sender in enumerate(senders):
                    reply = await sender.send(flow, f"from {number}", client_id=number + 1)
                    assert reply["errors"]["code"] == 200
                for pushes in await fence(senders[0], *receivers, flow=flow):
                    texts = [p["data"]["message"][0]["text"] for p in pushes[1:]]
                    assert texts == [f"from {n}" for n in range(6)]
            finally:
                for client in senders + receivers:
                    await client.close()
            assert "Traceback" not in process.log()


async def test_workers_on_memory_broker_warn_and_poll(tmp_path: Path) -> None:
    env = {"MORELIA_DATABASE_URI": f"sqlite:{tmp_path / 'morelia.db'}"}
    with ServerProcess(tmp_path, env=env, args=["--workers", "2"]) as process:
        wait_for_log(process, "hub started", 2)
        assert process.log().count("worker processes share the in-memory broker") == 2
        tag = uuid.uuid4().hex[:6]
        clients = [await member(process.url, f"u{n}-{tag}") for n in range(6)]
        try:
            flow = await clients[0].group("sqlite", users=[c.uuid for c in clients[1:]])
            await clients[0].send(flow, "polled")
            for pushes in await fence(clients[0], *clients, flow=flow):
                assert [p["data"]["message"][0]["text"] for p in pushes[1:]] == ["polled"]
        finally:
            for client in clients:
                await client.close()
