"""`manage.py db import-original SOURCE`: the original server's database, imported."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from loguru import logger

from mod.cli import admin
from mod.cli.common import CliError, Database
from mod.config.validator import Settings
from mod.db import original
from mod.service.importer import Importer, Tally
from mod.service.media import Media

KINDS = ("users", "flows", "messages")


def _same_database(location: original.Location, database: Database) -> bool:
    connection = database.engine.connection
    if location.kind == "sqlite":
        return connection.dbName == "sqlite" and \
            Path(location.target).resolve() == Path(connection.filename).resolve()
    if connection.dbName != "postgres":
        return False
    target = original.locate(database.engine.settings.uri)
    return target.target.split("?", 1)[0] == location.target.split("?", 1)[0]


def _counts(counter: dict[str, int]) -> str:
    return ", ".join(f"{counter.get(kind, 0)} {kind}" for kind in KINDS)


def summary(tally: Tally, dry_run: bool, seconds: float) -> str:
    verb = "Would import" if dry_run else "Imported"
    return (f"{verb}: {_counts(tally.imported)}. Already here (same uuid, left as they are): "
            f"{_counts(tally.present)}. Skipped: {_counts(tally.skipped)}. "
            f"({seconds:.1f} s{'; nothing was written' if dry_run else ''})")


def import_original(settings: Settings, source: str, dry_run: bool,
                    out: Callable[[str], None]) -> Tally:
    """Import the original's database at `source` into the configured one."""
    try:
        location = original.locate(source)
    except original.SourceError as exc:
        raise CliError(str(exc)) from None
    with Database(settings, create=not dry_run) as database:
        if _same_database(location, database):
            raise CliError(f"{location.shown} is this server's own database: give the "
                           "original's database as SOURCE")
        if dry_run:
            admin.require_tables(database)
        else:
            outcome = admin.migrate(database)
            if outcome.before is None:
                out(f"Created the tables in {database.uri}.")
            elif outcome.steps:
                out(f"Upgraded {database.uri} from schema version {outcome.before} to "
                    f"{outcome.after} first.")
        try:
            source_db = original.Source(location)
        except original.SourceError as exc:
            raise CliError(str(exc)) from None
        started = time.monotonic()
        with source_db:
            importer = Importer(source_db, database.read, database.write, out,
                                settings.security.token_ttl, dry_run,
                                media=Media(settings, database.engine))
            try:
                tally = importer.run()
            except CliError as exc:
                if dry_run:
                    raise
                raise CliError(f"{exc.message}; every batch reported done is committed: run "
                               "the command again to import the rest") from None
        line = summary(tally, dry_run, time.monotonic() - started)
        out(line)
        if not dry_run:
            logger.info("import-original from {} into {}: {}", location.shown, database.uri,
                        line)
    return tally
