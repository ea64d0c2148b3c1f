"""The operator's changes to the database: tables, accounts and flows."""

from __future__ import annotations

import time

from loguru import logger

from mod.cli.common import CliError, Database, change, refused
from mod.config.validator import Settings
from mod.db import dbhandler, schema
from mod.db.models import TABLES
from mod.service import Flow, User, moderation

ALL_TABLES = tuple(table.sqlmeta.table for table in TABLES)


def migrate(database: Database, dry_run: bool = False) -> schema.Outcome:
    """Create a fresh database at the current schema version, or upgrade an older one."""
    def run() -> schema.Outcome:
        try:
            return schema.migrate(database.engine, dry_run)
        except schema.SchemaError as exc:
            raise CliError(str(exc)) from None
    return database.run("migrate", run)


def schema_version(database: Database) -> int | None:
    def run() -> int | None:
        return schema.current_version(database.engine)
    return database.run("schema_version", run)


def create_tables(database: Database) -> tuple[list[str], list[str], schema.Outcome]:
    """Create the missing tables (upgrading older ones); return (created, already there,
    what the schema check did)."""
    outcome = migrate(database)
    created = outcome.created
    present = [name for name in ALL_TABLES if name not in created]
    if created:
        logger.info("tables created in {}: {}", database.uri, ", ".join(created))
    return created, present, outcome


def existing_tables(database: Database) -> list[str]:
    return database.read(dbhandler.existing_tables)


def drop_tables(database: Database) -> list[str]:
    dropped = database.write(schema.drop_all)
    if dropped:
        logger.info("tables dropped in {}: {}", database.uri, ", ".join(dropped))
    return dropped


def require_tables(database: Database) -> None:
    """Stop with one line unless every table of the server exists, at the current version."""
    version = schema_version(database)
    if version is not None and version > schema.CURRENT:
        raise CliError(str(schema.too_new(version)))
    if version is not None and version < schema.CURRENT:
        raise CliError(f"the database {database.uri} is at schema version {version}, older "
                       f"than this code ({schema.CURRENT}): upgrade it with "
                       "`python manage.py db migrate`, or start the server")
    existing = existing_tables(database)
    missing = [name for name in ALL_TABLES if name not in existing]
    if not existing:
        raise CliError(f"the database {database.uri} has no tables yet: create them with "
                       "`python manage.py db create`")
    if missing:
        raise CliError(f"the database {database.uri} lacks the tables {', '.join(missing)}: "
                       "create them with `python manage.py db create`")


def create_user(database: Database, settings: Settings, login: str, username: str,
                password: str, superuser: bool) -> User:
    """Create an account that logs in over MTP like any other; one line if the login is taken."""
    refused(lambda: moderation.check_account(login, username, password))
    require_tables(database)
    if database.read(moderation.user_by_login, login) is not None:
        raise CliError(f"the login {login!r} is already taken")
    password_hash = moderation.password_hash(password)
    user = change(database, moderation.create_user, login, password_hash, username,
                  settings.security.token_ttl, superuser, int(time.time()))
    logger.info("{} created with manage.py: {}", "superuser" if superuser else "user",
                user.uuid)
    return user


def create_flow(database: Database, title: str, info: str, flow_type: str,
                owner_login: str | None) -> tuple[Flow, User]:
    """Create a group or channel owned by `owner_login` (default: the first superuser)."""
    refused(lambda: moderation.check_flow(title, info))
    require_tables(database)
    flow, owner = change(database, moderation.create_flow, title, info, flow_type, owner_login,
                         int(time.time()))
    logger.info("flow created with manage.py: {} ({})", flow["uuid"], flow_type)
    return flow, owner
