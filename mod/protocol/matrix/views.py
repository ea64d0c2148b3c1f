"""Matrix views of the change log: sync batches, history pages, room state, single events.

Each view is a function of a snapshot the service read (`service.timeline`), run on the event
loop: it parses the snapshot's changes, picks what fits, and renders it, with no query at
all. `batch_from_changes` and `render_batch` build a sync batch from changes the hub already
delivered. A sync shows a user only their own flows and invites: the snapshot holds no other.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mod.changes import Change, Kind
from mod.protocol.matrix import api, ids, sidelines
from mod.protocol.matrix.api import (
    Event,
    Events,
    InvitedRoom,
    JoinedRoom,
    Messages,
    Rooms,
)
from mod.protocol.matrix.events import (
    MEMBERSHIP,
    Parsed,
    Renderer,
    fitting,
    parse,
    users_named,
)
from mod.service import Excerpt, InitialSync, Invitation, SyncChanges, User

JOINS = MEMBERSHIP


@dataclass(frozen=True, slots=True)
class SyncQuery:
    user: str
    viewer: str
    server: str
    since: int | None
    upto: int
    limit: int
    full_state: bool = False
    exact: bool = False  # an initial sync ends at `upto`, not at the newest position


@dataclass(slots=True)
class SyncResult:
    rooms: Rooms
    position: int
    # Typing, receipts and account data: changes in the batch, or (initial) what is kept.
    side: list[Parsed] = field(default_factory=list)
    kept: sidelines.Kept | None = None

    @property
    def empty(self) -> bool:
        return not (self.rooms.join or self.rooms.invite or self.rooms.leave or self.side)


@dataclass(slots=True)
class _Room:
    flow: str
    timeline: list[Parsed]
    state: list[Parsed]
    limited: bool
    start: int


def _newest(items: list[Parsed], limit: int) -> list[Parsed]:
    """The newest of a room's changes (oldest first) whose events fit in the timeline."""
    count = fitting(items[::-1], limit)
    return items[len(items) - count:]


def initial(snapshot: InitialSync, query: SyncQuery) -> SyncResult:
    """An initial sync's response, of the snapshot read up to `snapshot.position`."""
    renderer = Renderer(query.server, query.viewer, people=snapshot.people)
    upto = snapshot.position
    rooms = api.no_rooms()
    joined: list[_Room] = []
    for flow in snapshot.joined:
        items = parse(flow.changes)
        timeline = _newest(items, query.limit)
        start = timeline[0].change.position if timeline else upto + 1
        state = parse(change for change in flow.state if change.position < start)
        joined.append(_Room(flow.flow, timeline, state, len(timeline) < len(items), start))
    renderer.load_users(users_named(item for room in joined
                                    for item in (*room.timeline, *room.state)))
    for room, flow in zip(joined, snapshot.joined, strict=True):
        renderer.load_redactions(room.flow, room.timeline, flow.deletions)
        rooms.join[ids.room_id(room.flow, query.server)] = _joined(renderer, room)
    invitations = snapshot.invitations
    if invitations:
        renderer.load_users([query.user, *(i.inviter for i in invitations),
                             *(i.flow["owner"] for i in invitations if i.flow is not None)])
        for invitation in invitations:
            if invitation.flow is not None:
                rooms.invite[ids.room_id(invitation.flow_uuid, query.server)] = InvitedRoom(
                    invite_state=Events(events=renderer.stripped(
                        invitation.flow, invitation.inviter, query.user,
                        _invited_direct(invitation))))
    flows = [room.flow for room in joined]
    kept = sidelines.Kept(flows, list(snapshot.kept.receipts), list(snapshot.kept.account_data))
    return SyncResult(rooms, upto, kept=kept)


def _invited_direct(invitation: Invitation) -> bool:
    """Whether the user's open invitation to a flow is one to a direct chat."""
    invited = parse(invitation.invited)
    return bool(invited) and bool(invited[-1].payload.get("is_direct"))


def _joined(renderer: Renderer, room: _Room) -> JoinedRoom:
    return api.joined_room(
        api.timeline(renderer.all_events(room.timeline), room.limited,
                      ids.token(room.start - 1)),
        list(renderer.replay(room.state).values()))


def _my_membership(items: list[Parsed], user: str) -> tuple[str, int] | None:
    """The user's last membership change among a flow's changes: (kind, index)."""
    last = None
    for index, item in enumerate(items):
        kind = item.change.kind
        if kind in JOINS and item.change.subject == user:
            last = (kind, index)
        elif kind == Kind.FLOW_CREATED and user in item.payload["flow"]["users"]:
            last = (Kind.FLOW_JOINED, index)
    return last


def incremental(snapshot: SyncChanges, query: SyncQuery) -> SyncResult:
    """An incremental sync's response, of the snapshot's changes up to `snapshot.position`."""
    renderer = Renderer(query.server, query.viewer, people=snapshot.people)
    members = snapshot.members
    position = snapshot.position
    by_flow: dict[str, list[Parsed]] = {}
    items, side = sidelines.split(parse(snapshot.changes))
    for item in items:
        if item.change.flow_uuid:
            by_flow.setdefault(item.change.flow_uuid, []).append(item)
    if query.full_state:
        for flow in members:
            by_flow.setdefault(flow, [])
    member_set = set(members)
    joined: list[_Room] = []
    left: list[_Room] = []
    invited: list[Parsed] = []
    for flow, items in by_flow.items():
        mine = _my_membership(items, query.user)
        status = JOINS[mine[0]] if mine else ("join" if flow in member_set else "")
        if status == "join":
            newly = mine is not None
            timeline = _newest(items, query.limit)
            limited = len(timeline) < len(items)
            start = timeline[0].change.position if timeline else position + 1
            state = (parse(change for change in snapshot.states[flow] if change.position < start)
                     if newly or limited or query.full_state else [])
            joined.append(_Room(flow, timeline, state, limited, start))
        elif status == "leave" and mine is not None:
            timeline = _newest(items[:mine[1] + 1], max(query.limit, 1))
            left.append(_Room(flow, timeline, [], False, timeline[0].change.position))
        elif status == "invite" and mine is not None:
            invited.append(items[mine[1]])
    if invited:
        invited = [item for item in invited if item.change.flow_uuid in snapshot.invited_to]
    renderer.load_users({query.user} | users_named(
        item for room in (*joined, *left) for item in (*room.timeline, *room.state))
        | users_named(invited) | {item.payload["flow"]["owner"] for item in invited})
    rooms = api.no_rooms()
    for room in joined:
        rooms.join[ids.room_id(room.flow, query.server)] = _joined(renderer, room)
    for room in left:
        rooms.leave[ids.room_id(room.flow, query.server)] = api.left_room(api.timeline(
            renderer.all_events(room.timeline), False, ids.token(room.start - 1)))
    for item in invited:
        rooms.invite[ids.room_id(item.change.flow_uuid, query.server)] = InvitedRoom(
            invite_state=Events(events=renderer.stripped(
                item.payload["flow"], item.change.actor, query.user,
                bool(item.payload.get("is_direct")))))
    kept = None
    if snapshot.kept is not None:
        flows = [room.flow for room in joined]
        shown = set(flows)
        kept = sidelines.Kept(flows, [receipt for receipt in snapshot.kept.receipts
                                      if receipt[0] in shown],
                              list(snapshot.kept.account_data))
    return SyncResult(rooms, position, side, kept)


# -- incremental sync from memory -------------------------------------------------------------


@dataclass(slots=True)
class Batch:
    """An incremental batch built from the changes the hub delivered (`streams.UserStream`)."""

    joined: list[_Room]
    left: list[_Room]
    users: set[str]
    side: list[Parsed]


def batch_from_changes(changes: list[Change], query: SyncQuery) -> Batch | None:
    """The batch these changes make, when it needs nothing from the database: no room the
    user newly joined or was invited to, no timeline over the limit (those need state), and
    no changed name or avatar (cached rows of users may predate it). None otherwise."""
    by_flow: dict[str, list[Parsed]] = {}
    timeline_items, side = sidelines.split(parse(changes))
    if any(item.change.kind == Kind.PROFILE_CHANGED for item in timeline_items):
        return None
    for item in timeline_items:
        if item.change.flow_uuid:
            by_flow.setdefault(item.change.flow_uuid, []).append(item)
    joined: list[_Room] = []
    left: list[_Room] = []
    for flow, items in by_flow.items():
        mine = _my_membership(items, query.user)
        if mine is None:
            # The hub delivers a flow's changes to its members: the user is one.
            timeline = _newest(items, query.limit)
            if len(timeline) < len(items):
                return None
            joined.append(_Room(flow, timeline, [], False, timeline[0].change.position))
        elif JOINS[mine[0]] == "leave":
            timeline = _newest(items[:mine[1] + 1], max(query.limit, 1))
            left.append(_Room(flow, timeline, [], False, timeline[0].change.position))
        else:
            return None
    users = users_named(item for room in (*joined, *left) for item in room.timeline)
    return Batch(joined, left, users, side)


def render_batch(batch: Batch, query: SyncQuery, users: dict[str, User],
                 avatars: dict[str, str]) -> SyncResult:
    renderer = Renderer(query.server, query.viewer, users, avatars)
    rooms = api.no_rooms()
    for room in batch.joined:
        rooms.join[ids.room_id(room.flow, query.server)] = _joined(renderer, room)
    for room in batch.left:
        rooms.leave[ids.room_id(room.flow, query.server)] = api.left_room(api.timeline(
            renderer.all_events(room.timeline), False, ids.token(room.start - 1)))
    return SyncResult(rooms, query.upto, batch.side)


# -- history ----------------------------------------------------------------------------------


def messages(page: Excerpt, server: str, viewer: str, flow: str, start: int | None,
             backwards: bool, limit: int) -> Messages:
    """A page of a room's timeline from token `start`, of the changes the service read for
    it (newest first going backwards)."""
    rows = page.changes
    if backwards:
        first = start if start is not None else (rows[0].position if rows else 0)
    else:
        first = start or 0
    items = parse(rows)
    count = fitting(items, limit)
    more = count < len(items) or len(rows) == limit
    items = items[:count]
    end: str | None = None
    if backwards:
        items.reverse()
        if more and items:
            end = ids.token(items[0].change.position - 1)
    elif items:
        end = ids.token(items[-1].change.position)
    renderer = Renderer(server, viewer, people=page.people)
    renderer.load_users(users_named(items))
    renderer.load_redactions(flow, items, page.deletions)
    chunk = renderer.all_events(items)
    if backwards:
        chunk.reverse()
    return Messages(chunk=chunk, start=ids.token(first), end=end)


# -- state and single events ------------------------------------------------------------------


def state(snapshot: Excerpt, server: str) -> list[Event]:
    """A room's current state events, of its state changes."""
    items = parse(snapshot.changes)
    renderer = Renderer(server, people=snapshot.people)
    renderer.load_users(users_named(items))
    return list(renderer.replay(items).values())


def rendered(snapshot: Excerpt, server: str, viewer: str, flow: str) -> list[Event]:
    """The events of some changes of a flow, redacted messages shown as such."""
    items = parse(snapshot.changes)
    renderer = Renderer(server, viewer, people=snapshot.people)
    renderer.load_users(users_named(items))
    renderer.load_redactions(flow, items, snapshot.deletions)
    return renderer.all_events(items)


def event(snapshot: Excerpt, server: str, viewer: str, flow: str, event_id: str
          ) -> Event | None:
    """One event of a room by its ID, or None."""
    for found in rendered(snapshot, server, viewer, flow):
        if found["event_id"] == event_id:
            return found
    return None
