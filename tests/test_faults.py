"""Faults against real services: Redis restarted under two server processes, PostgreSQL
stopped and started under a running server. Each test starts its own throwaway Redis or
PostgreSQL on a free loopback port, so the shared ones are never disturbed."""

from __future__ import annotations

import asyncio
import contextlib
import glob
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import (
    POSTGRES_URI,
    Client,
    ServerProcess,
    fence,
    free_port,
    postgres_database,
    pushes_through,
)

pytestmark = pytest.mark.anyio

REDIS_SERVER = shutil.which("redis-server")
PG_BIN = sorted(glob.glob("/usr/lib/postgresql/*/bin"))


class RedisServer:
    """A throwaway redis-server on a free loopback port."""

    def __init__(self) -> None:
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def uri(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        assert REDIS_SERVER is not None
        self.process = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        import redis

        client = redis.Redis(host="127.0.0.1", port=self.port, socket_connect_timeout=0.5)
        deadline = time.monotonic() + 10
        try:
            while True:
                with contextlib.suppress(redis.ConnectionError):
                    if client.ping():
                        return
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.05)
        finally:
            client.close()

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None


@contextlib.contextmanager
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _as_postgres(*args: str) -> None:
    subprocess.run(["runuser", "-u", "postgres", "--", *args], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)


class PostgresCluster:
    """A throwaway PostgreSQL cluster (initdb in a temporary directory) on a free port."""

    def __init__(self) -> None:
        self.port = free_port()
        self.directory = Path(tempfile.mkdtemp(prefix="morelia-pg-"))
        shutil.chown(self.directory, "postgres", "postgres")
        self.data = self.directory / "data"
        self.bin = PG_BIN[-1]
        _as_postgres(f"{self.bin}/initdb", "-D", str(self.data), "-U", "root", "-A", "trust",
                     "-E", "UTF8", "--no-sync")

    @property
    def uri(self) -> str:
        return f"postgres://root@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        options = (f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 "
                   "-c fsync=off -c full_page_writes=off")
        _as_postgres(f"{self.bin}/pg_ctl", "-D", str(self.data), "-o", options, "-l",
                     str(self.directory / "log"), "-w", "-t", "30", "start")

    def stop(self) -> None:
        _as_postgres(f"{self.bin}/pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def remove(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)


@contextlib.contextmanager
def postgres_cluster() -> Iterator[PostgresCluster]:
    cluster = PostgresCluster()
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.remove()


async def member(url: str, login: str) -> Client:
    client = await Client.connect(url)
    await client.register(login, push=True)
    return client


async def until(check: Any, timeout: float) -> Any:
    """Call the async `check` until it returns something true, for at most `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result or time.monotonic() > deadline:
            return result
        await asyncio.sleep(0.05)


@pytest.mark.redis
@pytest.mark.postgres
@pytest.mark.skipif(not (POSTGRES_URI and REDIS_SERVER), reason="needs PostgreSQL and Redis")
async def test_redis_restart_loses_nothing_and_repeats_nothing(tmp_path: Path) -> None:
    with redis_server() as redis, postgres_database() as database:
        env = {"MORELIA_DATABASE_URI": database, "MORELIA_BROKER_URI": redis.uri,
               # A long poll, so only the reconnect's catch-up can deliver in time.
               "MORELIA_BROKER_CHECK_INTERVAL": "60"}
        with ServerProcess(tmp_path, env=env) as first, \
                ServerProcess(tmp_path, env=env) as second:
            alice = await member(first.url, "alice")
            bob = await member(second.url, "bob")
            try:
                flow = await alice.group("faults", users=[bob.uuid])
                await alice.send(flow, "before", client_id=1)
                [pushes] = await fence(alice, bob, flow=flow)
                texts = [(p["data"].get("message") or [{}])[0].get("text") for p in pushes]
                assert texts == [None, "before"]

                redis.stop()
                for number in range(5):  # committed while no hint can travel
                    reply = await alice.send(flow, f"during {number}", client_id=10 + number)
                    assert reply["errors"]["code"] == 200
                last = reply["data"]["message"][0]["uuid"]

                async def both_retrying() -> bool:  # a reconnect attempt failed on each
                    return all("redis broker connection attempt" in server.log()
                               for server in (first, second))

                assert await until(both_retrying, 10), "no reconnect attempt failed"
                redis.start()  # same port
                started = time.monotonic()

                pushes = await pushes_through(bob, last, timeout=15)
                assert time.monotonic() - started < 12
                await alice.send(flow, "after", client_id=99)
                [later] = await fence(alice, bob, flow=flow)
                texts = [p["data"]["message"][0]["text"] for p in pushes + later]
                assert texts == [f"during {n}" for n in range(5)] + ["after"]
            finally:
                await alice.close()
                await bob.close()
            for process in (first, second):
                log = process.log()
                assert "redis broker lost" in log
                assert log.count("redis broker connected") >= 2
                assert "Traceback" not in log


@pytest.mark.postgres
@pytest.mark.skipif(not PG_BIN or os.geteuid() != 0 or not shutil.which("runuser"),
                    reason="needs PostgreSQL binaries and root (to run them as postgres)")
async def test_postgres_outage_gives_503_then_service_resumes(tmp_path: Path) -> None:
    with postgres_cluster() as cluster:
        env = {"MORELIA_DATABASE_URI": cluster.uri, "MORELIA_BROKER_URI": cluster.uri,
               "MORELIA_BROKER_CHANNEL": f"t_{uuid.uuid4().hex[:8]}",
               "MORELIA_BROKER_CHECK_INTERVAL": "1", "MORELIA_SECURITY_TOKEN_CACHE_SECONDS": "0"}
        with ServerProcess(tmp_path, env=env) as server:
            alice = await member(server.url, "alice")
            bob = await member(server.url, "bob")
            try:
                flow = await alice.group("outage", users=[bob.uuid])
                assert len(await pushes_through(bob, flow)) == 1  # flow_created
                cluster.stop()
                for request in (lambda: alice.send(flow, "lost", client_id=2),
                                lambda: alice.call("all_messages", flow=[{"uuid": flow}]),
                                lambda: bob.call("all_flow")):
                    started = time.monotonic()
                    reply = await request()
                    assert time.monotonic() - started < 6
                    assert reply["errors"]["code"] == 503, reply
                    assert reply["errors"]["status"] == "Service Unavailable"
                assert server.process is not None and server.process.poll() is None

                cluster.start()

                async def sent() -> dict[str, Any] | None:
                    reply = await alice.send(flow, "back", client_id=3)
                    return reply if reply["errors"]["code"] == 200 else None

                reply = await until(sent, 20)
                assert reply is not None, "the server did not serve again"
                history = await bob.call("all_messages", flow=[{"uuid": flow}])
                assert [m["text"] for m in history["data"]["message"]] == ["back"]
                [pushes] = await fence(alice, bob, flow=flow)
                assert [p["data"]["message"][0]["text"] for p in pushes] == ["back"]
            finally:
                await alice.close()
                await bob.close()
            log = server.log()
            assert "postgres broker lost" in log and "Traceback" not in log
