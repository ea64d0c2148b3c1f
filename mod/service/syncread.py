"""What a /sync reads: an initial sync's flows, invitations and kept data, or an incremental
sync's changes with the state they may need, each in one reader job (`Timeline`)."""

from __future__ import annotations

from mod import changes as kinds
from mod.changes import Change, Kind
from mod.db import dbhandler as db
from mod.db import userdata
from mod.db.engine import Conn
from mod.service.snapshots import (
    InitialSync,
    Invitation,
    JoinedFlow,
    Kept,
    SyncChanges,
    deletions,
    named,
    people,
)

# At most this many changes per incremental sync; the rest comes with the next one.
SYNC_BATCH = 1000


def initial(conn: Conn, user: str, upto: int, exact: bool, limit: int) -> InitialSync:
    # Up to what is committed now, even if the hub has not delivered it yet: a client that
    # just joined a room sees it. (Later syncs start after this, so nothing comes twice.)
    position = upto if exact else max(upto, db.last_position(conn))
    members = db.member_flows(conn, user)
    joined = []
    for flow in members:
        rows = db.flow_changes(conn, [flow], before=position + 1, limit=limit + 1,
                               backwards=True)
        rows.reverse()
        joined.append(JoinedFlow(flow, tuple(rows),
                                 tuple(db.flow_state_changes(conn, flow, before=position + 1)),
                                 deletions(conn, flow, rows)))
    invitations = _invitations(conn, user)
    kept = Kept(tuple(userdata.receipts(conn, members, user)),
                tuple(userdata.all_account_data(conn, user)))
    changes = [change for flow in joined
               for change in (*flow.changes, *flow.state, *flow.deletions)]
    wanted = named([*changes, *(change for i in invitations for change in i.invited)])
    wanted.update(i.inviter for i in invitations)
    wanted.update(i.flow["owner"] for i in invitations if i.flow is not None)
    return InitialSync(position, tuple(joined), invitations, kept,
                       people(conn, wanted | {user}))


def _invitations(conn: Conn, user: str) -> tuple[Invitation, ...]:
    invites = db.invites_for(conn, user)
    if not invites:
        return ()
    flows = {flow["uuid"]: flow for flow in db.flows_by_uuid(conn, [i[0] for i in invites])}
    return tuple(
        Invitation(flow_uuid, inviter, flows.get(flow_uuid),
                   tuple(db.subject_changes(conn, flow_uuid, [Kind.FLOW_INVITED], [user]))
                   if flow_uuid in flows else ())
        for flow_uuid, inviter, _ in invites)


def _may_need_state(changes: list[Change], limit: int) -> bool:
    return len(changes) > 1 or limit <= 0 or any(c.kind in kinds.STATE for c in changes)


def incremental(conn: Conn, user: str, since: int, upto: int, limit: int,
                full_state: bool) -> SyncChanges:
    members = db.member_flows(conn, user)
    changes = db.user_changes(conn, members, user, since, upto, SYNC_BATCH)
    position = changes[-1].position if len(changes) == SYNC_BATCH else upto
    by_flow: dict[str, list[Change]] = {}
    for change in changes:
        if change.flow_uuid and change.kind not in kinds.SIDELINE:
            by_flow.setdefault(change.flow_uuid, []).append(change)
    wanted = [flow for flow, rows in by_flow.items()
              if full_state or _may_need_state(rows, limit)]
    if full_state:
        wanted += [flow for flow in members if flow not in by_flow]
    states = {flow: tuple(db.flow_state_changes(conn, flow, before=position + 1))
              for flow in wanted}
    invited = any(change.kind == Kind.FLOW_INVITED and change.subject == user
                  for change in changes)
    invited_to = frozenset(i[0] for i in db.invites_for(conn, user)) if invited else frozenset()
    kept = None
    if full_state:
        flows = list(dict.fromkeys([*by_flow, *members]))
        kept = Kept(tuple(userdata.receipts(conn, flows, user)),
                    tuple(userdata.all_account_data(conn, user)))
    state_changes = [change for rows in states.values() for change in rows]
    return SyncChanges(tuple(members), tuple(changes), position, states, invited_to, kept,
                       people(conn, named([*changes, *state_changes]) | {user}))
