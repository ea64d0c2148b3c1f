"""mod.db.engine: the writer's batches and the readers, on each kind of database."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator

import pytest

from mod.config.validator import Database
from mod.db.engine import Conn, Engine
from tests.support import POSTGRES_URI, postgres_database

pytestmark = pytest.mark.anyio


async def test_the_engine_passes_keyword_arguments_through(engine: Engine) -> None:
    """Keywords reach the query function on every path, sync or async, read or write."""

    def echo(conn: Conn, first: int, second: int = 0) -> tuple[int, int]:
        return first, second

    assert engine.read_sync(echo, 1, second=2) == (1, 2)
    assert engine.write_sync(echo, 3, second=4) == (3, 4)
    engine.start(asyncio.get_running_loop())
    assert await engine.read(echo, 5, second=6) == (5, 6)
    assert await engine.write(echo, 7, second=8) == (7, 8)


@pytest.fixture
def two_engines() -> Iterator[tuple[Engine, Engine]]:
    """Two engines on one fresh PostgreSQL database, as two server processes have."""
    if not POSTGRES_URI:
        pytest.skip("needs PostgreSQL")
    with postgres_database() as uri:
        first, second = Engine(Database(uri=uri)), Engine(Database(uri=uri))
        first.write_sync(lambda conn: conn.execute(
            "CREATE TABLE counters (id INTEGER PRIMARY KEY, n INTEGER NOT NULL)"))
        first.write_sync(lambda conn: conn.execute("INSERT INTO counters VALUES (1, 0), (2, 0)"))
        try:
            yield first, second
        finally:
            first.stop()
            second.stop()


@pytest.mark.postgres
async def test_a_batch_that_deadlocks_with_another_process_is_run_again(
        two_engines: tuple[Engine, Engine]) -> None:
    """Two writers take the same two rows in opposite orders; PostgreSQL breaks the deadlock
    by failing one transaction, and that one is run again instead of answering 503."""
    first, second = two_engines
    both_hold_one = threading.Barrier(2, timeout=10)
    runs: list[str] = []

    def bump(name: str, one: int, other: int) -> Callable[[Conn], int]:
        def job(conn: Conn) -> int:
            conn.execute("UPDATE counters SET n = n + 1 WHERE id = %s", one)
            if name not in runs:
                both_hold_one.wait()
            runs.append(name)
            return conn.execute("UPDATE counters SET n = n + 1 WHERE id = %s", other)
        return job

    loop = asyncio.get_running_loop()
    first.start(loop)
    second.start(loop)
    assert await asyncio.gather(first.write(bump("first", 1, 2)),
                                second.write(bump("second", 2, 1))) == [1, 1]
    # One of them was the deadlock's victim and ran again; under load its rerun can meet the
    # other again before that one committed, so more than once (at most 5 runs each).
    assert set(runs) == {"first", "second"} and 3 <= len(runs) <= 10
    rows = await first.read(lambda conn: conn.all("SELECT id, n FROM counters ORDER BY id"))
    assert rows == [(1, 2), (2, 2)]
