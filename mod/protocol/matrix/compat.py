"""Endpoints full clients (Element) call on start-up or as they go, answered plainly.

This server keeps no presence or end-to-end keys: those requests succeed and store nothing,
and reads answer with empty sets, so clients work without those features instead of failing.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse

from mod.protocol.matrix.api import Empty
from mod.protocol.matrix.errors import Code, MatrixError
from mod.protocol.matrix.events import ROOM_VERSION
from mod.protocol.matrix.routing import Call, route


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


@route("PUT", "/presence/{userId}/status")
async def accepted(call: Call) -> Empty:
    """PUT /_matrix/client/v3/presence/{userId}/status: accepted, not stored."""
    await call.json()
    return Empty()


@route("GET", "/room_keys/version")
async def not_kept(call: Call) -> Empty:
    """GET /_matrix/client/v3/room_keys/version (key backups): none."""
    raise MatrixError(404, Code.NOT_FOUND, "This server keeps none")


@route("GET", "/voip/turnServer")
@route("GET", "/thirdparty/protocols")
async def nothing(call: Call) -> Empty:
    """GET /_matrix/client/v3/voip/turnServer (and third-party protocols): none."""
    return Empty()


@route("POST", "/keys/upload")
async def keys_upload(call: Call) -> JSONResponse:
    """POST /_matrix/client/v3/keys/upload: end-to-end encryption is not supported."""
    await call.json()
    return _json({"one_time_key_counts": {}})


@route("POST", "/keys/query")
async def keys_query(call: Call) -> JSONResponse:
    """POST /_matrix/client/v3/keys/query: no device keys are kept."""
    await call.json()
    return _json({"device_keys": {}, "failures": {}})
