"""Matrix end-to-end encryption keys: upload, query, claim, changes, cross-signing and
signatures, and to-device messages. Key material is the clients' JSON, kept and handed out
as sent (`service.keys`, `service.devices`)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from starlette.responses import JSONResponse, Response

from mod.error import ServiceError
from mod.protocol.matrix import ids
from mod.protocol.matrix.errors import Code, MatrixError
from mod.protocol.matrix.routing import Call
from mod.protocol.matrix.uia import with_password
from mod.service import DeviceInfo


async def uuids_of(call: Call, user_ids: Iterable[str]) -> dict[str, str]:
    """user ID -> uuid of the local users named (others left out)."""
    found: dict[str, str] = {}
    for user_id in user_ids:
        login = ids.login_of(user_id, call.server_name) if isinstance(user_id, str) else None
        if login is None:
            continue
        try:
            found[user_id] = (await call.service.profiles.by_login(login)).uuid
        except ServiceError:
            continue
    return found


async def ids_of(call: Call, uuids: Iterable[str]) -> dict[str, str]:
    """uuid -> user ID."""
    users = await call.matrix.users.get(set(uuids))
    return {uuid: ids.user_id(user.login, call.server_name) for uuid, user in users.items()}


def _object(data: dict[str, Any], name: str) -> dict[str, Any]:
    value = data.get(name) or {}
    if not isinstance(value, dict):
        raise MatrixError(400, Code.BAD_JSON, f"{name} must be an object")
    return value


def device_keys_of(device: DeviceInfo) -> dict[str, Any] | None:
    if device.keys is None:
        return None
    keys = dict(device.keys)
    if device.display_name:
        keys["unsigned"] = {**(keys.get("unsigned") or {}),
                            "device_display_name": device.display_name}
    return keys


async def upload(call: Call) -> JSONResponse:
    """POST /_matrix/client/v3/keys/upload"""
    data = await call.json()
    device_keys = data.get("device_keys")
    if device_keys is not None:
        if not isinstance(device_keys, dict):
            raise MatrixError(400, Code.BAD_JSON, "device_keys must be an object")
        mine = ids.user_id((await call.matrix.users.get([call.caller.uuid]))[
            call.caller.uuid].login, call.server_name)
        if device_keys.get("user_id") != mine or device_keys.get("device_id") != \
                call.caller.device:
            raise MatrixError(400, Code.INVALID_PARAM,
                              "device_keys must be of this user and this access token's device")
    counts = await call.service.keys.upload(call.caller, device_keys,
                                            _object(data, "one_time_keys"),
                                            _object(data, "fallback_keys"))
    return JSONResponse({"one_time_key_counts": counts})


async def query(call: Call) -> JSONResponse:
    """POST /_matrix/client/v3/keys/query"""
    wanted = _object(await call.json(), "device_keys")
    users = await uuids_of(call, wanted)
    by_uuid = {uuid: [d for d in (wanted[user] or []) if isinstance(d, str)]
               for user, uuid in users.items()}
    found = await call.service.keys.query(by_uuid)
    device_keys: dict[str, dict[str, Any]] = {user: {} for user in wanted}
    for user, uuid in users.items():
        for device in found.get(uuid, []):
            keys = device_keys_of(device)
            if keys is not None:
                device_keys[user][device.device] = keys
    reply: dict[str, Any] = {"device_keys": device_keys, "failures": {}}
    signing = await call.service.devices.signing_keys(list(users.values()))
    for field, key_type in (("master_keys", "master"), ("self_signing_keys", "self_signing"),
                            ("user_signing_keys", "user_signing")):
        reply[field] = {user: signing[(uuid, key_type)] for user, uuid in users.items()
                        if (uuid, key_type) in signing
                        and (key_type != "user_signing" or uuid == call.caller.uuid)}
    return JSONResponse(reply)


async def claim(call: Call) -> JSONResponse:
    """POST /_matrix/client/v3/keys/claim"""
    wanted = _object(await call.json(), "one_time_keys")
    users = await uuids_of(call, wanted)
    asked = {uuid: {device: algorithm for device, algorithm in (wanted[user] or {}).items()
                    if isinstance(algorithm, str)}
             for user, uuid in users.items() if isinstance(wanted[user], dict)}
    claimed = await call.service.keys.claim(asked)
    back = {uuid: user for user, uuid in users.items()}
    return JSONResponse({"one_time_keys": {back[uuid]: devices
                                           for uuid, devices in claimed.items()},
                         "failures": {}})


async def changes(call: Call) -> JSONResponse:
    """GET /_matrix/client/v3/keys/changes"""
    start, end = call.query("from"), call.query("to")
    if not start or not end:
        raise MatrixError(400, Code.MISSING_PARAM, "from and to are required")
    changed, left = await call.service.keys.changes(
        call.caller, ids.parse_token(start, "from"), ids.parse_token(end, "to"))
    names = await ids_of(call, {*changed, *left})
    return JSONResponse({"changed": sorted(names[user] for user in changed if user in names),
                         "left": sorted(names[user] for user in left if user in names)})


async def device_signing_upload(call: Call) -> Response:
    """POST /_matrix/client/v3/keys/device_signing/upload"""
    data = await call.json()
    keys = {name: data[field] for field, name in (
        ("master_key", "master"), ("self_signing_key", "self_signing"),
        ("user_signing_key", "user_signing")) if isinstance(data.get(field), dict)}

    async def store(password: str | None) -> None:
        await call.service.devices.upload_signing_keys(call.caller, keys, password)

    try:
        await store(None)
    except ServiceError as exc:
        if exc.code != 401:
            raise
        needed = await with_password(data, store)
        if needed is not None:
            return needed
    return JSONResponse({})


async def signatures_upload(call: Call) -> JSONResponse:
    """POST /_matrix/client/v3/keys/signatures/upload"""
    data = await call.json()
    users = await uuids_of(call, data)
    signed = {uuid: {key: obj for key, obj in data[user].items() if isinstance(obj, dict)}
              for user, uuid in users.items() if isinstance(data[user], dict)}
    failures = await call.service.devices.upload_signatures(call.caller, signed)
    back = {uuid: user for user, uuid in users.items()}
    return JSONResponse({"failures": {
        back[uuid]: {key: {"errcode": "M_INVALID_SIGNATURE", "error": reason}
                     for key, reason in keys.items()} for uuid, keys in failures.items()}})


async def send_to_device(call: Call) -> JSONResponse:
    """PUT /_matrix/client/v3/sendToDevice/{eventType}/{txnId}"""
    messages = _object(await call.json(), "messages")
    users = await uuids_of(call, messages)
    by_uuid = {uuid: {device: content for device, content in messages[user].items()
                      if isinstance(content, dict)}
               for user, uuid in users.items() if isinstance(messages[user], dict)}
    await call.service.keys.send_to_device(call.caller, call.param("eventType"), by_uuid,
                                           call.param("txnId"))
    return JSONResponse({})
