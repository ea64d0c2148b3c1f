"""Queries of what users keep beside messages: account data, read receipts, the user
directory, and the change-log rows of events MTP does not show (typing, receipts, opaque
Matrix room events). Functions take an open `Conn` and return plain data."""

from __future__ import annotations

from typing import Any

from pydantic_core import to_json
from sqlobject.sqlbuilder import AND, CONTAINSSTRING, DESC, IN, OR, Delete, Insert, Select, func

from mod import changes as kinds
from mod.changes import Kind
from mod.db import dbhandler as db
from mod.db.engine import Conn
from mod.db.models import AccountData, Change, Member, Receipt, User

# -- account data -----------------------------------------------------------------------------


def put_account_data(conn: Conn, user_uuid: str, room: str, data_type: str,
                     content: dict[str, Any], now: int) -> kinds.Change:
    """Store (replace) one piece of account data and log it for the user's other devices."""
    where = AND(AccountData.q.user_uuid == user_uuid, AccountData.q.room == room,
                AccountData.q.data_type == data_type)
    conn.execute(Delete(AccountData.sqlmeta.table, where=where))
    conn.execute(Insert(AccountData.sqlmeta.table, values={
        "user_uuid": user_uuid, "room": room, "data_type": data_type,
        "content": to_json(content).decode(), "time_created": now}))
    return db.log_change(conn, now, "", Kind.ACCOUNT_DATA, user_uuid, user_uuid,
                         {"room": room, "type": data_type, "content": content})


def account_data(conn: Conn, user_uuid: str, room: str, data_type: str) -> str | None:
    row = conn.one(Select(AccountData.q.content, where=AND(
        AccountData.q.user_uuid == user_uuid, AccountData.q.room == room,
        AccountData.q.data_type == data_type)))
    return str(row[0]) if row else None


def count_account_data(conn: Conn, user_uuid: str, limit: int) -> int:
    """How many pieces of account data a user keeps, counted up to `limit`."""
    return len(conn.all(Select(AccountData.q.id, where=AccountData.q.user_uuid == user_uuid,
                               limit=limit)))


def all_account_data(conn: Conn, user_uuid: str) -> list[tuple[str, str, str]]:
    """(room, type, content JSON) of all the user's account data."""
    rows = conn.all(Select([AccountData.q.room, AccountData.q.data_type, AccountData.q.content],
                         where=AccountData.q.user_uuid == user_uuid, orderBy=AccountData.q.id))
    return [(str(row[0]), str(row[1]), str(row[2])) for row in rows]


# -- receipts ---------------------------------------------------------------------------------


def keep_receipt(conn: Conn, flow_uuid: str, user_uuid: str, receipt_type: str, thread: str,
                 event_id: str, ts: int) -> None:
    """Keep a user's latest receipt of this type and thread (`log_receipt` logs it)."""
    conn.execute(Delete(Receipt.sqlmeta.table, where=AND(
        Receipt.q.flow_uuid == flow_uuid, Receipt.q.user_uuid == user_uuid,
        Receipt.q.receipt_type == receipt_type, Receipt.q.thread == thread)))
    conn.execute(Insert(Receipt.sqlmeta.table, values={
        "flow_uuid": flow_uuid, "user_uuid": user_uuid, "receipt_type": receipt_type,
        "thread": thread, "event_id": event_id, "ts": ts}))


def log_receipt(conn: Conn, flow_uuid: str, user_uuid: str, receipt_type: str, thread: str,
                event_id: str, ts: int, now: int, private: bool,
                extra: dict[str, Any] | None = None) -> kinds.Change:
    """Log a kept receipt: to the flow, or (private) to the user; `extra` joins the payload."""
    payload = {"room": flow_uuid, "type": receipt_type, "event_id": event_id, "ts": ts,
               "thread": thread, **(extra or {})}
    if private:
        return db.log_change(conn, now, "", Kind.PRIVATE_RECEIPT, user_uuid, user_uuid, payload)
    return db.log_change(conn, now, flow_uuid, Kind.RECEIPT, user_uuid, user_uuid, payload)


def receipts(conn: Conn, flow_uuids: list[str], viewer: str
             ) -> list[tuple[str, str, str, str, str, int]]:
    """(flow, user, type, thread, event ID, ts) of the flows' receipts the viewer may see:
    everyone's public ones, and the viewer's own private ones."""
    if not flow_uuids:
        return []
    rows = conn.all(Select(
        [Receipt.q.flow_uuid, Receipt.q.user_uuid, Receipt.q.receipt_type, Receipt.q.thread,
         Receipt.q.event_id, Receipt.q.ts],
        where=AND(IN(Receipt.q.flow_uuid, flow_uuids),
                  OR(Receipt.q.receipt_type != "m.read.private",
                     Receipt.q.user_uuid == viewer)),
        orderBy=Receipt.q.id))
    return [(str(r[0]), str(r[1]), str(r[2]), str(r[3]), str(r[4]), int(r[5])) for r in rows]


# -- the user directory -----------------------------------------------------------------------


def search_users(conn: Conn, searcher: str, term: str, limit: int, everyone: bool
                 ) -> tuple[list[db.UserRow], bool]:
    """Accounts whose login or name holds `term` (all of them, or only those who share a flow
    with the searcher), and whether there were more than `limit`."""
    needle = term.lower()
    where = AND(User.q.deleted == False,  # noqa: E712
                OR(CONTAINSSTRING(func.LOWER(User.q.login), needle),
                   CONTAINSSTRING(func.LOWER(User.q.username), needle)))
    if not everyone:
        mine = Select(Member.q.flow_uuid, where=Member.q.user_uuid == searcher)
        sharing = Select(Member.q.user_uuid, where=IN(Member.q.flow_uuid, mine))
        where = AND(where, IN(User.q.uuid, sharing))
    rows = conn.all(Select(User.q.uuid, where=where, orderBy=User.q.id, limit=limit + 1))
    uuids = [str(row[0]) for row in rows]
    found = {user["uuid"]: user for user in db.users_by_uuid(conn, uuids[:limit])}
    return [found[uuid] for uuid in uuids[:limit] if uuid in found], len(uuids) > limit


# -- room events other than messages ----------------------------------------------------------


def log_room_event(conn: Conn, flow_uuid: str, user_uuid: str, relates_to: str, now: int,
                   payload: dict[str, Any]) -> kinds.Change:
    """An event MTP does not show (a reaction, any custom type): a change-log row only.
    `subject` is the event it relates to, without its "$" (when that fits the column)."""
    subject = relates_to[1:] if relates_to.startswith("$") and len(relates_to) <= 41 else ""
    return db.log_change(conn, now, flow_uuid, Kind.ROOM_EVENT, user_uuid, subject, payload)


def related_changes(conn: Conn, flow_uuid: str, event_id: str, message_uuid: str, after: int,
                    before: int | None, limit: int, backwards: bool) -> list[kinds.Change]:
    """Changes that relate to an event: room events naming it, and edits of and reactions to
    its message."""
    about = AND(Change.q.kind == Kind.ROOM_EVENT, Change.q.subject == event_id[1:])
    if message_uuid:
        about = OR(about, AND(IN(Change.q.kind, [Kind.MESSAGE_EDITED, Kind.REACTION_ADDED]),
                              Change.q.subject == message_uuid))
    where = [Change.q.flow_uuid == flow_uuid, Change.q.id > after, about]
    if before is not None:
        where.append(Change.q.id < before)
    order = DESC(Change.q.id) if backwards else Change.q.id
    return db.select_changes(conn, AND(*where), order, limit)
