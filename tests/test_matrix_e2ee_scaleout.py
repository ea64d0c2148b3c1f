"""End-to-end encryption and Element's everyday features across two server processes on one
PostgreSQL database (PostgreSQL broker, and Redis): to-device messages, device-list changes
(keys, new and former room-mates), account data, typing and receipts made on one process
end a /sync waiting on the other; a device's last use and name show on both; and Element's
SDK decrypts a DM whose two users use different processes."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support import POSTGRES_URI, REDIS_URI, ServerProcess, postgres_database
from tests.test_matrix_e2ee import Account, account, device_lists, shared_room
from tests.test_matrix_scaleout import env
from tests.test_matrix_support import SERVER_NAME, Matrix, js_account, node_missing, run_js

pytestmark = [pytest.mark.anyio, pytest.mark.postgres,
              pytest.mark.skipif(not POSTGRES_URI, reason="MORELIA_TEST_POSTGRES_URI unset")]


async def test_to_device_and_device_lists_across_processes(tmp_path: Path) -> None:
    channel = f"morelia_e2e_{uuid.uuid4().hex[:12]}"
    with postgres_database() as database, \
            ServerProcess(tmp_path, env=env(database, channel)) as first, \
            ServerProcess(tmp_path, env=env(database, channel)) as second:
        one, two = Matrix(first), Matrix(second)
        try:
            bob = await account(one, "BOB1")
            alice = await account(two, "ALICE1")
            await shared_room(alice, bob)
            since = (await bob.sync())["next_batch"]

            waiting = asyncio.create_task(bob.sync(since, timeout=5000))
            await first.until_long_polls()
            started = time.monotonic()
            await alice.call("PUT", "/sendToDevice/m.dummy/t1",
                             {"messages": {bob.user_id: {bob.device: {"n": 1}}}})
            got = await waiting
            assert time.monotonic() - started < 2
            assert [e["content"] for e in got["to_device"]["events"]] == [{"n": 1}]

            waiting = asyncio.create_task(bob.sync(got["next_batch"], timeout=5000))
            await first.until_long_polls()
            started = time.monotonic()
            await alice.call("POST", "/keys/upload", {"device_keys": alice.device_keys()})
            changed = await waiting
            assert time.monotonic() - started < 2
            assert changed["device_lists"]["changed"] == [alice.user_id]
            assert changed["to_device"]["events"] == []  # delivered once
        finally:
            await one.close()
            await two.close()


async def test_element_sdk_decrypts_across_processes(tmp_path: Path) -> None:
    why = node_missing()
    if why is not None:
        pytest.skip(why)
    channel = f"morelia_e2e_{uuid.uuid4().hex[:12]}"
    with postgres_database() as database, \
            ServerProcess(tmp_path, env=env(database, channel)) as first, \
            ServerProcess(tmp_path, env=env(database, channel)) as second:
        one, two = Matrix(first), Matrix(second)
        try:
            text = "across two processes 🔐"
            config = {"baseUrl": first.http, "text": text,
                      "alice": await js_account(one, "ALICEDEV"),
                      "bob": {**await js_account(two, "BOBDEV"), "baseUrl": second.http}}
            result = await asyncio.to_thread(run_js, "e2ee.mjs", config)
            assert result.get("ok"), result
            assert result["body"] == text
        finally:
            await one.close()
            await two.close()


async def woken_by(waiter: Account, since: str, act: Callable[[], Awaitable[Any]],
                   seen: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """`act` (on the other process) ends `waiter`'s waiting /sync at once, with what `seen`
    looks for; a batch that ended the wait for something else is followed by the next."""
    waiting = asyncio.create_task(waiter.sync(since, timeout=5000))
    await waiter.mx.server.until_long_polls()
    started = time.monotonic()
    await act()
    got = await waiting
    while not seen(got):
        assert time.monotonic() - started < 4, got
        got = await waiter.sync(got["next_batch"], timeout=5000)
    assert time.monotonic() - started < 2
    return got


def ephemeral(got: dict[str, Any], room: str, kind: str) -> list[dict[str, Any]]:
    joined = got["rooms"]["join"].get(room, {})
    return [e["content"] for e in joined.get("ephemeral", {}).get("events", [])
            if e["type"] == kind]


@pytest.mark.skipif(not REDIS_URI, reason="MORELIA_TEST_REDIS_URI unset")
async def test_element_features_across_processes_with_redis(tmp_path: Path) -> None:
    """Alice on the first process, Bob and Alice's second device on the second (Redis
    broker): each change on one process ends the other's waiting /sync with it."""
    channel = f"morelia_e2e_{uuid.uuid4().hex[:12]}"
    with postgres_database() as database:
        config = {"MORELIA_DATABASE_URI": database, "MORELIA_BROKER_URI": REDIS_URI,
                  "MORELIA_BROKER_CHANNEL": channel, "MORELIA_MATRIX_SERVER_NAME": SERVER_NAME}
        with ServerProcess(tmp_path, env=config) as first, \
                ServerProcess(tmp_path, env=config) as second:
            one, two = Matrix(first), Matrix(second)
            try:
                await features_across(one, two)
            finally:
                await one.close()
                await two.close()


async def features_across(one: Matrix, two: Matrix) -> None:
    alice = await account(one, "ALICE1", name="Alice's laptop")
    alice2 = await account(two, "ALICE2", alice.login)
    bob = await account(two, "BOB1")
    carol = await account(one, "CAROL1")
    room = await shared_room(alice, bob)
    since = {who.device: (await who.sync())["next_batch"] for who in (alice, alice2, bob)}

    # account data: set on one process, echoed to the user's device on the other
    direct = {bob.user_id: [room]}
    got = await woken_by(alice2, since["ALICE2"], lambda: alice.call(
        "PUT", f"/user/{alice.user_id}/account_data/m.direct", direct),
        lambda got: any(e["type"] == "m.direct" for e in got["account_data"]["events"]))
    assert [e["content"] for e in got["account_data"]["events"]
            if e["type"] == "m.direct"] == [direct]
    since["ALICE2"] = got["next_batch"]

    # typing and a receipt
    got = await woken_by(bob, since["BOB1"], lambda: alice.call(
        "PUT", f"/rooms/{room}/typing/{alice.user_id}", {"typing": True, "timeout": 5000}),
        lambda got: bool(ephemeral(got, room, "m.typing")))
    assert ephemeral(got, room, "m.typing")[-1]["user_ids"] == [alice.user_id]
    since["BOB1"] = got["next_batch"]
    event_id = (await alice.call("PUT", f"/rooms/{room}/send/m.room.message/t1",
                                 {"msgtype": "m.text", "body": "read me"}))["event_id"]
    since["ALICE1"] = (await alice.sync(since["ALICE1"]))["next_batch"]
    got = await woken_by(alice, since["ALICE1"], lambda: bob.call(
        "POST", f"/rooms/{room}/receipt/m.read/{event_id}", {}),
        lambda got: bool(ephemeral(got, room, "m.receipt")))
    receipt = ephemeral(got, room, "m.receipt")[-1]
    assert bob.user_id in receipt[event_id]["m.read"]
    since["ALICE1"] = got["next_batch"]

    # to-device, and device lists: keys, a new room-mate, a former one
    since["BOB1"] = (await bob.sync(since["BOB1"]))["next_batch"]
    got = await woken_by(bob, since["BOB1"], lambda: alice.call(
        "PUT", "/sendToDevice/m.dummy/d1", {"messages": {bob.user_id: {"BOB1": {"n": 1}}}}),
        lambda got: bool(got.get("to_device", {}).get("events")))
    assert [e["content"] for e in got["to_device"]["events"]] == [{"n": 1}]
    since["BOB1"] = got["next_batch"]
    got = await woken_by(bob, since["BOB1"], lambda: carol.call(
        "POST", f"/rooms/{room}/join", {}),
        lambda got: carol.user_id in device_lists(got)[0])
    since["BOB1"] = got["next_batch"]
    got = await woken_by(bob, since["BOB1"], lambda: carol.call(
        "POST", f"/rooms/{room}/leave", {}),
        lambda got: carol.user_id in device_lists(got)[1])
    assert device_lists(got)[1] == [carol.user_id]

    # the device's name and last use, written by one process, read on the other
    deadline = time.monotonic() + 5
    while True:
        listed = {d["device_id"]: d for d in (await alice2.call("GET", "/devices"))["devices"]}
        if listed["ALICE1"]["last_seen_ts"] or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.02)
    assert listed["ALICE1"]["display_name"] == "Alice's laptop"
    assert listed["ALICE1"]["last_seen_ip"] == "127.0.0.1"
    assert listed["ALICE1"]["last_seen_ts"] > 0
