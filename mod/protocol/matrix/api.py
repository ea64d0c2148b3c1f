"""Pydantic models of the Matrix Client-Server API subset Morelia Server speaks.

Request bodies are strict (a number where a string belongs is M_BAD_JSON) and let unknown keys
through, as the spec asks of servers. Responses are dumped by alias, without unset keys.
Events travel as plain dicts (`Event`), rendered by `events.py`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Event = dict[str, Any]


class Body(BaseModel):
    model_config = ConfigDict(strict=True, extra="allow", populate_by_name=True)


class Reply(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    def dump(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, exclude_none=True)


# -- requests ---------------------------------------------------------------------------------


class Identifier(Body):
    type: str
    user: str | None = None


class LoginRequest(Body):
    type: str
    identifier: Identifier | None = None
    user: str | None = None
    password: str | None = None
    device_id: str | None = None
    initial_device_display_name: str | None = None


class AuthData(Body):
    type: str | None = None
    session: str | None = None


class RegisterRequest(Body):
    username: str | None = None
    password: str | None = None
    auth: AuthData | None = None
    device_id: str | None = None
    initial_device_display_name: str | None = None
    inhibit_login: bool = False


class DisplayNameRequest(Body):
    displayname: str


class StateEventIn(Body):
    type: str
    state_key: str = ""
    content: dict[str, Any]


class CreateRoomRequest(Body):
    name: str | None = None
    topic: str | None = None
    invite: list[str] = []
    preset: Literal["private_chat", "public_chat", "trusted_private_chat"] | None = None
    is_direct: bool = False
    visibility: Literal["public", "private"] | None = None
    room_alias_name: str | None = None
    initial_state: list[StateEventIn] = []
    room_version: str | None = None


class InviteRequest(Body):
    user_id: str
    reason: str | None = None


class MembershipRequest(Body):
    """The body of join and leave: nothing the server needs."""

    reason: str | None = None


class MessageContent(Body):
    msgtype: str
    body: str


class RelatesTo(Body):
    rel_type: str | None = None
    event_id: str | None = None


class EditContent(Body):
    msgtype: str
    body: str
    new_content: MessageContent = Field(alias="m.new_content")
    relates_to: RelatesTo = Field(alias="m.relates_to")


class RedactRequest(Body):
    reason: str | None = None


class NameContent(Body):
    name: str


class TopicContent(Body):
    topic: str


class EventFilter(Body):
    limit: int | None = Field(default=None, ge=0)


class RoomFilter(Body):
    timeline: EventFilter | None = None


class Filter(Body):
    room: RoomFilter | None = None


# -- responses --------------------------------------------------------------------------------


class Versions(Reply):
    versions: list[str]
    unstable_features: dict[str, bool] = {}


class BaseUrl(Reply):
    base_url: str


class WellKnown(Reply):
    homeserver: BaseUrl = Field(alias="m.homeserver")


class LoginFlow(Reply):
    type: str


class LoginFlows(Reply):
    flows: list[LoginFlow]


class Stages(Reply):
    stages: list[str]


class AuthFlows(Reply):
    """The 401 body of user-interactive authentication."""

    flows: list[Stages]
    params: dict[str, Any] = {}
    session: str
    completed: list[str] | None = None
    errcode: str | None = None
    error: str | None = None


class LoginReply(Reply):
    user_id: str
    access_token: str | None = None
    device_id: str | None = None
    home_server: str | None = None


class WhoAmI(Reply):
    user_id: str
    device_id: str | None = None
    is_guest: bool = False


class DisplayName(Reply):
    displayname: str


class Profile(Reply):
    displayname: str | None = None


class Available(Reply):
    available: bool


class Empty(Reply):
    pass


class RoomIdReply(Reply):
    room_id: str


class EventIdReply(Reply):
    event_id: str


class JoinedRooms(Reply):
    joined_rooms: list[str]


class MemberInfo(Reply):
    display_name: str | None = None
    avatar_url: str | None = None


class JoinedMembers(Reply):
    joined: dict[str, MemberInfo]


class Chunk(Reply):
    chunk: list[Event]


class Messages(Reply):
    chunk: list[Event]
    start: str
    end: str | None = None
    state: list[Event] | None = None


class Events(Reply):
    events: list[Event] = []


class Timeline(Reply):
    events: list[Event]
    limited: bool = False
    prev_batch: str | None = None


class Notifications(Reply):
    highlight_count: int = 0
    notification_count: int = 0


class JoinedRoom(Reply):
    timeline: Timeline
    state: Events = Events()
    ephemeral: Events = Events()
    account_data: Events = Events()
    unread_notifications: Notifications = Notifications()
    summary: dict[str, Any] = {}


class InvitedRoom(Reply):
    invite_state: Events


class LeftRoom(Reply):
    timeline: Timeline
    state: Events = Events()
    account_data: Events = Events()


class Rooms(Reply):
    join: dict[str, JoinedRoom] = {}
    invite: dict[str, InvitedRoom] = {}
    leave: dict[str, LeftRoom] = {}


class DeviceLists(Reply):
    changed: list[str] = []
    left: list[str] = []


class SyncReply(Reply):
    next_batch: str
    rooms: Rooms = Rooms()
    presence: Events = Events()
    account_data: Events = Events()
    to_device: Events = Events()
    device_lists: DeviceLists = DeviceLists()
    device_one_time_keys_count: dict[str, int] = {}


class FilterId(Reply):
    filter_id: str
