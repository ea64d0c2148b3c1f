"""Moving from the original server: its users, flows and messages, by this server's rules.

`Importer` reads the original's database (`mod.db.original`) and writes what this server
accepts, batch by batch, each batch one writer job (one transaction) that logs its changes
like any other write, so running servers deliver them. What this server refuses is reported
one line each and left out; what is already here (the same uuid) is counted and left alone,
so a second run imports nothing twice. Passwords, kept in clear by the original, are hashed
with argon2id in a thread pool, never on the writer thread, and never written or shown.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from mod import lib
from mod.content import FILE_FIELDS
from mod.db import imported
from mod.db.dbhandler import FlowRow, MessageRow
from mod.db.media import MediaRow
from mod.db.original import OldFlow, OldMessage, OldUser, Source
from mod.service.accountrules import valid_email
from mod.service.importrows import flow_problem, message_problem, user_problem
from mod.service.media import Media

T = TypeVar("T")
R = TypeVar("R")
Run = Callable[..., Any]  # (fn, *args): a read or a committed write on the target's engine

USER_BATCH = 200
FLOW_BATCH = 200
MESSAGE_BATCH = 1000


@dataclass(slots=True)
class Tally:
    """What happened to each kind of row ("users", "flows", "messages")."""

    imported: Counter[str] = field(default_factory=Counter)
    present: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)


@dataclass(slots=True, frozen=True)
class _Flow:
    uuid: str
    type: str
    members: frozenset[str]


def _chunks(items: Sequence[T], size: int) -> Iterable[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class Importer:
    """One import from `source` through `read` and `write` (the target's engine)."""

    def __init__(self, source: Source, read: Run, write: Run, out: Callable[[str], None],
                 token_ttl: int, dry_run: bool = False, workers: int | None = None,
                 media: Media | None = None) -> None:
        self.source = source
        self.media = media  # where messages' files go, for Matrix clients (none: MTP only)
        self.read = read
        self.write = write
        self.out = out
        self.token_ttl = token_ttl
        self.dry_run = dry_run
        self.workers = workers or os.cpu_count() or 2
        self.tally = Tally()
        self.now = int(time.time())

    def skip(self, kind: str, what: str, why: str) -> None:
        self.tally.skipped[kind] += 1
        self.out(f"skipped {what}: {why}")

    def note(self, what: str, why: str) -> None:
        self.out(f"note: {what}: {why}")

    def run(self) -> Tally:
        users = self.source.users()
        admins = set(self.source.admins())
        flows = self.source.flows()
        total = self.source.message_count()
        self.out(f"The original's database holds {_count(len(users), 'user')} "
                 f"({_count(len(admins), 'admin')}), {_count(len(flows), 'flow')} and "
                 f"{_count(total, 'message')}.")
        known_users = self._users(users, admins)
        known_flows = self._flows(flows, known_users)
        self._messages(known_users, known_flows, total)
        return self.tally

    def _insert(self, kind: str, fn: Run, rows: Sequence[R], args: tuple[Any, ...],
                label: Callable[[R], str]) -> tuple[list[str], list[R]]:
        """Write `rows` with `fn(rows, *args)` in one transaction: (the uuids `fn` found
        taken here meanwhile, the rows the database refused).

        The row checks keep out what this server cannot store; should the database still
        refuse a batch, it is written again row by row, and each row it refuses alone is
        reported in one line and skipped, the others written. When every row of a batch of
        several fails alone too, the fault is not in a row (the database is gone, the disk
        full): the batch's error is raised, and the import stops there."""
        try:
            return list(self.write(fn, list(rows), *args)), []
        except Exception as failed:
            taken: list[str] = []
            refused: list[tuple[R, Exception]] = []
            for row in rows:
                try:
                    taken.extend(self.write(fn, [row], *args))
                except Exception as exc:
                    refused.append((row, exc))
            if len(rows) > 1 and len(refused) == len(rows):
                raise failed from None
            for row, error in refused:
                self.skip(kind, label(row), f"the database refused it: {_first_line(error)}")
            return taken, [row for row, _ in refused]

    def _progress(self, kind: str, done: int, total: int) -> None:
        verb = "checked" if self.dry_run else "done"
        self.out(f"{kind}: {done}/{total} {verb} ({self.tally.imported[kind]} "
                 f"{'to import' if self.dry_run else 'imported'}, "
                 f"{self.tally.present[kind]} already here, {self.tally.skipped[kind]} skipped)")

    # -- users ---------------------------------------------------------------------------------

    def _users(self, users: list[OldUser], admins: set[str]) -> dict[int, str]:
        """Import the accounts; return {source id: uuid} of those that are here now."""
        problems = {u.id: user_problem(u) for u in users}
        fine = [u for u in users if problems[u.id] is None]
        here, taken = self.read(imported.existing_users, [u.uuid for u in fine],
                                [u.login for u in fine])
        known: dict[int, str] = {}
        logins: dict[str, int] = {}
        todo: list[OldUser] = []
        for user in users:
            what = f"user {user.id} ({user.login!r})"
            problem = problems[user.id]
            if problem is None and user.uuid in here:
                self.tally.present["users"] += 1
                known[user.id] = user.uuid
                continue
            if problem is None and user.login in taken:
                problem = (f"the login belongs to another account here (uuid "
                           f"{taken[user.login]}); not merged")
            if problem is None and user.login in logins:
                problem = f"user {logins[user.login]} of the original has the same login"
            if problem is not None:
                self.skip("users", what, problem)
                continue
            logins[user.login] = user.id
            todo.append(user)
            known[user.id] = user.uuid
            if not user.password:
                self.note(what, "has no password: it cannot log in until `manage.py user "
                                "reset-password` gives it one")
            if user.email and not valid_email(user.email):
                self.note(what, f"its email {user.email!r} is not a valid address: left out")
        for name in sorted(admins - {u.login for u in users if u.id in known}):
            self.note(f"admin {name!r}", "no account with that login is imported: not made "
                                         "a superuser")
        checked = len(users) - len(todo)
        if todo and not self.dry_run:
            self.out(f"Hashing {len(todo)} passwords with argon2id on {self.workers} threads "
                     "(the slow part)...")
        with ThreadPoolExecutor(self.workers, thread_name_prefix="argon2") as pool:
            for batch in _chunks(todo, USER_BATCH):
                if not self.dry_run:
                    hashes = list(pool.map(lambda u: lib.hash_password(u.password)
                                           if u.password else "", batch))
                    rows = [self._user_row(u, h, u.login in admins) for u, h in
                            zip(batch, hashes, strict=True)]
                    taken, refused = self._insert(
                        "users", imported.insert_new_users, rows, (),
                        lambda row: f"user {row['login']!r} ({row['uuid']})")
                    for row in refused:
                        user = next(u for u in batch if u.uuid == row["uuid"])
                        known.pop(user.id, None)
                        self.tally.imported["users"] -= 1
                    for uuid in taken:
                        user = next(u for u in batch if u.uuid == uuid)
                        known.pop(user.id, None)
                        self.skip("users", f"user {user.id} ({user.login!r})",
                                  "its uuid or login was taken here while importing")
                        self.tally.imported["users"] -= 1
                self.tally.imported["users"] += len(batch)
                checked += len(batch)
                self._progress("users", checked, len(users))
        if not todo:
            self._progress("users", len(users), len(users))
        return known

    def _user_row(self, user: OldUser, password_hash: str, superuser: bool) -> dict[str, Any]:
        return {"uuid": user.uuid, "login": user.login, "password_hash": password_hash,
                "username": user.username or user.login, "bio": user.bio,
                "avatar": user.avatar, "email": user.email if valid_email(user.email) else "",
                "is_bot": user.is_bot, "is_superuser": superuser, "token_ttl": self.token_ttl,
                "time_created": self.now}

    # -- flows ---------------------------------------------------------------------------------

    def _flows(self, flows: list[OldFlow], users: dict[int, str]) -> dict[int, _Flow]:
        """Import the flows; return {source id: flow} of those that are here now."""
        authors: dict[int, list[int]] = {}
        for flow_id, user_id in self.source.authors():
            authors.setdefault(flow_id, []).append(user_id)
        uuids = set(users.values())
        keys = {f.id: self._chat_key(f, users) for f in flows}
        problems = {f.id: flow_problem(f) for f in flows}
        here, chats = self.read(imported.existing_flows,
                                [f.uuid for f in flows if problems[f.id] is None],
                                [key for key in keys.values() if key])
        known: dict[int, _Flow] = {}
        todo: list[tuple[FlowRow, str | None]] = []
        for flow in flows:
            what = f"flow {flow.id} ({flow.flow_type} {flow.title!r})"
            problem = problems[flow.id]
            if problem is None and flow.uuid in here:
                flow_type, members = here[flow.uuid]
                self.tally.present["flows"] += 1
                known[flow.id] = _Flow(flow.uuid, flow_type, frozenset(members))
                continue
            if problem is not None:
                self.skip("flows", what, problem)
                continue
            row = self._flow_row(flow, users, uuids, authors.get(flow.id, []), what)
            key = keys[flow.id]
            if flow.flow_type == "chat" and len(row["users"]) != 2:
                self.skip("flows", what, f"a chat has exactly two members here; "
                                         f"{len(row['users'])} of its members were imported")
            elif not row["users"]:
                self.skip("flows", what, "none of its members was imported")
            elif key is not None and key in chats:
                self.skip("flows", what, "a chat between these two users exists already")
            else:
                if key is not None:
                    chats.add(key)
                todo.append((row, key))
                known[flow.id] = _Flow(flow.uuid, flow.flow_type, frozenset(row["users"]))
        for number, batch in enumerate(_chunks(todo, FLOW_BATCH)):
            if not self.dry_run:
                taken, refused = self._insert("flows", imported.insert_new_flows, batch,
                                              (self.now,), lambda row: f"flow {row[0]['uuid']}")
                for row, _ in refused:
                    known = {k: v for k, v in known.items() if v.uuid != row["uuid"]}
                    self.tally.imported["flows"] -= 1
                for uuid in taken:
                    known = {k: v for k, v in known.items() if v.uuid != uuid}
                    self.skip("flows", f"flow {uuid}", "its uuid or chat was taken here while "
                                                        "importing")
                    self.tally.imported["flows"] -= 1
            self.tally.imported["flows"] += len(batch)
            self._progress("flows", len(flows) - len(todo) + number * FLOW_BATCH + len(batch),
                           len(flows))
        if not todo:
            self._progress("flows", len(flows), len(flows))
        return known

    @staticmethod
    def _chat_key(flow: OldFlow, users: dict[int, str]) -> str | None:
        if flow.flow_type != "chat":
            return None
        members = sorted({users[m] for m in flow.members if m in users})
        return ":".join(members) if len(members) == 2 else None

    def _flow_row(self, flow: OldFlow, users: dict[int, str], uuids: set[str],
                  authors: list[int], what: str) -> FlowRow:
        members = [users[m] for m in flow.members if m in users]
        left_out = [m for m in flow.members if m not in users]
        if left_out:
            self.note(what, f"members not imported are left out: users {left_out}")
        members = list(dict.fromkeys(members))
        owner = flow.owner
        if flow.flow_type != "chat":
            # The original let anyone write anywhere; here only members do: those who wrote
            # in a group or channel become its members, so their messages stay readable.
            writers = [users[a] for a in authors if a in users and users[a] not in members]
            if writers:
                self.note(what, f"{_count(len(writers), 'user')} who wrote in it become"
                                f"{'s a member' if len(writers) == 1 else ' members'}")
                members.extend(writers)
            if owner in uuids and owner not in members:
                members.insert(0, owner)
        if owner not in members and members:
            if flow.flow_type != "chat":
                self.note(what, f"its owner {owner!r} was not imported: the first member, "
                                f"{members[0]}, owns it")
            owner = members[0]
        return FlowRow(uuid=flow.uuid, time=flow.time_created or self.now, type=flow.flow_type,
                       title=flow.title, info=flow.info, owner=owner, users=members,
                       private=flow.flow_type == "chat")

    # -- messages ------------------------------------------------------------------------------

    def _messages(self, users: dict[int, str], flows: dict[int, _Flow], total: int) -> None:
        done = 0
        for batch in self.source.messages(MESSAGE_BATCH):
            problems = {m.id: message_problem(m) for m in batch}
            here = self.read(imported.existing_messages,
                             [m.uuid for m in batch if problems[m.id] is None])
            rows: list[MessageRow] = []
            for message in batch:
                if message.uuid in here:
                    self.tally.present["messages"] += 1
                    continue
                problem = problems[message.id] or self._message_refused(message, users, flows)
                if problem is not None:
                    self.skip("messages", f"message {message.id} ({message.uuid})", problem)
                    continue
                rows.append(self._message_row(message, users, flows))
            if rows and not self.dry_run:
                files = self._files(rows)
                describe = self.media.matrix_content if self.media else None
                taken, refused = self._insert("messages", imported.insert_new_messages, rows,
                                              (self.now, files, describe),
                                              lambda row: f"message {row['uuid']}")
                self.tally.imported["messages"] -= len(refused)
                for uuid in taken:
                    self.skip("messages", f"message {uuid}", "its uuid was taken here while "
                                                             "importing")
                    self.tally.imported["messages"] -= 1
            self.tally.imported["messages"] += len(rows)
            done += len(batch)
            self._progress("messages", done, total)
        if not total:
            self._progress("messages", 0, 0)

    def _files(self, rows: list[MessageRow]) -> dict[str, tuple[str, MediaRow]]:
        """Each message's first file in base64, written to the media store, as a message
        sent over MTP puts it there."""
        if self.media is None:
            return {}
        files = {}
        for row in rows:
            content = {"text": row["text"], "file_picture": row["file_picture"],
                       "file_video": row["file_video"], "file_audio": row["file_audio"],
                       "file_document": row["file_document"]}
            stored = self.media.put_file(content, row["from_user"])
            if stored is not None:
                files[row["uuid"]] = stored
        return files

    @staticmethod
    def _message_refused(message: OldMessage, users: dict[int, str], flows: dict[int, _Flow]
                         ) -> str | None:
        assert message.flow_id is not None and message.user_id is not None
        flow = flows.get(message.flow_id)
        if flow is None:
            return f"its flow {message.flow_id} was not imported"
        author = users.get(message.user_id)
        if author is None:
            return f"its author, user {message.user_id}, was not imported"
        if author not in flow.members:
            return f"its author is not a member of {flow.type} {flow.uuid}"
        return None

    @staticmethod
    def _message_row(message: OldMessage, users: dict[int, str], flows: dict[int, _Flow]
                     ) -> MessageRow:
        assert message.flow_id is not None and message.user_id is not None
        assert message.time is not None
        files = message.files
        return MessageRow(
            uuid=message.uuid, client_id=0, text=message.text,
            from_user=users[message.user_id], from_flow=flows[message.flow_id].uuid,
            time=message.time, file_picture=files[FILE_FIELDS[0]],
            file_video=files[FILE_FIELDS[1]], file_audio=files[FILE_FIELDS[2]],
            file_document=files[FILE_FIELDS[3]], emoji=files["emoji"],
            edited_time=message.edited_time if message.edited_status else 0,
            edited_status=message.edited_status, deleted=False)


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"
