"""manage.py db backup and db restore: a snapshot of a live server's database, restored into a
fresh place, serves what it held; a restore is refused while a server uses the database."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from manage import cli
from mod.config.validator import Database
from mod.db import heartbeat
from mod.db.engine import Engine
from tests.support import Client, ServerProcess, database_uri

pytestmark = pytest.mark.anyio


def manage(uri: str, *args: str, env: dict[str, str | None] | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), env={"MORELIA_DATABASE_URI": uri,
                                                    "MORELIA_CONFIG": None, **(env or {})})


def one_error(result: Result) -> str:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1, result.output
    return lines[0]


@contextlib.contextmanager
def fresh(kind: str, directory: Path) -> Iterator[str]:
    directory.mkdir()
    with database_uri(kind, directory) as uri:
        yield uri


def _live(uri: str) -> list[Any]:
    engine = Engine(Database(uri=uri))
    try:
        return engine.read_sync(heartbeat.live, int(time.time()))
    finally:
        engine.stop()


async def _texts(url: str, login: str, flow: str) -> list[str]:
    client = await Client.connect(url)
    try:
        reply = await client.call("authentication", auth=False,
                                  user=[{"login": login, "password": "secret-password"}])
        assert reply["errors"]["code"] == 200, reply
        client.uuid = reply["data"]["user"][0]["uuid"]
        client.auth_id = reply["data"]["user"][0]["auth_id"]
        reply = await client.call("all_messages", flow=[{"uuid": flow}])
        assert reply["errors"]["code"] == 200, reply
        return [message["text"] for message in reply["data"]["message"]]
    finally:
        await client.close()


async def test_a_restored_backup_serves_what_it_held(db_uri: str, tmp_path: Path) -> None:
    kind = "postgres" if db_uri.startswith("postgres") else "sqlite"
    snapshot = tmp_path / "snapshot.backup"
    with ServerProcess(tmp_path, env={"MORELIA_DATABASE_URI": db_uri}) as server:
        alice = await Client.connect(server.url)
        try:
            await alice.register("alice")
            flow = await alice.group("kept")
            for number in range(3):
                assert (await alice.send(flow, f"before {number}", number))["errors"][
                    "code"] == 200
            done = manage(db_uri, "db", "backup", str(snapshot))
            assert done.exit_code == 0, done.output
            assert snapshot.is_file() and str(snapshot) in done.output
            assert (await alice.send(flow, "after the backup", 9))["errors"]["code"] == 200
        finally:
            await alice.close()
        # The running server's heartbeat is in the database, not in the copy.
        assert _live(db_uri)
    with fresh(kind, tmp_path / "restored") as target:
        restored = manage(target, "db", "restore", str(snapshot), "--yes")
        assert restored.exit_code == 0, restored.output
        with ServerProcess(tmp_path, env={"MORELIA_DATABASE_URI": target}) as server:
            assert await _texts(server.url, "alice", flow) == [
                "before 0", "before 1", "before 2"]


async def test_restore_is_refused_while_a_server_uses_the_database(
        db_uri: str, tmp_path: Path) -> None:
    snapshot = tmp_path / "snapshot.backup"
    with ServerProcess(tmp_path, env={"MORELIA_DATABASE_URI": db_uri}) as server:
        alice = await Client.connect(server.url)
        try:
            await alice.register("alice")
            flow = await alice.group("kept")
        finally:
            await alice.close()
        assert manage(db_uri, "db", "backup", str(snapshot)).exit_code == 0
        line = one_error(manage(db_uri, "db", "restore", str(snapshot), "--yes"))
        assert "server process(es) use" in line and "stop them first" in line
        assert await _texts(server.url, "alice", flow) == []
    assert _live(db_uri) == []  # a server that stops takes its heartbeat with it
    restored = manage(db_uri, "db", "restore", str(snapshot), "--yes")
    assert restored.exit_code == 0, restored.output


def test_restore_asks_first(tmp_path: Path) -> None:
    uri = f"sqlite:{tmp_path / 'db.sqlite'}"
    assert manage(uri, "db", "create").exit_code == 0
    assert manage(uri, "db", "backup", str(tmp_path / "copy")).exit_code == 0
    refused = CliRunner().invoke(cli, ["db", "restore", str(tmp_path / "copy")], input="n\n",
                                 env={"MORELIA_DATABASE_URI": uri, "MORELIA_CONFIG": None})
    assert refused.exit_code == 1 and "Aborted" in refused.output


def test_backup_and_restore_errors_are_one_line(tmp_path: Path) -> None:
    uri = f"sqlite:{tmp_path / 'db.sqlite'}"
    assert manage(uri, "db", "create").exit_code == 0
    taken = tmp_path / "taken"
    taken.write_text("x")
    assert "already exists" in one_error(manage(uri, "db", "backup", str(taken)))
    assert "not an SQLite database" in one_error(
        manage(uri, "db", "restore", str(taken), "--yes"))
    assert "no backup file" in one_error(
        manage(uri, "db", "restore", str(tmp_path / "missing"), "--yes"))


def test_without_pg_dump_the_command_to_run_is_printed(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    uri = "postgres://morelia:s3cret@db.example:5433/chat?cache=0&sslmode=require"
    line = one_error(manage(uri, "db", "backup", str(tmp_path / "dump")))
    assert "pg_dump is not on PATH" in line
    assert ("PGPASSWORD=... pg_dump --format=custom --no-owner "
            "--exclude-table-data=heartbeats --file") in line
    assert "postgresql://morelia@db.example:5433/chat?sslmode=require" in line
    assert "s3cret" not in line and "cache" not in line
