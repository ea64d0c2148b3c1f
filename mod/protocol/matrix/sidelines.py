"""What /sync shows beside room timelines: typing notices and receipts (each joined room's
`ephemeral`), and account data (the top-level `account_data` and each room's).

An incremental sync renders the changes of these kinds in its batch ("typing", "receipt",
"private_receipt", "account_data"); typing is rendered as who is typing now (the service's
`Typing`, kept by every process from the change log), for every room whose typing set changed
since the client's last sync, also when a message ended a notice. An initial (or full-state)
sync renders everything kept: receipts, account data, who is typing.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pydantic_core import from_json

from mod import changes as kinds
from mod.changes import Kind
from mod.protocol.matrix import api, ids
from mod.protocol.matrix.api import Event, Events, JoinedRoom, SyncReply
from mod.protocol.matrix.context import Matrix
from mod.protocol.matrix.events import Parsed
from mod.service import User
from mod.service.ephemeral import Typing
from mod.service.pushrules_default import default_rules
from mod.service.userdata import PUSH_RULES

SIDE_KINDS = kinds.SIDELINE


@dataclass(frozen=True, slots=True)
class Kept:
    """What an initial sync shows of the user's joined rooms beside their timelines."""

    flows: list[str]
    receipts: list[tuple[str, str, str, str, str, int]]
    account_data: list[tuple[str, str, str]]


def split(items: list[Parsed]) -> tuple[list[Parsed], list[Parsed]]:
    """(timeline changes, side changes) of a batch."""
    if not any(item.change.kind in SIDE_KINDS for item in items):
        return items, []
    return ([item for item in items if item.change.kind not in SIDE_KINDS],
            [item for item in items if item.change.kind in SIDE_KINDS])


class _Side:
    """Ephemeral events and account data being gathered for one sync response."""

    def __init__(self, server: str) -> None:
        self.server = server
        self.global_data: dict[str, Any] = {}
        self.room_data: dict[str, dict[str, Any]] = {}
        # flow -> event ID -> receipt type -> user uuid -> receipt
        self.receipts: dict[str, dict[str, dict[str, dict[str, dict[str, Any]]]]] = {}
        self.typing: set[str] = set()

    def data(self, room: str, data_type: str, content: Any) -> None:
        if room:
            self.room_data.setdefault(room, {})[data_type] = content
        else:
            self.global_data[data_type] = content

    def receipt(self, flow: str, user: str, receipt_type: str, thread: str, event_id: str,
                ts: int) -> None:
        entry: dict[str, Any] = {"ts": ts}
        if thread:
            entry["thread_id"] = thread
        by_type = self.receipts.setdefault(flow, {}).setdefault(event_id, {})
        by_type.setdefault(receipt_type, {})[user] = entry

    def users(self) -> set[str]:
        return {user for events in self.receipts.values() for types in events.values()
                for users in types.values() for user in users}


def _from_changes(side: _Side, items: Iterable[Parsed]) -> None:
    for item in items:
        payload, kind = item.payload, item.change.kind
        try:
            if kind == Kind.ACCOUNT_DATA:
                side.data(str(payload["room"]), str(payload["type"]), payload["content"])
            elif kind in (Kind.RECEIPT, Kind.PRIVATE_RECEIPT):
                side.receipt(str(payload["room"]), item.change.actor, str(payload["type"]),
                             str(payload.get("thread", "")), str(payload["event_id"]),
                             int(payload["ts"]))
            elif kind == Kind.TYPING:
                side.typing.add(item.change.flow_uuid)
        except (KeyError, TypeError, ValueError):
            continue  # a row written by hand: nothing to show of it


def _from_kept(side: _Side, kept: Kept) -> None:
    for flow, user, receipt_type, thread, event_id, ts in kept.receipts:
        side.receipt(flow, user, receipt_type, thread, event_id, ts)
    for room, data_type, text in kept.account_data:
        side.data(room, data_type, from_json(text))


def _user_id(users: dict[str, User], uuid: str, server: str) -> str:
    user = users.get(uuid)
    if user is None or user.deleted:
        return ids.deleted_user_id(uuid, server)
    return ids.user_id(user.login, server)


def _room(reply: SyncReply, flow: str, server: str, position: int) -> JoinedRoom:
    room_id = ids.room_id(flow, server)
    room = reply.rooms.join.get(room_id)
    if room is None:
        room = reply.rooms.join[room_id] = api.joined_room(
            api.timeline([], False, ids.token(position)), [])
    return room


def _typing(side: _Side, reply: SyncReply, typing_now: Typing, kept_data: Kept | None,
            since: int | None) -> None:
    """The rooms whose typing notice the response shows: all with typists for an initial
    sync, and those whose typists changed after `since` for an incremental one."""
    if kept_data is not None:
        side.typing.update(flow for flow in kept_data.flows if typing_now.typing(flow))
    if since is not None and typing_now.changed:
        flows = (ids.flow_of(room, side.server) for room in reply.rooms.join)
        side.typing.update(flow for flow in flows if typing_now.changed_after(flow, since))


def _shows_something(side: _Side) -> bool:
    return bool(side.global_data or side.room_data or side.receipts or side.typing)


async def _users(matrix: Matrix, side: _Side, typists: dict[str, list[str]],
                 caller_uuid: str | None) -> dict[str, User]:
    """The users the response names (and the caller, when given)."""
    wanted = side.users() | {user for users in typists.values() for user in users}
    if caller_uuid is not None:
        wanted.add(caller_uuid)
    return await matrix.users.get(wanted) if wanted else {}


def _default_push_rules(side: _Side, users: dict[str, User], caller_uuid: str) -> None:
    """The server's default push rules, unless the user stored their own."""
    if PUSH_RULES not in side.global_data and caller_uuid in users:
        login = users[caller_uuid].login
        side.global_data[PUSH_RULES] = default_rules(ids.user_id(login, side.server), login)


def _data_events(data: dict[str, Any]) -> Events:
    return Events.model_construct(events=[{"type": data_type, "content": content}
                                          for data_type, content in data.items()])


def _fill_account_data(reply: SyncReply, side: _Side, position: int) -> None:
    if side.global_data:
        reply.account_data = _data_events(side.global_data)
    for flow, data in side.room_data.items():
        _room(reply, flow, side.server, position).account_data = _data_events(data)


def _fill_ephemeral(reply: SyncReply, side: _Side, typists: dict[str, list[str]],
                    users: dict[str, User], position: int) -> None:
    server = side.server
    ephemeral: dict[str, list[Event]] = {}
    for flow, by_event in side.receipts.items():
        content = {event_id: {receipt_type: {_user_id(users, user, server): entry
                                             for user, entry in by_user.items()}
                              for receipt_type, by_user in by_type.items()}
                   for event_id, by_type in by_event.items()}
        ephemeral.setdefault(flow, []).append({"type": "m.receipt", "content": content})
    for flow, typing in typists.items():
        ephemeral.setdefault(flow, []).append({"type": "m.typing", "content": {
            "user_ids": [_user_id(users, user, server) for user in typing]}})
    for flow, events in ephemeral.items():
        _room(reply, flow, server, position).ephemeral = Events.model_construct(events=events)


async def decorate(matrix: Matrix, caller_uuid: str, reply: SyncReply,
                   side_items: list[Parsed], kept_data: Kept | None, since: int | None,
                   position: int) -> None:
    """Fill in the response's ephemeral events and account data."""
    side = _Side(matrix.server_name)
    _from_changes(side, side_items)
    if kept_data is not None:
        _from_kept(side, kept_data)
    typing_now = matrix.service.ephemeral.typing_now
    _typing(side, reply, typing_now, kept_data, since)
    if since is not None and not _shows_something(side):
        return
    typists = {flow: typing_now.typing(flow) for flow in side.typing}
    users = await _users(matrix, side, typists, caller_uuid if since is None else None)
    if since is None:
        _default_push_rules(side, users, caller_uuid)
    _fill_account_data(reply, side, position)
    _fill_ephemeral(reply, side, typists, users, position)
