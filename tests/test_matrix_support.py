"""Helpers for the Matrix end-to-end tests (matrix-nio against a real server), and unit
tests of the Matrix identifiers."""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import nio
import pytest

from mod.error import ServiceError
from mod.protocol.matrix import ids
from tests.support import Clients, ServerProcess, http_client, running_server, unique_login

PASSWORD = "matrix-secret-1"
SERVER_NAME = "morelia.test"


@contextlib.contextmanager
def matrix_server(kind: str, directory: Path, in_process: bool = False
                  ) -> Iterator[ServerProcess]:
    with running_server(kind, directory, env={
            "MORELIA_MATRIX_SERVER_NAME": SERVER_NAME,
            "MORELIA_MATRIX_SYNC_TIMEOUT_MAX": "5"}, in_process=in_process) as server:
        yield server


def login_name(prefix: str = "mx") -> str:
    return unique_login(prefix)


def user_id(login: str) -> str:
    return f"@{login}:{SERVER_NAME}"


class Matrix:
    """nio clients (and MTP clients, and raw HTTP) on one server; all closed at the end."""

    def __init__(self, server: ServerProcess) -> None:
        self.server = server
        self.clients: list[nio.AsyncClient] = []
        self.mtp = Clients(server.url)
        self.http = http_client(base_url=server.http, timeout=10)

    def client(self, login: str = "") -> nio.AsyncClient:
        client = nio.AsyncClient(self.server.http, login)
        self.clients.append(client)
        return client

    async def user(self, prefix: str = "mx") -> nio.AsyncClient:
        """A client logged in as a newly registered user."""
        login = login_name(prefix)
        client = self.client(login)
        response = await client.register(login, PASSWORD)
        assert isinstance(response, nio.RegisterResponse), response
        return client

    async def room(self, owner: nio.AsyncClient, *members: nio.AsyncClient, **kwargs: Any
                   ) -> str:
        """A room `owner` creates and `members` join."""
        response = await owner.room_create(**kwargs)
        assert isinstance(response, nio.RoomCreateResponse), response
        for member in members:
            joined = await member.join(response.room_id)
            assert isinstance(joined, nio.JoinResponse), joined
        return str(response.room_id)

    async def raw(self, method: str, path: str, token: str | None = None,
                  **kwargs: Any) -> httpx.Response:
        headers = dict(kwargs.pop("headers", {}))
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return await self.http.request(method, path, headers=headers, **kwargs)

    async def close(self) -> None:
        for client in self.clients:
            with contextlib.suppress(Exception):
                await client.close()
        await self.mtp.close()
        await self.http.aclose()


async def matrix_session(server: ServerProcess) -> AsyncIterator[Matrix]:
    matrix = Matrix(server)
    try:
        yield matrix
    finally:
        await matrix.close()


def events_of(sync: nio.SyncResponse, room: str) -> list[nio.Event]:
    joined = sync.rooms.join.get(room)
    return list(joined.timeline.events) if joined is not None else []


def sources(events: list[Any]) -> list[dict[str, Any]]:
    return [event.source for event in events]


async def sync_until(client: nio.AsyncClient, room: str, want: Any, rounds: int = 10
                     ) -> list[dict[str, Any]]:
    """Sync (long-polling) until an event of `room` satisfies `want`; the events seen."""
    seen: list[dict[str, Any]] = []
    for _ in range(rounds):
        response = await client.sync(timeout=2000, since=client.next_batch)
        assert isinstance(response, nio.SyncResponse), response
        seen.extend(sources(events_of(response, room)))
        if any(want(event) for event in seen):
            return seen
    raise AssertionError(f"never saw the event; saw {seen}")


# -- unit tests of identifiers ----------------------------------------------------------------


def test_user_ids_round_trip() -> None:
    assert ids.user_id("alice", "example.org") == "@alice:example.org"
    assert ids.login_of("@alice:example.org", "example.org") == "alice"
    assert ids.login_of("alice", "example.org") == "alice"
    assert ids.login_of("@alice:elsewhere.org", "example.org") is None
    assert ids.login_of("@a:b:example.org:8448", "example.org:8448") == "a:b"
    assert ids.login_of("@:example.org", "example.org") is None


def test_localparts() -> None:
    assert ids.valid_localpart("alice.b-c_d=e/f+g")
    assert not ids.valid_localpart("Alice")
    assert not ids.valid_localpart("a b")
    assert not ids.valid_localpart("")


def test_room_ids() -> None:
    assert ids.room_id("123", "x.org") == "!123:x.org"
    assert ids.flow_of("!123:x.org", "x.org") == "123"
    for bad in ("!abc:x.org", "123", "!123:y.org", "#alias:x.org", "!:x.org"):
        with pytest.raises(ServiceError) as caught:
            ids.flow_of(bad, "x.org")
        assert caught.value.code == 404


def test_event_ids_and_tokens() -> None:
    assert ids.parse_event_id(ids.message_event_id("42")) == ids.EventRef(message="42")
    assert ids.parse_event_id(ids.change_event_id(7)) == ids.EventRef(position=7)
    assert ids.parse_event_id(ids.change_event_id(7, 3)) == ids.EventRef(position=7, index=3)
    for bad in ("42", "$", "$x1", "$m", "$1.", "$1.a", "$m12a"):
        assert ids.parse_event_id(bad) is None
    assert ids.parse_token(ids.token(99), "since") == 99
    for bad in ("", "99", "sx", "s-1", "t5"):
        with pytest.raises(ServiceError):
            ids.parse_token(bad, "since")


# -- Element's SDK (tests/js, run by node) ----------------------------------------------------

JS = Path(__file__).parent / "js"


def node_missing() -> str | None:
    """Why the SDK cannot run here, or None when it can."""
    if shutil.which("node") is None:
        return "node is not installed (.ci/run installs it with apt-get)"
    if not (JS / "node_modules" / "matrix-js-sdk").is_dir():
        return "tests/js has no node_modules: run `npm ci` there (.ci/run does)"
    return None


async def js_account(mx: Matrix, device: str) -> dict[str, str]:
    login = login_name("js")
    response = await mx.raw("POST", "/_matrix/client/v3/register", json={
        "username": login, "password": PASSWORD, "device_id": device,
        "auth": {"type": "m.login.dummy"}})
    assert response.status_code == 200, response.text
    body = response.json()
    return {"userId": user_id(login), "accessToken": body["access_token"],
            "deviceId": body["device_id"]}


def run_js(script: str, config: dict[str, Any]) -> dict[str, Any]:
    """Run a script of tests/js with node; the JSON line it printed last."""
    done = subprocess.run(["node", str(JS / script), json.dumps(config)], cwd=JS,
                          capture_output=True, text=True, timeout=120, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    assert lines, f"no result from node: {done.stdout[-2000:]} {done.stderr[-2000:]}"
    result: dict[str, Any] = json.loads(lines[-1])
    return result
