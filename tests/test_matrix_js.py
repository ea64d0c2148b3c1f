"""Element's own SDK (matrix-js-sdk, tests/js) against a real server for what Element does
besides encryption (tests/test_matrix_e2ee_js.py): changing a password."""

from __future__ import annotations

import asyncio

import pytest

from tests.test_matrix_support import PASSWORD, Matrix, js_account, node_missing, run_js

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
