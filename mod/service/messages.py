"""Messages: sending, reading a flow's history, editing, deleting.

Each write checks its rights (`rights`) in the same writer job, returns what it committed
with the change-log position of its change, and is retry-safe when given a retry key: the
first run records its result under the key (table `txns`, for `RETRY_WINDOW`), and a retry
returns that result instead of writing again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from mod import lib
from mod.changes import Kind
from mod.config.validator import Settings
from mod.content import CONTENT_FIELDS
from mod.db import dbhandler as db
from mod.db import media as mediadb
from mod.db.engine import Conn, Engine
from mod.error import ServiceError
from mod.records import ENCRYPTED_TEXT
from mod.service import rights
from mod.service.common import RETRY_WINDOW, Caller, Committed, logged_since, now, retry_key
from mod.service.media import FILE_TYPES, Media
from mod.service.records import Message

_FILE_FIELDS = frozenset(FILE_TYPES)  # a message holding one of these may carry a file
DELETED_TEXT = "Message deleted"


@dataclass(slots=True, frozen=True)
class MessagePage:
    """Messages of a flow as the JSON text of their list, oldest first."""

    json: str
    count: int
    total: int | None  # all the flow's messages, when this is only a page of them


class Messages:
    def __init__(self, settings: Settings, engine: Engine, media: Media) -> None:
        self.settings = settings
        self.engine = engine
        self.media = media

    async def send(self, caller: Caller, flow_uuid: str, client_id: int,
                   content: dict[str, str], txn: str | None = None,
                   extra: dict[str, Any] | None = None, encrypted: bool = False,
                   media: str = "", reply_to: str = "", mentions: Sequence[str] = (),
                   mention_logins: Sequence[str] = (), file_name: str = "",
                   file_type: str = "") -> Committed[Message]:
        """Store a message. Retry-safe: by the client's transaction ID `txn` when given,
        else (MTP) by the same client_id, flow and content with the same token. Only an
        `encrypted` one (Matrix ciphertext, kept in `extra`; its text is ENCRYPTED_TEXT) goes
        into an end-to-end encrypted flow. An MTP file (`file_*`, base64) is put in the media
        store and shows in Matrix as its `mxc://` URL; `media` names the stored file a Matrix
        message refers to. `reply_to` names the message of the same flow it answers (404 if
        there is none); `mentions` (uuids) and `mention_logins` the users it names, of whom
        the flow's members are kept (at most `[PROTOCOL] MENTIONS_LIMIT`: 400)."""
        limit = self.settings.protocol.mentions_limit
        if len(mentions) + len(mention_logins) > limit:
            raise ServiceError(400, f"A message names at most {limit} users")
        if encrypted:
            content = {"text": ENCRYPTED_TEXT}
        elif extra is None and not _FILE_FIELDS.isdisjoint(content):
            # Checked first, so a refused send leaves no file (the write checks again).
            await self.engine.read(_may_send, caller, flow_uuid)
            stored = await self.media.from_mtp(caller, content, file_name, file_type)
            if stored is not None:
                media, matrix = stored
                extra = {"mx": {"content": matrix}}
        file = ("", "")
        if media and extra is not None and isinstance(extra["mx"].get("content"), dict):
            file = self.media.file_of(extra["mx"]["content"])
        if txn is None:
            key = retry_key("send", caller.token_hash, flow_uuid, str(client_id),
                            *(content.get(field, "") for field in CONTENT_FIELDS),
                            *((reply_to,) if reply_to else ()), *mentions)
        else:
            key = retry_key("txn", caller.token_hash, flow_uuid, "send", txn)
        return await self.engine.write(_send, caller, flow_uuid, lib.new_uuid(), client_id,
                                       content, now(), key, extra, encrypted, media, reply_to,
                                       (tuple(mentions), tuple(mention_logins)), file)

    async def page(self, caller: Caller, flow_uuid: str, start: int | None, end: int | None,
                   since: int = 0, replies: bool = False, reactions: bool = False,
                   mentions: bool = False, files: bool = False) -> MessagePage:
        """A flow's messages, oldest first, and the total when only a page is returned;
        with `replies`, each with its `reply_to`; with `reactions`, its `reactions`; with
        `mentions`, its `mentions`; with `files`, its file's `file_name` and `file_type`."""
        if (start is not None and start < 0) or (end is not None and end < 0):
            raise ServiceError(400, "message_start and message_end cannot be negative")
        return await self.engine.read(_page, caller, flow_uuid, start, end, since,
                                      self.settings.protocol.messages_limit,
                                      (replies, reactions, mentions, files))

    async def edit(self, caller: Caller, message_uuid: str, text: str, flow_uuid: str = "",
                   txn: str | None = None, extra: dict[str, Any] | None = None
                   ) -> Committed[Message]:
        """Replace a message's text. With `flow_uuid`, the message must be in that flow
        (404 otherwise); with `txn`, retry-safe by the client's transaction ID."""
        key = None if txn is None else retry_key("txn", caller.token_hash, flow_uuid, "edit",
                                                 txn)
        return await self.engine.write(_change, caller, message_uuid, flow_uuid,
                                       Kind.MESSAGE_EDITED, {"text": text}, now(), key, extra)

    async def delete(self, caller: Caller, message_uuid: str, flow_uuid: str = "",
                     txn: str | None = None, extra: dict[str, Any] | None = None
                     ) -> Committed[Message]:
        """Delete a message (its content cleared), as `edit` names it."""
        key = None if txn is None else retry_key("txn", caller.token_hash, flow_uuid, "delete",
                                                 txn)
        cleared = {"text": DELETED_TEXT, **{field: "" for field in CONTENT_FIELDS[1:]}}
        return await self.engine.write(_change, caller, message_uuid, flow_uuid,
                                       Kind.MESSAGE_DELETED, cleared, now(), key, extra)

    async def get(self, caller: Caller, message_uuid: str) -> Message:
        """A message of a flow the caller may read."""
        return await self.engine.read(_readable_message, caller, message_uuid)


def _repeat(conn: Conn, key: str, stamp: int) -> Committed[Message] | None:
    """What the first run of a retried write committed, if it was within the window."""
    earlier = db.txn_result(conn, key, stamp - RETRY_WINDOW)
    if earlier is None:
        return None
    position, _, uuid = earlier.partition(" ")
    message = db.message_by_uuid(conn, uuid)
    return Committed(message, int(position)) if message is not None else None


def _remember(conn: Conn, key: str | None, stamp: int, done: Committed[Message]
              ) -> Committed[Message]:
    if key is not None:
        db.txn_store(conn, key, f"{done.position} {done.value['uuid']}", stamp)
    return done


def _may_send(conn: Conn, caller: Caller, flow_uuid: str) -> None:
    flow = rights.access(conn, flow_uuid, caller)
    rights.send(flow, caller)
    rights.plaintext(flow)


def _send(conn: Conn, caller: Caller, flow_uuid: str, uuid: str, client_id: int,
          content: dict[str, str], stamp: int, key: str, extra: dict[str, Any] | None,
          encrypted: bool, media: str, reply_to: str,
          named: tuple[tuple[str, ...], tuple[str, ...]], file: tuple[str, str]
          ) -> Committed[Message]:
    earlier = _repeat(conn, key, stamp)
    if earlier is not None:
        return earlier
    flow = rights.access(conn, flow_uuid, caller)
    rights.send(flow, caller)
    if not encrypted:
        rights.plaintext(flow)
    if reply_to:
        answered = db.message_state(conn, reply_to)
        if answered is None or answered[0]["from_flow"] != flow_uuid:
            raise ServiceError(404, f"No message {reply_to} in this flow to reply to")
    mark = len(conn.changes)
    message = db.insert_message(conn, uuid, flow_uuid, caller.uuid, client_id, content, stamp,
                                extra, reply_to, _members_named(conn, flow_uuid, *named), file)
    if media:
        mediadb.add_ref(conn, media, mediadb.MESSAGE, uuid)
    return _remember(conn, key, stamp, Committed(message, logged_since(conn, mark)))


def _members_named(conn: Conn, flow_uuid: str, uuids: tuple[str, ...],
                   logins: tuple[str, ...]) -> list[str]:
    """Of the users named by uuid or login, the flow's members, in the order named."""
    if not uuids and not logins:
        return []
    found = [*uuids, *(user["uuid"] for login in logins
                       if (user := db.user_by_login(conn, login)) is not None)]
    members = set(db.flow_members(conn, flow_uuid))
    return [uuid for uuid in dict.fromkeys(found) if uuid in members]


def _change(conn: Conn, caller: Caller, message_uuid: str, flow_uuid: str, kind: Kind,
            content: dict[str, str], stamp: int, key: str | None,
            extra: dict[str, Any] | None) -> Committed[Message]:
    if key is not None:
        earlier = _repeat(conn, key, stamp)
        if earlier is not None:
            return earlier
    found = db.message_state(conn, message_uuid)
    if found is None or (flow_uuid and found[0]["from_flow"] != flow_uuid):
        raise ServiceError(404, f"No message {message_uuid}")
    message, deleted = found
    flow = rights.access(conn, message["from_flow"], caller)
    check = rights.edit if kind == Kind.MESSAGE_EDITED else rights.delete
    check(flow, caller, message, deleted)
    if kind == Kind.MESSAGE_EDITED:
        rights.plaintext(flow)
    mark = len(conn.changes)
    changed = db.update_message(conn, message_uuid, caller.uuid, content, stamp, kind, extra)
    if kind == Kind.MESSAGE_DELETED:
        mediadb.drop_refs(conn, mediadb.MESSAGE, message_uuid)
    return _remember(conn, key, stamp, Committed(changed, logged_since(conn, mark)))


def _readable_message(conn: Conn, caller: Caller, message_uuid: str) -> Message:
    message = db.message_by_uuid(conn, message_uuid)
    if message is None:
        raise ServiceError(404, f"No message {message_uuid}")
    rights.read(rights.access(conn, message["from_flow"], caller), caller)
    return message


def _page(conn: Conn, caller: Caller, flow_uuid: str, start: int | None, end: int | None,
          since: int, limit: int, fields: tuple[bool, bool, bool, bool]) -> MessagePage:
    rights.read(rights.access(conn, flow_uuid, caller), caller)
    total = db.count_messages(conn, flow_uuid, since)
    if start is None and end is None and total <= limit:
        return MessagePage(db.messages_page_json(conn, flow_uuid, 0, limit, since, *fields),
                           total, None)
    first = start or 0
    last = end if end is not None else first + limit
    if last < first:
        raise ServiceError(400, "message_end is before message_start")
    if last - first > limit:
        raise ServiceError(403, f"At most {limit} messages can be read at once")
    shown = max(0, min(last, total) - first)
    return MessagePage(db.messages_page_json(conn, flow_uuid, first, last - first, since,
                                             *fields), shown, total)
