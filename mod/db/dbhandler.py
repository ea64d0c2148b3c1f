"""Every query of the server. Functions take an open `Conn` and return plain data.

Each function runs on a database thread (see mod.db.engine); callers pick `Engine.read` or
`Engine.write`. Writing functions append what they changed to the change log and to
`conn.changes`, which the hub delivers once the transaction commits.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from typing import Any, TypedDict

from pydantic_core import to_json
from sqlobject.sqlbuilder import (
    AND,
    CONTAINSSTRING,
    DESC,
    IN,
    NOTIN,
    OR,
    Delete,
    Insert,
    LEFTJOINOn,
    Select,
    Update,
    func,
)

from mod import changes as kinds
from mod.changes import Kind
from mod.db import mentions as mentiondb
from mod.db import reactions as reactiondb
from mod.db import search
from mod.db.engine import Conn, P, Query, Row, insert_query
from mod.db.models import (
    TABLES,
    Change,
    Flow,
    Invite,
    Member,
    Mention,
    Message,
    Reaction,
    Token,
    Txn,
    User,
)
from mod.records import Flow as FlowRow
from mod.records import Message as MessageRow

DELETED_LOGIN = "User deleted"


class UserRow(TypedDict):
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
    password_hash: str
    locked: bool


# -- schema -----------------------------------------------------------------------------------


def ping(conn: Conn) -> None:
    """A trivial query: whether the database answers."""
    conn.one("SELECT 1")


def table_exists(conn: Conn, name: str) -> bool:
    """Whether the table exists, as seen by this transaction (SQLObject's `tableExists`
    asks on a connection of its own, blind to tables made in an open transaction)."""
    if conn.postgres:
        sql = ("SELECT 1 FROM information_schema.tables "
               "WHERE table_schema = current_schema() AND table_name = %s")
    else:
        sql = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?"
    return conn.one(sql, name) is not None


def existing_tables(conn: Conn) -> list[str]:
    return [t.sqlmeta.table for t in TABLES if table_exists(conn, t.sqlmeta.table)]


def create_tables(conn: Conn) -> list[str]:
    """Create the missing tables as the models define them, and the search index of messages
    (`search.ensure`); return the names of the tables created.

    Only for a fresh database or a missing table: mod.db.schema upgrades older tables."""
    if conn.postgres:  # several processes starting at once on a fresh database take turns
        conn.execute("SELECT pg_advisory_xact_lock(7340)")
    created = []
    for table in TABLES:
        name = table.sqlmeta.table
        if table_exists(conn, name):
            continue
        sql, constraints = table.createTableSQL(connection=conn.connection)
        for statement in [*sql.split(";\n"), *constraints]:
            conn.execute(statement)
        created.append(name)
    search.ensure(conn)
    return created


def drop_tables(conn: Conn) -> list[str]:
    """Drop every table of the server that exists; return their names."""
    search.drop(conn)
    dropped = []
    for table in reversed(TABLES):
        name = table.sqlmeta.table
        if table_exists(conn, name):
            conn.execute(f"DROP TABLE {name}")
            dropped.append(name)
    return dropped


# -- users ------------------------------------------------------------------------------------

_USER_COLUMNS = (
    User.q.uuid, User.q.login, User.q.username, User.q.bio, User.q.avatar, User.q.email,
    User.q.is_bot, User.q.is_superuser, User.q.token_ttl, User.q.time_created, User.q.deleted,
    User.q.password_hash, User.q.locked,
)


def _user(row: Sequence[Any]) -> UserRow:
    return UserRow(
        uuid=row[0], login=row[1], username=row[2], bio=row[3], avatar=row[4], email=row[5],
        is_bot=bool(row[6]), is_superuser=bool(row[7]), token_ttl=int(row[8]),
        time_created=int(row[9]), deleted=bool(row[10]), password_hash=row[11],
        locked=bool(row[12]),
    )


def create_user(conn: Conn, uuid: str, login: str, password_hash: str, username: str, email: str,
                token_ttl: int, now: int, is_superuser: bool = False) -> UserRow | None:
    """Insert a user; None when the login is taken."""
    if conn.one(Select(User.q.id, where=User.q.login_key == login)) is not None:
        return None
    conn.execute(Insert(User.sqlmeta.table, values={
        "uuid": uuid, "login": login, "login_key": login, "password_hash": password_hash,
        "username": username, "bio": "", "avatar": "", "email": email, "is_bot": False,
        "is_superuser": is_superuser, "token_ttl": token_ttl, "time_created": now,
        "deleted": False, "locked": False,
    }))
    return user_by_uuid(conn, uuid)


def user_by_login(conn: Conn, login: str) -> UserRow | None:
    row = conn.one(Select(_USER_COLUMNS, where=User.q.login_key == login))
    return _user(row) if row else None


_USER_BY_UUID = Query(Select(_USER_COLUMNS, where=User.q.uuid == P))


def user_by_uuid(conn: Conn, uuid: str) -> UserRow | None:
    row = conn.one(_USER_BY_UUID, uuid)
    return _user(row) if row else None


def users_by_uuid(conn: Conn, uuids: Iterable[str]) -> list[UserRow]:
    wanted = list(dict.fromkeys(uuids))
    if not wanted:
        return []
    return [_user(row) for row in conn.all(Select(_USER_COLUMNS, where=IN(User.q.uuid, wanted)))]


def first_superuser(conn: Conn) -> UserRow | None:
    row = conn.one(Select(_USER_COLUMNS, where=AND(User.q.is_superuser == True,  # noqa: E712
                                                 User.q.deleted == False),  # noqa: E712
                        orderBy=User.q.id, limit=1))
    return _user(row) if row else None


def all_users(conn: Conn) -> list[UserRow]:
    """Every account that exists (deleted ones left out), oldest first."""
    rows = conn.all(Select(_USER_COLUMNS, where=User.q.deleted == False,  # noqa: E712
                         orderBy=User.q.id))
    return [_user(row) for row in rows]


def update_user(conn: Conn, uuid: str, **values: object) -> None:
    """Set these columns of one account."""
    conn.execute(Update(User.sqlmeta.table, values=values, where=User.q.uuid == uuid))


def set_username(conn: Conn, uuid: str, username: str) -> None:
    update_user(conn, uuid, username=username)


def set_avatar(conn: Conn, uuid: str, avatar: str) -> None:
    update_user(conn, uuid, avatar=avatar)


def log_profile_changed(conn: Conn, uuid: str, now: int) -> None:
    """A user's name or avatar changed: a `profile_changed` in each flow the user is in (a
    new member event for Matrix; MTP's get_update returns the flow and its members)."""
    for flow_uuid in member_flows(conn, uuid):
        log_change(conn, now, flow_uuid, Kind.PROFILE_CHANGED, uuid, uuid, {})


def delete_user(conn: Conn, uuid: str) -> None:
    """Anonymise an account, destroy its password hash and revoke every token."""
    conn.execute(Update(User.sqlmeta.table, values={
        "login": DELETED_LOGIN, "login_key": None, "username": DELETED_LOGIN, "bio": "deleted",
        "email": "", "avatar": "", "password_hash": "", "deleted": True,
    }, where=User.q.uuid == uuid))
    conn.execute(Delete(Token.sqlmeta.table, where=Token.q.user_uuid == uuid))


# -- tokens -----------------------------------------------------------------------------------


def add_token(conn: Conn, user_uuid: str, token_hash: str, now: int, expires: int,
              device: str = "") -> None:
    conn.execute(Insert(Token.sqlmeta.table, values={
        "token_hash": token_hash, "user_uuid": user_uuid, "device": device,
        "time_created": now, "expires": expires,
    }))


_TOKEN_OWNER = Query(Select([Token.q.user_uuid, Token.q.expires, Token.q.device],
                            where=AND(Token.q.token_hash == P, Token.q.expires > P)))


def token_owner(conn: Conn, token_hash: str, now: int) -> tuple[str, int, str] | None:
    """(user uuid, expiry, device) of a valid token, else None."""
    row = conn.one(_TOKEN_OWNER, token_hash, now)
    return (row[0], int(row[1]), row[2]) if row else None


def revoke_token(conn: Conn, token_hash: str) -> None:
    conn.execute(Delete(Token.sqlmeta.table, where=Token.q.token_hash == token_hash))


def revoke_user_tokens(conn: Conn, user_uuid: str) -> int:
    """Revoke every token of a user (log out everywhere); return how many there were."""
    return int(conn.execute(Delete(Token.sqlmeta.table, where=Token.q.user_uuid == user_uuid)))


def revoke_other_tokens(conn: Conn, user_uuid: str, keep_hash: str) -> list[str]:
    """Revoke every token of a user but `keep_hash`; the device of each ("" for none)."""
    others = AND(Token.q.user_uuid == user_uuid, Token.q.token_hash != keep_hash)
    devices = [row[0] for row in conn.all(Select([Token.q.device], where=others))]
    conn.execute(Delete(Token.sqlmeta.table, where=others))
    return devices


def purge_expired(conn: Conn, now: int, txn_before: int) -> int:
    removed = conn.execute(Delete(Token.sqlmeta.table, where=Token.q.expires <= now))
    removed += conn.execute(Delete(Txn.sqlmeta.table, where=Txn.q.time_created < txn_before))
    return removed


# -- retried requests -------------------------------------------------------------------------


_TXN_RESULT = Query(Select(Txn.q.result, where=AND(Txn.q.txn_key == P,
                                                   Txn.q.time_created >= P)))
_TXN_FORGET = Query(Delete(Txn.sqlmeta.table, where=Txn.q.txn_key == P))
_TXN_STORE = insert_query(Txn.sqlmeta.table, ("txn_key", "result", "time_created"))


def txn_result(conn: Conn, key: str, since: int) -> str | None:
    """What the first run of a retried request stored, if it ran after `since`."""
    row = conn.one(_TXN_RESULT, key, since)
    return row[0] if row else None


def txn_store(conn: Conn, key: str, result: str, now: int) -> None:
    conn.execute(_TXN_FORGET, key)  # a record of the same key past the window
    conn.execute(_TXN_STORE, key, result, now)


# -- change log -------------------------------------------------------------------------------


_INSERT_CHANGE = insert_query(Change.sqlmeta.table, ("time_created", "flow_uuid", "kind", "actor",
                                                      "subject", "payload"))


def log_change(conn: Conn, now: int, flow_uuid: str, kind: Kind, actor: str, subject: str,
               payload: dict[str, Any]) -> kinds.Change:
    """Append one change; positions follow commit order, across processes too."""
    if conn.postgres and not conn.changes:
        # Held to the end of the transaction: no other process logs a change until this
        # one commits, so positions are handed out in commit order.
        conn.execute("SELECT pg_advisory_xact_lock(7341)")
    text = to_json(payload).decode()
    position = conn.insert(_INSERT_CHANGE, now, flow_uuid, kind, actor, subject, text)
    change = kinds.Change(position, now, flow_uuid, kind, actor, subject, text)
    conn.changes.append(change)
    return change


_CHANGE_COLUMNS = (Change.q.id, Change.q.time_created, Change.q.flow_uuid, Change.q.kind,
                   Change.q.actor, Change.q.subject, Change.q.payload)


def _change(row: Sequence[Any]) -> kinds.Change:
    return kinds.Change(int(row[0]), int(row[1]), row[2], row[3], row[4], row[5], row[6])


def last_position(conn: Conn) -> int:
    row = conn.one(Select(func.MAX(Change.q.id)))
    return int(row[0]) if row and row[0] is not None else 0


_CHANGES_AFTER = Query(Select(_CHANGE_COLUMNS, where=Change.q.id > P, orderBy=Change.q.id,
                              limit=1000))


def changes_after(conn: Conn, position: int, limit: int = 1000) -> list[kinds.Change]:
    if limit == 1000:
        rows = conn.all(_CHANGES_AFTER, position)
    else:
        rows = conn.all(Select(_CHANGE_COLUMNS, where=Change.q.id > position,
                             orderBy=Change.q.id, limit=limit))
    return [_change(row) for row in rows]


def flow_changes(conn: Conn, flow_uuids: Sequence[str], after: int = 0, before: int | None = None,
                 limit: int = 100, backwards: bool = False) -> list[kinds.Change]:
    """Changes of some flows between two positions, oldest first (or newest first), but
    for typing notices and receipts (no timeline shows them)."""
    if not flow_uuids:
        return []
    where = [IN(Change.q.flow_uuid, list(flow_uuids)), Change.q.id > after,
             NOTIN(Change.q.kind, _EPHEMERAL)]
    if before is not None:
        where.append(Change.q.id < before)
    order = DESC(Change.q.id) if backwards else Change.q.id
    rows = conn.all(Select(_CHANGE_COLUMNS, where=AND(*where), orderBy=order, limit=limit))
    return [_change(row) for row in rows]


def change_at(conn: Conn, position: int) -> kinds.Change | None:
    row = conn.one(Select(_CHANGE_COLUMNS, where=Change.q.id == position))
    return _change(row) if row else None


def select_changes(conn: Conn, where: Any, order_by: Any = Change.q.id,
                   limit: int | None = None) -> list[kinds.Change]:
    """The changes a condition of other query modules picks (e.g. `mod.db.userdata`)."""
    rows = conn.all(Select(_CHANGE_COLUMNS, where=where, orderBy=order_by, limit=limit))
    return [_change(row) for row in rows]


# The kind sets as SQL lists, in a fixed order (one statement text for the drivers' caches).
_EPHEMERAL = sorted(kinds.EPHEMERAL)
_STATE = sorted(kinds.STATE)


def user_changes(conn: Conn, flow_uuids: Sequence[str], user_uuid: str, after: int, upto: int,
                 limit: int) -> list[kinds.Change]:
    """Changes in (after, upto] of some flows or about a user (their invites, joins and
    leaves anywhere), oldest first."""
    about = Change.q.subject == user_uuid
    scope = OR(IN(Change.q.flow_uuid, list(flow_uuids)), about) if flow_uuids else about
    rows = conn.all(Select(_CHANGE_COLUMNS, where=AND(Change.q.id > after, Change.q.id <= upto,
                                                    scope),
                         orderBy=Change.q.id, limit=limit))
    return [_change(row) for row in rows]


def flow_state_changes(conn: Conn, flow_uuid: str, before: int | None = None) -> list[kinds.Change]:
    """A flow's changes of `changes.STATE` (creation, membership, title and info) before a
    position, oldest first."""
    where = [Change.q.flow_uuid == flow_uuid, IN(Change.q.kind, _STATE)]
    if before is not None:
        where.append(Change.q.id < before)
    rows = conn.all(Select(_CHANGE_COLUMNS, where=AND(*where), orderBy=Change.q.id))
    return [_change(row) for row in rows]


def subject_changes(conn: Conn, flow_uuid: str, kinds: Sequence[str], subjects: Sequence[str],
                    after: int = 0) -> list[kinds.Change]:
    """A flow's changes of some kinds about some subjects (e.g. message uuids), oldest first."""
    if not subjects:
        return []
    rows = conn.all(Select(_CHANGE_COLUMNS, where=AND(
        Change.q.flow_uuid == flow_uuid, Change.q.id > after, IN(Change.q.kind, list(kinds)),
        IN(Change.q.subject, list(subjects))), orderBy=Change.q.id))
    return [_change(row) for row in rows]


# -- flows ------------------------------------------------------------------------------------

_FLOW_COLUMNS = (Flow.q.uuid, Flow.q.time_created, Flow.q.flow_type, Flow.q.title, Flow.q.info,
                 Flow.q.owner, Flow.q.invite_only)
# Chats made before the flag existed have it unset, yet are invite-only all the same.
_OPEN = AND(Flow.q.flow_type != "chat", Flow.q.invite_only == False)  # noqa: E712


def _flows_with_members(conn: Conn, rows: list[Row]) -> list[FlowRow]:
    flows = [FlowRow(uuid=r[0], time=int(r[1]), type=r[2], title=r[3], info=r[4], owner=r[5],
                     users=[], private=bool(r[6]) or r[2] == "chat") for r in rows]
    if flows:
        by_uuid = {flow["uuid"]: flow for flow in flows}
        for flow_uuid, user_uuid in conn.all(Select(
                [Member.q.flow_uuid, Member.q.user_uuid],
                where=IN(Member.q.flow_uuid, list(by_uuid)), orderBy=Member.q.id)):
            by_uuid[flow_uuid]["users"].append(user_uuid)
    return flows



def flow_by_uuid(conn: Conn, uuid: str) -> FlowRow | None:
    rows = conn.all(Select(_FLOW_COLUMNS, where=Flow.q.uuid == uuid))
    flows = _flows_with_members(conn, rows)
    return flows[0] if flows else None


def flows_by_uuid(conn: Conn, uuids: Iterable[str]) -> list[FlowRow]:
    wanted = list(dict.fromkeys(uuids))
    if not wanted:
        return []
    rows = conn.all(Select(_FLOW_COLUMNS, where=IN(Flow.q.uuid, wanted), orderBy=Flow.q.id))
    return _flows_with_members(conn, rows)


def chat_by_key(conn: Conn, chat_key: str) -> FlowRow | None:
    rows = conn.all(Select(_FLOW_COLUMNS, where=Flow.q.chat_key == chat_key))
    flows = _flows_with_members(conn, rows)
    return flows[0] if flows else None


def visible_flows(conn: Conn, user_uuid: str) -> list[FlowRow]:
    """Every public group and channel, and the invite-only flows (chats among them) the user
    is in or invited to."""
    mine = Select(Member.q.flow_uuid, where=Member.q.user_uuid == user_uuid)
    invited = Select(Invite.q.flow_uuid, where=Invite.q.user_uuid == user_uuid)
    rows = conn.all(Select(_FLOW_COLUMNS, where=OR(_OPEN, IN(Flow.q.uuid, mine),
                                                  IN(Flow.q.uuid, invited)),
                         orderBy=Flow.q.id))
    return _flows_with_members(conn, rows)


def public_flows(conn: Conn, search: str, offset: int, limit: int) -> tuple[list[FlowRow], int]:
    """A page of the groups and channels anyone may join (those whose title or info holds
    `search`, if given), oldest first, and how many there are in all."""
    where = _OPEN
    if search:
        needle = search.lower()
        where = AND(where, OR(CONTAINSSTRING(func.LOWER(Flow.q.title), needle),
                              CONTAINSSTRING(func.LOWER(Flow.q.info), needle)))
    row = conn.one(Select(func.COUNT(Flow.q.id), where=where))
    total = int(row[0]) if row else 0
    rows = conn.all(Select(_FLOW_COLUMNS, where=where, orderBy=Flow.q.id, start=offset,
                         end=offset + limit))
    return _flows_with_members(conn, rows), total


def member_flows(conn: Conn, user_uuid: str) -> list[str]:
    rows = conn.all(Select(Member.q.flow_uuid, where=Member.q.user_uuid == user_uuid,
                         orderBy=Member.q.id))
    return [row[0] for row in rows]


# Parameters: user uuid, then flow uuid.
_FLOW_ACCESS = Query(Select(
    [Flow.q.flow_type, Flow.q.owner, Member.q.id, Flow.q.encrypted],
    join=LEFTJOINOn(None, Member, AND(Member.q.flow_uuid == Flow.q.uuid,
                                      Member.q.user_uuid == P)),
    where=Flow.q.uuid == P))
_FLOW_MEMBERS = Query(Select(Member.q.user_uuid, where=Member.q.flow_uuid == P,
                             orderBy=Member.q.id))


def flow_access(conn: Conn, flow_uuid: str, user_uuid: str
                ) -> tuple[str, str, bool, bool] | None:
    """(type, owner, caller is a member, encrypted) of a flow, or None if there is no such
    flow."""
    row = conn.one(_FLOW_ACCESS, user_uuid, flow_uuid)
    if row is None:
        return None
    return row[0], row[1], row[2] is not None, bool(row[3])


def set_encrypted(conn: Conn, flow_uuid: str, actor: str, now: int, content: dict[str, Any]
                  ) -> kinds.Change:
    """Mark a flow end-to-end encrypted and log its Matrix m.room.encryption content."""
    conn.execute(Update(Flow.sqlmeta.table, values={"encrypted": True},
                      where=Flow.q.uuid == flow_uuid))
    return log_change(conn, now, flow_uuid, Kind.FLOW_ENCRYPTED, actor, "", {"content": content})


def join_rights(conn: Conn, flow_uuid: str, user_uuid: str) -> tuple[bool, bool]:
    """(invite-only, the user is invited) of a flow."""
    row = conn.one(Select([Flow.q.flow_type, Flow.q.invite_only], where=Flow.q.uuid == flow_uuid))
    private = row is not None and (bool(row[1]) or row[0] == "chat")
    invited = conn.one(Select(Invite.q.id, where=AND(Invite.q.flow_uuid == flow_uuid,
                                                   Invite.q.user_uuid == user_uuid)))
    return private, invited is not None


def flow_members(conn: Conn, flow_uuid: str) -> list[str]:
    rows = conn.all(_FLOW_MEMBERS, flow_uuid)
    return [row[0] for row in rows]


def public_profile(user: UserRow) -> dict[str, Any]:
    """What every member of a shared flow may see of a user (get_update, push)."""
    return {"uuid": user["uuid"], "username": user["username"],
            "is_bot": user["is_bot"], "avatar": user["avatar"], "bio": user["bio"],
            "time_created": user["time_created"]}


def create_flow(conn: Conn, uuid: str, flow_type: str, title: str, info: str, owner: str,
                users: Sequence[str], now: int, chat_key: str | None = None,
                private: bool = False) -> FlowRow:
    private = private or flow_type == "chat"
    conn.execute(Insert(Flow.sqlmeta.table, values={
        "uuid": uuid, "time_created": now, "flow_type": flow_type, "title": title,
        "info": info, "owner": owner, "chat_key": chat_key, "invite_only": private,
        "encrypted": False,
    }))
    conn.execute(Insert(Member.sqlmeta.table, valueList=[
        {"flow_uuid": uuid, "user_uuid": user, "time_joined": now} for user in users
    ]))
    flow = FlowRow(uuid=uuid, time=now, type=flow_type, title=title, info=info, owner=owner,
                   users=list(users), private=private)
    log_change(conn, now, uuid, Kind.FLOW_CREATED, owner, "", {"flow": flow})
    return flow


def update_flow(conn: Conn, uuid: str, actor: str, now: int, title: str | None = None,
                info: str | None = None) -> FlowRow:
    values = {key: value for key, value in (("title", title), ("info", info))
              if value is not None}
    if values:
        conn.execute(Update(Flow.sqlmeta.table, values=values, where=Flow.q.uuid == uuid))
    flow = flow_by_uuid(conn, uuid)
    assert flow is not None
    log_change(conn, now, uuid, Kind.FLOW_CHANGED, actor, "", {"flow": flow})
    return flow


def add_member(conn: Conn, flow_uuid: str, user_uuid: str, now: int) -> FlowRow | None:
    """Make a user a member; None when they already were."""
    if conn.one(Select(Member.q.id, where=AND(Member.q.flow_uuid == flow_uuid,
                                            Member.q.user_uuid == user_uuid))):
        return None
    conn.execute(Insert(Member.sqlmeta.table, values={
        "flow_uuid": flow_uuid, "user_uuid": user_uuid, "time_joined": now}))
    conn.execute(Delete(Invite.sqlmeta.table, where=AND(Invite.q.flow_uuid == flow_uuid,
                                                      Invite.q.user_uuid == user_uuid)))
    return _log_membership(conn, flow_uuid, user_uuid, now, Kind.FLOW_JOINED)


def remove_member(conn: Conn, flow_uuid: str, user_uuid: str, now: int) -> FlowRow | None:
    """End a membership; None when there was none."""
    removed = conn.execute(Delete(Member.sqlmeta.table, where=AND(
        Member.q.flow_uuid == flow_uuid, Member.q.user_uuid == user_uuid)))
    if not removed:
        return None
    return _log_membership(conn, flow_uuid, user_uuid, now, Kind.FLOW_LEFT)


def _log_membership(conn: Conn, flow_uuid: str, user_uuid: str, now: int, kind: Kind) -> FlowRow:
    flow = flow_by_uuid(conn, flow_uuid)
    user = user_by_uuid(conn, user_uuid)
    assert flow is not None and user is not None
    log_change(conn, now, flow_uuid, kind, user_uuid, user_uuid,
               {"flow": flow, "user": public_profile(user)})
    return flow


def add_invite(conn: Conn, flow_uuid: str, user_uuid: str, inviter: str, now: int,
               direct: bool = False) -> bool:
    """Invite a user; `direct` marks the invitation as one to a direct chat (Matrix DMs)."""
    if conn.one(Select(Invite.q.id, where=AND(Invite.q.flow_uuid == flow_uuid,
                                            Invite.q.user_uuid == user_uuid))):
        return False
    conn.execute(Insert(Invite.sqlmeta.table, values={
        "flow_uuid": flow_uuid, "user_uuid": user_uuid, "inviter": inviter,
        "time_created": now}))
    flow = flow_by_uuid(conn, flow_uuid)
    payload: dict[str, Any] = {"flow": flow}
    if direct:
        payload["is_direct"] = True
    log_change(conn, now, flow_uuid, Kind.FLOW_INVITED, inviter, user_uuid, payload)
    return True


def remove_invite(conn: Conn, flow_uuid: str, user_uuid: str, now: int | None = None) -> bool:
    """Withdraw an invite; with `now`, log it as declined (the invitee's Matrix client shows
    it gone)."""
    removed = bool(conn.execute(Delete(Invite.sqlmeta.table, where=AND(
        Invite.q.flow_uuid == flow_uuid, Invite.q.user_uuid == user_uuid))))
    if removed and now is not None:
        log_change(conn, now, flow_uuid, Kind.INVITE_DECLINED, user_uuid, user_uuid, {})
    return removed


def invites_for(conn: Conn, user_uuid: str) -> list[tuple[str, str, int]]:
    """(flow uuid, inviter uuid, time) of the user's open invites."""
    rows = conn.all(Select([Invite.q.flow_uuid, Invite.q.inviter, Invite.q.time_created],
                         where=Invite.q.user_uuid == user_uuid, orderBy=Invite.q.id))
    return [(row[0], row[1], int(row[2])) for row in rows]


# -- messages ---------------------------------------------------------------------------------

_MESSAGE_COLUMNS = (  # in the order of MessageRow
    Message.q.uuid, Message.q.client_id, Message.q.text, Message.q.user_uuid, Message.q.flow_uuid,
    Message.q.time_created, Message.q.file_picture, Message.q.file_video, Message.q.file_audio,
    Message.q.file_document, Message.q.emoji, Message.q.edited_time, Message.q.edited_status,
    Message.q.deleted, Message.q.reply_to, Message.q.file_name, Message.q.file_type,
)

def _message(row: Sequence[Any]) -> MessageRow:
    message = MessageRow(
        uuid=row[0], client_id=int(row[1]), text=row[2], from_user=row[3], from_flow=row[4],
        time=int(row[5]), file_picture=row[6], file_video=row[7], file_audio=row[8],
        file_document=row[9], emoji=row[10], edited_time=int(row[11]),
        edited_status=bool(row[12]), deleted=bool(row[13]),
    )
    if row[14]:
        message["reply_to"] = row[14]
    if row[15] or row[16]:
        message["file_name"], message["file_type"] = row[15], row[16]
    return message


_INSERT_MESSAGE = insert_query(Message.sqlmeta.table, (
    "uuid", "flow_uuid", "user_uuid", "client_id", "text", "file_picture", "file_video",
    "file_audio", "file_document", "emoji", "time_created", "edited_time", "edited_status",
    "deleted", "reply_to", "file_name", "file_type"))


def insert_message(conn: Conn, uuid: str, flow_uuid: str, user_uuid: str, client_id: int,
                   content: dict[str, str], now: int, extra: dict[str, Any] | None = None,
                   reply_to: str = "", mentions: Sequence[str] = (),
                   file: tuple[str, str] = ("", "")) -> MessageRow:
    """Store a message (answering the message `reply_to`, naming the members `mentions`, its
    file's name and type `file`, if given) and log it; `extra` goes into the change's
    payload."""
    message = MessageRow(
        uuid=uuid, client_id=client_id, text=content.get("text", ""), from_user=user_uuid,
        from_flow=flow_uuid, time=now, file_picture=content.get("file_picture", ""),
        file_video=content.get("file_video", ""), file_audio=content.get("file_audio", ""),
        file_document=content.get("file_document", ""), emoji=content.get("emoji", ""),
        edited_time=0, edited_status=False, deleted=False,
    )
    if reply_to:
        message["reply_to"] = reply_to
    if mentions:
        message["mentions"] = list(mentions)
        mentiondb.add(conn, flow_uuid, uuid, mentions)
    if any(file):
        message["file_name"], message["file_type"] = file
    conn.execute(_INSERT_MESSAGE, uuid, flow_uuid, user_uuid, client_id, message["text"],
               message["file_picture"], message["file_video"], message["file_audio"],
               message["file_document"], message["emoji"], now, 0, False, False, reply_to,
               *file)
    log_change(conn, now, flow_uuid, Kind.MESSAGE_SENT, user_uuid, uuid,
               {"message": message, **(extra or {})})
    return message


def message_by_uuid(conn: Conn, uuid: str) -> MessageRow | None:
    row = conn.one(Select(_MESSAGE_COLUMNS, where=Message.q.uuid == uuid))
    return _message(row) if row else None


_MESSAGE_STATE = Query(Select(_MESSAGE_COLUMNS, where=Message.q.uuid == P))


def message_state(conn: Conn, uuid: str) -> tuple[MessageRow, bool] | None:
    """A message, and whether it was deleted."""
    row = conn.one(_MESSAGE_STATE, uuid)
    return (_message(row), bool(row[13])) if row else None


def update_message(conn: Conn, uuid: str, actor: str, content: dict[str, str], now: int,
                   kind: Kind, extra: dict[str, Any] | None = None) -> MessageRow:
    """Replace some content fields, mark the message edited (and, for "message_deleted",
    deleted), and log `kind`."""
    values: dict[str, Any] = {**content, "edited_time": now, "edited_status": True}
    if kind == Kind.MESSAGE_DELETED:
        values["deleted"] = True
    conn.execute(Update(Message.sqlmeta.table, values=values, where=Message.q.uuid == uuid))
    message = message_by_uuid(conn, uuid)
    assert message is not None
    log_change(conn, now, message["from_flow"], kind, actor, uuid,
               {"message": message, **(extra or {})})
    return message


_COUNT_MESSAGES = Query(Select(func.COUNT(Message.q.id),
                               where=AND(Message.q.flow_uuid == P, Message.q.time_created > P)))


def count_messages(conn: Conn, flow_uuid: str, since: int = 0) -> int:
    row = conn.one(_COUNT_MESSAGES, flow_uuid, since or -1)
    return int(row[0]) if row else 0


# A page as one JSON array made by the database itself: one row to fetch instead of a hundred,
# and no Python object per message. Keys in MessageRow's order.
_PAGE_FIELDS = (
    ("uuid", "uuid"), ("client_id", "client_id"), ("text", "text"),
    ("from_user", "user_uuid"), ("from_flow", "flow_uuid"), ("time", "time_created"),
    ("file_picture", "file_picture"), ("file_video", "file_video"),
    ("file_audio", "file_audio"), ("file_document", "file_document"), ("emoji", "emoji"),
    ("edited_time", "edited_time"),
)
_PAGE_OF = (f"FROM (SELECT * FROM {Message.sqlmeta.table} WHERE flow_uuid = {{p}} "
            "AND time_created > {p} ORDER BY id LIMIT {count} OFFSET {start}) AS page")
_REACTIONS = Reaction.sqlmeta.table
# The extended page's reactions of each message: [{"key": ..., "users": [...]}], in the order
# each key was first used.
_PAGE_REACTIONS = {
    "sqlite": "json((SELECT json_group_array(json_object('key', reaction_key, 'users', "
              "json(users))) FROM (SELECT reaction_key, json_group_array(user_uuid) AS users, "
              f"MIN(position) AS first FROM {_REACTIONS} WHERE message_uuid = page.uuid "
              "GROUP BY reaction_key ORDER BY first)))",
    "postgres": "(SELECT COALESCE(json_agg(json_build_object('key', reaction_key, 'users', users)"
                " ORDER BY first), '[]') FROM (SELECT reaction_key, json_agg(user_uuid ORDER BY "
                f"position) AS users, MIN(position) AS first FROM {_REACTIONS} "
                "WHERE message_uuid = page.uuid GROUP BY reaction_key) AS r)",
}
_PAGE_MENTIONS = {
    "sqlite": f"json((SELECT json_group_array(user_uuid) FROM {Mention.sqlmeta.table} "
              "WHERE message_uuid = page.uuid))",
    "postgres": f"(SELECT COALESCE(json_agg(user_uuid ORDER BY id), '[]') FROM "
                f"{Mention.sqlmeta.table} WHERE message_uuid = page.uuid)",
}
_PAGE_FILE = {
    "sqlite": ", 'file_name', CASE WHEN file_name = '' THEN NULL ELSE file_name END, "
              "'file_type', CASE WHEN file_type = '' THEN NULL ELSE file_type END",
    "postgres": ", 'file_name', NULLIF(file_name, ''), 'file_type', NULLIF(file_type, '')",
}
_PAGE_REPLY_TO = {
    "sqlite": ", 'reply_to', CASE WHEN reply_to = '' THEN NULL ELSE reply_to END",
    "postgres": ", 'reply_to', NULLIF(reply_to, '')",
}


def _page_json(db_kind: str, replies: bool, reactions: bool, mentions: bool, files: bool
               ) -> str:
    pairs = ", ".join(f"'{key}', {column}" for key, column in _PAGE_FIELDS)
    more = (_PAGE_REPLY_TO[db_kind] if replies else "") + (
        ", 'reactions', " + _PAGE_REACTIONS[db_kind] if reactions else "") + (
        ", 'mentions', " + _PAGE_MENTIONS[db_kind] if mentions else "") + (
        _PAGE_FILE[db_kind] if files else "")
    if db_kind == "sqlite":
        return ("SELECT json_group_array(json_object(" + pairs
                + ", 'edited_status', json(CASE WHEN edited_status THEN 'true' ELSE 'false' END)"
                + ", 'deleted', json(CASE WHEN deleted THEN 'true' ELSE 'false' END)"
                + more + ")) " + _PAGE_OF.replace("{p}", "?"))
    return ("SELECT COALESCE(json_agg(json_build_object(" + pairs
            + ", 'edited_status', edited_status, 'deleted', deleted" + more
            + ") ORDER BY id), '[]')::text " + _PAGE_OF.replace("{p}", "%s"))


_PAGE_JSON = {(kind, *fields): _page_json(kind, *fields)
              for kind in ("sqlite", "postgres") for fields in itertools.product((False, True),
                                                                                  repeat=4)}


def messages_page_json(conn: Conn, flow_uuid: str, start: int, count: int, since: int = 0,
                       replies: bool = False, reactions: bool = False,
                       mentions: bool = False, files: bool = False) -> str:
    """The JSON list of the messages at positions [start, start+count) of a flow (those after
    `since`, if given), oldest first; with `replies`, each one's `reply_to` (null when it
    answers none), with `reactions` its reactions, with `mentions` whom it names, with
    `files` its file's `file_name` and `file_type` (null when unknown)."""
    sql = _PAGE_JSON[conn.db, replies, reactions, mentions, files].format(count=int(count),
                                                                          start=int(start))
    row = conn.one(sql, flow_uuid, since or -1)
    return str(row[0]) if row and row[0] is not None else "[]"


def messages_by_uuid(conn: Conn, uuids: Iterable[str]) -> list[MessageRow]:
    wanted = list(dict.fromkeys(uuids))
    if not wanted:
        return []
    rows = conn.all(Select(_MESSAGE_COLUMNS, where=IN(Message.q.uuid, wanted),
                         orderBy=Message.q.id))
    return [_message(row) for row in rows]


def searchable_messages(conn: Conn, ids: Iterable[int]) -> dict[int, MessageRow]:
    """The messages of these ids (the search index's rowids) that are not deleted."""
    wanted = list(dict.fromkeys(ids))
    if not wanted:
        return {}
    rows = conn.all(Select([Message.q.id, *_MESSAGE_COLUMNS],
                           where=AND(IN(Message.q.id, wanted),
                                     Message.q.deleted == False)))  # noqa: E712
    return {int(row[0]): _message(row[1:]) for row in rows}


def with_extras(conn: Conn, messages: list[MessageRow], reactions: bool, mentions: bool
                ) -> None:
    """Give each message its `reactions` and the `mentions` it makes, where asked for."""
    uuids = [message["uuid"] for message in messages]
    if reactions:
        groups = reactiondb.of_messages(conn, uuids)
        for message in messages:
            message["reactions"] = groups.get(message["uuid"], [])
    if mentions:
        named = mentiondb.of_messages(conn, uuids)
        for message in messages:
            message["mentions"] = named.get(message["uuid"], [])


# -- get_update -------------------------------------------------------------------------------


def update_since(conn: Conn, user_uuid: str, since: int, reactions: bool = False
                 ) -> tuple[list[FlowRow], list[MessageRow], list[UserRow]]:
    """What changed at or after `since` in the user's flows: flows, messages (with
    `reactions`, also those whose reactions changed), members."""
    mine = member_flows(conn, user_uuid)
    if not mine:
        return [], [], []
    rows = conn.all(Select([Change.q.flow_uuid, Change.q.kind, Change.q.subject],
                         where=AND(IN(Change.q.flow_uuid, mine), Change.q.time_created >= since),
                         orderBy=Change.q.id))
    flow_ids: dict[str, None] = {}
    message_ids: dict[str, None] = {}
    for flow_uuid, kind, subject in rows:
        if kind in kinds.MATRIX_ONLY or (kind in kinds.REACTIONS and not reactions):
            continue
        if kind in kinds.MESSAGE_KINDS or (reactions and kind in kinds.REACTIONS):
            message_ids.setdefault(subject)
        else:
            flow_ids.setdefault(flow_uuid)
    flows = flows_by_uuid(conn, flow_ids)
    messages = messages_by_uuid(conn, message_ids)
    members = {user for flow in flows for user in flow["users"]}
    members.update(message["from_user"] for message in messages)
    return flows, messages, users_by_uuid(conn, sorted(members))


# -- status -----------------------------------------------------------------------------------


def counts(conn: Conn) -> dict[str, int]:
    result = {}
    for name, table in (("users", User), ("flows", Flow), ("messages", Message)):
        row = conn.one(Select(func.COUNT(table.q.id)))
        result[name] = int(row[0]) if row else 0
    return result
