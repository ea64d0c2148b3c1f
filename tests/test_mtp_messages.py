"""Messages end to end: send_message, all_messages, get_update, edited_message, delete_message,
ping_pong, stored content and placeholders (PROTOCOL.md)."""

from __future__ import annotations

import asyncio
import base64
import json
import os
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
    running_server,
)

pytestmark = pytest.mark.anyio

LIMIT = 5
FILE_FIELDS = ("file_picture", "file_video", "file_audio", "file_document", "emoji")
MESSAGE_KEYS = {"uuid", "client_id", "text", "from_user", "from_flow", "time", *FILE_FIELDS,
                "edited_time", "edited_status"}
PUBLIC_PROFILE = {"uuid", "username", "is_bot", "avatar", "bio", "time_created"}


@pytest.fixture(scope="module", params=DATABASE_KINDS)
def mtp(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
        ) -> Iterator[ServerProcess]:
    env = {"MORELIA_PROTOCOL_MESSAGES_LIMIT": str(LIMIT)}
    directory = tmp_path_factory.mktemp("messages")
    with running_server(request.param, directory, env, users=250, in_process=True
                        ) as process:
        yield process


async def send(client: Client, flow: str, client_id: int = 1, **content: Any
               ) -> dict[str, Any]:
    return await client.call("send_message", flow=[{"uuid": flow}],
                             message=[{"client_id": client_id, **content}])


async def sent(client: Client, flow: str, text: str, client_id: int = 1, **content: Any
               ) -> dict[str, Any]:
    """Send a message that must be accepted; return the reply's message[0]."""
    reply = await send(client, flow, client_id, text=text, **content)
    return dict(expect_reply(reply, "send_message", 200)["data"]["message"][0])


async def history(client: Client, flow: str, **page: Any) -> list[dict[str, Any]]:
    """All messages of a flow (the flow must hold at most LIMIT of them)."""
    reply = await client.call("all_messages", flow=[{"uuid": flow, **page}])
    return list(expect_reply(reply, "all_messages", 200)["data"]["message"])


async def count(client: Client, flow: str) -> int:
    reply = await client.call("all_messages", flow=[{"uuid": flow}])
    if reply["errors"]["code"] == 206:
        return int(reply["data"]["flow"][0]["message_end"])
    return len(expect_reply(reply, "all_messages", 200)["data"]["message"])


async def update(client: Client, since: int | None = 0) -> dict[str, Any]:
    data = {} if since is None else {"time": since}
    reply = await client.call("get_update", **data)
    return dict(expect_reply(reply, "get_update", 200)["data"])


async def after_second(stamp: int) -> None:
    """Wait until the wall clock is past the whole second `stamp`, so the next change has a
    later time: MTP times are whole seconds, and these tests are about what `time` selects."""
    while int(time.time()) <= stamp:
        await asyncio.sleep(0.01)


# -- send_message -----------------------------------------------------------------------------


async def test_send_message_answers_with_uuid_client_id_author_flow_and_time(
        clients: Clients) -> None:
    alice = await clients.user("send")
    flow = await alice.group("send")
    before = int(time.time())
    message = await sent(alice, flow, "hello", client_id=42)
    assert message["uuid"].isdigit()
    assert message["client_id"] == 42
    assert message["from_user"] == alice.uuid
    assert message["from_flow"] == flow
    assert type(message["time"]) is int and before <= message["time"] <= int(time.time())
    [stored] = await history(alice, flow)
    assert set(stored) >= MESSAGE_KEYS
    assert stored["uuid"] == message["uuid"] and stored["text"] == "hello"
    assert stored["client_id"] == 42 and stored["time"] == message["time"]
    assert stored["edited_status"] is False


async def test_only_members_may_send(clients: Clients) -> None:
    alice = await clients.user("send")
    bob = await clients.user("outsider")
    flow = await alice.group("members only")
    expect_reply(await send(bob, flow, text="let me in"), "send_message", 403)
    assert await count(alice, flow) == 0


async def test_in_a_channel_only_the_owner_may_send(clients: Clients) -> None:
    alice = await clients.user("owner")
    bob = await clients.user("reader")
    channel = await alice.group("news", kind="channel", users=[bob.uuid])
    expect_reply(await send(bob, channel, text="me too"), "send_message", 403)
    await sent(alice, channel, "announcement")
    assert [m["text"] for m in await history(bob, channel)] == ["announcement"]


async def test_in_a_group_and_a_chat_every_member_may_send(clients: Clients) -> None:
    alice = await clients.user("member")
    bob = await clients.user("member")
    for kind in ("group", "chat"):
        flow = await alice.group(kind, kind=kind, users=[bob.uuid])
        await sent(alice, flow, "from alice")
        await sent(bob, flow, "from bob")
        assert [m["from_user"] for m in await history(alice, flow)] == [alice.uuid, bob.uuid]


async def test_send_to_an_unknown_flow_gets_404(clients: Clients) -> None:
    alice = await clients.user("send")
    reply = await send(alice, "1234567", text="anyone?")
    expect_reply(reply, "send_message", 404)
    assert "1234567" in reply["errors"]["detail"]


async def test_send_without_what_it_needs_gets_400(clients: Clients) -> None:
    alice = await clients.user("send")
    flow = await alice.group("send")
    expect_reply(await alice.call("send_message", message=[{"client_id": 1, "text": "x"}]),
                 "send_message", 400)
    expect_reply(await alice.call("send_message", flow=[{"uuid": flow}]), "send_message", 400)
    expect_reply(await alice.call("send_message", flow=[{"uuid": flow}],
                                  message=[{"text": "no client id"}]), "send_message", 400)
    expect_reply(await alice.call("send_message", flow=[{}],
                                  message=[{"client_id": 1, "text": "x"}]), "send_message", 400)
    assert await count(alice, flow) == 0


# -- retry safety -----------------------------------------------------------------------------


async def test_a_retried_send_returns_the_first_message_and_stores_nothing(
        clients: Clients) -> None:
    alice = await clients.user("retry")
    flow = await alice.group("retry")
    first = await sent(alice, flow, "once", client_id=7, file_picture="cGlj", emoji=":)")
    for _ in range(3):
        again = await sent(alice, flow, "once", client_id=7, file_picture="cGlj", emoji=":)")
        assert again == first
    assert await count(alice, flow) == 1


async def test_a_retry_on_another_connection_with_the_same_token_is_still_a_retry(
        clients: Clients) -> None:
    alice = await clients.user("retry")
    flow = await alice.group("retry")
    first = await sent(alice, flow, "once", client_id=8)
    reconnected = await clients.anonymous()
    reconnected.uuid, reconnected.auth_id = alice.uuid, alice.auth_id
    assert (await sent(reconnected, flow, "once", client_id=8))["uuid"] == first["uuid"]
    assert await count(alice, flow) == 1


async def test_a_different_content_client_id_flow_or_token_is_a_new_message(
        clients: Clients) -> None:
    alice = await clients.user("retry")
    flow = await alice.group("retry")
    other_flow = await alice.group("retry too")
    first = await sent(alice, flow, "text", client_id=9)
    uuids = {first["uuid"]}
    uuids.add((await sent(alice, flow, "other text", client_id=9))["uuid"])
    uuids.add((await sent(alice, flow, "text", client_id=10))["uuid"])
    uuids.add((await sent(alice, flow, "text", client_id=9, emoji="+"))["uuid"])
    uuids.add((await sent(alice, other_flow, "text", client_id=9))["uuid"])
    # The same user, logged in again: another auth_id, so another message.
    device = await clients.anonymous()
    reply = await device.call("authentication", auth=False,
                              user=[{"login": alice.login, "password": "secret-password"}])
    user = expect_reply(reply, "authentication", 200)["data"]["user"][0]
    device.uuid, device.auth_id = user["uuid"], user["auth_id"]
    uuids.add((await sent(device, flow, "text", client_id=9))["uuid"])
    assert len(uuids) == 6
    assert await count(alice, flow) == 5
    assert await count(alice, other_flow) == 1


# -- all_messages -----------------------------------------------------------------------------


async def test_all_messages_up_to_the_limit_come_oldest_first_with_200(
        clients: Clients) -> None:
    alice = await clients.user("history")
    bob = await clients.user("history")
    flow = await alice.group("history", users=[bob.uuid])
    texts = [f"message {index}" for index in range(LIMIT)]
    for index, text in enumerate(texts):
        await sent(alice if index % 2 else bob, flow, text, client_id=index)
    messages = await history(bob, flow)
    assert [m["text"] for m in messages] == texts
    assert [m["client_id"] for m in messages] == list(range(LIMIT))
    assert all(set(m) >= MESSAGE_KEYS for m in messages)


async def test_an_empty_flow_has_no_messages(clients: Clients) -> None:
    alice = await clients.user("history")
    flow = await alice.group("empty")
    assert await history(alice, flow) == []


async def test_all_messages_pages_a_long_flow_with_206(clients: Clients) -> None:
    alice = await clients.user("pages")
    flow = await alice.group("long")
    texts = [f"m{index}" for index in range(LIMIT + 2)]
    for index, text in enumerate(texts):
        await sent(alice, flow, text, client_id=index)

    async def page(code: int = 206, **bounds: Any) -> list[str]:
        reply = await alice.call("all_messages", flow=[{"uuid": flow, **bounds}])
        expect_reply(reply, "all_messages", code)
        if code != 206:
            return []
        [meta] = reply["data"]["flow"]
        assert meta["uuid"] == flow
        assert meta["message_start"] == bounds.get("message_start", 0)
        assert meta["message_end"] == len(texts)
        return [m["text"] for m in reply["data"]["message"]]

    assert await page() == texts[:LIMIT]
    assert await page(message_start=LIMIT) == texts[LIMIT:]
    assert await page(message_start=2, message_end=4) == texts[2:4]
    assert await page(message_start=0, message_end=LIMIT) == texts[:LIMIT]
    assert await page(message_start=3, message_end=3 + LIMIT) == texts[3:]
    assert await page(message_start=len(texts)) == []
    await page(403, message_start=0, message_end=LIMIT + 1)
    await page(403, message_start=1, message_end=LIMIT + 3)


async def test_a_range_on_a_short_flow_is_answered_as_a_page(clients: Clients) -> None:
    alice = await clients.user("pages")
    flow = await alice.group("short")
    for index in range(3):
        await sent(alice, flow, f"m{index}", client_id=index)
    reply = await alice.call("all_messages", flow=[{"uuid": flow, "message_start": 1}])
    expect_reply(reply, "all_messages", 206)
    assert [m["text"] for m in reply["data"]["message"]] == ["m1", "m2"]
    assert reply["data"]["flow"][0]["message_end"] == 3


async def test_all_messages_is_for_members_only(clients: Clients) -> None:
    alice = await clients.user("history")
    bob = await clients.user("outsider")
    group = await alice.group("private history")
    await sent(alice, group, "secret")
    reply = await bob.call("all_messages", flow=[{"uuid": group}])
    expect_reply(reply, "all_messages", 403)
    assert "secret" not in json.dumps(reply)


async def test_all_messages_of_an_unknown_or_unnamed_flow(clients: Clients) -> None:
    alice = await clients.user("history")
    expect_reply(await alice.call("all_messages", flow=[{"uuid": "7777"}]), "all_messages", 404)
    expect_reply(await alice.call("all_messages"), "all_messages", 400)


# -- time: get_update and all_messages' data.time --------------------------------------------


async def test_time_filters_of_get_update_and_all_messages(clients: Clients) -> None:
    alice = await clients.user("time")
    bob = await clients.user("time")
    flow = await alice.group("clock", users=[bob.uuid])
    first = await sent(alice, flow, "first", client_id=1)
    await after_second(first["time"])
    second = await sent(bob, flow, "second", client_id=2)
    assert second["time"] > first["time"]

    # get_update: everything at or after `time`.
    data = await update(bob, first["time"])
    assert [m["uuid"] for m in data["message"]] == [first["uuid"], second["uuid"]]
    data = await update(bob, second["time"])
    assert [m["uuid"] for m in data["message"]] == [second["uuid"]]
    data = await update(bob, second["time"] + 1)
    assert data["message"] == []
    # A missing time means 0: everything.
    data = await update(bob, None)
    assert [m["uuid"] for m in data["message"]] == [first["uuid"], second["uuid"]]
    assert [f["uuid"] for f in data["flow"]] == [flow]

    # all_messages: only messages after `time`.
    reply = await bob.call("all_messages", time=first["time"], flow=[{"uuid": flow}])
    messages = expect_reply(reply, "all_messages", 200)["data"]["message"]
    assert [m["uuid"] for m in messages] == [second["uuid"]]
    reply = await bob.call("all_messages", time=first["time"] - 1, flow=[{"uuid": flow}])
    messages = expect_reply(reply, "all_messages", 200)["data"]["message"]
    assert [m["uuid"] for m in messages] == [first["uuid"], second["uuid"]]

    # An edit is a change at its own time: the edited message comes again, edited.
    await after_second(second["time"])
    expect_reply(await alice.call("edited_message", message=[{"uuid": first["uuid"],
                                                              "text": "first, edited"}]),
                 "edited_message", 200)
    data = await update(bob, second["time"] + 1)
    [edited] = data["message"]
    assert edited["uuid"] == first["uuid"] and edited["text"] == "first, edited"
    assert edited["edited_status"] is True and edited["edited_time"] > second["time"]


async def test_get_update_answers_the_server_time_to_ask_with_next(clients: Clients) -> None:
    alice = await clients.user("time")
    before = int(time.time())
    data = await update(alice)
    assert type(data["time"]) is int and before <= data["time"] <= int(time.time())
    assert data["flow"] == [] and data["message"] == [] and data["user"] == []
    flow = await alice.group("later")
    message = await sent(alice, flow, "after the first update")
    data = await update(alice, data["time"])
    assert [f["uuid"] for f in data["flow"]] == [flow]
    assert [m["uuid"] for m in data["message"]] == [message["uuid"]]


async def test_get_update_holds_only_the_callers_flows(clients: Clients) -> None:
    alice = await clients.user("update")
    bob = await clients.user("update")
    carol = await clients.user("update")
    shared = await alice.group("shared", users=[bob.uuid])
    alone = await alice.group("alice only")
    channel = await carol.group("carol's channel", kind="channel")
    chat = await carol.group("carol and alice", kind="chat", users=[alice.uuid])
    await sent(alice, shared, "for bob")
    await sent(alice, alone, "for nobody")
    await sent(carol, channel, "for subscribers")
    await sent(carol, chat, "for alice")

    data = await update(bob)
    assert [f["uuid"] for f in data["flow"]] == [shared]
    assert [m["text"] for m in data["message"]] == ["for bob"]
    assert {u["uuid"] for u in data["user"]} == {alice.uuid, bob.uuid}
    for profile in data["user"]:
        assert set(profile) == PUBLIC_PROFILE
        assert "email" not in profile and "password" not in profile
        assert "auth_id" not in profile

    data = await update(alice)
    assert {f["uuid"] for f in data["flow"]} == {shared, alone, chat}
    assert {m["text"] for m in data["message"]} == {"for bob", "for nobody", "for alice"}


async def test_get_update_lists_messages_oldest_first(clients: Clients) -> None:
    alice = await clients.user("update")
    bob = await clients.user("update")
    first = await alice.group("one", users=[bob.uuid])
    second = await bob.group("two", users=[alice.uuid])
    texts = []
    for index in range(6):
        flow, author = (first, alice) if index % 2 else (second, bob)
        texts.append(f"{index}")
        await sent(author, flow, f"{index}", client_id=index)
    data = await update(alice)
    assert [m["text"] for m in data["message"]] == texts


async def test_get_update_after_joining_and_leaving(clients: Clients) -> None:
    alice = await clients.user("update")
    bob = await clients.user("update")
    flow = await alice.group("open")
    await sent(alice, flow, "before bob")
    expect_reply(await bob.call("join_flow", flow=[{"uuid": flow}]), "join_flow", 200)
    data = await update(bob)
    assert [f["uuid"] for f in data["flow"]] == [flow]
    assert [m["text"] for m in data["message"]] == ["before bob"]
    expect_reply(await bob.call("leave_flow", flow=[{"uuid": flow}]), "leave_flow", 200)
    data = await update(bob)
    assert data["flow"] == [] and data["message"] == []


# -- edited_message ---------------------------------------------------------------------------


async def test_the_author_edits_a_message(clients: Clients) -> None:
    alice = await clients.user("edit")
    flow = await alice.group("edits")
    message = await sent(alice, flow, "typo", file_audio="YXVkaW8=", emoji="🙂")
    before = int(time.time())
    reply = await alice.call("edited_message", message=[{"uuid": message["uuid"],
                                                        "text": "fixed"}])
    assert expect_reply(reply, "edited_message", 200)["data"] is None
    [stored] = await history(alice, flow)
    assert stored["text"] == "fixed"
    assert stored["edited_status"] is True
    assert before <= stored["edited_time"] <= int(time.time())
    assert stored["file_audio"] == "YXVkaW8=" and stored["emoji"] == "🙂"
    assert stored["uuid"] == message["uuid"] and stored["time"] == message["time"]


async def test_only_the_author_edits(clients: Clients) -> None:
    alice = await clients.user("edit")
    bob = await clients.user("edit")
    flow = await alice.group("edits", users=[bob.uuid])
    by_bob = await sent(bob, flow, "bob's words")
    for editor in (alice, await clients.user("stranger")):
        reply = await editor.call("edited_message", message=[{"uuid": by_bob["uuid"],
                                                              "text": "not yours"}])
        expect_reply(reply, "edited_message", 403)
    [stored] = await history(bob, flow)
    assert stored["text"] == "bob's words" and stored["edited_status"] is False


async def test_edit_unknown_or_incomplete(clients: Clients) -> None:
    alice = await clients.user("edit")
    flow = await alice.group("edits")
    message = await sent(alice, flow, "text")
    reply = await alice.call("edited_message", message=[{"uuid": "5555", "text": "x"}])
    expect_reply(reply, "edited_message", 404)
    assert "5555" in reply["errors"]["detail"]
    expect_reply(await alice.call("edited_message", message=[{"text": "x"}]),
                 "edited_message", 400)
    expect_reply(await alice.call("edited_message", message=[{"uuid": message["uuid"]}]),
                 "edited_message", 400)
    expect_reply(await alice.call("edited_message"), "edited_message", 400)


# -- delete_message ---------------------------------------------------------------------------


def assert_deleted(message: dict[str, Any], since: int) -> None:
    assert message["text"] == "Message deleted"
    for field in FILE_FIELDS:
        assert message[field] == "", field
    assert message["edited_status"] is True and message["deleted"] is True
    assert since <= message["edited_time"] <= int(time.time())


async def test_the_author_deletes_a_message(clients: Clients) -> None:
    alice = await clients.user("delete")
    flow = await alice.group("deletes")
    message = await sent(alice, flow, "oops", **{field: "data" for field in FILE_FIELDS})
    before = int(time.time())
    reply = await alice.call("delete_message", message=[{"uuid": message["uuid"]}])
    assert expect_reply(reply, "delete_message", 200)["data"] is None
    [stored] = await history(alice, flow)
    assert stored["uuid"] == message["uuid"] and stored["from_user"] == alice.uuid
    assert_deleted(stored, before)
    [updated] = (await update(alice))["message"]
    assert_deleted(updated, before)


async def test_deleted_tells_a_deletion_from_an_edit_that_reads_the_same(
        clients: Clients) -> None:
    """`deleted` (an extension) is false on every message until delete_message: in pages,
    get_update and pushes, so a message edited to the deletion's text is still a message."""
    alice = await clients.user("delete", push=True)
    flow = await alice.group("look-alikes")
    kept = await sent(alice, flow, "kept", client_id=1)
    gone = await sent(alice, flow, "gone", client_id=2)
    assert all(m["deleted"] is False for m in await history(alice, flow))
    await alice.call("edited_message", message=[{"uuid": kept["uuid"], "text": "Message deleted"}])
    await alice.call("delete_message", message=[{"uuid": gone["uuid"]}])
    pushed = {}
    while len(pushed) < 2:
        frame = await alice.push()
        if frame["meta"]["event"] in ("message_edited", "message_deleted"):
            pushed[frame["meta"]["event"]] = frame["data"]["message"][0]
    assert pushed["message_edited"]["deleted"] is False
    assert pushed["message_deleted"]["deleted"] is True
    for messages in (await history(alice, flow), (await update(alice))["message"]):
        states = {m["uuid"]: (m["text"], m["edited_status"], m["deleted"]) for m in messages}
        assert states == {kept["uuid"]: ("Message deleted", True, False),
                          gone["uuid"]: ("Message deleted", True, True)}


async def test_the_flow_owner_deletes_anyones_message(clients: Clients) -> None:
    alice = await clients.user("delete")
    bob = await clients.user("delete")
    flow = await alice.group("moderated", users=[bob.uuid])
    by_bob = await sent(bob, flow, "spam")
    before = int(time.time())
    reply = await alice.call("delete_message", message=[{"uuid": by_bob["uuid"]}])
    expect_reply(reply, "delete_message", 200)
    [stored] = await history(bob, flow)
    assert_deleted(stored, before)


async def test_other_members_cannot_delete(clients: Clients) -> None:
    alice = await clients.user("delete")
    bob = await clients.user("delete")
    carol = await clients.user("delete")
    flow = await alice.group("moderated", users=[bob.uuid, carol.uuid])
    by_alice = await sent(alice, flow, "owner's")
    by_bob = await sent(bob, flow, "bob's")
    for victim in (by_alice, by_bob):
        reply = await carol.call("delete_message", message=[{"uuid": victim["uuid"]}])
        expect_reply(reply, "delete_message", 403)
    reply = await bob.call("delete_message", message=[{"uuid": by_alice["uuid"]}])
    expect_reply(reply, "delete_message", 403)
    outsider = await clients.user("outsider")
    reply = await outsider.call("delete_message", message=[{"uuid": by_bob["uuid"]}])
    expect_reply(reply, "delete_message", 403)
    assert [m["text"] for m in await history(alice, flow)] == ["owner's", "bob's"]


async def test_delete_unknown_or_unnamed(clients: Clients) -> None:
    alice = await clients.user("delete")
    reply = await alice.call("delete_message", message=[{"uuid": "6666"}])
    expect_reply(reply, "delete_message", 404)
    expect_reply(await alice.call("delete_message", message=[{}]), "delete_message", 400)
    expect_reply(await alice.call("delete_message"), "delete_message", 400)


# -- ping_pong --------------------------------------------------------------------------------


async def test_ping_pong(clients: Clients) -> None:
    alice = await clients.user("ping")
    reply = expect_reply(await alice.call("ping_pong"), "ping_pong", 200)
    assert reply["data"] is None


# -- stored content ---------------------------------------------------------------------------


CONTENT = {
    "text": "  Привет, мир! 👋🏽 e\u0301 ü \u200d\u2067 \t\r\n  ",
    "file_picture": base64.b64encode(os.urandom(3000)).decode(),
    "file_video": base64.urlsafe_b64encode(os.urandom(777)).decode(),
    "file_audio": "not base64 at all: 'quotes' \"double\" \\ backslash; DROP TABLE messages; --",
    "file_document": json.dumps({"name": "report.pdf", "bytes": [1, 2, 3]}),
    "emoji": "🎉🧑‍🤝‍🧑🏳️‍🌈",
}


async def test_file_and_emoji_fields_come_back_byte_for_byte(clients: Clients) -> None:
    alice = await clients.user("files")
    bob = await clients.user("files")
    flow = await alice.group("files", users=[bob.uuid])
    message = await sent(alice, flow, **CONTENT, client_id=3)  # type: ignore[arg-type]
    [stored] = await history(bob, flow)
    for field, value in CONTENT.items():
        assert stored[field] == value, field
    [updated] = (await update(bob))["message"]
    assert updated["uuid"] == message["uuid"]
    for field, value in CONTENT.items():
        assert updated[field] == value, field


async def test_a_large_base64_file_is_stored_whole(clients: Clients) -> None:
    alice = await clients.user("files")
    flow = await alice.group("big file")
    picture = base64.b64encode(os.urandom(300_000)).decode()
    await sent(alice, flow, "", file_picture=picture)
    [stored] = await history(alice, flow)
    assert stored["file_picture"] == picture


async def test_empty_fields_stay_empty(clients: Clients) -> None:
    alice = await clients.user("files")
    flow = await alice.group("sparse")
    await sent(alice, flow, "only text")
    [stored] = await history(alice, flow)
    assert all(stored[field] == "" for field in FILE_FIELDS)


# -- placeholders -----------------------------------------------------------------------------


async def test_placeholder_uuid_and_fields_in_send_message_are_ignored(
        clients: Clients) -> None:
    alice = await clients.user("placeholder")
    flow = await alice.group("placeholders")
    reply = await alice.call("send_message", flow=[{"uuid": flow}], message=[{
        "uuid": "0", "client_id": 11, "text": "hi", "from_user": "1", "from_flow": "2",
        "time": 123, "edited_time": 456, "edited_status": True}])
    message = expect_reply(reply, "send_message", 200)["data"]["message"][0]
    assert message["uuid"] not in ("0", "") and message["uuid"].isdigit()
    assert message["from_user"] == alice.uuid and message["from_flow"] == flow
    assert message["time"] > 123
    [stored] = await history(alice, flow)
    assert stored["uuid"] == message["uuid"]
    assert stored["edited_status"] is False and stored["edited_time"] == 0


async def test_placeholder_client_id_and_uuid_elsewhere_are_accepted(clients: Clients) -> None:
    alice = await clients.user("placeholder")
    flow = await alice.group("placeholders")
    message = await sent(alice, flow, "original", client_id=21)
    placeholder = {"uuid": "1", "client_id": 0}
    replies = [
        ("ping_pong", await alice.call("ping_pong", message=[placeholder],
                                       flow=[{"uuid": "1"}])),
        ("get_update", await alice.call("get_update", time=0, message=[placeholder])),
        ("all_messages", await alice.call("all_messages", flow=[{"uuid": flow}],
                                          message=[placeholder])),
        ("all_flow", await alice.call("all_flow", message=[placeholder])),
        ("edited_message", await alice.call("edited_message", message=[{
            "uuid": message["uuid"], "client_id": 99, "text": "edited"}])),
    ]
    for kind, reply in replies:
        expect_reply(reply, kind, 200)
    [stored] = await history(alice, flow)
    assert stored["client_id"] == 21 and stored["text"] == "edited"
    reply = await alice.call("delete_message", message=[{"uuid": message["uuid"],
                                                        "client_id": 99}])
    expect_reply(reply, "delete_message", 200)
    [stored] = await history(alice, flow)
    assert stored["client_id"] == 21 and stored["text"] == "Message deleted"


async def test_a_frame_shaped_like_an_older_clients_is_answered(clients: Clients) -> None:
    """The older client sends every key of every object, most of them placeholders."""
    alice = await clients.user("legacy")
    flow = await alice.group("legacy")
    request = {
        "type": "send_message",
        "data": {
            "time": 0,
            "flow": [{"uuid": flow, "time": 0, "type": "group", "title": "", "info": "",
                      "owner": "0", "users": [], "message_start": 0, "message_end": 0}],
            "message": [{"uuid": "1", "client_id": 5, "text": "legacy", "from_user": "1",
                         "from_flow": "1", "time": 0, "file_picture": "", "file_video": "",
                         "file_audio": "", "file_document": "", "emoji": "",
                         "edited_time": 0, "edited_status": False}],
            "user": [{**alice.cred, "login": "", "password": "", "username": "", "bio": "",
                      "avatar": "", "is_bot": False, "token_ttl": 0, "email": "",
                      "time_created": 0}],
            "meta": None,
        },
        "errors": {"code": 0, "status": "", "time": 0, "detail": ""},
        "jsonapi": {"version": "1.0", "revision": "17"},
        "meta": None,
    }
    reply = expect_reply(await alice.send_raw(json.dumps(request)), "send_message", 200)
    assert reply["data"]["message"][0]["client_id"] == 5
    assert [m["text"] for m in await history(alice, flow)] == ["legacy"]
