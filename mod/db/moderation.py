"""The queries behind the operator's commands on accounts and flows (`mod.service.moderation`
holds their rules and change-log rows).

Like `dbhandler`, functions take an open `Conn` and return plain data.
"""

from __future__ import annotations

from sqlobject.sqlbuilder import Delete, Select

from mod.db.dbhandler import FlowRow, flows_by_uuid, update_user
from mod.db.engine import Conn
from mod.db.models import Flow, Invite, Member, Mention, Message, Reaction

# -- accounts ---------------------------------------------------------------------------------


def set_locked(conn: Conn, user_uuid: str, locked: bool) -> None:
    update_user(conn, user_uuid, locked=locked)


def set_password(conn: Conn, user_uuid: str, password_hash: str) -> None:
    update_user(conn, user_uuid, password_hash=password_hash)


def set_superuser(conn: Conn, user_uuid: str, superuser: bool) -> None:
    update_user(conn, user_uuid, is_superuser=superuser)


# -- flows ------------------------------------------------------------------------------------


def all_flows(conn: Conn) -> list[FlowRow]:
    rows = conn.all(Select(Flow.q.uuid, orderBy=Flow.q.id))
    return flows_by_uuid(conn, [row[0] for row in rows])


def delete_flow(conn: Conn, flow_uuid: str) -> None:
    """Delete a flow's rows: its invitations, reactions, mentions, messages, memberships and
    the flow itself."""
    conn.execute(Delete(Invite.sqlmeta.table, where=Invite.q.flow_uuid == flow_uuid))
    conn.execute(Delete(Reaction.sqlmeta.table, where=Reaction.q.flow_uuid == flow_uuid))
    conn.execute(Delete(Mention.sqlmeta.table, where=Mention.q.flow_uuid == flow_uuid))
    conn.execute(Delete(Message.sqlmeta.table, where=Message.q.flow_uuid == flow_uuid))
    conn.execute(Delete(Member.sqlmeta.table, where=Member.q.flow_uuid == flow_uuid))
    conn.execute(Delete(Flow.sqlmeta.table, where=Flow.q.uuid == flow_uuid))
