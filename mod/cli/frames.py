"""MTP request frames for the test client: built from options, adjusted by path=value items."""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from typing import Any

import click
from pydantic import ValidationError

from mod.protocol.mtp.api import (
    PROTOCOL_REVISION,
    PROTOCOL_VERSION,
    DataIn,
    FlowIn,
    JsonapiIn,
    MessageIn,
    Request,
    UserIn,
)

# Every MTP method, and whether it needs a logged-in user (PROTOCOL.md).
METHODS: dict[str, bool] = {
    "register_user": False,
    "authentication": False,
    "get_update": True,
    "send_message": True,
    "all_messages": True,
    "add_flow": True,
    "all_flow": True,
    "user_info": True,
    "delete_user": True,
    "delete_message": True,
    "edited_message": True,
    "ping_pong": True,
    "join_flow": True,
    "leave_flow": True,
    "change_password": True,
    "typing": True,
    "invite_flow": True,
    "update_profile": True,
}

DEFAULT_TEXT = "Hello from manage.py"
DEFAULT_TITLE = "Test flow"


def needs_user(kind: str) -> bool:
    """Whether a method is sent with credentials; unknown methods are, when a login is given."""
    return METHODS.get(kind, True)


@dataclass(slots=True)
class Fields:
    """What the test client's options say about a request; None means "not given"."""

    login: str | None = None
    password: str | None = None
    username: str | None = None
    flow: str | None = None
    text: str | None = None
    message: str | None = None
    users: tuple[str, ...] = ()
    title: str | None = None
    info: str | None = None
    flow_type: str | None = None
    time: int | None = None
    client_id: int = field(default_factory=lambda: secrets.randbelow(2**31))


def _users(kind: str, given: Fields, cred: dict[str, str] | None) -> list[UserIn]:
    if kind in ("register_user", "authentication"):
        username = given.username if kind == "register_user" else None
        return [UserIn(login=given.login, password=given.password, username=username)]
    me = UserIn.model_validate(cred or {})
    if kind == "delete_user":
        me.login, me.password = given.login, given.password
    if kind == "user_info":
        return [me, *(UserIn(uuid=uuid) for uuid in given.users)]
    return [me]


def _flows(kind: str, given: Fields) -> list[FlowIn] | None:
    if kind == "add_flow":
        return [FlowIn(uuid=given.flow, type=given.flow_type or "group",
                       title=DEFAULT_TITLE if given.title is None else given.title,
                       info=given.info or "", users=list(given.users))]
    if given.flow or given.title is not None or given.info is not None:
        return [FlowIn(uuid=given.flow, title=given.title, info=given.info,
                       type=given.flow_type)]
    return None


def _messages(kind: str, given: Fields) -> list[MessageIn] | None:
    if kind == "send_message":
        return [MessageIn(uuid=given.message, client_id=given.client_id,
                          text=DEFAULT_TEXT if given.text is None else given.text)]
    if given.message or given.text is not None:
        return [MessageIn(uuid=given.message, text=given.text)]
    return None


def build_request(kind: str, given: Fields, cred: dict[str, str] | None) -> dict[str, Any]:
    """A valid request of method `kind`: the envelope of PROTOCOL.md with the given fields.

    `cred` ({"uuid", "auth_id"}) goes in data.user[0] of authenticated methods.
    """
    try:
        data = DataIn(
            time=0 if given.time is None and kind == "get_update" else given.time,
            user=_users(kind, given, cred),
            flow=_flows(kind, given),
            message=_messages(kind, given),
        )
        request = Request(type=kind, data=data,
                          jsonapi=JsonapiIn(version=PROTOCOL_VERSION, revision=PROTOCOL_REVISION))
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"])
        raise click.UsageError(f"cannot build the request: {where}: {error['msg']}") from None
    return request.model_dump(mode="json", exclude_none=True)


# -- path=value overrides ---------------------------------------------------------------------


@dataclass(slots=True, frozen=True)
class Override:
    """`data.flow.0.title=Hi` sets a string; `data.time:=5` sets a JSON value."""

    path: tuple[str | int, ...]
    value: Any
    source: str


def parse_override(item: str) -> Override:
    text = item[2:] if item.startswith("--") else item
    name, equals, raw = text.partition("=")
    if not equals or not name or name == ":":
        raise click.UsageError(f"{item!r} is neither an option nor a path=value override "
                               "(e.g. data.flow.0.title=Hi)")
    value: Any = raw
    if name.endswith(":"):
        name = name[:-1]
        try:
            value = json.loads(raw)
        except ValueError:
            raise click.UsageError(f"{item!r}: the value after := must be JSON") from None
    parts = name.split(".")
    if any(not part for part in parts):
        raise click.UsageError(f"{item!r}: empty step in the path {name!r}")
    path = tuple(int(part) if part.isdigit() else part for part in parts)
    return Override(path, value, item)


def apply_override(frame: dict[str, Any], override: Override) -> None:
    """Set one field, creating the objects and list entries on the way as needed."""
    node: Any = frame
    step: Any
    for step, following in zip(override.path, (*override.path[1:], None), strict=True):
        last = following is None
        if isinstance(node, list):
            if not isinstance(step, int):
                raise click.UsageError(f"{override.source!r}: {step!r} names a list; "
                                       "give an index")
            while len(node) <= step:
                node.append({})
        else:
            step = str(step)
        if last:
            node[step] = override.value
            return
        child = node[step] if isinstance(node, list) or step in node else None
        if child is None:
            child = [] if isinstance(following, int) else {}
            node[step] = child
        elif not isinstance(child, dict | list):
            raise click.UsageError(f"{override.source!r}: cannot go into {step!r}, which "
                                   f"holds a {type(child).__name__}")
        node = child


def render(response: dict[str, Any]) -> str:
    """The response as indented JSON, its status code and phrase coloured by outcome."""
    errors = response.get("errors")
    if not isinstance(errors, dict) or not isinstance(errors.get("code"), int):
        return json.dumps(response, indent=2, ensure_ascii=False)
    code = errors["code"]
    colour = "green" if code < 400 else "red"
    marks = {name: f"@{secrets.token_hex(8)}@" for name in ("code", "status")}
    shown = {**response, "errors": {**errors, **marks}}
    text = json.dumps(shown, indent=2, ensure_ascii=False)
    for name, mark in marks.items():
        value = json.dumps(errors.get(name), ensure_ascii=False)
        text = text.replace(json.dumps(mark), click.style(value, fg=colour, bold=True), 1)
    return text


def status_of(response: dict[str, Any]) -> int:
    """The response's errors.code, or 520 (Unknown Error) when it has none."""
    errors = response.get("errors")
    code = errors.get("code") if isinstance(errors, dict) else None
    return code if isinstance(code, int) else 520
