"""manage.py: the operator's tool for Morelia Server.

Run `python manage.py --help` for the commands. The original server's forms work too:
`--db create`, `--db delete`, `--table flow`, `db flow-create`, `db user-create`.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from mod import log_handler
from mod.cli import admin, backup, importer, media
from mod.cli import moderation as ops
from mod.cli.chat import Chat, ChatOptions
from mod.cli.common import CliError, Database, first_line, load, setup_logging
from mod.cli.frames import METHODS, Fields, parse_override, render, status_of
from mod.cli.testclient import send as send_request
from mod.config.config import ConfigError, load_settings
from mod.db import schema

ROOT = Path(__file__).resolve().parent
DEFAULT_ADDRESS = "ws://127.0.0.1:8080/ws"
LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")
# The original's top-level forms, rewritten to the commands they mean.
LEGACY = {("--db", "create"): ["db", "create"], ("--db", "delete"): ["db", "delete"],
          ("--table", "flow"): ["db", "flow-create"]}
LEGACY_OPTIONS = {"--db": "create or delete", "--table": "flow"}
TRUE_WORDS = {"true", "yes", "on", "1"}
FALSE_WORDS = {"false", "no", "off", "0"}


class Commands(click.Group):
    """The root group: understands the original's forms, and never shows a traceback."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and "=" in args[0] and args[0].startswith(("--db=", "--table=")):
            args = [*args[0].split("=", 1), *args[1:]]
        if args and args[0] in LEGACY_OPTIONS:
            value = args[1] if len(args) > 1 else ""
            if (args[0], value) not in LEGACY:
                got = f", not {value!r}" if value else ""
                raise click.UsageError(f"{args[0]} takes {LEGACY_OPTIONS[args[0]]}{got}", ctx)
            args = [*LEGACY[args[0], value], *args[2:]]
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Exception as exc:  # a bug or an unforeseen failure: still one line
            raise CliError(f"{type(exc).__name__}: {first_line(exc)}") from None


class BoolWords(click.Command):
    """Takes `--flag true|false` (the original's form) as well as `--flag/--no-flag`."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        flags = {opt: (param.opts[0], param.secondary_opts[0]) for param in self.params
                 if isinstance(param, click.Option) and param.secondary_opts
                 for opt in param.opts}
        fixed: list[str] = []
        index = 0
        while index < len(args):
            arg, word = args[index], (args[index + 1].lower() if index + 1 < len(args) else "")
            if arg in flags and word in TRUE_WORDS | FALSE_WORDS:
                on, off = flags[arg]
                fixed.append(on if word in TRUE_WORDS else off)
                index += 2
                continue
            fixed.append(arg)
            index += 1
        return super().parse_args(ctx, fixed)


@click.group(cls=Commands, context_settings={"help_option_names": ["--help"]},
             epilog="\b\nThe original's forms work too:\n"
                    "  --db create              same as: db create\n"
                    "  --db delete [--yes]      same as: db delete\n"
                    "  --table flow [OPTIONS]   same as: db flow-create")
def cli() -> None:
    """Set up and look after a Morelia Server.

    Settings come from config.ini (or $MORELIA_CONFIG) and MORELIA_<SECTION>_<KEY>
    environment variables, exactly as the server reads them.
    """
    setup_logging()


# -- database ---------------------------------------------------------------------------------


@cli.group("db")
def db_group() -> None:
    """Create, upgrade, back up or drop the tables; import the original server's data; add
    users and flows."""


@db_group.command("create")
def db_create() -> None:
    """Create every table in the configured database (safe to repeat)."""
    settings = load()
    with Database(settings, create=True) as database:
        created, present, outcome = admin.create_tables(database)
    if outcome.steps:
        click.echo(_upgraded(outcome))
    if created:
        click.echo(f"Created {len(created)} tables in {database.uri}: {', '.join(created)}.")
        if present:
            click.echo(f"Already there: {', '.join(present)}.")
    else:
        click.echo(f"All {len(present)} tables already exist in {database.uri}; "
                   "nothing changed.")


@db_group.command("delete")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
def db_delete(yes: bool) -> None:
    """Drop every table, with all users, flows and messages (asks first)."""
    settings = load()
    with Database(settings) as database:
        existing = admin.existing_tables(database)
        if not existing:
            click.echo(f"There are no tables in {database.uri}; nothing changed.")
            return
        if not yes:
            click.confirm(f"Drop {len(existing)} tables in {database.uri}, with every user, "
                          "flow and message?", abort=True)
        dropped = admin.drop_tables(database)
    click.echo(f"Dropped {len(dropped)} tables in {database.uri}: {', '.join(dropped)}.")


# -- schema versions and backups ---------------------------------------------------------------


def _upgraded(outcome: schema.Outcome) -> str:
    steps = ", ".join(f"{step.version} ({step.summary})" for step in outcome.steps)
    kept = f"; the version {outcome.before} file was copied to {outcome.backup}" \
        if outcome.backup else ""
    return f"Upgraded from schema version {outcome.before} to {outcome.after}: {steps}{kept}."


@db_group.command("migrate")
@click.option("--dry-run", is_flag=True, help="Only say what would be done.")
def db_migrate(dry_run: bool) -> None:
    """Upgrade the database to this code's schema version, step by step.

    The server does the same when it starts. On SQLite the file is copied first, beside it,
    as FILE.vN.bak (N: the version before). A fresh database is created at the current
    version.
    """
    settings = load()
    with Database(settings, create=not dry_run) as database:
        outcome = admin.migrate(database, dry_run)
    if outcome.before is None:
        verb = "Would create" if dry_run else "Created"
        click.echo(f"{verb} the tables in {database.uri} at schema version {outcome.after}.")
    elif not outcome.steps:
        click.echo(f"{database.uri} is at schema version {outcome.before}, this code's; "
                   "nothing to do.")
    elif dry_run:
        steps = "".join(f"\n  {step.version}: {step.summary}" for step in outcome.steps)
        click.echo(f"{database.uri} is at schema version {outcome.before}; migrate would "
                   f"upgrade it to {outcome.after}:{steps}")
    else:
        click.echo(_upgraded(outcome))


@db_group.command("version")
def db_version() -> None:
    """Print the database's schema version and this code's.

    Exit status 0 when they match, 3 when the database needs `db migrate` (or has no tables
    yet), 1 when it was made by a newer server.
    """
    settings = load()
    with Database(settings) as database:
        version = admin.schema_version(database)
    if version is None:
        click.echo(f"{database.uri} has no tables yet; this code's schema version is "
                   f"{schema.CURRENT}.")
        click.get_current_context().exit(3)
    click.echo(f"{database.uri}: schema version {version}; this code's: {schema.CURRENT}.")
    if version > schema.CURRENT:
        raise CliError(str(schema.too_new(version)))
    if version < schema.CURRENT:
        click.echo("Upgrade it with `python manage.py db migrate` (the server does so when "
                   "it starts).")
        click.get_current_context().exit(3)


@db_group.command("backup")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
def db_backup(file: Path) -> None:
    """Copy a consistent snapshot of the database to FILE, while servers run.

    SQLite: through SQLite's online backup, into a new SQLite file. PostgreSQL: with
    pg_dump (custom format) when it is on PATH; otherwise the command to run is printed
    and the exit status is 1.
    """
    settings = load()
    with Database(settings) as database:
        click.echo(backup.backup(database, file))


@db_group.command("restore")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
def db_restore(file: Path, yes: bool) -> None:
    """Replace the database with the backup FILE (asks first).

    Refused while any server process uses the database: each running server refreshes a
    row in the `heartbeats` table every 5 s; one seen in the last 15 s counts as running.
    SQLite: FILE is copied into place. PostgreSQL: pg_restore (or psql for a plain SQL
    dump) restores it into the configured database, best an empty one.
    """
    settings = load()
    with Database(settings, create=True) as database:
        if not yes:
            click.confirm(f"Replace everything in {database.uri} with {file}?", abort=True)
        click.echo(backup.restore(database, file))


@db_group.command("import-original")
@click.argument("source")
@click.option("--dry-run", is_flag=True, help="Only report what would be imported.")
def db_import_original(source: str, dry_run: bool) -> None:
    """Import the original Morelia Server's database SOURCE: users, flows, messages.

    SOURCE is the original's [DATABASE] URI (sqlite:/path/to/db_sqlite.db,
    postgres://user:password@host/name) or an SQLite file path; it is opened read only.
    Users keep their uuids and log in with their old passwords (hashed here with argon2id);
    the original's admins become superusers. One transaction per batch; rows already here
    (same uuid) are left alone, so running it again imports nothing twice. Rows this server
    refuses are reported one line each and skipped.
    """
    settings = load()
    importer.import_original(settings, source, dry_run, click.echo)


def _account_options(fn: Any) -> Any:
    fn = click.option("--password", "-p", help="Password (prompted, hidden, if not given).")(fn)
    fn = click.option("--username", help="Display name (default: the login).")(fn)
    fn = click.option("--login", "-l", help="Login (prompted if not given).")(fn)
    return fn


def _create_account(login: str | None, username: str | None, password: str | None,
                    superuser: bool) -> None:
    settings = load()
    with Database(settings) as database:
        admin.require_tables(database)  # before the prompts, not after them
        if login is None:
            login = click.prompt("Login", type=str)
        if username is None:
            username = click.prompt("Username", default=login, type=str)
        if password is None:
            password = click.prompt("Password", hide_input=True, confirmation_prompt=True,
                                    type=str)
        user = admin.create_user(database, settings, login, username, password, superuser)
    kind = "Superuser" if superuser else "User"
    click.echo(f"{kind} {user.login!r} created (uuid {user.uuid}); "
               "it logs in over MTP with this login and password.")


@db_group.command("user-create")
@_account_options
@click.option("--superuser", is_flag=True, help="Give the account superuser rights.")
def db_user_create(login: str | None, username: str | None, password: str | None,
                   superuser: bool) -> None:
    """Create a user account (the original's form)."""
    _create_account(login, username, password, superuser)


@cli.command("superuser-create")
@_account_options
def superuser_create(login: str | None, username: str | None, password: str | None) -> None:
    """Create an account with superuser rights.

    A superuser may delete any message and post in any channel it has joined.
    """
    _create_account(login, username, password, superuser=True)


@db_group.command("flow-create")
@click.option("--title", default="General", show_default=True, help="The flow's title.")
@click.option("--info", default="", help="The flow's description.")
@click.option("--type", "flow_type", type=click.Choice(["group", "channel"]), default="group",
              show_default=True, help="group: members write; channel: only the owner.")
@click.option("--owner", metavar="LOGIN", help="Owner's login (default: the first superuser).")
def db_flow_create(title: str, info: str, flow_type: str, owner: str | None) -> None:
    """Create a group or channel and print its uuid (also `--table flow`)."""
    settings = load()
    with Database(settings) as database:
        flow, user = admin.create_flow(database, title, info, flow_type, owner)
    click.echo(f"Created the {flow_type} {title!r} owned by {user.login!r}:", err=True)
    click.echo(flow["uuid"])


# -- accounts, flows and registration tokens --------------------------------------------------


@cli.group("user")
def user_group() -> None:
    """List, lock, unlock and reset accounts; grant or take superuser rights.

    Changes reach running servers within [BROKER] CHECK_INTERVAL seconds.
    """


@user_group.command("list")
def user_list() -> None:
    """List the accounts: login, username, created, superuser, locked."""
    settings = load()
    with Database(settings) as database:
        users = ops.users(database)
    click.echo(f"{'LOGIN':<24} {'USERNAME':<24} {'CREATED (UTC)':<16} SUPERUSER LOCKED")
    for row in users:
        click.echo(f"{row.login:<24} {row.username:<24} {ops.when(row.time_created):<16} "
                   f"{'yes' if row.is_superuser else 'no':<9} "
                   f"{'yes' if row.locked else 'no'}")


@user_group.command("lock")
@click.argument("login")
def user_lock(login: str) -> None:
    """Lock an account: revoke every token, close its connections, refuse its logins.

    Its messages stay. `user unlock` lets it log in again.
    """
    settings = load()
    with Database(settings) as database:
        revoked = ops.lock(database, login, True)
    click.echo(f"User {login!r} locked; {revoked} tokens revoked.")


@user_group.command("unlock")
@click.argument("login")
def user_unlock(login: str) -> None:
    """Let a locked account log in again."""
    settings = load()
    with Database(settings) as database:
        ops.lock(database, login, False)
    click.echo(f"User {login!r} unlocked.")


@user_group.command("reset-password")
@click.argument("login")
@click.option("--password", "-p", help="The new password (prompted, hidden, if not given).")
def user_reset_password(login: str, password: str | None) -> None:
    """Set a new password; every token of the account is revoked."""
    settings = load()
    with Database(settings) as database:
        ops.user(database, login)  # before the prompt, not after it
        if password is None:
            password = click.prompt("New password", hide_input=True, confirmation_prompt=True,
                                    type=str)
        revoked = ops.reset_password(database, login, password)
    click.echo(f"Password of {login!r} reset; {revoked} tokens revoked.")


@user_group.command("promote")
@click.argument("login")
def user_promote(login: str) -> None:
    """Give an account superuser rights."""
    settings = load()
    with Database(settings) as database:
        ops.set_superuser(database, login, True)
    click.echo(f"User {login!r} is a superuser.")


@user_group.command("demote")
@click.argument("login")
def user_demote(login: str) -> None:
    """Take superuser rights from an account."""
    settings = load()
    with Database(settings) as database:
        ops.set_superuser(database, login, False)
    click.echo(f"User {login!r} is no longer a superuser.")


@cli.group("flow")
def flow_group() -> None:
    """List flows and their members; delete a flow."""


@flow_group.command("list")
def flow_list() -> None:
    """List the flows: uuid, type, members, private, title."""
    settings = load()
    with Database(settings) as database:
        flows = ops.flows(database)
    click.echo(f"{'UUID':<40} {'TYPE':<8} {'MEMBERS':>7} {'PRIVATE':<7} TITLE")
    for row in flows:
        click.echo(f"{row['uuid']:<40} {row['type']:<8} {len(row['users']):>7} "
                   f"{'yes' if row['private'] else 'no':<7} {row['title']}")


@flow_group.command("members")
@click.argument("uuid")
def flow_members(uuid: str) -> None:
    """List a flow's members: login and username (the owner marked)."""
    settings = load()
    with Database(settings) as database:
        found = ops.flow(database, uuid)
        users = ops.members(database, found)
    for member in found["users"]:
        row = users.get(member)
        if row is not None:
            owner = " (owner)" if member == found["owner"] else ""
            click.echo(f"{row.login}\t{row.username}{owner}")


@flow_group.command("delete")
@click.argument("uuid")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
def flow_delete(uuid: str, yes: bool) -> None:
    """Delete a flow with its messages; its members are told (MTP push, Matrix leave)."""
    settings = load()
    with Database(settings) as database:
        found = ops.flow(database, uuid)
        if not yes:
            click.confirm(f"Delete the {found['type']} {found['title']!r} with its "
                          f"{len(found['users'])} members' messages?", abort=True)
        ops.delete_flow(database, uuid)
    click.echo(f"Flow {uuid} deleted.")


@cli.group("registration-token")
def token_group() -> None:
    """Tokens that let people register while [SECURITY] REGISTRATION = token."""


@token_group.command("create")
@click.option("--uses", type=click.IntRange(min=1), help="How many registrations it allows "
              "[default: any number].")
@click.option("--expires", type=click.FloatRange(min=0, min_open=True), metavar="DAYS",
              help="Days until it expires [default: never].")
@click.option("--token", help="The token itself [default: 16 random letters and digits].")
def token_create(uses: int | None, expires: float | None, token: str | None) -> None:
    """Create a registration token and print it."""
    settings = load()
    with Database(settings) as database:
        made = ops.create_token(database, token, uses, expires)
    if settings.security.registration != "token":
        click.echo(f"note: [SECURITY] REGISTRATION is {settings.security.registration}; "
                   "tokens are asked for only when it is token", err=True)
    click.echo(made["token"])


@token_group.command("list")
def token_list() -> None:
    """List the registration tokens: token, uses, allowed, expires."""
    settings = load()
    with Database(settings) as database:
        tokens = ops.tokens(database)
    click.echo(f"{'TOKEN':<24} {'USES':>5} {'ALLOWED':>7} EXPIRES (UTC)")
    for row in tokens:
        allowed = "-" if row["uses_allowed"] is None else str(row["uses_allowed"])
        expires = ops.when(row["expires"]) if row["expires"] else "never"
        click.echo(f"{row['token']:<24} {row['uses']:>5} {allowed:>7} {expires}")


@token_group.command("delete")
@click.argument("token")
def token_delete(token: str) -> None:
    """Delete a registration token."""
    settings = load()
    with Database(settings) as database:
        ops.delete_token(database, token)
    click.echo(f"Registration token {token!r} deleted.")


# -- media ------------------------------------------------------------------------------------


@cli.group("media")
def media_group() -> None:
    """The media store: files uploaded over Matrix or sent over MTP."""


@media_group.command("purge")
@click.option("--older-than", "days", type=click.FloatRange(min=0), required=True,
              metavar="DAYS", help="Only files stored more than DAYS days ago.")
def media_purge(days: float) -> None:
    """Remove files no message or profile refers to, and say what went."""
    settings = load()
    with Database(settings) as database:
        done = media.purge(database, settings, days)
    for row in done.rows:
        name = f" {row['name']}" if row["name"] else ""
        click.echo(f"removed mxc://{settings.matrix.server_name}/{row['media_id']} "
                   f"{row['content_type']} {row['size']} bytes{name}")
    files = "1 file" if done.files == 1 else f"{done.files} files"
    click.echo(f"Removed {len(done.rows)} media ({done.size} bytes), {files}.")


@media_group.command("quota")
@click.argument("login")
@click.option("--bytes", "max_bytes", metavar="SIZE",
              help="The user's own limit of bytes: 2GiB, 500MiB, bytes, 0 for unlimited, or "
                   "default.")
@click.option("--files", "max_files", metavar="COUNT",
              help="The user's own limit of files: a number, 0 for unlimited, or default.")
@click.option("--default", "default", is_flag=True,
              help="Back to the configured quota ([MEDIA] QUOTA_BYTES, QUOTA_FILES).")
def media_quota(login: str, max_bytes: str | None, max_files: str | None,
                default: bool) -> None:
    """Show a user's media usage and quota; with options, set or reset the user's own."""
    settings = load()
    with Database(settings) as database:
        if max_bytes is None and max_files is None and not default:
            view = media.show_quota(database, settings, login)
        else:
            view = media.set_quota(database, settings, login, max_bytes, max_files, default)
    for line in media.describe(view):
        click.echo(line)


# -- server -----------------------------------------------------------------------------------


@cli.command("runserver", cls=BoolWords)
@click.option("--host", "-h", help="Address to listen on [default: SERVER.HOST, 127.0.0.1].")
@click.option("--port", "-p", type=click.IntRange(1, 65535),
              help="Port to listen on [default: SERVER.PORT, 8080].")
@click.option("--log-level", type=click.Choice(LOG_LEVELS, case_sensitive=False),
              default="info", show_default=True, help="uvicorn's log level.")
@click.option("--use-colors/--no-use-colors", default=None,
              help="Colour the log [default: when the terminal can].")
@click.option("--reload/--no-reload", "-r", default=False, show_default=True,
              help="Restart when the code changes (development).")
@click.option("--workers", type=click.IntRange(min=1), help="Worker processes [default: 1].")
def runserver(host: str | None, port: int | None, log_level: str, use_colors: bool | None,
              reload: bool, workers: int | None) -> None:
    """Start the server with uvicorn."""
    import uvicorn

    settings = load()
    if reload and workers and workers > 1:
        raise click.UsageError("--reload and --workers cannot be combined")
    # Reach the database first: a server that cannot would stop with a traceback instead.
    with Database(settings, create=True) as database:
        admin.existing_tables(database)
        version = admin.schema_version(database)
    if version is not None and version > schema.CURRENT:
        raise CliError(str(schema.too_new(version)))
    # The server's log set-up for uvicorn's lines here too (a reloader's, a supervisor's),
    # instead of uvicorn's own format; a function resolves standard error at each line.
    log_handler.setup_logging(settings.logging, lambda line: sys.stderr.write(line))
    uvicorn.run(
        "server:app",
        app_dir=str(ROOT),
        host=host or settings.server.host,
        port=port or settings.server.port,
        log_level=log_level.lower(),
        use_colors=use_colors,
        reload=reload,
        workers=workers,
        ws_max_size=settings.server.max_frame_size,
        ws_ping_interval=settings.server.ping_interval,
        ws_ping_timeout=settings.server.ping_timeout,
        ws_per_message_deflate=settings.server.compression,
        log_config=None,
    )


# -- test client ------------------------------------------------------------------------------


@cli.group("testclient")
def testclient() -> None:
    """A small MTP client, to check a running server."""


def _address(ctx: click.Context, param: click.Parameter, value: str | None) -> str:
    """The address given, or that of the server these settings configure."""
    if value:
        return value
    try:
        server = load_settings().server
    except ConfigError:
        return DEFAULT_ADDRESS
    host = "127.0.0.1" if server.host in ("", "0.0.0.0", "::") else server.host
    host = f"[{host}]" if ":" in host else host
    return f"ws://{host}:{server.port}/ws"


def _client_options(fn: Any) -> Any:
    fn = click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=10.0,
                      show_default=True, help="Seconds to wait for the server.")(fn)
    fn = click.option("--password", "-p", help="Password (prompted, hidden, when --login is "
                      "given without it).")(fn)
    fn = click.option("--login", "-l", help="Log in as this user first.")(fn)
    fn = click.option("--address", "-a", callback=_address,
                      help="The server's websocket [default: ws://SERVER.HOST:SERVER.PORT/ws, "
                      f"{DEFAULT_ADDRESS}].")(fn)
    return fn


@testclient.command("send", context_settings={"ignore_unknown_options": True},
                    epilog="Methods: " + ", ".join(METHODS) + ".")
@click.option("-t", "--type", "kind", default="ping_pong", show_default=True, metavar="TYPE",
              help="MTP method.")
@_client_options
@click.option("--username", help="Username (register_user).")
@click.option("--flow", "-f", metavar="UUID", help="data.flow[0].uuid")
@click.option("--text", help="data.message[0].text")
@click.option("--message", "-m", metavar="UUID", help="data.message[0].uuid")
@click.option("--user", "-u", "users", multiple=True, metavar="UUID",
              help="A user uuid (user_info; add_flow members); repeatable.")
@click.option("--title", help="data.flow[0].title")
@click.option("--info", help="data.flow[0].info")
@click.option("--flow-type", type=click.Choice(["chat", "group", "channel"]),
              help="data.flow[0].type (add_flow) [default: group]")
@click.option("--time", "time_", type=click.IntRange(min=0), help="data.time")
@click.argument("overrides", nargs=-1, metavar="[PATH=VALUE]...")
def testclient_send(kind: str, address: str, login: str | None, password: str | None,
                    timeout: float, username: str | None, flow: str | None, text: str | None,
                    message: str | None, users: tuple[str, ...], title: str | None,
                    info: str | None, flow_type: str | None, time_: int | None,
                    overrides: Sequence[str]) -> None:
    """Send one MTP request and print the response.

    Methods that need a user log in first with --login and --password. Any field can be set
    with PATH=VALUE (a string) or PATH:=JSON, e.g. data.flow.0.title=Hi or data.time:=0.
    Exit status: 0 below 400, 1 for an error code, 2 when the server cannot be reached.
    """
    parsed = [parse_override(item) for item in overrides]
    if login is not None and password is None:
        password = click.prompt("Password", hide_input=True, type=str)
    given = Fields(login=login, password=password, username=username, flow=flow, text=text,
                   message=message, users=users, title=title, info=info, flow_type=flow_type,
                   time=time_)
    if kind not in METHODS:
        click.echo(f"note: {kind!r} is not an MTP method; sending it anyway", err=True)
    elif METHODS[kind] and login is None:
        click.echo(f"note: {kind} needs a user; without --login it goes unauthenticated",
                   err=True)
    outcome = asyncio.run(send_request(address, kind, given, parsed, timeout))
    if outcome.login_refused:
        click.echo(f"Logging in as {login!r} failed:", err=True)
    click.echo(render(outcome.response))
    failed = outcome.login_refused or status_of(outcome.response) >= 400
    click.get_current_context().exit(1 if failed else 0)


@testclient.command("chat")
@_client_options
@click.option("--flow", "-f", metavar="UUID", required=True, help="The flow to chat in.")
@click.option("--history", type=click.IntRange(0, 100), default=20, show_default=True,
              help="How many earlier messages to show.")
@click.option("--join", is_flag=True, help="Join the flow first (groups and channels).")
def testclient_chat(address: str, login: str | None, password: str | None, timeout: float,
                    flow: str, history: int, join: bool) -> None:
    """Chat in a flow: shows its last messages, sends each line typed, prints what others
    write as it arrives. Leave with /quit or end of input (Ctrl-D)."""
    if login is None:
        login = click.prompt("Login", type=str)
    if password is None:
        password = click.prompt("Password", hide_input=True, type=str)
    options = ChatOptions(address=address, login=login, password=password, flow=flow,
                          history=history, join=join, timeout=timeout)
    asyncio.run(Chat(options).run())


if __name__ == "__main__":
    cli()
