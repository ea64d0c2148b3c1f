"""`testclient chat`: read a flow live and write to it from the terminal."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import click

from mod.changes import Kind
from mod.cli.common import CliError, Unreachable
from mod.cli.frames import Fields, build_request, status_of
from mod.cli.testclient import Connection, Frame, LoggedIn, log_in
from mod.content import FILE_FIELDS

QUIT = "/quit"
USERS_AT_ONCE = 100


@dataclass(slots=True)
class ChatOptions:
    address: str
    login: str
    password: str
    flow: str
    history: int = 20
    join: bool = False
    timeout: float = 10.0


def _detail(response: Frame) -> str:
    errors = response.get("errors")
    detail = errors.get("detail") if isinstance(errors, dict) else None
    return str(detail or f"error {status_of(response)}")


def _pump_stdin(loop: asyncio.AbstractEventLoop, lines: asyncio.Queue[str | None]) -> None:
    """Runs on a daemon thread: hands each line of standard input to the event loop."""
    try:
        stream = sys.stdin
        while True:
            line = stream.readline()
            loop.call_soon_threadsafe(lines.put_nowait, line or None)
            if not line:
                return
    except (RuntimeError, ValueError, OSError):  # the loop or the stream is closed: done
        return


@dataclass
class Chat:
    options: ChatOptions
    connection: Connection | None = None
    me: LoggedIn | None = None
    names: dict[str, str] = field(default_factory=dict)
    sent: set[int] = field(default_factory=set)
    pushes: asyncio.Queue[Frame] = field(default_factory=asyncio.Queue)
    next_id: int = field(default_factory=lambda: int(time.time() * 1000) % 2**40)

    async def run(self) -> None:
        options = self.options
        self.connection = await Connection.open(options.address, options.timeout,
                                                on_push=self.pushes.put_nowait)
        printer = asyncio.create_task(self._print_pushes())
        try:
            session, response = await log_in(self.connection, options.login, options.password,
                                             options.timeout, push=True)
            if session is None:
                raise CliError(f"cannot log in as {options.login!r}: {_detail(response)}")
            self.me = session
            if options.join:
                await self._call("join_flow", Fields(flow=options.flow), "cannot join the flow")
            title = await self._title()
            history = await self._history()
            await self._learn_names([message["from_user"] for message in history])
            click.echo(f"Connected to {options.address} as {options.login}, "
                       f"flow {title!r}. Type a message and press Enter; {QUIT} or "
                       "end of input (Ctrl-D) leaves.")
            for message in history:
                click.echo(self._line(message))
            await self._type_lines()
        finally:
            printer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await printer
            await self.connection.close()

    async def _call(self, kind: str, given: Fields, failure: str) -> Frame:
        assert self.connection is not None and self.me is not None
        response = await self.connection.call(build_request(kind, given, self.me.cred),
                                              self.options.timeout)
        if status_of(response) >= 400:
            raise CliError(f"{failure}: {_detail(response)}")
        return response

    async def _title(self) -> str:
        response = await self._call("all_flow", Fields(), "cannot list the flows")
        for flow in response["data"].get("flow") or []:
            if flow.get("uuid") == self.options.flow:
                return str(flow.get("title") or self.options.flow)
        return self.options.flow

    async def _history(self) -> list[Frame]:
        """The flow's last messages, oldest first (this also checks the caller may read it)."""
        failure = f"cannot read the flow {self.options.flow}"
        if not self.options.join:
            failure += " (not a member? add --join)"
        wanted = max(self.options.history, 0)
        # With no history wanted, ask for messages from the far future: none, but the rights.
        given = Fields(flow=self.options.flow, time=None if wanted else 2**62)
        response = await self._call("all_messages", given, failure)
        messages: list[Frame] = response["data"].get("message") or []
        if status_of(response) == 206:
            total = int(response["data"]["flow"][0]["message_end"])
            request = build_request("all_messages", given, self.me.cred if self.me else None)
            request["data"]["flow"][0].update(message_start=max(0, total - wanted),
                                              message_end=total)
            assert self.connection is not None
            page = await self.connection.call(request, self.options.timeout)
            if status_of(page) < 400:
                messages = page["data"].get("message") or []
        return messages[len(messages) - wanted:] if wanted else []

    async def _learn_names(self, uuids: list[str]) -> None:
        unknown = [uuid for uuid in dict.fromkeys(uuids) if uuid not in self.names]
        for start in range(0, len(unknown), USERS_AT_ONCE):
            batch = tuple(unknown[start:start + USERS_AT_ONCE])
            assert self.connection is not None and self.me is not None
            response = await self.connection.call(
                build_request("user_info", Fields(users=batch), self.me.cred),
                self.options.timeout)
            self._remember((response.get("data") or {}).get("user") or [])

    def _remember(self, users: list[Frame]) -> None:
        for user in users:
            if user.get("uuid"):
                self.names[user["uuid"]] = str(user.get("username") or user.get("login")
                                               or user["uuid"])

    def _name(self, uuid: str) -> str:
        return self.names.get(uuid, uuid[:8])

    def _line(self, message: Frame, note: str = "") -> str:
        stamp = time.strftime("%H:%M", time.localtime(int(message.get("time") or 0)))
        text = message.get("text") or ""
        if not text and any(message.get(key) for key in FILE_FIELDS):
            text = "[attachment]"
        if message.get("edited_status") and not note:
            note = " (edited)"
        name = click.style(self._name(str(message.get("from_user"))), bold=True)
        return f"[{stamp}] {name}{note}: {text}"

    async def _print_pushes(self) -> None:
        """Show what others do in the flow, in the order the server pushed it."""
        with contextlib.suppress(Unreachable):
            while True:
                frame = await self.pushes.get()
                await self._show(frame)

    async def _show(self, frame: Frame) -> None:
        data: dict[str, Any] = frame.get("data") or {}
        meta = frame.get("meta")
        what = str(meta.get("event") or "") if isinstance(meta, dict) else ""
        self._remember(data.get("user") or [])
        for message in data.get("message") or []:
            if message.get("from_flow") != self.options.flow:
                continue
            mine = self.me is not None and message.get("from_user") == self.me.uuid
            if what == Kind.MESSAGE_SENT and mine and message.get("client_id") in self.sent:
                continue  # our own line, already on screen as typed
            await self._learn_names([str(message.get("from_user"))])
            notes: dict[str, str] = {Kind.MESSAGE_EDITED: " (edited)",
                                     Kind.MESSAGE_DELETED: " (deleted)"}
            note = notes.get(what, "")
            click.echo(self._line(message, note))
        if what in (Kind.FLOW_JOINED, Kind.FLOW_LEFT):
            for flow in data.get("flow") or []:
                if flow.get("uuid") == self.options.flow:
                    for user in data.get("user") or []:
                        verb = "joined" if what == Kind.FLOW_JOINED else "left"
                        click.echo(f"* {self._name(str(user.get('uuid')))} {verb}")

    async def _type_lines(self) -> None:
        assert self.connection is not None
        lines: asyncio.Queue[str | None] = asyncio.Queue()
        threading.Thread(target=_pump_stdin, args=(asyncio.get_running_loop(), lines),
                         name="stdin", daemon=True).start()
        closed = asyncio.create_task(self.connection.closed.wait())
        try:
            while True:
                line_task = asyncio.create_task(lines.get())
                await asyncio.wait({line_task, closed}, return_when=asyncio.FIRST_COMPLETED)
                if not line_task.done():
                    line_task.cancel()
                    raise Unreachable(self.connection.reason)
                line = line_task.result()
                if line is None or line.strip() == QUIT:
                    return
                text = line.rstrip("\r\n")
                if text.strip():
                    await self._say(text)
        finally:
            closed.cancel()

    async def _say(self, text: str) -> None:
        assert self.connection is not None and self.me is not None
        self.next_id += 1
        self.sent.add(self.next_id)
        given = Fields(flow=self.options.flow, text=text, client_id=self.next_id)
        response = await self.connection.call(
            build_request("send_message", given, self.me.cred), self.options.timeout)
        if status_of(response) >= 400:
            click.echo(click.style(f"not sent: {_detail(response)}", fg="red"), err=True)
