"""The operator's accounts, flows and registration tokens (manage.py user, flow,
registration-token), through the service's rules (`mod.service.moderation`).

Each change is committed with a change-log row, so running servers act on it (close a locked
user's connections, forget revoked tokens, tell a deleted flow's members) as they act on any
change, within `[BROKER] CHECK_INTERVAL` seconds (they poll the change log that often).
"""

from __future__ import annotations

import datetime
import time
from typing import TypeVar

from loguru import logger

from mod.cli.admin import require_tables
from mod.cli.common import CliError, Database, change, refused
from mod.service import Flow, RegistrationToken, User, moderation

T = TypeVar("T")


def now() -> int:
    return int(time.time())


def when(stamp: int) -> str:
    """A Unix time as the operator reads it (UTC)."""
    return datetime.datetime.fromtimestamp(stamp, datetime.UTC).strftime("%Y-%m-%d %H:%M")


def users(database: Database) -> list[User]:
    """Every account, oldest first."""
    require_tables(database)
    return database.read(moderation.all_users)


def flows(database: Database) -> list[Flow]:
    require_tables(database)
    return database.read(moderation.all_flows)


def tokens(database: Database) -> list[RegistrationToken]:
    require_tables(database)
    return database.read(moderation.registration_tokens)


def user(database: Database, login: str) -> User:
    require_tables(database)
    found = database.read(moderation.user_by_login, login)
    if found is None:
        raise CliError(f"there is no user with the login {login!r}")
    return found


def lock(database: Database, login: str, locked: bool) -> int:
    """Lock or unlock an account; return how many tokens a lock revoked."""
    account = user(database, login)
    revoked = change(database, moderation.set_locked, account.uuid, locked, now())
    logger.info("user {} with manage.py: {}", "locked" if locked else "unlocked",
                account.uuid)
    return revoked


def reset_password(database: Database, login: str, password: str) -> int:
    refused(lambda: moderation.check_password(password))
    account = user(database, login)
    password_hash = moderation.password_hash(password)
    revoked = change(database, moderation.set_password, account.uuid, password_hash, now())
    logger.info("password reset with manage.py: {}", account.uuid)
    return revoked


def set_superuser(database: Database, login: str, superuser: bool) -> None:
    account = user(database, login)
    change(database, moderation.set_superuser, account.uuid, superuser, now())
    logger.info("user {} with manage.py: {}", "promoted" if superuser else "demoted",
                account.uuid)


def flow(database: Database, flow_uuid: str) -> Flow:
    require_tables(database)
    found = database.read(moderation.flow_by_uuid, flow_uuid)
    if found is None:
        raise CliError(f"there is no flow {flow_uuid}")
    return found


def members(database: Database, found: Flow) -> dict[str, User]:
    """A flow's members' accounts (deleted ones too) by uuid."""
    return {row.uuid: row for row in database.read(moderation.users_by_uuid, found["users"])}


def delete_flow(database: Database, flow_uuid: str) -> Flow:
    deleted = change(database, moderation.delete_flow, flow_uuid, now())
    logger.info("flow deleted with manage.py: {}", flow_uuid)
    return deleted


def create_token(database: Database, token: str | None, uses: int | None,
                 days: float | None) -> RegistrationToken:
    require_tables(database)
    token = refused(lambda: moderation.new_registration_token(token))
    stamp = now()
    expires = stamp + int(days * 86400) if days else 0
    made = change(database, moderation.create_registration_token, token, uses, expires, stamp)
    logger.info("registration token created with manage.py")
    return made


def delete_token(database: Database, token: str) -> None:
    require_tables(database)
    change(database, moderation.delete_registration_token, token)
    logger.info("registration token deleted with manage.py")
