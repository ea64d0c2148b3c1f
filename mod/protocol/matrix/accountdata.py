"""Account data (global and per room), room tags, push rules and pushers.

The rules are the service's (`userdata`, `pushrules`); push rules are the user's
`m.push_rules` account data, so /sync echoes their changes. Pushers are accepted and not
kept: this server sends no push notifications.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse

from mod.protocol.matrix import ids
from mod.protocol.matrix.api import Empty
from mod.protocol.matrix.receipts import own_user
from mod.protocol.matrix.rooms import room_flow
from mod.protocol.matrix.routing import Call
from mod.service import pushrules


async def put_global(call: Call) -> Empty:
    """PUT /_matrix/client/v3/user/{userId}/account_data/{type}"""
    content = await call.json()
    await call.service.userdata.put(call.caller, await own_user(call), "", call.param("type"),
                                    content)
    return Empty()


async def get_global(call: Call) -> JSONResponse:
    """GET /_matrix/client/v3/user/{userId}/account_data/{type}"""
    return JSONResponse(await call.service.userdata.get(call.caller, await own_user(call), "",
                                                        call.param("type")))


async def put_room(call: Call) -> Empty:
    """PUT /_matrix/client/v3/user/{userId}/rooms/{roomId}/account_data/{type}"""
    flow = room_flow(call)
    content = await call.json()
    await call.service.userdata.put(call.caller, await own_user(call), flow,
                                    call.param("type"), content)
    return Empty()


async def get_room(call: Call) -> JSONResponse:
    """GET /_matrix/client/v3/user/{userId}/rooms/{roomId}/account_data/{type}"""
    flow = room_flow(call)
    return JSONResponse(await call.service.userdata.get(call.caller, await own_user(call),
                                                        flow, call.param("type")))


# -- room tags (m.tag room account data) ------------------------------------------------------


async def get_tags(call: Call) -> JSONResponse:
    """GET /_matrix/client/v3/user/{userId}/rooms/{roomId}/tags"""
    flow = room_flow(call)
    return JSONResponse({"tags": await call.service.userdata.tags(
        call.caller, await own_user(call), flow)})


async def put_tag(call: Call) -> Empty:
    """PUT /_matrix/client/v3/user/{userId}/rooms/{roomId}/tags/{tag}"""
    flow = room_flow(call)
    content = await call.json()
    await call.service.userdata.tag(call.caller, await own_user(call), flow, call.param("tag"),
                                    content)
    return Empty()


async def delete_tag(call: Call) -> Empty:
    """DELETE /_matrix/client/v3/user/{userId}/rooms/{roomId}/tags/{tag}"""
    flow = room_flow(call)
    await call.service.userdata.tag(call.caller, await own_user(call), flow, call.param("tag"),
                                    None)
    return Empty()


# -- push rules -------------------------------------------------------------------------------


async def _who(call: Call) -> tuple[str, str]:
    """The caller's user ID and localpart, which the default rules name."""
    uuid = call.caller.uuid
    login = (await call.matrix.users.get([uuid]))[uuid].login
    return ids.user_id(login, call.server_name), login


async def _rules(call: Call) -> dict[str, Any]:
    return await call.service.userdata.push_rules(call.caller, *await _who(call))


async def _change(call: Call, change: Any, *args: Any) -> Empty:
    await call.service.userdata.change_push_rules(
        call.caller, *await _who(call), change, call.param("scope"), call.param("kind"),
        call.param("ruleId"), *args)
    return Empty()


async def all_rules(call: Call) -> JSONResponse:
    """GET /_matrix/client/v3/pushrules/"""
    return JSONResponse(await _rules(call))


async def global_rules(call: Call) -> JSONResponse:
    """GET /_matrix/client/v3/pushrules/global/"""
    return JSONResponse((await _rules(call))["global"])


async def get_rule(call: Call) -> JSONResponse:
    """GET /_matrix/client/v3/pushrules/{scope}/{kind}/{ruleId}"""
    return JSONResponse(pushrules.find(await _rules(call), call.param("scope"),
                                       call.param("kind"), call.param("ruleId")))


async def put_rule(call: Call) -> Empty:
    """PUT /_matrix/client/v3/pushrules/{scope}/{kind}/{ruleId}"""
    body = await call.json()
    return await _change(call, pushrules.put, body, call.query("before"), call.query("after"))


async def delete_rule(call: Call) -> Empty:
    """DELETE /_matrix/client/v3/pushrules/{scope}/{kind}/{ruleId}"""
    return await _change(call, pushrules.delete)


async def get_enabled(call: Call) -> JSONResponse:
    """GET /_matrix/client/v3/pushrules/{scope}/{kind}/{ruleId}/enabled"""
    rule = pushrules.find(await _rules(call), call.param("scope"), call.param("kind"),
                          call.param("ruleId"))
    return JSONResponse({"enabled": rule.get("enabled", True)})


async def put_enabled(call: Call) -> Empty:
    """PUT /_matrix/client/v3/pushrules/{scope}/{kind}/{ruleId}/enabled"""
    return await _change(call, pushrules.set_enabled, await call.json())


async def get_actions(call: Call) -> JSONResponse:
    """GET /_matrix/client/v3/pushrules/{scope}/{kind}/{ruleId}/actions"""
    rule = pushrules.find(await _rules(call), call.param("scope"), call.param("kind"),
                          call.param("ruleId"))
    return JSONResponse({"actions": rule.get("actions", [])})


async def put_actions(call: Call) -> Empty:
    """PUT /_matrix/client/v3/pushrules/{scope}/{kind}/{ruleId}/actions"""
    return await _change(call, pushrules.set_actions, await call.json())


# -- pushers ----------------------------------------------------------------------------------


async def pushers(call: Call) -> JSONResponse:
    """GET /_matrix/client/v3/pushers: none (this server sends no push notifications)."""
    return JSONResponse({"pushers": []})


async def set_pusher(call: Call) -> Empty:
    """POST /_matrix/client/v3/pushers/set: accepted, not kept."""
    await call.json()
    return Empty()
