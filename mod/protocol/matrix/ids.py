"""Matrix identifiers of Morelia objects, and stream tokens.

- user: `@<login>:<server name>`; a deleted account: `@_deleted_<uuid>:<server name>`.
- room: `!<flow uuid>:<server name>`.
- event: a message's `m.room.message` event is `$m<message uuid>` (so edits and redactions
  name their target without a lookup); every other event is `$<position>` of the change-log
  row it renders, or `$<position>.<n>` when one change renders as several events (a new room).
- tokens (`next_batch`, `prev_batch`, `/messages` `start`/`end`): `s<position>`, the point of
  the change log right after that position.
"""

from __future__ import annotations

import re

from mod.error import ServiceError
from mod.service.eventids import (  # noqa: F401  (the event IDs are the service's, kept here too)
    MAX_NUMBER,
    MAX_UUID,
    EventRef,
    change_event_id,
    is_number,
    message_event_id,
    parse_event_id,
)

_LOCALPART = re.compile(r"[a-z0-9._=\-/+]+")
MAX_LOCALPART = 200


def user_id(login: str, server_name: str) -> str:
    return f"@{login}:{server_name}"


def deleted_user_id(uuid: str, server_name: str) -> str:
    return f"@_deleted_{uuid}:{server_name}"


def login_of(user: str, server_name: str) -> str | None:
    """The login a user ID (or a bare localpart) names on this server; None if elsewhere."""
    if not user.startswith("@"):
        return user or None
    suffix = ":" + server_name
    if not user.endswith(suffix) or len(user) <= len(suffix) + 1:
        return None
    return user[1:-len(suffix)]


def valid_localpart(localpart: str) -> bool:
    """Whether a localpart may be registered over Matrix (the spec's grammar)."""
    return bool(_LOCALPART.fullmatch(localpart)) and len(localpart) <= MAX_LOCALPART


def room_id(flow_uuid: str, server_name: str) -> str:
    return f"!{flow_uuid}:{server_name}"


def flow_of(room: str, server_name: str) -> str:
    """The flow uuid a room ID names; 404 if it cannot name a room here."""
    suffix = ":" + server_name
    uuid = room[1:-len(suffix)] if room.startswith("!") and room.endswith(suffix) else ""
    if not is_number(uuid, MAX_UUID):
        raise ServiceError(404, f"Unknown room {room}")
    return uuid


def token(position: int) -> str:
    return f"s{position}"


def parse_token(value: str, what: str) -> int:
    """The position a stream token stands for; 400 for anything that is not one."""
    if value.startswith("s") and is_number(value[1:]):
        return int(value[1:])
    raise ServiceError(400, f"{what} is not a token this server gave out")
