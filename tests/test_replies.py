"""Replies between the protocols: a Matrix reply's fallback is not part of its text for MTP."""

from __future__ import annotations

import nio
import pytest

from mod.service.replies import body_for_mtp, without_fallback
from tests.support import pushes_before_answer
from tests.test_matrix_support import SERVER_NAME, Matrix, sync_until

REPLY = {"m.in_reply_to": {"event_id": "$m1"}}


@pytest.mark.parametrize(("body", "text"), [
    ("> <@a:x.org> hi\n\nhello", "hello"),
    ("> <@a:x.org> hi\n> there\n\nhello\n> mine", "hello\n> mine"),
    ("> <@a:x.org> hi\nhello", "hello"),  # no empty line after the quote
    (">\n\nhello", "hello"),
    ("> only the quote", ""),
    ("hello\n> later", "hello\n> later"),
    ("", ""),
])
def test_the_fallback_is_the_leading_quote(body: str, text: str) -> None:
    assert without_fallback(body) == text


def test_only_a_reply_loses_its_leading_quote() -> None:
    body = "> <@a:x.org> hi\n\nhello"
    assert body_for_mtp({"body": body, "m.relates_to": REPLY}) == "hello"
    assert body_for_mtp({"body": body}) == body
    assert body_for_mtp({"body": body, "m.relates_to": {"rel_type": "m.thread"}}) == body
    assert body_for_mtp({"body": body, "m.relates_to": "nonsense"}) == body
    assert body_for_mtp({"m.relates_to": REPLY}) == ""


# -- end to end: a reply names the message it answers, in MTP (asked for) and Matrix ---------


@pytest.mark.anyio
async def test_replies_cross_between_mtp_and_matrix(mx: Matrix) -> None:
    anna = await mx.mtp.user("anna", push=True)
    plain = await mx.mtp.user("plain", push=True)  # asks for no extension
    reply = await anna.call("ping_pong", meta={"extensions": ["replies"]})
    assert reply["meta"] == {"extensions": ["replies"]}
    flow = await anna.group("replies", users=[plain.uuid])
    room = f"!{flow}:{SERVER_NAME}"
    boris = await mx.user("boris")
    assert isinstance(await boris.join(room), nio.JoinResponse)
    await boris.sync(timeout=0)
    question = await anna.call("send_message", flow=[{"uuid": flow}],
                               message=[{"client_id": 1, "text": "Lunch at one?"}])
    first = question["data"]["message"][0]["uuid"]

    # MTP -> Matrix: m.in_reply_to, with no fallback (the spec dropped them).
    answer = await anna.call("send_message", flow=[{"uuid": flow}],
                             message=[{"client_id": 2, "text": "Or two", "reply_to": first}])
    assert answer["errors"]["code"] == 200, answer
    seen = await sync_until(boris, room, lambda event: event["content"].get("body") == "Or two")
    event = next(event for event in seen if event["content"].get("body") == "Or two")
    assert event["content"]["m.relates_to"] == {"m.in_reply_to": {"event_id": f"$m{first}"}}
    pushed = [push for push in await pushes_before_answer(anna)
              if push["meta"]["event"] == "message_sent"]
    assert [push["data"]["message"][0].get("reply_to") for push in pushed] == [None, first]
    plainly = [push["data"]["message"][0] for push in await pushes_before_answer(plain)
               if push["meta"]["event"] == "message_sent"]
    assert len(plainly) == 2 and all("reply_to" not in message for message in plainly)

    # Matrix -> MTP: the reply's target is the message's uuid.
    content = {"msgtype": "m.text", "body": f"> <@x:{SERVER_NAME}> Lunch at one?\n\nYes",
               "m.relates_to": {"m.in_reply_to": {"event_id": f"$m{first}"}}}
    assert isinstance(await boris.room_send(room, "m.room.message", content),
                      nio.RoomSendResponse)
    frame = await anna.push()
    assert frame["data"]["message"][0]["reply_to"] == first
    assert frame["data"]["message"][0]["text"] == "Yes"
    page = await anna.call("all_messages", flow=[{"uuid": flow}])
    assert [m["reply_to"] for m in page["data"]["message"]] == [None, first, first]
    for frame in (await plain.call("all_messages", flow=[{"uuid": flow}]),
                  await plain.call("get_update", time=0)):
        assert all("reply_to" not in m for m in frame["data"]["message"])

    # A reply names a message of the same flow.
    other = await anna.group("elsewhere")
    elsewhere = await anna.call("send_message", flow=[{"uuid": other}],
                                message=[{"client_id": 3, "text": "x"}])
    for target in (elsewhere["data"]["message"][0]["uuid"], "no-such-message"):
        refused = await anna.call("send_message", flow=[{"uuid": flow}],
                                  message=[{"client_id": 4, "text": "x", "reply_to": target}])
        assert refused["errors"]["code"] == 404, refused
    foreign = await mx.raw("PUT", f"/_matrix/client/v3/rooms/{room}/send/m.room.message/t9",
                           token=boris.access_token,
                           json={**content, "m.relates_to": {"m.in_reply_to": {
                               "event_id": f"$m{elsewhere['data']['message'][0]['uuid']}"}}})
    assert foreign.status_code == 404 and foreign.json()["errcode"] == "M_NOT_FOUND"
