"""Matrix server-side key backup: `room_keys/version` and `room_keys/keys`."""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse

from mod.protocol.matrix.errors import Code, MatrixError
from mod.protocol.matrix.routing import Call
from mod.service import BackupVersion


def _number(value: str | None) -> int:
    if value is None or not value.isascii() or not value.isdigit() or len(value) > 18:
        raise MatrixError(400, Code.INVALID_PARAM, "version must be a backup version number")
    return int(value)


def _version_body(version: BackupVersion) -> dict[str, Any]:
    return {"version": str(version.version), "algorithm": version.algorithm,
            "auth_data": version.auth_data, "etag": str(version.etag), "count": version.count}


def _counted(version: BackupVersion) -> JSONResponse:
    return JSONResponse({"etag": str(version.etag), "count": version.count})


async def _algorithm(call: Call) -> tuple[str, dict[str, Any]]:
    body = await call.json()
    algorithm, auth_data = body.get("algorithm"), body.get("auth_data")
    if not isinstance(algorithm, str) or not isinstance(auth_data, dict):
        raise MatrixError(400, Code.BAD_JSON, "algorithm and auth_data are required")
    return algorithm, auth_data


async def create_version(call: Call) -> JSONResponse:
    """POST /_matrix/client/v3/room_keys/version"""
    algorithm, auth_data = await _algorithm(call)
    version = await call.service.backup.create(call.caller, algorithm, auth_data)
    return JSONResponse({"version": str(version)})


async def newest_version(call: Call) -> JSONResponse:
    """GET /_matrix/client/v3/room_keys/version"""
    return JSONResponse(_version_body(await call.service.backup.get(call.caller, None)))


async def get_version(call: Call) -> JSONResponse:
    """GET /_matrix/client/v3/room_keys/version/{version}"""
    version = _number(call.param("version"))
    return JSONResponse(_version_body(await call.service.backup.get(call.caller, version)))


async def update_version(call: Call) -> JSONResponse:
    """PUT /_matrix/client/v3/room_keys/version/{version}"""
    algorithm, auth_data = await _algorithm(call)
    await call.service.backup.update(call.caller, _number(call.param("version")), algorithm,
                                     auth_data)
    return JSONResponse({})


async def delete_version(call: Call) -> JSONResponse:
    """DELETE /_matrix/client/v3/room_keys/version/{version}"""
    await call.service.backup.delete(call.caller, _number(call.param("version")))
    return JSONResponse({})


def _rooms(call: Call, body: dict[str, Any]) -> dict[str, dict[str, dict[str, Any]]]:
    """The keys a PUT carries, at whichever level its path names."""
    params = call.request.path_params
    if "sessionId" in params:
        return {params["roomId"]: {params["sessionId"]: body}}
    if "roomId" in params:
        sessions = body.get("sessions")
        return {params["roomId"]: sessions if isinstance(sessions, dict) else {}}
    rooms = body.get("rooms")
    if not isinstance(rooms, dict):
        raise MatrixError(400, Code.BAD_JSON, "rooms must be an object")
    return {room: data.get("sessions") or {} for room, data in rooms.items()
            if isinstance(data, dict)}


async def put_keys(call: Call) -> JSONResponse:
    """PUT /_matrix/client/v3/room_keys/keys[/{roomId}[/{sessionId}]]"""
    version = _number(call.query("version"))
    rooms = _rooms(call, await call.json())
    return _counted(await call.service.backup.put_keys(call.caller, version, rooms))


async def get_keys(call: Call) -> JSONResponse:
    """GET /_matrix/client/v3/room_keys/keys[/{roomId}[/{sessionId}]]"""
    version = _number(call.query("version"))
    params = call.request.path_params
    room, session = params.get("roomId"), params.get("sessionId")
    found = await call.service.backup.keys(call.caller, version, room, session)
    if session is not None:
        data = found.get(room or "", {}).get(session)
        if data is None:
            raise MatrixError(404, Code.NOT_FOUND, "No such key backed up")
        return JSONResponse(data)
    if room is not None:
        return JSONResponse({"sessions": found.get(room, {})})
    return JSONResponse({"rooms": {room_id: {"sessions": sessions}
                                   for room_id, sessions in found.items()}})


async def delete_keys(call: Call) -> JSONResponse:
    """DELETE /_matrix/client/v3/room_keys/keys[/{roomId}[/{sessionId}]]"""
    version = _number(call.query("version"))
    params = call.request.path_params
    return _counted(await call.service.backup.delete_keys(
        call.caller, version, params.get("roomId"), params.get("sessionId")))
