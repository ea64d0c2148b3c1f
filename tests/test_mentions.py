"""Mentions (mod.db.mentions, kept by the service's send): MTP `mentions` and Matrix
`m.mentions` name the same members, and unread mentions count in the read state."""

from __future__ import annotations

import itertools

import nio
import pytest

from mod.error import ServiceError
from mod.service import Caller
from tests.service_support import World
from tests.support import pushes_before_answer
from tests.test_matrix_support import SERVER_NAME, Matrix, sync_until

pytestmark = pytest.mark.anyio
CLIENT_IDS = itertools.count(1)


async def _say(world: World, caller: Caller, flow: str, *named: Caller) -> str:
    done = await world.service.messages.send(caller, flow, next(CLIENT_IDS), {"text": "hey"},
                                             mentions=[user.uuid for user in named])
    return done.value["uuid"]


async def test_only_members_are_kept_and_unread_mentions_are_counted(world: World) -> None:
    anna, boris, eve = [await world.user(name) for name in ("anna", "boris", "eve")]
    flow = await world.flow(boris, "group", anna)
    first = await _say(world, boris, flow, anna, eve, anna)  # eve is no member; anna twice
    page = await world.service.messages.page(anna, flow, None, None, mentions=True)
    assert '"mentions":["' + anna.uuid + '"]' in page.json.replace(" ", "")
    await _say(world, boris, flow)
    await world.service.messages.send(boris, flow, next(CLIENT_IDS), {"text": "by login"},
                                      mention_logins=["nobody", (await world.engine.read(
                                          _login, anna.uuid))])
    state = (await world.service.read.of(anna, [flow]))[flow]
    assert (state.unread, state.mentions) == (3, 2)
    await world.service.read.mark(anna, flow, first)
    state = (await world.service.read.of(anna, [flow]))[flow]
    assert (state.unread, state.mentions) == (2, 1)
    limit = world.service.settings.protocol.mentions_limit
    with pytest.raises(ServiceError) as many:
        await world.service.messages.send(boris, flow, 99, {"text": "all"},
                                          mentions=[anna.uuid] * (limit + 1))
    assert many.value.code == 400 and str(limit) in many.value.detail


def _login(conn: object, uuid: str) -> str:
    from mod.db import dbhandler as db
    user = db.user_by_uuid(conn, uuid)  # type: ignore[arg-type]
    assert user is not None
    return user["login"]


async def test_mentions_cross_between_mtp_and_matrix(mx: Matrix) -> None:
    anna = await mx.mtp.user("anna", push=True)
    plain = await mx.mtp.user("plain", push=True)
    reply = await anna.call("ping_pong", meta={"extensions": ["mentions", "read"]})
    assert reply["meta"] == {"extensions": ["mentions", "read"]}
    boris = await mx.user("boris")
    flow = await anna.group("mentions", users=[plain.uuid])
    room = f"!{flow}:{SERVER_NAME}"
    assert isinstance(await boris.join(room), nio.JoinResponse)
    await boris.sync(timeout=0)

    # MTP -> Matrix: m.mentions with the members' Matrix IDs.
    sent = await anna.call("send_message", flow=[{"uuid": flow}], message=[{
        "client_id": 1, "text": "@plain have a look", "mentions": [plain.uuid]}])
    assert sent["errors"]["code"] == 200, sent
    seen = await sync_until(boris, room, lambda e: e["content"].get("body") == "@plain have a look")
    event = next(e for e in seen if e["content"].get("body") == "@plain have a look")
    assert event["content"]["m.mentions"] == {"user_ids": [f"@{plain.login}:{SERVER_NAME}"]}
    frames = await pushes_before_answer(plain)
    assert [f["data"]["message"][0] for f in frames if f["meta"]["event"] == "message_sent"
            ] and all("mentions" not in f["data"]["message"][0] for f in frames
                      if f["meta"]["event"] == "message_sent")

    # Matrix -> MTP: m.mentions names anna; her read state counts it.
    content = {"msgtype": "m.text", "body": "anna: lunch?",
               "m.mentions": {"user_ids": [f"@{anna.login}:{SERVER_NAME}", "@x:elsewhere.org"]}}
    assert isinstance(await boris.room_send(room, "m.room.message", content),
                      nio.RoomSendResponse)
    while True:
        push = await anna.push()
        if push["meta"]["event"] == "message_sent" and push["data"]["message"][0]["text"] \
                == "anna: lunch?":
            break
    assert push["data"]["message"][0]["mentions"] == [anna.uuid]
    listed = await anna.call("all_flow")
    found = next(f for f in listed["data"]["flow"] if f["uuid"] == flow)
    assert (found["unread"], found["mentions"]) == (1, 1)
    page = await anna.call("all_messages", flow=[{"uuid": flow}])
    assert [m["mentions"] for m in page["data"]["message"]] == [[plain.uuid], [anna.uuid]]
    # Past the bound: a clear 400, and nothing is stored.
    refused = await anna.call("send_message", flow=[{"uuid": flow}], message=[{
        "client_id": 9, "text": "everyone", "mentions": [plain.uuid] * 101}])
    assert refused["errors"]["code"] == 400 and "100" in refused["errors"]["detail"]
    again = await anna.call("all_messages", flow=[{"uuid": flow}])
    assert len(again["data"]["message"]) == 2
