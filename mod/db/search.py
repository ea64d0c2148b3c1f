"""Full-text search of messages: the index and its queries.

SQLite: `messages_search`, an FTS5 table, one row per searchable message (its rowid the
message's id): its text and, in a second column, its flow's uuid, so that a search of a few
flows filters inside the index. New messages are indexed in batches (`catch_up`, before each
search and every second); triggers on `messages` take edited and deleted messages out and put
edits back, for every writer (edits, deletions, the operator's deletion of a flow).
PostgreSQL: `messages.search_vector`, a stored generated `tsvector` of the text, and a GIN
index on it (`messages_search`), kept by PostgreSQL itself.

Both index only what may be found: a message that is not deleted and whose text is not the
placeholder of an end-to-end encrypted one (`records.ENCRYPTED_TEXT`); a deleted or edited
message leaves the index or is indexed anew in the same transaction. Words are split at
anything that is not a letter or a digit (SQLite's `unicode61` with diacritics removed,
PostgreSQL's parser with the `simple` configuration: no stemming, no stop words, any
language), found whatever their case, and `ё` is indexed as `е`, as Russian is often typed.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from mod.db.engine import Conn
from mod.records import ENCRYPTED_TEXT

INDEX = "messages_search"  # SQLite: the FTS5 table; PostgreSQL: the GIN index
VECTOR = "search_vector"  # PostgreSQL: the generated column of messages
# The SQLite plan for a search of at most this many flows filters by flow inside the index
# (ranking costs grow with each flow named); for more, the matches are joined to `members`.
FLOWS_IN_INDEX = 64


class TimedOut(Exception):
    """A search ran past its time and was stopped."""


@dataclass(frozen=True, slots=True)
class Terms:
    """What a search looks for: each phrase's words next to each other, every phrase in a
    message; the last phrase's last word as a prefix when `prefix`."""

    phrases: tuple[str, ...]
    prefix: bool = False


@dataclass(frozen=True, slots=True)
class Hits:
    """Message ids in the order asked, each with its rank (higher: closer), and how many
    messages match in all (None when not counted: newest-first pages)."""

    ids: tuple[int, ...]
    ranks: tuple[float, ...]
    count: int | None


def _quoted(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def searchable(text: str, deleted: bool = False) -> bool:
    """Whether a message of this text belongs in the index."""
    return not deleted and text != "" and text != ENCRYPTED_TEXT


def _searchable(row: str) -> str:
    """SQLite: `searchable` of the `messages` row NEW, OLD or messages."""
    return f"{row}.deleted = 0 AND {row}.text <> '' AND {row}.text <> {_quoted(ENCRYPTED_TEXT)}"


def _indexed(text: str, flow: str) -> str:
    """SQLite: the index's values (text, flow) of a message's text and flow uuid."""
    return f"replace(replace({text}, 'ё', 'е'), 'Ё', 'Е'), {flow}"


# New messages are indexed in batches, after they are sent (`catch_up`): indexing each as it
# is sent cost a send 14 % more CPU time, FTS5 writing a segment of the index at each of the
# writer's commits; a batch of a second's messages writes one (bench/README.md). `PROGRESS`
# holds the highest message id the index has caught up with; a search catches up first, so it
# finds every message sent before it.
PROGRESS = "search_progress"
_FILL = (f"INSERT INTO {INDEX} (rowid, text, flow) SELECT id, "
         f"{_indexed('messages.text', 'messages.flow_uuid')} FROM messages "
         f"WHERE id > ? AND id <= ? AND {_searchable('messages')}")
# Edits and deletions of messages the index has caught up with, by triggers, so that no
# writer can miss them (the others are indexed as they are when their turn comes). The index
# keeps its text (not contentless), so a row leaves it by its rowid alone, and a message never
# indexed leaves nothing wrong behind.
_CAUGHT_UP = f"OLD.id <= (SELECT upto FROM {PROGRESS})"
_REMOVE = f"DELETE FROM {INDEX} WHERE rowid = OLD.id;"
_READD = (f"INSERT INTO {INDEX} (rowid, text, flow) SELECT NEW.id, "
          f"{_indexed('NEW.text', 'NEW.flow_uuid')} WHERE {_searchable('NEW')};")
_SQLITE_INDEX = (f"CREATE VIRTUAL TABLE {INDEX} USING fts5(text, flow, "
                 "tokenize='unicode61 remove_diacritics 2')")
_SQLITE_TRIGGERS = {
    "messages_search_update": "AFTER UPDATE OF text, deleted, flow_uuid ON messages "
                              f"WHEN {_CAUGHT_UP} BEGIN {_REMOVE} {_READD} END",
    "messages_search_delete": f"AFTER DELETE ON messages WHEN {_CAUGHT_UP} BEGIN {_REMOVE} END",
}


def catch_up(conn: Conn, most: int) -> int:
    """SQLite: index the messages written since the index last caught up, the first `most`
    ids of them; how many ids are left for another time (0: caught up; always 0 on
    PostgreSQL, whose index is kept by the database)."""
    if conn.postgres:
        return 0
    row = conn.one(f"SELECT upto FROM {PROGRESS}")
    upto = int(row[0]) if row else 0
    top = newest_id(conn)
    if top <= upto:
        return 0
    end = min(top, upto + most)
    conn.execute(_FILL, upto, end)
    conn.execute(f"UPDATE {PROGRESS} SET upto = ?", end)
    return top - end


# PostgreSQL's parser makes single words of e-mail addresses, host names, URLs, paths, numbers
# with dots and hyphenated words (besides their parts, for the last): its text, and the text
# of a search, have those characters made spaces first, so that each word is found alone.
_SPACED = ".@/:-+"


def _pg_words(expr: str) -> str:
    """PostgreSQL: `expr` as its words are indexed and searched (`ё` as `е`, _SPACED)."""
    return f"translate({expr}, 'Ёё{_SPACED}', 'Ее{' ' * len(_SPACED)}')"


_PG_WORDS = str.maketrans("Ёё" + _SPACED, "Ее" + " " * len(_SPACED))
_POSTGRES_VECTOR = (
    f"ALTER TABLE messages ADD COLUMN {VECTOR} tsvector GENERATED ALWAYS AS ("
    f"CASE WHEN deleted OR text = {_quoted(ENCRYPTED_TEXT)} THEN NULL "
    f"ELSE to_tsvector('simple'::regconfig, {_pg_words('text')}) END) STORED")
_POSTGRES_INDEX = (f"CREATE INDEX IF NOT EXISTS {INDEX} ON messages USING gin ({VECTOR}) "
                   f"WHERE {VECTOR} IS NOT NULL")


def _sqlite_has(conn: Conn, kind: str, name: str) -> bool:
    return conn.one("SELECT 1 FROM sqlite_master WHERE type = ? AND name = ?", kind,
                    name) is not None


def ensure(conn: Conn) -> bool:
    """Make the index where it is missing, filled with the messages there are; True when
    anything was made. Runs in the transaction that creates or upgrades the tables."""
    if conn.postgres:
        row = conn.one("SELECT 1 FROM information_schema.columns WHERE table_schema = "
                       "current_schema() AND table_name = 'messages' AND column_name = %s",
                       VECTOR)
        made = row is None
        if made:  # the column is computed for every row as it is added
            conn.execute(_POSTGRES_VECTOR)
        made = conn.one("SELECT 1 FROM pg_indexes WHERE schemaname = current_schema() "
                        "AND indexname = %s", INDEX) is None or made
        conn.execute(_POSTGRES_INDEX)
        return made
    whole = _sqlite_has(conn, "table", PROGRESS) and all(
        _sqlite_has(conn, "trigger", name) for name in _SQLITE_TRIGGERS)
    if _sqlite_has(conn, "table", INDEX) and whole:
        return False
    drop(conn)  # a half-made index: made again, whole
    conn.execute(_SQLITE_INDEX)
    # Ranked by the words of the text only: a flow's uuid matches every row it filters.
    conn.execute(f"INSERT INTO {INDEX} ({INDEX}, rank) VALUES ('rank', 'bm25(1.0, 0.0)')")
    conn.execute(f"CREATE TABLE {PROGRESS} (upto BIGINT NOT NULL)")
    conn.execute(f"INSERT INTO {PROGRESS} (upto) VALUES (0)")
    for name, body in _SQLITE_TRIGGERS.items():
        conn.execute(f"CREATE TRIGGER {name} {body}")
    catch_up(conn, 2**62)
    return True


def folds_case(conn: Conn) -> bool:
    """PostgreSQL: whether the database's character type lowers Cyrillic (a database made
    with LC_CTYPE=C does not: its words are then found only as they were typed)."""
    row = conn.one("SELECT lower('ЁЯ') = 'ёя'")
    return bool(row and row[0])


def drop(conn: Conn) -> None:
    """Drop the SQLite index (PostgreSQL's goes with its table)."""
    if not conn.postgres:
        for name in _SQLITE_TRIGGERS:
            conn.execute(f"DROP TRIGGER IF EXISTS {name}")
        conn.execute(f"DROP TABLE IF EXISTS {INDEX}")
        conn.execute(f"DROP TABLE IF EXISTS {PROGRESS}")


# -- queries ----------------------------------------------------------------------------------


_SQLITE_WORDS = str.maketrans("Ёё", "Ее")


def _fts_string(text: str) -> str:
    return '"' + text.translate(_SQLITE_WORDS).replace('"', '""') + '"'


def fts_query(terms: Terms, flows: Sequence[str] = ()) -> str:
    """The FTS5 query of `terms` in the text, within `flows` when given."""
    phrases = [_fts_string(phrase) for phrase in terms.phrases]
    if terms.prefix:
        phrases[-1] += "*"
    query = "text : (" + " AND ".join(phrases) + ")"
    if flows:
        query += " AND flow : (" + " OR ".join(_fts_string(flow) for flow in flows) + ")"
    return query


def _tsquery(terms: Terms) -> tuple[str, list[str]]:
    """PostgreSQL: the SQL of a tsquery of `terms`, parsed as the text was, and its
    parameters."""
    parts = ["phraseto_tsquery('simple', %s)"] * len(terms.phrases)
    params = [phrase.translate(_PG_WORDS) for phrase in terms.phrases]
    if terms.prefix:
        # The last phrase's words, each a prefix: to_tsquery parses a quoted string into its
        # words, and the mark after it applies to each.
        parts[-1] = "to_tsquery('simple', %s)"
        params[-1] = _quoted(params[-1]) + ":*"
    return " && ".join(parts), params


@contextlib.contextmanager
def _deadline(conn: Conn, seconds: float) -> Iterator[None]:
    """Stop the statements run inside after `seconds`: TimedOut."""
    if conn.postgres:
        conn.execute(f"SET statement_timeout = {max(1, int(seconds * 1000))}")
        try:
            yield
        except Exception as exc:
            if str(getattr(exc, "sqlstate", "")) == "57014":  # query_canceled
                raise TimedOut() from None
            raise
        finally:
            conn.execute("SET statement_timeout = 0")
        return
    stop = time.monotonic() + seconds
    conn.raw.set_progress_handler(lambda: time.monotonic() > stop, 10_000)
    try:
        yield
    except Exception as exc:
        if "interrupted" in str(exc):
            raise TimedOut() from None
        raise
    finally:
        conn.raw.set_progress_handler(None, 0)


def newest_id(conn: Conn) -> int:
    row = conn.one("SELECT MAX(id) FROM messages")
    return int(row[0]) if row and row[0] is not None else 0


def hits(conn: Conn, terms: Terms, flows: Sequence[str], member: str, recent: bool,
         limit: int, below: int, offset: int, seconds: float) -> Hits:
    """Up to `limit` matching messages of `flows` (when `member` is given, they are every
    flow of that user's): newest first with ids below `below` (`recent`), else by rank with
    ids up to `below`, from the `offset`-th. Stopped after `seconds` (TimedOut)."""
    with _deadline(conn, seconds):
        if conn.postgres:
            return _postgres(conn, terms, flows, recent, limit, below, offset)
        return _sqlite(conn, terms, flows, member, recent, limit, below, offset)


def _sqlite(conn: Conn, terms: Terms, flows: Sequence[str], member: str, recent: bool,
            limit: int, below: int, offset: int) -> Hits:
    params: list[Any]
    if len(flows) <= FLOWS_IN_INDEX:
        source = f"{INDEX} WHERE {INDEX} MATCH ?"
        params = [fts_query(terms, flows)]
    else:
        source = f"{INDEX} JOIN messages ON messages.id = {INDEX}.rowid WHERE {INDEX} MATCH ?"
        params = [fts_query(terms)]
        if member:
            source += " AND messages.flow_uuid IN (SELECT flow_uuid FROM members " \
                      "WHERE user_uuid = ?)"
            params.append(member)
        else:
            source += f" AND messages.flow_uuid IN ({', '.join('?' * len(flows))})"
            params.extend(flows)
    if recent:
        rows = conn.all(f"SELECT {INDEX}.rowid FROM {source} AND {INDEX}.rowid < ? "
                        f"ORDER BY {INDEX}.rowid DESC LIMIT ?", *params, below, limit)
        return Hits(tuple(int(row[0]) for row in rows), (0.0,) * len(rows), None)
    rows = conn.all(f"SELECT {INDEX}.rowid, {INDEX}.rank, count(*) OVER () FROM {source} "
                    f"AND {INDEX}.rowid <= ? ORDER BY {INDEX}.rank, {INDEX}.rowid DESC "
                    "LIMIT ? OFFSET ?", *params, below, limit, offset)
    count = int(rows[0][2]) if rows else (None if offset else 0)
    # bm25 is lower for closer matches: its negation is the rank clients expect.
    return Hits(tuple(int(row[0]) for row in rows), tuple(-float(row[1]) for row in rows),
                count)


def _postgres(conn: Conn, terms: Terms, flows: Sequence[str], recent: bool, limit: int,
              below: int, offset: int) -> Hits:
    query, params = _tsquery(terms)
    source = f"messages, (SELECT {query} AS q) AS asked WHERE {VECTOR} @@ asked.q " \
             "AND flow_uuid = ANY(%s)"
    if recent:
        rows = conn.all(f"SELECT id FROM {source} AND id < %s ORDER BY id DESC LIMIT %s",
                        *params, list(flows), below, limit)
        return Hits(tuple(int(row[0]) for row in rows), (0.0,) * len(rows), None)
    # ts_rank's normalization 1: divided by 1 + the logarithm of the message's length.
    rows = conn.all(f"SELECT id, ts_rank({VECTOR}, asked.q, 1), count(*) OVER () "
                    f"FROM {source} AND id <= %s ORDER BY 2 DESC, id DESC LIMIT %s OFFSET %s",
                    *params, list(flows), below, limit, offset)
    count = int(rows[0][2]) if rows else (None if offset else 0)
    return Hits(tuple(int(row[0]) for row in rows), tuple(float(row[1]) for row in rows), count)
