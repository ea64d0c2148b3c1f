"""Bad input: each gets a clear answer, the connection stays open where PROTOCOL.md says so,
the server stays up, and nothing is half-written."""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import websockets

from tests.support import (
    DATABASE_KINDS,
    Client,
    Clients,
    ServerProcess,
    expect_reply,
    frame,
    running_server,
    unique_login,
)

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module", params=DATABASE_KINDS)
def mtp(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
        ) -> Iterator[ServerProcess]:
    directory = tmp_path_factory.mktemp("bad_input")
    with running_server(request.param, directory, users=150, in_process=True) as process:
        yield process


async def still_serving(client: Client) -> None:
    """The connection is open and answers; so does the server on a new connection."""
    expect_reply(await client.call("ping_pong"), "ping_pong",
                 200 if client.auth_id else 401)


async def count(client: Client, flow: str) -> int:
    reply = await client.call("all_messages", flow=[{"uuid": flow}])
    return len(expect_reply(reply, "all_messages", 200)["data"]["message"])


def with_raw(request: dict[str, Any], raw: str) -> str:
    """A request as JSON text, with the string "RAW" in it replaced by `raw` as written."""
    return json.dumps(request).replace('"RAW"', raw)


def envelope(kind: Any, data: Any) -> str:
    return json.dumps({"type": kind, "data": data, "jsonapi": {"version": "1.0"}})


# -- frames that are not JSON objects ---------------------------------------------------------


@pytest.mark.parametrize("text", [
    "", " ", "nope", "{", "}", "{'single': 'quotes'}", "{\"a\": 1,}", "{\"type\": ping_pong}",
    "\u00ff\u00fe", "<xml/>", "{\"type\": \"ping_pong\"} {\"type\": \"ping_pong\"}",
])
async def test_a_frame_that_is_not_json_gets_415_and_the_connection_stays(
        clients: Clients, text: str) -> None:
    alice = await clients.user("garbage")
    reply = expect_reply(await alice.send_raw(text), "error", 415)
    assert reply["data"] is None
    await still_serving(alice)


@pytest.mark.parametrize("text", ["[]", "[1, 2]", "[{\"type\": \"ping_pong\"}]", "0", "-1.5e10",
                                  "\"ping_pong\"", "null", "true", "false", "NaN", "Infinity"])
async def test_json_that_is_not_an_object_gets_415(clients: Clients, text: str) -> None:
    alice = await clients.user("not-object")
    expect_reply(await alice.send_raw(text), "error", 415)
    await still_serving(alice)


# -- wrong field types ------------------------------------------------------------------------

CRED = "$CRED"
FLOW = "$FLOW"

WRONG_TYPES: list[tuple[str, Any, str]] = [
    # the extensions' fields (replies, mentions, files, reactions, read state, avatars)
    ("send_message", {"user": [CRED], "flow": [{"uuid": FLOW}],
                      "message": [{"client_id": 1, "text": "x", "reply_to": 5}]}, "reply_to"),
    ("send_message", {"user": [CRED], "flow": [{"uuid": FLOW}],
                      "message": [{"client_id": 1, "text": "x", "mentions": "all"}]}, "mentions"),
    ("send_message", {"user": [CRED], "flow": [{"uuid": FLOW}],
                      "message": [{"client_id": 1, "text": "x", "mentions": [5]}]}, "mentions"),
    ("send_message", {"user": [CRED], "flow": [{"uuid": FLOW}],
                      "message": [{"client_id": 1, "text": "x", "file_document": "aGk=",
                                   "file_name": "n" * 256}]}, "file_name"),
    ("send_message", {"user": [CRED], "flow": [{"uuid": FLOW}],
                      "message": [{"client_id": 1, "text": "x", "file_document": "aGk=",
                                   "file_type": 5}]}, "file_type"),
    ("react", {"user": [CRED], "message": [{"uuid": "1", "reaction": "👍", "remove": "yes"}]},
     "remove"),
    ("react", {"user": [CRED], "message": [{"uuid": "1", "reaction": "k" * 257}]}, "reaction"),
    ("mark_read", {"user": [CRED], "flow": [{"uuid": FLOW}], "message": [{"uuid": 5}]}, "uuid"),
    ("update_profile", {"user": [CRED, {"avatar": 5}]}, "avatar"),
    ("get_update", {"user": [CRED], "time": "5"}, "time"),
    ("get_update", {"user": [CRED], "time": True}, "time"),
    ("get_update", {"user": [CRED], "time": 1.5}, "time"),
    ("get_update", {"user": [CRED], "time": -1}, "time"),
    ("get_update", {"user": [CRED], "time": [0]}, "time"),
    ("ping_pong", [], "data"),
    ("ping_pong", "data", "data"),
    ("ping_pong", 5, "data"),
    ("ping_pong", {"user": CRED}, "user"),
    ("ping_pong", {"user": [[CRED]]}, "user"),
    ("ping_pong", {"user": [{"uuid": 5, "auth_id": "x"}]}, "uuid"),
    ("ping_pong", {"user": [{"uuid": "1", "auth_id": None, "is_bot": "yes"}]}, "is_bot"),
    ("send_message", {"user": [CRED], "flow": [{"uuid": FLOW}],
                      "message": [{"client_id": "1", "text": "x"}]}, "client_id"),
    ("send_message", {"user": [CRED], "flow": [{"uuid": FLOW}],
                      "message": [{"client_id": True, "text": "x"}]}, "client_id"),
    ("send_message", {"user": [CRED], "flow": [{"uuid": FLOW}],
                      "message": [{"client_id": 1.0, "text": "x"}]}, "client_id"),
    ("send_message", {"user": [CRED], "flow": [{"uuid": FLOW}],
                      "message": [{"client_id": 2**64, "text": "x"}]}, "client_id"),
    ("send_message", {"user": [CRED], "flow": [{"uuid": FLOW}],
                      "message": [{"client_id": 1, "text": 5}]}, "text"),
    ("send_message", {"user": [CRED], "flow": [{"uuid": FLOW}],
                      "message": [{"client_id": 1, "text": "x", "emoji": ["a"]}]}, "emoji"),
    ("send_message", {"user": [CRED], "flow": [{"uuid": FLOW}],
                      "message": [{"client_id": 1, "text": "nul \u0000 inside"}]}, "text"),
    ("send_message", {"user": [CRED], "flow": {"uuid": FLOW},
                      "message": [{"client_id": 1, "text": "x"}]}, "flow"),
    ("send_message", {"user": [CRED], "flow": [FLOW],
                      "message": [{"client_id": 1, "text": "x"}]}, "flow"),
    ("send_message", {"user": [CRED], "flow": [{"uuid": FLOW}],
                      "message": {"client_id": 1, "text": "x"}}, "message"),
    ("add_flow", {"user": [CRED], "flow": [{"type": "group", "users": [1]}]}, "users"),
    ("add_flow", {"user": [CRED], "flow": [{"type": "group", "users": "abc"}]}, "users"),
    ("add_flow", {"user": [CRED], "flow": [{"type": ["group"], "users": []}]}, "type"),
    ("add_flow", {"user": [CRED], "flow": [{"type": "group", "title": 7, "users": []}]},
     "title"),
    ("add_flow", {"user": [CRED], "flow": [{"type": "group", "title": "\u0000",
                                            "users": []}]}, "title"),
    ("all_messages", {"user": [CRED], "flow": [{"uuid": FLOW, "message_start": "0"}]},
     "message_start"),
    ("all_messages", {"user": [CRED], "flow": [{"uuid": FLOW, "message_start": 10**30}]},
     "message_start"),
    ("all_messages", {"user": [CRED], "flow": [{"uuid": FLOW, "message_end": 10**30}]},
     "message_end"),
    ("user_info", {"user": [CRED, {"uuid": 5}]}, "uuid"),
    ("user_info", {"user": [CRED, {"uuid": "1\u0000"}]}, "uuid"),
    ("user_info", {"user": [CRED, {"login": 5}]}, "login"),
    ("user_info", {"user": [CRED, {"login": "bob\u0000"}]}, "login"),
    ("register_user", {"user": [{"login": 5, "password": "p"}]}, "login"),
    ("register_user", {"user": [{"login": "$LOGIN", "password": "p", "is_bot": "yes"}]},
     "is_bot"),
    ("register_user", {"user": [{"login": "$LOGIN\u0000", "password": "p"}]}, "login"),
    ("authentication", {"user": [{"login": "x", "password": 1234}]}, "password"),
]


def fill(value: Any, cred: dict[str, str], flow: str, login: str) -> Any:
    if value == CRED:
        return cred
    if value == FLOW:
        return flow
    if isinstance(value, str):
        return value.replace("$LOGIN", login)
    if isinstance(value, list):
        return [fill(item, cred, flow, login) for item in value]
    if isinstance(value, dict):
        return {key: fill(item, cred, flow, login) for key, item in value.items()}
    return value


@pytest.mark.parametrize(("kind", "data", "field"), WRONG_TYPES,
                         ids=[f"{kind}-{field}-{index}"
                              for index, (kind, _, field) in enumerate(WRONG_TYPES)])
async def test_a_field_of_the_wrong_type_gets_415_and_writes_nothing(
        clients: Clients, kind: str, data: Any, field: str) -> None:
    alice = await clients.user("types")
    flow = await alice.group("types")
    login = unique_login("typed")
    reply = await alice.send_raw(envelope(kind, fill(data, alice.cred, flow, login)))
    expect_reply(reply, kind, 415)
    assert field in reply["errors"]["detail"]
    assert reply["data"] is None
    await still_serving(alice)
    assert await count(alice, flow) == 0
    assert (await alice.call("all_flow"))["errors"]["code"] == 200
    # The login was not taken by a half-done registration.
    expect_reply(await alice.call("register_user", auth=False,
                                  user=[{"login": login, "password": "p"}]),
                 "register_user", 201)


@pytest.mark.parametrize("jsonapi", [None, "1.0", 1.0, {}, {"version": 1.0}, [],
                                     {"version": "1.0", "revision": 17}])
async def test_a_bad_jsonapi_gets_415(clients: Clients, jsonapi: Any) -> None:
    alice = await clients.user("jsonapi")
    text = json.dumps({"type": "ping_pong", "data": {"user": [alice.cred]}, "jsonapi": jsonapi})
    expect_reply(await alice.send_raw(text), "ping_pong", 415)
    text = json.dumps({"type": "ping_pong", "data": {"user": [alice.cred]}})
    expect_reply(await alice.send_raw(text), "ping_pong", 415)
    await still_serving(alice)


async def test_a_missing_or_non_string_type_gets_415_as_error(clients: Clients) -> None:
    alice = await clients.user("typeless")
    for text in (json.dumps({"data": {"user": [alice.cred]}, "jsonapi": {"version": "1.0"}}),
                 envelope(7, {"user": [alice.cred]}), envelope(None, None),
                 envelope({"method": "ping_pong"}, None)):
        expect_reply(await alice.send_raw(text), "error", 415)
    await still_serving(alice)


# -- empty and missing data -------------------------------------------------------------------


async def test_null_or_empty_data_gets_a_clear_answer(clients: Clients) -> None:
    client = await clients.anonymous()
    for data in (None, {}, {"user": []}, {"user": [{}]}, {"user": None}):
        for kind in ("get_update", "send_message", "ping_pong", "all_flow"):
            expect_reply(await client.send_raw(envelope(kind, data)), kind, 401)
        for kind in ("register_user", "authentication"):
            expect_reply(await client.send_raw(envelope(kind, data)), kind, 400)
    alice = await clients.user("empty")
    for kind in ("send_message", "all_messages", "add_flow", "delete_message",
                 "edited_message", "join_flow", "leave_flow", "user_info"):
        expect_reply(await alice.call(kind), kind, 400)
        expect_reply(await alice.call(kind, flow=[], message=[]), kind, 400)
    await still_serving(alice)


# -- numbers, nesting, sizes ------------------------------------------------------------------


async def test_a_5000_digit_number_gets_415(clients: Clients) -> None:
    alice = await clients.user("digits")
    flow = await alice.group("digits")
    huge = "9" * 5000
    for text in (huge, f'{{"type": "get_update", "data": {{"time": {huge}}}, '
                       f'"jsonapi": {{"version": "1.0"}}}}',
                 f'{{"type": "send_message", "data": {{"user": [{json.dumps(alice.cred)}], '
                 f'"flow": [{{"uuid": "{flow}"}}], "message": [{{"client_id": {huge}, '
                 f'"text": "x"}}]}}, "jsonapi": {{"version": "1.0"}}}}'):
        reply = await alice.send_raw(text)
        assert reply["errors"]["code"] == 415, reply
        assert reply["type"] in ("error", "get_update", "send_message")
        expect_reply(reply, reply["type"], 415)
    # A long number that still parses is refused as out of range.
    reply = await alice.send_raw(envelope("get_update", {"user": [alice.cred],
                                                         "time": int("9" * 400)}))
    expect_reply(reply, "get_update", 415)
    assert await count(alice, flow) == 0
    await still_serving(alice)


@pytest.mark.parametrize("text", [
    "[" * 100_000,
    "[" * 100_000 + "]" * 100_000,
    "{\"a\": " * 50_000 + "1" + "}" * 50_000,
    "{\"type\": \"ping_pong\", \"meta\": " + "[" * 100_000 + "]" * 100_000 + "}",
])
async def test_deeply_nested_json_gets_415(clients: Clients, text: str) -> None:
    alice = await clients.user("nested")
    reply = await alice.send_raw(text)
    assert reply["errors"]["code"] == 415
    expect_reply(reply, reply["type"], 415)
    await still_serving(alice)


async def test_moderate_nesting_in_ignored_keys_is_fine(clients: Clients) -> None:
    alice = await clients.user("nested")
    text = json.dumps({"type": "ping_pong", "data": {"user": [alice.cred]},
                       "jsonapi": {"version": "1.0"},
                       "meta": {"deep": json.loads("[" * 200 + "]" * 200)},
                       "errors": {"deep": json.loads("[" * 200 + "]" * 200)}})
    expect_reply(await alice.send_raw(text), "ping_pong", 200)


async def test_over_long_strings_get_415(clients: Clients) -> None:
    alice = await clients.user("long")
    flow = await alice.group("long")
    reply = await alice.call("send_message", flow=[{"uuid": "1" * 65}],
                             message=[{"client_id": 1, "text": "x"}])
    expect_reply(reply, "send_message", 415)
    client = await clients.anonymous()
    reply = await client.call("register_user", auth=False,
                              user=[{"login": "l" * 257, "password": "p"}])
    expect_reply(reply, "register_user", 415)
    assert await count(alice, flow) == 0


# -- unknown methods and uuids ----------------------------------------------------------------


@pytest.mark.parametrize("kind", ["unknown", "PING_PONG", "ping_pong ", "__init__", "error"])
async def test_an_unknown_method_gets_405(clients: Clients, kind: str) -> None:
    alice = await clients.user("methods")
    expect_reply(await alice.call(kind), kind, 405)
    await still_serving(alice)


async def test_unknown_uuids_get_404_and_change_nothing(clients: Clients) -> None:
    alice = await clients.user("unknown")
    flow = await alice.group("known")
    expect_reply(await alice.send(flow, "known message"), "send_message", 200)
    ghost = "314159265358979323846"
    flow_named = {"flow": [{"uuid": ghost}]}
    for kind, data in (("send_message", {**flow_named,
                                          "message": [{"client_id": 1, "text": "x"}]}),
                       ("all_messages", flow_named),
                       ("join_flow", flow_named),
                       ("leave_flow", flow_named),
                       ("edited_message", {"message": [{"uuid": ghost, "text": "x"}]}),
                       ("delete_message", {"message": [{"uuid": ghost}]}),
                       ("user_info", {"user": [{"uuid": ghost}]}),
                       ("add_flow", {"flow": [{"type": "group", "users": [ghost]}]})):
        reply = await alice.call(kind, **data)
        expect_reply(reply, kind, 404)
        assert ghost in reply["errors"]["detail"]
    reply = await alice.call("get_update", time=0)
    data = expect_reply(reply, "get_update", 200)["data"]
    assert [f["uuid"] for f in data["flow"]] == [flow]
    assert [m["text"] for m in data["message"]] == ["known message"]


# -- binary frames ----------------------------------------------------------------------------


async def test_a_binary_frame_holding_a_request_is_answered_in_text(clients: Clients) -> None:
    alice = await clients.user("binary")
    await alice.ws.send(frame("ping_pong", {"user": [alice.cred]}).encode())
    answer = await asyncio.wait_for(alice.ws.recv(), 10)
    assert isinstance(answer, str)
    expect_reply(json.loads(answer), "ping_pong", 200)


@pytest.mark.parametrize("payload", [b"\xff\xfe\xfd", b"\x00" * 10, b"\x80abc", b""])
async def test_binary_garbage_gets_415(clients: Clients, payload: bytes) -> None:
    alice = await clients.user("binary")
    expect_reply(await alice.send_raw(payload), "error", 415)
    expect_reply(await alice.send_raw(os.urandom(512)), "error", 415)
    await still_serving(alice)


# -- oversize frames and floods ---------------------------------------------------------------


async def test_an_oversize_frame_closes_with_1009_and_the_server_stays_up(
        tmp_path: Path) -> None:
    with running_server("sqlite", tmp_path, {"MORELIA_SERVER_MAX_FRAME_SIZE": "1000"}) as server:
        client = await Client.connect(server.url)
        try:
            # Just under the limit: answered.
            small = json.dumps({"type": "ping_pong", "data": None,
                                "jsonapi": {"version": "1.0"}, "meta": {"x": "x" * 890}})
            assert len(small) <= 1000
            expect_reply(await client.send_raw(small), "ping_pong", 401)
            for big in ("x" * 1001, b"{" + b" " * 2000 + b"}"):
                client = await Client.connect(server.url)
                await client.ws.send(big)
                with pytest.raises(websockets.ConnectionClosed) as closed:
                    await asyncio.wait_for(client.ws.recv(), 10)
                assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
        finally:
            await client.close()
        assert server.process is not None and server.process.poll() is None
        fresh = await Client.connect(server.url)
        try:
            await fresh.register(unique_login("after"))
            expect_reply(await fresh.call("ping_pong"), "ping_pong", 200)
        finally:
            await fresh.close()


async def test_a_flood_gets_429_and_the_connection_recovers(tmp_path: Path) -> None:
    env = {"MORELIA_SERVER_RATE_LIMIT": "5", "MORELIA_SERVER_RATE_BURST": "5"}
    with running_server("sqlite", tmp_path, env) as server:
        client = await Client.connect(server.url)
        try:
            await client.register(unique_login("flood"))  # uses one token of the bucket
            total = 40
            for _ in range(total):
                await client.ws.send(frame("ping_pong", {"user": [client.cred]}))
            codes = []
            for _ in range(total):
                reply = await client.response()
                expect_reply(reply, "ping_pong", reply["errors"]["code"])
                codes.append(reply["errors"]["code"])
            assert set(codes) == {200, 429}
            assert codes.count(200) <= 10
            assert codes.count(429) >= total - 10
            # The bucket refills (5 a second): a request is let through again soon.
            deadline = time.monotonic() + 5
            while (reply := await client.call("ping_pong"))["errors"]["code"] == 429:
                assert time.monotonic() < deadline, "the rate limit never let up"
                await asyncio.sleep(0.05)
            expect_reply(reply, "ping_pong", 200)
            # Other connections were never limited by this one.
            other = await Client.connect(server.url)
            try:
                for _ in range(5):
                    expect_reply(await other.send_raw(frame("ping_pong", None)),
                                 "ping_pong", 401)
            finally:
                await other.close()
        finally:
            await client.close()


# -- Unicode that cannot be stored or echoed ----------------------------------------------------


@pytest.mark.parametrize("version", ["\u00b2", "1.\u00b2", "\u0663", "1.\u0663", "\uff11.0"])
async def test_a_version_of_non_ascii_digits_gets_505(clients: Clients, version: str) -> None:
    alice = await clients.user("alice")
    text = json.dumps({"type": "ping_pong", "data": {"user": [alice.cred]},
                       "jsonapi": {"version": version}})
    expect_reply(await alice.send_raw(text), "ping_pong", 505)
    await still_serving(alice)


async def test_a_lone_surrogate_in_type_gets_415_as_error(clients: Clients) -> None:
    alice = await clients.user("alice")
    for kind in ('"\\ud800"', '"a\\udfff"', '"\\u0000"'):
        text = with_raw({"type": "RAW", "jsonapi": {"version": "1.0"}}, kind)
        expect_reply(await alice.send_raw(text), "error", 415)
    await still_serving(alice)


@pytest.mark.parametrize(("where", "escaped"), [
    ("data.message.0.text", '"hi \\ud800"'),
    ("data.message.0.text", '"\\udc00 first"'),
    ("data.message.0.emoji", '"\\ude00\\ud83d"'),
])
async def test_a_lone_surrogate_in_content_gets_415_naming_the_field(
        clients: Clients, where: str, escaped: str) -> None:
    alice = await clients.user("alice")
    flow = await alice.group("surrogates")
    field = where.rsplit(".", 1)[1]
    text = with_raw({"type": "send_message", "jsonapi": {"version": "1.0"}, "data": {
        "user": [alice.cred], "flow": [{"uuid": flow}],
        "message": [{"client_id": 1, field: "RAW"}]}}, escaped)
    reply = expect_reply(await alice.send_raw(text), "send_message", 415)
    assert where in reply["errors"]["detail"]
    assert await count(alice, flow) == 0
    await still_serving(alice)


async def test_an_escaped_surrogate_pair_is_one_character_and_is_stored(
        clients: Clients) -> None:
    alice = await clients.user("alice")
    flow = await alice.group("pairs")
    text = with_raw({"type": "send_message", "jsonapi": {"version": "1.0"}, "data": {
        "user": [alice.cred], "flow": [{"uuid": flow}],
        "message": [{"client_id": 1, "text": "RAW"}]}}, '"\\ud83d\\ude00"')
    expect_reply(await alice.send_raw(text), "send_message", 200)
    reply = await alice.call("all_messages", flow=[{"uuid": flow}])
    assert reply["data"]["message"][0]["text"] == "\U0001F600"


# -- pipelining ---------------------------------------------------------------------------------


async def test_pipelined_requests_are_all_answered_in_order(tmp_path: Path) -> None:
    """A client that keeps reading but sends requests back to back is answered, not dropped:
    up to the burst with 200, past the rate limit with 429, in order."""
    with running_server("sqlite", tmp_path) as server:
        client = await Client.connect(server.url)
        try:
            await client.register(unique_login("pipeline"))
            total = 1000
            received: list[dict[str, Any]] = []

            async def read() -> None:
                while len(received) < total:
                    received.append(await client.receive(20))

            reader = asyncio.create_task(read())
            for number in range(total):
                await client.ws.send(frame("ping_pong" if number % 2 else "user_info",
                                           {"user": [client.cred, {"uuid": client.uuid}]}))
            await reader
            kinds = [reply["type"] for reply in received]
            assert kinds == ["user_info", "ping_pong"] * (total // 2)
            codes = [reply["errors"]["code"] for reply in received]
            assert set(codes) <= {200, 429}
            assert codes.count(200) >= 390  # the burst (one token went to the registration)
            assert 429 in codes
            # the connection recovers as its bucket refills (one request each 5 ms)
            deadline = asyncio.get_running_loop().time() + 5
            while (reply := await client.call("ping_pong"))["errors"]["code"] == 429:
                assert asyncio.get_running_loop().time() < deadline, reply
                await asyncio.sleep(0.005)
            expect_reply(reply, "ping_pong", 200)
            assert "stopped reading" not in server.log()
        finally:
            await client.close()


async def test_the_server_is_still_up(mtp: ServerProcess, clients: Clients) -> None:
    assert mtp.alive()
    alice = await clients.user("survivor")
    await still_serving(alice)
    assert "Traceback" not in mtp.log()
