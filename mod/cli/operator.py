"""The operator's accounts, flows and registration tokens (manage.py user, flow,
registration-token).

Each change is committed with a change-log row, so running servers act on it (close a locked
user's connections, forget revoked tokens, tell a deleted flow's members) as they act on any
change, within `[BROKER] CHECK_INTERVAL` seconds (they poll the change log that often).
"""

from __future__ import annotations

import datetime
import secrets
import time

from loguru import logger

from mod import lib
from mod.cli.admin import MAX_PASSWORD, require_tables
from mod.cli.common import CliError, Database
from mod.db import dbhandler, operator

TOKEN_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789"


def now() -> int:
    return int(time.time())


def when(stamp: int) -> str:
    """A Unix time as the operator reads it (UTC)."""
    return datetime.datetime.fromtimestamp(stamp, datetime.UTC).strftime("%Y-%m-%d %H:%M")


def user(database: Database, login: str) -> dbhandler.UserRow:
    require_tables(database)
    found = database.read(dbhandler.user_by_login, login)
    if found is None:
        raise CliError(f"there is no user with the login {login!r}")
    return found


def lock(database: Database, login: str, locked: bool) -> int:
    """Lock or unlock an account; return how many tokens a lock revoked."""
    account = user(database, login)
    revoked = database.write(operator.set_locked, account["uuid"], locked, now())
    logger.info("user {} with manage.py: {}", "locked" if locked else "unlocked",
                account["uuid"])
    return revoked


def reset_password(database: Database, login: str, password: str) -> int:
    if not password:
        raise CliError("the password cannot be empty")
    if len(password) > MAX_PASSWORD:
        raise CliError(f"the password is at most {MAX_PASSWORD} characters")
    account = user(database, login)
    revoked = database.write(operator.set_password, account["uuid"],
                             lib.hash_password(password), now())
    logger.info("password reset with manage.py: {}", account["uuid"])
    return revoked


def set_superuser(database: Database, login: str, superuser: bool) -> None:
    account = user(database, login)
    database.write(operator.set_superuser, account["uuid"], superuser, now())
    logger.info("user {} with manage.py: {}", "promoted" if superuser else "demoted",
                account["uuid"])


def flow(database: Database, flow_uuid: str) -> dbhandler.FlowRow:
    require_tables(database)
    found = database.read(dbhandler.flow_by_uuid, flow_uuid)
    if found is None:
        raise CliError(f"there is no flow {flow_uuid}")
    return found


def delete_flow(database: Database, flow_uuid: str) -> dbhandler.FlowRow:
    deleted = database.write(operator.delete_flow, flow_uuid, now())
    if deleted is None:
        raise CliError(f"there is no flow {flow_uuid}")
    logger.info("flow deleted with manage.py: {}", flow_uuid)
    return deleted


def create_token(database: Database, token: str | None, uses: int | None,
                 days: float | None) -> operator.RegistrationTokenRow:
    require_tables(database)
    if token is None:
        token = "".join(secrets.choice(TOKEN_ALPHABET) for _ in range(16))
    elif not token or len(token) > 64 or not all(c.isalnum() or c in "._~-" for c in token):
        raise CliError("a token is 1 to 64 characters of A-Z, a-z, 0-9, '.', '_', '~' and '-' "
                       "(as the Matrix specification requires)")
    if any(row["token"] == token for row in database.read(operator.registration_tokens)):
        raise CliError(f"the token {token!r} already exists")
    stamp = now()
    expires = stamp + int(days * 86400) if days else 0
    made = database.write(operator.add_registration_token, token, uses, expires, stamp)
    logger.info("registration token created with manage.py")
    return made


def delete_token(database: Database, token: str) -> None:
    require_tables(database)
    if not database.write(operator.delete_registration_token, token):
        raise CliError(f"there is no registration token {token!r}")
    logger.info("registration token deleted with manage.py")
