"""Typing notices and read receipts: what members see of each other beside messages.

Both are change-log rows of kinds MTP passes over ("typing", "receipt", and
"private_receipt", which only its author sees), so a waiting Matrix /sync of the other
members wakes for them in every process, as for a message. Who is typing now is kept in
memory by every process (`Typing`, fed by the hub with every committed change): a typing
notice lasts its timeout, or until its author's next message or event. The process that took a
notice logs its end when the timeout passes, so the others' clients hear of it.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from loguru import logger

from mod import changes as kinds
from mod.changes import Change, Kind, TypingPayload
from mod.db import dbhandler as db
from mod.db.engine import Conn, Engine
from mod.error import ServiceError
from mod.service import readstate, rights
from mod.service.common import Caller, Committed, logged_since, now

MAX_TYPING_MS = 120_000
DEFAULT_TYPING_MS = 30_000
RECEIPT_TYPES = ("m.read", "m.read.private")
ENDS_TYPING = kinds.ENDS_TYPING


class Typing:
    """Who is typing in each flow, until when (ms), and the position of the last change to
    each flow's set."""

    def __init__(self) -> None:
        self.until: dict[str, dict[str, int]] = {}
        self.changed: dict[str, int] = {}

    def observe(self, change: Change) -> None:
        # notices whose end another process never logged (it stopped) go with the next change
        self._prune(change.flow_uuid, int(time.time() * 1000) - MAX_TYPING_MS)
        if change.kind == Kind.TYPING:
            payload = change.data
            if not isinstance(payload, TypingPayload):
                raise ValueError("not a typing notice")
            users = self.until.setdefault(change.flow_uuid, {})
            if payload.typing:
                users[change.actor] = payload.until
            else:
                users.pop(change.actor, None)
            self.changed[change.flow_uuid] = change.position
        elif change.kind in ENDS_TYPING:
            typists = self.until.get(change.flow_uuid)
            if typists and typists.pop(change.actor, None) is not None:
                self.changed[change.flow_uuid] = change.position

    def typing(self, flow_uuid: str) -> list[str]:
        """The users typing in a flow now. Notices past their time stay until their end is
        logged (`Ephemeral._expire` looks for them), or until the flow's next change."""
        users = self.until.get(flow_uuid)
        if not users:
            return []
        clock = int(time.time() * 1000)
        return sorted(user for user, until in users.items() if until > clock)

    def after(self, change: Change) -> list[str] | None:
        """Who types in the change's flow once it is applied (observers are told of changes
        after their recipients), or None when it changes nothing of that: a message or
        event whose sender was not typing."""
        before = set(self.typing(change.flow_uuid))
        typists = before - {change.actor}
        if change.kind != Kind.TYPING:
            return sorted(typists) if typists != before else None
        payload = change.data
        if isinstance(payload, TypingPayload) and payload.typing \
                and payload.until > int(time.time() * 1000):
            typists.add(change.actor)
        return sorted(typists)

    def _prune(self, flow_uuid: str, clock: int) -> None:
        users = self.until.get(flow_uuid)
        if users:
            for user in [user for user, until in users.items() if until <= clock]:
                del users[user]

    def changed_after(self, flow_uuid: str, position: int) -> bool:
        return self.changed.get(flow_uuid, 0) > position


class Ephemeral:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.typing_now = Typing()
        self._timers: dict[tuple[str, str], asyncio.TimerHandle] = {}

    def changes_committed(self, changes: list[Change]) -> None:
        """Keep `typing_now` true to what any process committed (a hub observer)."""
        for change in changes:
            if change.kind == Kind.TYPING or change.kind in ENDS_TYPING:
                try:
                    self.typing_now.observe(change)
                except (ValueError, TypeError, AttributeError) as exc:
                    logger.debug("typing change {} passed over: {}", change.position, exc)

    async def typing(self, caller: Caller, flow_uuid: str, typing: bool,
                     timeout_ms: int | None) -> Committed[None]:
        """Start (for `timeout_ms`, at most MAX_TYPING_MS) or stop a typing notice."""
        span = min(timeout_ms if timeout_ms is not None else DEFAULT_TYPING_MS, MAX_TYPING_MS)
        until = int(time.time() * 1000) + span if typing else 0
        done = await self.engine.write(_typing, caller, flow_uuid, typing, until, now())
        key = (flow_uuid, caller.uuid)
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()
        if typing:
            self._end_at(caller, flow_uuid, until, span / 1000)
        return done

    def _end_at(self, caller: Caller, flow_uuid: str, until: int, delay: float) -> None:
        self._timers[(flow_uuid, caller.uuid)] = asyncio.get_running_loop().call_later(
            delay, self._expire, caller, flow_uuid, until)

    def _expire(self, caller: Caller, flow_uuid: str, until: int) -> None:
        self._timers.pop((flow_uuid, caller.uuid), None)
        if self.typing_now.until.get(flow_uuid, {}).get(caller.uuid) != until:
            return  # ended already, or renewed through another process
        left = until / 1000 - time.time()
        if left > 0:  # the loop's clock (uvloop's: the iteration's start) ran ahead of ours
            self._end_at(caller, flow_uuid, until, left)
            return
        task = asyncio.get_running_loop().create_task(
            self.engine.write(_typing, caller, flow_uuid, False, 0, now()))
        task.add_done_callback(_quiet)

    def stop(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()

    async def receipt(self, caller: Caller, flow_uuid: str, receipt_type: str, event_id: str,
                      thread: str = "") -> Committed[None]:
        """Keep the caller's receipt (`m.read`, or `m.read.private`, seen by them alone)."""
        if receipt_type not in RECEIPT_TYPES:
            raise ServiceError(400, f"Receipt type must be one of {', '.join(RECEIPT_TYPES)}")
        if not event_id.startswith("$") or len(event_id) > 255:
            raise ServiceError(400, "A receipt names an event ID")
        return await self.engine.write(_receipt, caller, flow_uuid, receipt_type, thread,
                                       event_id, int(time.time() * 1000), now())


def _quiet(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.info("a typing notice's end was not logged: {}", task.exception())


def _typing(conn: Conn, caller: Caller, flow_uuid: str, typing: bool, until: int, stamp: int
            ) -> Committed[None]:
    rights.read(rights.access(conn, flow_uuid, caller), caller)
    mark = len(conn.changes)
    db.log_change(conn, stamp, flow_uuid, Kind.TYPING, caller.uuid, caller.uuid,
                  {"typing": typing, "until": until})
    return Committed(None, logged_since(conn, mark))


def _receipt(conn: Conn, caller: Caller, flow_uuid: str, receipt_type: str, thread: str,
             event_id: str, ts: int, stamp: int) -> Committed[None]:
    rights.read(rights.access(conn, flow_uuid, caller), caller)
    mark = len(conn.changes)
    readstate.receipt(conn, flow_uuid, caller.uuid, receipt_type, thread, event_id, ts, stamp,
                      receipt_type == "m.read.private")
    return Committed(None, logged_since(conn, mark))
