"""Queries of reactions (`reactions`): a user's reaction key on a message, and the change-log
position that added it."""

from __future__ import annotations

from collections.abc import Iterable

from sqlobject.sqlbuilder import AND, IN, Delete, Insert, Select, Update

from mod.db.engine import Conn
from mod.db.models import Reaction
from mod.records import ReactionGroup


def find(conn: Conn, message_uuid: str, user_uuid: str, key: str) -> int | None:
    """The position that added this reaction, or None when the user has not reacted so."""
    row = conn.one(Select(Reaction.q.position, where=AND(
        Reaction.q.message_uuid == message_uuid, Reaction.q.user_uuid == user_uuid,
        Reaction.q.reaction_key == key)))
    return int(row[0]) if row else None


def count_by(conn: Conn, message_uuid: str, user_uuid: str) -> int:
    """How many different reactions a user has on a message."""
    rows = conn.all(Select(Reaction.q.id, where=AND(Reaction.q.message_uuid == message_uuid,
                                                    Reaction.q.user_uuid == user_uuid)))
    return len(rows)


# A new reaction's position until its change is logged: after every real one, so it is
# listed last meanwhile.
_UNPLACED = 2**62


def add(conn: Conn, flow_uuid: str, message_uuid: str, user_uuid: str, key: str) -> None:
    """Record a reaction; its position is set by `placed` once its change is logged."""
    conn.execute(Insert(Reaction.sqlmeta.table, values={
        "flow_uuid": flow_uuid, "message_uuid": message_uuid, "user_uuid": user_uuid,
        "reaction_key": key, "position": _UNPLACED}))


def placed(conn: Conn, message_uuid: str, user_uuid: str, key: str, position: int) -> None:
    conn.execute(Update(Reaction.sqlmeta.table, values={"position": position}, where=AND(
        Reaction.q.message_uuid == message_uuid, Reaction.q.user_uuid == user_uuid,
        Reaction.q.reaction_key == key)))


def at(conn: Conn, flow_uuid: str, position: int) -> tuple[str, str, str] | None:
    """(message, user, key) of the reaction the change at `position` added, if it stands."""
    row = conn.one(Select([Reaction.q.message_uuid, Reaction.q.user_uuid,
                           Reaction.q.reaction_key],
                          where=AND(Reaction.q.position == position,
                                    Reaction.q.flow_uuid == flow_uuid)))
    return (row[0], row[1], row[2]) if row else None


def remove(conn: Conn, message_uuid: str, user_uuid: str, key: str) -> None:
    conn.execute(Delete(Reaction.sqlmeta.table, where=AND(
        Reaction.q.message_uuid == message_uuid, Reaction.q.user_uuid == user_uuid,
        Reaction.q.reaction_key == key)))


def of_messages(conn: Conn, message_uuids: Iterable[str]) -> dict[str, list[ReactionGroup]]:
    """The reactions of each message (those with none are left out), keys in the order they
    were first used, users in the order they reacted."""
    wanted = list(dict.fromkeys(message_uuids))
    if not wanted:
        return {}
    rows = conn.all(Select([Reaction.q.message_uuid, Reaction.q.reaction_key,
                            Reaction.q.user_uuid],
                           where=IN(Reaction.q.message_uuid, wanted),
                           orderBy=Reaction.q.position))
    found: dict[str, dict[str, list[str]]] = {}
    for message, key, user in rows:
        found.setdefault(message, {}).setdefault(key, []).append(user)
    return {message: [ReactionGroup(key=key, users=users) for key, users in groups.items()]
            for message, groups in found.items()}
