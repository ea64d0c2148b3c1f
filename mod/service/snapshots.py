"""What the service reads for a view of the change log, in one reader job: plain, frozen
data the protocols render on the event loop, with no query left to make.

A snapshot may hold a little more than its view shows (a change that will not fit, a user or
a deletion of a change left out): the view picks what it shows, and the service need not know
how a change renders.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from mod import changes as kinds
from mod.changes import Change, FlowPayload, Kind, MessagePayload
from mod.db import dbhandler as db
from mod.db import media as mediadb
from mod.db.engine import Conn
from mod.service.records import Flow, User, user_of

# (flow, user, receipt type, thread, event ID, ts)
Receipt = tuple[str, str, str, str, str, int]
# (room or "" for global, type, content JSON)
AccountDatum = tuple[str, str, str]


@dataclass(frozen=True, slots=True)
class People:
    """The users a snapshot's changes name (and the caller), with their avatars' media IDs."""

    users: Mapping[str, User]
    avatars: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class Excerpt:
    """Some changes of a flow, the deletions of the messages they sent (each after the first
    message sent among them, oldest first), and the people they name."""

    changes: tuple[Change, ...]
    deletions: tuple[Change, ...]
    people: People


@dataclass(frozen=True, slots=True)
class EventContext:
    """An event's change and its surroundings: `before` newest first, `after` oldest first,
    and the flow's state changes up to it."""

    position: int
    event: tuple[Change, ...]
    before: tuple[Change, ...]
    after: tuple[Change, ...]
    state: tuple[Change, ...]
    deletions: tuple[Change, ...]
    people: People


@dataclass(frozen=True, slots=True)
class Kept:
    """What is kept beside the timelines: receipts in the user's flows, their account data."""

    receipts: tuple[Receipt, ...]
    account_data: tuple[AccountDatum, ...]


@dataclass(frozen=True, slots=True)
class JoinedFlow:
    """A flow the user is in, as an initial sync finds it: its newest `limit + 1` timeline
    changes up to the sync's position (oldest first), its state changes up to there, and the
    deletions of the messages sent in those changes."""

    flow: str
    changes: tuple[Change, ...]
    state: tuple[Change, ...]
    deletions: tuple[Change, ...]


@dataclass(frozen=True, slots=True)
class Invitation:
    """An open invitation: the flow (None if it is gone) and its `flow_invited` changes about
    the user."""

    flow_uuid: str
    inviter: str
    flow: Flow | None
    invited: tuple[Change, ...]


@dataclass(frozen=True, slots=True)
class InitialSync:
    position: int
    joined: tuple[JoinedFlow, ...]
    invitations: tuple[Invitation, ...]
    kept: Kept
    people: People


@dataclass(frozen=True, slots=True)
class SyncChanges:
    """An incremental sync's changes in (since, position] of the user's flows and about the
    user; the state changes up to `position` of each flow whose timeline may begin after the
    room's start (one with a state change, one with more than one change, every one when the
    timeline's limit is 0, and for a full state every flow the user is in); the flows with
    open invitations, when an invitation is among the changes; for a full state, what is
    kept (receipts of the user's flows and of those in the changes)."""

    members: tuple[str, ...]
    changes: tuple[Change, ...]
    position: int
    states: Mapping[str, tuple[Change, ...]]
    invited_to: frozenset[str]
    kept: Kept | None
    people: People


def named(changes: Iterable[Change]) -> set[str]:
    """The users these changes may name: actors, subjects of state changes, a flow's owner
    and a new flow's members."""
    found: set[str] = set()
    for change in changes:
        found.add(change.actor)
        if change.kind in kinds.STATE:
            found.add(change.subject)
        try:
            data = change.data
        except ValueError:
            continue
        if isinstance(data, MessagePayload):
            found.update(data.message.get("mentions") or ())
        if isinstance(data, FlowPayload):
            owner = data.flow.get("owner")
            if isinstance(owner, str):
                found.add(owner)
            if change.kind == Kind.FLOW_CREATED:
                found.update(data.members)
    found.discard("")
    return found


def people(conn: Conn, uuids: Iterable[str]) -> People:
    wanted = sorted(set(uuids))
    return People({row["uuid"]: user_of(row) for row in db.users_by_uuid(conn, wanted)},
                  mediadb.avatars(conn, wanted))


def deletions(conn: Conn, flow_uuid: str, changes: Sequence[Change]) -> tuple[Change, ...]:
    """The deletions of the messages these changes sent, after the first of them."""
    sent = [change for change in changes if change.kind == Kind.MESSAGE_SENT]
    if not sent:
        return ()
    return tuple(db.subject_changes(conn, flow_uuid, [Kind.MESSAGE_DELETED],
                                    [change.subject for change in sent],
                                    after=min(change.position for change in sent)))


def excerpt(conn: Conn, flow_uuid: str, changes: Sequence[Change],
            with_deletions: bool = True) -> Excerpt:
    gone = deletions(conn, flow_uuid, changes) if with_deletions else ()
    return Excerpt(tuple(changes), gone, people(conn, named([*changes, *gone])))
