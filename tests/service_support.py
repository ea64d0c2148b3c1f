"""The service in process, for tests of its rules: no server, no network."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from mod import lib
from mod.config.validator import Database, Settings
from mod.db import dbhandler as db
from mod.db.engine import Engine
from mod.service import Caller, Service


class World:
    """A service on a fresh database, and callers made straight in it (no argon2)."""

    def __init__(self, service: Service, engine: Engine) -> None:
        self.service = service
        self.engine = engine

    async def user(self, name: str, superuser: bool = False) -> Caller:
        uuid = lib.new_uuid()
        await self.engine.write(db.create_user, uuid, f"{name}-{uuid[:6]}", "x", name, "",
                                3600, 1, superuser)
        return Caller(uuid, lib.token_hash(lib.new_token()), superuser)

    async def flow(self, owner: Caller, kind: str = "group", *members: Caller,
                   private: bool = False) -> str:
        done = await self.service.flows.add(owner, kind, "t", "", [m.uuid for m in members],
                                            private=private)
        return done.value["uuid"]

    async def last_change(self) -> tuple[int, str, str]:
        rows = await self.engine.read(db.changes_after, 0, 100_000)
        return rows[-1].position, rows[-1].kind, rows[-1].subject


@contextlib.asynccontextmanager
async def service_world(uri: str, **sections: dict[str, Any]) -> AsyncIterator[World]:
    """The service on the database at `uri` (its tables made), with these settings sections
    (`security={"login_delay": 0}`) over the defaults; passwords hash cheaply, as in every
    server under test."""
    cheap = {"password_time_cost": 1, "password_memory_kib": 64}
    sections["security"] = {**cheap, **sections.get("security", {})}
    settings = Settings.model_validate({"database": {"uri": uri}, **sections})
    engine = Engine(Database(uri=uri))
    engine.start(asyncio.get_running_loop())
    await engine.write(db.create_tables)
    service = Service(settings, engine)
    try:
        yield World(service, engine)
    finally:
        service.close()
        engine.stop()
