"""The service in process, for tests of its rules: no server, no network."""

from __future__ import annotations

from mod import lib
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
