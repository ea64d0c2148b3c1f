"""The original Morelia Server's database (the 2022 releases), opened read only.

The original kept its data with SQLObject's default naming: tables `user_config`, `flow`,
`message`, `admin` and the flow/user join table `flow_user_config` (`flow_id`,
`user_config_id`), each with an integer `id`. Its BLOB columns (avatar, files, emoji) hold the
UTF-8 bytes of the strings clients sent: as they are on PostgreSQL (BYTEA), as base64 text on
SQLite (SQLObject's encoding there); `blob` gives back the strings. This module
only reads: an SQLite file is opened with `mode=ro`, a PostgreSQL database in read-only
transactions.
"""

from __future__ import annotations

import base64
import binascii
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from mod.content import FILE_FIELDS

REQUIRED_TABLES = ("user_config", "flow", "flow_user_config", "message")
# libpq's own URI parameters; SQLObject's (debug, cache, ...) are dropped.
LIBPQ_PARAMS = frozenset({"sslmode", "sslrootcert", "sslcert", "sslkey", "sslpassword",
                          "connect_timeout", "application_name", "options", "host", "port",
                          "target_session_attrs", "passfile", "user", "password", "dbname"})


class SourceError(Exception):
    """The source database cannot be read as the original's; one line for the operator."""


@dataclass(slots=True, frozen=True)
class OldUser:
    id: int
    uuid: str
    login: str
    password: str
    username: str
    is_bot: bool
    email: str
    avatar: str  # as the original served it (see blob)
    bio: str


@dataclass(slots=True, frozen=True)
class OldFlow:
    id: int
    uuid: str
    time_created: int | None
    flow_type: str
    title: str
    info: str
    owner: str
    members: tuple[int, ...]  # user_config ids


@dataclass(slots=True, frozen=True)
class OldMessage:
    id: int
    uuid: str
    text: str
    time: int | None
    files: dict[str, str]  # file_* and emoji, as the original served them ("" when none)
    edited_time: int
    edited_status: bool
    user_id: int | None
    flow_id: int | None


@dataclass(slots=True, frozen=True)
class Location:
    kind: str  # "sqlite" or "postgres"
    target: str  # a file path, or a libpq URI
    shown: str  # what may be printed (no password)


def locate(source: str) -> Location:
    """Where SOURCE points: the original's `[DATABASE] URI` forms (`sqlite:/abs/path`,
    `sqlite:///abs/path`, `sqlite:relative.db`, `postgres://...`) or a plain file path."""
    if source.startswith(("postgres://", "postgresql://")):
        parts = urlsplit("postgresql://" + source.split("://", 1)[1])
        query = urlencode([(k, v) for k, v in parse_qsl(parts.query) if k in LIBPQ_PARAMS])
        target = urlunsplit(parts._replace(query=query))
        shown = target
        if parts.password is not None:
            shown = target.replace(f":{parts.password}@", ":***@", 1)
        return Location("postgres", target, shown)
    if source.startswith("sqlite:"):
        rest = source[len("sqlite:"):].split("?", 1)[0]
        if rest.startswith("//"):
            rest = rest[2:]
        if len(rest) > 2 and rest[0] == "/" and rest[2] == ":":  # sqlite:/C:/path (Windows)
            rest = rest[1:]
        source = rest
    if not source or source in (":memory:", "/:memory:"):
        raise SourceError("the source must be a database file or a PostgreSQL URI")
    if "://" in source:
        raise SourceError(f"unknown kind of source {source.split('://', 1)[0]!r}: give an "
                          "SQLite file path or a postgres:// URI")
    return Location("sqlite", source, source)


def blob(value: Any, sqlite: bool) -> str:
    """A BLOB column's value as the original served it over MTP ("" for none).

    The original took these fields as strings in JSON and kept the string's UTF-8 bytes (on
    SQLite, SQLObject wrote those bytes as base64 text); it answered with the bytes decoded
    as UTF-8, so a client read back the very string it sent. That string is what is kept.
    Bytes that are not UTF-8 (written by other tools; the original failed to answer with
    them) become their base64."""
    if value is None:
        return ""
    if isinstance(value, memoryview):
        value = value.tobytes()
    if sqlite:  # SQLObject's base64, as TEXT (or as a BLOB of that text)
        try:
            value = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            if isinstance(value, str):
                return value  # not base64: SQLObject did not write it; keep the text
    if isinstance(value, str):
        return value
    raw = bytes(value)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return base64.b64encode(raw).decode("ascii")


def flag(value: Any) -> bool:
    """A BOOLEAN as either database holds it (1/0, true/false, 't'/'f')."""
    if isinstance(value, str):
        return value.strip().lower() not in ("", "0", "f", "false", "no", "off")
    return bool(value)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (bytes, memoryview)):
        return bytes(value).decode("utf-8", "replace")
    return str(value)


class Source:
    """An open, read-only connection to the original's database."""

    def __init__(self, location: Location) -> None:
        self.location = location
        self.sqlite = location.kind == "sqlite"
        try:
            if self.sqlite:
                path = Path(location.target)
                if not path.is_file():
                    raise SourceError(f"there is no database file {path}")
                self.raw: Any = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True,
                                                isolation_level=None)
                self.raw.execute("BEGIN")  # one snapshot for the whole read
            else:
                import psycopg

                self.raw = psycopg.connect(location.target, connect_timeout=5)
                self.raw.read_only = True
                self.raw.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        except SourceError:
            raise
        except Exception as exc:
            raise SourceError(f"cannot open {location.shown}: {_line(exc)}") from None
        missing = [name for name in REQUIRED_TABLES if not self._has_table(name)]
        if missing:
            self.close()
            raise SourceError(f"{location.shown} is not an original Morelia Server database: "
                              f"it lacks the tables {', '.join(missing)}")

    def __enter__(self) -> Source:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        try:
            self.raw.rollback()  # nothing was written; end the read-only transaction
        finally:
            self.raw.close()

    def _all(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        if not self.sqlite:
            sql = sql.replace("?", "%s")
        cursor = self.raw.cursor()
        try:
            cursor.execute(sql, params)
            return list(cursor.fetchall())
        finally:
            cursor.close()

    def _has_table(self, name: str) -> bool:
        if self.sqlite:
            sql = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?"
        else:
            sql = "SELECT 1 FROM information_schema.tables WHERE table_name = ? " \
                  "AND table_schema = ANY(current_schemas(false))"
        return bool(self._all(sql, name))

    def users(self) -> list[OldUser]:
        rows = self._all("SELECT id, uuid, login, password, username, is_bot, email, avatar, "
                         "bio FROM user_config ORDER BY id")
        return [OldUser(int(r[0]), _text(r[1]), _text(r[2]), _text(r[3]), _text(r[4]),
                        flag(r[5]), _text(r[6]), blob(r[7], self.sqlite), _text(r[8]))
                for r in rows]

    def admins(self) -> list[str]:
        if not self._has_table("admin"):
            return []
        return [_text(row[0]) for row in self._all("SELECT username FROM admin ORDER BY id")]

    def flows(self) -> list[OldFlow]:
        members: dict[int, list[int]] = {}
        for flow_id, user_id in self._all("SELECT flow_id, user_config_id FROM "
                                          "flow_user_config ORDER BY flow_id, user_config_id"):
            members.setdefault(int(flow_id), []).append(int(user_id))
        rows = self._all("SELECT id, uuid, time_created, flow_type, title, info, owner "
                         "FROM flow ORDER BY id")
        return [OldFlow(int(r[0]), _text(r[1]), None if r[2] is None else int(r[2]),
                        _text(r[3]), _text(r[4]), _text(r[5]), _text(r[6]),
                        tuple(dict.fromkeys(members.get(int(r[0]), []))))
                for r in rows]

    def authors(self) -> list[tuple[int, int]]:
        """(flow id, user id) of everyone who wrote in a flow."""
        rows = self._all("SELECT DISTINCT flow_id, user_id FROM message "
                         "WHERE flow_id IS NOT NULL AND user_id IS NOT NULL")
        return [(int(row[0]), int(row[1])) for row in rows]

    def message_count(self) -> int:
        return int(self._all("SELECT COUNT(*) FROM message")[0][0])

    def messages(self, batch: int) -> Iterator[list[OldMessage]]:
        """Every message, oldest first (by time, then id; those without a time last), in
        lists of at most `batch`."""
        # (no time?, time, id) of the last row read; before the first, below every row. The
        # time goes back as it came: SQLite keeps an integer beyond 64 bits as a REAL, which
        # a float binds and an int cannot.
        after: tuple[int, Any, int] = (-1, 0, 0)
        sql = ("SELECT id, uuid, text, time, file_picture, file_video, file_audio, "
               "file_document, emoji, edited_time, edited_status, user_id, flow_id, "
               "CASE WHEN time IS NULL THEN 1 ELSE 0 END AS no_time, COALESCE(time, 0) AS t "
               "FROM message WHERE (CASE WHEN time IS NULL THEN 1 ELSE 0 END, "
               "COALESCE(time, 0), id) > (?, ?, ?) ORDER BY no_time, t, id LIMIT ?")
        while True:
            rows = self._all(sql, *after, batch)
            if not rows:
                return
            yield [self._message(row) for row in rows]
            last = rows[-1]
            after = (int(last[13]), last[14], int(last[0]))

    def _message(self, r: tuple[Any, ...]) -> OldMessage:
        files = {name: blob(value, self.sqlite)
                 for name, value in zip((*FILE_FIELDS, "emoji"), r[4:9], strict=True)}
        return OldMessage(int(r[0]), _text(r[1]), _text(r[2]),
                          None if r[3] is None else int(r[3]), files,
                          int(r[9] or 0), flag(r[10]),
                          None if r[11] is None else int(r[11]),
                          None if r[12] is None else int(r[12]))


def _line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
