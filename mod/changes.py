"""The kinds of change-log entries, and the named sets of them every layer asks about.

A change-log entry (`Change`) stores its kind as the member's value, so the
database holds the same strings as before this module existed; a `Kind` compares equal to
its string. This is the only module that spells a kind out (tests/test_layout.py holds the
rest of `mod/` to that).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from pydantic_core import from_json


class Kind(StrEnum):
    """What one committed change did."""

    # messages (MTP and Matrix)
    MESSAGE_SENT = "message_sent"
    MESSAGE_EDITED = "message_edited"
    MESSAGE_DELETED = "message_deleted"
    REACTION_ADDED = "reaction_added"
    REACTION_REMOVED = "reaction_removed"
    # flows and their membership
    FLOW_CREATED = "flow_created"
    FLOW_JOINED = "flow_joined"
    FLOW_LEFT = "flow_left"
    FLOW_INVITED = "flow_invited"
    INVITE_DECLINED = "invite_declined"
    FLOW_CHANGED = "flow_changed"
    FLOW_ENCRYPTED = "flow_encrypted"
    FLOW_DELETED = "flow_deleted"
    # users
    PROFILE_CHANGED = "profile_changed"
    USER_CHANGED = "user_changed"
    TOKENS_REVOKED = "tokens_revoked"
    # the Matrix side only (mod.db.userdata)
    TYPING = "typing"
    RECEIPT = "receipt"
    PRIVATE_RECEIPT = "private_receipt"
    ACCOUNT_DATA = "account_data"
    ROOM_EVENT = "room_event"
    # end-to-end encryption: no flow, the payload's "users" names whom they concern
    DEVICE_KEYS_CHANGED = "device_keys_changed"
    ONE_TIME_KEYS_CHANGED = "one_time_keys_changed"
    TO_DEVICE = "to_device"


MESSAGE_KINDS = frozenset({Kind.MESSAGE_SENT, Kind.MESSAGE_EDITED, Kind.MESSAGE_DELETED})
# A reaction to a message added or taken back (subject: "m" and the message's uuid); pushed
# only to MTP connections that asked for the `reactions` extension.
REACTIONS = frozenset({Kind.REACTION_ADDED, Kind.REACTION_REMOVED})

# Pushed to MTP connections that asked for pushes; each is the frame's `meta.event`, as
# PROTOCOL.md lists them.
MTP_PUSHED = frozenset({
    *MESSAGE_KINDS,
    Kind.FLOW_CREATED, Kind.FLOW_JOINED, Kind.FLOW_LEFT, Kind.FLOW_CHANGED,
    Kind.FLOW_INVITED, Kind.INVITE_DECLINED, Kind.FLOW_DELETED,
})

# No MTP message or flow change, so get_update and MTP pushes pass them over. Those without
# a flow concern their subject alone.
MATRIX_ONLY = frozenset({Kind.TYPING, Kind.RECEIPT, Kind.PRIVATE_RECEIPT, Kind.ACCOUNT_DATA,
                         Kind.ROOM_EVENT})
# Of no flow, and told to their subject alone.
PERSONAL = frozenset({Kind.PRIVATE_RECEIPT, Kind.ACCOUNT_DATA})
# In a flow but on no timeline: read from memory or the receipts table, never paged.
EPHEMERAL = frozenset({Kind.TYPING, Kind.RECEIPT})
# What Matrix /sync carries outside the timeline (its `ephemeral` and `account_data`).
SIDELINE = frozenset({*EPHEMERAL, *PERSONAL})
# A user's receipts: where they have read up to (their payload's "read": the state after).
READ_RECEIPTS = frozenset({Kind.RECEIPT, Kind.PRIVATE_RECEIPT})
# A user's own message or room event ends their typing notice.
ENDS_TYPING = frozenset({Kind.MESSAGE_SENT, Kind.ROOM_EVENT})

# A flow's state: creation, membership, title and info, encryption, members' profiles.
STATE = frozenset({Kind.FLOW_CREATED, Kind.FLOW_JOINED, Kind.FLOW_LEFT, Kind.FLOW_INVITED,
                   Kind.INVITE_DECLINED, Kind.FLOW_CHANGED, Kind.FLOW_ENCRYPTED,
                   Kind.PROFILE_CHANGED})

# Users start or stop sharing a flow (device lists follow them). A deleted flow's members
# each leave it first, so `flow_deleted` adds nothing here.
SHARING = frozenset({Kind.FLOW_CREATED, Kind.FLOW_JOINED, Kind.FLOW_LEFT})
# After these a flow's member set, as cached by the hub, must be read again.
MEMBER_SET = frozenset({*SHARING, Kind.FLOW_DELETED})
# Told to their subject besides the flow's members (who left, was invited, or declined).
TOLD_SUBJECT = frozenset({Kind.FLOW_LEFT, Kind.FLOW_INVITED, Kind.INVITE_DECLINED})

# Of no flow; their payload's "users" names whom they concern (the hub delivers to them).
ADDRESSED = frozenset({Kind.DEVICE_KEYS_CHANGED, Kind.ONE_TIME_KEYS_CHANGED, Kind.TO_DEVICE})
# May alter what a device's /sync carries of its keys: key changes, and a membership change
# in a flow of the user's (`device_lists.changed` or `left`).
KEY_SYNC = frozenset({*ADDRESSED, *SHARING})


# -- payloads -----------------------------------------------------------------------------------
#
# A change-log row holds a JSON snapshot of what changed. `payload_of` reads it into the model
# of its kind once (`Change.data` keeps it), checking that it holds what the readers of its
# kind read; a payload that does not is a ValueError (rows stored before the checks, or by hand),
# which every reader treats as a change to pass over.


@dataclass(frozen=True, slots=True)
class MessagePayload:
    """message_sent, message_edited, message_deleted: the whole message as stored, and what
    a Matrix sender added ("mx")."""

    message: dict[str, Any]
    mx: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class FlowPayload:
    """flow_created, flow_changed, flow_joined, flow_left, flow_invited: the flow as stored
    (a created flow lists its members in `users`); who joined or left; whether an invitation
    is to a direct chat."""

    flow: dict[str, Any]
    user: dict[str, Any] | None
    is_direct: bool

    @property
    def members(self) -> list[str]:
        users = self.flow.get("users")
        return [user for user in users if isinstance(user, str)] if isinstance(users, list) \
            else []


@dataclass(frozen=True, slots=True)
class UsersPayload:
    """flow_deleted (its members, who have left it) and the addressed kinds
    (device_keys_changed, one_time_keys_changed, to_device): whom the change concerns."""

    users: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class RevokedPayload:
    """tokens_revoked: one token (its hash) or, None, all of the user's but `kept` (a
    password change keeps the changer's); `locked`: the operator locked the user (their
    connections close)."""

    token: str | None
    locked: bool
    kept: str | None = None

    def ends(self, token_hash: str) -> bool:
        """Whether the token with this hash is among those revoked."""
        return token_hash == self.token if self.token is not None else token_hash != self.kept


@dataclass(frozen=True, slots=True)
class TypingPayload:
    """typing: started (until when, ms) or stopped."""

    typing: bool
    until: int


@dataclass(frozen=True, slots=True)
class ContentPayload:
    """flow_encrypted (the m.room.encryption content) and room_event ("mx": the event's type
    and content), and the Matrix side's receipts and account data: JSON the Matrix renderers
    read as it is."""

    data: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ReactionPayload:
    """reaction_added, reaction_removed: the message, the key, its reactions after the change
    (`[{"key": ..., "users": [...]}]`), what a removal takes back (the position that added
    it), and what a Matrix sender sent ("mx")."""

    message: str
    key: str
    reactions: list[dict[str, Any]]
    redacts: int
    mx: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class EmptyPayload:
    """profile_changed, user_changed, invite_declined: actor and subject say it all."""


Payload = (MessagePayload | FlowPayload | UsersPayload | RevokedPayload | TypingPayload
           | ReactionPayload | ContentPayload | EmptyPayload)

FLOW_KINDS = frozenset({Kind.FLOW_CREATED, Kind.FLOW_CHANGED, Kind.FLOW_JOINED, Kind.FLOW_LEFT,
                        Kind.FLOW_INVITED})
EMPTY_KINDS = frozenset({Kind.PROFILE_CHANGED, Kind.USER_CHANGED, Kind.INVITE_DECLINED})


def _strings(value: Any, *keys: str) -> bool:
    return isinstance(value, dict) and all(isinstance(value.get(key), str) for key in keys)


def _user_list(value: Any) -> tuple[str, ...]:
    return tuple(user for user in value if isinstance(user, str)) \
        if isinstance(value, list) else ()


def _flow(kind: str, payload: dict[str, Any]) -> FlowPayload:
    flow: Any = payload.get("flow")
    if kind in (Kind.FLOW_CREATED, Kind.FLOW_INVITED):
        if not _strings(flow, "owner", "type", "title", "info"):
            raise ValueError(f"a {kind} change needs the flow's owner, type, title and info")
        users = flow.get("users") if kind == Kind.FLOW_CREATED else []
        if not isinstance(users, list) or not all(isinstance(user, str) for user in users):
            raise ValueError("a flow_created change needs the flow's users")
    elif kind == Kind.FLOW_CHANGED and not _strings(flow, "title", "info"):
        raise ValueError("a flow_changed change needs the flow's title and info")
    user = payload.get("user")
    return FlowPayload(flow if isinstance(flow, dict) else {},
                       user if isinstance(user, dict) else None,
                       bool(payload.get("is_direct")))


def _reaction(kind: str, payload: dict[str, Any], extra: dict[str, Any] | None
              ) -> ReactionPayload:
    reaction: Any = payload.get("reaction")
    if not _strings(reaction, "message", "key") or not isinstance(reaction.get("reactions"),
                                                                   list):
        raise ValueError(f"a {kind} change needs the message, the key and its reactions")
    redacts = reaction.get("redacts", 0)
    if kind == Kind.REACTION_REMOVED and not (isinstance(redacts, int) and redacts > 0):
        raise ValueError("a reaction_removed change names the position it takes back")
    return ReactionPayload(reaction["message"], reaction["key"], reaction["reactions"],
                           redacts, extra)


def payload_of(kind: str, payload: Any) -> Payload:
    """The model of a change's payload (its JSON, read), or ValueError when it lacks what a
    change of its kind holds."""
    if not isinstance(payload, dict):
        raise ValueError("a change's payload is a JSON object")
    extra = payload.get("mx")
    if extra is not None and not (isinstance(extra, dict)
                                  and isinstance(extra.get("content", {}), dict)):
        raise ValueError('a payload\'s "mx" is an object with an object "content"')
    if kind in MESSAGE_KINDS:
        needed = ("uuid", "from_user", "text", "emoji") if kind == Kind.MESSAGE_SENT \
            else ("uuid", "text")
        if not _strings(payload.get("message"), *needed):
            raise ValueError(f"a {kind} change needs the message's {', '.join(needed)}")
        return MessagePayload(payload["message"], extra)
    if kind in REACTIONS:
        return _reaction(kind, payload, extra)
    if kind in FLOW_KINDS:
        return _flow(kind, payload)
    if kind == Kind.FLOW_DELETED or kind in ADDRESSED:
        return UsersPayload(_user_list(payload.get("users")))
    if kind == Kind.TOKENS_REVOKED:
        token, kept = payload.get("token"), payload.get("kept")
        # anything but a hash revokes all: the safe reading
        return RevokedPayload(token if isinstance(token, str) else None,
                              payload.get("locked") is True,
                              kept if isinstance(kept, str) else None)
    if kind == Kind.TYPING:
        until = payload.get("until", 0)
        if not isinstance(until, int):
            raise ValueError("a typing notice lasts until a time in ms")
        return TypingPayload(bool(payload.get("typing")), until)
    if kind == Kind.FLOW_ENCRYPTED and not isinstance(payload.get("content"), dict):
        raise ValueError("a flow_encrypted change needs the m.room.encryption content")
    if kind == Kind.ROOM_EVENT and not (extra is not None and _strings(extra, "type")
                                        and isinstance(extra.get("content"), dict)):
        raise ValueError("a room_event change needs the event's type and content")
    if kind in EMPTY_KINDS:
        return EmptyPayload()
    return ContentPayload(payload)


@dataclass(slots=True, frozen=True)
class Change:
    """One entry of the change log, as committed: `payload` is its JSON text, `data` the
    model of its kind read from it (once per change: the hub hands one to every reader).
    `mod.db` builds them; every other layer holds them."""

    position: int
    time: int
    flow_uuid: str
    kind: str
    actor: str
    subject: str
    payload: str
    _data: Payload | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def data(self) -> Payload:
        """The payload's model; ValueError when it cannot be read or lacks what its kind
        holds (`changes.payload_of`)."""
        found = self._data
        if found is None:
            found = payload_of(self.kind, from_json(self.payload))
            object.__setattr__(self, "_data", found)
        return found
