"""The Matrix context: what Matrix handlers use of the running server.

Built once per server in the app's lifespan (`server.py`), beside the service and the hub,
and handed to the router (`dispatch.MatrixRouter`), which puts it in every handler's `Call`.
"""

from __future__ import annotations

from mod.config.validator import Settings
from mod.hub import Hub
from mod.protocol.matrix.streams import IDLE, DeviceKeysCache, Streams, UserCache
from mod.service import Service


class Matrix:
    """The server's settings, service and hub, and the Matrix side's in-memory state."""

    def __init__(self, settings: Settings, service: Service, hub: Hub) -> None:
        self.settings = settings.matrix
        self.server_name = self.settings.server_name
        self.service = service
        self.hub = hub
        self.streams = Streams(hub, max(IDLE, 2 * self.settings.sync_timeout_max))
        self.users = UserCache(service)
        self.device_keys = DeviceKeysCache()
