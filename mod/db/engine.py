"""Where SQL runs: one writer thread that batches commits, a pool of reader threads.

SQLObject has no asyncio support and its connections belong to one thread each, so every
statement runs on a thread of this module and the event loop only awaits futures. Writes go
through a single writer thread: concurrent writes are committed together in one transaction,
and one failing request never undoes another's work: on PostgreSQL each runs in a savepoint;
on SQLite, where a savepoint costs more than the job, a job that fails before changing a row
is simply dropped, and one that fails after it rolls the batch back and the others run again.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

from loguru import logger
from sqlobject import connectionForURI, dberrors
from sqlobject.converters import StringLikeConverter, converters, sqlrepr
from sqlobject.dbconnection import DBConnection
from sqlobject.sqlbuilder import Insert, SQLExpression

from mod import metrics
from mod.changes import Change, Kind
from mod.config.validator import Database as DatabaseSettings
from mod.error import ServiceError, Unavailable

Args = ParamSpec("Args")
T = TypeVar("T")

# A change kind is written and compared as its string (the value stored since before `Kind`).
# `registerConverter` files a class whose metaclass is not `type` (an enum's) where
# `sqlrepr` never looks, so the entry goes straight to the table it reads.
converters.klass[Kind] = StringLikeConverter

Row = tuple[Any, ...]
CommitHook = Callable[[list[Change]], None]


class Param(SQLExpression):
    """A bound parameter in a statement built with sqlbuilder: `?` or `%s` by driver."""

    def __sqlrepr__(self, db: str) -> str:
        return "%s" if db == "postgres" else "?"


P = Param()


class Query:
    """A statement built once with sqlbuilder and run with bound parameters.

    Rendering sqlbuilder expressions costs more than running a simple statement, and literal
    values defeat the drivers' statement caches; a Query renders once per database kind.
    """

    __slots__ = ("_sql", "expr", "suffix")

    def __init__(self, expr: Any, suffix: str = "") -> None:
        self.expr = expr
        self.suffix = suffix
        self._sql: dict[str, str] = {}

    def sql(self, db: str) -> str:
        text = self._sql.get(db)
        if text is None:
            text = self._sql[db] = str(sqlrepr(self.expr, db)) + self.suffix
        return text


def insert_query(table: str, columns: Sequence[str]) -> Query:
    """INSERT INTO table (columns) VALUES (params...); `Conn.insert` returns the new id."""
    return Query(Insert(table, template=list(columns), valueList=[[P] * len(columns)]))


def connection_for(uri: str) -> DBConnection:
    """An SQLObject connection for a configured URI (postgres:// and postgresql:// alike)."""
    if uri.startswith("postgresql://"):
        uri = "postgres://" + uri[len("postgresql://") :]
    if uri.startswith("postgres://"):
        separator = "&" if "?" in uri else "?"
        if "cache=" not in uri:
            uri += f"{separator}cache=0"
    connection: DBConnection = connectionForURI(uri)
    if connection.dbName == "postgres" and not connection.use_dsn:
        connection.dsn_dict.setdefault("connect_timeout", 3)
    return connection


class DatabaseUnreachable(Exception):
    """The configured database cannot be opened; the message is one line for the operator."""


def probe(uri: str) -> None:
    """Open and close one connection to `uri`, or raise DatabaseUnreachable saying why."""
    try:
        connection = connection_for(uri)
        if connection.dbName == "sqlite" and connection.filename != ":memory:":
            parent = Path(connection.filename).parent
            if not parent.is_dir():
                raise DatabaseUnreachable(f"there is no directory {parent}")
        connection.makeConnection().close()
        connection.close()
    except DatabaseUnreachable:
        raise
    except Exception as exc:
        lines = str(exc).strip().splitlines() or [type(exc).__name__]
        raise DatabaseUnreachable(lines[0]) from None


class Conn:
    """One thread's open connection, through which query functions run their statements."""

    def __init__(self, connection: DBConnection, raw: Any, postgres: bool) -> None:
        self.connection = connection
        self.raw = raw
        self.postgres = postgres
        self.db = "postgres" if postgres else "sqlite"
        self.changes: list[Change] = []

    def sql(self, expr: Any) -> str:
        if isinstance(expr, str):
            return expr
        if isinstance(expr, Query):
            return expr.sql(self.db)
        return str(self.connection.sqlrepr(expr))

    def _run(self, expr: Any, params: Sequence[Any]) -> Any:
        cursor = self.raw.cursor()
        if params:
            cursor.execute(self.sql(expr), tuple(params))
        else:
            cursor.execute(self.sql(expr))
        return cursor

    def all(self, expr: Any, *params: Any) -> list[Row]:
        """Rows of a query: a sqlbuilder expression, a `Query` with `params`, or SQL text."""
        cursor = self._run(expr, params)
        try:
            return list(cursor.fetchall())
        finally:
            cursor.close()

    def one(self, expr: Any, *params: Any) -> Row | None:
        cursor = self._run(expr, params)
        try:
            row = cursor.fetchone()
            return tuple(row) if row is not None else None
        finally:
            cursor.close()

    def execute(self, expr: Any, *params: Any) -> int:
        """Run a statement; return how many rows it changed."""
        cursor = self._run(expr, params)
        try:
            return int(cursor.rowcount)
        finally:
            cursor.close()

    def insert(self, expr: Any, *params: Any) -> int:
        """Run an INSERT and return the new row's id."""
        if self.postgres:
            row = self.one(self.sql(expr) + " RETURNING id", *params)
            assert row is not None
            return int(row[0])
        # SQLite knows the id without a RETURNING row: one step less on a hot path.
        cursor = self._run(expr, params)
        try:
            return int(cursor.lastrowid)
        finally:
            cursor.close()


_TIMED_OUT = "database timeout"
WATCH_EVERY = 0.25
BATCH_STEP = 0.0001
# Times a batch is run again after a deadlock or serialization failure (PostgreSQL).
CONFLICT_RETRIES = 5


def _timed_out(future: asyncio.Future[Any]) -> bool:
    try:
        future.result()
    except asyncio.CancelledError as exc:
        return exc.args == (_TIMED_OUT,)
    except BaseException:
        return False
    return False


@dataclass(slots=True)
class _Job:
    fn: Callable[..., Any]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    future: asyncio.Future[Any]
    result: Any = None
    error: BaseException | None = None


@dataclass
class _ThreadState(threading.local):
    conn: Conn | None = field(default=None)


class Engine:
    """Runs query functions off the event loop: reads in a pool, writes batched on one thread."""

    def __init__(self, settings: DatabaseSettings) -> None:
        self.settings = settings
        self.connection = connection_for(settings.uri)
        self.postgres = self.connection.dbName == "postgres"
        self.on_commit: CommitHook | None = None
        self.before_commit: Callable[[Conn], None] | None = None
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._readers = ThreadPoolExecutor(settings.readers, thread_name_prefix="db-read")
        self._local = _ThreadState()
        self._deadlines: deque[tuple[float, asyncio.Future[Any]]] = deque()
        self._watchdog: asyncio.TimerHandle | None = None
        self._lock = threading.Lock()
        self._opened: list[Conn] = []
        self._writer: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        module = self.connection.module
        self._integrity_error: type[Exception] = module.IntegrityError
        self._disconnect_errors: tuple[type[Exception], ...] = (
            (module.OperationalError, module.InterfaceError, dberrors.OperationalError)
            if self.postgres else ()
        )

    # -- connections ------------------------------------------------------------------------

    def open_tx(self) -> Conn:
        raw = self.connection.makeConnection()
        if self.postgres:
            raw.autocommit = True
        else:
            raw.isolation_level = None
            # busy_timeout first: switching to WAL waits for other processes opening the file.
            for pragma in ("busy_timeout=10000", "journal_mode=WAL", "synchronous=NORMAL",
                           "foreign_keys=OFF"):
                raw.execute(f"PRAGMA {pragma}")
        return Conn(self.connection, raw, self.postgres)

    def _thread_tx(self) -> Conn:
        conn = self._local.conn
        if conn is None:
            conn = self._local.conn = self.open_tx()
            with self._lock:
                self._opened.append(conn)
        return conn

    def _drop_thread_tx(self) -> None:
        conn, self._local.conn = self._local.conn, None
        if conn is not None:
            with self._lock:
                if conn in self._opened:
                    self._opened.remove(conn)
            with contextlib.suppress(Exception):
                conn.raw.close()

    def _is_disconnect(self, exc: BaseException) -> bool:
        return isinstance(exc, self._disconnect_errors)

    def _is_conflict(self, exc: BaseException) -> bool:
        """A deadlock or serialization failure (PostgreSQL's class 40: the transaction was
        rolled back and may simply be run again)."""
        return self.postgres and str(getattr(exc, "sqlstate", None) or "").startswith("40")

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._writer = threading.Thread(target=self._write_loop, name="db-write", daemon=True)
        self._writer.start()

    def stop(self) -> None:
        """Finish the writes in flight, then close every connection the engine opened."""
        if self._writer is not None:
            self._jobs.put(None)
            self._writer.join(timeout=10)
            self._writer = None
        self._readers.shutdown(wait=True)
        with self._lock:
            opened, self._opened = self._opened, []
        for conn in opened:
            with contextlib.suppress(Exception):
                conn.raw.close()
        self._local.conn = None
        with contextlib.suppress(Exception):
            self.connection.close()

    # -- reads -------------------------------------------------------------------------------

    async def read(self, fn: Callable[Concatenate[Conn, Args], T], *args: Args.args,
                   **kwargs: Args.kwargs) -> T:
        """Run `fn(conn, ...)` on a reader thread; it must not write."""
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self._readers, self._run_read, fn, args, kwargs)
        return await self._bounded(future)

    def _run_read(self, fn: Callable[..., T], args: tuple[Any, ...],
                  kwargs: dict[str, Any]) -> T:
        try:
            return fn(self._thread_tx(), *args, **kwargs)
        except ServiceError:
            raise
        except Exception as exc:
            if self._is_disconnect(exc) or (not self.postgres and "locked" in str(exc)):
                self._drop_thread_tx()
                logger.warning("database read failed: {}", str(exc).splitlines()[0])
                raise Unavailable() from exc
            raise

    def read_sync(self, fn: Callable[Concatenate[Conn, Args], T], *args: Args.args,
                  **kwargs: Args.kwargs) -> T:
        """Run a read on the calling thread (for manage.py, never on the event loop)."""
        return self._run_read(fn, args, kwargs)

    # -- writes ------------------------------------------------------------------------------

    async def write(self, fn: Callable[Concatenate[Conn, Args], T], *args: Args.args,
                    **kwargs: Args.kwargs) -> T:
        """Run `fn(conn, ...)` in the writer's next transaction; return once it is committed."""
        loop = self._loop or asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._jobs.put(_Job(fn, args, kwargs, future))
        return await self._bounded(future)

    async def _bounded(self, future: asyncio.Future[T]) -> T:
        """Await a database result for at most [DATABASE] TIMEOUT seconds, else 503."""
        loop = asyncio.get_running_loop()
        self._deadlines.append((loop.time() + self.settings.timeout, future))
        if self._watchdog is None:
            self._watchdog = loop.call_later(WATCH_EVERY, self._expire, loop)
        try:
            return await future
        except asyncio.CancelledError:
            if _timed_out(future):
                logger.warning("the database did not answer within {} s", self.settings.timeout)
                raise Unavailable() from None
            raise

    def _expire(self, loop: asyncio.AbstractEventLoop) -> None:
        """Cancel what waited too long. Every wait has the same timeout, so the deadlines
        queue up in order, and one timer serves them all (cheaper than one per call)."""
        clock = loop.time()
        deadlines = self._deadlines
        while deadlines and (deadlines[0][1].done() or deadlines[0][0] <= clock):
            _, future = deadlines.popleft()
            if not future.done():
                future.cancel(_TIMED_OUT)
        self._watchdog = loop.call_later(WATCH_EVERY, self._expire, loop) if deadlines else None

    def write_sync(self, fn: Callable[Concatenate[Conn, Args], T], *args: Args.args,
                   **kwargs: Args.kwargs) -> T:
        """Run one write transaction on the calling thread (for manage.py)."""
        conn = self._thread_tx()
        self._begin(conn)
        try:
            result = fn(conn, *args, **kwargs)
            if self.before_commit is not None and conn.changes:
                self.before_commit(conn)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        finally:
            conn.changes = []
        return result

    def _begin(self, conn: Conn) -> None:
        conn.execute("BEGIN" if self.postgres else "BEGIN IMMEDIATE")

    def _write_loop(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                break
            batch = [job]
            stop = self._gather(batch)
            self._run_batch(batch)
            if stop:
                break
        self._drop_thread_tx()

    def _gather(self, batch: list[_Job]) -> bool:
        """Add the waiting jobs to `batch`; True when the engine is stopping.

        While jobs keep arriving, wait for more, a little at a time (at most [DATABASE]
        BATCH_WAIT seconds): one commit for many writes costs far less per write, in CPU and
        in hand-overs of the GIL, than a commit each.
        """
        deadline = time.monotonic() + self.settings.batch_wait
        while len(batch) < self.settings.batch_size:
            try:
                more = self._jobs.get_nowait()
            except queue.Empty:
                if time.monotonic() >= deadline:
                    return False
                time.sleep(BATCH_STEP)
                if self._jobs.empty():
                    return False  # nothing came meanwhile: nobody else is writing now
                continue
            if more is None:
                return True
            batch.append(more)
        return False

    def _run_batch(self, batch: list[_Job]) -> None:
        changes: list[Change] = []
        pending = batch
        started = time.perf_counter()
        conflicts = 0
        try:
            while pending:
                conn = self._thread_tx()
                self._begin(conn)
                try:
                    spoiled = next((job for job in pending if not self._run_job(conn, job)),
                                   None)
                    if spoiled is None:
                        if self.before_commit is not None and conn.changes:
                            self.before_commit(conn)
                        conn.execute("COMMIT")
                except Exception as exc:
                    if not self._is_conflict(exc) or conflicts == CONFLICT_RETRIES:
                        raise
                    # Another process's transaction held what this one needed while it held
                    # what that one needed, and this one was chosen to give way. Nothing of
                    # it stayed: run it again.
                    conflicts += 1
                    conn.execute("ROLLBACK")
                    conn.changes = []
                    time.sleep(random.uniform(0, 0.01 * conflicts))
                    continue
                if spoiled is not None:
                    # A job failed after writing: undo the transaction, run the others again.
                    conn.execute("ROLLBACK")
                    conn.changes = []
                    pending = [job for job in pending if job is not spoiled]
                    continue
                changes = conn.changes
                metrics.BATCH_SIZE.observe(len(pending))
                metrics.COMMIT_SECONDS.observe(time.perf_counter() - started)
                break
        except Exception as exc:
            changes = []
            failure: BaseException = exc
            if self._is_disconnect(exc) or "locked" in str(exc) or "database" in str(exc):
                logger.warning("database write failed: {}", str(exc).splitlines()[0])
                failure = Unavailable()
            else:
                logger.opt(exception=exc).error("write batch failed")
            self._drop_thread_tx()
            for job in pending:
                job.error, job.result = failure, None
        finally:
            if self._local.conn is not None:
                self._local.conn.changes = []
        if conflicts:
            logger.info("write batch run again after a deadlock with another process ({} of {})",
                        conflicts, CONFLICT_RETRIES)
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._finish, batch, changes)

    def _run_job(self, conn: Conn, job: _Job) -> bool:
        """Run one job in the open transaction; False if it failed after writing something.

        On PostgreSQL each job runs in a savepoint, so a failure never spoils the others. On
        SQLite savepoints cost more than the jobs themselves; a failing job is harmless when
        it changed no row (rights checks fail before writing), and spoils the batch otherwise.
        """
        mark = len(conn.changes)
        if self.postgres:
            conn.execute("SAVEPOINT job")
        else:
            before = conn.raw.total_changes
        job.error = None
        try:
            job.result = job.fn(conn, *job.args, **job.kwargs)
            if self.postgres:
                conn.execute("RELEASE SAVEPOINT job")
            return True
        except Exception as exc:
            if self._is_disconnect(exc):
                raise
            del conn.changes[mark:]
            job.result, job.error = None, self._failure(job, exc)
            if self.postgres:
                conn.execute("ROLLBACK TO SAVEPOINT job")
                conn.execute("RELEASE SAVEPOINT job")
                return True
            return bool(conn.raw.total_changes == before)

    def _failure(self, job: _Job, exc: Exception) -> ServiceError:
        if isinstance(exc, ServiceError):
            return exc
        if isinstance(exc, self._integrity_error):
            return ServiceError(409, "That already exists")
        logger.opt(exception=exc).error("write failed in {}", job.fn.__name__)
        return ServiceError(500, "The server could not store that")

    def _finish(self, batch: list[_Job], changes: list[Change]) -> None:
        if changes and self.on_commit is not None:
            try:
                self.on_commit(changes)
            except Exception:
                logger.exception("commit hook failed")
        for job in batch:
            if job.future.done():
                continue
            if job.error is not None:
                job.future.set_exception(job.error)
            else:
                job.future.set_result(job.result)
