"""Which server processes use the database: each keeps a row fresh while it runs.

`manage.py db restore` refuses while any row is fresh. A port that answers proves nothing
(another host, another port, several workers); a row in the database itself is seen by
every tool that reaches the database, whichever machine the servers run on.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
import uuid

from loguru import logger
from sqlobject.sqlbuilder import Delete, Insert, Select, Update

from mod.db.engine import Conn, Engine
from mod.db.models import Heartbeat
from mod.error import ServiceError

EVERY = 5  # seconds between refreshes
FRESH = 3 * EVERY  # a row older than this belongs to a process that is gone


def beat(conn: Conn, process: str, host: str, pid: int, started: int, now: int) -> None:
    """Say that `process` is running, now."""
    changed = conn.execute(Update(Heartbeat.sqlmeta.table, values={"time_seen": now},
                                where=Heartbeat.q.process == process))
    if not changed:
        conn.execute(Insert(Heartbeat.sqlmeta.table, values={
            "process": process, "host": host, "pid": pid, "time_started": started,
            "time_seen": now}))


def leave(conn: Conn, process: str) -> None:
    conn.execute(Delete(Heartbeat.sqlmeta.table, where=Heartbeat.q.process == process))


def live(conn: Conn, now: int) -> list[tuple[str, int, int]]:
    """(host, pid, seconds since last seen) of every process seen in the last FRESH seconds."""
    rows = conn.all(Select([Heartbeat.q.host, Heartbeat.q.pid, Heartbeat.q.time_seen],
                         where=Heartbeat.q.time_seen >= now - FRESH,
                         orderBy=Heartbeat.q.time_seen))
    return [(str(host), int(pid), now - int(seen)) for host, pid, seen in rows]


def forget_all(conn: Conn) -> None:
    """Clear every row (in a copy of a database, whose processes are not its own)."""
    conn.execute(Delete(Heartbeat.sqlmeta.table, where=None))


async def keep(engine: Engine) -> None:
    """Keep this process's row fresh until cancelled; then remove it."""
    process, host, pid, started = uuid.uuid4().hex, socket.gethostname(), os.getpid(), \
        int(time.time())
    try:
        while True:
            try:
                await engine.write(beat, process, host, pid, started, int(time.time()))
            except ServiceError:  # the database is away; the next beat will tell
                logger.debug("heartbeat not written")
            await asyncio.sleep(EVERY)
    finally:
        try:
            await asyncio.shield(engine.write(leave, process))
        except Exception:
            logger.debug("heartbeat not removed; it goes stale in {} s", FRESH)
