"""mod.service.reactions: one store of reactions for both protocols, and its rules."""

from __future__ import annotations

import json
from typing import Any

import nio
import pytest

from mod.changes import Kind, ReactionPayload
from mod.db import dbhandler as db
from mod.error import ServiceError
from tests.service_support import World
from tests.support import Client, pushes_before_answer
from tests.test_matrix_bridge import push_of
from tests.test_matrix_support import SERVER_NAME, Matrix, sync_until

pytestmark = pytest.mark.anyio


async def _sent(world: World, flow: str, caller: object, text: str = "hi") -> str:
    done = await world.service.messages.send(caller, flow, 1, {"text": text})  # type: ignore[arg-type]
    return done.value["uuid"]


async def test_reactions_are_grouped_by_key_in_the_order_used(world: World) -> None:
    anna, boris, vera = [await world.user(name) for name in ("anna", "boris", "vera")]
    flow = await world.flow(anna, "group", boris, vera)
    message = await _sent(world, flow, anna)
    await world.service.reactions.add(boris, message, "👍")
    await world.service.reactions.add(vera, message, "🎉")
    done = await world.service.reactions.add(anna, message, "👍")
    assert done.value == [{"key": "👍", "users": [boris.uuid, anna.uuid]},
                          {"key": "🎉", "users": [vera.uuid]}]
    position, kind, subject = await world.last_change()
    assert (position, kind, subject) == (done.position, Kind.REACTION_ADDED, message)
    taken = await world.service.reactions.remove(boris, message, "👍")
    assert taken.value == [{"key": "🎉", "users": [vera.uuid]},  # the standing ones' order
                           {"key": "👍", "users": [anna.uuid]}]
    rows = await world.engine.read(db.changes_after, done.position, 10)
    removal = rows[-1].data
    assert isinstance(removal, ReactionPayload) and removal.key == "👍" and removal.redacts
    page = await world.service.messages.page(anna, flow, None, None, reactions=True)
    assert json.loads(page.json)[0]["reactions"] == taken.value


async def test_who_may_react_and_what_is_refused(world: World) -> None:
    anna, boris, eve = [await world.user(name) for name in ("anna", "boris", "eve")]
    channel = await world.flow(anna, "channel", boris)
    message = await _sent(world, channel, anna)
    await world.service.reactions.add(boris, message, "❤")  # members react, in a channel too
    with pytest.raises(ServiceError) as outsider:
        await world.service.reactions.add(eve, message, "❤")
    assert outsider.value.code == 403
    with pytest.raises(ServiceError) as twice:
        await world.service.reactions.add(boris, message, "❤")
    assert twice.value.code == 409
    with pytest.raises(ServiceError) as absent:
        await world.service.reactions.remove(boris, message, "👎")
    assert absent.value.code == 404
    for key, code in (("", 400), ("x" * 65, 415)):
        with pytest.raises(ServiceError) as bad:
            await world.service.reactions.add(boris, message, key)
        assert bad.value.code == code
    with pytest.raises(ServiceError) as unknown:
        await world.service.reactions.add(boris, "no-such-message", "❤")
    assert unknown.value.code == 404
    await world.service.messages.delete(anna, message)
    with pytest.raises(ServiceError) as deleted:
        await world.service.reactions.add(anna, message, "❤")
    assert deleted.value.code == 404


async def test_one_user_has_at_most_the_limit_of_keys_on_a_message(world: World) -> None:
    anna = await world.user("anna")
    flow = await world.flow(anna)
    message = await _sent(world, flow, anna)
    limit = world.service.settings.protocol.reactions_limit
    for index in range(limit):
        await world.service.reactions.add(anna, message, f"k{index}")
    with pytest.raises(ServiceError) as past:
        await world.service.reactions.add(anna, message, "one more")
    assert past.value.code == 403 and str(limit) in past.value.detail
    other = await world.user("boris")
    await world.service.flows.join(other, flow)
    await world.service.reactions.add(other, message, "k0")  # the bound is per user


async def test_a_reply_names_a_message_of_the_same_flow(world: World) -> None:
    anna, boris = await world.user("anna"), await world.user("boris")
    flow = await world.flow(anna, "group", boris)
    elsewhere = await world.flow(boris)
    first = await _sent(world, flow, anna, "question")
    answer = await world.service.messages.send(boris, flow, 2, {"text": "answer"},
                                               reply_to=first)
    assert answer.value["reply_to"] == first
    stored = await world.engine.read(db.messages_by_uuid, [answer.value["uuid"], first])
    assert [message.get("reply_to") for message in stored] == [None, first]
    foreign = await _sent(world, elsewhere, boris)
    for target in (foreign, "no-such-message"):
        with pytest.raises(ServiceError) as refused:
            await world.service.messages.send(boris, flow, 3, {"text": "x"}, reply_to=target)
        assert refused.value.code == 404
    page = await world.service.messages.page(anna, flow, None, None, replies=True)
    assert [message["reply_to"] for message in json.loads(page.json)] == [None, first]
    plain = await world.service.messages.page(anna, flow, None, None)
    assert "reply_to" not in plain.json and "reactions" not in plain.json


# -- end to end: MTP (with and without the extension) and Matrix on one server ----------------

def room_of(flow: str) -> str:
    return f"!{flow}:{SERVER_NAME}"


async def ok(reply: dict[str, Any]) -> dict[str, Any]:
    assert reply["errors"]["code"] == 200, reply
    return reply


async def extended(client: Client, *names: str) -> None:
    reply = await ok(await client.call("ping_pong", meta={"extensions": list(names)}))
    assert reply["meta"] == {"extensions": sorted(names)}


async def react(client: Client, message: str, key: str, remove: bool = False
                ) -> dict[str, Any]:
    return await client.call("react", message=[{"uuid": message, "reaction": key,
                                                "remove": remove}])


def annotation(event: dict[str, Any], message_event: str, key: str) -> bool:
    relation = event.get("content", {}).get("m.relates_to", {})
    return event["type"] == "m.reaction" and relation == {
        "rel_type": "m.annotation", "event_id": message_event, "key": key}


async def test_reactions_cross_between_mtp_and_matrix(mx: Matrix) -> None:
    anna = await mx.mtp.user("anna", push=True)
    plain = await mx.mtp.user("plain", push=True)  # asks for no extension
    await extended(anna, "reactions")
    flow = await anna.group("reactions", users=[plain.uuid])
    room = room_of(flow)
    boris = await mx.user("boris")
    assert isinstance(await boris.join(room), nio.JoinResponse)
    await push_of(anna, "flow_joined")
    sent = await ok(await anna.call("send_message", flow=[{"uuid": flow}],
                                    message=[{"client_id": 1, "text": "Pizza?"}]))
    message = sent["data"]["message"][0]["uuid"]
    event_id = f"$m{message}"
    await push_of(anna, "message_sent")
    await boris.sync(timeout=0)

    # Matrix -> MTP: an annotation is a reaction, pushed to connections that asked for them.
    content = {"m.relates_to": {"rel_type": "m.annotation", "event_id": event_id, "key": "🍕"}}
    first = await boris.room_send(room, "m.reaction", content)
    assert isinstance(first, nio.RoomSendResponse), first
    push = await push_of(anna, "reaction_added")
    boris_uuid = push["data"]["user"][0]["uuid"]
    assert push["data"]["message"] == [{"uuid": message, "from_flow": flow,
                                        "reactions": [{"key": "🍕", "users": [boris_uuid]}]}]
    again = await mx.raw("PUT", f"/_matrix/client/v3/rooms/{room}/send/m.reaction/t2",
                         token=boris.access_token, json=content)
    assert again.status_code == 400 and again.json()["errcode"] == "M_DUPLICATE_ANNOTATION"

    # MTP -> Matrix: an m.annotation of the message, from the MTP user.
    await ok(await react(anna, message, "👍"))
    seen = await sync_until(boris, room, lambda event: annotation(event, event_id, "👍"))
    mine = next(event for event in seen if annotation(event, event_id, "👍"))
    assert mine["sender"] == f"@{anna.login}:{SERVER_NAME}"
    assert (await react(anna, message, "👍"))["errors"]["code"] == 409

    # Taken back on either side.
    assert isinstance(await boris.room_redact(room, first.event_id), nio.RoomRedactResponse)
    removed = await push_of(anna, "reaction_removed")
    assert removed["data"]["message"][0]["reactions"] == [{"key": "👍", "users": [anna.uuid]}]
    await ok(await react(anna, message, "👍", remove=True))
    seen = await sync_until(boris, room, lambda event: event["type"] == "m.room.redaction"
                            and event.get("redacts") == mine["event_id"])
    assert (await react(anna, message, "👍", remove=True))["errors"]["code"] == 404

    # What each connection reads: reactions only where asked for.
    await ok(await react(anna, message, "❤"))
    page = await ok(await anna.call("all_messages", flow=[{"uuid": flow}]))
    assert page["data"]["message"][0]["reactions"] == [{"key": "❤", "users": [anna.uuid]}]
    update = await ok(await anna.call("get_update", time=0))
    assert [m["reactions"] for m in update["data"]["message"]] == [
        [{"key": "❤", "users": [anna.uuid]}]]
    for frame in (await plain.call("all_messages", flow=[{"uuid": flow}]),
                  await plain.call("get_update", time=0)):
        assert all("reactions" not in m for m in (await ok(frame))["data"]["message"])
    assert all(push["meta"]["event"] not in ("reaction_added", "reaction_removed")
               for push in await pushes_before_answer(plain))


async def test_react_needs_a_message_and_a_key(mx: Matrix) -> None:
    anna = await mx.mtp.user("anna")
    for message in ([], [{"uuid": "x"}], [{"reaction": "👍"}]):
        assert (await anna.call("react", message=message))["errors"]["code"] == 400
    assert (await react(anna, "no-such-message", "👍"))["errors"]["code"] == 404
    wrong = await anna.call("react", message=[{"uuid": "x", "reaction": 5}])
    assert wrong["errors"]["code"] == 415
