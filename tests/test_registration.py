"""[SECURITY] REGISTRATION: open, token (made by manage.py) and closed, over MTP and Matrix."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nio
import pytest

from mod.db import regtokens
from tests.support import (
    POSTGRES_URI,
    REDIS_URI,
    Client,
    ServerProcess,
    frame,
    http_client,
    unique_login,
    write_database,
)
from tests.test_manage import ok
from tests.test_scaleout import two_servers

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

PASSWORD = "secret-password"


def server_with(mode: str, db_uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                ) -> ServerProcess:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MORELIA_CONFIG", raising=False)
    monkeypatch.setenv("MORELIA_DATABASE_URI", db_uri)
    monkeypatch.setenv("MORELIA_SECURITY_REGISTRATION", mode)
    return ServerProcess(tmp_path, env={"MORELIA_DATABASE_URI": db_uri,
                                        "MORELIA_SECURITY_REGISTRATION": mode})


@pytest.fixture
def token_server(db_uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                 ) -> Iterator[ServerProcess]:
    with server_with("token", db_uri, tmp_path, monkeypatch) as server:
        yield server


@pytest.fixture
def closed_server(db_uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                  ) -> Iterator[ServerProcess]:
    with server_with("closed", db_uri, tmp_path, monkeypatch) as server:
        yield server


async def mtp_register(url: str, **user: Any) -> dict[str, Any]:
    client = await Client.connect(url)
    try:
        return await client.call("register_user", auth=False, user=[
            {"login": unique_login(), "password": PASSWORD, **user}])
    finally:
        await client.close()


async def test_mtp_registration_needs_a_token(token_server: ServerProcess) -> None:
    refused = await mtp_register(token_server.url)
    assert refused["errors"]["code"] == 403 and "token" in refused["errors"]["detail"]
    wrong = await mtp_register(token_server.url, registration_token="nope")
    assert wrong["errors"]["code"] == 403
    token = ok("registration-token", "create", "--uses", "2").stdout.strip()
    for _ in range(2):
        made = await mtp_register(token_server.url, registration_token=token)
        assert made["errors"]["code"] == 201, made
    used_up = await mtp_register(token_server.url, registration_token=token)
    assert used_up["errors"]["code"] == 403 and "used up" in used_up["errors"]["detail"]
    rows = ok("registration-token", "list").output.splitlines()
    assert rows[1].split()[:3] == [token, "2", "2"]


async def test_matrix_registration_token_stage(token_server: ServerProcess) -> None:
    token = ok("registration-token", "create", "--uses", "1").stdout.strip()
    async with http_client(base_url=token_server.http, timeout=10) as http:
        validity = "/_matrix/client/v1/register/m.login.registration_token/validity"
        assert (await http.get(validity, params={"token": token})).json() == {"valid": True}
        assert (await http.get(validity, params={"token": "x"})).json() == {"valid": False}
        flows = await http.post("/_matrix/client/v3/register", json={})
        assert flows.status_code == 401
        assert flows.json()["flows"] == [{"stages": ["m.login.registration_token",
                                                     "m.login.dummy"]}]
        skipped = await http.post("/_matrix/client/v3/register", json={
            "username": unique_login(), "password": PASSWORD,
            "auth": {"type": "m.login.dummy", "session": flows.json()["session"]}})
        assert skipped.status_code == 401  # the token stage is not done
        wrong = await http.post("/_matrix/client/v3/register", json={
            "auth": {"type": "m.login.registration_token", "token": "x", "session": "s1"}})
        assert wrong.status_code == 403 and wrong.json()["errcode"] == "M_FORBIDDEN"

    name = unique_login("mx")
    client = nio.AsyncClient(token_server.http, name)
    try:
        made = await client.register_with_token(name, PASSWORD, token)
        assert isinstance(made, nio.RegisterResponse), made
        assert (await client.whoami()).user_id == made.user_id
    finally:
        await client.close()
    async with http_client(base_url=token_server.http, timeout=10) as http:
        assert (await http.get(validity, params={"token": token})).json() == {"valid": False}
    assert "Traceback" not in token_server.log()


RACE_ROUNDS = 8
RACE_CLIENTS = 20


def one_use_tokens(uri: str, count: int) -> list[str]:
    """`count` new registration tokens of one use each, made in the database at once."""
    tokens = [secrets.token_urlsafe(12) for _ in range(count)]

    def make(conn: Any) -> None:
        for token in tokens:
            regtokens.add_registration_token(conn, token, 1, 0, int(time.time()))

    write_database(uri, make)
    return tokens


async def register_slowly(client: Client, token: str) -> dict[str, Any]:
    """register_user with `token`, waiting long: twenty argon2 hashes on a busy machine."""
    await client.ws.send(frame("register_user", {"user": [{
        "login": unique_login(), "password": PASSWORD, "registration_token": token}]}))
    return await client.response(timeout=60)


@pytest.mark.postgres
@pytest.mark.skipif(not (POSTGRES_URI and REDIS_URI), reason="needs PostgreSQL and Redis")
@pytest.mark.parametrize("per_token", [RACE_CLIENTS, 2])
async def test_a_token_of_one_use_makes_one_account_across_two_processes(
        per_token: int, tmp_path: Path) -> None:
    """Issue 19, case 8: registrations at once with tokens of one use, spread over two server
    processes on one PostgreSQL database and a Redis broker, round after round: each token
    makes exactly one account. The check and the count were two statements, and two
    processes that both checked before either counted both made an account. 20 clients use
    one token per round (the issue's case), or pairs of them (one in each process, so that
    each round holds ten races) one token each, which reproduced it more often."""
    with two_servers("redis", tmp_path, {"MORELIA_SECURITY_REGISTRATION": "token"}) as (
            first, second):
        uri = first.env["MORELIA_DATABASE_URI"]
        clients = [await Client.connect((first, second)[index % 2].url)
                   for index in range(RACE_CLIENTS)]
        try:
            made_per_token: list[int] = []
            for _ in range(RACE_ROUNDS):
                tokens = one_use_tokens(uri, RACE_CLIENTS // per_token)
                replies = await asyncio.gather(*(register_slowly(
                    client, tokens[index // per_token]) for index, client in enumerate(clients)))
                assert {reply["errors"]["code"] for reply in replies} <= {201, 403}, replies
                for index in range(len(tokens)):
                    group = replies[index * per_token:(index + 1) * per_token]
                    made_per_token.append(sum(reply["errors"]["code"] == 201
                                              for reply in group))
            assert made_per_token == [1] * len(made_per_token)
            # the servers still serve: a new token makes one account, then no more
            token = one_use_tokens(uri, 1)[0]
            made = await mtp_register(first.url, registration_token=token)
            assert made["errors"]["code"] == 201, made
            refused = await mtp_register(second.url, registration_token=token)
            assert refused["errors"]["code"] == 403, refused
        finally:
            for client in clients:
                await client.close()
        assert "Traceback" not in first.log() + second.log()


async def test_closed_registration(closed_server: ServerProcess) -> None:
    refused = await mtp_register(closed_server.url)
    assert refused["errors"]["code"] == 403 and "closed" in refused["errors"]["detail"]
    async with http_client(base_url=closed_server.http, timeout=10) as http:
        reply = await http.post("/_matrix/client/v3/register", json={
            "username": unique_login(), "password": PASSWORD, "auth": {"type": "m.login.dummy"}})
        assert reply.status_code == 403 and reply.json()["errcode"] == "M_FORBIDDEN"
        assert "closed" in reply.json()["error"]
    ok("db", "user-create", "-l", "made-here", "--username", "x", "-p", PASSWORD)
    client = await Client.connect(closed_server.url)
    try:
        reply = await client.call("authentication", auth=False,
                                  user=[{"login": "made-here", "password": PASSWORD}])
        assert reply["errors"]["code"] == 200
    finally:
        await client.close()


def test_registration_setting_is_checked() -> None:
    from pydantic import ValidationError

    from mod.config.validator import Security

    assert Security(registration="TOKEN").registration == "token"  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        Security(registration="sometimes")  # type: ignore[arg-type]
