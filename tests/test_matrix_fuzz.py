"""Hostile requests at every Matrix endpoint of a live server, from a seeded generator.

Every route in the route table gets malformed and hostile bodies, query parameters, path
segments and credentials. Each request must get one answer: never a 5xx, always JSON, an
`errcode` on every error; afterwards the server still serves other users (a message sent
after the fuzzing reaches another user's /sync), and its log holds no traceback or ERROR.
"""

from __future__ import annotations

import json
import os
import random
from typing import Any

import httpx
import pytest

from mod.protocol.matrix.dispatch import table
from mod.protocol.matrix.routes import ROUTES
from tests.test_matrix_support import SERVER_NAME, Matrix, sync_until

pytestmark = pytest.mark.anyio

SEED = int(os.environ.get("MORELIA_FUZZ_SEED", "20261201"))
ROUNDS = 8  # requests per (route, method); about 1,000 requests in all

FIELDS = ["type", "user", "password", "device_id", "identifier", "username", "auth",
          "session", "displayname", "name", "topic", "invite", "preset", "is_direct",
          "visibility", "initial_state", "content", "state_key", "room_version", "user_id",
          "reason", "msgtype", "body", "m.new_content", "m.relates_to", "rel_type",
          "event_id", "room", "timeline", "limit", "inhibit_login", "format", "url"]

RAW_BODIES = [
    b"", b" ", b"{", b"}", b"[]", b"null", b"0", b'"x"', b"NaN", b"-Infinity", b"\xff\xfe",
    b"\x00", b'{"a":NaN}', b'{"a":Infinity}', b'{"a":1e999}', b'{"a":' + b"9" * 5000 + b"}",
    b"[" * 5000, b"[" * 200 + b"]" * 200, b'{"a":' * 100 + b"1" + b"}" * 100,
    b'{"\\u0000":1}', b'{"a":"\\ud800"}', b'{"a":"\\udfff\\ud800"}', b'{"a":"\\u0000"}',
    b'{"a":1,"a":2}', b'{"type":"m.login.password","user":"\\u0000","password":"\\ud800"}',
    b'{"msgtype":"m.text","body":"\\ud83d"}', "{\"body\":\"\u00e9\u2028\"}".encode(),
]

SEGMENTS = ["", "%00", "%0A", "%0D%0A", "%C2%B2", "%D9%A1%D9%A2", "9" * 5000, "%ED%A0%80",
            "%FF", "!1:" + SERVER_NAME, "!%C2%B2:" + SERVER_NAME, "@x:" + SERVER_NAME,
            "@%00:" + SERVER_NAME, "$m1", "$1.%C2%B2", "$" + "9" * 40, "..", "%2E%2E%2F",
            "m.room.message", "m.room.name", "m.room.topic", "%20", "a" * 300, "%F0%9F%98%80",
            "#alias:" + SERVER_NAME]

QUERY_NAMES = ["since", "timeout", "limit", "from", "to", "dir", "filter", "full_state",
               "membership", "not_membership", "username", "kind", "set_presence"]

QUERY_VALUES = ["", "%00", "%0A", "%C2%B2", "1%C2%B2", "%D9%A1", "9" * 5000, "-1", "s-1",
                "s" + "9" * 30, "s1", "b", "f", "x", "true", "%7B", "%7B%22room%22%3ANaN%7D",
                "W1tbW1tbW1tbW10", "e30", "%ED%A0%80", "%FF", "join", "user", "guest",
                "1000000000000000000000"]


def hostile_value(rng: random.Random, depth: int = 0) -> Any:
    """A JSON-ish value: of a wrong type, out of range, badly encoded or deeply nested."""
    roll = rng.random()
    if depth < 3 and roll < 0.25:
        return {rng.choice(FIELDS): hostile_value(rng, depth + 1)
                for _ in range(rng.randint(0, 3))}
    if depth < 3 and roll < 0.35:
        return [hostile_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    return rng.choice([
        None, True, False, 0, -1, 2**53, 2**64, -(2**70), 1.5, float("nan"), float("inf"),
        "", "x", "a\x00b", "\ud800", "\udc00x", "\u00b2", "\u0661\u0662", "x" * 1000,
        "@x:" + SERVER_NAME, "!1:" + SERVER_NAME, "$m1", "m.text", "m.login.password",
        "m.login.dummy", "m.id.user", "private_chat", "m.replace", nested(rng.randint(60, 300)),
    ])


def nested(depth: int) -> Any:
    value: Any = "deep"
    for _ in range(depth):
        value = [value]
    return value


def hostile_body(rng: random.Random) -> bytes:
    if rng.random() < 0.35:
        return rng.choice(RAW_BODIES)
    body = {rng.choice(FIELDS): hostile_value(rng) for _ in range(rng.randint(1, 5))}
    try:
        return json.dumps(body).encode()  # NaN, Infinity, surrogates as \\u escapes
    except RecursionError:
        return b'{"a":' + b"[" * 400 + b"]" * 400 + b"}"


def hostile_path(rng: random.Random, template: str, known: dict[str, str]) -> str:
    parts = []
    for part in template.split("/"):
        if part.startswith("{"):
            name = part[1:-1]
            if name in known and rng.random() < 0.5:
                parts.append(known[name])
            else:
                parts.append(rng.choice(SEGMENTS))
        else:
            parts.append(part)
    return "/".join(parts)


def hostile_query(rng: random.Random) -> str:
    pairs = [f"{rng.choice(QUERY_NAMES)}={rng.choice(QUERY_VALUES)}"
             for _ in range(rng.randint(0, 3))]
    return "?" + "&".join(pairs) if pairs else ""


def check_answer(method: str, url: str, response: httpx.Response) -> None:
    where = f"{method} {url[:200]} -> {response.status_code} {response.text[:300]}"
    assert response.status_code < 500, where
    assert response.headers.get("content-type") == "application/json", where
    body = response.json()
    if response.status_code >= 400:
        interactive = response.status_code == 401 and "flows" in body  # /register's stages
        assert interactive or isinstance(body.get("errcode"), str), where
        assert "Traceback" not in response.text, where


async def test_fuzz_every_matrix_endpoint(mx: Matrix) -> None:
    rng = random.Random(SEED)
    fuzzer, alice, bob = await mx.user("fz"), await mx.user(), await mx.user()
    room = await mx.room(fuzzer)
    shared = await mx.room(alice, bob)
    sent = await fuzzer.room_send(room, "m.room.message", {"msgtype": "m.text", "body": "x"})
    known = {"roomId": room, "roomIdOrAlias": room, "userId": fuzzer.user_id,
             "eventId": str(getattr(sent, "event_id", "$m1")), "eventType": "m.room.message",
             "type": "m.direct", "txnId": "t", "receiptType": "m.read", "filterId": "e30"}
    tokens = [fuzzer.access_token, None, "not-a-token", "%00%FF"]
    count = 0
    statuses: dict[int, int] = {}
    templates = table(ROUTES)
    for template in sorted(templates):
        for method in sorted(templates[template]):
            for number in range(ROUNDS):
                path = hostile_path(rng, template, known)
                if "{txnId}" in template:  # a new transaction each time, not retries
                    path = path.replace("/t", f"/t{count}") if path.endswith("/t") else path
                url = path + hostile_query(rng)
                token = rng.choice(tokens) if number else fuzzer.access_token
                if template.endswith("/logout") or template.endswith("/logout/all"):
                    token = rng.choice(tokens[1:])  # keep the fuzzer logged in
                headers = {"Authorization": f"Bearer {token}"} if token else {}
                body = hostile_body(rng) if method in ("POST", "PUT") else b""
                response = await mx.http.request(method, url, content=body, headers=headers)
                check_answer(method, url, response)
                statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
                count += 1
    assert count > 500
    # the hostile input got past authentication and routing, and some of it was taken
    assert statuses.get(200, 0) > 20 and statuses.get(400, 0) > 100, statuses

    # The server still serves everyone, and delivery goes on.
    after = await alice.room_send(shared, "m.room.message",
                                  {"msgtype": "m.text", "body": "after the fuzzing"})
    assert not isinstance(after, Exception)
    await sync_until(bob, shared, lambda e: e["content"].get("body") == "after the fuzzing")
    log = mx.server.log()
    assert "Traceback" not in log, log[-4000:]
    assert "| ERROR" not in log, [line for line in log.splitlines() if "| ERROR" in line][:5]
