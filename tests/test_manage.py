"""manage.py: database, accounts, flows and runserver, through click's CliRunner."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner, Result

import manage
from manage import cli
from mod.cli.common import close
from mod.config.validator import Database as DatabaseSettings
from mod.db import dbhandler
from mod.db.engine import Engine
from tests.support import ROOT, Client, ServerProcess, free_port

pytestmark = pytest.mark.slow

ALL_TABLES = ["users", "flows", "members", "invites", "messages", "tokens", "txns", "changes",
              "heartbeats", "registration_tokens", "account_data", "receipts", "devices",
              "one_time_keys", "to_device", "cross_signing_keys", "key_backups", "backup_keys",
              "media", "media_refs", "media_quotas", "reactions", "mentions"]


@pytest.fixture
def env(db_uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Run commands in an empty directory against a fresh database of the db_uri kind."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MORELIA_CONFIG", raising=False)
    monkeypatch.setenv("MORELIA_DATABASE_URI", db_uri)
    return {"MORELIA_DATABASE_URI": db_uri}


def run(*args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), input=input)


def ok(*args: str, input: str | None = None) -> Result:
    result = run(*args, input=input)
    assert result.exit_code == 0, (result.output, result.exception)
    return result


def fails(*args: str, input: str | None = None, code: int = 1) -> str:
    """Run a command that must fail with one clear line; return that line."""
    result = run(*args, input=input)
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1, result.stderr
    return lines[0]


def read(uri: str, fn: Any, *args: Any) -> Any:
    engine = Engine(DatabaseSettings(uri=uri))
    try:
        return engine.read_sync(fn, *args)
    finally:
        close(engine)


@pytest.fixture
def ready(env: dict[str, str]) -> dict[str, str]:
    """A database with its tables and a superuser `root`."""
    ok("db", "create")
    ok("superuser-create", "--login", "root", "--username", "Root", "--password", "root-pw")
    return env


# -- help -------------------------------------------------------------------------------------


def _commands(group: click.Group, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    for name, command in group.commands.items():
        yield (*prefix, name)
        if isinstance(command, click.Group):
            yield from _commands(command, (*prefix, name))


def test_help_lists_every_command_with_a_line() -> None:
    output = ok("--help").output
    for name in ("db", "runserver", "superuser-create", "testclient"):
        line = next(line for line in output.splitlines() if line.strip().startswith(name))
        assert len(line.split()) > 1, line
    assert "--db create" in output and "--table flow" in output


@pytest.mark.parametrize("path", list(_commands(cli)), ids=" ".join)
def test_every_command_has_help(path: tuple[str, ...]) -> None:
    result = ok(*path, "--help")
    assert result.output.startswith("Usage:")
    assert len(result.output.splitlines()) > 3


def test_root_help_shows_each_subcommand_description() -> None:
    for group in ("db", "testclient"):
        output = ok(group, "--help").output
        command = cli.commands[group]
        assert isinstance(command, click.Group)
        for name in command.commands:
            assert any(line.strip().startswith(name) and len(line.split()) > 1
                       for line in output.splitlines()), (name, output)


# -- database ---------------------------------------------------------------------------------


@pytest.mark.parametrize("form", [("--db", "create"), ("db", "create"), ("--db=create",)])
def test_db_create_makes_every_table_and_is_idempotent(env: dict[str, str],
                                                       form: tuple[str, ...]) -> None:
    first = ok(*form).output
    assert first.startswith(f"Created {len(ALL_TABLES)} tables")
    for name in ALL_TABLES:
        assert name in first
    assert sorted(read(env["MORELIA_DATABASE_URI"], dbhandler.existing_tables)) == \
        sorted(ALL_TABLES)
    again = ok(*form).output
    assert "already exist" in again and "nothing changed" in again


def test_db_delete_asks_first(env: dict[str, str]) -> None:
    uri = env["MORELIA_DATABASE_URI"]
    ok("--db", "create")
    refused = run("--db", "delete", input="n\n")
    assert refused.exit_code == 1 and "Aborted" in refused.output
    assert f"Drop {len(ALL_TABLES)} tables" in refused.output
    assert len(read(uri, dbhandler.existing_tables)) == len(ALL_TABLES)
    accepted = ok("--db", "delete", input="y\n")
    assert f"Dropped {len(ALL_TABLES)} tables" in accepted.output
    assert read(uri, dbhandler.existing_tables) == []
    assert "nothing changed" in ok("db", "delete").output


@pytest.mark.parametrize("form", [("--db", "delete", "--yes"), ("db", "delete", "-y")])
def test_db_delete_yes_skips_the_prompt(env: dict[str, str], form: tuple[str, ...]) -> None:
    ok("db", "create")
    result = ok(*form)
    assert "[y/N]" not in result.output and f"Dropped {len(ALL_TABLES)} tables" in result.output
    assert read(env["MORELIA_DATABASE_URI"], dbhandler.existing_tables) == []


def test_db_commands_need_tables(env: dict[str, str]) -> None:
    ok("db", "create")
    ok("db", "delete", "--yes")
    line = fails("superuser-create", "-l", "a", "--username", "A", "-p", "b")
    assert "no tables" in line and "db create" in line


def test_bad_legacy_forms_are_usage_errors(env: dict[str, str]) -> None:
    assert "create or delete" in run("--db", "drop").output
    assert run("--db", "drop").exit_code == 2
    assert run("--table", "user").exit_code == 2


def test_missing_sqlite_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MORELIA_DATABASE_URI", f"sqlite:{tmp_path}/missing/dir/m.db")
    line = fails("--db", "create")
    assert "no directory" in line and "missing/dir" in line


def test_missing_sqlite_file_is_not_created(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MORELIA_DATABASE_URI", "sqlite:typo.db")
    for args in (("db", "delete", "--yes"), ("--table", "flow"),
                 ("superuser-create", "-l", "a", "--username", "a", "-p", "b")):
        assert "there is no database at typo.db" in fails(*args)
    assert not (tmp_path / "typo.db").exists()


def test_unreachable_postgres(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    port = free_port()
    monkeypatch.setenv("MORELIA_DATABASE_URI", f"postgres://morelia:s3cret@127.0.0.1:{port}/x")
    for args in (("--db", "create"), ("db", "delete", "--yes"), ("--table", "flow")):
        line = fails(*args)
        assert f"127.0.0.1:{port}" in line
        assert "s3cret" not in line


def test_invalid_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "broken.ini").write_text("[SERVER]\nPORT = seventy\n")
    monkeypatch.setenv("MORELIA_CONFIG", str(tmp_path / "broken.ini"))
    for args in (("--db", "create"), ("runserver",), ("superuser-create",)):
        line = fails(*args)
        assert "invalid configuration" in line and "[SERVER] PORT" in line


def test_config_file_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MORELIA_DATABASE_URI", raising=False)
    monkeypatch.delenv("MORELIA_CONFIG", raising=False)
    (tmp_path / "config.ini").write_text("[DATABASE]\nURI = sqlite:from-config.db\n")
    assert "sqlite:from-config.db" in ok("--db", "create").output
    assert (tmp_path / "from-config.db").exists()


# -- accounts ---------------------------------------------------------------------------------


def test_superuser_with_every_option_asks_nothing(env: dict[str, str]) -> None:
    ok("db", "create")
    result = ok("superuser-create", "--login", "root", "--username", "Root",
                "--password", "root-pw", input="")
    assert "Superuser 'root' created" in result.output
    assert ":" not in result.output.split("created")[0]  # no prompt was shown
    user = read(env["MORELIA_DATABASE_URI"], dbhandler.user_by_login, "root")
    assert user["is_superuser"] and user["username"] == "Root"
    assert user["password_hash"].startswith("$argon2id$")
    assert "root-pw" not in result.output


def test_superuser_prompts_for_what_is_missing(env: dict[str, str]) -> None:
    ok("db", "create")
    result = ok("superuser-create",
                input="admin\n\nfirst-try\nsecond-try\nadmin-pw\nadmin-pw\n")
    assert "Login:" in result.output and "Username [admin]:" in result.output
    assert "do not match" in result.output
    assert "first-try" not in result.output and "admin-pw" not in result.output
    user = read(env["MORELIA_DATABASE_URI"], dbhandler.user_by_login, "admin")
    assert user["is_superuser"] and user["username"] == "admin"


def test_login_taken(ready: dict[str, str]) -> None:
    line = fails("superuser-create", "-l", "root", "--username", "x", "-p", "x")
    assert line == "Error: the login 'root' is already taken"
    assert "already taken" in fails("db", "user-create", "-l", "root", "--username", "x",
                                    "-p", "x")


def test_empty_login_or_password_refused(ready: dict[str, str]) -> None:
    assert "login cannot be empty" in fails("superuser-create", "-l", " ", "--username", "x",
                                            "-p", "x")
    assert "password cannot be empty" in fails("superuser-create", "-l", "x", "--username",
                                               "x", "-p", "")


def test_db_user_create_makes_an_ordinary_user(ready: dict[str, str]) -> None:
    result = ok("db", "user-create", "--login", "bob", "--username", "Bob",
                "--password", "bob-pw")
    assert "User 'bob' created" in result.output
    user = read(ready["MORELIA_DATABASE_URI"], dbhandler.user_by_login, "bob")
    assert not user["is_superuser"]


# -- flows ------------------------------------------------------------------------------------


@pytest.mark.parametrize("form", [("--table", "flow"), ("db", "flow-create")])
def test_flow_create_defaults(ready: dict[str, str], form: tuple[str, ...]) -> None:
    uri = ready["MORELIA_DATABASE_URI"]
    result = ok(*form)
    flow_uuid = result.stdout.strip()
    assert flow_uuid.isdigit()
    flow = read(uri, dbhandler.flow_by_uuid, flow_uuid)
    root = read(uri, dbhandler.user_by_login, "root")
    assert flow["type"] == "group" and flow["owner"] == root["uuid"]
    assert flow["users"] == [root["uuid"]]
    logged = [change for change in read(uri, dbhandler.changes_after, 0)
              if change.kind == "flow_created" and change.flow_uuid == flow_uuid]
    assert len(logged) == 1 and json.loads(logged[0].payload)["flow"]["uuid"] == flow_uuid


def test_flow_create_options(ready: dict[str, str]) -> None:
    uri = ready["MORELIA_DATABASE_URI"]
    ok("db", "user-create", "-l", "bob", "--username", "Bob", "-p", "bob-pw")
    result = ok("--table", "flow", "--title", "News", "--info", "What is new",
                "--type", "channel", "--owner", "bob")
    flow = read(uri, dbhandler.flow_by_uuid, result.stdout.strip())
    bob = read(uri, dbhandler.user_by_login, "bob")
    assert (flow["title"], flow["info"], flow["type"], flow["owner"]) == \
        ("News", "What is new", "channel", bob["uuid"])
    assert run("--table", "flow", "--type", "chat").exit_code == 2


def test_flow_needs_an_owner(env: dict[str, str]) -> None:
    ok("db", "create")
    assert "no superuser" in fails("--table", "flow")
    ok("db", "user-create", "-l", "bob", "--username", "Bob", "-p", "bob-pw")
    assert "no superuser" in fails("--table", "flow")
    assert fails("--table", "flow", "--owner", "nobody") == \
        "Error: there is no user with the login 'nobody'"


# -- superuser rights, end to end -------------------------------------------------------------


@pytest.mark.anyio
async def test_superuser_rights_over_mtp(ready: dict[str, str], tmp_path: Path) -> None:
    with ServerProcess(tmp_path, env=ready) as server:
        alice = await Client.connect(server.url)
        bob = await Client.connect(server.url)
        root = await Client.connect(server.url)
        try:
            await alice.register("alice")
            await bob.register("bob")
            channel = await alice.group("alice's channel", kind="channel")
            group = await alice.group("alice's group")
            sent = await alice.send(group, "from alice")
            message = sent["data"]["message"][0]["uuid"]

            login = await root.call("authentication", auth=False,
                                    user=[{"login": "root", "password": "root-pw"}])
            assert login["errors"]["code"] == 200, login
            root.uuid = login["data"]["user"][0]["uuid"]
            root.auth_id = login["data"]["user"][0]["auth_id"]

            # An ordinary user may do neither of these.
            for client in (bob, root):
                assert (await client.call("join_flow", flow=[{"uuid": channel}])
                        )["errors"]["code"] == 200
            denied = await bob.send(channel, "bob in alice's channel")
            assert denied["errors"]["code"] == 403
            denied = await bob.call("delete_message", message=[{"uuid": message}])
            assert denied["errors"]["code"] == 403

            posted = await root.send(channel, "announcement from root")
            assert posted["errors"]["code"] == 200, posted
            deleted = await root.call("delete_message", message=[{"uuid": message}])
            assert deleted["errors"]["code"] == 200, deleted
            history = await alice.call("all_messages", flow=[{"uuid": group}])
            assert history["data"]["message"][0]["text"] == "Message deleted"
        finally:
            for client in (alice, bob, root):
                await client.close()


# -- runserver --------------------------------------------------------------------------------


@pytest.fixture
def uvicorn_calls(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    import uvicorn

    calls: list[dict[str, Any]] = []

    def fake_run(app: str, **options: Any) -> None:
        calls.append({"app": app, **options})

    monkeypatch.setattr(uvicorn, "run", fake_run)
    return calls


def test_runserver_defaults(env: dict[str, str], uvicorn_calls: list[dict[str, Any]]) -> None:
    ok("runserver")
    (call,) = uvicorn_calls
    assert call["app"] == "server:app" and call["app_dir"] == str(ROOT)
    assert (call["host"], call["port"], call["log_level"]) == ("127.0.0.1", 8080, "info")
    assert call["reload"] is False and call["workers"] is None and call["use_colors"] is None
    assert call["ws_max_size"] == 16 * 1024 * 1024
    assert (call["ws_ping_interval"], call["ws_ping_timeout"]) == (20.0, 20.0)
    assert "ws" not in call


def test_runserver_settings_and_options(env: dict[str, str], monkeypatch: pytest.MonkeyPatch,
                                        uvicorn_calls: list[dict[str, Any]]) -> None:
    monkeypatch.setenv("MORELIA_SERVER_PORT", "9001")
    monkeypatch.setenv("MORELIA_SERVER_MAX_FRAME_SIZE", "1000")
    monkeypatch.setenv("MORELIA_SERVER_PING_INTERVAL", "3")
    ok("runserver")
    assert uvicorn_calls[-1]["port"] == 9001 and uvicorn_calls[-1]["ws_max_size"] == 1000
    assert uvicorn_calls[-1]["ws_ping_interval"] == 3.0
    ok("runserver", "--host", "0.0.0.0", "--port", "8000", "--log-level", "DEBUG",
       "--no-use-colors", "--reload")
    call = uvicorn_calls[-1]
    assert (call["host"], call["port"], call["log_level"]) == ("0.0.0.0", 8000, "debug")
    assert call["use_colors"] is False and call["reload"] is True
    ok("runserver", "--workers", "4", "--use-colors")
    assert uvicorn_calls[-1]["workers"] == 4 and uvicorn_calls[-1]["use_colors"] is True


def test_runserver_takes_the_originals_bool_values(env: dict[str, str],
                                                   uvicorn_calls: list[dict[str, Any]]) -> None:
    ok("runserver", "--use-colors", "False", "--reload", "true", "-h", "localhost", "-p", "81")
    call = uvicorn_calls[-1]
    assert (call["use_colors"], call["reload"], call["host"], call["port"]) == \
        (False, True, "localhost", 81)


def test_runserver_refuses_bad_options(env: dict[str, str],
                                       uvicorn_calls: list[dict[str, Any]]) -> None:
    assert run("runserver", "--port", "70000").exit_code == 2
    assert run("runserver", "--log-level", "loud").exit_code == 2
    assert "cannot be combined" in run("runserver", "--reload", "--workers", "2").output
    assert uvicorn_calls == []


def test_runserver_checks_the_database_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             uvicorn_calls: list[dict[str, Any]]) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MORELIA_DATABASE_URI", f"postgres://m@127.0.0.1:{free_port()}/m")
    assert "127.0.0.1" in fails("runserver")
    monkeypatch.setenv("MORELIA_DATABASE_URI", f"sqlite:{tmp_path}/no/such/dir.db")
    assert "no directory" in fails("runserver")
    assert uvicorn_calls == []


def _wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, "runserver exited"
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise AssertionError("runserver did not listen")


def test_runserver_serves(env: dict[str, str], tmp_path: Path) -> None:
    port = free_port()
    log = (tmp_path / "runserver.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), "runserver", "--port", str(port),
         "--no-use-colors", "--log-level", "warning"],
        cwd=tmp_path, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_for_port(port, process)
        probe = subprocess.run(
            [sys.executable, str(ROOT / "manage.py"), "testclient", "send", "-t",
             "register_user", "-l", "probe", "-p", "probe-pw", "-a",
             f"ws://127.0.0.1:{port}/ws"], cwd=tmp_path, capture_output=True, text=True,
            timeout=30, env={**os.environ, **env})
        assert probe.returncode == 0, probe.stderr
        assert json.loads(probe.stdout)["errors"]["code"] == 201
    finally:
        process.terminate()
        process.wait(15)
        log.close()


def test_entry_point_runs_as_a_script() -> None:
    result = subprocess.run([sys.executable, str(ROOT / "manage.py"), "--help"],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0 and "superuser-create" in result.stdout
    assert manage.DEFAULT_ADDRESS == "ws://127.0.0.1:8080/ws"
