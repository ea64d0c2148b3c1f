"""Matrix devices: list, read, rename, delete (after the password: user-interactive
authentication). Deleting a device removes its keys and logs it out."""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse, Response

from mod.protocol.matrix.errors import Code, MatrixError
from mod.protocol.matrix.routing import Call
from mod.protocol.matrix.uia import with_password
from mod.service import DeviceInfo


def _device(device: DeviceInfo) -> dict[str, Any]:
    return {"device_id": device.device, "display_name": device.display_name or None,
            "last_seen_ip": device.last_seen_ip or None,
            "last_seen_ts": device.last_seen_ts or None}


async def devices(call: Call) -> JSONResponse:
    """GET /_matrix/client/v3/devices"""
    return JSONResponse({"devices": [_device(d) for d in
                                     await call.service.devices.all(call.caller)]})


async def device(call: Call) -> JSONResponse:
    """GET /_matrix/client/v3/devices/{deviceId}"""
    return JSONResponse(_device(await call.service.devices.get(call.caller,
                                                               call.param("deviceId"))))


async def rename(call: Call) -> JSONResponse:
    """PUT /_matrix/client/v3/devices/{deviceId}"""
    name = (await call.json()).get("display_name")
    if name is not None:
        if not isinstance(name, str):
            raise MatrixError(400, Code.BAD_JSON, "display_name must be a string")
        await call.service.devices.rename(call.caller, call.param("deviceId"), name)
    return JSONResponse({})


async def _delete(call: Call, body: dict[str, Any], device_ids: list[str]) -> Response:
    async def delete(password: str) -> None:
        await call.service.devices.delete(call.caller, device_ids, password)

    needed = await with_password(body, delete)
    return needed if needed is not None else JSONResponse({})


async def delete_device(call: Call) -> Response:
    """DELETE /_matrix/client/v3/devices/{deviceId}"""
    device_id = call.param("deviceId")
    await call.service.devices.get(call.caller, device_id)
    return await _delete(call, await call.json(), [device_id])


async def delete_devices(call: Call) -> Response:
    """POST /_matrix/client/v3/delete_devices"""
    body = await call.json()
    device_ids = body.get("devices")
    if not isinstance(device_ids, list) or not all(isinstance(d, str) for d in device_ids):
        raise MatrixError(400, Code.MISSING_PARAM, "devices must be a list of device IDs")
    return await _delete(call, body, device_ids)
