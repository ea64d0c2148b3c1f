"""Failed logins: slowed, then refused per (login, address) and per address, never for long."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from mod.config.validator import Security
from mod.error import Throttled
from mod.service.throttle import LoginThrottle, TokenThrottle
from tests.inprocess import AppServer
from tests.support import Client, ServerProcess, http_client, unique_login
from tests.test_manage import ok

PASSWORD = "secret-password"


# -- the rule, in process ---------------------------------------------------------------------


def test_refused_after_the_limit_until_the_window_passes(monkeypatch: pytest.MonkeyPatch
                                                         ) -> None:
    clock = [1000.0]
    monkeypatch.setattr(time, "monotonic", lambda: clock[0])
    throttle = LoginThrottle(Security(login_failures=3, address_failures=5, login_window=60,
                                      login_delay=0))
    for _ in range(3):
        throttle.check("alice", "10.0.0.1")
        throttle.failed("alice", "10.0.0.1")
    with pytest.raises(Throttled) as refused:
        throttle.check("alice", "10.0.0.1")
    assert refused.value.code == 429 and refused.value.retry_after == 60
    throttle.check("alice", "10.0.0.2")  # the victim elsewhere is not locked out
    throttle.check("bob", "10.0.0.1")  # nor another login from the same address
    clock[0] += 30
    with pytest.raises(Throttled) as refused:
        throttle.check("alice", "10.0.0.1")
    assert refused.value.retry_after == 30
    clock[0] += 30.5
    throttle.check("alice", "10.0.0.1")


def test_per_address_limit_and_success_resets_the_login() -> None:
    throttle = LoginThrottle(Security(login_failures=3, address_failures=4, login_delay=0))
    for login in ("a", "b"):
        throttle.failed(login, "10.0.0.1")
        throttle.failed(login, "10.0.0.1")
    with pytest.raises(Throttled):
        throttle.check("c", "10.0.0.1")  # four failures from the address, whatever the login
    other = LoginThrottle(Security(login_failures=3, login_delay=0))
    other.failed("a", "x")
    other.failed("a", "x")
    other.succeeded("a", "x")
    other.failed("a", "x")
    other.failed("a", "x")
    other.check("a", "x")


def test_delay_doubles_up_to_its_cap() -> None:
    throttle = LoginThrottle(Security(login_failures=0, address_failures=0, login_delay=0.25,
                                      login_delay_max=1.0))
    delays = [throttle.failed("a", "x") for _ in range(6)]
    assert delays == [0.0, 0.25, 0.5, 1.0, 1.0, 1.0]


# -- what clients see -------------------------------------------------------------------------


@pytest.fixture
def guarded(db_uri: str, tmp_path: Path) -> Iterator[ServerProcess]:
    env = {"MORELIA_DATABASE_URI": db_uri, "MORELIA_SECURITY_LOGIN_FAILURES": "3",
           "MORELIA_SECURITY_ADDRESS_FAILURES": "6", "MORELIA_SECURITY_LOGIN_DELAY": "0.05",
           "MORELIA_SECURITY_LOGIN_DELAY_MAX": "0.1",
           "MORELIA_MATRIX_SERVER_NAME": "morelia.test"}
    with AppServer(tmp_path, env=env) as server:
        yield server


async def mtp_login(url: str, login: str, password: str, source: str = "127.0.0.1"
                    ) -> dict[str, Any]:
    client = await Client.connect(url, local_addr=(source, 0))
    try:
        return await client.call("authentication", auth=False,
                                 user=[{"login": login, "password": password}])
    finally:
        await client.close()


@pytest.mark.anyio
async def test_mtp_and_matrix_answer_429(guarded: ServerProcess) -> None:
    victim = unique_login("victim")
    client = await Client.connect(guarded.url)
    await client.register(victim)
    await client.close()
    for _ in range(3):
        assert (await mtp_login(guarded.url, victim, "guess"))["errors"]["code"] == 401
    refused = await mtp_login(guarded.url, victim, PASSWORD)  # even the right password
    assert refused["errors"]["code"] == 429 and refused["errors"]["status"] == \
        "Too Many Requests"
    # From another address the victim logs in; another login from this address too.
    assert (await mtp_login(guarded.url, victim, PASSWORD, "127.0.0.2"))["errors"]["code"] == 200
    other = unique_login("other")
    client = await Client.connect(guarded.url)
    await client.register(other)
    await client.close()
    assert (await mtp_login(guarded.url, other, PASSWORD))["errors"]["code"] == 200

    body = {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": victim},
            "password": PASSWORD}
    async with http_client(base_url=guarded.http, timeout=10) as http:
        reply = await http.post("/_matrix/client/v3/login", json=body)
        assert reply.status_code == 429
        assert reply.json()["errcode"] == "M_LIMIT_EXCEEDED"
        assert 0 < reply.json()["retry_after_ms"] <= 300_000
        # Unknown logins count against the address as well: three more and it is refused.
        for _ in range(3):
            guess = await http.post("/_matrix/client/v3/login", json={
                **body, "identifier": {"type": "m.id.user", "user": unique_login()}})
            assert guess.status_code == 403
        anyone = await http.post("/_matrix/client/v3/login", json={
            **body, "identifier": {"type": "m.id.user", "user": other}})
        assert anyone.status_code == 429
    assert (await mtp_login(guarded.url, other, PASSWORD, "127.0.0.3"))["errors"]["code"] == 200
    assert "Traceback" not in guarded.log()


# -- registration tokens ----------------------------------------------------------------------


def test_token_guesses_refused_per_address_until_the_window_passes(
        monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [1000.0]
    monkeypatch.setattr(time, "monotonic", lambda: clock[0])
    throttle = TokenThrottle(Security(token_failures=3, login_window=60))
    for _ in range(3):
        throttle.check("10.0.0.1")
        throttle.failed("10.0.0.1")
    with pytest.raises(Throttled) as refused:
        throttle.check("10.0.0.1")
    assert refused.value.code == 429 and refused.value.retry_after == 60
    throttle.check("10.0.0.2")
    throttle.check("")  # no address (a unix socket): nothing to count by
    clock[0] += 60.5
    throttle.check("10.0.0.1")
    off = TokenThrottle(Security(token_failures=0))
    for _ in range(100):
        off.failed("10.0.0.1")
    off.check("10.0.0.1")


@pytest.fixture
def token_server(db_uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                 ) -> Iterator[ServerProcess]:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MORELIA_CONFIG", raising=False)
    monkeypatch.setenv("MORELIA_DATABASE_URI", db_uri)
    env = {"MORELIA_DATABASE_URI": db_uri, "MORELIA_SECURITY_REGISTRATION": "token"}
    with ServerProcess(tmp_path, env=env) as server:
        yield server


VALIDITY = "/_matrix/client/v1/register/m.login.registration_token/validity"


@pytest.mark.anyio
async def test_token_guesses_get_429_while_others_are_served(token_server: ServerProcess
                                                             ) -> None:
    """Issue 19, case 9: 300 guesses at the validity endpoint from one address were all
    answered. Past [SECURITY] TOKEN_FAILURES (10) the address gets 429 M_LIMIT_EXCEEDED,
    there and in MTP registrations; other addresses and other requests are served."""
    token = ok("registration-token", "create", "--uses", "5").stdout.strip()
    client = await Client.connect(token_server.url)
    await client.register(unique_login("bystander"), registration_token=token)
    await client.close()
    answers: list[int] = []
    async with http_client(base_url=token_server.http, timeout=10) as http:
        for index in range(300):
            reply = await http.get(VALIDITY, params={"token": f"guess-{index}"})
            answers.append(reply.status_code)
            if reply.status_code == 429:
                assert reply.json()["errcode"] == "M_LIMIT_EXCEEDED"
                assert 0 < reply.json()["retry_after_ms"] <= 300_000
            else:
                assert reply.json() == {"valid": False}
        assert answers == [200] * 10 + [429] * 290
        # even the right token is refused from this address now, in MTP as well
        assert (await http.get(VALIDITY, params={"token": token})).status_code == 429
    refused = await Client.connect(token_server.url)
    reply = await refused.call("register_user", auth=False, user=[{
        "login": unique_login(), "password": PASSWORD, "registration_token": token}])
    await refused.close()
    assert reply["errors"]["code"] == 429, reply
    # another user logs in from this address; from another address tokens are checked
    assert (await mtp_login(token_server.url, client.login, PASSWORD))["errors"]["code"] == 200
    elsewhere = httpx.AsyncHTTPTransport(local_address="127.0.0.2")
    async with http_client(base_url=token_server.http, timeout=10,
                           transport=elsewhere) as http:
        assert (await http.get(VALIDITY, params={"token": token})).json() == {"valid": True}
    other = await Client.connect(token_server.url, local_addr=("127.0.0.2", 0))
    await other.register(unique_login("other"), registration_token=token)
    await other.close()
    assert "Traceback" not in token_server.log()


@pytest.mark.anyio
async def test_used_up_tokens_are_not_guesses(token_server: ServerProcess) -> None:
    """A token that was issued but is used up is answered, however often: only tokens never
    issued count as guesses."""
    token = ok("registration-token", "create", "--uses", "1").stdout.strip()
    client = await Client.connect(token_server.url)
    await client.register(unique_login(), registration_token=token)
    await client.close()
    async with http_client(base_url=token_server.http, timeout=10) as http:
        for _ in range(20):
            reply = await http.get(VALIDITY, params={"token": token})
            assert reply.json() == {"valid": False}
    for _ in range(12):
        client = await Client.connect(token_server.url)
        reply = await client.call("register_user", auth=False, user=[{
            "login": unique_login(), "password": PASSWORD, "registration_token": token}])
        await client.close()
        assert reply["errors"]["code"] == 403, reply
    async with http_client(base_url=token_server.http, timeout=10) as http:
        reply = await http.get(VALIDITY, params={"token": "a-guess"})
        assert reply.status_code == 200 and reply.json() == {"valid": False}
