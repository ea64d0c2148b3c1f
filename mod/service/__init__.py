"""The one way into the data, for both protocols: every rule and every read and write.

Split by area — `accounts`, `flows`, `messages`, `search`, `media`, `timeline`, and for
end-to-end encryption `keys`, `devices` and `backup` — with who may do what in `rights`.
Protocols import from here only, never from `mod.db`; they translate requests into these
calls and render `ServiceError` in their own format.
"""

from __future__ import annotations

from mod import lib
from mod.config.validator import Settings
from mod.db.engine import Engine
from mod.error import ServiceError
from mod.service.accounts import Accounts
from mod.service.avatars import Avatars
from mod.service.backup import Backup, BackupVersion
from mod.service.common import RETRY_WINDOW, Caller, Committed, Credentials
from mod.service.devices import Devices
from mod.service.ephemeral import Ephemeral
from mod.service.flows import FLOW_TYPES, Flows
from mod.service.keys import DeviceInfo, Keys, SyncKeys
from mod.service.media import Media
from mod.service.messages import ENCRYPTED_TEXT, MessagePage, Messages
from mod.service.profiles import Profiles
from mod.service.reactions import Reactions
from mod.service.readstate import ReadState, ReadStates
from mod.service.records import Flow, Message, RegistrationToken, User
from mod.service.roomevents import RoomEvents
from mod.service.search import Found, Hit, Search
from mod.service.snapshots import (
    EventContext,
    Excerpt,
    InitialSync,
    Invitation,
    JoinedFlow,
    Kept,
    People,
    SyncChanges,
)
from mod.service.timeline import Timeline
from mod.service.userdata import UserData

__all__ = [
    "ENCRYPTED_TEXT", "FLOW_TYPES", "RETRY_WINDOW", "BackupVersion", "Caller", "Committed",
    "Credentials", "DeviceInfo", "EventContext", "Excerpt", "Flow", "Found", "Hit",
    "InitialSync", "Invitation", "JoinedFlow", "Kept", "Message", "MessagePage", "People",
    "ReadState", "RegistrationToken", "Service", "ServiceError", "SyncChanges", "SyncKeys",
    "User",
]


class Service:
    """The areas of the service, on one database engine."""

    def __init__(self, settings: Settings, engine: Engine) -> None:
        self.settings = settings
        lib.set_password_cost(settings.security.password_time_cost,
                              settings.security.password_memory_kib)
        self.accounts = Accounts(settings, engine)
        self.profiles = Profiles(settings, engine)
        self.flows = Flows(engine)
        self.media = Media(settings, engine)
        self.avatars = Avatars(self.media)
        self.messages = Messages(settings, engine, self.media)
        self.search = Search(settings.search, engine)
        self.timeline = Timeline(engine)
        self.keys = Keys(engine, settings.matrix)
        self.devices = Devices(engine, self.accounts)
        self.backup = Backup(engine)
        self.ephemeral = Ephemeral(engine)
        self.userdata = UserData(settings, engine)
        self.room_events = RoomEvents(engine)
        self.reactions = Reactions(engine, settings.protocol.reactions_limit)
        self.read = ReadStates(engine)

    def close(self) -> None:
        self.accounts.close()
        self.media.close()
        self.ephemeral.stop()
