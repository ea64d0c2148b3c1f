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
from dataclasses import dataclass

from mod.error import ServiceError

_LOCALPART = re.compile(r"[a-z0-9._=\-/+]+")
MAX_LOCALPART = 200
MAX_UUID = 40  # digits of a uuid (a 128-bit integer has 39)
MAX_NUMBER = 18  # digits of a position, a timeout or a limit: always fits in 64 bits


def is_number(text: str, max_digits: int = MAX_NUMBER) -> bool:
    """Whether `text` is a non-negative decimal integer of ASCII digits, not too long
    (`str.isdigit` also takes "²" and other digits `int` refuses)."""
    return 0 < len(text) <= max_digits and text.isascii() and text.isdigit()


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


def message_event_id(message_uuid: str) -> str:
    return f"$m{message_uuid}"


def change_event_id(position: int, index: int | None = None) -> str:
    return f"${position}" if index is None else f"${position}.{index}"


@dataclass(frozen=True, slots=True)
class EventRef:
    """What an event ID points at: a message, or the n-th event of a change."""

    message: str = ""
    position: int = 0
    index: int | None = None


def parse_event_id(event_id: str) -> EventRef | None:
    body = event_id[1:] if event_id.startswith("$") else ""
    if body.startswith("m") and is_number(body[1:], MAX_UUID):
        return EventRef(message=body[1:])
    head, dot, tail = body.partition(".")
    if is_number(head) and (not dot or is_number(tail)):
        return EventRef(position=int(head), index=int(tail) if dot else None)
    return None


def token(position: int) -> str:
    return f"s{position}"


def parse_token(value: str, what: str) -> int:
    """The position a stream token stands for; 400 for anything that is not one."""
    if value.startswith("s") and is_number(value[1:]):
        return int(value[1:])
    raise ServiceError(400, f"{what} is not a token this server gave out")
