"""Pydantic models of MTP frames: requests as clients send them, responses as the server sends.

Requests ignore unknown keys (clients written for older servers send extra ones); everything
the server sends forbids them, so a response can only carry what PROTOCOL.md defines.
"""

from __future__ import annotations

import base64
from contextvars import ContextVar
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PrivateAttr

from mod.changes import Kind

PROTOCOL_VERSION = "1.0"
PROTOCOL_REVISION = "17"
# What this server offers beyond the original protocol that a connection asks for by name in a
# request's `meta.extensions` (PROTOCOL.md, "Extensions a connection asks for"). The `typing`
# extension is named after the change kind it pushes.
TYPING = str(Kind.TYPING)
REPLIES = "replies"  # messages carry `reply_to`
REACTIONS = "reactions"  # messages carry `reactions`; reaction changes are pushed
READ = "read"  # flows carry the caller's read state; its changes are pushed
MENTIONS = "mentions"  # messages carry `mentions`
FILES = "files"  # messages carry their file's `file_name` and `file_type`
EXTENSIONS = (TYPING, REPLIES, REACTIONS, READ, MENTIONS, FILES)
# The message fields an extension adds to the stored message, which connections without it
# never see.
EXTENSION_FIELDS = {REPLIES: ("reply_to",), MENTIONS: ("mentions",),
                    FILES: ("file_name", "file_type")}

# Strict: a field of the wrong JSON type ("5" or true for an integer, 1 for a string) makes
# the request invalid (415) instead of being converted.
_IN = ConfigDict(extra="ignore", strict=True)
_OUT = ConfigDict(extra="forbid")

# Generous bounds on what one request may carry, far above any honest client.
_TEXT = 16 * 1024 * 1024
_LIST = 10_000
Uuid = Field(default=None, max_length=64)
# The database keeps 64-bit integers.
Int64 = Annotated[int, Field(ge=-(2**63), lt=2**63)]


def _byte_string(value: Any) -> Any:
    """A byte field as the Flutter client sends it, an array of byte values, as base64.

    Strings (and null) pass unchanged; anything else is left for the strict string check to
    refuse, naming the field.
    """
    if type(value) is not list:
        return value
    if not all(type(item) is int and 0 <= item <= 255 for item in value):
        raise ValueError("must be a string, or an array of byte values (integers 0 to 255)")
    return base64.b64encode(bytes(value)).decode("ascii")


def _user_uuids(value: Any) -> Any:
    """`flow.users` may hold user objects (as json_serializable writes them) for uuids."""
    if type(value) is not list:
        return value
    return [item.get("uuid") if type(item) is dict else item for item in value]


# file_*, emoji and avatar: a string, or an array of byte values stored as its base64.
Bytes = Annotated[Annotated[str, Field(max_length=_TEXT)] | None, BeforeValidator(_byte_string)]


class _In(BaseModel):
    """A request object: strict types. (Strings with NUL, which PostgreSQL cannot store, are
    refused before validation: see mod.protocol.mtp.dispatch.)"""

    model_config = _IN


class UserIn(_In):
    uuid: str | None = Uuid
    login: str | None = Field(default=None, max_length=256)
    password: str | None = Field(default=None, max_length=4096)
    username: str | None = Field(default=None, max_length=256)
    bio: str | None = Field(default=None, max_length=65536)
    avatar: Bytes = None
    email: str | None = Field(default=None, max_length=256)
    is_bot: bool | None = None
    auth_id: str | None = Field(default=None, max_length=256)
    token_ttl: Int64 | None = None
    time_created: Int64 | None = None
    # register_user, when [SECURITY] REGISTRATION = token (an extension)
    registration_token: str | None = Field(default=None, max_length=256)
    # change_password (an extension)
    new_password: str | None = Field(default=None, max_length=4096)
    end_other_sessions: bool | None = None


class FlowIn(_In):
    uuid: str | None = Uuid
    time: Int64 | None = None
    type: str | None = Field(default=None, max_length=32)
    title: str | None = Field(default=None, max_length=4096)
    info: str | None = Field(default=None, max_length=65536)
    owner: str | None = Uuid
    users: Annotated[
        Annotated[list[Annotated[str, Field(max_length=64)]], Field(max_length=_LIST)] | None,
        BeforeValidator(_user_uuids)] = None
    message_start: Int64 | None = None
    message_end: Int64 | None = None
    private: bool | None = None
    typing: bool | None = None  # the `typing` method (an extension)


class MessageIn(_In):
    uuid: str | None = Uuid
    client_id: int | None = Field(default=None, ge=-(2**63), lt=2**63)
    text: str | None = Field(default=None, max_length=_TEXT)
    from_user: str | None = Uuid
    from_flow: str | None = Uuid
    time: Int64 | None = None
    file_picture: Bytes = None
    file_video: Bytes = None
    file_audio: Bytes = None
    file_document: Bytes = None
    emoji: Bytes = None
    edited_time: Int64 | None = None
    edited_status: bool | None = None
    reply_to: str | None = Uuid  # send_message: the message it answers (an extension)
    # send_message: the uuids of the members it names (an extension)
    mentions: list[Annotated[str, Field(max_length=64)]] | None = Field(default=None,
                                                                         max_length=_LIST)
    reaction: str | None = Field(default=None, max_length=256)  # the `react` method
    # send_message: the name and MIME type of its file (an extension)
    file_name: str | None = Field(default=None, max_length=255)
    file_type: str | None = Field(default=None, max_length=255)
    remove: bool | None = None  # `react`: take the reaction back


class SearchIn(_In):
    """`search_messages` (an extension): what to look for, and which page of results. The
    text's bounds are the server's settings (`[SEARCH]`), checked by the service."""

    text: str | None = Field(default=None, max_length=65536)
    order: str | None = Field(default=None, max_length=16)
    limit: Int64 | None = None
    next_batch: str | None = Field(default=None, max_length=64)


class DataIn(_In):
    time: int | None = Field(default=None, ge=0, lt=2**63)
    flow: list[FlowIn] | None = Field(default=None, max_length=_LIST)
    message: list[MessageIn] | None = Field(default=None, max_length=_LIST)
    user: list[UserIn] | None = Field(default=None, max_length=_LIST)
    search: SearchIn | None = None
    meta: Any = None


class JsonapiIn(_In):
    version: str = Field(max_length=16)
    revision: str | None = Field(default=None, max_length=16)


class RequestMeta(_In):
    """A request's top-level `meta`: `push` switches pushes on or off for the connection;
    `extensions` names those of EXTENSIONS the connection wants."""

    push: bool | None = None
    extensions: list[Annotated[str, Field(max_length=64)]] | None = Field(default=None,
                                                                          max_length=32)


class Request(_In):
    type: str = Field(max_length=64)
    data: DataIn | None = None
    jsonapi: JsonapiIn
    errors: Any = None
    meta: RequestMeta | None = None


# The extensions in force for the request being answered: those it names, else its
# connection's. The dispatcher sets them in the task that answers it (one request at a time
# per connection), so the methods read them without every method taking them.
GRANTED: ContextVar[frozenset[str]] = ContextVar("granted", default=frozenset())


def wants(extension: str) -> bool:
    """Whether the request being answered has this extension."""
    return extension in GRANTED.get()


class UserOut(BaseModel):
    model_config = _OUT

    uuid: str
    login: str | None = None
    username: str | None = None
    bio: str | None = None
    avatar: str | None = None
    email: str | None = None
    is_bot: bool | None = None
    auth_id: str | None = None
    token_ttl: int | None = None
    time_created: int | None = None


class FlowOut(BaseModel):
    model_config = _OUT

    uuid: str
    time: int | None = None
    type: str | None = None
    title: str | None = None
    info: str | None = None
    owner: str | None = None
    users: list[str] | None = None
    message_start: int | None = None
    message_end: int | None = None
    private: bool | None = None
    typing: list[str] | None = None  # the `typing` extension's pushes: who types now
    # the `read` extension: the last message read, and the unread ones (mentioning the caller)
    read: str | None = None
    unread: int | None = None
    mentions: int | None = None


class ReactionOut(BaseModel):
    """One key's reactions to a message: the key and the uuids of who used it."""

    model_config = _OUT

    key: str
    users: list[str]


class MessageOut(BaseModel):
    model_config = _OUT

    uuid: str
    client_id: int | None = None
    text: str | None = None
    from_user: str | None = None
    from_flow: str | None = None
    time: int | None = None
    file_picture: str | None = None
    file_video: str | None = None
    file_audio: str | None = None
    file_document: str | None = None
    emoji: str | None = None
    edited_time: int | None = None
    edited_status: bool | None = None
    deleted: bool | None = None  # an extension: true once delete_message has cleared it
    reply_to: str | None = None  # the `replies` extension: the message it answers
    reactions: list[ReactionOut] | None = None  # the `reactions` extension
    mentions: list[str] | None = None  # the `mentions` extension: the members it names
    file_name: str | None = None  # the `files` extension: its file's name and type
    file_type: str | None = None


class SearchOut(BaseModel):
    """What `search_messages` found besides the messages: how many there are in all (by
    rank; not counted newest first), the token of the next page (none: the last page), and
    the words a client may highlight (lower case)."""

    model_config = _OUT

    count: int | None = None
    next_batch: str | None = None
    highlights: list[str]


class DataOut(BaseModel):
    model_config = _OUT

    time: int
    flow: list[FlowOut] | None = None
    message: list[MessageOut] | None = None
    user: list[UserOut] | None = None
    search: SearchOut | None = None
    meta: None = None


class Errors(BaseModel):
    model_config = _OUT

    code: int
    status: str
    time: int
    detail: str


class JsonapiOut(BaseModel):
    model_config = _OUT

    version: str = PROTOCOL_VERSION
    revision: str = PROTOCOL_REVISION


class PushMeta(BaseModel):
    model_config = _OUT

    push: bool = True
    event: str


class AnswerMeta(BaseModel):
    """The answer to a request that named extensions: those this server granted."""

    model_config = _OUT

    extensions: list[str]


class Response(BaseModel):
    """Every frame the server sends: all five keys, always."""

    model_config = _OUT

    type: str
    data: DataOut | None
    errors: Errors
    jsonapi: JsonapiOut
    meta: PushMeta | AnswerMeta | None

    _text: str | None = PrivateAttr(default=None)

    def dump(self) -> str:
        # Unset optional keys of the inner objects are left out; the envelope's five keys and
        # data's `time` and `meta` are always set, so they always appear. The text is made
        # once (a response is not changed after its first dump), so a large one can be
        # rendered off the event loop beforehand.
        if self._text is None:
            self._text = self.model_dump_json(exclude_unset=True)
        return self._text

    def with_raw(self, key: str, json_text: str) -> Response:
        """Put a list the database already rendered as JSON under data[key] (left empty)."""
        text = self.model_dump_json(exclude_unset=True)
        empty = f'"{key}":[]'
        assert self.data is not None and text.count(empty) == 1, key
        self._text = text.replace(empty, f'"{key}":{json_text}', 1)
        return self
