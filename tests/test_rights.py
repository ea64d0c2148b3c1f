"""PROTOCOL.md's "Rights" table, cell by cell, over both protocols.

The table is read from docs/PROTOCOL.md, so the document and the test cannot drift apart.
Each cell builds a fresh flow (one per protocol and request when the action changes
something), lets the actor try the action over MTP and over each Matrix request that
performs it, and checks that every answer is the cell's: MTP and Matrix agree, and agree
with the table. Accounts are made in the database before the server starts (cheap hashes),
and each logs in over both protocols: one account, two protocols.
"""

from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import (
    ROOT,
    SEED_PASSWORD,
    Client,
    ServerProcess,
    database_uri,
    frame,
    http_client,
    seed_users,
    write_database,
)
from tests.test_matrix_support import SERVER_NAME

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

V3 = "/_matrix/client/v3"
FIXED = ("owner", "member", "author", "superuser", "superuser author", "former",
         "superuser outsider", "outsider", "invited", "invitee")
SUPERUSERS = 30  # fresh chat partners who are superusers, and the fixed ones
USERS = 250  # fresh chat creators and partners, and the fixed ones

# Flow column of the table -> (flow type, invite-only).
COLUMNS = {"chat": ("chat", True), "group": ("group", False), "private group": ("group", True),
           "channel": ("channel", False), "private channel": ("channel", True)}
ERRCODES = {403: "M_FORBIDDEN", 404: "M_NOT_FOUND"}
Outcome = str | int  # "yes", or the refusal's status code


# -- the table -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Cell:
    action: str
    actor: str
    column: str
    expected: Outcome

    @property
    def id(self) -> str:
        return f"{self.action}-{self.actor}-{self.column}".replace(", ", "-").replace(" ", "_")


def rights_table() -> list[Cell]:
    """Every cell of the table under PROTOCOL.md's "## Rights" that can arise."""
    text = (ROOT / "docs" / "PROTOCOL.md").read_text()
    section = text[text.index("\n## Rights\n"):]
    section = section[:section.index("\n## ", 1)]
    header = "| action | actor | " + " | ".join(COLUMNS) + " |"
    lines = section[section.index(header):].splitlines()[2:]
    cells = []
    for line in itertools.takewhile(lambda line: line.startswith("|"), lines):
        action, actor, *values = [part.strip() for part in line.strip("|").split("|")]
        assert len(values) == len(COLUMNS), line
        for column, value in zip(COLUMNS, values, strict=True):
            if value == "—":
                continue
            assert value in ("yes", "403", "404"), line
            cells.append(Cell(action, actor, column, "yes" if value == "yes" else int(value)))
    return cells


CELLS = rights_table()


def test_the_table_covers_every_action_and_actor() -> None:
    actions = {cell.action for cell in CELLS}
    assert actions == {"read", "search", "send", "edit", "delete", "invite", "rename", "join",
                       "leave", "react", "mark read"}
    for action in actions:
        actors = {cell.actor for cell in CELLS if cell.action == action}
        if action in ("edit", "delete"):
            assert actors == set(MESSAGE_ACTORS), action
        elif action == "react":
            assert actors == {*FLOW_ACTORS, *NAMED_MESSAGE}, action
        else:
            assert actors == set(FLOW_ACTORS), action


# -- accounts --------------------------------------------------------------------------------


@dataclass(slots=True)
class Account:
    login: str
    uuid: str = ""
    auth_id: str = ""
    token: str = ""

    @property
    def user_id(self) -> str:
        return f"@{self.login}:{SERVER_NAME}"


@dataclass(slots=True)
class Server:
    process: ServerProcess
    users: list[str]
    superusers: list[str]
    fixed: dict[str, Account] = field(default_factory=dict)


def seed_superusers(uri: str, count: int) -> list[str]:
    """Superusers straight in the database, as `manage.py superuser-create` makes them."""
    from argon2 import PasswordHasher

    from mod.db import dbhandler
    from mod.lib import new_uuid

    cheap = PasswordHasher(time_cost=1, memory_cost=64, parallelism=1).hash(SEED_PASSWORD)
    logins = [f"super-{index}-{uuid.uuid4().hex[:6]}" for index in range(count)]

    def seed(conn: Any) -> None:
        stamp = int(time.time())
        for login in logins:
            dbhandler.create_user(conn, new_uuid(), login, cheap, login, "", 30 * 86400, stamp,
                                  is_superuser=True)

    write_database(uri, seed)
    return logins


# On SQLite: the rules are the service's (mod/service/rights.py), the same whatever the database;
# the queries they read are the ones every other test runs on PostgreSQL too.
@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    directory: Path = tmp_path_factory.mktemp("rights")
    with database_uri("sqlite", directory) as uri:
        users = seed_users(uri, USERS)
        superusers = seed_superusers(uri, SUPERUSERS)
        with ServerProcess(directory, env={"MORELIA_DATABASE_URI": uri,
                                           "MORELIA_MATRIX_SERVER_NAME": SERVER_NAME}
                           ) as process:
            yield Server(process, users, superusers)


class Session:
    """One test's MTP connection and HTTP client, acting as any account."""

    def __init__(self, server: Server, mtp: Client, http: httpx.AsyncClient) -> None:
        self.server = server
        self.ws = mtp
        self.http = http

    async def mtp(self, account: Account, kind: str, **data: Any) -> dict[str, Any]:
        data["user"] = [{"uuid": account.uuid, "auth_id": account.auth_id}]
        return await self.ws.send_raw(frame(kind, data))

    async def mx(self, account: Account, method: str, path: str,
                 body: dict[str, Any] | None = None) -> httpx.Response:
        if not account.token:
            account.token = await self.matrix_log_in(account.login)
        return await self.http.request(method, V3 + path, json={} if body is None else body,
                                       headers={"Authorization": f"Bearer {account.token}"})

    async def log_in(self, login: str) -> Account:
        """The account `login`, logged in over MTP (and over Matrix when it first acts
        there)."""
        reply = await self.ws.send_raw(frame("authentication", {
            "user": [{"login": login, "password": SEED_PASSWORD}]}))
        assert reply["errors"]["code"] == 200, reply
        user = reply["data"]["user"][0]
        return Account(login, user["uuid"], user["auth_id"])

    async def matrix_log_in(self, login: str) -> str:
        response = await self.http.post(V3 + "/login", json={
            "type": "m.login.password", "password": SEED_PASSWORD,
            "identifier": {"type": "m.id.user", "user": login}})
        assert response.status_code == 200, response.text
        assert response.json()["user_id"] == f"@{login}:{SERVER_NAME}"
        return str(response.json()["access_token"])

    async def fixed(self, role: str) -> Account:
        """The account that plays `role` in every group and channel."""
        if role not in self.server.fixed:
            pool = self.server.superusers if role.startswith("superuser") else self.server.users
            self.server.fixed[role] = await self.log_in(pool.pop())
        return self.server.fixed[role]

    async def fresh(self, superuser: bool = False) -> Account:
        """An account in no flow yet (a chat between two users can be made only once)."""
        pool = self.server.superusers if superuser else self.server.users
        assert pool, "every seeded account is used: raise USERS or SUPERUSERS"
        return await self.log_in(pool.pop())

    async def ok(self, account: Account, kind: str, **data: Any) -> dict[str, Any]:
        reply = await self.mtp(account, kind, **data)
        assert reply["errors"]["code"] == 200, reply
        return reply


@pytest.fixture
async def session(server: Server) -> AsyncIterator[Session]:
    mtp = await Client.connect(server.process.url)
    async with http_client(base_url=server.process.http, timeout=10) as http:
        yield Session(server, mtp, http)
    await mtp.close()


# -- the flow each cell acts on --------------------------------------------------------------

FLOW_ACTORS = ("owner", "member", "superuser member", "superuser non-member", "non-member",
               "invited non-member", "former member", "anyone, unknown flow")
MESSAGE_ACTORS = ("author", "author who left", "another member", "owner, not the author",
                  "superuser member, not the author", "superuser non-member", "non-member",
                  "author, message deleted", "member, unknown message")
# Actors of a cell whose message is in a particular state (react).
NAMED_MESSAGE = ("author, message deleted", "member, unknown message")


@dataclass(slots=True)
class Target:
    actor: Account
    flow: str
    message: str = ""
    invitee: Account | None = None

    @property
    def room(self) -> str:
        return f"!{self.flow}:{SERVER_NAME}"

    @property
    def event(self) -> str:
        return f"$m{self.message}"


def unknown_uuid() -> str:
    return str(uuid.uuid4().int)


async def send(session: Session, author: Account, flow: str) -> str:
    reply = await session.ok(author, "send_message", flow=[{"uuid": flow}],
                             message=[{"client_id": 1, "text": "hello"}])
    return str(reply["data"]["message"][0]["uuid"])


async def build(session: Session, cell: Cell) -> Target:
    """A fresh flow of the cell's column, with the cell's actor in their place."""
    flow_type, private = COLUMNS[cell.column]
    if cell.actor == "anyone, unknown flow":
        return Target(await session.fixed("outsider"), unknown_uuid(), unknown_uuid(),
                      invitee=await session.fixed("invitee"))
    if flow_type == "chat":
        return await _chat(session, cell)
    role = {"owner": "owner", "owner, not the author": "owner",
            "member": "member", "another member": "member", "member, unknown message": "member",
            "superuser member": "superuser", "superuser member, not the author": "superuser",
            "superuser non-member": "superuser outsider", "non-member": "outsider",
            "invited non-member": "invited", "former member": "former",
            "author": "author", "author who left": "author", "author, message deleted": "author",
            }[cell.actor]
    cast = {name: await session.fixed(name) for name in FIXED}
    if flow_type == "channel":
        # A channel's authors are its owner and its superuser members.
        cast["author"] = cast["owner"]
        if cell.actor == "author who left":
            raise AssertionError("an owner cannot leave: the table marks this cell —")
    owner = cast["owner"]
    members = [cast[name].uuid
               for name in ("member", "author", "superuser", "superuser author", "former")]
    reply = await session.ok(owner, "add_flow", flow=[{
        "type": flow_type, "title": "rights", "info": "", "users": members,
        "private": private}])
    flow = str(reply["data"]["flow"][0]["uuid"])
    target = Target(cast[role], flow, invitee=cast["invitee"])
    if cell.actor == "former member":
        await session.ok(cast["former"], "leave_flow", flow=[{"uuid": flow}])
    if cell.actor == "invited non-member":
        invited = await session.mx(owner, "POST", f"/rooms/!{flow}:{SERVER_NAME}/invite",
                                   {"user_id": cast["invited"].user_id})
        assert invited.status_code == 200, invited.text
    if cell.action in ("edit", "delete") or cell.actor in NAMED_MESSAGE:
        author = cast["superuser author"] if cell.actor == "owner, not the author" and \
            flow_type == "channel" else cast["author"]
        target.message = await _message(session, cell, author, flow)
    elif cell.action in ("read", "search", "react", "mark read"):
        target.message = await send(session, owner, flow)
    return target


async def _chat(session: Session, cell: Cell) -> Target:
    """A chat of a fresh creator (its owner) and a fresh partner: a chat between two users
    can be made only once."""
    creator = await session.fresh()
    partner = await session.fresh(superuser=cell.actor.startswith("superuser member"))
    reply = await session.ok(creator, "add_flow", flow=[{
        "type": "chat", "title": "rights", "info": "", "users": [partner.uuid]}])
    flow = str(reply["data"]["flow"][0]["uuid"])
    actor = {"owner": creator, "owner, not the author": creator,
             "superuser non-member": await session.fixed("superuser outsider"),
             "non-member": await session.fixed("outsider")}.get(cell.actor, partner)
    target = Target(actor, flow, invitee=await session.fixed("invitee"))
    if cell.actor == "former member":
        await session.ok(partner, "leave_flow", flow=[{"uuid": flow}])
    if cell.action in ("edit", "delete") or cell.actor in NAMED_MESSAGE:
        # The partner writes, except where the actor is the partner and must not be the author.
        author = creator if cell.actor in ("another member", "superuser member, not the author") \
            else partner
        target.message = await _message(session, cell, author, flow)
    elif cell.action in ("read", "search", "react", "mark read"):
        target.message = await send(session, creator, flow)
    return target


async def _message(session: Session, cell: Cell, author: Account, flow: str) -> str:
    """The message an edit or delete cell acts on, in the state the cell names."""
    if cell.actor == "member, unknown message":
        return unknown_uuid()
    message = await send(session, author, flow)
    if cell.actor == "author who left":
        await session.ok(author, "leave_flow", flow=[{"uuid": flow}])
    if cell.actor == "author, message deleted":
        await session.ok(author, "delete_message", message=[{"uuid": message}])
    return message


# -- the actions -----------------------------------------------------------------------------


def mtp_outcome(reply: dict[str, Any]) -> Outcome:
    code = int(reply["errors"]["code"])
    return "yes" if code in (200, 206) else code


def mx_outcome(response: httpx.Response) -> Outcome:
    if response.status_code == 200:
        return "yes"
    errcode = response.json().get("errcode")
    if ERRCODES.get(response.status_code) != errcode:
        return f"{response.status_code} {errcode}"
    return response.status_code


Act = Callable[[Session, Target], Awaitable[Outcome]]


def _mtp(kind: str, **data: Callable[[Target], Any]) -> Act:
    async def act(session: Session, target: Target) -> Outcome:
        return mtp_outcome(await session.mtp(
            target.actor, kind, **{key: value(target) for key, value in data.items()}))
    return act


def _mx(method: str, path: Callable[[Target], str],
        body: Callable[[Target], dict[str, Any]] = lambda target: {}) -> Act:
    async def act(session: Session, target: Target) -> Outcome:
        return mx_outcome(await session.mx(target.actor, method, path(target), body(target)))
    return act


async def _search_mtp(session: Session, target: Target) -> Outcome:
    """search_messages in the target's flow: "yes" only when the flow's message is found."""
    reply = await session.mtp(target.actor, "search_messages", flow=_flow(target),
                              search={"text": "hello"})
    outcome = mtp_outcome(reply)
    if outcome == "yes" and target.message not in [
            message["uuid"] for message in reply["data"]["message"]]:
        return "200 without the message"
    return outcome


async def _search_mx(session: Session, target: Target) -> Outcome:
    """POST /search in the target's room: "yes" only when the room's message is found."""
    response = await session.mx(target.actor, "POST", "/search", {"search_categories": {
        "room_events": {"search_term": "hello", "filter": {"rooms": [target.room]}}}})
    outcome = mx_outcome(response)
    results = response.json()["search_categories"]["room_events"]["results"] \
        if outcome == "yes" else []
    if outcome == "yes" and target.event not in [r["result"]["event_id"] for r in results]:
        return "200 without the event"
    return outcome


def _txn() -> str:
    return uuid.uuid4().hex


def _flow(target: Target) -> list[dict[str, Any]]:
    return [{"uuid": target.flow}]


# action -> ([(request name, act)] over MTP, over Matrix)
ACTIONS: dict[str, tuple[list[tuple[str, Act]], list[tuple[str, Act]]]] = {
    "read": (
        [("all_messages", _mtp("all_messages", flow=_flow))],
        [("GET /messages", _mx("GET", lambda t: f"/rooms/{t.room}/messages?dir=b")),
         ("GET /event", _mx("GET", lambda t: f"/rooms/{t.room}/event/{t.event}"))]),
    "search": (
        [("search_messages", _search_mtp)],
        [("POST /search", _search_mx)]),
    "send": (
        [("send_message", _mtp("send_message", flow=_flow, message=lambda t: [
            {"client_id": 2, "text": "again"}]))],
        [("PUT /send", _mx("PUT", lambda t: f"/rooms/{t.room}/send/m.room.message/{_txn()}",
                           lambda t: {"msgtype": "m.text", "body": "again"}))]),
    "edit": (
        [("edited_message", _mtp("edited_message", message=lambda t: [
            {"uuid": t.message, "text": "edited"}]))],
        [("PUT /send m.replace", _mx(
            "PUT", lambda t: f"/rooms/{t.room}/send/m.room.message/{_txn()}",
            lambda t: {"msgtype": "m.text", "body": "* edited",
                       "m.new_content": {"msgtype": "m.text", "body": "edited"},
                       "m.relates_to": {"rel_type": "m.replace", "event_id": t.event}}))]),
    "delete": (
        [("delete_message", _mtp("delete_message", message=lambda t: [{"uuid": t.message}]))],
        [("PUT /redact", _mx("PUT", lambda t: f"/rooms/{t.room}/redact/{t.event}/{_txn()}"))]),
    "invite": (
        [("invite_flow", _mtp("invite_flow", flow=lambda t: [
            {"uuid": t.flow, "users": [t.invitee.uuid if t.invitee else ""]}]))],
        [("POST /invite", _mx("POST", lambda t: f"/rooms/{t.room}/invite",
                              lambda t: {"user_id": t.invitee.user_id if t.invitee else ""}))]),
    "rename": (
        [],  # MTP has no method that changes a flow's title or info
        [("PUT m.room.name", _mx("PUT", lambda t: f"/rooms/{t.room}/state/m.room.name",
                                 lambda t: {"name": "renamed"})),
         ("PUT m.room.topic", _mx("PUT", lambda t: f"/rooms/{t.room}/state/m.room.topic",
                                  lambda t: {"topic": "retold"}))]),
    "join": (
        [("join_flow", _mtp("join_flow", flow=_flow))],
        [("POST /join/{roomId}", _mx("POST", lambda t: f"/join/{t.room}")),
         ("POST /rooms/{roomId}/join", _mx("POST", lambda t: f"/rooms/{t.room}/join"))]),
    "leave": (
        [("leave_flow", _mtp("leave_flow", flow=_flow))],
        [("POST /leave", _mx("POST", lambda t: f"/rooms/{t.room}/leave"))]),
    "mark read": (
        [("mark_read", _mtp("mark_read", flow=_flow, message=lambda t: [{"uuid": t.message}]))],
        [("POST /receipt m.read", _mx("POST", lambda t: f"/rooms/{t.room}/receipt/m.read/{t.event}"
                                      ))]),
    "react": (
        [("react", _mtp("react", message=lambda t: [{"uuid": t.message, "reaction": "👍"}]))],
        [("PUT /send m.reaction", _mx(
            "PUT", lambda t: f"/rooms/{t.room}/send/m.reaction/{_txn()}",
            lambda t: {"m.relates_to": {"rel_type": "m.annotation", "event_id": t.event,
                                        "key": "👍"}}))]),
}


@pytest.mark.parametrize("cell", CELLS, ids=[cell.id for cell in CELLS])
async def test_rights(session: Session, cell: Cell) -> None:
    over_mtp, over_matrix = ACTIONS[cell.action]
    requests = [(f"MTP {name}", act) for name, act in over_mtp] + \
        [(f"Matrix {name}", act) for name, act in over_matrix]
    outcomes: dict[str, Outcome] = {}
    # A request that reads, searches, renames or is refused leaves the flow as the next needs
    # it (if one is wrongly let through, the test fails on it anyway); any other request gets
    # a flow of its own.
    shared = await build(session, cell) \
        if cell.action in ("read", "search", "rename") or cell.expected != "yes" else None
    for name, act in requests:
        outcomes[name] = await act(session, shared or await build(session, cell))
    assert outcomes == {name: cell.expected for name in outcomes}, \
        f"the table says {cell.expected!r}; the server answered {outcomes}"
