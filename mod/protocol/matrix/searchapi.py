"""Pydantic models of `POST /search` (`search.py`): its request, of which Morelia reads the
room events category, and its answer (api.py holds the rest of the API, and is full)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from mod.protocol.matrix.api import Body, Event, Reply

# What a client may ask to search; only message bodies are searched here.
SearchKey = Literal["content.body", "content.name", "content.topic"]


class RoomEventFilter(Body):
    """The part of a room event filter a search reads (the rest is let through, unread)."""

    limit: int | None = Field(default=None, ge=0)
    rooms: list[str] | None = Field(default=None, max_length=10_000)
    not_rooms: list[str] | None = Field(default=None, max_length=10_000)


class EventContext(Body):
    before_limit: int = Field(default=5, ge=0)
    after_limit: int = Field(default=5, ge=0)
    include_profile: bool = False


class RoomEventsCriteria(Body):
    search_term: str = Field(max_length=65_536)
    keys: list[SearchKey] | None = Field(default=None, max_length=3)
    filter: RoomEventFilter | None = None
    order_by: str | None = Field(default=None, max_length=16)
    event_context: EventContext | None = None
    include_state: bool = False  # not served: no `state` in the answer


class Categories(Body):
    room_events: RoomEventsCriteria | None = None


class SearchRequest(Body):
    search_categories: Categories


class Profile(Reply):
    displayname: str | None = None
    avatar_url: str | None = None


class ResultContext(Reply):
    events_before: list[Event]  # newest first, as /context gives them
    events_after: list[Event]
    start: str
    end: str
    profile_info: dict[str, Profile] | None = None


class Result(Reply):
    rank: float
    result: Event
    context: ResultContext | None = None


class RoomEvents(Reply):
    count: int | None = None  # not counted newest first
    results: list[Result]
    highlights: list[str]
    next_batch: str | None = None  # absent on the last page


class ResultCategories(Reply):
    room_events: RoomEvents | None = None


class SearchReply(Reply):
    search_categories: ResultCategories

    @classmethod
    def nothing(cls) -> SearchReply:
        return cls(search_categories=ResultCategories())


def empty_room_events() -> RoomEvents:
    return RoomEvents(count=0, results=[], highlights=[])


