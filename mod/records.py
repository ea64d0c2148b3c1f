"""A flow and a message as the database holds them and as both protocols send them: one
definition for storage (`db/`, which builds them) and the service (which hands them out)."""

from __future__ import annotations

from typing import NotRequired, TypedDict

# What MTP reads for an end-to-end encrypted message, which it cannot decrypt (PROTOCOL.md).
# The search index (`db/search.py`) leaves messages of this text out, in a schema step's
# triggers: changing it needs a step that makes them again.
ENCRYPTED_TEXT = ("🔒 Encrypted message: it is end-to-end encrypted and can be read only in a "
                  "Matrix client of its room")


class Flow(TypedDict):
    uuid: str
    time: int
    type: str
    title: str
    info: str
    owner: str
    users: list[str]
    private: bool  # invite-only: chats, and groups and channels made so


class ReactionGroup(TypedDict):
    """One key's reactions to a message: the key and who used it, in the order they did."""

    key: str
    users: list[str]


class Message(TypedDict):
    uuid: str
    client_id: int
    text: str
    from_user: str
    from_flow: str
    time: int
    file_picture: str
    file_video: str
    file_audio: str
    file_document: str
    emoji: str
    edited_time: int
    edited_status: bool
    deleted: bool
    reply_to: NotRequired[str]  # the uuid of the message it answers; absent when none
    reactions: NotRequired[list[ReactionGroup]]  # where asked for (MTP's `reactions`)
    mentions: NotRequired[list[str]]  # the uuids of the members it names; absent when none
    file_name: NotRequired[str]  # its file's name and MIME type; absent when not known
    file_type: NotRequired[str]
