"""MTP methods: one small function per method, translating frames into service calls."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from mod.content import CONTENT_FIELDS
from mod.error import ServiceError
from mod.protocol.mtp.api import (
    EXTENSION_FIELDS,
    FILES,
    MENTIONS,
    REACTIONS,
    READ,
    REPLIES,
    DataIn,
    FlowIn,
    FlowOut,
    MessageIn,
    MessageOut,
    Request,
    Response,
    SearchOut,
    UserOut,
    wants,
)
from mod.protocol.mtp.responses import error, respond, respond_off_loop
from mod.service import Caller, Credentials, Flow, ReadState, Service

Method = Callable[[Service, Request, Caller], Awaitable[Response]]
# Public methods also take the client's address (failed logins are counted per address).
PublicMethod = Callable[[Service, Request, str], Awaitable[tuple[Response, Caller]]]


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
    return UserOut(uuid=signed_in.user.uuid, auth_id=signed_in.token,
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
    update = await service.timeline.get_update(caller, _data(request).time or 0,
                                               reactions=wants(REACTIONS),
                                               read=wants(READ),
                                               mentions=wants(MENTIONS))
    hidden = [field for extension, fields in EXTENSION_FIELDS.items()
              if not wants(extension) for field in fields]
    for message in update.messages:
        for field in hidden:
            message.pop(field, None)  # type: ignore[misc]
    return await respond_off_loop(request.type, 200, flow=_with_read(update.flows, update.read),
                                  message=update.messages, user=update.users)


def _with_read(flows: list[Flow], read: dict[str, ReadState]) -> list[dict[str, Any]]:
    """Flows, each one the caller is a member of with their read state (the `read`
    extension; without it `read` is empty and the flows are as they are)."""
    return [{**flow, **read[flow["uuid"]].payload()} if flow["uuid"] in read else dict(flow)
            for flow in flows]


async def send_message(service: Service, request: Request, caller: Caller) -> Response:
    flow_uuid = _flow_uuid(request)
    message = _message(request)
    if message.client_id is None:
        raise ServiceError(400, "The request needs data.message[0].client_id")
    content = {field: value for field in CONTENT_FIELDS
               if (value := getattr(message, field)) is not None}
    stored = (await service.messages.send(caller, flow_uuid, message.client_id, content,
                                          reply_to=message.reply_to or "",
                                          mentions=message.mentions or (),
                                          file_name=message.file_name or "",
                                          file_type=message.file_type or "")).value
    reply = MessageOut(uuid=stored["uuid"], client_id=stored["client_id"],
                       from_user=stored["from_user"], from_flow=stored["from_flow"],
                       time=stored["time"])
    return respond(request.type, 200, message=[reply])


async def all_messages(service: Service, request: Request, caller: Caller) -> Response:
    flow = _first(_data(request).flow, "flow")
    if not flow.uuid:
        raise ServiceError(400, "The request needs data.flow[0].uuid")
    found = await service.messages.page(caller, flow.uuid, flow.message_start,
                                       flow.message_end, _data(request).time or 0,
                                       replies=wants(REPLIES),
                                       reactions=wants(REACTIONS),
                                       mentions=wants(MENTIONS),
                                       files=wants(FILES))
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
    if wants(READ):
        read = await service.read.of(caller, [flow["uuid"] for flow in flows])
        return await respond_off_loop(request.type, 200, flow=_with_read(flows, read))
    return await respond_off_loop(request.type, 200, flow=flows)


async def mark_read(service: Service, request: Request, caller: Caller) -> Response:
    flow_uuid = _flow_uuid(request)
    message_uuid = _message_uuid(request)
    state = (await service.read.mark(caller, flow_uuid, message_uuid)).value
    return respond(request.type, 200, flow=[{"uuid": flow_uuid, **state.payload()}])


async def user_info(service: Service, request: Request, caller: Caller) -> Response:
    asked = (_data(request).user or [])[1:]
    if any(not user.uuid and not user.login for user in asked):
        raise ServiceError(400, "Every data.user entry after the first needs a uuid or a login")
    found, missing = await service.profiles.user_info(
        caller, [user.uuid for user in asked if user.uuid],
        [user.login for user in asked if not user.uuid and user.login])
    if missing:
        return error(request.type, 404, f"Unknown user: {', '.join(missing)}",
                     user=found)
    return respond(request.type, 200, user=found)


async def update_profile(service: Service, request: Request, caller: Caller) -> Response:
    user = _first(_data(request).user, "user")
    if user.username is None and user.bio is None and user.avatar is None:
        raise ServiceError(400, "The request needs data.user[0].username, bio or avatar")
    if user.avatar is not None:
        await service.avatars.from_mtp(caller, user.avatar)
    profile = await service.profiles.update(caller, user.username, user.bio)
    return respond(request.type, 200, user=[profile])


async def delete_user(service: Service, request: Request, caller: Caller) -> Response:
    user = _first(_data(request).user, "user")
    await service.accounts.delete_user(caller, user.login or "", user.password or "")
    return respond(request.type, 200, with_data=False)


async def change_password(service: Service, request: Request, caller: Caller) -> Response:
    user = _first(_data(request).user, "user")
    if user.new_password is None:
        raise ServiceError(400, "The request needs data.user[0].new_password")
    await service.accounts.change_password(caller, user.password or "", user.new_password,
                                           end_other_sessions=user.end_other_sessions is not False)
    return respond(request.type, 200, with_data=False)


async def invite_flow(service: Service, request: Request, caller: Caller) -> Response:
    flow: FlowIn = _first(_data(request).flow, "flow")
    if not flow.uuid or not flow.users:
        raise ServiceError(400, "The request needs data.flow[0].uuid and users")
    await service.flows.invite_all(caller, flow.uuid, flow.users)
    return respond(request.type, 200, with_data=False)


async def typing(service: Service, request: Request, caller: Caller) -> Response:
    flow: FlowIn = _first(_data(request).flow, "flow")
    if not flow.uuid or flow.typing is None:
        raise ServiceError(400, "The request needs data.flow[0].uuid and typing")
    await service.ephemeral.typing(caller, flow.uuid, flow.typing, None)
    return respond(request.type, 200, with_data=False)


async def react(service: Service, request: Request, caller: Caller) -> Response:
    message = _message(request)
    if not message.uuid or message.reaction is None:
        raise ServiceError(400, "The request needs data.message[0].uuid and reaction")
    if message.remove:
        done = await service.reactions.remove(caller, message.uuid, message.reaction)
    else:
        done = await service.reactions.add(caller, message.uuid, message.reaction)
    return respond(request.type, 200, message=[{"uuid": message.uuid, "reactions": done.value}])


async def search_messages(service: Service, request: Request, caller: Caller) -> Response:
    data = _data(request)
    asked = data.search
    if asked is None or asked.text is None:
        raise ServiceError(400, "The request needs data.search.text")
    flows = None  # none named: every flow the caller reads
    if data.flow:
        if any(not flow.uuid for flow in data.flow):
            raise ServiceError(400, "Every data.flow entry needs a uuid")
        flows = [str(flow.uuid) for flow in data.flow]
    found = await service.search.messages(caller, asked.text, flows, asked.order or "rank",
                                          asked.limit, asked.next_batch,
                                          reactions=wants(REACTIONS),
                                          mentions=wants(MENTIONS))
    # Whole messages as all_messages gives them to this connection: its extensions' fields.
    hidden = [field for extension, fields in EXTENSION_FIELDS.items()
              if not wants(extension) for field in fields]
    messages = [{key: value for key, value in hit.message.items() if key not in hidden}
                for hit in found.hits]
    if wants(FILES):  # null when not known, as in all_messages
        for message in messages:
            message.setdefault("file_name", None)
            message.setdefault("file_type", None)
    # What is not known (a count newest first) or not there (a next page) is left out.
    outcome = SearchOut.model_validate({key: value for key, value in (
        ("count", found.count), ("next_batch", found.next_batch),
        ("highlights", list(found.highlights))) if value is not None})
    return await respond_off_loop(request.type, 200, always=True, message=messages,
                                  search=outcome)


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
    "change_password": change_password,
    "typing": typing,
    "invite_flow": invite_flow,
    "update_profile": update_profile,
    "react": react,
    "mark_read": mark_read,
    "search_messages": search_messages,
}

METHODS = frozenset({*PUBLIC, *AUTHENTICATED})
