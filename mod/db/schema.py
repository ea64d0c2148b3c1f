"""Schema versions: what version a database is at, and the steps that bring it to CURRENT.

The database records its version in the one-row table `schema_version`. Databases made
before versions were recorded have no such table; their version is read from their columns
(1: as first released; 2: `flows.invite_only` added; 3: `messages.deleted` added).

Every change to the tables after version 3 ships a step here: a function of an open `Conn`
that takes version N to N+1, appended to STEPS, and CURRENT goes up by one (docs/DESIGN.md,
"Schema versions"). A fresh database is created at CURRENT directly from mod.db.models.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from loguru import logger
from sqlobject import SQLObject

from mod.db import dbhandler, search
from mod.db.engine import Conn, Engine
from mod.db.models import (
    AccountData,
    BackupKey,
    CrossSigningKey,
    Device,
    Heartbeat,
    KeyBackup,
    Media,
    MediaQuota,
    MediaRef,
    Mention,
    OneTimeKey,
    Reaction,
    Receipt,
    RegistrationToken,
    ToDevice,
)

VERSION_TABLE = "schema_version"
# Held for the check-and-upgrade on PostgreSQL, so several processes starting at once upgrade
# once (the same key as dbhandler.create_tables: a fresh database is created under it too).
LOCK_KEY = 7340
# The newest version a database without `schema_version` can be: versions were recorded from 3.
LAST_UNRECORDED = 3


class SchemaError(Exception):
    """The database cannot be used at its version; the message is one line for the operator."""


@dataclass(frozen=True, slots=True)
class Step:
    version: int  # the version this step produces
    summary: str
    run: Callable[[Conn], None]


def _create(conn: Conn, table: type[SQLObject]) -> None:
    """Create a table as its model stands now. A later step that changes the model must
    therefore find its change already made and leave it (as `_add_flag` does)."""
    if _has_table(conn, table.sqlmeta.table):
        return
    sql, constraints = table.createTableSQL(connection=conn.connection)
    for statement in [*sql.split(";\n"), *constraints]:
        conn.execute(statement)


def _add_flag(conn: Conn, table: str, column: str) -> None:
    """Add a false-by-default boolean column, unless a half-finished older start added it."""
    if column in _column_names(conn, table):
        return
    kind = "BOOL NOT NULL DEFAULT FALSE" if conn.postgres else "BOOLEAN NOT NULL DEFAULT 0"
    conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")


def _to_2(conn: Conn) -> None:
    _add_flag(conn, "flows", "invite_only")


def _to_3(conn: Conn) -> None:
    _add_flag(conn, "messages", "deleted")
    true = "TRUE" if conn.postgres else "1"
    conn.execute(f"UPDATE messages SET deleted = {true} WHERE uuid IN "
               "(SELECT subject FROM changes WHERE kind = 'message_deleted')")
    # `retry_key` is no longer looked up (retries use `txns`): its index only costs writes.
    conn.execute("DROP INDEX IF EXISTS messages_by_retry")


def _to_4(conn: Conn) -> None:
    _create(conn, Heartbeat)


def _to_5(conn: Conn) -> None:
    _add_flag(conn, "users", "locked")
    _create(conn, RegistrationToken)


def _to_6(conn: Conn) -> None:
    _create(conn, AccountData)
    _create(conn, Receipt)


def _to_7(conn: Conn) -> None:
    _add_flag(conn, "flows", "encrypted")
    for table in (Device, OneTimeKey, ToDevice, CrossSigningKey, KeyBackup, BackupKey):
        _create(conn, table)


def _to_8(conn: Conn) -> None:
    _create(conn, Media)
    _create(conn, MediaRef)


def _to_9(conn: Conn) -> None:
    columns = _column_names(conn, "devices")
    if "last_seen_ts" not in columns:
        conn.execute("ALTER TABLE devices ADD COLUMN last_seen_ts BIGINT NOT NULL DEFAULT 0")
    if "last_seen_ip" not in columns:
        conn.execute("ALTER TABLE devices ADD COLUMN last_seen_ip TEXT NOT NULL DEFAULT ''")


def _index(conn: Conn, table: type[SQLObject], name: str, *columns: str) -> None:
    conn.execute(f"CREATE INDEX IF NOT EXISTS {table.sqlmeta.table}_{name} "
                 f"ON {table.sqlmeta.table} ({', '.join(columns)})")


def _to_10(conn: Conn) -> None:
    _index(conn, OneTimeKey, "by_key", "user_uuid", "device_id", "key_id")
    _index(conn, ToDevice, "by_sender", "user_uuid", "sender")
    _index(conn, Media, "by_uploader", "uploader")
    _create(conn, MediaQuota)


def _to_11(conn: Conn) -> None:
    if "reply_to" not in _column_names(conn, "messages"):
        conn.execute("ALTER TABLE messages ADD COLUMN reply_to VARCHAR(40) NOT NULL DEFAULT ''")
    _create(conn, Reaction)


def _to_12(conn: Conn) -> None:
    _create(conn, Mention)


def _to_13(conn: Conn) -> None:
    columns = _column_names(conn, "messages")
    for column in ("file_name", "file_type"):
        if column not in columns:
            conn.execute(f"ALTER TABLE messages ADD COLUMN {column} VARCHAR(255) NOT NULL "
                         "DEFAULT ''")


def _to_14(conn: Conn) -> None:
    search.ensure(conn)


STEPS: tuple[Step, ...] = (
    Step(2, "flows.invite_only (private groups and channels)", _to_2),
    Step(3, "messages.deleted, filled in from the change log", _to_3),
    Step(4, "heartbeats (which servers use the database)", _to_4),
    Step(5, "users.locked and registration_tokens (operators' account controls)", _to_5),
    Step(6, "account_data and receipts (Matrix account data, read receipts)", _to_6),
    Step(7, "flows.encrypted and the end-to-end encryption tables (devices, one_time_keys, "
            "to_device, cross_signing_keys, key_backups, backup_keys)", _to_7),
    Step(8, "media and media_refs (the media store shared by Matrix and MTP)", _to_8),
    Step(9, "devices.last_seen_ts and last_seen_ip (when and where a device was last seen)",
         _to_9),
    Step(10, "indexes for the bounds (one-time keys by key ID, to-device by sender, media by "
             "uploader) and media_quotas (an operator's quota for one user)", _to_10),
    Step(11, "messages.reply_to and reactions (replies and reactions in both protocols)",
         _to_11),
    Step(12, "mentions (the members a message names)", _to_12),
    Step(13, "messages.file_name and file_type (a file's name and type, kept for MTP)",
         _to_13),
    Step(14, "the search index of messages (SQLite: the FTS5 table messages_search, its "
             "triggers and search_progress; PostgreSQL: messages.search_vector and its GIN "
             "index), filled with the messages there are", _to_14),
)
CURRENT = 1 + len(STEPS)


def _column_names(conn: Conn, table: str) -> set[str]:
    if conn.postgres:
        rows = conn.all("SELECT column_name FROM information_schema.columns "
                      "WHERE table_schema = current_schema() AND table_name = %s", table)
        return {str(row[0]) for row in rows}
    return {str(row[1]) for row in conn.all(f"PRAGMA table_info({table})")}


def _has_table(conn: Conn, name: str) -> bool:
    return dbhandler.table_exists(conn, name)


def _recorded(conn: Conn) -> int | None:
    if not _has_table(conn, VERSION_TABLE):
        return None
    row = conn.one(f"SELECT version FROM {VERSION_TABLE}")
    return int(row[0]) if row is not None else None


def read_version(conn: Conn) -> int | None:
    """The database's schema version; None when it holds none of the server's tables."""
    recorded = _recorded(conn)
    if recorded is not None:
        return recorded
    if not _has_table(conn, "users"):
        return None
    if "invite_only" not in _column_names(conn, "flows"):
        return 1
    if "deleted" not in _column_names(conn, "messages"):
        return 2
    return LAST_UNRECORDED


def _record(conn: Conn, version: int) -> None:
    if not _has_table(conn, VERSION_TABLE):
        conn.execute(f"CREATE TABLE {VERSION_TABLE} (version INTEGER NOT NULL, "
                   "time_upgraded BIGINT NOT NULL)")
    conn.execute(f"DELETE FROM {VERSION_TABLE}")
    conn.execute(f"INSERT INTO {VERSION_TABLE} (version, time_upgraded) "
               f"VALUES ({int(version)}, {int(time.time())})")


def drop_all(conn: Conn) -> list[str]:
    """Drop every table and the recorded version: the database is fresh again. Return the
    names of the server's tables dropped."""
    dropped = dbhandler.drop_tables(conn)
    if _has_table(conn, VERSION_TABLE):
        conn.execute(f"DROP TABLE {VERSION_TABLE}")
    return dropped


@dataclass(slots=True)
class Outcome:
    """What `migrate` found and did."""

    before: int | None  # None: a fresh database
    after: int
    steps: list[Step] = field(default_factory=list)
    created: list[str] = field(default_factory=list)
    backup: Path | None = None
    dry_run: bool = False

    @property
    def changed(self) -> bool:
        return bool(self.steps or self.created or self.before != self.after)


def too_new(version: int) -> SchemaError:
    return SchemaError(f"the database is at schema version {version}, newer than this "
                       f"server knows ({CURRENT}): run the newer server, or restore a backup")


def pending(version: int | None) -> list[Step]:
    """The steps from `version` to CURRENT (none for a fresh database)."""
    if version is None:
        return []
    if version > CURRENT:
        raise too_new(version)
    return [step for step in STEPS if step.version > version]


def backup_path(engine: Engine, version: int) -> Path | None:
    """Where the copy of an SQLite file at `version` is kept before an upgrade."""
    if engine.postgres or engine.connection.filename == ":memory:":
        return None
    filename = Path(engine.connection.filename)
    return filename.with_name(f"{filename.name}.v{version}.bak")


def copy_sqlite(source: Path, target: Path) -> None:
    """A consistent copy of a live SQLite database through its online backup API."""
    partial = target.with_name(target.name + ".partial")
    partial.unlink(missing_ok=True)
    with contextlib.closing(sqlite3.connect(f"file:{source}?mode=ro", uri=True)) as src, \
            contextlib.closing(sqlite3.connect(partial)) as dst:
        src.execute("PRAGMA busy_timeout=10000")
        src.backup(dst)
    partial.replace(target)


def migrate(engine: Engine, dry_run: bool = False) -> Outcome:
    """Bring the database to CURRENT, in one transaction, step by step, each logged.

    Several processes may call this at once: on PostgreSQL an advisory lock, on SQLite the
    write lock (BEGIN IMMEDIATE), is taken before the version is read, so one upgrades and
    the others find the work done. On SQLite the file is copied first (`backup_path`).
    With `dry_run`, nothing is written: the outcome says what would be done.
    """
    conn = _reader(engine) if dry_run else engine.open_tx()
    try:
        conn.execute("BEGIN" if engine.postgres or dry_run else "BEGIN IMMEDIATE")
        try:
            if engine.postgres and not dry_run:
                conn.execute(f"SELECT pg_advisory_xact_lock({LOCK_KEY})")
            outcome = _migrate(engine, conn, dry_run)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("ROLLBACK" if dry_run else "COMMIT")
        return outcome
    finally:
        with contextlib.suppress(Exception):
            conn.raw.close()


def _migrate(engine: Engine, conn: Conn, dry_run: bool) -> Outcome:
    before = read_version(conn)
    steps = pending(before)
    outcome = Outcome(before, CURRENT, steps, dry_run=dry_run)
    if dry_run:
        return outcome
    if before is None:
        outcome.created = dbhandler.create_tables(conn)
        _record(conn, CURRENT)
        logger.info("schema: new database created at version {}", CURRENT)
        _check_search(conn)
        return outcome
    if steps:
        outcome.backup = backup_path(engine, before)
        if outcome.backup is not None:
            copy_sqlite(Path(engine.connection.filename), outcome.backup)
            logger.info("schema: copy of the version {} database kept in {}", before,
                        outcome.backup)
    for step in steps:
        started = time.monotonic()
        step.run(conn)
        logger.info("schema: upgraded to version {}: {} ({:.2f} s)", step.version,
                    step.summary, time.monotonic() - started)
    # Tables of the current models a database lacks (dropped by hand) are made afresh.
    outcome.created = dbhandler.create_tables(conn)
    if _recorded(conn) != CURRENT:
        _record(conn, CURRENT)
    _check_search(conn)
    return outcome


def _check_search(conn: Conn) -> None:
    if conn.postgres and not search.folds_case(conn):
        logger.warning("schema: this PostgreSQL database's LC_CTYPE does not lower Cyrillic "
                       "letters, so searches find such words only as they were typed; make "
                       "the database with a UTF-8 locale (e.g. LC_CTYPE 'C.UTF-8') for that")


def _reader(engine: Engine) -> Conn:
    """A connection that only reads: on SQLite without the server's pragmas (the switch to
    WAL writes to the file), so looking leaves the file as it was."""
    if engine.postgres:
        return engine.open_tx()
    raw = sqlite3.connect(engine.connection.filename, isolation_level=None)
    raw.execute("PRAGMA busy_timeout=10000")
    return Conn(engine.connection, raw, False)


def current_version(engine: Engine) -> int | None:
    """The version of the database, read without writing (None: no tables yet)."""
    conn = _reader(engine)
    try:
        return read_version(conn)
    finally:
        with contextlib.suppress(Exception):
            conn.raw.close()
