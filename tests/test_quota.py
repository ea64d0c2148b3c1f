"""Media quotas in process (`service/quota.py`, and the operator's parsing in
`cli/media.py`): the rule and its messages, concurrent stores of one user against the
writer's check, an operator's own quota and back, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from manage import cli
from mod import lib
from mod.cli.common import CliError
from mod.cli.media import parse_count, parse_size
from mod.config.validator import Database, Settings
from mod.db import dbhandler as db
from mod.db import media as mediadb
from mod.db.engine import Engine
from mod.error import ServiceError
from mod.service import Service
from mod.service.quota import Quota, Usage, refuse, size_text
from tests.support import DATABASE_KINDS, database_uri

pytestmark = pytest.mark.anyio

MIB = 1024 * 1024


def test_sizes_read_as_people_write_them() -> None:
    assert [size_text(size) for size in (0, 1023, 1536, 20 * MIB, 1024 ** 3, 3 * 1024 ** 4)] \
        == ["0 bytes", "1023 bytes", "1.5 KiB", "20.0 MiB", "1.0 GiB", "3072.0 GiB"]
    assert parse_size("2GiB") == 2 * 1024 ** 3
    assert parse_size("500 MiB") == 500 * MIB
    assert parse_size("1.5G") == 3 * 512 * MIB
    assert parse_size("4096") == 4096
    assert parse_size("0") == 0
    assert parse_size("Default") is None
    assert parse_count("5000") == 5000
    assert parse_count("default") is None
    for bad in ("", "2 GB", "-1", "1e9", "9" * 30, "lots"):
        with pytest.raises(CliError):
            parse_size(bad)
    for bad in ("", "-1", "1.5", "ten"):
        with pytest.raises(CliError):
            parse_count(bad)


def test_the_rule_and_its_messages() -> None:
    quota = Quota(max_bytes=20 * MIB, max_files=3)
    assert refuse(quota, Usage(15 * MIB, 2), 5 * MIB) is None
    over = refuse(quota, Usage(15 * MIB, 2), 5 * MIB + 1)
    assert over is not None and over.code == 413
    assert over.detail.startswith("This file (5.0 MiB) does not fit in your media quota of "
                                  "20.0 MiB (15.0 MiB used)")
    files = refuse(quota, Usage(0, 3), 1)
    assert files is not None and files.detail.startswith(
        "Your media quota is 3 files and you have 3")
    # Full to the byte: not even an empty file (every file takes a byte).
    assert refuse(quota, Usage(20 * MIB, 0), 0) is not None
    # 0 is unlimited.
    assert refuse(Quota(0, 0), Usage(10 ** 15, 10 ** 9), 10 ** 12) is None


@pytest.fixture(params=DATABASE_KINDS)
async def service(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Service]:
    with database_uri(request.param, tmp_path) as uri:
        settings = Settings.model_validate({"database": {"uri": uri}, "media": {
            "path": str(tmp_path / "media"), "quota_files": 3, "quota_bytes": 10 * MIB}})
        engine = Engine(Database(uri=uri))
        engine.start(asyncio.get_running_loop())
        await engine.write(db.create_tables)
        made = Service(settings, engine)
        try:
            yield made
        finally:
            made.close()
            engine.stop()


async def user(service: Service) -> str:
    uuid = lib.new_uuid()
    await service.media.engine.write(db.create_user, uuid, f"u-{uuid[:8]}", "x", "u", "", 3600, 1)
    return uuid


async def test_concurrent_stores_of_one_user_stop_at_the_quota(service: Service,
                                                               tmp_path: Path) -> None:
    alice, bob = await user(service), await user(service)
    media = service.media
    first = await media.store_bytes(alice, b"first", "")
    results = await asyncio.gather(*(media.store_bytes(alice, bytes([index]) * 1000, "")
                                     for index in range(20)), return_exceptions=True)
    stored = [result for result in results if isinstance(result, dict)]
    refused = [result for result in results if isinstance(result, ServiceError)]
    assert (len(stored), len(refused)) == (2, 18), results
    assert all(error.code == 413 for error in refused)
    assert not any((tmp_path / "media" / "tmp").iterdir())
    assert sum(1 for path in (tmp_path / "media" / "files").rglob("*") if path.is_file()) == 3
    # A retry of a stored one is that row again, not a new file, even at the quota.
    assert (await media.store_bytes(alice, b"first", "")) == first
    # Another user has a quota of their own.
    assert (await media.store_bytes(bob, b"bob" * 100, ""))["uploader"] == bob

    # The bytes: 10 MiB; an operator's own quota for alice lifts the count, not the bytes.
    await service.media.engine.write(mediadb.set_quota, alice, None, 5)
    await media.store_bytes(alice, b"\1" * (6 * MIB), "")
    with pytest.raises(ServiceError) as caught:
        await media.store_bytes(alice, b"\2" * (4 * MIB), "")
    assert "10.0 MiB" in caught.value.detail
    await service.media.engine.write(mediadb.set_quota, alice, 0, 0)  # unlimited
    await media.store_bytes(alice, b"\2" * (4 * MIB), "")
    assert await service.media.engine.write(mediadb.drop_quota, alice)
    with pytest.raises(ServiceError) as caught:
        await media.store_bytes(alice, b"\3", "")
    assert "3 files" in caught.value.detail


def test_the_operator_command(db_uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                              ) -> None:
    """`manage.py media quota`: show, set one limit or both, back to the default, and one
    clear line for what it cannot do."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MORELIA_CONFIG", raising=False)
    monkeypatch.setenv("MORELIA_DATABASE_URI", db_uri)
    runner = CliRunner()

    def run(*args: str, code: int = 0) -> str:
        result = runner.invoke(cli, list(args))
        assert result.exit_code == code, (result.output, result.exception)
        assert "Traceback" not in result.output
        return result.output

    run("db", "create")
    run("superuser-create", "--login", "root", "--username", "Root", "--password", "root-pw")
    assert run("media", "quota", "root").splitlines() == [
        "User 'root':", "  bytes: 0 (0 bytes) of 1073741824 (1.0 GiB) (default)",
        "  files: 0 of 10000 (default)"]
    assert run("media", "quota", "root", "--bytes", "2GiB", "--files", "5").splitlines()[1:] \
        == ["  bytes: 0 (0 bytes) of 2147483648 (2.0 GiB) (own)", "  files: 0 of 5 (own)"]
    assert run("media", "quota", "root", "--files", "default").splitlines()[1:] == [
        "  bytes: 0 (0 bytes) of 2147483648 (2.0 GiB) (own)", "  files: 0 of 10000 (default)"]
    assert "unlimited (own)" in run("media", "quota", "root", "--bytes", "0")
    assert run("media", "quota", "root", "--default").splitlines()[1:] == [
        "  bytes: 0 (0 bytes) of 1073741824 (1.0 GiB) (default)",
        "  files: 0 of 10000 (default)"]
    assert "Error: there is no user with the login 'nobody'" in run(
        "media", "quota", "nobody", code=1)
    assert "is not a size" in run("media", "quota", "root", "--bytes", "lots", code=1)
    assert "is not a number of files" in run("media", "quota", "root", "--files", "-2", code=1)
    assert "--default takes the user back" in run("media", "quota", "root", "--default",
                                                  "--files", "3", code=1)
