"""Matrix views of the change log: sync batches, history pages, room state, single events.

The functions that take a `Reader` run whole on a database reader thread through the
service's timeline (`read`, or `read_flow`, which checks the caller may read the flow in the
same job), query only through that reader, and return plain data or response models;
`batch_from_changes` and `render_batch` build a sync batch on the event loop from changes the
hub already delivered, with no query at all. `sync_read` shows a user only their own flows
and invites.
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
from mod.service import Reader, User

# At most this many changes per incremental sync; the rest comes with the next one.
SYNC_BATCH = 1000
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


def sync_read(reader: Reader, query: SyncQuery) -> SyncResult:
    renderer = Renderer(query.server, query.viewer)
    if query.since is None:
        return _initial(reader, query, renderer)
    return _incremental(reader, query, renderer)


def _newest(items: list[Parsed], limit: int) -> list[Parsed]:
    """The newest of a room's changes (oldest first) whose events fit in the timeline."""
    count = fitting(items[::-1], limit)
    return items[len(items) - count:]


def _window(reader: Reader, flow: str, upto: int, limit: int) -> tuple[list[Parsed], bool]:
    rows = reader.flow_changes([flow], before=upto + 1, limit=limit + 1, backwards=True)
    rows.reverse()
    items = parse(rows)
    timeline = _newest(items, limit)
    return timeline, len(timeline) < len(items)


def _initial(reader: Reader, query: SyncQuery, renderer: Renderer) -> SyncResult:
    # Up to what is committed now, even if the hub has not delivered it yet: a client that
    # just joined a room sees it. (Later syncs start after this, so nothing comes twice.)
    upto = query.upto if query.exact else max(query.upto, reader.last_position())
    rooms = api.no_rooms()
    joined: list[_Room] = []
    for flow in reader.member_flows(query.user):
        timeline, limited = _window(reader, flow, upto, query.limit)
        start = timeline[0].change.position if timeline else upto + 1
        state = parse(reader.flow_state_changes(flow, before=start))
        joined.append(_Room(flow, timeline, state, limited, start))
    renderer.load_users(reader, users_named(item for room in joined
                                        for item in (*room.timeline, *room.state)))
    for room in joined:
        renderer.load_redactions(reader, room.flow, room.timeline)
        rooms.join[ids.room_id(room.flow, query.server)] = _joined(renderer, room)
    invites = reader.invites_for(query.user)
    if invites:
        flows = {flow["uuid"]: flow for flow in reader.flows([i[0] for i in invites])}
        renderer.load_users(reader, [query.user, *(i[1] for i in invites),
                                 *(flow["owner"] for flow in flows.values())])
        for flow_uuid, inviter, _ in invites:
            if flow_uuid in flows:
                direct = _invited_direct(reader, flow_uuid, query.user)
                rooms.invite[ids.room_id(flow_uuid, query.server)] = InvitedRoom(
                    invite_state=Events(events=renderer.stripped(flows[flow_uuid], inviter,
                                                                 query.user, direct)))
    kept = sidelines.kept(reader, query.user, [room.flow for room in joined])
    return SyncResult(rooms, upto, kept=kept)


def _invited_direct(reader: Reader, flow: str, user: str) -> bool:
    """Whether the user's open invitation to a flow is one to a direct chat."""
    invited = parse(reader.subject_changes(flow, [Kind.FLOW_INVITED], [user]))
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


def _incremental(reader: Reader, query: SyncQuery, renderer: Renderer) -> SyncResult:
    assert query.since is not None
    members = reader.member_flows(query.user)
    changes = reader.user_changes(members, query.user, query.since, query.upto, SYNC_BATCH)
    position = changes[-1].position if len(changes) == SYNC_BATCH else query.upto
    by_flow: dict[str, list[Parsed]] = {}
    items, side = sidelines.split(parse(changes))
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
            state = (parse(reader.flow_state_changes(flow, before=start))
                     if newly or limited or query.full_state else [])
            joined.append(_Room(flow, timeline, state, limited, start))
        elif status == "leave" and mine is not None:
            timeline = _newest(items[:mine[1] + 1], max(query.limit, 1))
            left.append(_Room(flow, timeline, [], False, timeline[0].change.position))
        elif status == "invite" and mine is not None:
            invited.append(items[mine[1]])
    if invited:
        still = {invite[0] for invite in reader.invites_for(query.user)}
        invited = [item for item in invited if item.change.flow_uuid in still]
    renderer.load_users(reader, {query.user} | users_named(
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
    kept = (sidelines.kept(reader, query.user, [room.flow for room in joined])
            if query.full_state else None)
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


def messages_read(reader: Reader, server: str, viewer: str, flow: str, start: int | None,
                  stop: int | None, backwards: bool, limit: int) -> Messages:
    """A page of a room's timeline from token `start` towards token `stop`."""
    if backwards:
        rows = reader.flow_changes([flow], after=stop or 0,
                               before=None if start is None else start + 1, limit=limit,
                               backwards=True)
        first = start if start is not None else (rows[0].position if rows else 0)
    else:
        rows = reader.flow_changes([flow], after=start or 0,
                               before=None if stop is None else stop + 1, limit=limit)
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
    renderer = Renderer(server, viewer)
    renderer.load_users(reader, users_named(items))
    renderer.load_redactions(reader, flow, items)
    chunk = renderer.all_events(items)
    if backwards:
        chunk.reverse()
    return Messages(chunk=chunk, start=ids.token(first), end=end)


# -- state and single events ------------------------------------------------------------------


def state_read(reader: Reader, server: str, flow: str) -> list[Event]:
    """A room's current state events."""
    items = parse(reader.flow_state_changes(flow))
    renderer = Renderer(server)
    renderer.load_users(reader, users_named(items))
    return list(renderer.replay(items).values())


def event_read(reader: Reader, server: str, viewer: str, flow: str, event_id: str) -> Event | None:
    """One event of a room by its ID, or None."""
    ref = ids.parse_event_id(event_id)
    if ref is None:
        return None
    if ref.message:
        rows = reader.subject_changes(flow, [Kind.MESSAGE_SENT], [ref.message])
    else:
        row = reader.change_at(ref.position)
        rows = [row] if row is not None and row.flow_uuid == flow else []
    items = parse(rows[:1])
    renderer = Renderer(server, viewer)
    renderer.load_users(reader, users_named(items))
    renderer.load_redactions(reader, flow, items)
    for event in renderer.all_events(items):
        if event["event_id"] == event_id:
            return event
    return None
