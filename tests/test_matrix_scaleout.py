"""Matrix across two server processes on one PostgreSQL database (PostgreSQL broker): a
/sync waiting on one process wakes for a change made on the other, and sync tokens from one
process are good on the other."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

import nio
import pytest

from tests.support import POSTGRES_URI, Client, ServerProcess, postgres_database, unique_login
from tests.test_matrix_support import PASSWORD, SERVER_NAME

pytestmark = [pytest.mark.anyio, pytest.mark.postgres,
              pytest.mark.skipif(not POSTGRES_URI, reason="MORELIA_TEST_POSTGRES_URI unset")]


def env(database: str, channel: str) -> dict[str, str]:
    return {"MORELIA_DATABASE_URI": database, "MORELIA_BROKER_URI": database,
            "MORELIA_BROKER_CHANNEL": channel, "MORELIA_MATRIX_SERVER_NAME": SERVER_NAME}


async def test_two_processes(tmp_path: Path) -> None:
    channel = f"morelia_mx_{uuid.uuid4().hex[:12]}"
    with postgres_database() as database, \
            ServerProcess(tmp_path, env=env(database, channel)) as first, \
            ServerProcess(tmp_path, env=env(database, channel)) as second:
        login = unique_login("mx")
        reader = nio.AsyncClient(first.http, login)
        elsewhere = nio.AsyncClient(second.http, login)
        mtp = await Client.connect(second.url)
        try:
            assert isinstance(await reader.register(login, PASSWORD), nio.RegisterResponse)
            await mtp.register(unique_login("mtp"), push=True)
            flow = await mtp.group("two processes")
            room = f"!{flow}:{SERVER_NAME}"
            assert isinstance(await reader.join(room), nio.JoinResponse)
            await reader.sync(timeout=0)

            # A /sync waiting on the first process wakes for a message sent to the second.
            poll = asyncio.create_task(reader.sync(timeout=5000, since=reader.next_batch))
            await first.until_long_polls()
            sent_at = time.monotonic()
            assert (await mtp.send(flow, "across"))["errors"]["code"] == 200
            response = await asyncio.wait_for(poll, 5)
            assert time.monotonic() - sent_at < 1.0
            assert isinstance(response, nio.SyncResponse)
            assert [e.body for e in response.rooms.join[room].timeline.events
                    if isinstance(e, nio.RoomMessageText)] == ["across"]

            # A Matrix message sent to the first process is pushed on the second.
            sent = await reader.room_send(room, "m.room.message",
                                          {"msgtype": "m.text", "body": "back"})
            assert isinstance(sent, nio.RoomSendResponse), sent
            texts: list[str] = []
            while "back" not in texts:  # (the MTP sender hears its own "across" first)
                frame = await mtp.push(5)
                texts += [message["text"] for message in frame["data"].get("message") or []]
            assert texts == ["across", "back"]

            # The first process's token is good on the second: nothing lost, nothing twice.
            assert isinstance(await elsewhere.login(PASSWORD), nio.LoginResponse)
            await mtp.send(flow, "later", client_id=2)
            moved = await elsewhere.sync(timeout=3000, since=response.next_batch)
            assert isinstance(moved, nio.SyncResponse)
            bodies = [e.body for e in moved.rooms.join[room].timeline.events
                      if isinstance(e, nio.RoomMessageText)]
            while "later" not in bodies:
                more = await elsewhere.sync(timeout=3000, since=elsewhere.next_batch)
                assert isinstance(more, nio.SyncResponse)
                bodies += [e.body for e in more.rooms.join[room].timeline.events
                           if isinstance(e, nio.RoomMessageText)]
            assert bodies == ["back", "later"]
        finally:
            await reader.close()
            await elsewhere.close()
            await mtp.close()


async def test_typing_and_receipts_across_processes(tmp_path: Path) -> None:
    """A typing notice or receipt sent to one process wakes a /sync waiting on the other, and
    a notice's timeout ends it there too."""
    channel = f"morelia_mx_{uuid.uuid4().hex[:12]}"
    with postgres_database() as database, \
            ServerProcess(tmp_path, env=env(database, channel)) as first, \
            ServerProcess(tmp_path, env=env(database, channel)) as second:
        alice = nio.AsyncClient(first.http, unique_login("mx"))
        bob = nio.AsyncClient(second.http, unique_login("mx"))
        try:
            for client in (alice, bob):
                assert isinstance(await client.register(client.user, PASSWORD),
                                  nio.RegisterResponse)
            created = await alice.room_create()
            assert isinstance(created, nio.RoomCreateResponse), created
            room = created.room_id
            assert isinstance(await bob.join(room), nio.JoinResponse)
            await bob.sync(timeout=0)

            def typing(response: nio.SyncResponse) -> list[str] | None:
                joined = response.rooms.join.get(room)
                found = [event for event in joined.ephemeral
                         if isinstance(event, nio.TypingNoticeEvent)] if joined else []
                return list(found[-1].users) if found else None

            poll = asyncio.create_task(bob.sync(timeout=5000, since=bob.next_batch))
            await second.until_long_polls()
            sent_at = time.monotonic()
            assert isinstance(await alice.room_typing(room, True, timeout=800),
                              nio.RoomTypingResponse)
            response = await asyncio.wait_for(poll, 5)
            assert time.monotonic() - sent_at < 1.5
            assert isinstance(response, nio.SyncResponse)
            assert typing(response) == [alice.user_id]

            ended = None
            for _ in range(5):  # the first process logs the end when the timeout passes
                response = await bob.sync(timeout=3000, since=bob.next_batch)
                assert isinstance(response, nio.SyncResponse)
                ended = typing(response)
                if ended is not None:
                    break
            assert ended == []

            message = await alice.room_send(room, "m.room.message",
                                            {"msgtype": "m.text", "body": "read it"})
            assert isinstance(message, nio.RoomSendResponse)
            await alice.sync(timeout=0)
            await bob.update_receipt_marker(room, message.event_id)
            receipts: list[nio.Receipt] = []
            for _ in range(5):
                response = await alice.sync(timeout=3000, since=alice.next_batch)
                assert isinstance(response, nio.SyncResponse)
                joined = response.rooms.join.get(room)
                receipts += [receipt for event in (joined.ephemeral if joined else [])
                             if isinstance(event, nio.ReceiptEvent)
                             for receipt in event.receipts]
                if receipts:
                    break
            assert [(r.event_id, r.receipt_type, r.user_id) for r in receipts] == [
                (message.event_id, "m.read", bob.user_id)]
        finally:
            await alice.close()
            await bob.close()
