"""MTP methods: one small function per method, translating frames into service calls."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Sequence
from functools import lru_cache
from typing import Any

from pydantic_core import from_json, to_json

from mod import changes as kinds
from mod.changes import Kind
from mod.error import ServiceError, phrase
from mod.protocol.mtp.api import (
    PROTOCOL_REVISION,
    PROTOCOL_VERSION,
    DataIn,
    DataOut,
    Errors,
    FlowIn,
    FlowOut,
    JsonapiOut,
    MessageIn,
    MessageOut,
    Request,
    Response,
    UserOut,
)
from mod.service import CONTENT_FIELDS, Caller, ChangeRow, Credentials, Service

Method = Callable[[Service, Request, Caller], Awaitable[Response]]
# Public methods also take the client's address (failed logins are counted per address).
PublicMethod = Callable[[Service, Request, str], Awaitable[tuple[Response, Caller]]]


def _jsonapi() -> JsonapiOut:
    return JsonapiOut(version=PROTOCOL_VERSION, revision=PROTOCOL_REVISION)


_JSONAPI = _jsonapi()  # never changed after this, so every response can share it


def respond(kind: str, code: int, detail: str = "", *, flow: Sequence[Any] | None = None,
            message: Sequence[Any] | None = None, user: Sequence[Any] | None = None,
            with_data: bool = True) -> Response:
    stamp = int(time.time())
    data = None
    if with_data:
        fields: dict[str, Any] = {"time": stamp, "meta": None}
        if flow is not None:
            fields["flow"] = flow
        if message is not None:
            fields["message"] = message
        if user is not None:
            fields["user"] = user
        data = DataOut.model_validate(fields)
    # The envelope holds only values made here (the objects in `data` were validated above),
    # so it is assembled without validating it again.
    errors = Errors.model_construct(code=code, status=phrase(code), time=stamp,
                                    detail=detail or phrase(code))
    return Response.model_construct(type=kind, data=data, errors=errors, jsonapi=_JSONAPI,
                                    meta=None)


# Responses holding more objects than this are built and serialised on a worker thread: a
# large get_update takes tens of milliseconds of CPU, which would hold up every connection.
LARGE_RESPONSE = 256


async def respond_off_loop(kind: str, code: int, **objects: Any) -> Response:
    """`respond`, rendered to its text on a worker thread when it is large."""
    if sum(len(items) for items in objects.values() if items is not None) <= LARGE_RESPONSE:
        return respond(kind, code, **objects)

    def render() -> Response:
        response = respond(kind, code, **objects)
        response.dump()
        return response

    return await asyncio.to_thread(render)


def error(kind: str, code: int, detail: str, **objects: Any) -> Response:
    return respond(kind, code, detail, with_data=bool(objects), **objects)


def _first(items: Sequence[Any] | None, what: str) -> Any:
    if not items:
        raise ServiceError(400, f"The request needs data.{what}[0]")
    return items[0]


def _data(request: Request) -> DataIn:
    return request.data or DataIn()


def _flow_uuid(request: Request) -> str:
    flow: FlowIn = _first(_data(request).flow, "flow")
    if not flow.uuid:
        raise ServiceError(400, "The request needs data.flow[0].uuid")
    return flow.uuid


def _message(request: Request) -> MessageIn:
    return _first(_data(request).message, "message")  # type: ignore[no-any-return]


def _message_uuid(request: Request) -> str:
    message = _message(request)
    if not message.uuid:
        raise ServiceError(400, "The request needs data.message[0].uuid")
    return message.uuid


def _credentials(signed_in: Credentials) -> UserOut:
    return UserOut(uuid=signed_in.user["uuid"], auth_id=signed_in.token,
                   token_ttl=signed_in.token_ttl)




# -- public methods ---------------------------------------------------------------------------


async def register_user(service: Service, request: Request, address: str
                        ) -> tuple[Response, Caller]:
    user = _first(_data(request).user, "user")
    signed_in = await service.accounts.register(user.login or "", user.password or "",
                                                user.username or "", user.email or "",
                                                registration_token=user.registration_token,
                                                address=address)
    return respond(request.type, 201, user=[_credentials(signed_in)]), signed_in.caller


async def authentication(service: Service, request: Request, address: str
                         ) -> tuple[Response, Caller]:
    user = _first(_data(request).user, "user")
    signed_in = await service.accounts.login(user.login or "", user.password or "",
                                             address=address)
    return respond(request.type, 200, user=[_credentials(signed_in)]), signed_in.caller


# -- authenticated methods --------------------------------------------------------------------


async def get_update(service: Service, request: Request, caller: Caller) -> Response:
    flows, messages, users = await service.timeline.get_update(caller, _data(request).time or 0)
    return await respond_off_loop(request.type, 200, flow=flows, message=messages, user=users)


async def send_message(service: Service, request: Request, caller: Caller) -> Response:
    flow_uuid = _flow_uuid(request)
    message = _message(request)
    if message.client_id is None:
        raise ServiceError(400, "The request needs data.message[0].client_id")
    content = {field: value for field in CONTENT_FIELDS
               if (value := getattr(message, field)) is not None}
    stored = (await service.messages.send(caller, flow_uuid, message.client_id, content)).value
    reply = MessageOut(uuid=stored["uuid"], client_id=stored["client_id"],
                       from_user=stored["from_user"], from_flow=stored["from_flow"],
                       time=stored["time"])
    return respond(request.type, 200, message=[reply])


async def all_messages(service: Service, request: Request, caller: Caller) -> Response:
    flow = _first(_data(request).flow, "flow")
    if not flow.uuid:
        raise ServiceError(400, "The request needs data.flow[0].uuid")
    found = await service.messages.page(caller, flow.uuid, flow.message_start,
                                       flow.message_end, _data(request).time or 0)
    if found.total is None:
        return respond(request.type, 200, message=[]).with_raw("message", found.json)
    start = flow.message_start or 0
    page = FlowOut(uuid=flow.uuid, message_start=start, message_end=found.total)
    detail = f"Messages {start} to {start + found.count} of {found.total}"
    return respond(request.type, 206, detail, flow=[page], message=[]).with_raw("message",
                                                                               found.json)


async def add_flow(service: Service, request: Request, caller: Caller) -> Response:
    flow = _first(_data(request).flow, "flow")
    try:
        created = (await service.flows.add(caller, flow.type or "", flow.title or "",
                                           flow.info or "", flow.users or [], flow.owner,
                                           private=bool(flow.private))).value
    except ServiceError as exc:
        if exc.code == 409 and exc.payload is not None:
            return error(request.type, 409, exc.detail, flow=[exc.payload])
        raise
    return respond(request.type, 200, flow=[created])


async def all_flow(service: Service, request: Request, caller: Caller) -> Response:
    flows = await service.flows.visible(caller)
    if not flows:
        raise ServiceError(404, "There are no flows yet")
    return await respond_off_loop(request.type, 200, flow=flows)


async def user_info(service: Service, request: Request, caller: Caller) -> Response:
    asked = (_data(request).user or [])[1:]
    if any(not user.uuid and not user.login for user in asked):
        raise ServiceError(400, "Every data.user entry after the first needs a uuid or a login")
    found, missing = await service.accounts.user_info(
        caller, [user.uuid for user in asked if user.uuid],
        [user.login for user in asked if not user.uuid and user.login])
    if missing:
        return error(request.type, 404, f"Unknown user: {', '.join(missing)}",
                     user=found)
    return respond(request.type, 200, user=found)


async def delete_user(service: Service, request: Request, caller: Caller) -> Response:
    user = _first(_data(request).user, "user")
    await service.accounts.delete_user(caller, user.login or "", user.password or "")
    return respond(request.type, 200, with_data=False)


async def delete_message(service: Service, request: Request, caller: Caller) -> Response:
    await service.messages.delete(caller, _message_uuid(request))
    return respond(request.type, 200, with_data=False)


async def edited_message(service: Service, request: Request, caller: Caller) -> Response:
    message = _message(request)
    if not message.uuid:
        raise ServiceError(400, "The request needs data.message[0].uuid")
    if message.text is None:
        raise ServiceError(400, "The request needs data.message[0].text")
    await service.messages.edit(caller, message.uuid, message.text)
    return respond(request.type, 200, with_data=False)


async def ping_pong(service: Service, request: Request, caller: Caller) -> Response:
    return respond(request.type, 200, with_data=False)


async def join_flow(service: Service, request: Request, caller: Caller) -> Response:
    flow = (await service.flows.join(caller, _flow_uuid(request))).value
    return respond(request.type, 200, flow=[flow])


async def leave_flow(service: Service, request: Request, caller: Caller) -> Response:
    await service.flows.leave(caller, _flow_uuid(request))
    return respond(request.type, 200, with_data=False)


PUBLIC: dict[str, PublicMethod] = {
    "register_user": register_user,
    "authentication": authentication,
}

AUTHENTICATED: dict[str, Method] = {
    "get_update": get_update,
    "send_message": send_message,
    "all_messages": all_messages,
    "add_flow": add_flow,
    "all_flow": all_flow,
    "user_info": user_info,
    "delete_user": delete_user,
    "delete_message": delete_message,
    "edited_message": edited_message,
    "ping_pong": ping_pong,
    "join_flow": join_flow,
    "leave_flow": leave_flow,
}


# -- push -------------------------------------------------------------------------------------


# The change kinds pushed to MTP connections that asked for pushes; each is the frame's
# `meta.event`, as PROTOCOL.md lists them.
PUSH_EVENTS = kinds.MTP_PUSHED


@lru_cache(maxsize=len(PUSH_EVENTS))
def _push_tail(event: str) -> str:
    tail = {"jsonapi": _JSONAPI.model_dump(), "meta": {"push": True, "event": event}}
    return json.dumps(tail, separators=(",", ":"))[1:]


# The hub hands each change to all its recipients in a row, so remembering the last frame
# renders each change once (1,000 renders for a 1,000-member flow without it); remembering
# more would only pin frames, each as large as the change.
@lru_cache(maxsize=1)
def push_frame(change: ChangeRow) -> str:
    """The get_update-shaped frame that tells members of one committed change.

    The frame has the shape of `Response` (tests hold every pushed frame to that model), but
    is written out directly: its objects are snapshots the database layer made from typed
    rows, and a push is built for every committed change, so validating them again would be
    the most expensive step of a send.
    """
    payload = from_json(change.payload)
    flow = payload.get("flow") or ({"uuid": change.flow_uuid} if change.flow_uuid else None)
    user = payload.get("user")
    if user is None and change.kind in (Kind.FLOW_INVITED, Kind.INVITE_DECLINED):
        user = {"uuid": change.subject}  # who was invited, or declined
    data = {
        "time": change.time,
        "flow": [flow] if flow and "message" not in payload else [],
        "message": [payload["message"]] if "message" in payload else [],
        "user": [user] if user else [],
        "meta": None,
    }
    errors = {"code": 200, "status": "OK", "time": change.time,
              "detail": change.kind.replace("_", " ")}
    head = to_json({"type": "get_update", "data": data, "errors": errors}).decode()
    return f"{head[:-1]},{_push_tail(change.kind)}"

METHODS = frozenset({*PUBLIC, *AUTHENTICATED})
