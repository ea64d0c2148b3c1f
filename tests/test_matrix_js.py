"""Element's own SDK (matrix-js-sdk, tests/js) against a real server for what Element does
besides encryption (tests/test_matrix_e2ee_js.py): changing a password, typing, replies,
reactions, read receipts and searching messages."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.support import Client, unique_login
from tests.test_matrix_support import (
    PASSWORD,
    SERVER_NAME,
    Matrix,
    js_account,
    node_missing,
    run_js,
)

pytestmark = pytest.mark.anyio


async def mtp_client(mx: Matrix, extensions: list[str], login: str = "") -> Client:
    """An MTP connection taking pushes with these extensions: of a new user, or (`login`) of
    an account that exists."""
    mtp = await Client.connect(mx.server.url)
    kind = "authentication" if login else "register_user"
    reply = await mtp.call(kind, auth=False, meta={"push": True, "extensions": extensions},
                           user=[{"login": login or unique_login("mtp"), "password": PASSWORD}])
    assert reply["errors"]["code"] in (200, 201), reply
    mtp.uuid, mtp.auth_id = reply["data"]["user"][0]["uuid"], reply["data"]["user"][0]["auth_id"]
    return mtp


async def test_element_changes_a_password(mx: Matrix) -> None:
    why = node_missing()
    if why is not None:
        pytest.skip(why)
    account = await js_account(mx, "ELEMENTDEV")
    config = {"baseUrl": mx.server.http, **account, "password": PASSWORD,
              "newPassword": "element-secret-2"}
    result = await asyncio.to_thread(run_js, "password.mjs", config)
    assert result == {"ok": True, "refused": 401, "oldRefused": 403,
                      "stillSignedIn": account["userId"], "newLogin": account["userId"]}


async def test_element_typing_reaches_mtp(mx: Matrix) -> None:
    why = node_missing()
    if why is not None:
        pytest.skip(why)
    mtp = await mtp_client(mx, ["typing"])
    try:
        flow = await mtp.group("typing with Element")
        account = await js_account(mx, "TYPINGDEV")
        login = account["userId"][1:].split(":")[0]
        element = (await mtp.call("user_info", user=[{"login": login}]))["data"]["user"][0]
        config = {"baseUrl": mx.server.http, **account, "roomId": f"!{flow}:{SERVER_NAME}"}
        result = await asyncio.to_thread(run_js, "typing.mjs", config)
        assert result == {"ok": True}, result
        seen = []
        while len(seen) < 2:
            push = await mtp.push()
            if push["meta"]["event"] == "typing":
                seen.append(push["data"]["flow"][0]["typing"])
        assert seen == [[element["uuid"]], []]
    finally:
        await mtp.close()


async def test_element_replies_and_reacts_with_mtp(mx: Matrix) -> None:
    why = node_missing()
    if why is not None:
        pytest.skip(why)
    mtp = await mtp_client(mx, ["reactions", "replies"])
    try:
        flow = await mtp.group("reactions with Element")
        sent = await mtp.call("send_message", flow=[{"uuid": flow}],
                              message=[{"client_id": 1, "text": "Friday drinks?"}])
        message = sent["data"]["message"][0]["uuid"]
        assert (await mtp.call("react", message=[{"uuid": message, "reaction": "🎉"}])
                )["errors"]["code"] == 200
        account = await js_account(mx, "REACTDEV")
        config = {"baseUrl": mx.server.http, **account, "roomId": f"!{flow}:{SERVER_NAME}",
                  "eventId": f"$m{message}", "key": "🎉"}
        result = await asyncio.to_thread(run_js, "reactions.mjs", config)
        mtp_id = (await mtp.call("user_info", user=[{"uuid": mtp.uuid}]))["data"]["user"][0]
        assert result == {"ok": True, "seen": {"🎉": [f"@{mtp_id['login']}:{SERVER_NAME}"]},
                          "keys": ["🎉", "👍"], "reply": True, "mtpKey": "🎉"}, result
        events: dict[str, dict[str, Any]] = {}  # the last push of each kind, up to the removal
        while "reaction_removed" not in events:
            push = await mtp.push()
            events[push["meta"]["event"]] = push["data"]["message"][0] \
                if push["data"]["message"] else {}
        assert events["message_sent"]["reply_to"] == message
        assert events["message_sent"]["text"] == "Agreed"
        assert [group["key"] for group in events["reaction_added"]["reactions"]] == ["🎉", "👍"]
        assert events["reaction_removed"]["reactions"] == [{"key": "🎉", "users": [mtp.uuid]}]
    finally:
        await mtp.close()


async def test_element_reading_a_room_is_read_on_mtp(mx: Matrix) -> None:
    why = node_missing()
    if why is not None:
        pytest.skip(why)
    account = await js_account(mx, "READDEV")
    login = account["userId"][1:].split(":")[0]
    desk = await mtp_client(mx, ["read"], login)  # the same account on MTP
    writer = await mx.mtp.user("writer")
    try:
        flow = await writer.group("read with Element", users=[desk.uuid])
        sent = [(await writer.send(flow, text, client_id=index))["data"]["message"][0]["uuid"]
                for index, text in enumerate(("one", "two"))]
        listed = await desk.call("all_flow")
        assert next(f for f in listed["data"]["flow"] if f["uuid"] == flow)["unread"] == 2
        config = {"baseUrl": mx.server.http, **account, "roomId": f"!{flow}:{SERVER_NAME}"}
        result = await asyncio.to_thread(run_js, "receipts.mjs", config)
        assert result == {"ok": True, "read": f"$m{sent[1]}"}, result
        while True:
            push = await desk.push()
            if push["meta"]["event"] == "flow_read":
                break
        assert push["data"]["flow"][0] == {"uuid": flow, "read": sent[1], "unread": 0,
                                           "mentions": 0}
    finally:
        await desk.close()

async def test_element_searches_messages_and_pages_back(mx: Matrix) -> None:
    why = node_missing()
    if why is not None:
        pytest.skip(why)
    mtp = await mx.mtp.user("writer")
    flow = await mtp.group("searched with Element")
    for number in range(5):
        await mtp.send(flow, f"harvest report {number}", 2 * number)
        await mtp.send(flow, f"between {number}", 2 * number + 1)
    account = await js_account(mx, "SEARCHDEV")
    config = {"baseUrl": mx.server.http, **account, "roomId": f"!{flow}:{SERVER_NAME}",
              "term": "Harvest"}
    result = await asyncio.to_thread(run_js, "search.mjs", config)
    assert result == {
        "ok": True, "pages": 3, "highlights": ["harvest"],
        "results": [[f"between {n - 1}" if n else "m.room.name", f"harvest report {n}",
                     f"between {n}"] for n in range(4, -1, -1)]}, result
