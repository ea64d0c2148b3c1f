"""Helpers for end-to-end tests: a real server process, databases, and an MTP client."""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import json
import os
import random
import re
import socket
import ssl
import struct
import subprocess
import sys
import time
import uuid
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import websockets

from mod.protocol.mtp.api import Response
from tests import forkserver

if TYPE_CHECKING:
    import httpx

ROOT = Path(__file__).resolve().parent.parent
POSTGRES_URI = os.environ.get("MORELIA_TEST_POSTGRES_URI", "")
REDIS_URI = os.environ.get("MORELIA_TEST_REDIS_URI", "")
# Servers and manage.py under test hash passwords at argon2id's cheapest cost (a millisecond,
# not ~100 ms); the tests of what hashing costs ask for REAL_PASSWORDS.
CHEAP_PASSWORDS = {"MORELIA_SECURITY_PASSWORD_TIME_COST": "1",
                   "MORELIA_SECURITY_PASSWORD_MEMORY_KIB": "64"}
REAL_PASSWORDS = {"MORELIA_SECURITY_PASSWORD_TIME_COST": "3",
                  "MORELIA_SECURITY_PASSWORD_MEMORY_KIB": "65536"}


# Ports for test servers come from below the kernel's range for outgoing connections (32768
# and up on Linux): a port the kernel handed out as free could be taken by a client's
# connection before the server binds it.
_PORTS = range(20000, 32000)


def free_port() -> int:
    for _ in range(100):
        port = random.choice(_PORTS)
        with socket.socket() as sock, contextlib.suppress(OSError):
            sock.bind(("127.0.0.1", port))
            return port
    raise RuntimeError("no free loopback port between 20000 and 32000")


# Databases this test process made and has emptied, ready to be used again: making one costs
# PostgreSQL a tenth of a second and a checkpoint's writes, emptying one a hundredth.
_EMPTIED: list[str] = []
_MADE: list[str] = []


def _admin_uri(name: str = "") -> str:
    base = POSTGRES_URI.replace("postgres://", "postgresql://", 1)
    return f"{base.rpartition('/')[0]}/{name}" if name else base


@contextlib.contextmanager
def postgres_database() -> Iterator[str]:
    """An empty PostgreSQL database on the test server that nothing else uses meanwhile:
    made for the purpose, or one an earlier test of this process used, emptied (its
    connections ended, its schema dropped and made anew)."""
    import psycopg

    if _EMPTIED:
        name = _EMPTIED.pop()
    else:
        name = f"morelia_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(_admin_uri(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        if not _MADE:
            atexit.register(_drop_made)
        _MADE.append(name)
    head, _, _ = POSTGRES_URI.rpartition("/")
    try:
        yield f"{head}/{name}"
    finally:
        with psycopg.connect(_admin_uri(name), autocommit=True) as conn:
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                         " WHERE datname = current_database() AND pid <> pg_backend_pid()")
            conn.execute("DROP SCHEMA public CASCADE")
            conn.execute("CREATE SCHEMA public")
        _EMPTIED.append(name)


def _drop_made() -> None:
    import psycopg

    with contextlib.suppress(psycopg.Error), psycopg.connect(_admin_uri(),
                                                             autocommit=True) as conn:
        for name in _MADE:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@contextlib.contextmanager
def database_uri(kind: str, directory: Path) -> Iterator[str]:
    """A database URI of `kind` ("sqlite" or "postgres") that no other test uses."""
    if kind == "sqlite":
        yield f"sqlite:{directory / 'morelia.db'}"
    else:
        with postgres_database() as uri:
            yield uri


class ServerProcess:
    """`uvicorn server:app` in a subprocess on a free loopback port."""

    # Whether to fork it from `forkserver`'s helper (the test suite) or start it afresh (the
    # benchmarks, whose figures compare with servers started as users start them).
    forked: ClassVar[bool] = False

    def __init__(self, directory: Path, env: dict[str, str] | None = None,
                 port: int | None = None, args: list[str] | None = None,
                 app: str = "server:app") -> None:
        self.directory = directory
        self.app = app
        self.chosen = port is None  # a port of our choosing may be chosen again if taken
        self.port = port or free_port()
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1", **CHEAP_PASSWORDS, **(env or {})}
        self.env.pop("MORELIA_CONFIG", None) if "MORELIA_CONFIG" not in (env or {}) else None
        self.args = args or []
        self.log_path = directory / f"server-{self.port}.log"
        self.process: subprocess.Popen[bytes] | forkserver.Forked | None = None

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> ServerProcess:
        argv = [self.app, "--app-dir", str(ROOT), "--host", "127.0.0.1", "--port",
                str(self.port), *self.args]
        if self.forked and forkserver.forkable(self.args, self.env):
            self.process = forkserver.spawn(argv, self.env, self.directory, self.log_path)
        else:
            with self.log_path.open("ab") as log:  # the child keeps its own copy of the handle
                self.process = subprocess.Popen(
                    [sys.executable, "-m", "uvicorn", *argv], cwd=self.directory,
                    env=self.env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                if self.chosen and "address already in use" in self.log():
                    self.chosen = False  # once: another process took the port meanwhile
                    self.port = free_port()
                    self.log_path = self.directory / f"server-{self.port}.log"
                    return self.start(timeout)
                raise RuntimeError(f"server exited:\n{self.log()}")
            with contextlib.suppress(OSError), socket.create_connection(
                    ("127.0.0.1", self.port), timeout=0.2):
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"server did not start:\n{self.log()}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    async def until_long_polls(self, count: int = 1, timeout: float = 5.0) -> None:
        """Wait until `count` Matrix /sync requests wait for news (so an act now wakes them),
        as the server's /metrics counts them."""
        deadline = time.monotonic() + timeout
        async with http_client(base_url=self.http, timeout=timeout) as http:
            while True:
                found = re.search(r"^morelia_matrix_syncs_waiting (\S+)$",
                                  (await http.get("/metrics")).text, re.MULTILINE)
                if found and float(found.group(1)) >= count:
                    return
                assert time.monotonic() < deadline, "the long-poll never waited"
                await asyncio.sleep(0.01)

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


_TLS: ssl.SSLContext | None = None


def http_client(**options: Any) -> httpx.AsyncClient:
    """An httpx client for servers under test. They speak plain HTTP on loopback, so TLS is
    never used, but every client would build a TLS context of its own, loading the CA bundle
    (30 ms of CPU, 20 s over the suite): they share one."""
    import httpx

    global _TLS
    if _TLS is None:
        _TLS = ssl.create_default_context()
    return httpx.AsyncClient(verify=_TLS, **options)


def frame(kind: str, data: dict[str, Any] | None = None, version: str = "1.0",
          meta: dict[str, Any] | None = None) -> str:
    request: dict[str, Any] = {"type": kind, "data": data,
                               "jsonapi": {"version": version, "revision": "17"}}
    if meta is not None:
        request["meta"] = meta
    return json.dumps(request)


class Client:
    """An MTP client over one websocket. Push frames are kept apart in `pushes`."""

    def __init__(self, ws: websockets.ClientConnection) -> None:
        self.ws = ws
        self.pushes: list[dict[str, Any]] = []
        self.uuid = ""
        self.auth_id = ""
        self.login = ""

    @classmethod
    async def connect(cls, url: str, **kwargs: Any) -> Client:
        return cls(await websockets.connect(url, max_size=None, **kwargs))

    async def close(self) -> None:
        await self.ws.close()

    @property
    def cred(self) -> dict[str, str]:
        return {"uuid": self.uuid, "auth_id": self.auth_id}

    async def send_raw(self, text: str | bytes) -> dict[str, Any]:
        await self.ws.send(text)
        return await self.response()

    async def receive(self, timeout: float) -> dict[str, Any]:
        """The next frame, held to the server's response model (every frame must fit it)."""
        text = await asyncio.wait_for(self.ws.recv(), timeout)
        Response.model_validate_json(text)
        return json.loads(text)  # type: ignore[no-any-return]

    async def response(self, timeout: float = 10.0) -> dict[str, Any]:
        while True:
            reply = await self.receive(timeout)
            if reply.get("meta") and reply["meta"].get("push"):
                self.pushes.append(reply)
                continue
            return reply

    async def push(self, timeout: float = 5.0) -> dict[str, Any]:
        """The next push frame (waiting for it if none has arrived yet)."""
        if self.pushes:
            return self.pushes.pop(0)
        reply = await self.receive(timeout)
        assert reply["meta"]["push"] is True, reply
        return reply

    async def call(self, kind: str, auth: bool = True, meta: dict[str, Any] | None = None,
                   **data: Any) -> dict[str, Any]:
        if auth:
            data["user"] = [self.cred, *data.get("user", [])]
        return await self.send_raw(frame(kind, data, meta=meta))

    async def subscribe(self, push: bool = True) -> None:
        """Ask for (or stop) pushes on this connection."""
        reply = await self.call("ping_pong", meta={"push": push})
        assert reply["errors"]["code"] == 200, reply

    async def register(self, login: str, password: str = "secret-password",
                       push: bool = False, **extra: Any) -> dict[str, Any]:
        reply = await self.call("register_user", auth=False,
                                meta={"push": True} if push else None,
                                user=[{"login": login, "password": password, **extra}])
        assert reply["errors"]["code"] == 201, reply
        self.uuid = reply["data"]["user"][0]["uuid"]
        self.auth_id = reply["data"]["user"][0]["auth_id"]
        self.login = login
        return reply

    async def group(self, title: str = "group", users: list[str] | None = None,
                    kind: str = "group") -> str:
        reply = await self.call("add_flow", flow=[{"type": kind, "title": title, "info": "",
                                                   "users": users or []}])
        assert reply["errors"]["code"] == 200, reply
        return str(reply["data"]["flow"][0]["uuid"])

    async def send(self, flow: str, text: str, client_id: int = 1) -> dict[str, Any]:
        return await self.call("send_message", flow=[{"uuid": flow}],
                               message=[{"client_id": client_id, "text": text}])


# -- waiting for pushes -------------------------------------------------------------------------


def names(push: dict[str, Any], target: str) -> bool:
    """Whether a push carries the message or flow of uuid `target`."""
    data = push["data"]
    return any(item.get("uuid") == target
               for item in [*(data.get("message") or []), *(data.get("flow") or [])])


async def pushes_through(client: Client, target: str, timeout: float = 10.0
                         ) -> list[dict[str, Any]]:
    """The pushes `client` gets up to and including the first that carries the message or
    flow of uuid `target`."""
    pushes: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while not pushes or not names(pushes[-1], target):
        try:
            pushes.append(await client.push(max(deadline - time.monotonic(), 0.001)))
        except TimeoutError:
            raise AssertionError(f"no push of {target} within {timeout} s; got {pushes}"
                                 ) from None
    return pushes


async def fence(actor: Client, *readers: Client, flow: str | None = None,
                timeout: float = 10.0) -> list[list[dict[str, Any]]]:
    """For each reader, every push it got before one more change by `actor`: a message in
    `flow` (every reader a member), or else a new group with every reader in it.

    A connection gets its pushes in commit order (docs/PROTOCOL.md, "Push", promises it
    within a flow; the hub keeps it across flows), so these are all it was pushed before
    the fence: nothing extra arrived, and no waiting for quiet is needed.
    """
    if flow is None:
        made = await actor.group("fence", users=sorted({r.uuid for r in readers} - {actor.uuid}))
    else:
        sent = await actor.send(flow, f"fence {uuid.uuid4().hex}",
                                client_id=random.randrange(1, 2**62))
        assert sent["errors"]["code"] == 200, sent
        made = sent["data"]["message"][0]["uuid"]
    return [(await pushes_through(reader, made, timeout))[:-1] for reader in readers]


async def pushes_before_answer(client: Client) -> list[dict[str, Any]]:
    """What `client` was pushed (and not yet read) ahead of the answer to one more request.

    For a connection that takes no pushes, asked once a fence reached another connection of
    the same server process: pushes and answers share one queue, and the hub hands a change
    to every recipient at once, so this is all it was pushed up to the fence.
    """
    reply = await client.call("ping_pong", auth=bool(client.uuid))
    assert reply["type"] == "ping_pong", reply
    pushes, client.pushes = client.pushes, []
    return pushes


# -- shared servers for the MTP end-to-end suite ------------------------------------------------

DATABASE_KINDS = ["sqlite", *(["postgres"] if POSTGRES_URI else [])]


SEED_PASSWORD = "secret-password"
_SEEDED: dict[str, list[str]] = {}


def write_database(uri: str, fn: Callable[..., Any], *args: Any) -> Any:
    """Run `fn(conn, *args)` in one write transaction on a server's database, from the test."""
    from mod.config.validator import Database
    from mod.db.engine import Engine

    engine = Engine(Database(uri=uri))
    try:
        return engine.write_sync(fn, *args)
    finally:
        engine._drop_thread_tx()
        engine.stop()


def seed_users(uri: str, count: int) -> list[str]:
    """Create `count` users straight in the database; return their logins.

    Their password is SEED_PASSWORD, hashed as argon2id with the cheapest parameters, so that
    logging in as one costs milliseconds where a registration costs a full argon2 hash.
    """
    from argon2 import PasswordHasher

    from mod.db import dbhandler
    from mod.lib import new_uuid

    cheap = PasswordHasher(time_cost=1, memory_cost=64, parallelism=1).hash(SEED_PASSWORD)
    logins = [f"seeded-{index}-{uuid.uuid4().hex[:6]}" for index in range(count)]

    def seed(conn: Any) -> None:
        dbhandler.create_tables(conn)
        stamp = int(time.time())
        for login in logins:
            dbhandler.create_user(conn, new_uuid(), login, cheap, login, "", 30 * 86400, stamp)

    write_database(uri, seed)
    return logins


@contextlib.contextmanager
def running_server(kind: str, directory: Path, env: dict[str, str] | None = None,
                   users: int = 0, in_process: bool = False) -> Iterator[ServerProcess]:
    """A server on a fresh database of `kind`, with extra MORELIA_* settings in `env`.

    With `users`, that many accounts are made beforehand, and `Clients.user()` logs in as
    them instead of registering new ones. With `in_process`, the server runs in this process
    (`inprocess.AppServer`: starts in milliseconds, hashes passwords cheaply) instead of a
    subprocess.
    """
    from tests.inprocess import AppServer

    with database_uri(kind, directory) as uri:
        seeded = seed_users(uri, users) if users else []
        kind_of_server = AppServer if in_process else ServerProcess
        with kind_of_server(directory, env={"MORELIA_DATABASE_URI": uri, **(env or {})}
                            ) as process:
            _SEEDED[process.url] = seeded
            try:
                yield process
            finally:
                _SEEDED.pop(process.url, None)


def unique_login(prefix: str = "user") -> str:
    """A login no other test uses, so tests can share one server."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


class Clients:
    """Opens MTP clients on one server and closes them all at the end of a test."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.opened: list[Client] = []

    async def anonymous(self) -> Client:
        client = await Client.connect(self.url)
        self.opened.append(client)
        return client

    async def user(self, prefix: str = "user", push: bool = False, **extra: Any) -> Client:
        """A connected client of a user nobody has used yet: a seeded one if the server has
        any left (see `running_server`), else a newly registered one with a unique login.
        With `push`, the connection asks for pushes as it logs in."""
        client = await self.anonymous()
        seeded = _SEEDED.get(self.url)
        if seeded and not extra:
            login = seeded.pop()
            reply = await client.call("authentication", auth=False,
                                      meta={"push": True} if push else None,
                                      user=[{"login": login, "password": SEED_PASSWORD}])
            assert reply["errors"]["code"] == 200, reply
            client.uuid = reply["data"]["user"][0]["uuid"]
            client.auth_id = reply["data"]["user"][0]["auth_id"]
            client.login = login
        else:
            await client.register(unique_login(prefix), push=push, **extra)
        return client

    async def close(self) -> None:
        for client in self.opened:
            with contextlib.suppress(Exception):
                await client.close()
        self.opened.clear()


# Reason phrases as PROTOCOL.md spells them (http.HTTPStatus plus the protocol's own codes).
PHRASES = {
    200: "OK", 201: "Created", 206: "Partial Content", 400: "Bad Request",
    401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
    409: "Conflict", 415: "Unsupported Media Type", 429: "Too Many Requests",
    500: "Internal Server Error", 499: "Client Closed Request", 505: "Version Not Supported",
    520: "Unknown Error", 526: "Invalid SSL Certificate",
}


def expect_reply(reply: dict[str, Any], kind: str, code: int) -> dict[str, Any]:
    """Check a response's envelope against PROTOCOL.md and its type and code; return it."""
    assert set(reply) == {"type", "data", "errors", "jsonapi", "meta"}, reply
    assert reply["type"] == kind, reply
    errors = reply["errors"]
    assert set(errors) == {"code", "status", "time", "detail"}, reply
    assert errors["code"] == code, reply
    assert errors["status"] == PHRASES[code], reply
    assert isinstance(errors["time"], int) and abs(errors["time"] - time.time()) < 60, reply
    assert isinstance(errors["detail"], str) and errors["detail"], reply
    assert "Traceback" not in errors["detail"], reply
    assert reply["jsonapi"] == {"version": "1.0", "revision": "17"}, reply
    assert reply["meta"] is None, reply
    data = reply["data"]
    assert data is None or (isinstance(data, dict) and isinstance(data.get("time"), int)), reply
    return reply


def zero_png(side: int = 7900) -> bytes:
    """A side×side RGBA PNG of zeros (~242 KB at 7900, 250 MB decoded), written row by row,
    so whoever makes it never holds the decoded picture."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(
            ">I", zlib.crc32(kind + data))

    packer = zlib.compressobj(9)
    row = bytes(1 + side * 4)
    idat = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()
    header = struct.pack(">IIBBBBB", side, side, 8, 6, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat)
            + chunk(b"IEND", b""))

