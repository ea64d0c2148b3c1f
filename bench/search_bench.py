"""Message search at size: 1,000,000 messages in 1,000 flows, a user in 50 of them.

    python bench/search_bench.py [--sqlite PATH] [--postgres ADMIN_URI] [--queries 500]
                                 [--mtp 200] [--rebuild]

Builds the database with the server's own tables (`schema.migrate`), the messages written
straight in, in batches (without the search index, which is then made in one go by
`search.ensure`, as a schema upgrade makes it): chat-like English and Russian text
(`search_words.py`), 1 % of it deleted. The SQLite file is kept (default:
`/tmp/morelia-search-bench.db`) and used again by the next run unless `--rebuild`; on
PostgreSQL the database `morelia_search_bench` is made (or made again) on the server of
ADMIN_URI (`postgres://root@127.0.0.1:5432/test`).

Then it times searches of the user in 50 flows, as clients send them (the service reads each
text: the last word of four letters or more is also a prefix): one word in three of every
five queries, two words in one, the beginning (4 to 6 letters) of a word in one; a word is,
half the time, one as often as it is written, else any word of the vocabulary, never one of
its 100 most common. Each query is timed by rank and newest first, through the service in
process (`Service.search.messages`, a reader thread of its own engine), and, with `--mtp`,
that many over MTP to a server started on the same database (`search_messages`). It prints
p50, p90, p99 and the slowest, and the 10 most common words by rank apart (the worst case).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.search_words import Corpus  # noqa: E402
from mod import lib  # noqa: E402
from mod.config.validator import Database, Settings  # noqa: E402
from mod.db import schema, search  # noqa: E402
from mod.db.engine import Conn, Engine  # noqa: E402
from mod.service import Caller, Service  # noqa: E402

MESSAGES = 1_000_000
FLOWS = 1000
MINE = 50
AUTHORS = 2000
BATCH = 20_000
PASSWORD = "search-bench-password"
LOGIN = "searcher"
POSTGRES_NAME = "morelia_search_bench"
COLUMNS = ("uuid", "flow_uuid", "user_uuid", "client_id", "text", "file_picture", "file_video",
           "file_audio", "file_document", "emoji", "time_created", "edited_time",
           "edited_status", "deleted", "reply_to", "file_name", "file_type")


def _uuid(kind: int, number: int) -> str:
    return str(kind * 10**30 + number)


def build(engine: Engine) -> str:
    """Fill a fresh database; the uuid of the user in MINE of the flows."""
    from argon2 import PasswordHasher

    schema.migrate(engine)
    started = time.perf_counter()
    rng = random.Random(11)
    flows = [_uuid(2, number) for number in range(FLOWS)]
    mine = rng.sample(flows, MINE)
    me = _uuid(1, 0)
    cheap = PasswordHasher(time_cost=1, memory_cost=64, parallelism=1).hash(PASSWORD)

    def people(conn: Conn) -> None:
        from mod.db import dbhandler

        dbhandler.create_user(conn, me, LOGIN, cheap, "Searcher", "", 30 * 86400, 1)
        for index, flow in enumerate(flows):
            owner = _uuid(1, 1 + index % AUTHORS)
            users = [owner, me] if flow in mine else [owner]
            dbhandler.create_flow(conn, flow, "group", f"Flow {index}", "", owner, users,
                                  1_700_000_000)
        search.drop(conn)  # made again, in one go, once the messages are in
        if conn.postgres:
            conn.execute(f"DROP INDEX {search.INDEX}")

    engine.write_sync(people)
    corpus = Corpus(seed=3)
    texts = corpus.messages(MESSAGES)
    for start in range(0, MESSAGES, BATCH):
        rows = []
        for number in range(start, min(MESSAGES, start + BATCH)):
            deleted = rng.random() < 0.01
            text = next(texts)
            rows.append((_uuid(3, number), flows[rng.randrange(FLOWS)],
                         _uuid(1, 1 + rng.randrange(AUTHORS)), number,
                         "Message deleted" if deleted else text, "", "", "", "", "",
                         1_700_000_000 + number * 30, 0, deleted, deleted, "", "", ""))
        engine.write_sync(_insert, rows)
        if (start + len(rows)) % 250_000 == 0:
            print(f"  {start + len(rows):,} messages ({time.perf_counter() - started:.0f} s)",
                  flush=True)
    indexed = time.perf_counter()
    engine.write_sync(search.ensure)
    if engine.postgres:
        engine.write_sync(lambda conn: conn.execute("ANALYZE"))
    print(f"  search index made in {time.perf_counter() - indexed:.0f} s")
    return me


def _insert(conn: Conn, rows: list[tuple[Any, ...]]) -> None:
    if conn.postgres:
        with conn.raw.cursor().copy(f"COPY messages ({', '.join(COLUMNS)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        return
    conn.raw.executemany(f"INSERT INTO messages ({', '.join(COLUMNS)}) VALUES "
                         f"({', '.join('?' * len(COLUMNS))})", rows)


def _count(conn: Conn) -> int:
    row = conn.one("SELECT COUNT(*) FROM messages")
    return int(row[0]) if row else 0


def _me(conn: Conn) -> str:
    row = conn.one("SELECT uuid FROM users WHERE login = 'searcher'")
    return str(row[0]) if row else ""


@contextlib.contextmanager
def sqlite_database(path: Path, rebuild: bool) -> Iterator[tuple[str, str]]:
    if rebuild:
        for old in path.parent.glob(path.name + "*"):
            old.unlink()
    uri = f"sqlite:{path}"
    yield uri, prepared(uri)


@contextlib.contextmanager
def postgres_database(admin: str, rebuild: bool) -> Iterator[tuple[str, str]]:
    import psycopg

    base, _, _ = admin.rpartition("/")
    with psycopg.connect(admin.replace("postgres://", "postgresql://", 1),
                         autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                              (POSTGRES_NAME,)).fetchone()
        if exists and rebuild:
            conn.execute(f"DROP DATABASE {POSTGRES_NAME} WITH (FORCE)")
        if not exists or rebuild:
            conn.execute(f"CREATE DATABASE {POSTGRES_NAME}")
    uri = f"{base}/{POSTGRES_NAME}"
    yield uri, prepared(uri)


def prepared(uri: str) -> str:
    """The user in MINE flows of the database at `uri`, built first when it is not there."""
    engine = Engine(Database(uri=uri))
    try:
        version = schema.current_version(engine)
        if version == schema.CURRENT and engine.read_sync(_count) == MESSAGES:
            print(f"  using the {MESSAGES:,} messages already in {uri}")
            return engine.read_sync(_me)
        if version is not None:
            raise SystemExit(f"{uri} holds another database: give --rebuild to replace it")
        print(f"  building {MESSAGES:,} messages in {FLOWS} flows in {uri}")
        return build(engine)
    finally:
        engine.stop()


def queries(count: int) -> list[str]:
    corpus = Corpus(seed=5)
    texts = []
    for index in range(count):
        kind = index % 5
        if kind == 3:
            texts.append(f"{corpus.query_word()} {corpus.query_word()}")
        elif kind == 4:
            word = next(w for w in iter(corpus.query_word, None) if len(w) >= 6)
            texts.append(word[:corpus.rng.randint(4, 6)])
        else:
            texts.append(corpus.query_word())
    return texts


def figures(times: list[float]) -> str:
    ordered = sorted(times)
    def at(share: float) -> float:
        return ordered[min(len(ordered) - 1, int(share * len(ordered)))] * 1000
    return (f"p50 {at(0.5):6.1f} ms   p90 {at(0.9):6.1f} ms   p99 {at(0.99):6.1f} ms   "
            f"slowest {ordered[-1] * 1000:6.1f} ms   mean {statistics.mean(times) * 1000:5.1f} ms")


async def timed(call: Callable[[str, str], Awaitable[int]], texts: list[str], order: str
                ) -> tuple[list[float], int]:
    times = []
    found = 0
    for text in texts:
        started = time.perf_counter()
        found += await call(text, order)
        times.append(time.perf_counter() - started)
    return times, found


async def through_service(uri: str, me: str, texts: list[str], common: list[str]) -> None:
    settings = Settings.model_validate({"database": {"uri": uri}})
    engine = Engine(settings.database)
    engine.start(asyncio.get_running_loop())
    service = Service(settings, engine)
    caller = Caller(me, lib.token_hash(lib.new_token()), False)

    async def call(text: str, order: str) -> int:
        return len((await service.search.messages(caller, text, order=order)).hits)

    try:
        await timed(call, texts[:50], "rank")  # warm the caches
        for order in ("rank", "recent"):
            times, found = await timed(call, texts, order)
            print(f"  service, {order:6}  {figures(times)}   ({found / len(texts):.1f} found "
                  "a query)")
        times, _ = await timed(call, common, "rank")
        print(f"  service, the 10 most common words by rank: {figures(times)}")
    finally:
        service.close()
        engine.stop()


async def through_mtp(uri: str, texts: list[str]) -> None:
    import websockets

    from tests.support import ServerProcess, frame

    with tempfile.TemporaryDirectory() as directory, ServerProcess(
            Path(directory), args=["--log-level", "warning", "--no-access-log"],
            env={"MORELIA_DATABASE_URI": uri, "MORELIA_LOGGING_LEVEL": "WARNING"}) as server:
        async with websockets.connect(server.url, max_size=None, compression=None) as ws:
            await ws.send(frame("authentication", {"user": [{"login": LOGIN,
                                                             "password": PASSWORD}]}))
            user = json.loads(await ws.recv())["data"]["user"][0]
            me = {"uuid": user["uuid"], "auth_id": user["auth_id"]}

            async def call(text: str, order: str) -> int:
                await ws.send(frame("search_messages", {
                    "user": [me], "search": {"text": text, "order": order}}))
                reply = json.loads(await ws.recv())
                assert reply["errors"]["code"] == 200, reply["errors"]
                return len(reply["data"]["message"])

            await timed(call, texts[:20], "rank")
            for order in ("rank", "recent"):
                times, _ = await timed(call, texts, order)
                print(f"  MTP,     {order:6}  {figures(times)}")


async def run(name: str, database: contextlib.AbstractContextManager[tuple[str, str]],
              options: argparse.Namespace) -> None:
    print(f"{name}:")
    with database as (uri, me):
        if not options.queries:
            return  # --queries 0: the database built (or found), nothing timed
        texts = queries(options.queries)
        common = Corpus().words[:10]
        await through_service(uri, me, texts, common)
        if options.mtp:
            await through_mtp(uri, texts[:options.mtp])


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sqlite", type=Path, default=Path("/tmp/morelia-search-bench.db"),
                        help="the SQLite file (kept for the next run)")
    parser.add_argument("--postgres", default="",
                        help="an admin URI of a PostgreSQL server to run on as well")
    parser.add_argument("--queries", type=int, default=500, help="0: only build")
    parser.add_argument("--mtp", type=int, default=200, help="queries over MTP (0: none)")
    parser.add_argument("--rebuild", action="store_true", help="build the databases afresh")
    parser.add_argument("--only", choices=("sqlite", "postgres"), default=None)
    options = parser.parse_args()
    print(f"{MESSAGES:,} messages in {FLOWS} flows, the searcher in {MINE}; "
          f"{options.queries} queries")
    if options.only != "postgres":
        await run("SQLite", sqlite_database(options.sqlite, options.rebuild), options)
    if options.postgres and options.only != "sqlite":
        await run("PostgreSQL", postgres_database(options.postgres, options.rebuild), options)


if __name__ == "__main__":
    asyncio.run(main())
