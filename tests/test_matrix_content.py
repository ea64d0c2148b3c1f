"""Hostile Matrix input: content the server could not read back is refused at the door, odd
parameters get 400s, and a change-log row that cannot be rendered is skipped, not a 500."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from pathlib import Path
from typing import Any

import httpx
import nio
import pytest

from mod.db import dbhandler as db
from tests.support import (
    POSTGRES_URI,
    REDIS_URI,
    ServerProcess,
    http_client,
    postgres_database,
    write_database,
)
from tests.test_matrix_errors import V3, expect
from tests.test_matrix_support import (
    SERVER_NAME,
    Matrix,
    events_of,
    matrix_session,
    sources,
    sync_until,
)

# server_process: a change is logged as skipped once per process.
pytestmark = [pytest.mark.anyio, pytest.mark.server_process]


def nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(depth):
        value = {"a": value}
    return value


def no_traceback(mx: Matrix) -> None:
    log = mx.server.log()
    assert "Traceback" not in log, log[-4000:]


async def test_content_the_server_could_not_read_back_is_refused(mx: Matrix) -> None:
    user = await mx.user()
    token = user.access_token
    room = await mx.room(user)
    send = f"{V3}/rooms/{room}/send/m.room.message"
    deep = {"msgtype": "m.text", "body": "hi", "x": nested(200)}
    body = expect(await mx.raw("PUT", f"{send}/deep", token, content=json.dumps(deep)), 400,
                  "M_BAD_JSON")
    assert "x" in str(body["error"])
    for number, raw in enumerate((b'{"msgtype":"m.text","body":"hi","x":NaN}',
                                  b'{"msgtype":"m.text","body":"hi","x":[Infinity]}',
                                  b'{"msgtype":"m.text","body":"hi","x":-1e999}',
                                  b'{"msgtype":"m.text","body":"hi","x":' + b"9" * 30 + b"}")):
        body = expect(await mx.raw("PUT", f"{send}/n{number}", token, content=raw), 400,
                      "M_BAD_JSON")
        assert "x" in str(body["error"]), body
    for number, raw in enumerate((b'{"msgtype":"m.text","body":"a\\u0000b"}',
                                  b'{"msgtype":"m.text","body":"a\\ud800b"}',
                                  b'{"msgtype":"m.text","body":"hi","k\\udfff":1}')):
        body = expect(await mx.raw("PUT", f"{send}/u{number}", token, content=raw), 400,
                      "M_BAD_JSON")
    at_limit = {"msgtype": "m.text", "body": "deep but fine", "x": nested(60)}
    sent = await mx.raw("PUT", f"{send}/fine", token, json=at_limit)
    assert sent.status_code == 200, sent.text
    seen = await sync_until(user, room, lambda e: e["content"].get("body") == "deep but fine")
    assert any(event["content"].get("x") == nested(60) for event in seen)
    no_traceback(mx)


async def test_hostile_strings_get_400s(mx: Matrix) -> None:
    user = await mx.user()
    token = user.access_token
    room = await mx.room(user)
    sent = await user.room_send(room, "m.room.message", {"msgtype": "m.text", "body": "x"})
    event_id = sent.event_id  # type: ignore[union-attr]
    for bad in ("a\x00b", "a\ud800b"):
        raw = json.dumps({"type": "m.login.password", "user": bad, "password": "p"})
        expect(await mx.raw("POST", V3 + "/login", content=raw), 400, "M_BAD_JSON")
        raw = json.dumps({"type": "m.login.password", "user": user.user, "password": bad})
        expect(await mx.raw("POST", V3 + "/login", content=raw), 400, "M_BAD_JSON")
        raw = json.dumps({"type": "m.login.password", "user": user.user, "password": "p",
                          "device_id": bad})
        expect(await mx.raw("POST", V3 + "/login", content=raw), 400, "M_BAD_JSON")
        expect(await mx.raw("PUT", f"{V3}/profile/{user.user_id}/displayname", token,
                            content=json.dumps({"displayname": bad})), 400, "M_BAD_JSON")
        expect(await mx.raw("PUT", f"{V3}/rooms/{room}/state/m.room.name", token,
                            content=json.dumps({"name": bad})), 400, "M_BAD_JSON")
        expect(await mx.raw("PUT", f"{V3}/rooms/{room}/state/m.room.topic", token,
                            content=json.dumps({"topic": bad})), 400, "M_BAD_JSON")
        expect(await mx.raw("POST", V3 + "/createRoom", token,
                            content=json.dumps({"name": bad})), 400, "M_BAD_JSON")
        expect(await mx.raw("PUT", f"{V3}/rooms/{room}/redact/{event_id}/r{len(bad)}", token,
                            content=json.dumps({"reason": bad})), 400, "M_BAD_JSON")
    # NUL in paths and query strings never reaches the database
    expect(await mx.raw("GET", f"{V3}/profile/@a%00b:morelia.test", token), 400,
           "M_INVALID_PARAM")
    expect(await mx.raw("GET", V3 + "/register/available", params={"username": "a\x00"}),
           400, "M_INVALID_PARAM")
    no_traceback(mx)


async def test_odd_numbers_in_parameters_get_400s(mx: Matrix) -> None:
    user = await mx.user()
    token = user.access_token
    room = await mx.room(user)
    huge = "9" * 5000
    for odd in ("²", "1²", "١٢", huge):
        for name, value in (("since", "s" + odd), ("timeout", odd)):
            expect(await mx.raw("GET", V3 + "/sync", token, params={name: value}), 400,
                   "M_INVALID_PARAM")
        for name, value in (("limit", odd), ("from", "s" + odd), ("to", "s" + odd)):
            expect(await mx.raw("GET", f"{V3}/rooms/{room}/messages", token,
                                params={name: value}), 400, "M_INVALID_PARAM")
        for event_id in ("$" + odd, "$m" + odd, "$1." + odd):
            response = await mx.raw("GET", f"{V3}/rooms/{room}/event/{event_id}", token)
            expect(response, 404, "M_NOT_FOUND")
            response = await mx.raw("PUT", f"{V3}/rooms/{room}/redact/{event_id}/t{len(odd)}",
                                    token, json={})
            assert response.status_code in (400, 404), response.text
            assert response.json()["errcode"] in ("M_INVALID_PARAM", "M_NOT_FOUND")
        expect(await mx.raw("GET", f"{V3}/rooms/!{odd}:morelia.test/messages", token), 404,
               "M_NOT_FOUND")
    no_traceback(mx)


async def test_hostile_filters(mx: Matrix) -> None:
    user = await mx.user()
    token = user.access_token
    deep = "[" * 5000 + "]" * 5000
    some = json.dumps({"room": {"timeline": {"limit": 1}}, "x": nested(100)})
    for text in (deep, some, '{"x": NaN}', '{"x": "\\u0000"}'):
        filter_id = base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")
        response = await mx.raw("GET", f"{V3}/user/{user.user_id}/filter/{filter_id}", token)
        assert response.status_code in (400, 404), response.text
        assert response.json()["errcode"] in ("M_NOT_FOUND", "M_BAD_JSON", "M_NOT_JSON")
        response = await mx.raw("GET", V3 + "/sync", token, params={"filter": filter_id})
        assert response.status_code == 400, response.text
        assert response.json()["errcode"] in ("M_BAD_JSON", "M_NOT_JSON", "M_INVALID_PARAM")
        response = await mx.raw("GET", V3 + "/sync", token, params={"filter": text})
        assert response.status_code == 400, response.text
        response = await mx.raw("POST", f"{V3}/user/{user.user_id}/filter", token,
                                content=text)
        assert response.status_code == 400, response.text
    no_traceback(mx)


async def test_unknown_paths_answer_json(mx: Matrix) -> None:
    for path in (V3 + "/sync%0A", V3 + "/a%0Ab", "/_matrix/%0A", "/_matrix",
                 V3 + "/rooms/%0A/messages", "/_matrix/client/v3/\u00e9"):
        response = await mx.raw("GET", path)
        assert response.status_code in (401, 404), (path, response.text)
        assert response.headers["content-type"] == "application/json", (path, response.text)
        assert response.json()["errcode"], path
    expect(await mx.raw("GET", V3 + "/sync%0A"), 404, "M_UNRECOGNIZED")


def bad_payloads(flow: str) -> list[str]:
    """Change-log payloads no reader can render, as rows written before the door checked
    content (or by hand) hold them."""
    message = {"uuid": "1", "client_id": 0, "text": "x", "from_user": "1", "from_flow": flow,
               "time": 0, "file_picture": "", "file_video": "", "file_audio": "",
               "file_document": "", "emoji": "", "edited_time": 0, "edited_status": False}
    deep: Any = "x"
    for _ in range(300):
        deep = [deep]
    return [
        "{not json",
        json.dumps({"message": message, "mx": {"content": {"body": "x", "d": deep}}}),
        json.dumps({"message": message, "mx": {"content": {"body": float("nan")}}}),
        json.dumps({"message": message | {"text": "\ud800"}}),
        json.dumps({"nothing": 1}),
        json.dumps([1, 2]),
    ]


def insert_bad_changes(conn: Any, flow: str) -> None:
    for payload in bad_payloads(flow):
        conn.insert(db._INSERT_CHANGE, 0, flow, "message_sent", "1", "1", payload)
    conn.insert(db._INSERT_CHANGE, 0, flow, "flow_created", "1", "", "{}")


async def test_a_change_that_cannot_be_rendered_is_skipped(mx: Matrix) -> None:
    alice, bob = await mx.user(), await mx.user()
    room = await mx.room(alice, bob)
    await alice.room_send(room, "m.room.message", {"msgtype": "m.text", "body": "before"})
    await sync_until(bob, room, lambda e: e["content"].get("body") == "before")
    flow = room[1:].split(":")[0]

    write_database(mx.server.env["MORELIA_DATABASE_URI"], insert_bad_changes, flow)
    await alice.room_send(room, "m.room.message", {"msgtype": "m.text", "body": "after"})
    await sync_until(bob, room, lambda e: e["content"].get("body") == "after")
    token = bob.access_token
    initial = await mx.raw("GET", V3 + "/sync", token)
    assert initial.status_code == 200, initial.text
    bodies = [event["content"].get("body") for event in
              initial.json()["rooms"]["join"][room]["timeline"]["events"]]
    assert "after" in bodies
    since = initial.json()["next_batch"]
    position = int(since[1:]) - 10
    incremental = await mx.raw("GET", V3 + "/sync", token, params={"since": f"s{position}"})
    assert incremental.status_code == 200, incremental.text
    page = await mx.raw("GET", f"{V3}/rooms/{room}/messages", token, params={"limit": "50"})
    assert page.status_code == 200, page.text
    bodies = [event["content"].get("body") for event in page.json()["chunk"]]
    assert "after" in bodies and "before" in bodies
    forward = await mx.raw("GET", f"{V3}/rooms/{room}/messages", token,
                           params={"dir": "f", "limit": "50"})
    assert forward.status_code == 200, forward.text
    state = await mx.raw("GET", f"{V3}/rooms/{room}/state", token)
    assert state.status_code == 200, state.text
    for number in range(len(bad_payloads(flow)) + 1):
        response = await mx.raw("GET", f"{V3}/rooms/{room}/event/${int(since[1:]) - number}",
                                token)
        assert response.status_code in (200, 404), response.text
    no_traceback(mx)
    assert "skipped" in mx.server.log()



@pytest.mark.parametrize("broker", ["postgres", "redis"])
async def test_bad_changes_do_not_stop_delivery_on_shared_brokers(broker: str,
                                                                  tmp_path: Path) -> None:
    """On a shared broker every change is read back from the log: one that cannot be read
    once paused delivery to everyone."""
    if not POSTGRES_URI or (broker == "redis" and not REDIS_URI):
        pytest.skip("needs MORELIA_TEST_POSTGRES_URI (and MORELIA_TEST_REDIS_URI)")
    with postgres_database() as database:
        env = {"MORELIA_DATABASE_URI": database,
               "MORELIA_BROKER_URI": database if broker == "postgres" else REDIS_URI,
               "MORELIA_BROKER_CHANNEL": f"morelia_bad_{uuid.uuid4().hex[:12]}",
               "MORELIA_MATRIX_SERVER_NAME": SERVER_NAME}
        with ServerProcess(tmp_path, env=env) as server:
            async for mx in matrix_session(server):
                alice, bob = await mx.user(), await mx.user()
                room = await mx.room(alice, bob)
                flow = room[1:].split(":")[0]
                mtp = await mx.mtp.user()
                reply = await mtp.send_raw(json.dumps({
                    "type": "join_flow", "data": {"flow": [{"uuid": flow}],
                                                  "user": [mtp.cred]},
                    "jsonapi": {"version": "1.0"}, "meta": {"push": True}}))
                assert reply["errors"]["code"] == 200, reply
                await bob.sync(timeout=0)
                write_database(database, insert_bad_changes, flow)
                poll = asyncio.create_task(bob.sync(timeout=5000, since=bob.next_batch))
                sent = await alice.room_send(room, "m.room.message",
                                             {"msgtype": "m.text", "body": "after"})
                assert not isinstance(sent, Exception)
                woken = await asyncio.wait_for(poll, 8)  # the long-poll wakes for it
                assert isinstance(woken, nio.SyncResponse), woken
                if "after" not in [e["content"].get("body")
                                   for e in sources(events_of(woken, room))]:
                    await sync_until(bob, room, lambda e: e["content"].get("body") == "after")
                texts: list[str] = []
                while "after" not in texts:
                    push = await mtp.push(timeout=5)
                    texts.extend(m["text"] for m in push["data"]["message"])
                assert "paused" not in server.log()
                assert "Traceback" not in server.log()


async def test_an_unexpected_error_is_one_log_line_and_a_json_500() -> None:
    from types import SimpleNamespace

    from loguru import logger
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    from mod.config.validator import Settings
    from mod.protocol.matrix.context import Matrix
    from mod.protocol.matrix.routing import Call, Spec, run

    async def broken(call: Call) -> Response:
        raise RuntimeError("something no one foresaw\nsecond line")

    matrix = Matrix(Settings(), None, SimpleNamespace(position=0))  # type: ignore[arg-type]

    async def endpoint(request: Request) -> Response:
        return await run(Spec(broken, False, None), matrix, request)

    app = Starlette(routes=[Route("/_matrix/client/v3/broken", endpoint)])
    lines: list[str] = []
    handler = logger.add(lines.append, level="DEBUG", format="{level} {message}", filter="mod")
    try:
        async with http_client(transport=httpx.ASGITransport(app=app),
                               base_url="http://test") as client:
            response = await client.get("/_matrix/client/v3/broken")
    finally:
        logger.remove(handler)
    expect(response, 500, "M_UNKNOWN")
    assert len(lines) == 1 and lines[0].startswith("ERROR "), lines
    assert "RuntimeError" in lines[0] and "test_matrix_content.py" in lines[0], lines
    assert "Traceback" not in lines[0] and "second line" not in lines[0]
