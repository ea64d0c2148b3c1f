"""End-to-end encryption with Element's own SDK: two matrix-js-sdk clients with Rust crypto
(tests/js/e2ee.mjs, run by node) exchange a message in an encrypted direct chat on a real
server, and the receiver decrypts the exact plaintext."""

from __future__ import annotations

import asyncio

import pytest

from tests.test_matrix_support import Matrix, js_account, node_missing, run_js

pytestmark = pytest.mark.anyio

async def test_encrypted_direct_chat_decrypts(mx: Matrix) -> None:
    why = node_missing()
    if why is not None:
        pytest.skip(why)
    text = "hello through megolm — ünïcode 🔐"
    config = {"baseUrl": mx.server.http, "text": text,
              "alice": await js_account(mx, "ALICEDEV"), "bob": await js_account(mx, "BOBDEV")}
    result = await asyncio.to_thread(run_js, "e2ee.mjs", config)
    assert result.get("ok"), result
    assert result["encrypted"] is True
    assert result["wireType"] == "m.room.encrypted"
    assert result["body"] == text
