"""Queries of mentions (`mentions`): the members a message names."""

from __future__ import annotations

from collections.abc import Iterable

from sqlobject.sqlbuilder import AND, IN, Insert, Select

from mod.db.engine import Conn
from mod.db.models import Mention, Message


def add(conn: Conn, flow_uuid: str, message_uuid: str, users: Iterable[str]) -> None:
    rows = [{"flow_uuid": flow_uuid, "message_uuid": message_uuid, "user_uuid": user}
            for user in dict.fromkeys(users)]
    if rows:
        conn.execute(Insert(Mention.sqlmeta.table, valueList=rows))


def of_messages(conn: Conn, message_uuids: Iterable[str]) -> dict[str, list[str]]:
    """Whom each message names (those naming nobody are left out)."""
    wanted = list(dict.fromkeys(message_uuids))
    if not wanted:
        return {}
    rows = conn.all(Select([Mention.q.message_uuid, Mention.q.user_uuid],
                           where=IN(Mention.q.message_uuid, wanted), orderBy=Mention.q.id))
    found: dict[str, list[str]] = {}
    for message, user in rows:
        found.setdefault(message, []).append(user)
    return found


def count_unread(conn: Conn, flow_uuid: str, user_uuid: str, after_id: int, since: int,
                 limit: int) -> int:
    """Messages of a flow naming the user, not deleted, after the row `after_id` and sent at
    or after `since`, counted up to `limit`."""
    page = Select(Message.q.id, where=AND(
        Mention.q.user_uuid == user_uuid, Mention.q.flow_uuid == flow_uuid,
        Message.q.uuid == Mention.q.message_uuid, Message.q.id > after_id,
        Message.q.time_created >= since,
        Message.q.deleted == False),  # noqa: E712  (sqlbuilder's comparison)
        end=limit)
    row = conn.one(f"SELECT COUNT(*) FROM ({conn.sql(page)}) AS named")
    return int(row[0]) if row else 0
