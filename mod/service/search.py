"""Message search, for both protocols: what a search text means, who finds what, and the
bounds of what a search may cost (docs/BOUNDS.md, `[SEARCH]`).

A search finds the messages of the flows the caller may read (members only, as reading a
flow: `rights.read`), never a deleted one nor the placeholder of an end-to-end encrypted one
(the index holds neither: `db/search.py`). Its text is split at white space into words, each
found as a word of a message whatever its case (a word holding other characters, such as
`e-mail`, as its parts one after the other), every word in the same message; the last word,
if the text does not end there and it is at least PREFIX_MIN letters or digits long, also as
the beginning of a longer word. Results come by rank (closest first) or newest first, a page
at a time, with a token for the next page.

Each search is one reader job, which also checks the flows named, and at most
`[SEARCH] AT_ONCE` run at once in a process, so that a burst of searches never takes every
database reader from the rest of the server. On SQLite new messages are indexed in batches
(`catch_up`): every second (`index_forever`), and before each search, which therefore finds
every message sent before it.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from dataclasses import dataclass

from loguru import logger

from mod.changes import Change, Kind
from mod.config.validator import Search as SearchSettings
from mod.db import dbhandler as db
from mod.db import search as index
from mod.db.engine import Conn, Engine
from mod.error import OverLimit, ServiceError, TooLong
from mod.service import rights
from mod.service.common import Caller
from mod.service.records import Message
from mod.service.snapshots import People, deletions, named, people

ORDERS = ("rank", "recent")
DEFAULT_LIMIT = 10
PREFIX_MIN = 4  # shorter last words are matched whole: a short prefix matches too much
MAX_FLOWS = 100  # flows one search may name
MAX_CONTEXT = 20  # events before and after each result (Matrix event_context), at most
CATCH_UP = 5000  # message ids one writer job indexes (SQLite), so that sends are not held up
INDEX_EVERY = 1.0  # seconds between two catch-ups of the index with new messages (SQLite)
_WORD = re.compile(r"[^\W_]+")
_TOKEN = re.compile(r"r([0-9]{1,18})\.([0-9]{1,18})|t([0-9]{1,18})")
_NEWEST = 2**63 - 1


@dataclass(frozen=True, slots=True)
class Query:
    """A search text as the service reads it: what to look for, and the words a client may
    highlight in what it shows (lower case)."""

    terms: index.Terms
    highlights: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Hit:
    """A message found, its rank (higher: closer; 0 newest first), and for Matrix the change
    that sent it, its latest edit, and the changes around it (`before` newest first)."""

    message: Message
    rank: float
    sent: Change | None = None
    edit: Change | None = None
    before: tuple[Change, ...] = ()
    after: tuple[Change, ...] = ()


@dataclass(frozen=True, slots=True)
class Found:
    """A page of results; `count` of all of them (None when not counted: newest first), the
    token of the next page (None: this is the last), and for Matrix the deletions of the
    messages around the results and the people all of it names."""

    hits: tuple[Hit, ...]
    count: int | None
    next_batch: str | None
    highlights: tuple[str, ...]
    deletions: tuple[Change, ...] = ()
    people: People | None = None


def parse(text: str, settings: SearchSettings) -> Query:
    """The words of a search text; 400 past `[SEARCH] MAX_LENGTH` or `MAX_WORDS`, or when it
    holds no letter or digit."""
    if len(text) > settings.max_length:
        raise TooLong(f"A search text is at most {settings.max_length} characters")
    words: dict[str, str] = {}
    for chunk in text.split():
        if _WORD.search(chunk):
            words.setdefault(chunk.casefold(), chunk)
    if not words:
        raise ServiceError(400, "The search text holds no word to look for")
    if len(words) > settings.max_words:
        raise OverLimit(400, f"A search looks for at most {settings.max_words} words")
    phrases = tuple(words.values())
    last = _WORD.findall(phrases[-1])
    prefix = (not text[-1].isspace() and phrases[-1][-1].isalnum()
              and len(last[-1]) >= PREFIX_MIN)
    highlights = tuple(dict.fromkeys(word.casefold() for phrase in phrases
                                     for word in _WORD.findall(phrase)))
    return Query(index.Terms(phrases, prefix), highlights)


def _page(token: str | None, recent: bool) -> tuple[int | None, int]:
    """(the id bound, the offset) a next_batch token continues from (None, 0: the first)."""
    if token is None:
        return None, 0
    found = _TOKEN.fullmatch(token)
    if found is None or (found.group(3) is not None) != recent:
        raise ServiceError(400, "next_batch is not a token of a search in this order")
    if recent:
        return int(found.group(3)), 0
    return int(found.group(1)), int(found.group(2))


class Search:
    def __init__(self, settings: SearchSettings, engine: Engine) -> None:
        self.settings = settings
        self.engine = engine
        self._running = asyncio.Semaphore(settings.at_once)
        self._waiting = 0

    async def catch_up(self) -> None:
        """Index the messages sent since the index last caught up (SQLite; PostgreSQL's
        index is always current), a writer job per CATCH_UP ids."""
        if self.engine.postgres:
            return
        while await self.engine.write(index.catch_up, CATCH_UP):
            pass

    async def index_forever(self, every: float = INDEX_EVERY) -> None:
        """Keep the index caught up (SQLite), so that a search seldom has much to index."""
        if self.engine.postgres:
            return
        while True:
            try:
                await self.catch_up()
            except ServiceError as exc:
                logger.warning("search index: catching up failed: {}", exc.detail)
            await asyncio.sleep(every)

    async def messages(self, caller: Caller, text: str, flows: Sequence[str] | None = None,
                       order: str = "rank", limit: int | None = None,
                       next_batch: str | None = None, not_flows: Sequence[str] = (),
                       events: bool = False, context: tuple[int, int] = (0, 0),
                       reactions: bool = False, mentions: bool = False) -> Found:
        """A page of the messages matching `text` in the flows the caller may read (only
        those of `flows` when given, each of which the caller must be able to read: 404,
        403; none of `not_flows`), by rank or newest first (`order`), at most `limit` (10
        by default, at most `[SEARCH] RESULTS_LIMIT`), from `next_batch` (a previous page's
        token). With `events`, each hit comes with its changes for Matrix, and `context`
        (before, after) of the flow's changes around it; with `reactions` or `mentions`, each
        message with its `reactions` or `mentions` (MTP's extensions)."""
        query = parse(text, self.settings)
        if order not in ORDERS:
            raise ServiceError(400, f"The order of results is one of {', '.join(ORDERS)}")
        if limit is not None and limit < 1:
            raise ServiceError(400, "A search's limit is at least 1")
        if flows is not None and len(set(flows)) > MAX_FLOWS:
            raise OverLimit(400, f"A search names at most {MAX_FLOWS} flows")
        recent = order == "recent"
        below, offset = _page(next_batch, recent)
        size = min(limit or DEFAULT_LIMIT, self.settings.results_limit)
        around = (min(max(context[0], 0), MAX_CONTEXT), min(max(context[1], 0), MAX_CONTEXT))
        if self._running.locked() and self._waiting >= self.settings.queue:
            raise OverLimit(429, "Too many searches are waiting; try again in a moment")
        self._waiting += 1
        try:
            await self.catch_up()  # every message sent before the search is found
            await self._running.acquire()
        finally:
            self._waiting -= 1
        try:
            return await self.engine.read(
                _search, caller, query, None if flows is None else list(flows),
                frozenset(not_flows), recent, size, below, offset, self.settings.timeout,
                events, around, (reactions, mentions))
        finally:
            self._running.release()


def _readable(conn: Conn, caller: Caller, flows: Sequence[str] | None,
              excluded: frozenset[str]) -> tuple[list[str], str]:
    """The flows to search, and the caller's uuid when they are all the caller's flows."""
    if flows is None:
        mine = [flow for flow in db.member_flows(conn, caller.uuid) if flow not in excluded]
        return mine, "" if excluded else caller.uuid
    named_flows = list(dict.fromkeys(flows))
    for flow in named_flows:
        rights.read(rights.access(conn, flow, caller), caller)
    return [flow for flow in named_flows if flow not in excluded], ""


def _search(conn: Conn, caller: Caller, query: Query, flows: Sequence[str] | None,
            excluded: frozenset[str], recent: bool, limit: int, below: int | None,
            offset: int, seconds: float, events: bool, around: tuple[int, int],
            extras: tuple[bool, bool]) -> Found:
    searched, member = _readable(conn, caller, flows, excluded)
    if not searched:
        return Found((), 0 if below is None else None, None, query.highlights)
    if below is None:
        below = _NEWEST if recent else index.newest_id(conn)
    try:
        # One more newest first, to know whether there is a next page.
        hits = index.hits(conn, query.terms, searched, member, recent,
                          limit + 1 if recent else limit, below, offset, seconds)
    except index.TimedOut:
        logger.warning("search stopped after {} s: {} words in {} flows", seconds,
                       len(query.terms.phrases), len(searched))
        raise ServiceError(503, f"The search took longer than {seconds:g} s and was "
                                "stopped; try more or longer words") from None
    ids, ranks = hits.ids[:limit], hits.ranks[:limit]
    if recent:
        following = f"t{ids[-1]}" if len(hits.ids) > limit else None
    else:
        done = offset + len(ids)
        following = f"r{below}.{done}" if hits.count is not None and done < hits.count \
            else None
    allowed = set(searched)
    stored = db.searchable_messages(conn, ids)
    found = [(stored[id_], rank) for id_, rank in zip(ids, ranks, strict=True)
             if id_ in stored and stored[id_]["from_flow"] in allowed]
    db.with_extras(conn, [message for message, _ in found], *extras)
    if not events:
        return Found(tuple(Hit(message, rank) for message, rank in found), hits.count,
                     following, query.highlights)
    return _with_events(conn, found, hits.count, following, query.highlights, around)


def _with_events(conn: Conn, found: list[tuple[Message, float]], count: int | None,
                 following: str | None, highlights: tuple[str, ...],
                 around: tuple[int, int]) -> Found:
    """The hits with the changes Matrix renders them from: each message's `message_sent`,
    its latest edit, and the changes around it."""
    by_flow: dict[str, list[str]] = {}
    for message, _ in found:
        by_flow.setdefault(message["from_flow"], []).append(message["uuid"])
    sent: dict[str, Change] = {}
    edits: dict[str, Change] = {}
    for flow, uuids in by_flow.items():
        for row in db.subject_changes(conn, flow, [Kind.MESSAGE_SENT, Kind.MESSAGE_EDITED],
                                      uuids):
            (sent if row.kind == Kind.MESSAGE_SENT else edits)[row.subject] = row
    hits: list[Hit] = []
    shown: list[Change] = []
    gone: list[Change] = []
    for message, rank in found:
        change = sent.get(message["uuid"])
        edit = edits.get(message["uuid"])
        before: list[Change] = []
        after: list[Change] = []
        if change is not None and around[0]:
            before = db.flow_changes(conn, [change.flow_uuid], before=change.position,
                                     limit=around[0], backwards=True)
        if change is not None and around[1]:
            after = db.flow_changes(conn, [change.flow_uuid], after=change.position,
                                    limit=around[1])
        if change is not None and (before or after):
            gone.extend(deletions(conn, change.flow_uuid, [*before, *after]))
        hits.append(Hit(message, rank, change, edit, tuple(before), tuple(after)))
        shown.extend(item for item in (change, edit) if item is not None)
        shown.extend([*before, *after])
    return Found(tuple(hits), count, following, highlights, tuple(gone),
                 people(conn, named([*shown, *gone])))
