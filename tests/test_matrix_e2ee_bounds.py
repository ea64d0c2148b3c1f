"""End-to-end encryption bounds (docs/BOUNDS.md), against a real server on each database:
one-time keys per device, to-device messages waiting per sender and recipient, carried per
/sync and sent per second, device names and IDs, signatures on a key. Each test pushes past
a bound and shows that another user is still served meanwhile."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from mod.service.bounds import MAX_DEVICE_NAME
from tests.support import DATABASE_KINDS, ServerProcess, running_server
from tests.test_matrix_e2ee import OTK, V3, Account, account, shared_room
from tests.test_matrix_support import (
    PASSWORD,
    SERVER_NAME,
    Matrix,
    login_name,
    matrix_session,
)

# server_process: a rate is measured, which a server sharing the tests' process would skew.
pytestmark = [pytest.mark.anyio, pytest.mark.server_process, pytest.mark.slow]

MAX_ONE_TIME_KEYS = 200  # [MATRIX] defaults
TO_DEVICE_PENDING = 100
TO_DEVICE_PER_SYNC = 100
SYNC_BYTES = 1024 * 1024


def keys(prefix: str, count: int) -> dict[str, Any]:
    return {f"{OTK}:{prefix}{index:05d}": {"key": f"k{prefix}{index}"} for index in range(count)}


async def timed_sends(sender: Account, room: str, count: int) -> list[float]:
    """Seconds each of `count` PUT /send took."""
    took = []
    for index in range(count):
        start = time.monotonic()
        await sender.call("PUT", f"/rooms/{room}/send/m.room.message/t{index}-{time.time_ns()}",
                          {"msgtype": "m.text", "body": f"still here {index}"})
        took.append(time.monotonic() - start)
        await asyncio.sleep(0)
    return took


async def test_one_time_keys_capped_per_device(mx: Matrix) -> None:
    alice = await account(mx, "ALICE")
    bob, carol = await account(mx, "BOB"), await account(mx, "CAROL")
    room = await shared_room(bob, carol)

    # 500 new keys at a time, 30 times (the flood of the issue): each refused whole, quickly,
    # while another user's messages go through
    async def flood() -> list[float]:
        took = []
        for batch in range(30):
            start = time.monotonic()
            refused = await alice.call("POST", "/keys/upload",
                                       {"one_time_keys": keys(f"b{batch}x", 500)}, status=400)
            took.append(time.monotonic() - start)
            assert refused["errcode"] == "M_LIMIT_EXCEEDED", refused
            assert str(MAX_ONE_TIME_KEYS) in refused["error"]
        return took

    uploads, sends = await asyncio.gather(flood(), timed_sends(bob, room, 20))
    assert max(sends) < 3.0, sends
    assert max(uploads) < 3.0, uploads

    # a client topping up stays within the cap; past it the upload is refused whole
    for batch in range(MAX_ONE_TIME_KEYS // 50):
        reply = await alice.call("POST", "/keys/upload", {"one_time_keys": keys(f"t{batch}x", 50)})
        assert reply == {"one_time_key_counts": {OTK: 50 * (batch + 1)}}
    refused = await alice.call("POST", "/keys/upload", {"one_time_keys": keys("over", 1)},
                               status=400)
    assert refused["errcode"] == "M_LIMIT_EXCEEDED"
    # keys already stored are not new: a retried upload still succeeds
    again = await alice.call("POST", "/keys/upload", {"one_time_keys": keys("t0x", 50)})
    assert again == {"one_time_key_counts": {OTK: MAX_ONE_TIME_KEYS}}
    assert (await alice.sync())["device_one_time_keys_count"] == {OTK: MAX_ONE_TIME_KEYS}
    # a claimed key makes room for one more
    await bob.call("POST", "/keys/claim", {"one_time_keys": {alice.user_id: {"ALICE": OTK}}})
    reply = await alice.call("POST", "/keys/upload", {"one_time_keys": keys("later", 1)})
    assert reply == {"one_time_key_counts": {OTK: MAX_ONE_TIME_KEYS}}

    # key names are bounded, and fallback keys are one per algorithm for a few algorithms
    bad = await alice.call("POST", "/keys/upload",
                           {"one_time_keys": {f"{OTK}:{'x' * 300}": {"key": "k"}}}, status=400)
    assert bad["errcode"] == "M_TOO_LARGE"
    many = {f"alg{index}:F": {"key": "f"} for index in range(9)}
    bad = await alice.call("POST", "/keys/upload", {"fallback_keys": many}, status=400)
    assert bad["errcode"] == "M_LIMIT_EXCEEDED"


async def test_to_device_flood_bounded_and_delivered_in_order_once(mx: Matrix) -> None:
    # the attacker shares no room with the victim; the victim's device has never synced
    attacker, victim = await account(mx, "ATTACK"), await account(mx, "VICTIM")
    bob, carol = await account(mx, "BOB"), await account(mx, "CAROL")
    room = await shared_room(bob, carol)
    padding = "x" * 60_000

    async def flood() -> list[int]:
        accepted = []
        for index in range(400):
            response = await mx.raw(
                "PUT", f"{V3}/sendToDevice/m.room.encrypted/flood{index}", attacker.token,
                json={"messages": {victim.user_id: {victim.device: {
                    "seq": index, "ciphertext": padding}}}})
            if response.status_code == 200:
                accepted.append(index)
            else:
                assert response.status_code == 429, response.text
                assert response.json()["errcode"] == "M_LIMIT_EXCEEDED"
        return accepted

    accepted, sends = await asyncio.gather(flood(), timed_sends(bob, room, 20))
    assert max(sends) < 3.0, sends
    assert 0 < len(accepted) <= TO_DEVICE_PENDING, len(accepted)

    # the victim gets them over several /syncs, each bounded, in order, each once
    seen: list[int] = []
    since = None
    syncs = 0
    while True:
        params: dict[str, Any] = {"timeout": 0} | ({"since": since} if since else {})
        response = await mx.raw("GET", f"{V3}/sync", victim.token, params=params)
        assert response.status_code == 200, response.text
        assert len(response.content) < SYNC_BYTES + 100_000, len(response.content)
        body = response.json()
        events = body.get("to_device", {}).get("events", [])
        assert len(events) <= TO_DEVICE_PER_SYNC
        seen.extend(event["content"]["seq"] for event in events)
        since = body["next_batch"]
        syncs += 1
        if not events:
            break
    assert seen == accepted
    assert syncs > 2
    # once the victim has them, the attacker may send again
    await attacker.call("PUT", "/sendToDevice/m.room.encrypted/after",
                        {"messages": {victim.user_id: {victim.device: {"seq": -1}}}})


async def test_to_device_rate_per_sender(mx: Matrix) -> None:
    sender = await account(mx, "SENDER")
    other = await account(mx, "OTHER")
    recipients = [await account(mx, f"R{index}") for index in range(4)]
    refused: list[dict[str, Any]] = []
    for index in range(200):
        recipient = recipients[index % 4]
        response = await mx.raw("PUT", f"{V3}/sendToDevice/m.dummy/r{index}", sender.token,
                                json={"messages": {recipient.user_id: {"*": {"n": index}}}})
        if response.status_code == 429:
            refused.append(response.json())
        else:
            assert response.status_code == 200, response.text
    assert refused, "no request was refused"
    assert all(body["errcode"] == "M_LIMIT_EXCEEDED" and body["retry_after_ms"] >= 1000
               for body in refused)
    # another sender is not held back
    await other.call("PUT", "/sendToDevice/m.dummy/mine",
                     {"messages": {recipients[0].user_id: {"*": {"n": "other"}}}})


async def test_device_display_name_bounded(mx: Matrix) -> None:
    alice = await account(mx, "ALICE", name="laptop")
    long_name = "n" * 60_000
    refused = await alice.call("PUT", f"/devices/{alice.device}", {"display_name": long_name},
                               status=400)
    assert refused["errcode"] == "M_TOO_LARGE"
    assert str(MAX_DEVICE_NAME) in refused["error"]
    assert (await alice.call("GET", f"/devices/{alice.device}"))["display_name"] == "laptop"
    await alice.call("PUT", f"/devices/{alice.device}", {"display_name": "d" * MAX_DEVICE_NAME})

    # at login: refused, and no device made
    response = await mx.raw("POST", f"{V3}/login", json={
        "type": "m.login.password", "identifier": {"type": "m.id.user", "user": alice.login},
        "password": PASSWORD, "device_id": "LONGNAME", "initial_device_display_name": long_name})
    assert response.status_code == 400 and response.json()["errcode"] == "M_TOO_LARGE"
    response = await mx.raw("POST", f"{V3}/login", json={
        "type": "m.login.password", "identifier": {"type": "m.id.user", "user": alice.login},
        "password": PASSWORD, "device_id": "D" * 300})
    assert response.status_code == 400 and response.json()["errcode"] == "M_TOO_LARGE"
    devices = (await alice.call("GET", "/devices"))["devices"]
    assert [device["device_id"] for device in devices] == [alice.device]

    # at registration: refused, and no account made
    login = login_name("longname")
    response = await mx.raw("POST", f"{V3}/register", json={
        "username": login, "password": PASSWORD, "auth": {"type": "m.login.dummy"},
        "initial_device_display_name": long_name})
    assert response.status_code == 400 and response.json()["errcode"] == "M_TOO_LARGE"
    available = await mx.raw("GET", f"{V3}/register/available", params={"username": login})
    assert available.json() == {"available": True}

    # other users are served meanwhile
    bob = await account(mx, "BOB", name="phone")
    assert (await bob.call("GET", f"/devices/{bob.device}"))["display_name"] == "phone"


async def test_signatures_on_a_key_bounded(mx: Matrix) -> None:
    alice = await account(mx, "ALICE")
    await alice.call("POST", "/keys/upload", {"device_keys": alice.device_keys()})
    failures: dict[str, Any] = {}
    for round_ in range(4):
        signed = alice.device_keys() | {"signatures": {alice.user_id: {
            f"ed25519:S{round_}x{index}": "s" * 1000 for index in range(30)}}}
        reply = await alice.call("POST", "/keys/signatures/upload",
                                 {alice.user_id: {alice.device: signed}})
        failures = reply["failures"]
        if failures:
            break
    assert failures[alice.user_id][alice.device]["error"] == "too many signatures"
    stored = (await alice.call("POST", "/keys/query", {"device_keys": {alice.user_id: []}}))[
        "device_keys"][alice.user_id][alice.device]
    assert len(str(stored)) < 70_000


async def test_push_rules_bounded(mx: Matrix) -> None:
    alice, bob = await account(mx, "ALICE"), await account(mx, "BOB")
    bad = await alice.call("PUT", f"/pushrules/global/content/{'r' * 300}",
                           {"actions": ["notify"], "pattern": "x"}, status=400)
    assert bad["errcode"] == "M_TOO_LARGE"
    big = {"actions": ["notify", {"set_tweak": "sound", "value": "s" * 50_000}],
           "pattern": "p"}
    refused = None
    for index in range(8):
        response = await mx.raw("PUT", f"{V3}/pushrules/global/content/big{index}",
                                 alice.token, json=big)
        if response.status_code != 200:
            refused = response
            break
    assert refused is not None and refused.status_code == 400, "the rule set grew unbounded"
    assert refused.json()["errcode"] == "M_TOO_LARGE"
    rules = await alice.call("GET", "/pushrules/")
    assert len(str(rules)) < 300_000
    await bob.call("PUT", "/pushrules/global/content/mine", {"actions": ["notify"],
                                                             "pattern": "hello"})


@pytest.fixture(scope="module", params=DATABASE_KINDS)
def small_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
                 ) -> Iterator[ServerProcess]:
    """A server with low bounds, to reach them quickly."""
    with running_server(request.param, tmp_path_factory.mktemp("bounds"), env={
            "MORELIA_MATRIX_SERVER_NAME": SERVER_NAME, "MORELIA_MATRIX_MAX_ACCOUNT_DATA": "20",
            "MORELIA_MATRIX_MAX_ONE_TIME_KEYS": "10"}) as server:
        yield server


@pytest.fixture
async def small(small_server: ServerProcess) -> AsyncIterator[Matrix]:
    async for matrix in matrix_session(small_server):
        yield matrix


async def test_account_data_entries_bounded(small: Matrix) -> None:
    alice, bob = await account(small, "ALICE"), await account(small, "BOB")
    for index in range(20):
        await alice.call("PUT", f"/user/{alice.user_id}/account_data/t.{index}", {"n": index})
    refused = await alice.call("PUT", f"/user/{alice.user_id}/account_data/t.more", {"n": 1},
                               status=400)
    assert refused["errcode"] == "M_LIMIT_EXCEEDED" and "20" in refused["error"]
    # changing one kept is allowed; another user is not held back
    await alice.call("PUT", f"/user/{alice.user_id}/account_data/t.0", {"n": "again"})
    await bob.call("PUT", f"/user/{bob.user_id}/account_data/t.0", {"n": 0})


async def test_one_time_keys_cap_is_a_setting(small: Matrix) -> None:
    alice = await account(small, "ALICE")
    assert await alice.call("POST", "/keys/upload", {"one_time_keys": keys("a", 10)}) == {
        "one_time_key_counts": {OTK: 10}}
    refused = await alice.call("POST", "/keys/upload", {"one_time_keys": keys("b", 1)},
                               status=400)
    assert refused["errcode"] == "M_LIMIT_EXCEEDED" and "10" in refused["error"]


async def test_to_device_request_bounds(mx: Matrix) -> None:
    sender, victim, other = (await account(mx, "SENDER"), await account(mx, "VICTIM"),
                             await account(mx, "OTHER"))
    # one message's content is bounded by the body: at most 64 KiB
    response = await mx.raw("PUT", f"{V3}/sendToDevice/m.room.encrypted/big", sender.token,
                            json={"messages": {victim.user_id: {victim.device: {
                                "ciphertext": "x" * 70_000}}}})
    assert response.status_code == 413 and response.json()["errcode"] == "M_TOO_LARGE"
    # at most 500 messages in one request
    many = {f"D{index}": {"n": index} for index in range(501)}
    response = await mx.raw("PUT", f"{V3}/sendToDevice/m.dummy/many", sender.token,
                            json={"messages": {victim.user_id: many}})
    assert response.status_code == 413 and response.json()["errcode"] == "M_TOO_LARGE"
    # a type of at most 255 characters
    response = await mx.raw("PUT", f"{V3}/sendToDevice/{'t' * 256}/long", sender.token,
                            json={"messages": {victim.user_id: {victim.device: {}}}})
    assert response.status_code == 400, response.text
    synced = await victim.sync()
    assert synced.get("to_device", {}).get("events", []) == []
    # another sender is served
    await other.call("PUT", "/sendToDevice/m.dummy/fine",
                     {"messages": {victim.user_id: {victim.device: {"n": 1}}}})
    synced = await victim.sync(synced["next_batch"])
    assert [event["content"] for event in synced["to_device"]["events"]] == [{"n": 1}]
