"""The queries behind the operator's commands: accounts, flows, registration tokens.

Like `dbhandler`, functions take an open `Conn` and return plain data. A change that running
servers must act on (a lock, a new password, a deleted flow) is written to the change log in
the same transaction, so every process hears of it as of any other change.
"""

from __future__ import annotations

from typing import Literal, TypedDict

from sqlobject.sqlbuilder import AND, ISNULL, OR, Delete, Insert, Select, Update

from mod.changes import Kind
from mod.db.dbhandler import (
    _USER_COLUMNS,
    FlowRow,
    UserRow,
    _user,
    flow_by_uuid,
    flows_by_uuid,
    log_change,
    remove_member,
    revoke_user_tokens,
)
from mod.db.engine import Conn
from mod.db.models import Flow, Invite, Member, Message, RegistrationToken, User


class RegistrationTokenRow(TypedDict):
    token: str
    uses_allowed: int | None
    uses: int
    expires: int
    time_created: int


def ping(conn: Conn) -> None:
    conn.one("SELECT 1")


# -- accounts ---------------------------------------------------------------------------------


def all_users(conn: Conn) -> list[UserRow]:
    """Every account that exists (deleted ones left out), oldest first."""
    rows = conn.all(Select(_USER_COLUMNS, where=User.q.deleted == False,  # noqa: E712
                         orderBy=User.q.id))
    return [_user(row) for row in rows]


def revoke_all(conn: Conn, user_uuid: str, now: int, locked: bool = False) -> int:
    """Revoke every token of a user and tell every process (`tokens_revoked`); with `locked`,
    they also close the user's connections."""
    count = revoke_user_tokens(conn, user_uuid)
    log_change(conn, now, "", Kind.TOKENS_REVOKED, user_uuid, user_uuid,
               {"locked": True} if locked else {})
    return count


def set_locked(conn: Conn, user_uuid: str, locked: bool, now: int) -> int:
    """Lock (every token revoked) or unlock an account; return how many tokens it had."""
    conn.execute(Update(User.sqlmeta.table, values={"locked": locked},
                      where=User.q.uuid == user_uuid))
    return revoke_all(conn, user_uuid, now, locked=True) if locked else 0


def set_password(conn: Conn, user_uuid: str, password_hash: str, now: int) -> int:
    """A new password; every token is revoked. Returns how many there were."""
    conn.execute(Update(User.sqlmeta.table, values={"password_hash": password_hash},
                      where=User.q.uuid == user_uuid))
    return revoke_all(conn, user_uuid, now)


def set_superuser(conn: Conn, user_uuid: str, superuser: bool, now: int) -> None:
    """Grant or take superuser rights. Every process drops the user's cached token checks
    (`user_changed`), which carry the rights; the tokens stay valid."""
    conn.execute(Update(User.sqlmeta.table, values={"is_superuser": superuser},
                      where=User.q.uuid == user_uuid))
    log_change(conn, now, "", Kind.USER_CHANGED, user_uuid, user_uuid, {})


# -- flows ------------------------------------------------------------------------------------


def all_flows(conn: Conn) -> list[FlowRow]:
    rows = conn.all(Select(Flow.q.uuid, orderBy=Flow.q.id))
    return flows_by_uuid(conn, [row[0] for row in rows])


def delete_flow(conn: Conn, flow_uuid: str, now: int) -> FlowRow | None:
    """Delete a flow with its messages and invitations; None if there is none.

    Each member leaves it first (`flow_left`, so Matrix clients see the room go), then
    `flow_deleted` tells its former members that it is gone.
    """
    flow = flow_by_uuid(conn, flow_uuid)
    if flow is None:
        return None
    for user_uuid in flow["users"]:
        remove_member(conn, flow_uuid, user_uuid, now)
    conn.execute(Delete(Invite.sqlmeta.table, where=Invite.q.flow_uuid == flow_uuid))
    conn.execute(Delete(Message.sqlmeta.table, where=Message.q.flow_uuid == flow_uuid))
    conn.execute(Delete(Member.sqlmeta.table, where=Member.q.flow_uuid == flow_uuid))
    conn.execute(Delete(Flow.sqlmeta.table, where=Flow.q.uuid == flow_uuid))
    log_change(conn, now, flow_uuid, Kind.FLOW_DELETED, flow["owner"], "",
               {"flow": {"uuid": flow_uuid}, "users": flow["users"]})
    return flow


# -- registration tokens ----------------------------------------------------------------------

_TOKEN_COLUMNS = (RegistrationToken.q.token, RegistrationToken.q.uses_allowed,
                  RegistrationToken.q.uses, RegistrationToken.q.expires,
                  RegistrationToken.q.time_created)


def _token(row: tuple[object, ...] | list[object]) -> RegistrationTokenRow:
    allowed = row[1]
    return RegistrationTokenRow(token=str(row[0]),
                                uses_allowed=None if allowed is None else int(str(allowed)),
                                uses=int(str(row[2])), expires=int(str(row[3])),
                                time_created=int(str(row[4])))


def add_registration_token(conn: Conn, token: str, uses_allowed: int | None, expires: int,
                           now: int) -> RegistrationTokenRow:
    conn.execute(Insert(RegistrationToken.sqlmeta.table, values={
        "token": token, "uses_allowed": uses_allowed, "uses": 0, "expires": expires,
        "time_created": now}))
    return RegistrationTokenRow(token=token, uses_allowed=uses_allowed, uses=0, expires=expires,
                                time_created=now)


def registration_tokens(conn: Conn) -> list[RegistrationTokenRow]:
    rows = conn.all(Select(_TOKEN_COLUMNS, orderBy=RegistrationToken.q.id))
    return [_token(row) for row in rows]


def delete_registration_token(conn: Conn, token: str) -> bool:
    return bool(conn.execute(Delete(RegistrationToken.sqlmeta.table,
                                  where=RegistrationToken.q.token == token)))


def registration_token_state(conn: Conn, token: str, now: int
                             ) -> Literal["valid", "spent", "unknown"]:
    """Whether a token is valid (not expired, uses left), spent (used up or expired) or was
    never issued (or deleted)."""
    row = conn.one(Select(_TOKEN_COLUMNS, where=RegistrationToken.q.token == token))
    if row is None:
        return "unknown"
    found = _token(row)
    usable = (not found["expires"] or found["expires"] > now) and (
        found["uses_allowed"] is None or found["uses"] < found["uses_allowed"])
    return "valid" if usable else "spent"


def registration_token_valid(conn: Conn, token: str, now: int) -> bool:
    """Whether a token exists, has not expired and has uses left."""
    return registration_token_state(conn, token, now) == "valid"


def use_registration_token(conn: Conn, token: str, now: int) -> bool:
    """Take one use of a token, in the registration's own transaction; False if invalid.

    One statement that checks and counts at once: concurrent registrations (in any number of
    processes) are serialised by the row's lock, and the one past the token's uses finds no
    row to update, however the checks before it went."""
    table = RegistrationToken.q
    return bool(conn.execute(Update(
        RegistrationToken.sqlmeta.table, values={"uses": table.uses + 1},
        where=AND(table.token == token,
                  OR(ISNULL(table.uses_allowed), table.uses < table.uses_allowed),
                  OR(table.expires == 0, table.expires > now)))))
