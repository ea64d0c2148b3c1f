"""End-to-end encryption across two server processes on one PostgreSQL database (PostgreSQL
broker): to-device messages and device-list changes made on one process end a /sync
waiting on the other, and Element's SDK decrypts a DM whose two users use different
processes."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

import pytest

from tests.support import POSTGRES_URI, ServerProcess, postgres_database
from tests.test_matrix_e2ee import account, shared_room
from tests.test_matrix_e2ee_js import _account, _node_ready, _run
from tests.test_matrix_scaleout import env
from tests.test_matrix_support import Matrix

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
            await asyncio.sleep(0.3)
            started = time.monotonic()
            await alice.call("PUT", "/sendToDevice/m.dummy/t1",
                             {"messages": {bob.user_id: {bob.device: {"n": 1}}}})
            got = await waiting
            assert time.monotonic() - started < 2
            assert [e["content"] for e in got["to_device"]["events"]] == [{"n": 1}]

            waiting = asyncio.create_task(bob.sync(got["next_batch"], timeout=5000))
            await asyncio.sleep(0.3)
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
    why = _node_ready()
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
                      "alice": await _account(one, "ALICEDEV"),
                      "bob": {**await _account(two, "BOBDEV"), "baseUrl": second.http}}
            result = await asyncio.to_thread(_run, config)
            assert result.get("ok"), result
            assert result["body"] == text
        finally:
            await one.close()
            await two.close()
