"""Where SQL runs: one writer thread that batches commits, a pool of reader threads.

SQLObject has no asyncio support and its connections belong to one thread each, so every
statement runs on a thread of this module and the event loop only awaits futures. Writes go
through a single writer thread: concurrent writes are committed together in one transaction,
each inside its own savepoint so that one failing request never undoes another's work.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Concatenate, ParamSpec, TypeVar

from loguru import logger
from sqlobject import connectionForURI, dberrors
from sqlobject.dbconnection import DBConnection

from mod.config.validator import Database as DatabaseSettings
from mod.error import ServiceError, Unavailable

P = ParamSpec("P")
T = TypeVar("T")

Row = tuple[Any, ...]
CommitHook = Callable[[list["ChangeRow"]], None]


@dataclass(slots=True, frozen=True)
class ChangeRow:
    """One entry of the change log, as committed."""

    position: int
    time: int
    flow_uuid: str
    kind: str
    actor: str
    subject: str
    payload: str


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


class Tx:
    """One thread's open connection, through which query functions run their statements."""

    def __init__(self, connection: DBConnection, raw: Any, postgres: bool) -> None:
        self.connection = connection
        self.raw = raw
        self.postgres = postgres
        self.changes: list[ChangeRow] = []

    def sql(self, expr: Any) -> str:
        return expr if isinstance(expr, str) else str(self.connection.sqlrepr(expr))

    def all(self, expr: Any) -> list[Row]:
        cursor = self.raw.cursor()
        try:
            cursor.execute(self.sql(expr))
            return list(cursor.fetchall())
        finally:
            cursor.close()

    def one(self, expr: Any) -> Row | None:
        cursor = self.raw.cursor()
        try:
            cursor.execute(self.sql(expr))
            row = cursor.fetchone()
            return tuple(row) if row is not None else None
        finally:
            cursor.close()

    def execute(self, expr: Any) -> int:
        """Run a statement; return how many rows it changed."""
        cursor = self.raw.cursor()
        try:
            cursor.execute(self.sql(expr))
            return int(cursor.rowcount)
        finally:
            cursor.close()

    def insert(self, expr: Any) -> int:
        """Run an INSERT and return the new row's id."""
        row = self.one(self.sql(expr) + " RETURNING id")
        assert row is not None
        return int(row[0])


@dataclass(slots=True)
class _Job:
    fn: Callable[..., Any]
    args: tuple[Any, ...]
    future: asyncio.Future[Any]
    result: Any = None
    error: BaseException | None = None


@dataclass
class _ThreadState(threading.local):
    tx: Tx | None = field(default=None)


class Engine:
    """Runs query functions off the event loop: reads in a pool, writes batched on one thread."""

    def __init__(self, settings: DatabaseSettings) -> None:
        self.settings = settings
        self.connection = connection_for(settings.uri)
        self.postgres = self.connection.dbName == "postgres"
        self.on_commit: CommitHook | None = None
        self.before_commit: Callable[[Tx], None] | None = None
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._readers = ThreadPoolExecutor(settings.readers, thread_name_prefix="db-read")
        self._local = _ThreadState()
        self._writer: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        module = self.connection.module
        self._integrity_error: type[Exception] = module.IntegrityError
        self._disconnect_errors: tuple[type[Exception], ...] = (
            (module.OperationalError, module.InterfaceError, dberrors.OperationalError)
            if self.postgres else ()
        )

    # -- connections ------------------------------------------------------------------------

    def open_tx(self) -> Tx:
        raw = self.connection.makeConnection()
        if self.postgres:
            raw.autocommit = True
        else:
            raw.isolation_level = None
            for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "busy_timeout=10000",
                           "foreign_keys=OFF"):
                raw.execute(f"PRAGMA {pragma}")
        return Tx(self.connection, raw, self.postgres)

    def _thread_tx(self) -> Tx:
        tx = self._local.tx
        if tx is None:
            tx = self._local.tx = self.open_tx()
        return tx

    def _drop_thread_tx(self) -> None:
        tx, self._local.tx = self._local.tx, None
        if tx is not None:
            try:
                tx.raw.close()
            except Exception:  # noqa: BLE001 - the connection is already broken
                pass

    def _is_disconnect(self, exc: BaseException) -> bool:
        return isinstance(exc, self._disconnect_errors)

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._writer = threading.Thread(target=self._write_loop, name="db-write", daemon=True)
        self._writer.start()

    def stop(self) -> None:
        if self._writer is not None:
            self._jobs.put(None)
            self._writer.join(timeout=10)
            self._writer = None
        self._readers.shutdown(wait=True)

    # -- reads -------------------------------------------------------------------------------

    async def read(self, fn: Callable[Concatenate[Tx, P], T], *args: P.args,
                   **kwargs: P.kwargs) -> T:
        """Run `fn(tx, ...)` on a reader thread; it must not write."""
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self._readers, self._run_read, fn, args)
        return await self._bounded(future)

    def _run_read(self, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
        try:
            return fn(self._thread_tx(), *args)
        except ServiceError:
            raise
        except Exception as exc:
            if self._is_disconnect(exc) or not self.postgres and "locked" in str(exc):
                self._drop_thread_tx()
                logger.warning("database read failed: {}", str(exc).splitlines()[0])
                raise Unavailable() from exc
            raise

    def read_sync(self, fn: Callable[Concatenate[Tx, P], T], *args: P.args,
                  **kwargs: P.kwargs) -> T:
        """Run a read on the calling thread (for manage.py, never on the event loop)."""
        return self._run_read(fn, args)

    # -- writes ------------------------------------------------------------------------------

    async def write(self, fn: Callable[Concatenate[Tx, P], T], *args: P.args,
                    **kwargs: P.kwargs) -> T:
        """Run `fn(tx, ...)` in the writer's next transaction; return once it is committed."""
        loop = self._loop or asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._jobs.put(_Job(fn, args, future))
        return await self._bounded(future)

    async def _bounded(self, future: asyncio.Future[T]) -> T:
        """Await a database result for at most [DATABASE] TIMEOUT seconds, else 503."""
        try:
            return await asyncio.wait_for(asyncio.shield(future), self.settings.timeout)
        except TimeoutError:
            logger.warning("database did not answer within {} s", self.settings.timeout)
            raise Unavailable() from None

    def write_sync(self, fn: Callable[Concatenate[Tx, P], T], *args: P.args,
                   **kwargs: P.kwargs) -> T:
        """Run one write transaction on the calling thread (for manage.py)."""
        tx = self._thread_tx()
        self._begin(tx)
        try:
            result = fn(tx, *args)
            if self.before_commit is not None and tx.changes:
                self.before_commit(tx)
            tx.execute("COMMIT")
        except BaseException:
            tx.execute("ROLLBACK")
            raise
        finally:
            tx.changes = []
        return result

    def _begin(self, tx: Tx) -> None:
        tx.execute("BEGIN" if self.postgres else "BEGIN IMMEDIATE")

    def _write_loop(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                break
            batch = [job]
            stop = False
            while len(batch) < self.settings.batch_size:
                try:
                    more = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                    break
                batch.append(more)
            self._run_batch(batch)
            if stop:
                break
        self._drop_thread_tx()

    def _run_batch(self, batch: list[_Job]) -> None:
        changes: list[ChangeRow] = []
        try:
            tx = self._thread_tx()
            self._begin(tx)
            for job in batch:
                self._run_job(tx, job)
            changes = tx.changes
            if self.before_commit is not None and changes:
                self.before_commit(tx)
            tx.execute("COMMIT")
        except Exception as exc:
            changes = []
            failure: BaseException = exc
            if self._is_disconnect(exc) or "locked" in str(exc) or "database" in str(exc):
                logger.warning("database write failed: {}", str(exc).splitlines()[0])
                failure = Unavailable()
            else:
                logger.opt(exception=exc).error("write batch failed")
            self._drop_thread_tx()
            for job in batch:
                job.error, job.result = failure, None
        finally:
            if self._local.tx is not None:
                self._local.tx.changes = []
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._finish, batch, changes)

    def _run_job(self, tx: Tx, job: _Job) -> None:
        mark = len(tx.changes)
        tx.execute("SAVEPOINT job")
        try:
            job.result = job.fn(tx, *job.args)
            tx.execute("RELEASE SAVEPOINT job")
        except Exception as exc:
            if self._is_disconnect(exc):
                raise
            tx.execute("ROLLBACK TO SAVEPOINT job")
            tx.execute("RELEASE SAVEPOINT job")
            del tx.changes[mark:]
            if isinstance(exc, ServiceError):
                job.error = exc
            elif isinstance(exc, self._integrity_error):
                job.error = ServiceError(409, "That already exists")
            else:
                logger.opt(exception=exc).error("write failed in {}", job.fn.__name__)
                job.error = ServiceError(500, "The server could not store that")

    def _finish(self, batch: list[_Job], changes: list[ChangeRow]) -> None:
        if changes and self.on_commit is not None:
            try:
                self.on_commit(changes)
            except Exception:  # noqa: BLE001 - delivery must never undo a commit
                logger.exception("commit hook failed")
        for job in batch:
            if job.future.done():
                continue
            if job.error is not None:
                job.future.set_exception(job.error)
            else:
                job.future.set_result(job.result)
