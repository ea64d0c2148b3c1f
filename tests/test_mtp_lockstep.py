"""Clients written for the original server: lockstep by default, pushes only when asked.

The client here is written the way MoreliaTalk's Flutter client is: it sends a request and
takes the next frame on the socket as the answer, and it writes every key of every object
(null when unset), files as arrays of byte values, and `jsonapi.revision`.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import websockets

from mod.protocol.mtp.api import Response
from tests.support import DATABASE_KINDS, REDIS_URI, Client, ServerProcess, running_server
from tests.test_scaleout import broker_env, needs_postgres, postgres_database

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

PASSWORD = "lockstep-password"
USER_KEYS = ("uuid", "login", "username", "bio", "avatar", "password", "is_bot", "auth_id",
             "token_ttl", "email", "time_created")
FLOW_KEYS = ("uuid", "time", "type", "title", "info", "owner", "users", "message_start",
             "message_end")
MESSAGE_KEYS = ("uuid", "client_id", "text", "from_user", "time", "from_flow", "file_picture",
                "file_video", "file_audio", "file_document", "emoji", "edited_time",
                "edited_status")


def _full(keys: tuple[str, ...], given: dict[str, Any]) -> dict[str, Any]:
    return {key: given.get(key) for key in keys}


def dart_frame(kind: str, *, user: list[dict[str, Any]] | None = None,
               flow: list[dict[str, Any]] | None = None,
               message: list[dict[str, Any]] | None = None, time: int | None = None,
               meta: Any = None) -> str:
    """A request as json_serializable writes it: every key present, null when unset."""
    data = {
        "time": time,
        "user": [_full(USER_KEYS, item) for item in user] if user is not None else None,
        "flow": [_full(FLOW_KEYS, item) for item in flow] if flow is not None else None,
        "message": ([_full(MESSAGE_KEYS, item) for item in message]
                    if message is not None else None),
        "meta": None,
    }
    return json.dumps({"type": kind, "data": data, "errors": None,
                       "jsonapi": {"version": "1.0", "revision": "17"}, "meta": meta})


class Lockstep:
    """Sends a request, then reads exactly one frame: the answer."""

    def __init__(self, ws: websockets.ClientConnection) -> None:
        self.ws = ws
        self.uuid = ""
        self.auth_id = ""
        self.login = ""
        self.meta: Any = None  # sent with every request

    @classmethod
    async def connect(cls, url: str) -> Lockstep:
        return cls(await websockets.connect(url, max_size=None))

    async def close(self) -> None:
        await self.ws.close()

    @property
    def me(self) -> dict[str, Any]:
        return {"uuid": self.uuid, "auth_id": self.auth_id}

    async def ask(self, kind: str, **fields: Any) -> dict[str, Any]:
        fields.setdefault("meta", self.meta)
        await self.ws.send(dart_frame(kind, **fields))
        text = await asyncio.wait_for(self.ws.recv(), 10)
        Response.model_validate_json(text)
        answer: dict[str, Any] = json.loads(text)
        assert answer["type"] == kind and answer["meta"] is None, (kind, answer)
        return answer

    async def call(self, kind: str, code: int = 200, *, user: list[dict[str, Any]] | None = None,
                   **fields: Any) -> dict[str, Any]:
        answer = await self.ask(kind, user=[self.me, *(user or [])], **fields)
        assert answer["errors"]["code"] == code, answer
        return answer

    async def register(self, login: str) -> None:
        answer = await self.ask("register_user", user=[{"login": login, "password": PASSWORD,
                                                        "username": login}])
        assert answer["errors"]["code"] == 201, answer
        self.uuid = answer["data"]["user"][0]["uuid"]
        self.auth_id = answer["data"]["user"][0]["auth_id"]
        self.login = login


class Writer:
    """Another member who keeps sending, editing and deleting, and making and joining flows,
    until stopped; it records every change it made, as (event, uuid) pairs."""

    def __init__(self, client: Client, shared: str, reader: str) -> None:
        self.client = client
        self.shared = shared
        self.reader = reader
        self.made: list[tuple[str, str]] = []
        self.stop = asyncio.Event()
        self.joinable: asyncio.Queue[str] = asyncio.Queue()

    async def run(self) -> None:
        client, number = self.client, 0
        while not self.stop.is_set():
            number += 1
            reply = await client.send(self.shared, f"writer {number}", client_id=number)
            assert reply["errors"]["code"] == 200, reply
            message = reply["data"]["message"][0]["uuid"]
            self.made.append(("message_sent", message))
            reply = await client.call("edited_message",
                                      message=[{"uuid": message, "text": f"edited {number}"}])
            assert reply["errors"]["code"] == 200, reply
            self.made.append(("message_edited", message))
            if number % 2:
                reply = await client.call("delete_message", message=[{"uuid": message}])
                assert reply["errors"]["code"] == 200, reply
                self.made.append(("message_deleted", message))
            if number % 5 == 1:
                flow = await client.group(f"writer's {number}", users=[self.reader])
                self.made.append(("flow_created", flow))
            with contextlib.suppress(asyncio.QueueEmpty):
                flow = self.joinable.get_nowait()
                reply = await client.call("join_flow", flow=[{"uuid": flow}])
                assert reply["errors"]["code"] == 200, reply
                self.made.append(("flow_joined", flow))


async def whole_session(me: Lockstep, writer: Writer, host: Client, shared: str
                        ) -> dict[str, str]:
    """Every MTP method once or more, lockstep; returns the uuids of what `me` made.

    `host` is a third user whose flow `me` joins and leaves."""
    made: dict[str, str] = {}
    login = me.login
    answer = await me.ask("authentication", user=[{"login": login, "password": PASSWORD}])
    assert answer["errors"]["code"] == 200, answer
    me.auth_id = answer["data"]["user"][0]["auth_id"]
    await me.call("ping_pong")
    await me.call("get_update", time=0)
    created = await me.call("add_flow", flow=[{"type": "group", "title": "lockstep",
                                               "info": "", "owner": me.uuid,
                                               "users": [{"uuid": me.uuid}]}])
    made["flow_created"] = created["data"]["flow"][0]["uuid"]
    writer.joinable.put_nowait(made["flow_created"])
    await me.call("all_flow")
    picture = bytes(range(256))
    sent = await me.call("send_message", flow=[{"uuid": shared}],
                         message=[{"uuid": "0", "client_id": 77, "text": "hi",
                                   "file_picture": list(picture), "file_video": [],
                                   "file_audio": [], "file_document": [], "emoji": [1, 2]}])
    message = sent["data"]["message"][0]["uuid"]
    made["message_sent"] = message
    page = await me.ask("all_messages", user=[me.me], flow=[{"uuid": shared}])
    assert page["errors"]["code"] in (200, 206), page
    await me.call("edited_message", message=[{"uuid": message, "text": "hi again"}])
    made["message_edited"] = message
    await me.call("delete_message", message=[{"uuid": message}])
    made["message_deleted"] = message
    await me.call("user_info", user=[{"uuid": writer.client.uuid}])
    other = await host.group("to join and leave")
    await me.call("join_flow", flow=[{"uuid": other}])
    made["flow_joined"] = other
    await me.call("leave_flow", flow=[{"uuid": other}])
    made["flow_left"] = other
    for since in (0, int(time.time()) - 1):
        await me.call("get_update", time=since)
    await me.call("ping_pong")
    return made


@contextlib.asynccontextmanager
async def shared_flow(me: Lockstep, writer_client: Client) -> AsyncIterator[str]:
    flow = await writer_client.group("shared", users=[me.uuid])
    yield flow


async def lockstep_run(url: str, writer_url: str) -> None:
    me = await Lockstep.connect(url)
    writer_client = await Client.connect(writer_url)
    host = await Client.connect(writer_url)
    try:
        await me.register(f"flutter-{uuid.uuid4().hex[:8]}")
        await writer_client.register(f"writer-{uuid.uuid4().hex[:8]}")
        await host.register(f"host-{uuid.uuid4().hex[:8]}")
        async with shared_flow(me, writer_client) as shared:
            writer = Writer(writer_client, shared, me.uuid)
            task = asyncio.create_task(writer.run())
            try:
                for _ in range(3):
                    await whole_session(me, writer, host, shared)
            finally:
                writer.stop.set()
                await task
            assert len(writer.made) > 20  # the writer wrote all along
            await me.call("ping_pong")  # still the next frame: nothing was pushed meanwhile
            await me.ask("delete_user", user=[{**me.me, "login": me.login,
                                               "password": PASSWORD}])
    finally:
        await me.close()
        await writer_client.close()
        await host.close()


@pytest.fixture(params=DATABASE_KINDS)
def one_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ServerProcess]:
    with running_server(request.param, tmp_path, in_process=True) as server:
        yield server


async def test_a_lockstep_client_gets_only_answers_while_another_member_writes(
        one_server: ServerProcess) -> None:
    await lockstep_run(one_server.url, one_server.url)


@needs_postgres
@pytest.mark.postgres
@pytest.mark.skipif(not REDIS_URI, reason="MORELIA_TEST_REDIS_URI unset")
async def test_a_lockstep_client_gets_only_answers_while_another_process_writes(
        tmp_path: Path) -> None:
    with postgres_database() as database:
        env = broker_env("redis", database)
        with ServerProcess(tmp_path, env=env) as first, ServerProcess(tmp_path, env=env) as second:
            await lockstep_run(first.url, second.url)


class PushReader(Lockstep):
    """A lockstep client that asked for pushes: frames before an answer are pushes."""

    def __init__(self, ws: websockets.ClientConnection) -> None:
        super().__init__(ws)
        self.frames: list[dict[str, Any]] = []  # pushes and answers, as received

    async def ask(self, kind: str, **fields: Any) -> dict[str, Any]:
        fields.setdefault("meta", self.meta)
        await self.ws.send(dart_frame(kind, **fields))
        while True:
            frame = await self.next_frame(10)
            if frame["meta"] is None:
                assert frame["type"] == kind, frame
                return frame

    async def next_frame(self, timeout: float) -> dict[str, Any]:
        text = await asyncio.wait_for(self.ws.recv(), timeout)
        Response.model_validate_json(text)
        frame: dict[str, Any] = json.loads(text)
        if frame["meta"] is not None:
            assert frame["meta"]["push"] is True and frame["type"] == "get_update", frame
        self.frames.append(frame)
        return frame

    def pushed(self) -> list[tuple[str, str]]:
        """(event, uuid of the message or flow) of every push so far."""
        found = []
        for frame in self.frames:
            if frame["meta"] is not None:
                data = frame["data"]
                subject = (data["message"] or data["flow"])[0]["uuid"]
                found.append((frame["meta"]["event"], subject))
        return found

    def answer_index(self, kind: str, uuid: str) -> int:
        for index, frame in enumerate(self.frames):
            if frame["meta"] is None and frame["type"] == kind and uuid in json.dumps(frame):
                return index
        raise AssertionError(f"no {kind} answer about {uuid}")


async def test_pushes_when_asked_arrive_once_each_after_the_answer(
        one_server: ServerProcess) -> None:
    me = PushReader(await websockets.connect(one_server.url, max_size=None))
    writer_client = await Client.connect(one_server.url)
    host = await Client.connect(one_server.url)
    try:
        await me.register(f"flutter-{uuid.uuid4().hex[:8]}")
        await writer_client.register(f"writer-{uuid.uuid4().hex[:8]}")
        await host.register(f"host-{uuid.uuid4().hex[:8]}")
        me.meta = {"push": True, "client": "ignored"}  # unknown keys are ignored
        await me.call("ping_pong")  # pushes from here on
        shared = await writer_client.group("shared", users=[me.uuid])
        writer = Writer(writer_client, shared, me.uuid)
        task = asyncio.create_task(writer.run())
        try:
            made = await whole_session(me, writer, host, shared)
        finally:
            writer.stop.set()
            await task
        expected = Counter(writer.made)
        expected.update(made.items())
        deadline = time.monotonic() + 10
        while not all(Counter(me.pushed())[key] >= 1 for key in expected):
            assert time.monotonic() < deadline, set(expected) - set(me.pushed())
            with contextlib.suppress(TimeoutError):
                await me.next_frame(max(0.05, deadline - time.monotonic()))
        await me.call("ping_pong")  # whatever was still on its way has arrived before this
        counts = Counter(me.pushed())
        for key in expected:
            assert counts[key] == 1, (key, counts[key])
        # Each push of the reader's own changes comes after the answer that made it.
        pushes = [(index, frame) for index, frame in enumerate(me.frames)
                  if frame["meta"] is not None]
        for event, subject in made.items():
            kind = {"message_sent": "send_message", "message_edited": "edited_message",
                    "message_deleted": "delete_message", "flow_created": "add_flow",
                    "flow_joined": "join_flow", "flow_left": "leave_flow"}[event]
            if kind in ("edited_message", "delete_message", "leave_flow"):
                continue  # their answers name nothing; ordered by the check below
            answer = me.answer_index(kind, subject)
            [(at, _)] = [(index, frame) for index, frame in pushes
                         if frame["meta"]["event"] == event
                         and (frame["data"]["message"] or frame["data"]["flow"])[0]["uuid"]
                         == subject]
            assert at > answer, (event, at, answer)
        # Pushes off: the next frames are answers only.
        me.meta = {"push": False}
        await me.call("ping_pong")
        before = len(me.frames)
        reply = await writer_client.send(shared, "after push off", client_id=10_000)
        assert reply["errors"]["code"] == 200
        me.meta = None
        await me.call("get_update", time=0)
        assert len(me.frames) == before + 1  # only the answer
    finally:
        await me.close()
        await writer_client.close()
        await host.close()


async def test_an_answer_precedes_the_push_of_its_own_change(one_server: ServerProcess) -> None:
    client = await Client.connect(one_server.url)
    try:
        await client.register(f"pusher-{uuid.uuid4().hex[:8]}", push=True)
        for number in range(30):
            await client.ws.send(json.dumps({
                "type": "add_flow", "jsonapi": {"version": "1.0"},
                "data": {"user": [client.cred], "flow": [{"type": "group",
                                                          "title": f"g{number}"}]}}))
            answer = json.loads(await asyncio.wait_for(client.ws.recv(), 10))
            assert answer["type"] == "add_flow" and answer["meta"] is None, answer
            push = json.loads(await asyncio.wait_for(client.ws.recv(), 10))
            assert push["meta"] == {"push": True, "event": "flow_created"}, push
            assert push["data"]["flow"][0]["uuid"] == answer["data"]["flow"][0]["uuid"]
    finally:
        await client.close()


async def test_meta_must_be_an_object_or_null(one_server: ServerProcess) -> None:
    client = await Client.connect(one_server.url)
    try:
        await client.register(f"meta-{uuid.uuid4().hex[:8]}")
        for meta in ([1, 2], "x", 7, True, {"push": "yes"}):
            reply = await client.send_raw(json.dumps({
                "type": "ping_pong", "jsonapi": {"version": "1.0"}, "meta": meta,
                "data": {"user": [client.cred]}}))
            assert reply["type"] == "ping_pong" and reply["errors"]["code"] == 415, reply
            assert "meta" in reply["errors"]["detail"]
        for meta in (None, {}, {"other": [1]}, {"push": None}):
            reply = await client.send_raw(json.dumps({
                "type": "ping_pong", "jsonapi": {"version": "1.0"}, "meta": meta,
                "data": {"user": [client.cred]}}))
            assert reply["errors"]["code"] == 200, reply
    finally:
        await client.close()


async def test_push_asked_by_a_refused_request_is_not_granted(
        one_server: ServerProcess) -> None:
    asker = await Lockstep.connect(one_server.url)
    writer = await Client.connect(one_server.url)
    try:
        await asker.register(f"asker-{uuid.uuid4().hex[:8]}")
        await writer.register(f"writer-{uuid.uuid4().hex[:8]}")
        answer = await asker.ask("ping_pong", user=[{"uuid": asker.uuid, "auth_id": "wrong"}],
                                 meta={"push": True})
        assert answer["errors"]["code"] == 401
        answer = await asker.ask("authentication", user=[{"login": "nobody-here",
                                                          "password": "x"}],
                                 meta={"push": True})
        assert answer["errors"]["code"] == 401
        flow = await writer.group("watched", users=[asker.uuid])
        await writer.send(flow, "not pushed")
        await asker.call("ping_pong")  # the next frame is the answer: nothing was pushed
    finally:
        await asker.close()
        await writer.close()


@pytest.mark.parametrize(("field", "value"), [
    ("file_picture", [0, 256]), ("file_audio", [-1]), ("emoji", [1.5]), ("file_video", [True]),
    ("file_document", {"0": 1}), ("emoji", 12), ("file_picture", [[1]]),
])
async def test_byte_fields_refuse_anything_but_a_string_or_byte_values(
        one_server: ServerProcess, field: str, value: Any) -> None:
    client = await Lockstep.connect(one_server.url)
    try:
        await client.register(f"bytes-{uuid.uuid4().hex[:8]}")
        answer = await client.ask("send_message", user=[client.me], flow=[{"uuid": "1"}],
                                  message=[{"client_id": 1, "text": "x", field: value}])
        assert answer["errors"]["code"] == 415, answer
        assert field in answer["errors"]["detail"], answer
    finally:
        await client.close()


async def test_files_as_byte_values_are_stored_as_base64(one_server: ServerProcess) -> None:
    client = await Lockstep.connect(one_server.url)
    try:
        login = f"avatar-{uuid.uuid4().hex[:8]}"
        answer = await client.ask("register_user", user=[{"login": login, "password": PASSWORD,
                                                          "avatar": [255, 216, 255]}])
        assert answer["errors"]["code"] == 201, answer
        client.uuid = answer["data"]["user"][0]["uuid"]
        client.auth_id = answer["data"]["user"][0]["auth_id"]
        flows = await client.ask("add_flow", user=[client.me], flow=[{
            "type": "group", "title": "t", "users": [{"uuid": client.uuid, "login": None}]}])
        assert flows["errors"]["code"] == 200, flows
        assert flows["data"]["flow"][0]["users"] == [client.uuid]
        flow = flows["data"]["flow"][0]["uuid"]
        picture = bytes(range(256))
        sent = await client.ask("send_message", user=[client.me], flow=[{"uuid": flow}],
                                message=[{"uuid": "0", "client_id": 7, "text": "photo",
                                          "file_picture": list(picture), "file_video": [],
                                          "emoji": [1, 2], "file_audio": "as text"}])
        assert sent["errors"]["code"] == 200, sent
        page = await client.ask("all_messages", user=[client.me], flow=[{"uuid": flow}])
        [stored] = page["data"]["message"]
        assert stored["file_picture"] == base64.b64encode(picture).decode()
        assert stored["file_video"] == "" and stored["emoji"] == "AQI="
        assert stored["file_audio"] == "as text" and stored["file_document"] == ""
        bad = await client.ask("add_flow", user=[client.me], flow=[{
            "type": "group", "title": "t", "users": [{"login": "no uuid"}]}])
        assert bad["errors"]["code"] == 415 and "users" in bad["errors"]["detail"], bad
    finally:
        await client.close()
