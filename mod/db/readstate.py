"""Queries of read state: where a user's read receipts stand in their flows (as messages), and
how many messages of others came after."""

from __future__ import annotations

from sqlobject.sqlbuilder import AND, DESC, IN, Select

from mod.changes import Kind
from mod.db.engine import Conn
from mod.db.models import Change, Member, Message, Receipt

# The receipts that place a user's read marker: public and private, of the main timeline.
READ_TYPES = ("m.read", "m.read.private")
MAIN_THREADS = ("", "main")


def receipts_of(conn: Conn, user_uuid: str, flow_uuids: list[str]) -> dict[str, list[str]]:
    """The event IDs the user's read receipts name, per flow."""
    if not flow_uuids:
        return {}
    rows = conn.all(Select([Receipt.q.flow_uuid, Receipt.q.event_id], where=AND(
        Receipt.q.user_uuid == user_uuid, IN(Receipt.q.flow_uuid, flow_uuids),
        IN(Receipt.q.receipt_type, list(READ_TYPES)), IN(Receipt.q.thread, list(MAIN_THREADS)))))
    found: dict[str, list[str]] = {}
    for flow, event_id in rows:
        found.setdefault(flow, []).append(event_id)
    return found


def message_ids(conn: Conn, flow_uuid: str, uuids: list[str]) -> dict[str, int]:
    """The row ids (their order in the flow) of these messages of a flow."""
    if not uuids:
        return {}
    rows = conn.all(Select([Message.q.uuid, Message.q.id], where=AND(
        Message.q.flow_uuid == flow_uuid, IN(Message.q.uuid, uuids))))
    return {uuid: int(row_id) for uuid, row_id in rows}


def message_before(conn: Conn, flow_uuid: str, position: int) -> str | None:
    """The uuid of the last message sent in a flow at or before a change-log position."""
    row = conn.one(Select(Change.q.subject, where=AND(
        Change.q.flow_uuid == flow_uuid, Change.q.kind == Kind.MESSAGE_SENT,
        Change.q.id <= position), orderBy=DESC(Change.q.id), end=1))
    return str(row[0]) if row else None


def joined(conn: Conn, user_uuid: str, flow_uuids: list[str]) -> dict[str, int]:
    """When the user joined each of these flows (seconds)."""
    if not flow_uuids:
        return {}
    rows = conn.all(Select([Member.q.flow_uuid, Member.q.time_joined], where=AND(
        Member.q.user_uuid == user_uuid, IN(Member.q.flow_uuid, flow_uuids))))
    return {flow: int(stamp) for flow, stamp in rows}


def count_unread(conn: Conn, flow_uuid: str, user_uuid: str, after_id: int, since: int,
                 limit: int) -> int:
    """Messages of others, not deleted, after the row `after_id` and sent at or after `since`
    (seconds), counted up to `limit`."""
    page = Select(Message.q.id, where=AND(
        Message.q.flow_uuid == flow_uuid, Message.q.id > after_id,
        Message.q.time_created >= since, Message.q.user_uuid != user_uuid,
        Message.q.deleted == False),  # noqa: E712  (sqlbuilder's comparison)
        end=limit)
    row = conn.one(f"SELECT COUNT(*) FROM ({conn.sql(page)}) AS unread")
    return int(row[0]) if row else 0


def last_own(conn: Conn, flow_uuid: str, user_uuid: str) -> str | None:
    """The uuid of the user's latest message in a flow."""
    row = conn.one(Select(Message.q.uuid, where=AND(
        Message.q.flow_uuid == flow_uuid, Message.q.user_uuid == user_uuid),
        orderBy=DESC(Message.q.id), end=1))
    return str(row[0]) if row else None


def receipt_flows(conn: Conn, user_uuid: str, since: int) -> list[str]:
    """The flows where the user's read receipts changed at or after `since` (seconds)."""
    rows = conn.all(Select(Receipt.q.flow_uuid, where=AND(
        Receipt.q.user_uuid == user_uuid, IN(Receipt.q.receipt_type, list(READ_TYPES)),
        Receipt.q.ts >= since * 1000), distinct=True))
    return sorted(row[0] for row in rows)
