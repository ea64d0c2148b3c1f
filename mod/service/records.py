"""What the service hands the protocols and the operator's tool of users, flows, messages and
registration tokens.

A flow and a message are sent as they are stored (`mod.records`, the one definition of both);
a registration token has the same keys as its row. A user is a copy of the row without the
password hash, which never leaves the service.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TypedDict

from mod.db.dbhandler import UserRow
from mod.records import Flow, Message

__all__ = ["Flow", "Message", "RegistrationToken", "User", "user_of", "users_of"]


@dataclass(frozen=True, slots=True)
class User:
    """An account as the protocols and the operator's tool see it."""

    uuid: str
    login: str
    username: str
    bio: str
    avatar: str
    email: str
    is_bot: bool
    is_superuser: bool
    token_ttl: int
    time_created: int
    deleted: bool
    locked: bool


def user_of(row: UserRow) -> User:
    return User(uuid=row["uuid"], login=row["login"], username=row["username"], bio=row["bio"],
                avatar=row["avatar"], email=row["email"], is_bot=row["is_bot"],
                is_superuser=row["is_superuser"], token_ttl=row["token_ttl"],
                time_created=row["time_created"], deleted=row["deleted"],
                locked=row["locked"])


def users_of(rows: Iterable[UserRow]) -> list[User]:
    return [user_of(row) for row in rows]


class RegistrationToken(TypedDict):
    token: str
    uses_allowed: int | None
    uses: int
    expires: int
    time_created: int
