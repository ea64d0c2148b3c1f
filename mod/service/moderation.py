"""The operator's changes to accounts, flows and registration tokens (`manage.py user`, `flow`,
`registration-token`), with their rules.

Each change is one writer job that commits its change-log row with it, so running servers
act on it (close a locked user's connections, forget revoked tokens, tell a deleted flow's
members) as they act on any change. A refusal is a `ServiceError` whose detail is the
operator's line.
"""

from __future__ import annotations

import secrets

from mod import lib
from mod.changes import Kind
from mod.db import dbhandler as db
from mod.db import moderation as mdb
from mod.db import regtokens
from mod.db.engine import Conn
from mod.error import ServiceError
from mod.service.accountrules import MAX_LOGIN, MAX_USERNAME, check_password
from mod.service.importrows import MAX_INFO, MAX_TITLE
from mod.service.records import Flow, RegistrationToken, User, user_of, users_of

TOKEN_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789"


# -- reads ------------------------------------------------------------------------------------


def all_users(conn: Conn) -> list[User]:
    """Every account that exists (deleted ones left out), oldest first."""
    return users_of(db.all_users(conn))


def user_by_login(conn: Conn, login: str) -> User | None:
    found = db.user_by_login(conn, login)
    return user_of(found) if found is not None else None


def users_by_uuid(conn: Conn, uuids: list[str]) -> list[User]:
    return users_of(db.users_by_uuid(conn, uuids))


def all_flows(conn: Conn) -> list[Flow]:
    return mdb.all_flows(conn)


def flow_by_uuid(conn: Conn, flow_uuid: str) -> Flow | None:
    return db.flow_by_uuid(conn, flow_uuid)


def registration_tokens(conn: Conn) -> list[RegistrationToken]:
    return regtokens.registration_tokens(conn)


# -- accounts ---------------------------------------------------------------------------------


def check_account(login: str, username: str, password: str) -> None:
    """Refuse an account the operator names that no client could use."""
    if not login.strip():
        raise ServiceError(400, "the login cannot be empty")
    if len(login) > MAX_LOGIN or len(username) > MAX_USERNAME:
        raise ServiceError(400, f"the login and the username are at most {MAX_LOGIN} "
                                "characters")
    check_password(password)


def create_user(conn: Conn, login: str, password_hash: str, username: str, token_ttl: int,
                superuser: bool, now: int) -> User:
    """An account that logs in like any other (`username` defaults to the login)."""
    made = db.create_user(conn, lib.new_uuid(), login, password_hash, username or login, "",
                          token_ttl, now, superuser)
    if made is None:
        raise ServiceError(409, f"the login {login!r} is already taken")
    return user_of(made)


def password_hash(password: str) -> str:
    """The hash of a new password, if it is allowed (made off the writer: it takes a while)."""
    check_password(password)
    return lib.hash_password(password)


def revoke_all(conn: Conn, user_uuid: str, now: int, locked: bool = False) -> int:
    """Revoke every token of a user and tell every process (`tokens_revoked`); with `locked`,
    they also close the user's connections."""
    count = db.revoke_user_tokens(conn, user_uuid)
    db.log_change(conn, now, "", Kind.TOKENS_REVOKED, user_uuid, user_uuid,
               {"locked": True} if locked else {})
    return count


def set_locked(conn: Conn, user_uuid: str, locked: bool, now: int) -> int:
    """Lock (every token revoked) or unlock an account; return how many tokens it had."""
    mdb.set_locked(conn, user_uuid, locked)
    return revoke_all(conn, user_uuid, now, locked=True) if locked else 0


def set_password(conn: Conn, user_uuid: str, password_hash: str, now: int) -> int:
    """A new password; every token is revoked. Returns how many there were."""
    mdb.set_password(conn, user_uuid, password_hash)
    return revoke_all(conn, user_uuid, now)


def set_superuser(conn: Conn, user_uuid: str, superuser: bool, now: int) -> None:
    """Grant or take superuser rights. Every process drops the user's cached token checks
    (`user_changed`), which carry the rights; the tokens stay valid."""
    mdb.set_superuser(conn, user_uuid, superuser)
    db.log_change(conn, now, "", Kind.USER_CHANGED, user_uuid, user_uuid, {})


# -- flows ------------------------------------------------------------------------------------


def check_flow(title: str, info: str) -> None:
    if len(title) > MAX_TITLE:
        raise ServiceError(400, f"the title is at most {MAX_TITLE} characters")
    if len(info) > MAX_INFO:
        raise ServiceError(400, f"the info is at most {MAX_INFO} characters")


def create_flow(conn: Conn, title: str, info: str, flow_type: str, owner_login: str | None,
                now: int) -> tuple[Flow, User]:
    """A flow owned by `owner_login` (default: the first superuser), its only member."""
    check_flow(title, info)
    if owner_login is None:
        owner = db.first_superuser(conn)
        if owner is None:
            raise ServiceError(404, "there is no superuser to own the flow: create one with "
                                    "`python manage.py superuser-create`, or name an owner "
                                    "with --owner LOGIN")
    else:
        owner = db.user_by_login(conn, owner_login)
        if owner is None:
            raise ServiceError(404, f"there is no user with the login {owner_login!r}")
    flow = db.create_flow(conn, lib.new_uuid(), flow_type, title, info, owner["uuid"],
                          [owner["uuid"]], now)
    return flow, user_of(owner)


def delete_flow(conn: Conn, flow_uuid: str, now: int) -> Flow:
    """Delete a flow with its messages and invitations.

    Each member leaves it first (`flow_left`, so Matrix clients see the room go), then
    `flow_deleted` tells its former members that it is gone.
    """
    flow = db.flow_by_uuid(conn, flow_uuid)
    if flow is None:
        raise ServiceError(404, f"there is no flow {flow_uuid}")
    for user_uuid in flow["users"]:
        db.remove_member(conn, flow_uuid, user_uuid, now)
    mdb.delete_flow(conn, flow_uuid)
    db.log_change(conn, now, flow_uuid, Kind.FLOW_DELETED, flow["owner"], "",
               {"flow": {"uuid": flow_uuid}, "users": flow["users"]})
    return flow


# -- registration tokens ----------------------------------------------------------------------


def new_registration_token(token: str | None) -> str:
    """The token the operator names, if it is one the Matrix specification allows, or 16
    random letters and digits."""
    if token is None:
        return "".join(secrets.choice(TOKEN_ALPHABET) for _ in range(16))
    if not token or len(token) > 64 or not all(c.isalnum() or c in "._~-" for c in token):
        raise ServiceError(400, "a token is 1 to 64 characters of A-Z, a-z, 0-9, '.', '_', "
                                "'~' and '-' (as the Matrix specification requires)")
    return token


def create_registration_token(conn: Conn, token: str, uses_allowed: int | None, expires: int,
                              now: int) -> RegistrationToken:
    if any(row["token"] == token for row in regtokens.registration_tokens(conn)):
        raise ServiceError(409, f"the token {token!r} already exists")
    return regtokens.add_registration_token(conn, token, uses_allowed, expires, now)


def delete_registration_token(conn: Conn, token: str) -> None:
    if not regtokens.delete_registration_token(conn, token):
        raise ServiceError(404, f"there is no registration token {token!r}")
