"""Registration tokens (`registration_tokens`): what `manage.py registration-token` makes,
lists and deletes, and what a registration checks and uses up.

Like `dbhandler`, functions take an open `Conn` and return plain data.
"""

from __future__ import annotations

from typing import Literal, TypedDict

from sqlobject.sqlbuilder import AND, ISNULL, OR, Delete, Insert, Select, Update

from mod.db.engine import Conn
from mod.db.models import RegistrationToken


class RegistrationTokenRow(TypedDict):
    token: str
    uses_allowed: int | None
    uses: int
    expires: int
    time_created: int


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
