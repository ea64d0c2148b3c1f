"""`POST /search`: room events found by their words (`service.search`), rendered as the
timeline renders them.

Each result is the event that sent a message; an edited message (found by its new words)
carries its latest edit bundled in `unsigned["m.relations"]["m.replace"]`, as servers
aggregate edits, so that clients show what was found. Only message bodies are searched: a
search whose `keys` leave out `content.body` finds nothing. `include_state` and `groupings`
are not served (their keys are absent from the answer, as the spec allows).
"""

from __future__ import annotations

from contextlib import suppress
from typing import Any

from mod.changes import Change
from mod.error import ServiceError
from mod.protocol.matrix import ids
from mod.protocol.matrix.events import Renderer, parse, token_digest, users_named
from mod.protocol.matrix.routing import Call
from mod.protocol.matrix.searchapi import (
    EventContext,
    Profile,
    Result,
    ResultCategories,
    ResultContext,
    RoomEvents,
    SearchReply,
    SearchRequest,
    empty_room_events,
)
from mod.service import Found, Hit


def _flows(call: Call, rooms: list[str] | None, strict: bool) -> list[str] | None:
    """The flows of some room IDs: strict, an unknown one is 404; else it is left out."""
    if rooms is None:
        return None
    flows = []
    for room in rooms:
        if strict:
            flows.append(ids.flow_of(room, call.server_name))
        else:
            with suppress(ServiceError):
                flows.append(ids.flow_of(room, call.server_name))
    return flows


async def search(call: Call) -> SearchReply:
    """POST /_matrix/client/v3/search"""
    body = await call.body(SearchRequest)
    criteria = body.search_categories.room_events
    if criteria is None:
        return SearchReply.nothing()
    if criteria.keys is not None and "content.body" not in criteria.keys:
        return SearchReply(search_categories=ResultCategories(room_events=empty_room_events()))
    chosen = criteria.filter
    wanted = criteria.event_context
    around = (wanted.before_limit, wanted.after_limit) if wanted is not None else (0, 0)
    found = await call.service.search.messages(
        call.caller, criteria.search_term,
        _flows(call, chosen.rooms if chosen else None, strict=True),
        criteria.order_by or "rank", chosen.limit if chosen else None, call.query("next_batch"),
        _flows(call, chosen.not_rooms if chosen else None, strict=False) or (),
        events=True, context=around)
    view = _View(call, found, wanted)
    return SearchReply(search_categories=ResultCategories(room_events=RoomEvents(
        count=found.count, results=[result for hit in found.hits
                                    if (result := view.result(hit)) is not None],
        highlights=list(found.highlights), next_batch=found.next_batch)))


class _View:
    """The results of one search rendered for its caller."""

    def __init__(self, call: Call, found: Found, wanted: EventContext | None) -> None:
        self.server = call.server_name
        self.wanted = wanted
        self.renderer = Renderer(self.server, token_digest(call.caller.token_hash),
                                 people=found.people) if found.people is not None else None
        self.deletions = found.deletions

    def _events(self, changes: tuple[Change, ...], flow: str) -> list[dict[str, Any]]:
        assert self.renderer is not None
        items = parse(changes)
        self.renderer.load_users(users_named(items))
        self.renderer.load_redactions(flow, items, self.deletions)
        return self.renderer.all_events(items)

    def result(self, hit: Hit) -> Result | None:
        if hit.sent is None or self.renderer is None:
            return None  # a message without its change (written by hand): no event to show
        flow = hit.sent.flow_uuid
        events = self._events((hit.sent,), flow)
        if not events:
            return None
        event = events[0]
        if hit.edit is not None:
            edits = self._events((hit.edit,), flow)
            if edits:
                unsigned = event.setdefault("unsigned", {})
                unsigned["m.relations"] = {"m.replace": edits[0]}
        context = None
        if self.wanted is not None:
            context = self._context(hit, flow)
        return Result(rank=hit.rank, result=event, context=context)

    def _context(self, hit: Hit, flow: str) -> ResultContext:
        assert hit.sent is not None and self.renderer is not None and self.wanted is not None
        # As many events as asked (a change may render as several: a room's creation).
        before = self._events(hit.before[::-1], flow)[::-1][:self.wanted.before_limit]
        after = self._events(hit.after, flow)[:self.wanted.after_limit]
        at = hit.sent.position
        profiles = None
        if self.wanted.include_profile:
            senders = {hit.sent.actor, *(change.actor for change in (*hit.before, *hit.after))}
            profiles = {self.renderer.user_id(uuid): self._profile(uuid) for uuid in senders}
        return ResultContext(
            events_before=before, events_after=after,
            start=ids.token((hit.before[-1].position if hit.before else at) - 1),
            end=ids.token(hit.after[-1].position if hit.after else at),
            profile_info=profiles)

    def _profile(self, uuid: str) -> Profile:
        assert self.renderer is not None
        avatar = self.renderer.avatars.get(uuid)
        return Profile(displayname=self.renderer.displayname(uuid),
                       avatar_url=f"mxc://{self.server}/{avatar}" if avatar else None)
