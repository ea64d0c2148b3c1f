"""MTP envelope, `type` echo, status phrases, ordering and the order of checks (PROTOCOL.md)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support import (
    DATABASE_KINDS,
    Client,
    Clients,
    ServerProcess,
    expect_reply,
    frame,
    running_server,
)

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module", params=DATABASE_KINDS)
def mtp(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
        ) -> Iterator[ServerProcess]:
    with running_server(request.param, tmp_path_factory.mktemp("envelope"), users=120,
                        in_process=True) as process:
        yield process


def raw(kind: Any = "ping_pong", data: Any = None, version: Any = "1.0", **extra: Any) -> str:
    return json.dumps({"type": kind, "data": data, "jsonapi": {"version": version}, **extra})


# -- the envelope -----------------------------------------------------------------------------


async def test_every_response_has_the_five_keys(clients: Clients) -> None:
    alice = await clients.user("alice")
    cases: list[tuple[str, str, int]] = [
        (frame("ping_pong", {"user": [alice.cred]}), "ping_pong", 200),
        (frame("get_update", {"user": [alice.cred]}), "get_update", 200),
        ("not json", "error", 415),
        (raw("ping_pong", {"time": "soon"}), "ping_pong", 415),
        (frame("ping_pong", {"user": [alice.cred]}, version="2.0"), "ping_pong", 505),
        (frame("no_such_method", {"user": [alice.cred]}), "no_such_method", 405),
        (frame("ping_pong", {"user": [{"uuid": alice.uuid, "auth_id": "x"}]}), "ping_pong", 401),
        (frame("send_message", {"user": [alice.cred]}), "send_message", 400),
        (frame("all_messages", {"user": [alice.cred], "flow": [{"uuid": "12345"}]}),
         "all_messages", 404),
    ]
    for text, kind, code in cases:
        expect_reply(await alice.send_raw(text), kind, code)


async def test_data_is_null_when_there_is_nothing_to_return(clients: Clients) -> None:
    alice = await clients.user("alice")
    assert expect_reply(await alice.call("ping_pong"), "ping_pong", 200)["data"] is None
    assert expect_reply(await alice.send_raw("{"), "error", 415)["data"] is None
    reply = await alice.call("ping_pong", auth=False)
    assert expect_reply(reply, "ping_pong", 401)["data"] is None
    reply = await alice.call("get_update", time=0)
    data = expect_reply(reply, "get_update", 200)["data"]
    assert data is not None and isinstance(data["time"], int)


async def test_errors_time_is_the_server_clock_in_unix_seconds(clients: Clients) -> None:
    alice = await clients.user("alice")
    before = int(time.time())
    reply = expect_reply(await alice.call("ping_pong"), "ping_pong", 200)
    after = int(time.time())
    assert type(reply["errors"]["time"]) is int
    assert before <= reply["errors"]["time"] <= after


async def test_detail_says_which_field_or_uuid_was_wrong(clients: Clients) -> None:
    alice = await clients.user("alice")
    reply = await alice.send_raw(raw("add_flow", {"user": [alice.cred], "flow": "a group"}))
    assert "flow" in expect_reply(reply, "add_flow", 415)["errors"]["detail"]
    reply = await alice.call("all_messages", flow=[{"uuid": "424242"}])
    assert "424242" in expect_reply(reply, "all_messages", 404)["errors"]["detail"]
    reply = await alice.call("delete_message", message=[{"uuid": "434343"}])
    assert "434343" in expect_reply(reply, "delete_message", 404)["errors"]["detail"]


async def test_meta_of_a_response_is_null_whatever_the_request_carried(
        clients: Clients) -> None:
    alice = await clients.user("alice")
    for meta in ({"push": True}, {"push": False}, {"unknown": [1, 2]}, None):
        text = json.dumps({"type": "ping_pong", "data": {"user": [alice.cred]},
                           "jsonapi": {"version": "1.0"}, "meta": meta,
                           "errors": {"code": 500, "status": "whatever"}})
        reply = expect_reply(await alice.send_raw(text), "ping_pong", 200)
        assert reply["meta"] is None
        assert reply["errors"]["code"] == 200


async def test_revision_is_optional_and_jsonapi_is_answered_with_ours(clients: Clients) -> None:
    alice = await clients.user("alice")
    text = json.dumps({"type": "ping_pong", "data": {"user": [alice.cred]},
                       "jsonapi": {"version": "1.0"}})
    expect_reply(await alice.send_raw(text), "ping_pong", 200)
    text = json.dumps({"type": "ping_pong", "data": {"user": [alice.cred]},
                       "jsonapi": {"version": "1.3", "revision": "99"}})
    expect_reply(await alice.send_raw(text), "ping_pong", 200)


async def test_uuids_are_decimal_strings_and_times_integers(clients: Clients) -> None:
    alice = await clients.user("alice")
    assert alice.uuid.isdigit() and isinstance(alice.uuid, str)
    flow = await alice.group("digits")
    assert flow.isdigit()
    reply = expect_reply(await alice.send(flow, "hello"), "send_message", 200)
    message = reply["data"]["message"][0]
    assert isinstance(message["uuid"], str) and message["uuid"].isdigit()
    assert type(message["time"]) is int
    assert type(reply["data"]["time"]) is int


# -- `type` echo ------------------------------------------------------------------------------


async def test_type_is_echoed_on_auth_version_method_and_validation_errors(
        clients: Clients) -> None:
    client = await clients.anonymous()
    reply = await client.send_raw(frame("get_update", {"user": [{"uuid": "1", "auth_id": "2"}]}))
    expect_reply(reply, "get_update", 401)
    reply = await client.send_raw(frame("get_update", None, version="7.0"))
    expect_reply(reply, "get_update", 505)
    expect_reply(await client.send_raw(frame("fly_away", None)), "fly_away", 405)
    expect_reply(await client.send_raw(raw("get_update", [])), "get_update", 415)
    expect_reply(await client.send_raw(json.dumps({"type": "all_flow"})), "all_flow", 415)
    # A string `type` is echoed even when it is no method at all or is itself invalid.
    long_type = "t" * 200
    expect_reply(await client.send_raw(raw(long_type)), long_type, 415)
    expect_reply(await client.send_raw(raw("", None)), "", 405)


@pytest.mark.parametrize("text", [
    "not json at all",
    "{\"type\": \"ping_pong\"",
    "[]",
    "[{\"type\": \"ping_pong\"}]",
    "42",
    "\"ping_pong\"",
    "null",
    "true",
])
async def test_type_is_error_only_for_unreadable_frames(clients: Clients, text: str) -> None:
    client = await clients.anonymous()
    expect_reply(await client.send_raw(text), "error", 415)


async def test_a_non_string_type_is_answered_as_error(clients: Clients) -> None:
    client = await clients.anonymous()
    for kind in (5, None, ["ping_pong"], {"a": 1}):
        expect_reply(await client.send_raw(raw(kind)), "error", 415)


# -- versions ---------------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["1.0", "1.5", "1.9", "1", "1.09"])
async def test_supported_versions(clients: Clients, version: str) -> None:
    alice = await clients.user("alice")
    reply = await alice.send_raw(frame("ping_pong", {"user": [alice.cred]}, version=version))
    expect_reply(reply, "ping_pong", 200)


@pytest.mark.parametrize("version", ["1.10", "1.11", "2.0", "0.9", "0.99", "10.0", "abc", "",
                                     "1.x", "1.5.1", "-1.0", "1.-1"])
async def test_unsupported_versions_get_505(clients: Clients, version: str) -> None:
    alice = await clients.user("alice")
    reply = await alice.send_raw(frame("ping_pong", {"user": [alice.cred]}, version=version))
    assert version in expect_reply(reply, "ping_pong", 505)["errors"]["detail"]


async def test_a_number_for_version_is_an_invalid_envelope(clients: Clients) -> None:
    client = await clients.anonymous()
    expect_reply(await client.send_raw(raw("ping_pong", None, version=1.0)), "ping_pong", 415)


# -- checks, in order -------------------------------------------------------------------------


async def test_invalid_envelope_is_checked_before_the_version(clients: Clients) -> None:
    client = await clients.anonymous()
    reply = await client.send_raw(raw("ping_pong", {"time": "x"}, version="9.9"))
    expect_reply(reply, "ping_pong", 415)


async def test_version_is_checked_before_the_method(clients: Clients) -> None:
    client = await clients.anonymous()
    expect_reply(await client.send_raw(frame("no_method", None, version="3.0")),
                 "no_method", 505)


async def test_method_is_checked_before_credentials(clients: Clients) -> None:
    client = await clients.anonymous()
    expect_reply(await client.send_raw(frame("no_method", None)), "no_method", 405)
    expect_reply(await client.send_raw(frame("no_method", {"user": [{"uuid": "1"}]})),
                 "no_method", 405)


async def test_credentials_are_checked_before_the_method_checks(clients: Clients) -> None:
    client = await clients.anonymous()
    # These lack what the method needs (400) or name unknown objects (404), but 401 comes first.
    for kind, data in (("send_message", {}),
                       ("all_messages", {"flow": [{"uuid": "999"}]}),
                       ("delete_message", {"message": [{"uuid": "999"}]}),
                       ("user_info", {}),
                       ("add_flow", {"flow": [{"type": "nonsense"}]})):
        reply = await client.send_raw(frame(kind, {**data, "user": [{"uuid": "1",
                                                                     "auth_id": "nope"}]}))
        expect_reply(reply, kind, 401)


@pytest.mark.parametrize("credentials", [
    None,
    [],
    [{}],
    [{"uuid": "SELF"}],
    [{"auth_id": "SELF"}],
    [{"uuid": "SELF", "auth_id": ""}],
    [{"uuid": "SELF", "auth_id": "wrong-token"}],
    [{"uuid": "123", "auth_id": "SELF"}],
])
async def test_missing_or_wrong_credentials_get_401(clients: Clients,
                                                    credentials: list[dict[str, str]] | None
                                                    ) -> None:
    alice = await clients.user("alice")
    users = None if credentials is None else [
        {key: (alice.cred[key] if value == "SELF" else value) for key, value in entry.items()}
        for entry in credentials]
    data = None if users is None else {"user": users}
    reply = await alice.send_raw(frame("ping_pong", data))
    expect_reply(reply, "ping_pong", 401)
    # Nothing was bound by the failed request, and the real credentials still work.
    expect_reply(await alice.call("ping_pong"), "ping_pong", 200)


async def test_another_users_token_is_refused(clients: Clients) -> None:
    alice = await clients.user("alice")
    bob = await clients.user("bob")
    reply = await alice.send_raw(frame("get_update", {"user": [{"uuid": alice.uuid,
                                                                "auth_id": bob.auth_id}]}))
    expect_reply(reply, "get_update", 401)
    reply = await alice.send_raw(frame("get_update", {"user": [{"uuid": bob.uuid,
                                                                "auth_id": alice.auth_id}]}))
    expect_reply(reply, "get_update", 401)


# -- ordering ---------------------------------------------------------------------------------


async def test_responses_come_in_request_order(clients: Clients) -> None:
    alice = await clients.user("alice")
    flow = await alice.group("order")
    expected: list[tuple[str, int, int | None]] = []
    for index in range(60):
        match index % 5:
            case 0:
                await alice.ws.send(frame("send_message", {
                    "user": [alice.cred], "flow": [{"uuid": flow}],
                    "message": [{"client_id": index, "text": f"m{index}"}]}))
                expected.append(("send_message", 200, index))
            case 1:
                await alice.ws.send("garbage")
                expected.append(("error", 415, None))
            case 2:
                await alice.ws.send(frame(f"unknown_{index}", None))
                expected.append((f"unknown_{index}", 405, None))
            case 3:
                await alice.ws.send(frame("get_update", {"user": [alice.cred], "time": 0}))
                expected.append(("get_update", 200, None))
            case _:
                await alice.ws.send(frame("ping_pong", {"user": [alice.cred]}))
                expected.append(("ping_pong", 200, None))
    for kind, code, client_id in expected:
        reply = expect_reply(await alice.response(), kind, code)
        if client_id is not None:
            assert reply["data"]["message"][0]["client_id"] == client_id
    # Exactly one response each: the next one answers the next request.
    expect_reply(await alice.call("all_flow"), "all_flow", 200)


async def test_concurrent_connections_each_get_their_own_answers(clients: Clients) -> None:
    users = [await clients.user("many") for _ in range(3)]

    async def chatter(client: Client) -> None:
        for index in range(20):
            await client.ws.send(frame(f"m{index}", None))
        for index in range(20):
            expect_reply(await client.response(), f"m{index}", 405)

    await asyncio.gather(*(chatter(client) for client in users))


async def test_the_server_is_still_up(mtp: ServerProcess) -> None:
    assert mtp.alive()
    client = await Client.connect(mtp.url)
    try:
        expect_reply(await client.send_raw(frame("ping_pong", None)), "ping_pong", 401)
    finally:
        await client.close()
