"""What every manage.py command shares: one-line errors, settings, and the database."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import click
from loguru import logger

from mod import lib
from mod.broker import CommandHints
from mod.config.config import ConfigError, load_settings
from mod.config.validator import Settings
from mod.db.engine import Conn, Engine
from mod.error import ServiceError

T = TypeVar("T")


class CliError(click.ClickException):
    """A failure the operator can act on: shown as one line, exit status 1."""


class Unreachable(CliError):
    """The server cannot be reached (testclient): exit status 2."""

    exit_code = 2


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message, or its type when it has none."""
    text = str(exc).strip()
    if isinstance(exc, ServiceError):
        text = exc.detail
    return text.splitlines()[0] if text else type(exc).__name__


_handlers: list[int] = []


def setup_logging(settings: Settings | None = None) -> None:
    """Warnings to standard error; with a log file configured, a record of what was done."""
    while _handlers:
        with contextlib.suppress(ValueError):
            logger.remove(_handlers.pop())
    with contextlib.suppress(ValueError):
        logger.remove(0)  # loguru's default handler: every debug line, on standard error
    # A function sink resolves stderr at each call (click's test runner swaps it).
    _handlers.append(logger.add(lambda message: click.echo(message, err=True, nl=False),
                                level="WARNING", format="{level}: {message}", backtrace=False,
                                diagnose=False))
    if settings is not None and settings.logging.file:
        _handlers.append(logger.add(settings.logging.file, level="INFO",
                                    rotation=settings.logging.rotation,
                                    retention=settings.logging.retention, backtrace=False,
                                    diagnose=False))


def load() -> Settings:
    """The server's settings (config.ini and MORELIA_* variables), or one line and exit 1."""
    try:
        settings = load_settings()
    except ConfigError as exc:
        raise CliError(f"invalid configuration: {exc}") from None
    setup_logging(settings)
    lib.set_password_cost(settings.security.password_time_cost,
                          settings.security.password_memory_kib)
    return settings


def display_uri(uri: str) -> str:
    """A database URI fit to print: any password is masked."""
    scheme, sep, rest = uri.partition("://")
    userinfo, at, host = rest.rpartition("@")
    if not sep or not at or ":" not in userinfo:
        return uri
    return f"{scheme}://{userinfo.split(':', 1)[0]}:***@{host}"


def close(engine: Engine) -> None:
    """Close every connection a command opened."""
    engine.stop()


class Database:
    """The configured database, through the server's own engine, for one command.

    With `create`, a missing SQLite file is created (when its directory exists); otherwise
    a missing file is an error, so that a typo in a path never leaves a stray empty database.
    """

    def __init__(self, settings: Settings, create: bool = False) -> None:
        self.uri = display_uri(settings.database.uri)
        try:
            self.engine = Engine(settings.database)
        except Exception as exc:
            raise CliError(f"cannot use the database {self.uri}: {first_line(exc)}") from None
        self.hints = CommandHints(settings.broker, self.engine)
        connection = self.engine.connection
        if connection.dbName == "sqlite" and connection.filename != ":memory:":
            path = Path(connection.filename)
            if not path.parent.is_dir():
                raise CliError(f"cannot open the database {self.uri}: there is no directory "
                               f"{path.parent}")
            if not create and not path.exists():
                raise CliError(f"there is no database at {path}: create it with "
                               "`python manage.py db create`")

    def __enter__(self) -> Database:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        close(self.engine)

    def read(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return self._run(fn.__name__, lambda: self.engine.read_sync(fn, *args, **kwargs))

    def write(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """One committed transaction."""
        result = self._run(fn.__name__, lambda: self.engine.write_sync(fn, *args, **kwargs))
        self.hints.committed()
        return result

    def run(self, name: str, call: Callable[[], T]) -> T:
        """Any database work (`call`), its failure turned into one line."""
        return self._run(name, call)

    def _run(self, name: str, call: Callable[[], T]) -> T:
        try:
            return call()
        except click.ClickException:
            raise
        except Exception as exc:
            logger.debug("database call {} failed: {!r}", name, exc)
            raise CliError(f"database {self.uri}: {first_line(exc)}") from None


def refused(call: Callable[[], T]) -> T:
    """A call of the service, its refusal turned into the operator's one line."""
    try:
        return call()
    except ServiceError as exc:
        raise CliError(exc.detail) from None


def change(database: Database, fn: Callable[..., T], *args: Any) -> T:
    """One of the service's writer jobs, committed, or refused in one line (and rolled back)."""
    def job(conn: Conn) -> T:
        return refused(lambda: fn(conn, *args))

    job.__name__ = fn.__name__
    return database.write(job)
