"""Profiles: looking users up, and what they show of themselves."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from mod.config.validator import Settings
from mod.db import dbhandler as db
from mod.db.engine import Conn, Engine
from mod.error import ServiceError
from mod.service.accountrules import check_profile
from mod.service.common import Caller, now
from mod.service.records import User, user_of, users_of


class Profiles:
    def __init__(self, settings: Settings, engine: Engine) -> None:
        self.settings = settings
        self.engine = engine

    async def user_info(self, caller: Caller, uuids: Sequence[str], logins: Sequence[str] = ()
                        ) -> tuple[list[dict[str, Any]], list[str]]:
        """Profiles of the users asked about, by uuid or by login, and the uuids and logins
        that matched nobody."""
        if not uuids and not logins:
            raise ServiceError(400, "Name at least one user to look up")
        if len(uuids) + len(logins) > self.settings.protocol.users_limit:
            raise ServiceError(429, f"At most {self.settings.protocol.users_limit} users "
                                    "may be asked about at once")
        users, unknown = await self.engine.read(_users_by, list(uuids), list(logins))
        found = {user["uuid"] for user in users}
        profiles = [_profile(user, user["uuid"] == caller.uuid) for user in users]
        return profiles, [uuid for uuid in dict.fromkeys(uuids) if uuid not in found] + unknown

    async def set_username(self, caller: Caller, user_uuid: str, username: str) -> None:
        """Change a username: only one's own."""
        if user_uuid != caller.uuid:
            raise ServiceError(403, "You can only change your own name")
        check_profile(username, "")

        def rename(conn: Conn) -> None:
            user = db.user_by_uuid(conn, caller.uuid)
            if user is not None and user["username"] != username:
                db.set_username(conn, caller.uuid, username)
                db.log_profile_changed(conn, caller.uuid, now())

        await self.engine.write(rename)

    async def update(self, caller: Caller, username: str | None = None, bio: str | None = None
                     ) -> dict[str, Any]:
        """Change one's own username or bio (None: unchanged); the profile as it is then,
        e-mail included. Every flow of the user hears of a change (`profile_changed`)."""
        check_profile(username or "", "", bio or "")

        def change(conn: Conn) -> dict[str, Any]:
            user = db.user_by_uuid(conn, caller.uuid)
            if user is None:
                raise ServiceError(404, f"No user {caller.uuid}")
            values: dict[str, str] = {}
            if username is not None and username != user["username"]:
                values["username"] = username
            if bio is not None and bio != user["bio"]:
                values["bio"] = bio
            if values:
                db.update_user(conn, caller.uuid, **values)
                db.log_profile_changed(conn, caller.uuid, now())
            return {**_profile(user, own=True), **values}

        return await self.engine.write(change)

    async def profile(self, user_uuid: str) -> User:
        user = await self.engine.read(db.user_by_uuid, user_uuid)
        if user is None:
            raise ServiceError(404, f"No user {user_uuid}")
        return user_of(user)

    async def by_login(self, login: str) -> User:
        user = await self.engine.read(db.user_by_login, login)
        if user is None:
            raise ServiceError(404, f"No user {login!r}")
        return user_of(user)

    async def users(self, uuids: Iterable[str]) -> list[User]:
        """The accounts of some uuids (unknown ones left out)."""
        return users_of(await self.engine.read(db.users_by_uuid, list(uuids)))


def _profile(user: db.UserRow, own: bool) -> dict[str, Any]:
    """What user_info shows of a user: the public profile and login; to its owner, the email."""
    profile = {**db.public_profile(user), "login": user["login"]}
    if own:
        profile["email"] = user["email"]
    return profile


def _users_by(conn: Conn, uuids: list[str], logins: list[str]
              ) -> tuple[list[db.UserRow], list[str]]:
    """The users named by uuid or by login (each once), and the logins nobody has."""
    users = {user["uuid"]: user for user in db.users_by_uuid(conn, uuids)}
    unknown = []
    for login in dict.fromkeys(logins):
        user = db.user_by_login(conn, login)
        if user is None:
            unknown.append(login)
        else:
            users.setdefault(user["uuid"], user)
    return list(users.values()), unknown
