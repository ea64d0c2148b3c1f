"""Hostile and malformed frames at every MTP method of a live server, from a seeded generator.

Each frame gets exactly one answer, never a 5xx; the connection stays open; the server keeps
serving other clients and keeps delivering pushes; its log holds no traceback.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mod.protocol.mtp.methods import AUTHENTICATED, PUBLIC
from tests.support import DATABASE_KINDS, Client, ServerProcess, running_server

pytestmark = pytest.mark.anyio

SEED = 20261201
FRAMES_PER_METHOD = 150
METHODS = sorted([*PUBLIC, *AUTHENTICATED])
KNOWN_CODES = {200, 201, 206, 400, 401, 403, 404, 405, 409, 415, 429, 505}

# Raw JSON texts (inserted as written) that a careless server trips over.
HOSTILE_RAW = [
    "NaN", "Infinity", "-Infinity", "1e400", "-0", "1" * 5000, "-" + "9" * 400, "1.5",
    '"\\u0000"', '"a\\u0000b"', '"\\ud800"', '"\\udfff x"', '"\\ud83d\\ude00"', '"\\u00b2"',
    '"\\u0663\\u0664"', '"\\uff11"', '""', '" "', '"\\n"', '"\\u202e"', "true", "false", "null",
    "[]", "{}", "[[[[[[[[[[]]]]]]]]]]", "[" * 200 + "]" * 200, '{"a": ' * 100 + "1" + "}" * 100,
    '"' + "x" * 20_000 + '"', "[" + ",".join(["1"] * 5000) + "]", '{"uuid": "1"}',
    '[{"uuid": null}]', '["1", 2, null]', '[255, 256]', "[-1]", "[0, 1, 2]",
]
TOP_LEVEL_RAW = [
    "", "{", "}", "[]", "null", "1", '"text"', "{}", '{"type": 1}', '{"type": null}',
    '{"type": "ping_pong"}', '{"type": "ping_pong", "jsonapi": null}', "\x00", "\ufeff{}",
    '{"type": "ping_pong", "jsonapi": {"version": "\\u00b2"}}',
    '{"type": "\\ud800", "jsonapi": {"version": "1.0"}}',
    '{"type": "ping_pong", "jsonapi": {"version": "1.0"}, "meta": [1]}',
    '{"type": "ping_pong", "jsonapi": {"version": "1.0"}, "data": []}',
    '{"type": "ping_pong", "jsonapi": {"version": "1.0"}} trailing',
]
PLACES = [
    ("data", "time"), ("data", "meta"), ("data", "flow"), ("data", "message"), ("data", "user"),
    ("flow", "uuid"), ("flow", "type"), ("flow", "title"), ("flow", "info"), ("flow", "users"),
    ("flow", "owner"), ("flow", "message_start"), ("flow", "message_end"), ("flow", "time"),
    ("message", "uuid"), ("message", "client_id"), ("message", "text"),
    ("message", "file_picture"), ("message", "emoji"), ("message", "edited_status"),
    ("user", "uuid"), ("user", "auth_id"), ("user", "login"), ("user", "password"),
    ("user", "username"), ("user", "email"), ("user", "avatar"), ("user", "is_bot"),
    ("jsonapi", "version"), ("jsonapi", "revision"), ("top", "meta"), ("top", "errors"),
    ("top", "data"), ("top", "jsonapi"), ("top", "type"),
]


def base_request(kind: str, me: Client, flow: str, message: str) -> dict[str, Any]:
    user = {"uuid": me.uuid, "auth_id": me.auth_id, "login": me.login,
            "password": "secret-password"}
    return {"type": kind, "jsonapi": {"version": "1.0", "revision": "17"}, "meta": None,
            "data": {"time": 0, "user": [user, {"uuid": me.uuid}],
                     "flow": [{"uuid": flow, "type": "group", "title": "t", "users": []}],
                     "message": [{"uuid": message, "client_id": 1, "text": "fuzz"}]}}


def mutate(request: dict[str, Any], rng: random.Random) -> str:
    """The request as JSON text with one to three places replaced by hostile raw JSON."""
    marks: dict[str, str] = {}
    for number in range(rng.randint(1, 3)):
        where, key = rng.choice(PLACES)
        mark = f"@@{number}@@"
        marks[f'"{mark}"'] = rng.choice(HOSTILE_RAW)
        if where == "top":
            request[key] = mark
        elif where in ("data", "jsonapi"):
            target = request.get(where)
            if isinstance(target, dict):
                target[key] = mark
        else:
            data = request.get("data")
            items = data.get(where) if isinstance(data, dict) else None
            if isinstance(items, list) and items and isinstance(items[0], dict):
                items[0][key] = mark
    text = json.dumps(request)
    for mark, raw in marks.items():
        text = text.replace(mark, raw, 1)
    return text


def expected_type(text: str) -> str | None:
    """The `type` the answer must echo: the request's when it is a readable string."""
    try:
        raw = json.loads(text)
    except ValueError:
        return "error"
    if not isinstance(raw, dict):
        return "error"
    kind = raw.get("type")
    if not isinstance(kind, str) or any(0xD800 <= ord(c) <= 0xDFFF or c == "\0" for c in kind):
        return "error"
    return kind if len(kind) <= 64 else None  # an over-long type may be refused either way


def frames(me: Client, flow: str, message: str) -> Iterator[str]:
    rng = random.Random(SEED)
    yield from TOP_LEVEL_RAW
    for _ in range(FRAMES_PER_METHOD):
        for kind in METHODS:
            if kind == "delete_user":
                continue  # a fuzzed frame must never end the fuzzer's own account
            yield mutate(base_request(kind, me, flow, message), rng)


@pytest.fixture(params=DATABASE_KINDS)
def fuzzed(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ServerProcess]:
    env = {"MORELIA_SERVER_RATE_LIMIT": "100000", "MORELIA_SERVER_RATE_BURST": "100000"}
    with running_server(request.param, tmp_path, env, in_process=True) as server:
        yield server


async def test_fuzzed_frames_get_one_answer_each_and_break_nothing(
        fuzzed: ServerProcess) -> None:
    fuzzer, watcher = await Client.connect(fuzzed.url), await Client.connect(fuzzed.url)
    try:
        await fuzzer.register("fuzzer")
        await watcher.register("watcher", push=True)
        flow = await fuzzer.group("fuzzed", users=[watcher.uuid])
        sent = await fuzzer.send(flow, "a message to aim at")
        message = sent["data"]["message"][0]["uuid"]
        count = 0
        for text in frames(fuzzer, flow, message):
            await fuzzer.ws.send(text)
            raw = await asyncio.wait_for(fuzzer.ws.recv(), 10)
            answer = json.loads(raw)
            assert answer["meta"] is None, (text[:300], answer)
            code = answer["errors"]["code"]
            assert code in KNOWN_CODES, (text[:300], answer)
            kind = expected_type(text)
            assert kind is None or answer["type"] == kind, (text[:300], answer)
            count += 1
        assert count > 1500
        # The fuzzer's connection is open and answers; the others are served and pushed to.
        reply = await fuzzer.call("ping_pong")
        assert reply["errors"]["code"] == 200
        watcher.pushes.clear()
        after = await fuzzer.send(flow, "after the fuzzing", client_id=99)
        assert after["errors"]["code"] == 200
        while True:
            push = await watcher.push(timeout=10)
            texts = [item["text"] for item in push["data"]["message"]]
            if "after the fuzzing" in texts:
                break
        fresh = await Client.connect(fuzzed.url)
        try:
            await fresh.register("fresh")
            assert (await fresh.call("ping_pong"))["errors"]["code"] == 200
        finally:
            await fresh.close()
    finally:
        await fuzzer.close()
        await watcher.close()
    assert "Traceback" not in fuzzed.log()
    assert "ERROR" not in fuzzed.log()
