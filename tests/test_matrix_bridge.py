"""One server, two protocols: what MTP clients do reaches Matrix clients at once and the
other way round — send, edit, delete, join and leave — under the same rights."""

from __future__ import annotations

import asyncio
import base64
import io
import time
from typing import Any

import nio
import pytest

from tests.support import Client, pushes_before_answer
from tests.test_matrix_support import (
    SERVER_NAME,
    Matrix,
    sync_until,
)

pytestmark = pytest.mark.anyio


def room_of(flow: str) -> str:
    return f"!{flow}:{SERVER_NAME}"


def matrix_id(mtp: Client) -> str:
    return f"@{mtp.login}:{SERVER_NAME}"


async def push_of(client: Client, kind: str, timeout: float = 3.0) -> dict[str, Any]:
    """The next push frame of event `kind` ("message_sent", "flow_joined", ...)."""
    deadline = time.monotonic() + timeout
    while True:
        frame = await client.push(max(0.05, deadline - time.monotonic()))
        if frame["meta"]["event"] == kind:
            return frame


async def expect_ok(reply: dict[str, Any]) -> dict[str, Any]:
    assert reply["errors"]["code"] == 200, reply
    return reply


async def test_mtp_to_matrix(mx: Matrix) -> None:
    owner = await mx.mtp.user("mtp", push=True)
    flow = await owner.group("bridge from MTP")
    room = room_of(flow)
    reader = await mx.user("reader")
    assert isinstance(await reader.join(room), nio.JoinResponse)
    first = await reader.sync(timeout=0)
    assert isinstance(first, nio.SyncResponse)
    assert reader.rooms[room].name == "bridge from MTP"

    # send: a long-poll already waiting wakes at once
    poll = asyncio.create_task(reader.sync(timeout=5000, since=reader.next_batch))
    # A round trip meanwhile, so the poll is most likely waiting when the message lands (a
    # poll that came later would get it at once all the same).
    await expect_ok(await owner.call("ping_pong"))
    sent_at = time.monotonic()
    reply = await expect_ok(await owner.send(flow, "hello from MTP", client_id=7))
    message = reply["data"]["message"][0]["uuid"]
    response = await asyncio.wait_for(poll, 3)
    assert time.monotonic() - sent_at < 0.5
    assert isinstance(response, nio.SyncResponse)
    events = response.rooms.join[room].timeline.events
    assert len(events) == 1 and isinstance(events[0], nio.RoomMessageText)
    assert events[0].body == "hello from MTP" and events[0].sender == matrix_id(owner)
    original = events[0].event_id

    # edit
    await expect_ok(await owner.call("edited_message",
                                     message=[{"uuid": message, "text": "hello, edited"}]))
    seen = await sync_until(reader, room, lambda e: "m.new_content" in e["content"])
    edit = next(e for e in seen if "m.new_content" in e["content"])
    assert edit["content"]["m.new_content"] == {"msgtype": "m.text", "body": "hello, edited"}
    assert edit["content"]["m.relates_to"] == {"rel_type": "m.replace", "event_id": original}

    # delete
    await expect_ok(await owner.call("delete_message", message=[{"uuid": message}]))
    seen = await sync_until(reader, room, lambda e: e["type"] == "m.room.redaction")
    redaction = next(e for e in seen if e["type"] == "m.room.redaction")
    assert redaction["redacts"] == original and redaction["sender"] == matrix_id(owner)
    history = await reader.room_messages(room, start="", limit=20)
    assert isinstance(history, nio.RoomMessagesResponse)
    redacted = next(e for e in history.chunk if e.event_id == original)
    assert redacted.source["content"] == {}

    # join and leave
    joiner = await mx.mtp.user("joiner", push=True)
    await expect_ok(await joiner.call("join_flow", flow=[{"uuid": flow}]))
    seen = await sync_until(reader, room, lambda e: e["type"] == "m.room.member"
                            and e["state_key"] == matrix_id(joiner))
    assert [e["content"]["membership"] for e in seen
            if e.get("state_key") == matrix_id(joiner)] == ["join"]
    await expect_ok(await joiner.call("leave_flow", flow=[{"uuid": flow}]))
    seen = await sync_until(reader, room, lambda e: e.get("state_key") == matrix_id(joiner))
    assert seen[-1]["content"] == {"membership": "leave"}
    assert matrix_id(joiner) not in reader.rooms[room].users


async def test_matrix_to_mtp(mx: Matrix) -> None:
    owner = await mx.mtp.user("mtp", push=True)
    flow = await owner.group("bridge to MTP")
    room = room_of(flow)
    writer = await mx.user("writer")

    # join
    assert isinstance(await writer.join(room), nio.JoinResponse)
    joined = await push_of(owner, "flow_joined")
    assert joined["data"]["user"][0]["username"] == writer.user
    writer_uuid = joined["data"]["user"][0]["uuid"]
    assert writer_uuid in joined["data"]["flow"][0]["users"]

    # send
    sent_at = time.monotonic()
    sent = await writer.room_send(room, "m.room.message",
                                  {"msgtype": "m.text", "body": "hello from Matrix"})
    assert isinstance(sent, nio.RoomSendResponse), sent
    frame = await push_of(owner, "message_sent")
    assert time.monotonic() - sent_at < 0.5
    pushed = frame["data"]["message"][0]
    assert pushed["text"] == "hello from Matrix" and pushed["from_user"] == writer_uuid
    assert pushed["from_flow"] == flow
    listed = await expect_ok(await owner.call("all_messages", flow=[{"uuid": flow}]))
    assert [m["text"] for m in listed["data"]["message"]] == ["hello from Matrix"]

    # edit
    edit = await writer.room_send(room, "m.room.message", {
        "msgtype": "m.text", "body": "* hello again", "m.new_content": {
            "msgtype": "m.text", "body": "hello again"},
        "m.relates_to": {"rel_type": "m.replace", "event_id": sent.event_id}})
    assert isinstance(edit, nio.RoomSendResponse), edit
    frame = await push_of(owner, "message_edited")
    edited = frame["data"]["message"][0]
    assert edited["uuid"] == pushed["uuid"] and edited["text"] == "hello again"
    assert edited["edited_status"] is True

    # delete
    assert isinstance(await writer.room_redact(room, sent.event_id), nio.RoomRedactResponse)
    frame = await push_of(owner, "message_deleted")
    assert frame["data"]["message"][0]["text"] == "Message deleted"

    # leave
    assert isinstance(await writer.room_leave(room), nio.RoomLeaveResponse)
    left = await push_of(owner, "flow_left")
    assert writer_uuid not in left["data"]["flow"][0]["users"]


async def a_room_of_three(mx: Matrix, title: str
                         ) -> tuple[Client, str, nio.AsyncClient, nio.AsyncClient]:
    """An MTP user's group (taking pushes), its room, and two Matrix users who joined it."""
    owner = await mx.mtp.user("mtp", push=True)
    room = room_of(await owner.group(title))
    writer, reader = await mx.user("writer"), await mx.user("reader")
    for client in (writer, reader):
        assert isinstance(await client.join(room), nio.JoinResponse)
    return owner, room, writer, reader


async def test_formatted_matrix_messages_keep_their_content(mx: Matrix) -> None:
    owner, room, writer, reader = await a_room_of_three(mx, "formats")
    content = {"msgtype": "m.notice", "body": "*bold*", "format": "org.matrix.custom.html",
               "formatted_body": "<b>bold</b>"}
    sent = await writer.room_send(room, "m.room.message", content)
    assert isinstance(sent, nio.RoomSendResponse), sent
    frame = await push_of(owner, "message_sent")
    assert frame["data"]["message"][0]["text"] == "*bold*"
    event = await reader.room_get_event(room, sent.event_id)
    assert isinstance(event, nio.RoomGetEventResponse), event
    assert event.event.source["content"] == content


async def test_a_matrix_reply_reaches_mtp_without_its_fallback(mx: Matrix) -> None:
    owner, room, writer, reader = await a_room_of_three(mx, "replies")
    first = await writer.room_send(room, "m.room.message", {"msgtype": "m.text",
                                                            "body": "Lunch at one?"})
    assert isinstance(first, nio.RoomSendResponse), first
    await push_of(owner, "message_sent")
    content = {"msgtype": "m.text",
               "body": f"> <{writer.user_id}> Lunch at one?\n> (twice)\n\nYes!\n> not a fallback",
               "m.relates_to": {"m.in_reply_to": {"event_id": first.event_id}}}
    sent = await writer.room_send(room, "m.room.message", content)
    assert isinstance(sent, nio.RoomSendResponse), sent
    frame = await push_of(owner, "message_sent")
    assert frame["data"]["message"][0]["text"] == "Yes!\n> not a fallback"
    event = await reader.room_get_event(room, sent.event_id)
    assert isinstance(event, nio.RoomGetEventResponse), event
    assert event.event.source["content"] == content
    # Without the relation, quoted lines are the message's own.
    quoted = {"msgtype": "m.text", "body": "> a quote\n\nmine"}
    assert isinstance(await writer.room_send(room, "m.room.message", quoted),
                      nio.RoomSendResponse)
    frame = await push_of(owner, "message_sent")
    assert frame["data"]["message"][0]["text"] == "> a quote\n\nmine"


async def test_same_rights_on_both_sides(mx: Matrix) -> None:
    owner = await mx.mtp.user("mtp", push=True)
    channel = await owner.group("news", kind="channel")
    reader = await mx.user("reader")
    assert isinstance(await reader.join(room_of(channel)), nio.JoinResponse)
    refused = await reader.room_send(room_of(channel), "m.room.message",
                                     {"msgtype": "m.text", "body": "not the owner"})
    assert isinstance(refused, nio.RoomSendError) and refused.status_code == "M_FORBIDDEN"
    await reader.sync(timeout=0)
    levels = reader.rooms[room_of(channel)].power_levels
    assert levels.defaults.events_default == 50 and levels.users == {matrix_id(owner): 100}

    group = await owner.group("talk")
    assert isinstance(await reader.join(room_of(group)), nio.JoinResponse)
    sent = await reader.room_send(room_of(group), "m.room.message",
                                  {"msgtype": "m.text", "body": "mine"})
    assert isinstance(sent, nio.RoomSendResponse)
    frame = await push_of(owner, "message_sent")
    uuid = frame["data"]["message"][0]["uuid"]
    edit = await owner.call("edited_message", message=[{"uuid": uuid, "text": "theirs"}])
    assert edit["errors"]["code"] == 403
    # The flow's owner may delete anyone's message, from either protocol.
    await expect_ok(await owner.call("delete_message", message=[{"uuid": uuid}]))

    outsider = await mx.mtp.user("outsider", push=True)
    mine = await mx.room(reader, name="matrix room")
    flow = mine[1:].split(":")[0]
    denied = await outsider.call("send_message", flow=[{"uuid": flow}],
                                 message=[{"client_id": 1, "text": "let me in"}])
    assert denied["errors"]["code"] == 403
    await expect_ok(await outsider.call("join_flow", flow=[{"uuid": flow}]))
    await expect_ok(await outsider.send(flow, "in now"))
    seen = await sync_until(reader, mine, lambda e: e["content"].get("body") == "in now")
    assert seen[-1]["sender"] == matrix_id(outsider)


async def test_mtp_files_and_emoji_show_in_matrix(mx: Matrix) -> None:
    owner = await mx.mtp.user("mtp", push=True)
    flow = await owner.group("files")
    reader = await mx.user("reader")
    assert isinstance(await reader.join(room_of(flow)), nio.JoinResponse)
    await expect_ok(await owner.call("send_message", flow=[{"uuid": flow}], message=[
        {"client_id": 1, "text": "", "file_picture": "no base64", "file_audio": "!"}]))
    await expect_ok(await owner.call("send_message", flow=[{"uuid": flow}], message=[
        {"client_id": 2, "text": "", "emoji": "🙂"}]))
    # Base64 goes to the media store (tests/test_matrix_media.py); "hi" is no picture.
    await expect_ok(await owner.call("send_message", flow=[{"uuid": flow}], message=[
        {"client_id": 3, "text": "", "file_picture": "aGk=", "file_audio": "aGk="}]))
    page = await reader.room_messages(room_of(flow), start="", limit=3)
    assert isinstance(page, nio.RoomMessagesResponse)
    assert [event.source["content"]["body"] for event in page.chunk] == [
        "picture", "🙂", "(picture) (audio)"]
    assert page.chunk[0].source["content"]["msgtype"] == "m.file"
    assert page.chunk[0].source["content"]["info"] == {"mimetype": "application/octet-stream",
                                                       "size": 2}


async def test_a_files_name_and_type_cross_both_ways(mx: Matrix) -> None:
    owner = await mx.mtp.user("mtp", push=True)
    plain = await mx.mtp.user("plain", push=True)
    granted = await owner.call("ping_pong", meta={"extensions": ["files"]})
    assert granted["meta"] == {"extensions": ["files"]}
    flow = await owner.group("named files", users=[plain.uuid])
    reader = await mx.user("reader")
    assert isinstance(await reader.join(room_of(flow)), nio.JoinResponse)
    notes = base64.b64encode(b"remember the milk\n").decode()
    blob = base64.b64encode(bytes(range(32))).decode()
    for client_id, data, name, kind in ((1, notes, "notes.txt", "text/plain"),
                                        (2, blob, "data.bin", "application/octet-stream")):
        await expect_ok(await owner.call("send_message", flow=[{"uuid": flow}], message=[{
            "client_id": client_id, "text": "", "file_document": data, "file_name": name,
            "file_type": kind}]))
    page = await reader.room_messages(room_of(flow), start="", limit=2)
    assert isinstance(page, nio.RoomMessagesResponse)
    contents = [event.source["content"] for event in reversed(page.chunk)]
    assert [(c["msgtype"], c["body"], c["filename"], c["info"]["mimetype"]) for c in contents] == [
        ("m.file", "notes.txt", "notes.txt", "text/plain"),
        ("m.file", "data.bin", "data.bin", "application/octet-stream")]
    listed = await owner.call("all_messages", flow=[{"uuid": flow}])
    assert [(m["file_name"], m["file_type"]) for m in listed["data"]["message"]] == [
        ("notes.txt", "text/plain"), ("data.bin", "application/octet-stream")]
    assert all("file_name" not in m for m in
               (await plain.call("all_messages", flow=[{"uuid": flow}]))["data"]["message"])

    # Matrix -> MTP: an m.file's filename and mimetype.
    upload, _ = await reader.upload(io.BytesIO(b"a,b\n1,2\n"), content_type="text/csv",
                                    filename="table.csv", filesize=8)
    assert isinstance(upload, nio.UploadResponse), upload
    sent = await reader.room_send(room_of(flow), "m.room.message", {
        "msgtype": "m.file", "body": "table.csv", "filename": "table.csv",
        "url": upload.content_uri, "info": {"mimetype": "text/csv", "size": 8}})
    assert isinstance(sent, nio.RoomSendResponse), sent
    while True:
        push = await owner.push()
        message = (push["data"]["message"] or [{}])[0]
        if push["meta"]["event"] == "message_sent" and message.get("file_name") == "table.csv":
            break
    assert message["file_type"] == "text/csv"
    assert base64.b64decode(message["file_document"]) == b"a,b\n1,2\n"
    others = [p["data"]["message"][0] for p in await pushes_before_answer(plain)
              if p["meta"]["event"] == "message_sent"]
    assert others and all("file_name" not in m for m in others)
