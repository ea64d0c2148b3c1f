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
from mod.service.throttle import LoginThrottle
from tests.support import Client, ServerProcess, unique_login

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
    with ServerProcess(tmp_path, env=env) as server:
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
    async with httpx.AsyncClient(base_url=guarded.http, timeout=10) as http:
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
