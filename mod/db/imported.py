"""The queries of `manage.py db import-original`: what is already here, and the inserts.

An imported row keeps the original's uuid and times; its change-log row is stamped with the
time of the import (so `get_update` polls see it as news), and carries the original time as
the Matrix `origin_server_ts` (payload "mx", "ts"), as a message sent over Matrix does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from sqlobject.sqlbuilder import IN, Insert, Select

from mod.changes import Kind
from mod.db import media as mediadb
from mod.db.dbhandler import FlowRow, MessageRow, log_change
from mod.db.engine import Conn, insert_query
from mod.db.media import MediaRow
from mod.db.models import Flow, Member, Message, User

CHUNK = 500  # values in one IN (...), well under SQLite's bound on parameters


def _chunks(values: Iterable[str]) -> Iterable[list[str]]:
    items = list(dict.fromkeys(values))
    for start in range(0, len(items), CHUNK):
        yield items[start:start + CHUNK]


def existing_users(conn: Conn, uuids: Iterable[str], logins: Iterable[str]
                   ) -> tuple[dict[str, bool], dict[str, str]]:
    """({uuid: is_superuser} of these uuids here, {login: uuid} of these logins taken here)."""
    by_uuid: dict[str, bool] = {}
    for chunk in _chunks(uuids):
        for uuid, superuser in conn.all(Select([User.q.uuid, User.q.is_superuser],
                                               where=IN(User.q.uuid, chunk))):
            by_uuid[uuid] = bool(superuser)
    by_login: dict[str, str] = {}
    for chunk in _chunks(logins):
        for login, uuid in conn.all(Select([User.q.login_key, User.q.uuid],
                                           where=IN(User.q.login_key, chunk))):
            by_login[login] = uuid
    return by_uuid, by_login


def existing_flows(conn: Conn, uuids: Iterable[str], chat_keys: Iterable[str]
                   ) -> tuple[dict[str, tuple[str, list[str]]], set[str]]:
    """({uuid: (type, members)} of these flows here, the chat keys among these taken here)."""
    found: dict[str, tuple[str, list[str]]] = {}
    for chunk in _chunks(uuids):
        for uuid, flow_type in conn.all(Select([Flow.q.uuid, Flow.q.flow_type],
                                               where=IN(Flow.q.uuid, chunk))):
            found[uuid] = (flow_type, [])
    for chunk in _chunks(found):
        for flow_uuid, user_uuid in conn.all(Select([Member.q.flow_uuid, Member.q.user_uuid],
                                                    where=IN(Member.q.flow_uuid, chunk))):
            found[flow_uuid][1].append(user_uuid)
    taken: set[str] = set()
    for chunk in _chunks(chat_keys):
        taken.update(row[0] for row in conn.all(Select(Flow.q.chat_key,
                                                       where=IN(Flow.q.chat_key, chunk))))
    return found, taken


def existing_messages(conn: Conn, uuids: Iterable[str]) -> set[str]:
    found: set[str] = set()
    for chunk in _chunks(uuids):
        found.update(row[0] for row in conn.all(Select(Message.q.uuid,
                                                       where=IN(Message.q.uuid, chunk))))
    return found


def insert_user(conn: Conn, user: dict[str, Any]) -> None:
    """An account with every column given (uuid, login, password_hash, username, bio, avatar,
    email, is_bot, is_superuser, token_ttl, time_created)."""
    conn.execute(Insert(User.sqlmeta.table, values={
        **user, "login_key": user["login"], "deleted": False, "locked": False}))


def insert_flow(conn: Conn, flow: FlowRow, chat_key: str | None, now: int) -> None:
    """A flow with its members (joined at its creation time), logged as `flow_created`."""
    conn.execute(Insert(Flow.sqlmeta.table, values={
        "uuid": flow["uuid"], "time_created": flow["time"], "flow_type": flow["type"],
        "title": flow["title"], "info": flow["info"], "owner": flow["owner"],
        "chat_key": chat_key, "invite_only": flow["private"], "encrypted": False}))
    if flow["users"]:
        conn.execute(Insert(Member.sqlmeta.table, valueList=[
            {"flow_uuid": flow["uuid"], "user_uuid": user, "time_joined": flow["time"]}
            for user in flow["users"]]))
    log_change(conn, now, flow["uuid"], Kind.FLOW_CREATED, flow["owner"], "",
               {"flow": flow, "mx": {"ts": flow["time"] * 1000}})


_INSERT_MESSAGE = insert_query(Message.sqlmeta.table, (
    "uuid", "flow_uuid", "user_uuid", "client_id", "text", "file_picture", "file_video",
    "file_audio", "file_document", "emoji", "time_created", "edited_time", "edited_status",
    "deleted", "reply_to", "file_name", "file_type"))


Describe = Callable[[str, MediaRow, str], dict[str, Any]]


def insert_messages(conn: Conn, messages: Sequence[MessageRow], now: int,
                    files: Mapping[str, tuple[str, MediaRow]] | None = None,
                    describe: Describe | None = None) -> None:
    """Messages in the order given, each logged as `message_sent`. A message in `files` (its
    first file field, and a row for the file already in the store) refers to that file, or
    to an equal one already here, and `describe` gives its Matrix content."""
    for message in messages:
        conn.execute(_INSERT_MESSAGE, message["uuid"], message["from_flow"],
                     message["from_user"], 0, message["text"], message["file_picture"],
                     message["file_video"], message["file_audio"], message["file_document"],
                     message["emoji"], message["time"], message["edited_time"],
                     message["edited_status"], False, "", "", "")
        extra: dict[str, Any] = {"ts": message["time"] * 1000}
        if files and describe and message["uuid"] in files:
            field, media = files[message["uuid"]]
            same = mediadb.same_file(conn, media["sha256"], media["uploader"], media["name"],
                                     media["content_type"])
            if same is None:
                mediadb.insert(conn, media)
            media = same or media
            mediadb.add_ref(conn, media["media_id"], mediadb.MESSAGE, message["uuid"])
            extra["content"] = describe(field, media, message["text"])
        log_change(conn, now, message["from_flow"], Kind.MESSAGE_SENT, message["from_user"],
                   message["uuid"], {"message": message, "mx": extra})


# -- writer jobs: each re-checks what another writer may have taken since the importer read;
# each returns the uuids it left out for that reason


def insert_new_users(conn: Conn, rows: list[dict[str, Any]]) -> list[str]:
    here, taken = existing_users(conn, [r["uuid"] for r in rows], [r["login"] for r in rows])
    refused = [r["uuid"] for r in rows if r["uuid"] in here or r["login"] in taken]
    for row in rows:
        if row["uuid"] not in refused:
            insert_user(conn, row)
    return refused


def insert_new_flows(conn: Conn, rows: list[tuple[FlowRow, str | None]], now: int) -> list[str]:
    here, chats = existing_flows(conn, [r["uuid"] for r, _ in rows],
                                 [key for _, key in rows if key])
    refused = [r["uuid"] for r, key in rows if r["uuid"] in here or key in chats]
    for row, key in rows:
        if row["uuid"] not in refused:
            insert_flow(conn, row, key, now)
    return refused


def insert_new_messages(conn: Conn, rows: list[MessageRow], now: int,
                        files: Mapping[str, tuple[str, MediaRow]] | None = None,
                        describe: Describe | None = None) -> list[str]:
    here = existing_messages(conn, [r["uuid"] for r in rows])
    insert_messages(conn, [r for r in rows if r["uuid"] not in here], now, files, describe)
    return sorted(here)
