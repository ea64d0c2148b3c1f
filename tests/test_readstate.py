"""mod.service.readstate: one read state per user and flow, from MTP's mark_read and Matrix
receipts alike, and the unread counts that follow from it."""

from __future__ import annotations

import itertools
from typing import Any

import nio
import pytest

from mod.error import ServiceError
from mod.service import Caller
from tests.service_support import World
from tests.support import Client
from tests.test_matrix_support import PASSWORD, SERVER_NAME, Matrix

pytestmark = pytest.mark.anyio


CLIENT_IDS = itertools.count(1)


async def _say(world: World, caller: Caller, flow: str, text: str = "hi") -> str:
    done = await world.service.messages.send(caller, flow, next(CLIENT_IDS), {"text": text})
    return done.value["uuid"]


async def _state(world: World, caller: Caller, flow: str) -> tuple[str | None, int]:
    state = (await world.service.read.of(caller, [flow]))[flow]
    return state.read, state.unread


async def test_unread_counts_others_messages_after_the_marker(world: World) -> None:
    anna, boris = await world.user("anna"), await world.user("boris")
    flow = await world.flow(boris, "group", anna)
    assert await _state(world, anna, flow) == (None, 0)
    first = await _say(world, boris, flow)
    second = await _say(world, boris, flow)
    assert await _state(world, anna, flow) == (None, 2)
    done = await world.service.read.mark(anna, flow, first)
    assert (done.value.read, done.value.unread) == (first, 1) and done.position
    again = await world.service.read.mark(anna, flow, first)  # nothing moves
    assert again.position == 0
    await world.service.read.mark(anna, flow, second)
    back = await world.service.read.mark(anna, flow, first)  # never backwards
    assert (back.value.read, back.value.unread, back.position) == (second, 0, 0)
    third = await _say(world, boris, flow)
    await world.service.messages.delete(boris, await _say(world, boris, flow))
    assert await _state(world, anna, flow) == (second, 1)  # deleted ones do not count
    mine = await _say(world, anna, flow)  # writing reads what came before
    assert await _state(world, anna, flow) == (mine, 0)
    assert third


async def test_matrix_receipts_move_the_same_marker(world: World) -> None:
    anna, boris = await world.user("anna"), await world.user("boris")
    flow = await world.flow(boris, "group", anna)
    first = await _say(world, boris, flow)
    second = await _say(world, boris, flow)
    await world.service.ephemeral.receipt(anna, flow, "m.read.private", f"$m{first}")
    assert await _state(world, anna, flow) == (first, 1)
    reaction = await world.service.reactions.add(boris, second, "👍")
    # A receipt of a later event that is no message reads up to the message before it.
    await world.service.ephemeral.receipt(anna, flow, "m.read", f"${reaction.position}")
    assert await _state(world, anna, flow) == (second, 0)
    third = await _say(world, boris, flow)
    await world.service.ephemeral.receipt(anna, flow, "m.read", f"$m{third}", thread="$t1")
    assert await _state(world, anna, flow) == (second, 1)  # a thread's receipt is not it
    await world.service.ephemeral.receipt(anna, flow, "m.read", f"$m{third}", thread="main")
    assert await _state(world, anna, flow) == (third, 0)


async def test_only_members_mark_and_only_their_flows_have_a_state(world: World) -> None:
    anna, eve = await world.user("anna"), await world.user("eve")
    flow = await world.flow(anna)
    other = await world.flow(eve)
    message = await _say(world, anna, flow)
    with pytest.raises(ServiceError) as outsider:
        await world.service.read.mark(eve, flow, message)
    assert outsider.value.code == 403
    with pytest.raises(ServiceError) as elsewhere:
        await world.service.read.mark(eve, other, message)
    assert elsewhere.value.code == 404
    assert set(await world.service.read.of(eve, [flow, other])) == {other}


# -- end to end: one user on MTP and Matrix, read on one, read on the other --------------------


async def test_read_on_matrix_is_read_on_mtp_and_back(mx: Matrix) -> None:
    desk = await mx.mtp.user("desk", push=True, password=PASSWORD)
    reply = await desk.call("ping_pong", meta={"extensions": ["read"]})
    assert reply["meta"] == {"extensions": ["read"]}
    writer = await mx.mtp.user("writer")
    flow = await writer.group("read state", users=[desk.uuid])
    room = f"!{flow}:{SERVER_NAME}"
    sent = [(await writer.send(flow, text, client_id=index))["data"]["message"][0]["uuid"]
            for index, text in enumerate(("one", "two"))]

    def state(flows: list[dict[str, Any]]) -> tuple[Any, ...]:
        found = next(item for item in flows if item["uuid"] == flow)
        return found["read"], found["unread"], found["mentions"]

    listed = await desk.call("all_flow")
    assert state(listed["data"]["flow"]) == (None, 2, 0)

    # Read on the phone (Matrix, the same account): the desktop hears it at once.
    phone = mx.client(desk.login)
    assert isinstance(await phone.login(PASSWORD), nio.LoginResponse)
    receipt = await mx.raw("POST", f"/_matrix/client/v3/rooms/{room}/receipt/m.read/$m{sent[1]}",
                           token=phone.access_token, json={})
    assert receipt.status_code == 200, receipt.text
    push = await _read_push(desk)
    assert state(push["data"]["flow"]) == (sent[1], 0, 0)

    # Read on the desktop (MTP): the phone's /sync has the receipt and the read marker.
    third = (await writer.send(flow, "three", client_id=3))["data"]["message"][0]["uuid"]
    assert isinstance(await phone.sync(timeout=0), nio.SyncResponse)
    marked = await desk.call("mark_read", flow=[{"uuid": flow}], message=[{"uuid": third}])
    assert marked["errors"]["code"] == 200, marked
    assert state(marked["data"]["flow"]) == (third, 0, 0)
    assert state((await _read_push(desk))["data"]["flow"]) == (third, 0, 0)
    raw = await mx.raw("GET", "/_matrix/client/v3/sync?timeout=0", token=phone.access_token)
    joined = raw.json()["rooms"]["join"][room]
    receipts = [event for event in joined["ephemeral"]["events"] if event["type"] == "m.receipt"]
    assert any(f"$m{third}" in event["content"] for event in receipts), receipts
    fully_read = [event for event in joined["account_data"]["events"]
                  if event["type"] == "m.fully_read"]
    assert fully_read == [{"type": "m.fully_read", "content": {"event_id": f"$m{third}"}}]
    update = await desk.call("get_update", time=0)
    assert state(update["data"]["flow"]) == (third, 0, 0)
    for bad, code in (([], 400), ([{"uuid": "no-such-message"}], 404)):
        refused = await desk.call("mark_read", flow=[{"uuid": flow}], message=bad)
        assert refused["errors"]["code"] == code, refused


async def _read_push(client: Client) -> dict[str, Any]:
    while True:
        push = await client.push()
        if push["meta"]["event"] == "flow_read":
            return push
