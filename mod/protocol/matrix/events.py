"""Change-log rows rendered as Matrix events.

One change renders as the same events every time (same IDs, same content), so a room's
timeline is the change log of its flow, and its state is the state events of that timeline
replayed. A new flow renders as the events a Matrix room starts with (create, creator's
membership, power levels, join rules, history visibility, name, topic, other members).

Messages that Matrix clients sent keep their full content and transaction ID in the change's
payload under "mx" (MTP ignores unknown payload keys); MTP messages render as `m.text`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mod import changes as kinds
from mod import content
from mod.changes import Change, Kind, payload_of
from mod.hub import skipped
from mod.protocol.matrix import ids
from mod.protocol.matrix.api import Event
from mod.protocol.matrix.mtptext import mtp_body, text_content
from mod.service import Flow, People, User

ROOM_VERSION = "10"
NOBODY = People({}, {})
MEMBERSHIP: dict[str, str] = {Kind.FLOW_JOINED: "join", Kind.FLOW_LEFT: "leave",
                              Kind.FLOW_INVITED: "invite", Kind.INVITE_DECLINED: "leave"}

# Fixed indices of the events a new flow renders as; other members follow from MEMBERS_FROM.
CREATE, CREATOR, POWER, JOIN_RULES, HISTORY, NAME, TOPIC, MEMBERS_FROM = range(8)


def join_rule(flow: Mapping[str, Any]) -> str:
    """`invite` for an invite-only flow (a chat always, also one logged before the flag
    existed), else `public`."""
    return "invite" if flow.get("private") or flow["type"] == "chat" else "public"


def token_digest(token_hash: str) -> str:
    """A short, one-way tag of an access token, kept with the events it sent."""
    return hashlib.sha256(("matrix-txn:" + token_hash).encode()).hexdigest()[:16]


@dataclass(slots=True)
class Parsed:
    change: Change
    payload: dict[str, Any]


# A stored payload nests the content a client sent two levels down ("mx", "content").
PAYLOAD_DEPTH = content.MAX_DEPTH + 4


def parse(changes: Iterable[Change]) -> list[Parsed]:
    """The changes whose payload can be rendered; any other is logged once and left out
    (rows stored before the door checked content, or written by hand)."""
    parsed = []
    for change in changes:
        try:
            payload = content.readable(change.payload, PAYLOAD_DEPTH)
        except ValueError as exc:
            skipped(change, exc, "Matrix")
            continue
        try:
            payload_of(change.kind, payload)  # holds what rendering its kind reads
        except ValueError:
            skipped(change, "its payload lacks what a change of its kind holds", "Matrix")
            continue
        parsed.append(Parsed(change, payload))
    return parsed


def users_named(items: Iterable[Parsed]) -> set[str]:
    """The user uuids rendering these changes needs."""
    found: set[str] = set()
    for item in items:
        found.add(item.change.actor)
        if item.change.kind in MEMBERSHIP:
            found.add(item.change.subject)
        message = item.payload.get("message")
        if isinstance(message, dict) and isinstance(message.get("mentions"), list):
            found.update(message["mentions"])
        flow = item.payload.get("flow")
        if flow is not None and item.change.kind == Kind.FLOW_CREATED:
            found.add(flow["owner"])
            found.update(flow["users"])
    found.discard("")
    return found


def event_count(item: Parsed) -> int:
    """How many events a change renders as (without rendering it)."""
    kind = item.change.kind
    if kind == Kind.FLOW_CREATED:
        flow = item.payload["flow"]
        return MEMBERS_FROM - 2 + bool(flow["title"]) + bool(flow["info"]) + len(
            [user for user in flow["users"] if user != flow["owner"]])
    if kind == Kind.FLOW_CHANGED:
        return 2
    if kind == Kind.FLOW_ENCRYPTED:
        return 1
    return 1 if kind in MEMBERSHIP or kind in kinds.MESSAGE_KINDS or kind in kinds.REACTIONS \
        or kind in (Kind.ROOM_EVENT, Kind.PROFILE_CHANGED) else 0


def fitting(items: Sequence[Parsed], limit: int) -> int:
    """How many of these changes, from the first, fit in `limit` events. The first always
    fits (a room's creation stays whole), unless the limit is 0."""
    count = total = 0
    for item in items:
        size = event_count(item)
        if limit <= 0 or (count and total + size > limit):
            break
        count, total = count + 1, total + size
    return count


@dataclass
class Renderer:
    """Renders changes for one reader: `viewer` tags the token asking, for transaction IDs."""

    server: str
    viewer: str = ""
    users: dict[str, User] = field(default_factory=dict)
    avatars: dict[str, str] = field(default_factory=dict)  # user uuid -> avatar media ID
    # message uuid -> the redaction event of it, for showing redacted messages as such
    redactions: dict[str, Event] = field(default_factory=dict)
    # what `load_users` takes users from
    people: People = NOBODY

    def load_users(self, uuids: Iterable[str]) -> None:
        """Take these users (and their avatars) from the snapshot's `people`."""
        for uuid in uuids:
            if uuid in self.users:
                continue
            user = self.people.users.get(uuid)
            if user is not None:
                self.users[uuid] = user
            avatar = self.people.avatars.get(uuid)
            if avatar is not None:
                self.avatars[uuid] = avatar

    def load_redactions(self, flow_uuid: str, items: Sequence[Parsed],
                        deletions: Iterable[Change]) -> None:
        """Note which of these messages a later deletion (of the snapshot's) redacted, to
        render them as such: deletions in the flow after the first of them."""
        sent = [item for item in items if item.change.kind == Kind.MESSAGE_SENT]
        if not sent:
            return
        subjects = {item.change.subject for item in sent}
        after = sent[0].change.position
        for item in parse(change for change in deletions
                          if change.flow_uuid == flow_uuid and change.position > after
                          and change.kind == Kind.MESSAGE_DELETED and change.subject in subjects):
            change = item.change
            self.load_users([change.actor])
            self.redactions.setdefault(change.subject, self._redaction(item))

    # -- names ------------------------------------------------------------------------------

    def user_id(self, uuid: str) -> str:
        user = self.users.get(uuid)
        if user is None or user.deleted:
            return ids.deleted_user_id(uuid, self.server)
        return ids.user_id(user.login, self.server)

    def displayname(self, uuid: str) -> str:
        user = self.users.get(uuid)
        return user.username if user is not None and not user.deleted else "User deleted"

    # -- events -----------------------------------------------------------------------------

    def events(self, item: Parsed) -> list[Event]:
        kind = item.change.kind
        if kind == Kind.MESSAGE_SENT:
            return [self._message(item)]
        if kind == Kind.MESSAGE_EDITED:
            return [self._edit(item)]
        if kind in (Kind.MESSAGE_DELETED, Kind.REACTION_REMOVED):
            return [self._redaction(item)]
        if kind == Kind.FLOW_CREATED:
            return self._created(item)
        if kind in MEMBERSHIP:
            return [self._membership(item)]
        if kind == Kind.PROFILE_CHANGED:  # a new name or avatar: a new member event, as Synapse
            return [self._member(item, None, item.change.subject, "join", item.change.subject)]
        if kind == Kind.FLOW_ENCRYPTED:
            return [self._state(item, None, "m.room.encryption", item.payload["content"])]
        if kind == Kind.FLOW_CHANGED:
            flow = item.payload["flow"]
            return [self._state(item, 0, "m.room.name", {"name": flow["title"]}),
                    self._state(item, 1, "m.room.topic", {"topic": flow["info"]})]
        if kind == Kind.ROOM_EVENT:
            return [self._room_event(item)]
        if kind == Kind.REACTION_ADDED:
            return [self._reaction(item)]
        return []

    def all_events(self, items: Iterable[Parsed]) -> list[Event]:
        return [event for item in items for event in self.events(item)]

    def _base(self, item: Parsed, event_id: str, kind: str, sender: str,
              content: dict[str, Any]) -> Event:
        stamp = (item.payload.get("mx") or {}).get("ts") or item.change.time * 1000
        return {"type": kind, "event_id": event_id, "sender": self.user_id(sender),
                "origin_server_ts": stamp, "content": content,
                "room_id": ids.room_id(item.change.flow_uuid, self.server)}

    def _state(self, item: Parsed, index: int | None, kind: str, content: dict[str, Any],
               state_key: str = "", sender: str | None = None) -> Event:
        event = self._base(item, ids.change_event_id(item.change.position, index), kind,
                           sender or item.change.actor, content)
        event["state_key"] = state_key
        return event

    def _created(self, item: Parsed) -> list[Event]:
        flow = item.payload["flow"]
        owner = flow["owner"]
        events = [
            self._state(item, CREATE, "m.room.create",
                        {"creator": self.user_id(owner), "room_version": ROOM_VERSION}),
            self._member(item, CREATOR, owner, "join", owner),
            self._state(item, POWER, "m.room.power_levels", self.power_levels(flow)),
            self._state(item, JOIN_RULES, "m.room.join_rules", {"join_rule": join_rule(flow)}),
            self._state(item, HISTORY, "m.room.history_visibility",
                        {"history_visibility": "shared"}),
        ]
        if flow["title"]:
            events.append(self._state(item, NAME, "m.room.name", {"name": flow["title"]}))
        if flow["info"]:
            events.append(self._state(item, TOPIC, "m.room.topic", {"topic": flow["info"]}))
        others = [user for user in flow["users"] if user != owner]
        for offset, user in enumerate(others):
            events.append(self._member(item, MEMBERS_FROM + offset, user, "join", user))
        return events

    def power_levels(self, flow: Flow) -> dict[str, Any]:
        """Power levels that say what the service's rules allow (PROTOCOL.md)."""
        kind = flow["type"]
        editors = 0 if kind == "group" else 50
        return {
            "users": {self.user_id(flow["owner"]): 100}, "users_default": 0,
            "events": {"m.room.name": editors, "m.room.topic": editors,
                       "m.room.encryption": editors,
                       "m.room.power_levels": 100, "m.room.join_rules": 100,
                       "m.room.history_visibility": 100},
            "events_default": 50 if kind == "channel" else 0, "state_default": 100,
            "invite": {"group": 0, "channel": 50}.get(kind, 100),
            "kick": 100, "ban": 100, "redact": 50,
        }

    def _member(self, item: Parsed, index: int | None, user: str, membership: str,
                sender: str) -> Event:
        content: dict[str, Any] = {"membership": membership}
        if membership != "leave":
            content["displayname"] = self.displayname(user)
            row, avatar = self.users.get(user), self.avatars.get(user)
            if avatar and row is not None and not row.deleted:
                content["avatar_url"] = f"mxc://{self.server}/{avatar}"
        return self._state(item, index, "m.room.member", content, self.user_id(user), sender)

    def _membership(self, item: Parsed) -> Event:
        change = item.change
        event = self._member(item, None, change.subject, MEMBERSHIP[change.kind], change.actor)
        if change.kind == Kind.FLOW_INVITED and item.payload.get("is_direct"):
            event["content"]["is_direct"] = True
        return event

    def _room_event(self, item: Parsed) -> Event:
        """An event kept as it came (a reaction, any custom type)."""
        extra = item.payload["mx"]
        event = self._base(item, ids.change_event_id(item.change.position), extra["type"],
                           item.change.actor, extra["content"])
        if extra["type"] == "m.room.redaction" and isinstance(extra["content"].get("redacts"),
                                                              str):
            event["redacts"] = extra["content"]["redacts"]
        self._transaction(item, event)
        return event

    def _reaction(self, item: Parsed) -> Event:
        """A reaction: as a Matrix client sent it, or (from MTP) an `m.annotation`."""
        reaction = item.payload["reaction"]
        extra = item.payload.get("mx") or {}
        content = extra.get("content") or {"m.relates_to": {
            "rel_type": "m.annotation", "event_id": ids.message_event_id(reaction["message"]),
            "key": reaction["key"]}}
        event = self._base(item, ids.change_event_id(item.change.position), "m.reaction",
                           item.change.actor, content)
        self._transaction(item, event)
        return event

    def _transaction(self, item: Parsed, event: Event) -> None:
        """The sender's own transaction ID, to the device that sent it."""
        extra = item.payload.get("mx") or {}
        if self.viewer and extra.get("tok") == self.viewer and "txn" in extra:
            event["unsigned"] = {"transaction_id": extra["txn"]}

    def _message(self, item: Parsed) -> Event:
        message = item.payload["message"]
        extra = item.payload.get("mx") or {}
        content = extra.get("content") or text_content(mtp_body(message))
        if message.get("reply_to") and "m.relates_to" not in content:  # an MTP reply
            content = {**content, "m.relates_to": {"m.in_reply_to": {
                "event_id": ids.message_event_id(message["reply_to"])}}}
        if message.get("mentions") and "m.mentions" not in content:  # MTP's mentions
            content = {**content, "m.mentions": {
                "user_ids": [self.user_id(uuid) for uuid in message["mentions"]]}}
        event = self._base(item, ids.message_event_id(message["uuid"]),
                           extra.get("type") or "m.room.message", message["from_user"], content)
        unsigned: dict[str, Any] = {}
        if self.viewer and extra.get("tok") == self.viewer and "txn" in extra:
            unsigned["transaction_id"] = extra["txn"]
        redaction = self.redactions.get(message["uuid"])
        if redaction is not None:
            event["content"] = {}
            unsigned["redacted_because"] = redaction
        if unsigned:
            event["unsigned"] = unsigned
        return event

    def _edit(self, item: Parsed) -> Event:
        message = item.payload["message"]
        extra = item.payload.get("mx") or {}
        target = ids.message_event_id(message["uuid"])
        content = extra.get("content") or {
            **text_content("* " + message["text"]),
            "m.new_content": text_content(message["text"]),
            "m.relates_to": {"rel_type": "m.replace", "event_id": target},
        }
        event = self._base(item, ids.change_event_id(item.change.position), "m.room.message",
                           item.change.actor, content)
        self._transaction(item, event)
        return event

    def _redaction(self, item: Parsed) -> Event:
        """A deleted message, or a reaction taken back: the redaction of its event."""
        reaction = item.payload.get("reaction")
        target = ids.change_event_id(reaction["redacts"]) if reaction is not None \
            else ids.message_event_id(item.payload["message"]["uuid"])
        extra = item.payload.get("mx") or {}
        reason = extra.get("reason") or (extra.get("content") or {}).get("reason")
        content: dict[str, Any] = {"redacts": target, **({"reason": reason} if reason else {})}
        event = self._base(item, ids.change_event_id(item.change.position), "m.room.redaction",
                           item.change.actor, content)
        event["redacts"] = target
        self._transaction(item, event)
        return event

    # -- state ------------------------------------------------------------------------------

    def replay(self, items: Iterable[Parsed]) -> dict[tuple[str, str], Event]:
        """The room state these changes leave, keyed by (type, state_key)."""
        state: dict[tuple[str, str], Event] = {}
        for item in items:
            for event in self.events(item):
                if "state_key" in event:
                    state[(event["type"], event["state_key"])] = event
        return state

    def stripped(self, flow: Flow, inviter: str, invitee: str, direct: bool = False
                 ) -> list[Event]:
        """The stripped state an invited user sees of a room (`direct`: invited to a DM)."""

        def strip(kind: str, content: dict[str, Any], sender: str, key: str = "") -> Event:
            return {"type": kind, "state_key": key, "sender": self.user_id(sender),
                    "content": content}

        events = [
            strip("m.room.create", {"creator": self.user_id(flow["owner"]),
                                    "room_version": ROOM_VERSION}, flow["owner"]),
            strip("m.room.join_rules", {"join_rule": join_rule(flow)}, flow["owner"]),
        ]
        if flow["title"]:
            events.append(strip("m.room.name", {"name": flow["title"]}, flow["owner"]))
        if flow["info"]:
            events.append(strip("m.room.topic", {"topic": flow["info"]}, flow["owner"]))
        events.append(strip("m.room.member", {"membership": "join",
                                              "displayname": self.displayname(inviter)},
                            inviter, self.user_id(inviter)))
        invited: dict[str, Any] = {"membership": "invite",
                                   "displayname": self.displayname(invitee)}
        if direct:
            invited["is_direct"] = True
        events.append(strip("m.room.member", invited, inviter, self.user_id(invitee)))
        return events
