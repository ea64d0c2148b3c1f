"""mod.db.schema: a database made before schema versions (tests/fixtures, made by the code of
eba349b) is upgraded with its data intact, on SQLite and PostgreSQL, on start and by hand."""

from __future__ import annotations

import contextlib
import shutil
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from manage import cli
from mod.config.validator import Database
from mod.db import dbhandler as db
from mod.db import schema, search
from mod.db.engine import Conn, Engine
from tests.fixtures.make_schema_v1 import ALICE, BOB, CHAT, LOBBY, MESSAGES, PASSWORD
from tests.support import DATABASE_KINDS, POSTGRES_URI, Client, ServerProcess, postgres_database

FIXTURES = Path(__file__).parent / "fixtures"
pytestmark = pytest.mark.anyio
needs_postgres = pytest.mark.skipif(not POSTGRES_URI, reason="MORELIA_TEST_POSTGRES_URI unset")


def load_postgres_fixture(uri: str) -> None:
    """Load the version 1 dump (plain SQL from pg_dump --inserts) into an empty database."""
    import psycopg

    with psycopg.connect(uri.replace("postgres://", "postgresql://", 1), autocommit=True) as c:
        c.execute((FIXTURES / "schema_v1.postgres.sql").read_text())  # type: ignore[arg-type]


@contextlib.contextmanager
def v1_database(kind: str, directory: Path) -> Iterator[str]:
    """A copy of the version 1 fixture: its URI."""
    if kind == "sqlite":
        path = directory / "old.db"
        shutil.copyfile(FIXTURES / "schema_v1.db", path)
        yield f"sqlite:{path}"
    else:
        with postgres_database() as uri:
            load_postgres_fixture(uri)
            yield uri


@pytest.fixture(params=DATABASE_KINDS)
def old_uri(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with v1_database(request.param, tmp_path) as uri:
        yield uri


@pytest.fixture
def engine(old_uri: str) -> Iterator[Engine]:
    engine = Engine(Database(uri=old_uri))
    yield engine
    engine.stop()


def _raw(conn: Conn, sql: str) -> list[Any]:
    return [tuple(row) for row in conn.all(sql)]


def test_the_fixture_is_version_1_and_is_upgraded_with_its_data(engine: Engine) -> None:
    assert schema.current_version(engine) == 1
    outcome = schema.migrate(engine)
    assert (outcome.before, outcome.after) == (1, schema.CURRENT)
    assert [step.version for step in outcome.steps] == list(range(2, schema.CURRENT + 1))
    assert outcome.created == []
    assert schema.current_version(engine) == schema.CURRENT
    again = schema.migrate(engine)
    assert again.steps == [] and not again.changed

    alice = engine.read_sync(db.user_by_login, "alice")
    assert alice is not None and alice["uuid"] == ALICE and alice["is_superuser"]
    assert engine.read_sync(db.user_by_uuid, BOB) is not None
    flows = {flow["uuid"]: flow for flow in engine.read_sync(db.flows_by_uuid, [LOBBY, CHAT])}
    assert flows[LOBBY]["title"] == "Lobby" and flows[LOBBY]["private"] is False
    assert flows[CHAT]["private"] is True and sorted(flows[CHAT]["users"]) == sorted([ALICE, BOB])
    messages = {m["uuid"]: m for m in engine.read_sync(db.messages_by_uuid, MESSAGES)}
    assert [messages[uuid]["text"] for uuid in MESSAGES[:3]] == [
        "Hello from v1", "Second message", "Edited in v1"]
    assert messages[MESSAGES[2]]["edited_status"] is True
    states = {uuid: engine.read_sync(db.message_state, uuid) for uuid in MESSAGES}
    assert {uuid: state[1] for uuid, state in states.items() if state} == {
        MESSAGES[0]: False, MESSAGES[1]: False, MESSAGES[2]: False, MESSAGES[3]: True}
    assert engine.read_sync(db.counts) == {"users": 2, "flows": 2, "messages": 5}
    assert len(engine.read_sync(db.changes_after, 0)) >= 8  # the change log is kept
    indexes = engine.read_sync(_raw, "SELECT indexname FROM pg_indexes" if engine.postgres
                               else "SELECT name FROM sqlite_master WHERE type = 'index'")
    assert ("messages_by_retry",) not in indexes
    # Version 8: the media store's tables, empty; files already inline stay in messages.
    assert engine.read_sync(_raw, "SELECT COUNT(*) FROM media") == [(0,)]
    assert engine.read_sync(_raw, "SELECT COUNT(*) FROM media_refs") == [(0,)]
    # Version 10: the bounds' indexes and media_quotas.
    for index in ("one_time_keys_by_key", "to_device_by_sender", "media_by_uploader"):
        assert (index,) in indexes
    assert engine.read_sync(_raw, "SELECT COUNT(*) FROM media_quotas") == [(0,)]
    # Version 11: replies (none among the old messages) and reactions.
    assert engine.read_sync(_raw, "SELECT DISTINCT reply_to FROM messages") == [("",)]
    assert engine.read_sync(_raw, "SELECT COUNT(*) FROM reactions") == [(0,)]
    # Version 12: mentions.
    assert engine.read_sync(_raw, "SELECT COUNT(*) FROM mentions") == [(0,)]
    # Version 13: files' names and types (none known for the old messages).
    assert engine.read_sync(_raw, "SELECT DISTINCT file_name, file_type FROM messages") == [
        ("", "")]
    # Version 14: the search index holds the messages there were, but the deleted one.
    assert _found(engine, "hello") == [MESSAGES[0]]
    assert _found(engine, "edited") == [MESSAGES[2]]
    assert _found(engine, "delete") == _found(engine, "deleted") == []
    assert len(_found(engine, "private")) == 1  # the chat's message


def _found(engine: Engine, word: str) -> list[str]:
    """The uuids of the messages of the fixture's flows the search index finds by `word`."""
    hits = engine.read_sync(search.hits, search.Terms((word,)), [LOBBY, CHAT], "", True, 10,
                            2**62, 0, 5.0)
    messages = engine.read_sync(db.searchable_messages, hits.ids)
    return [messages[id_]["uuid"] for id_ in hits.ids]


def test_a_half_made_index_is_made_again_whole(tmp_path: Path) -> None:
    engine = Engine(Database(uri=f"sqlite:{tmp_path / 'new.db'}"))
    try:
        schema.migrate(engine)

        def send(conn: Conn) -> None:
            db.insert_message(conn, "m1", LOBBY, ALICE, 1, {"text": "indexed words"}, 1)

        engine.write_sync(send)
        engine.write_sync(lambda conn: conn.execute("DROP TRIGGER messages_search_update"))
        assert engine.write_sync(search.ensure) is True
        assert engine.write_sync(search.ensure) is False
        assert _found(engine, "indexed") == ["m1"]
        engine.write_sync(db.update_message, "m1", ALICE, {"text": "new"}, 2, "message_edited")
        assert _found(engine, "indexed") == [] and _found(engine, "new") == ["m1"]
        engine.write_sync(schema.drop_all)
        assert engine.read_sync(_raw, "SELECT name FROM sqlite_master WHERE name <> "
                                "'sqlite_sequence'") == []
    finally:
        engine.stop()


def test_an_sqlite_upgrade_keeps_a_copy_of_the_old_file(tmp_path: Path) -> None:
    with v1_database("sqlite", tmp_path) as uri:
        engine = Engine(Database(uri=uri))
        try:
            outcome = schema.migrate(engine)
        finally:
            engine.stop()
    copy = tmp_path / "old.db.v1.bak"
    assert outcome.backup == copy and copy.is_file()
    with contextlib.closing(sqlite3.connect(copy)) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert conn.execute("SELECT COUNT(*) FROM messages").fetchone() == (5,)
        columns = {row[1] for row in conn.execute("PRAGMA table_info(flows)")}
        assert "invite_only" not in columns  # the file as it was, version 1


def test_a_fresh_database_is_created_at_the_current_version(tmp_path: Path) -> None:
    engine = Engine(Database(uri=f"sqlite:{tmp_path / 'new.db'}"))
    try:
        assert schema.current_version(engine) is None
        outcome = schema.migrate(engine)
        assert outcome.before is None and outcome.steps == [] and "users" in outcome.created
        assert outcome.backup is None and not list(tmp_path.glob("*.bak"))
        assert schema.current_version(engine) == schema.CURRENT
    finally:
        engine.stop()


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    engine = Engine(Database(uri=f"sqlite:{tmp_path / 'new.db'}"))
    try:
        schema.migrate(engine)
        engine.write_sync(lambda conn: conn.execute("UPDATE schema_version SET version = 99"))
        with pytest.raises(schema.SchemaError, match="version 99, newer than this server"):
            schema.migrate(engine)
    finally:
        engine.stop()


def _manage(uri: str, *args: str) -> Any:
    return CliRunner().invoke(cli, list(args), env={"MORELIA_DATABASE_URI": uri,
                                                    "MORELIA_CONFIG": None})


def test_manage_migrate_dry_run_changes_nothing_then_migrate_upgrades(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MORELIA_CONFIG", raising=False)
    with v1_database("sqlite", tmp_path) as uri:
        path = tmp_path / "old.db"
        before = path.read_bytes()
        version = _manage(uri, "db", "version")
        assert version.exit_code == 3 and "schema version 1;" in version.output
        dry = _manage(uri, "db", "migrate", "--dry-run")
        assert dry.exit_code == 0, dry.output
        assert "would upgrade it to" in dry.output and "2: flows.invite_only" in dry.output
        assert path.read_bytes() == before and not list(tmp_path.glob("*.bak"))
        refused = _manage(uri, "db", "flow-create", "--title", "x")
        assert refused.exit_code == 1 and "db migrate" in refused.output
        done = _manage(uri, "db", "migrate")
        assert done.exit_code == 0, done.output
        assert f"Upgraded from schema version 1 to {schema.CURRENT}" in done.output
        assert "old.db.v1.bak" in done.output
        assert _manage(uri, "db", "version").exit_code == 0
        assert "nothing to do" in _manage(uri, "db", "migrate").output


def test_manage_version_of_a_newer_database_is_one_line(tmp_path: Path) -> None:
    uri = f"sqlite:{tmp_path / 'new.db'}"
    assert _manage(uri, "db", "create").exit_code == 0
    engine = Engine(Database(uri=uri))
    try:
        engine.write_sync(lambda conn: conn.execute("UPDATE schema_version SET version = 99"))
    finally:
        engine.stop()
    for args in (("db", "version"), ("db", "migrate")):
        result = _manage(uri, *args)
        assert result.exit_code == 1 and "Traceback" not in result.output
        assert [line for line in result.output.splitlines() if line.startswith("Error:")] == [
            f"Error: the database is at schema version 99, newer than this server knows "
            f"({schema.CURRENT}): run the newer server, or restore a backup"]


# -- end to end -------------------------------------------------------------------------------


async def test_a_server_started_on_the_old_database_serves_its_messages(
        old_uri: str, tmp_path: Path) -> None:
    with ServerProcess(tmp_path, env={"MORELIA_DATABASE_URI": old_uri}) as server:
        client = await Client.connect(server.url)
        try:
            reply = await client.call("authentication", auth=False,
                                      user=[{"login": "alice", "password": PASSWORD}])
            assert reply["errors"]["code"] == 200, reply
            client.uuid = reply["data"]["user"][0]["uuid"]
            client.auth_id = reply["data"]["user"][0]["auth_id"]
            reply = await client.call("all_messages", flow=[{"uuid": LOBBY}])
            assert reply["errors"]["code"] == 200, reply
            texts = [message["text"] for message in reply["data"]["message"]]
            assert texts[:3] == ["Hello from v1", "Second message", "Edited in v1"]
            assert (await client.send(LOBBY, "Hello from today"))["errors"]["code"] == 200
        finally:
            await client.close()
        log = server.log()
    for version in range(2, schema.CURRENT + 1):
        assert log.count(f"schema: upgraded to version {version}:") == 1, log
    assert ("copy of the version 1 database" in log) == old_uri.startswith("sqlite:")


def test_a_server_refuses_a_newer_schema_in_one_line(tmp_path: Path) -> None:
    uri = f"sqlite:{tmp_path / 'new.db'}"
    engine = Engine(Database(uri=uri))
    try:
        schema.migrate(engine)
        engine.write_sync(lambda conn: conn.execute("UPDATE schema_version SET version = 99"))
    finally:
        engine.stop()
    server = ServerProcess(tmp_path, env={"MORELIA_DATABASE_URI": uri})
    with pytest.raises(RuntimeError, match="server exited"):
        server.start()
    log = server.log()
    assert "Traceback" not in log
    assert log.strip().splitlines() == [
        "Morelia Server cannot start: the database is at schema version 99, newer than this "
        f"server knows ({schema.CURRENT}): run the newer server, or restore a backup"]


@needs_postgres
def test_processes_starting_at_once_on_postgres_upgrade_once(tmp_path: Path) -> None:
    with v1_database("postgres", tmp_path) as uri:
        servers = [ServerProcess(tmp_path, env={"MORELIA_DATABASE_URI": uri})
                   for _ in range(3)]
        errors: list[BaseException] = []

        def start(server: ServerProcess) -> None:
            try:
                server.start()
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=start, args=(server,)) for server in servers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        try:
            assert errors == []
            logs = "".join(server.log() for server in servers)
        finally:
            for server in servers:
                server.stop()
        for version in range(2, schema.CURRENT + 1):
            assert logs.count(f"schema: upgraded to version {version}:") == 1, logs
        engine = Engine(Database(uri=uri))
        try:
            assert schema.current_version(engine) == schema.CURRENT
            assert engine.read_sync(db.counts)["messages"] == 5
        finally:
            engine.stop()
