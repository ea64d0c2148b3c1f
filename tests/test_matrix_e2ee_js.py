"""End-to-end encryption with Element's own SDK: two matrix-js-sdk clients with Rust crypto
(tests/js/e2ee.mjs, run by node) exchange a message in an encrypted direct chat on a real
server, and the receiver decrypts the exact plaintext."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.test_matrix_support import PASSWORD, Matrix, login_name, user_id

pytestmark = pytest.mark.anyio

JS = Path(__file__).parent / "js"


def _node_ready() -> str | None:
    """Why the SDK cannot run here, or None when it can."""
    if shutil.which("node") is None:
        return "node is not installed (.ci/run installs it with apt-get)"
    if not (JS / "node_modules" / "matrix-js-sdk").is_dir():
        return "tests/js has no node_modules: run `npm ci` there (.ci/run does)"
    return None


async def _account(mx: Matrix, device: str) -> dict[str, str]:
    login = login_name("js")
    response = await mx.raw("POST", "/_matrix/client/v3/register", json={
        "username": login, "password": PASSWORD, "device_id": device,
        "auth": {"type": "m.login.dummy"}})
    assert response.status_code == 200, response.text
    body = response.json()
    return {"userId": user_id(login), "accessToken": body["access_token"],
            "deviceId": body["device_id"]}


def _run(config: dict[str, Any]) -> dict[str, Any]:
    done = subprocess.run(["node", str(JS / "e2ee.mjs"), json.dumps(config)], cwd=JS,
                          capture_output=True, text=True, timeout=120, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    assert lines, f"no result from node: {done.stdout[-2000:]} {done.stderr[-2000:]}"
    result: dict[str, Any] = json.loads(lines[-1])
    return result


async def test_encrypted_direct_chat_decrypts(mx: Matrix) -> None:
    why = _node_ready()
    if why is not None:
        pytest.skip(why)
    text = "hello through megolm — ünïcode 🔐"
    config = {"baseUrl": mx.server.http, "text": text,
              "alice": await _account(mx, "ALICEDEV"), "bob": await _account(mx, "BOBDEV")}
    result = await asyncio.to_thread(_run, config)
    assert result.get("ok"), result
    assert result["encrypted"] is True
    assert result["wireType"] == "m.room.encrypted"
    assert result["body"] == text
