"""manage.py's backups and restores: SQLite through its online backup API, PostgreSQL through
pg_dump and pg_restore (or the exact command to run where they are missing)."""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import sqlite3
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from loguru import logger

from mod.cli.common import CliError, Database, first_line
from mod.db import heartbeat, schema
from mod.db.dbhandler import table_exists
from mod.db.engine import Conn

# libpq's own URI parameters; the rest of a configured URI (SQLObject's cache=0, ...) is not
# libpq's and would make pg_dump refuse the URI.
LIBPQ_PARAMS = {"sslmode", "sslrootcert", "sslcert", "sslkey", "connect_timeout",
                "application_name", "options", "target_session_attrs", "host", "port"}


@dataclass(frozen=True, slots=True)
class PgTarget:
    """A configured PostgreSQL URI as libpq tools take it: the password kept apart, so that
    it travels in PGPASSWORD and never shows in a process list or a printed command."""

    uri: str
    password: str

    @classmethod
    def of(cls, configured: str) -> PgTarget:
        parts = urlsplit(configured.replace("postgres://", "postgresql://", 1))
        query = urlencode([(k, v) for k, v in parse_qsl(parts.query) if k in LIBPQ_PARAMS])
        host = parts.hostname or ""
        host = f"[{host}]" if ":" in host else host
        netloc = (f"{parts.username}@" if parts.username else "") + host + (
            f":{parts.port}" if parts.port else "")
        uri = urlunsplit(("postgresql", netloc, parts.path, query, ""))
        return cls(uri, parts.password or "")

    def env(self) -> dict[str, str]:
        return {**os.environ, **({"PGPASSWORD": self.password} if self.password else {})}

    def show(self, command: list[str]) -> str:
        prefix = "PGPASSWORD=... " if self.password else ""
        return prefix + shlex.join(command)


def _check_target(path: Path) -> None:
    if path.exists():
        raise CliError(f"{path} already exists: choose another name, or remove it first")
    if not path.parent.is_dir():
        raise CliError(f"there is no directory {path.parent}")


def backup(database: Database, target: Path) -> str:
    """Copy a consistent snapshot of the database to `target` while servers run; say how."""
    _check_target(target)
    if database.engine.postgres:
        return _pg_dump(database, target)
    source = Path(database.engine.connection.filename)
    try:
        schema.copy_sqlite(source, target)
        with contextlib.closing(sqlite3.connect(target, isolation_level=None)) as copy:
            # The copy's heartbeats are the live servers': a restore of it must not see them.
            if copy.execute("SELECT 1 FROM sqlite_master WHERE name = 'heartbeats'").fetchone():
                copy.execute("DELETE FROM heartbeats")
    except sqlite3.Error as exc:
        target.unlink(missing_ok=True)
        raise CliError(f"cannot copy {source} to {target}: {first_line(exc)}") from None
    logger.info("database backed up to {}", target)
    return f"Copied {source} to {target} ({target.stat().st_size} bytes)."


def _pg_dump(database: Database, target: Path) -> str:
    pg = PgTarget.of(database.engine.settings.uri)
    command = ["pg_dump", "--format=custom", "--no-owner", "--exclude-table-data=heartbeats",
               "--file", str(target), pg.uri]
    if shutil.which("pg_dump") is None:
        raise CliError(f"pg_dump is not on PATH; install PostgreSQL's client tools, or run: "
                       f"{pg.show(command)}")
    _run(command, pg)
    logger.info("database backed up to {}", target)
    return f"Dumped {database.uri} to {target} ({target.stat().st_size} bytes, pg_dump custom " \
           "format)."


def _run(command: list[str], pg: PgTarget) -> None:
    done = subprocess.run(command, env=pg.env(), capture_output=True, text=True, check=False)
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines() or ["no output"]
        raise CliError(f"{command[0]} failed (exit status {done.returncode}): {lines[0]}")


def live_servers(conn: Conn, now: int) -> list[tuple[str, int, int]]:
    return heartbeat.live(conn, now) if table_exists(conn, "heartbeats") else []


def refuse_if_served(database: Database) -> None:
    """Stop with one line while a server process keeps a heartbeat in the database."""
    servers = database.read(live_servers, int(time.time()))
    if servers:
        host, pid, age = servers[0]
        raise CliError(f"{len(servers)} server process(es) use {database.uri} (process {pid} "
                       f"on {host}, seen {age} s ago): stop them first")


def restore(database: Database, source: Path) -> str:
    """Put the backup `source` in place of the configured database; say how."""
    if not source.is_file():
        raise CliError(f"there is no backup file {source}")
    if database.engine.postgres:
        refuse_if_served(database)
        return _pg_restore(database, source)
    target = Path(database.engine.connection.filename)
    if target.exists():
        refuse_if_served(database)
    partial = target.with_name(target.name + ".restoring")
    with source.open("rb") as head:
        if head.read(16) != b"SQLite format 3\x00":
            raise CliError(f"{source} is not an SQLite database")
    try:
        with contextlib.closing(sqlite3.connect(f"file:{source}?mode=ro", uri=True)) as src:
            if src.execute("PRAGMA quick_check").fetchone() != ("ok",):
                raise CliError(f"{source} is damaged (PRAGMA quick_check fails)")
            if not src.execute("SELECT 1 FROM sqlite_master WHERE name = 'users'").fetchone():
                raise CliError(f"{source} holds no Morelia Server database")
            partial.unlink(missing_ok=True)
            with contextlib.closing(sqlite3.connect(partial)) as dst:
                src.backup(dst)
    except sqlite3.Error as exc:
        partial.unlink(missing_ok=True)
        raise CliError(f"{source} is not an SQLite database the server can use: "
                       f"{first_line(exc)}") from None
    # The replaced database's write-ahead log must not be replayed onto the restored file.
    for suffix in ("-wal", "-shm"):
        target.with_name(target.name + suffix).unlink(missing_ok=True)
    partial.replace(target)
    logger.info("database restored from {}", source)
    return f"Restored {target} from {source}; start the server on it."


def _pg_restore(database: Database, source: Path) -> str:
    pg = PgTarget.of(database.engine.settings.uri)
    custom = source.read_bytes()[:5] == b"PGDMP"
    command = (["pg_restore", "--clean", "--if-exists", "--no-owner", "--single-transaction",
                "--dbname", pg.uri, str(source)] if custom else
               ["psql", "--quiet", "--set", "ON_ERROR_STOP=1", "--single-transaction",
                "--file", str(source), pg.uri])
    if shutil.which(command[0]) is None:
        raise CliError(f"{command[0]} is not on PATH; install PostgreSQL's client tools, or "
                       f"run: {pg.show(command)}")
    _run(command, pg)
    logger.info("database restored from {}", source)
    return f"Restored {database.uri} from {source}; start the server on it."
