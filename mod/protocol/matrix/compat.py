"""Endpoints full clients (Element) call on start-up or as they go, answered plainly.

This server keeps no push rules, account data, receipts, typing notices or presence: those
requests succeed and store nothing, and reads answer with empty sets, so clients work
without those features instead of failing.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse

from mod.protocol.matrix.api import Empty
from mod.protocol.matrix.errors import Code, MatrixError
from mod.protocol.matrix.events import ROOM_VERSION
from mod.protocol.matrix.routing import Call, route

PUSH_KINDS = ("override", "content", "room", "sender", "underride")


def _json(data: dict[str, Any]) -> JSONResponse:
    return JSONResponse(data)


@route("GET", "/capabilities")
async def capabilities(call: Call) -> JSONResponse:
    """GET /_matrix/client/v3/capabilities"""
    return _json({"capabilities": {
        "m.change_password": {"enabled": False},
        "m.room_versions": {"default": ROOM_VERSION, "available": {ROOM_VERSION: "stable"}},
        "m.set_displayname": {"enabled": True},
        "m.set_avatar_url": {"enabled": False},
        "m.3pid_changes": {"enabled": False},
    }})


@route("GET", "/pushrules/")
@route("GET", "/pushrules")
async def push_rules(call: Call) -> JSONResponse:
    """GET /_matrix/client/v3/pushrules/"""
    return _json({"global": {kind: [] for kind in PUSH_KINDS}})


@route("PUT", "/user/{userId}/account_data/{type}")
@route("PUT", "/user/{userId}/rooms/{roomId}/account_data/{type}")
@route("PUT", "/rooms/{roomId}/typing/{userId}")
@route("PUT", "/presence/{userId}/status")
@route("POST", "/rooms/{roomId}/receipt/{receiptType}/{eventId}")
@route("POST", "/rooms/{roomId}/read_markers")
async def accepted(call: Call) -> Empty:
    """PUT /_matrix/client/v3/user/{userId}/account_data/{type} (and typing, receipts,
    read markers, presence): accepted, not stored."""
    await call.json()
    return Empty()


@route("GET", "/user/{userId}/account_data/{type}")
async def not_kept(call: Call) -> Empty:
    """GET /_matrix/client/v3/user/{userId}/account_data/{type}: none."""
    raise MatrixError(404, Code.NOT_FOUND, "This server keeps none")


@route("GET", "/voip/turnServer")
@route("GET", "/thirdparty/protocols")
async def nothing(call: Call) -> Empty:
    """GET /_matrix/client/v3/voip/turnServer (and third-party protocols): none."""
    return Empty()
