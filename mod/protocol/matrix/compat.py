"""Endpoints full clients (Element) call on start-up or as they go, answered plainly.

This server keeps no presence: those requests succeed and store nothing, and reads answer
with empty sets, so clients work without it instead of failing.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse

from mod.protocol.matrix.api import Empty
from mod.protocol.matrix.events import ROOM_VERSION
from mod.protocol.matrix.routing import Call


def _json(data: dict[str, Any]) -> JSONResponse:
    return JSONResponse(data)


async def capabilities(call: Call) -> JSONResponse:
    """GET /_matrix/client/v3/capabilities"""
    return _json({"capabilities": {
        "m.change_password": {"enabled": True},
        "m.room_versions": {"default": ROOM_VERSION, "available": {ROOM_VERSION: "stable"}},
        "m.set_displayname": {"enabled": True},
        "m.set_avatar_url": {"enabled": True},
        "m.3pid_changes": {"enabled": False},
    }})


async def accepted(call: Call) -> Empty:
    """PUT /_matrix/client/v3/presence/{userId}/status: accepted, not stored."""
    await call.json()
    return Empty()


async def nothing(call: Call) -> Empty:
    """GET /_matrix/client/v3/voip/turnServer (and third-party protocols): none."""
    return Empty()
