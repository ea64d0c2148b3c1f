"""Element's own SDK (matrix-js-sdk, tests/js) against a real server for what Element does
besides encryption (tests/test_matrix_e2ee_js.py): changing a password, typing."""

from __future__ import annotations

import asyncio

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
    mtp = await Client.connect(mx.server.url)
    reply = await mtp.call("register_user", auth=False,
                           meta={"push": True, "extensions": ["typing"]},
                           user=[{"login": unique_login("watcher"), "password": PASSWORD}])
    mtp.uuid, mtp.auth_id = reply["data"]["user"][0]["uuid"], reply["data"]["user"][0]["auth_id"]
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
