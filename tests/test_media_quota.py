"""Media quotas end to end (`service/quota.py`, `service/media.py`, `manage.py media quota`):
a storm of parallel uploads by one user stops at the quota, with nothing left behind; the
file count; asynchronous uploads; an MTP message whose picture does not fit is refused
whole; the operator raises one user's quota and others stay limited. Each test shows that
another user is still served."""

from __future__ import annotations

import asyncio
import base64
import io
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import nio
import pytest
from click.testing import CliRunner
from PIL import Image
from sqlobject.sqlbuilder import Delete

from manage import cli
from mod.config.validator import Media as MediaSettings
from mod.db import dbhandler
from mod.db.engine import Conn
from mod.db.models import Media
from mod.service import quota as quotas
from tests.support import (
    DATABASE_KINDS,
    POSTGRES_URI,
    ServerProcess,
    http_client,
    postgres_database,
    running_server,
    unique_login,
    write_database,
)
from tests.test_matrix_support import (
    PASSWORD,
    SERVER_NAME,
    Matrix,
    matrix_session,
    sync_until,
)

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

MIB = 1024 * 1024
QUOTA_BYTES = 20 * MIB
QUOTA_FILES = 6
ENV = {"MORELIA_MATRIX_SERVER_NAME": SERVER_NAME, "MORELIA_MATRIX_SYNC_TIMEOUT_MAX": "5",
       "MORELIA_MEDIA_QUOTA_BYTES": str(QUOTA_BYTES),
       "MORELIA_MEDIA_QUOTA_FILES": str(QUOTA_FILES)}
UPLOAD = "/_matrix/media/v3/upload"


@pytest.fixture(scope="module", params=DATABASE_KINDS)
def quota_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
                 ) -> Iterator[ServerProcess]:
    with running_server(request.param, tmp_path_factory.mktemp("quota"), env=ENV) as server:
        yield server


@pytest.fixture
async def mx(quota_server: ServerProcess) -> AsyncIterator[Matrix]:
    async for matrix in matrix_session(quota_server):
        yield matrix


def png(seed: int, side: int = 16) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (side, side), (seed % 256, seed // 256 % 256, 7)).save(out, "PNG")
    return out.getvalue()


def usage(server: ServerProcess, login: str) -> quotas.Usage:
    """What the database holds of a user's media (rows, bytes), read from the test."""
    def read(conn: Conn) -> quotas.Usage:
        user = dbhandler.user_by_login(conn, login)
        assert user is not None
        return quotas.usage_of(conn, MediaSettings(), user["uuid"], int(time.time()))

    return write_database(server.env["MORELIA_DATABASE_URI"], read)  # type: ignore[no-any-return]


def login_of(client: nio.AsyncClient) -> str:
    return str(client.user_id).removeprefix("@").partition(":")[0]


async def post(mx: Matrix, client: nio.AsyncClient, data: bytes, content_type: str = "image/png"
               ) -> httpx.Response:
    return await mx.raw("POST", UPLOAD, client.access_token, content=data,
                        headers={"Content-Type": content_type})


def refused_by_quota(response: httpx.Response, what: str) -> None:
    assert response.status_code == 413, response.text
    body = response.json()
    assert body["errcode"] == "M_TOO_LARGE"
    assert "quota" in body["error"] and what in body["error"], body


async def until(condition: Any, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the condition never held"
        await asyncio.sleep(0.05)


async def test_parallel_uploads_stop_at_the_byte_quota(mx: Matrix, quota_server: ServerProcess
                                                       ) -> None:
    """Issue 19, case 3: one user stored 40 x 5 MiB in one second. With a quota of 20 MiB,
    40 parallel uploads of 5 MiB store 4; the rest are refused and leave no file, no row and
    no temporary file; another user still uploads."""
    alice, bob = await mx.user(), await mx.user()
    media = quota_server.directory / "media"
    files_before = sum(1 for path in (media / "files").rglob("*") if path.is_file())
    bodies = [index.to_bytes(4, "big") + b"\0" * (5 * MIB - 4) for index in range(40)]
    # Separate connections, as 40 clients would open.
    clients = [http_client(base_url=quota_server.http, timeout=60) for _ in bodies]

    async def one(client: httpx.AsyncClient, body: bytes) -> int | str:
        try:
            response = await client.post(UPLOAD, content=body, headers={
                "Authorization": f"Bearer {alice.access_token}",
                "Content-Type": "application/octet-stream"})
        except (httpx.WriteError, httpx.RemoteProtocolError, httpx.ReadError):
            return "closed"  # refused before the body was read, while the client still wrote
        if response.status_code == 413:
            assert response.json()["errcode"] == "M_TOO_LARGE", response.text
        return response.status_code

    try:
        outcomes = await asyncio.gather(*(one(client, body)
                                          for client, body in zip(clients, bodies, strict=True)))
    finally:
        await asyncio.gather(*(client.aclose() for client in clients))
    assert outcomes.count(200) == 4, outcomes
    assert all(outcome in (200, 413, "closed") for outcome in outcomes), outcomes
    assert usage(quota_server, login_of(alice)) == quotas.Usage(20 * MIB, 4)
    await until(lambda: not any((media / "tmp").iterdir()))
    stored = sum(1 for path in (media / "files").rglob("*") if path.is_file())
    assert stored - files_before == 4
    # Full: even a small file is refused, with a message that names the quota.
    refused_by_quota(await post(mx, alice, b"tiny", "text/plain"), "20.0 MiB")
    # Declared past what is left: refused before the body is read (no temporary file).
    head = await mx.raw("POST", UPLOAD, alice.access_token, content=b"x" * MIB)
    refused_by_quota(head, "quota")
    # Another user is served as before.
    ok = await post(mx, bob, png(1))
    assert ok.status_code == 200, ok.text
    assert "failed" not in quota_server.log()


async def test_the_file_count_quota(mx: Matrix) -> None:
    alice, bob = await mx.user(), await mx.user()
    for index in range(QUOTA_FILES):
        done = await post(mx, alice, png(index))
        assert done.status_code == 200, done.text
    refused_by_quota(await post(mx, alice, png(99)), f"{QUOTA_FILES} files")
    # An asynchronous upload is a file too: /create is refused at the quota.
    created = await mx.raw("POST", "/_matrix/media/v1/create", alice.access_token)
    refused_by_quota(created, f"{QUOTA_FILES} files")
    assert (await post(mx, bob, png(100))).status_code == 200


async def test_a_pending_upload_counts_as_a_file(mx: Matrix) -> None:
    alice = await mx.user()
    pending = []
    for _ in range(2):
        created = await mx.raw("POST", "/_matrix/media/v1/create", alice.access_token)
        assert created.status_code == 200, created.text
        pending.append(created.json()["content_uri"].removeprefix("mxc://"))
    for index in range(QUOTA_FILES - 2):
        assert (await post(mx, alice, png(200 + index))).status_code == 200
    refused_by_quota(await post(mx, alice, png(300)), "files")
    # Its bytes still fit: the pending one was counted already.
    filled = await mx.raw("PUT", f"{UPLOAD}/{pending[0]}", alice.access_token,
                          content=png(301), headers={"Content-Type": "image/png"})
    assert (filled.status_code, filled.json()) == (200, {})
    assert usage(mx.server, login_of(alice)).files == QUOTA_FILES


async def test_an_mtp_picture_over_the_quota_is_refused_whole(mx: Matrix) -> None:
    writer = await mx.mtp.user("mtp-quota")
    other = await mx.mtp.user("mtp-other")
    flow = await writer.group("pictures", users=[other.uuid])
    reader = await mx.user()
    room = f"!{flow}:{SERVER_NAME}"
    joined = await reader.join(room)
    assert isinstance(joined, nio.JoinResponse), joined

    async def send(client: Any, client_id: int, picture: bytes) -> dict[str, Any]:
        return await client.call(  # type: ignore[no-any-return]
            "send_message", flow=[{"uuid": flow}], message=[{
                "client_id": client_id, "text": f"picture {client_id}",
                "file_picture": base64.b64encode(picture).decode()}])

    for index in range(QUOTA_FILES):
        reply = await send(writer, index + 1, png(400 + index))
        assert reply["errors"]["code"] == 200, reply
    # The same send again (a retry) is the same file: not counted twice, not refused.
    again = await send(writer, QUOTA_FILES, png(400 + QUOTA_FILES - 1))
    assert again["errors"]["code"] == 200, again
    refused = await send(writer, 99, png(499))
    assert (refused["errors"]["code"], refused["data"]) == (413, None), refused
    assert refused["errors"]["status"] == "Request Entity Too Large"
    assert f"{QUOTA_FILES} files" in refused["errors"]["detail"]
    # The message was not stored: the flow holds the six, and Matrix never sees it.
    history = await writer.call("all_messages", flow=[{"uuid": flow}])
    texts = [message["text"] for message in history["data"]["message"]]
    assert "picture 99" not in texts and len([t for t in texts if t.startswith("picture")]
                                              ) == QUOTA_FILES
    # Another user's picture in the same flow goes through, and Matrix sees it.
    reply = await send(other, 1, png(500))
    assert reply["errors"]["code"] == 200, reply
    seen = await sync_until(reader, room, lambda event: event.get("content", {}).get(
        "body") == "picture 1" and event.get("sender", "").startswith("@mtp-other"))
    assert not any(event.get("content", {}).get("body") == "picture 99" for event in seen)


async def test_the_operator_raises_one_users_quota(mx: Matrix, quota_server: ServerProcess,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    alice, bob = await mx.user(), await mx.user()
    for index in range(QUOTA_FILES):
        assert (await post(mx, alice, png(600 + index))).status_code == 200
        assert (await post(mx, bob, png(700 + index))).status_code == 200
    refused_by_quota(await post(mx, alice, png(610)), "files")
    refused_by_quota(await post(mx, bob, png(710)), "files")

    monkeypatch.delenv("MORELIA_CONFIG", raising=False)
    monkeypatch.setenv("MORELIA_DATABASE_URI", quota_server.env["MORELIA_DATABASE_URI"])
    monkeypatch.setenv("MORELIA_MEDIA_QUOTA_BYTES", str(QUOTA_BYTES))
    monkeypatch.setenv("MORELIA_MEDIA_QUOTA_FILES", str(QUOTA_FILES))
    runner = CliRunner()
    raised = runner.invoke(cli, ["media", "quota", login_of(alice), "--files", "8",
                                 "--bytes", "1GiB"])
    assert raised.exit_code == 0, raised.output
    assert f"files: {QUOTA_FILES} of 8 (own)" in raised.output
    assert "of 1073741824 (1.0 GiB) (own)" in raised.output

    # At once (no restart): alice stores two more, bob is still limited.
    assert (await post(mx, alice, png(611))).status_code == 200
    assert (await post(mx, alice, png(612))).status_code == 200
    refused_by_quota(await post(mx, alice, png(613)), "8 files")
    refused_by_quota(await post(mx, bob, png(711)), f"{QUOTA_FILES} files")

    shown = runner.invoke(cli, ["media", "quota", login_of(bob)])
    assert shown.exit_code == 0, shown.output
    assert f"files: {QUOTA_FILES} of {QUOTA_FILES} (default)" in shown.output
    back = runner.invoke(cli, ["media", "quota", login_of(alice), "--default"])
    assert back.exit_code == 0, back.output
    assert f"files: 8 of {QUOTA_FILES} (default)" in back.output
    refused_by_quota(await post(mx, alice, png(614)), f"{QUOTA_FILES} files")


async def test_an_unlimited_quota(tmp_path: Path) -> None:
    """0 is unlimited: with QUOTA_FILES = 0 a user stores more files than any default."""
    env = {**ENV, "MORELIA_MEDIA_QUOTA_FILES": "0"}
    with running_server("sqlite", tmp_path, env=env) as server:
        async for matrix in matrix_session(server):
            alice = await matrix.user()
            for index in range(QUOTA_FILES + 2):
                assert (await post(matrix, alice, png(800 + index))).status_code == 200


@pytest.mark.postgres
@pytest.mark.skipif(not POSTGRES_URI, reason="MORELIA_TEST_POSTGRES_URI unset")
async def test_two_processes_keep_one_quota(tmp_path: Path) -> None:
    """Two server processes on one PostgreSQL database: a user's parallel uploads, half to
    each, still stop at the quota (the writers' check and insert take turns across
    processes)."""
    store = tmp_path / "shared-media"
    with postgres_database() as database:
        env = {**ENV, "MORELIA_DATABASE_URI": database, "MORELIA_MEDIA_PATH": str(store)}
        with ServerProcess(tmp_path, env=env) as first, ServerProcess(tmp_path, env=env
                                                                      ) as second:
            login = unique_login("mx")
            one = nio.AsyncClient(first.http, login)
            try:
                assert isinstance(await one.register(login, PASSWORD), nio.RegisterResponse)
                http = [http_client(base_url=server.http, timeout=30)
                        for server in (first, second) for _ in range(15)]

                async def up(client: httpx.AsyncClient, index: int) -> int:
                    response = await client.post(UPLOAD, content=png(900 + index), headers={
                        "Authorization": f"Bearer {one.access_token}",
                        "Content-Type": "image/png"})
                    return response.status_code

                try:
                    for round_ in range(3):  # three storms: each must stop at the quota
                        if round_:
                            write_database(database, _drop_media, login)
                        codes = await asyncio.gather(*(up(client, index + 100 * round_)
                                                       for index, client in enumerate(http)))
                        assert sorted(set(codes)) == [200, 413], codes
                        assert codes.count(200) == QUOTA_FILES, codes
                        assert usage(first, login).files == QUOTA_FILES
                finally:
                    await asyncio.gather(*(client.aclose() for client in http))
                assert not any((store / "tmp").iterdir())
                # Another user uploads on either process.
                other = nio.AsyncClient(second.http, unique_login("mx"))
                try:
                    assert isinstance(await other.register(other.user, PASSWORD),
                                      nio.RegisterResponse)
                    done, _ = await other.upload(io.BytesIO(png(999)), content_type="image/png",
                                                 filesize=len(png(999)))
                    assert isinstance(done, nio.UploadResponse), done
                finally:
                    await other.close()
            finally:
                await one.close()


def _drop_media(conn: Conn, login: str) -> None:
    """Forget a user's media rows (as a purge would), so a new storm starts from nothing."""
    user = dbhandler.user_by_login(conn, login)
    assert user is not None
    conn.execute(Delete(Media.sqlmeta.table, where=Media.q.uploader == user["uuid"]))
