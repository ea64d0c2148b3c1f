"""docs/BOUNDS.md, "Connections and requests": the per-request bounds of the protocols
([MATRIX] SYNC_TIMEOUT_MAX, [PROTOCOL] MESSAGES_LIMIT and USERS_LIMIT), each pushed past
by one user while another is served as usual."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator

import pytest

from tests.support import Client, Clients, ServerProcess, expect_reply, http_client, running_server

pytestmark = pytest.mark.anyio

LIMIT = 3
PASSWORD = "secret-password"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    env = {"MORELIA_PROTOCOL_MESSAGES_LIMIT": str(LIMIT),
           "MORELIA_PROTOCOL_USERS_LIMIT": str(LIMIT),
           "MORELIA_MATRIX_SYNC_TIMEOUT_MAX": "1"}
    with running_server("sqlite", tmp_path_factory.mktemp("bounds"), env, users=20,
                        in_process=True) as process:
        yield process


@pytest.fixture
async def clients(server: ServerProcess) -> AsyncIterator[Clients]:
    opened = Clients(server.url)
    yield opened
    await opened.close()


async def matrix_token(server: ServerProcess, client: Client) -> str:
    async with http_client(base_url=server.http, timeout=10) as http:
        reply = await http.post("/_matrix/client/v3/login", json={
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": client.login},
            "password": PASSWORD})
        assert reply.status_code == 200, reply.text
        return str(reply.json()["access_token"])


async def test_a_sync_asking_to_wait_longer_waits_sync_timeout_max(
        server: ServerProcess, clients: Clients) -> None:
    """/sync?timeout=600000 is answered empty after SYNC_TIMEOUT_MAX (1 s here), not ten
    minutes later; meanwhile another user sends and is answered at once."""
    bob = await clients.user("sleeper")
    token = await matrix_token(server, bob)
    headers = {"Authorization": f"Bearer {token}"}
    async with http_client(base_url=server.http, timeout=30, headers=headers) as http:
        first = await http.get("/_matrix/client/v3/sync", params={"timeout": "0"})
        since = first.json()["next_batch"]
        started = time.monotonic()
        waiting = asyncio.ensure_future(http.get("/_matrix/client/v3/sync", params={
            "timeout": "600000", "since": since}))
        alice = await clients.user("sender")
        flow = await alice.group("alone")
        expect_reply(await alice.send(flow, "hello"), "send_message", 200)
        answer = await waiting
        waited = time.monotonic() - started
    assert answer.status_code == 200 and answer.json()["next_batch"]
    assert 0.9 < waited < 5.0, waited


async def test_all_messages_past_messages_limit_is_a_page(clients: Clients) -> None:
    """A flow of more than MESSAGES_LIMIT messages comes in pages (206); a range wider than
    the limit is refused (403); another user's history is answered whole (200)."""
    alice = await clients.user("pages")
    flow = await alice.group("long")
    for index in range(LIMIT + 2):
        expect_reply(await alice.send(flow, f"m{index}", client_id=index + 1),
                     "send_message", 200)
    page = await alice.call("all_messages", flow=[{"uuid": flow}])
    assert len(expect_reply(page, "all_messages", 206)["data"]["message"]) == LIMIT
    wide = await alice.call("all_messages", flow=[{"uuid": flow, "message_start": 0,
                                                    "message_end": LIMIT + 1}])
    expect_reply(wide, "all_messages", 403)
    bob = await clients.user("short")
    other = await bob.group("short")
    expect_reply(await bob.send(other, "one"), "send_message", 200)
    whole = await bob.call("all_messages", flow=[{"uuid": other}])
    assert [m["text"] for m in expect_reply(whole, "all_messages", 200)["data"]["message"]] \
        == ["one"]


async def test_user_info_past_users_limit_gets_429(clients: Clients) -> None:
    """user_info asking for more than USERS_LIMIT users gets 429; another user asking for
    the limit is answered."""
    alice = await clients.user("info")
    bob = await clients.user("info")
    asked = [{"uuid": alice.uuid}] * (LIMIT + 1)
    expect_reply(await alice.call("user_info", user=asked), "user_info", 429)
    expect_reply(await bob.call("user_info", user=asked[:LIMIT]), "user_info", 200)
