"""The media store end to end: matrix-nio's upload, download and thumbnail against the real
server; safe headers on what could run in a browser; an over-size upload refused without
the server's memory growing by it; pictures from MTP to Matrix and back; avatars; two
processes sharing one store on PostgreSQL."""

from __future__ import annotations

import asyncio
import base64
import io
import random
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import nio
import pytest
from PIL import Image

from tests.support import (
    DATABASE_KINDS,
    POSTGRES_URI,
    Client,
    ServerProcess,
    postgres_database,
    running_server,
    unique_login,
)
from tests.test_matrix_support import PASSWORD, SERVER_NAME, Matrix, matrix_session, sync_until

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

LIMIT = 10 * 1024 * 1024
INLINE = 256 * 1024
MEDIA_ENV = {"MORELIA_MATRIX_SERVER_NAME": SERVER_NAME, "MORELIA_MATRIX_SYNC_TIMEOUT_MAX": "5",
             "MORELIA_MEDIA_MAX_UPLOAD_SIZE": str(LIMIT),
             "MORELIA_MEDIA_MTP_INLINE_LIMIT": str(INLINE)}


def png(width: int = 120, height: int = 80, color: tuple[int, int, int] = (10, 120, 200)
        ) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), color).save(out, "PNG")
    return out.getvalue()


@pytest.fixture(scope="module", params=DATABASE_KINDS)
def media_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
                 ) -> Iterator[ServerProcess]:
    with running_server(request.param, tmp_path_factory.mktemp("media"), env=MEDIA_ENV
                        ) as server:
        yield server


@pytest.fixture
async def mx(media_server: ServerProcess) -> AsyncIterator[Matrix]:
    async for matrix in matrix_session(media_server):
        yield matrix


async def upload(client: nio.AsyncClient, data: bytes, content_type: str, name: str) -> str:
    response, _ = await client.upload(io.BytesIO(data), content_type=content_type,
                                      filename=name, filesize=len(data))
    assert isinstance(response, nio.UploadResponse), response
    return str(response.content_uri)


def parts(mxc: str) -> tuple[str, str]:
    server, _, media_id = mxc.removeprefix("mxc://").partition("/")
    return server, media_id


async def test_upload_download_and_thumbnail_with_nio(mx: Matrix) -> None:
    alice = await mx.user()
    picture = png(400, 300)
    mxc = await upload(alice, picture, "image/png", "holiday.png")
    assert mxc.startswith(f"mxc://{SERVER_NAME}/")
    got = await alice.download(mxc)
    assert isinstance(got, nio.DownloadResponse), got
    assert (got.body, got.content_type, got.filename) == (picture, "image/png", "holiday.png")
    renamed = await alice.download(mxc, filename="beach.png")
    assert isinstance(renamed, nio.DownloadResponse) and renamed.filename == "beach.png"

    server, media_id = parts(mxc)
    # The nearest configured sizes at least as large: 320x240 scale, 96x96 crop.
    for method, size in ((nio.ResizingMethod.scale, (320, 240)),
                         (nio.ResizingMethod.crop, (96, 96))):
        thumb = await alice.thumbnail(server, media_id, 64, 64, method)
        assert isinstance(thumb, nio.ThumbnailResponse), thumb
        with Image.open(io.BytesIO(thumb.body)) as image:
            assert image.size == size

    # The same bytes uploaded again are the same file, under a new ID.
    again = await upload(alice, picture, "image/png", "copy.png")
    assert again != mxc

    config = await mx.raw("GET", "/_matrix/client/v1/media/config", alice.access_token)
    assert config.json() == {"m.upload.size": LIMIT}
    legacy_config = await mx.raw("GET", "/_matrix/media/v3/config", alice.access_token)
    assert legacy_config.json() == {"m.upload.size": LIMIT}

    path = f"/_matrix/client/v1/media/download/{server}/{media_id}"
    missing = await mx.raw("GET", path)
    assert (missing.status_code, missing.json()["errcode"]) == (401, "M_MISSING_TOKEN")
    legacy = await mx.raw("GET", f"/_matrix/media/v3/download/{server}/{media_id}")
    assert legacy.status_code == 200 and legacy.content == picture
    unknown = await mx.raw("GET", f"/_matrix/client/v1/media/download/{server}/nope",
                           alice.access_token)
    assert (unknown.status_code, unknown.json()["errcode"]) == (404, "M_NOT_FOUND")
    bad = await mx.raw("GET", f"/_matrix/client/v1/media/thumbnail/{server}/{media_id}"
                              "?width=10&height=x", alice.access_token)
    assert (bad.status_code, bad.json()["errcode"]) == (400, "M_INVALID_PARAM")


@pytest.mark.parametrize(("content_type", "name", "body", "disposition"), [
    ("text/html", "page.html", b"<html><script>alert(document.cookie)</script></html>",
     "attachment"),
    ("image/svg+xml", "x.svg", b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)"
                               b"</script></svg>", "attachment"),
    ("image/png", "p.png", png(8, 8), "inline"),
])
async def test_downloads_cannot_run_in_the_servers_origin(
        mx: Matrix, content_type: str, name: str, body: bytes, disposition: str) -> None:
    alice = await mx.user()
    mxc = await upload(alice, body, content_type, name)
    server, media_id = parts(mxc)
    for path, token in ((f"/_matrix/client/v1/media/download/{server}/{media_id}",
                         alice.access_token),
                        (f"/_matrix/media/v3/download/{server}/{media_id}", None)):
        got = await mx.raw("GET", path, token)
        assert got.status_code == 200 and got.content == body
        headers = got.headers
        assert headers["content-type"].startswith(content_type)
        assert headers["content-disposition"] == f'{disposition}; filename="{name}"; ' \
                                                 f"filename*=utf-8''{name}"
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["content-security-policy"].startswith("sandbox;")
        assert "default-src 'none'" in headers["content-security-policy"]


async def test_asynchronous_upload(mx: Matrix) -> None:
    alice, bob = await mx.user(), await mx.user()
    created = await mx.raw("POST", "/_matrix/media/v1/create", alice.access_token)
    assert created.status_code == 200, created.text
    server, media_id = parts(created.json()["content_uri"])
    path = f"/_matrix/media/v3/upload/{server}/{media_id}"
    early = await mx.raw("GET", f"/_matrix/client/v1/media/download/{server}/{media_id}",
                         alice.access_token)
    assert early.status_code == 404
    other = await mx.raw("PUT", path, bob.access_token, content=b"hello",
                         headers={"Content-Type": "text/plain"})
    assert (other.status_code, other.json()["errcode"]) == (403, "M_FORBIDDEN")
    done = await mx.raw("PUT", path + "?filename=hi.txt", alice.access_token, content=b"hello",
                        headers={"Content-Type": "text/plain"})
    assert (done.status_code, done.json()) == (200, {})
    twice = await mx.raw("PUT", path, alice.access_token, content=b"again")
    assert (twice.status_code, twice.json()["errcode"]) == (409, "M_CANNOT_OVERWRITE_MEDIA")
    expires = created.json()["unused_expires_at"]
    assert abs(expires - time.time() * 1000 - 86400 * 1000) < 60_000  # a day from now
    got = await alice.download(f"mxc://{server}/{media_id}")
    assert isinstance(got, nio.DownloadResponse) and got.body == b"hello"


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


async def test_an_oversize_upload_is_refused_without_holding_it(
        mx: Matrix, media_server: ServerProcess) -> None:
    alice = await mx.user()
    assert media_server.process is not None
    pid = media_server.process.pid
    before = rss_kib(pid)
    peak = [before]
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], rss_kib(pid))
            time.sleep(0.01)

    sent = [0]

    async def body() -> AsyncIterator[bytes]:
        chunk = b"\0" * (1024 * 1024)
        for _ in range(200):  # 200 MiB, without a Content-Length
            sent[0] += len(chunk)
            yield chunk

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        status = None
        try:
            refused = await mx.raw("POST", "/_matrix/media/v3/upload", alice.access_token,
                                   content=body())
            status, code = refused.status_code, refused.json()["errcode"]
            assert code == "M_TOO_LARGE"
        except (httpx.WriteError, httpx.RemoteProtocolError, httpx.ReadError):
            pass  # the server answered and closed while the client still wrote
    finally:
        stop.set()
        watcher.join()
    assert status in (413, None), status
    assert peak[0] - before < 40 * 1024, (before, peak[0])
    # Declared too large: refused before a byte of the body is read.
    reader, writer = await asyncio.open_connection("127.0.0.1", media_server.port)
    writer.write(f"POST /_matrix/media/v3/upload HTTP/1.1\r\nHost: x\r\n"
                 f"Authorization: Bearer {alice.access_token}\r\n"
                 f"Content-Length: {200 * 1024 * 1024}\r\n\r\nx".encode())
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    writer.close()
    assert head.startswith(b"HTTP/1.1 413 "), head
    # Nothing was kept, and the server still serves.
    whoami = await alice.whoami()
    assert isinstance(whoami, nio.WhoamiResponse)


async def test_an_upload_cut_off_leaves_nothing(mx: Matrix, media_server: ServerProcess
                                                ) -> None:
    alice = await mx.user()
    temp = media_server.directory / "media" / "tmp"  # beside the SQLite file, or in the cwd

    async def until(condition: Any) -> None:
        deadline = time.monotonic() + 10
        while not condition():
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)

    _, writer = await asyncio.open_connection("127.0.0.1", media_server.port)
    writer.write(f"POST /_matrix/media/v3/upload HTTP/1.1\r\nHost: x\r\n"
                 f"Authorization: Bearer {alice.access_token}\r\n"
                 f"Content-Length: {1024 * 1024}\r\n\r\n".encode() + b"z" * 300_000)
    await writer.drain()
    await until(lambda: temp.exists() and any(temp.iterdir()))  # the upload is under way
    writer.close()
    await until(lambda: not any(temp.iterdir()))
    assert "failed" not in media_server.log()
    assert isinstance(await alice.whoami(), nio.WhoamiResponse)


async def test_an_mtp_picture_reaches_matrix_and_back(mx: Matrix) -> None:
    reader = await mx.user()
    writer = await mx.mtp.user("mtp", push=True)
    flow = await writer.group("photos")
    room = f"!{flow}:{SERVER_NAME}"
    assert isinstance(await reader.join(room), nio.JoinResponse)
    await reader.sync(timeout=0)

    picture = png(color=(200, 10, 10))
    reply = await writer.call("send_message", flow=[{"uuid": flow}], message=[{
        "client_id": 1, "text": "Sunset", "file_picture": base64.b64encode(picture).decode()}])
    assert reply["errors"]["code"] == 200, reply
    seen = await sync_until(reader, room, lambda event: event.get("content", {}).get(
        "msgtype") == "m.image")
    image = next(event for event in seen if event["content"].get("msgtype") == "m.image")
    content = image["content"]
    assert content["body"] == "Sunset"
    assert content["info"] == {"mimetype": "image/png", "size": len(picture), "w": 120,
                               "h": 80}
    got = await reader.download(content["url"])
    assert isinstance(got, nio.DownloadResponse) and got.body == picture

    # And back: a Matrix m.image of this server's media reaches MTP as file_picture.
    photo = png(color=(0, 200, 0))
    mxc = await upload(reader, photo, "image/png", "lake.png")
    sent = await reader.room_send(room, "m.room.message", {
        "msgtype": "m.image", "body": "lake.png", "url": mxc,
        "info": {"mimetype": "image/png", "size": len(photo)}})
    assert isinstance(sent, nio.RoomSendResponse), sent
    message = await pushed_message(
        writer, lambda m: bool(m.get("file_picture")) and m["from_user"] != writer.uuid)
    assert message["text"] == ""  # the body is only the file's name
    assert base64.b64decode(message["file_picture"]) == photo
    history = await writer.call("all_messages", flow=[{"uuid": flow}])
    stored = [m for m in history["data"]["message"] if m.get("file_picture")]
    assert base64.b64decode(stored[-1]["file_picture"]) == photo

    # A file above the MTP inline limit: a note with its name and size.
    big = await upload(reader, b"\1" * (INLINE + 1), "application/pdf", "report.pdf")
    sent = await reader.room_send(room, "m.room.message", {
        "msgtype": "m.file", "body": "report.pdf", "url": big})
    assert isinstance(sent, nio.RoomSendResponse), sent
    note = await pushed_message(writer, lambda m: "report.pdf" in (m.get("text") or ""))
    assert "256.0 KiB" in note["text"] and not note.get("file_document")
    # Matrix readers still see the m.file with its URL.
    seen = await sync_until(reader, room, lambda event: event.get("content", {}).get(
        "url") == big)


async def pushed_message(client: Client, want: Any) -> dict[str, Any]:
    for _ in range(20):
        frame = await client.push(5)
        for message in frame["data"].get("message") or []:
            if want(message):
                return message  # type: ignore[no-any-return]
    raise AssertionError("never pushed")


async def test_avatars_are_one_picture_for_both(mx: Matrix) -> None:
    alice = await mx.user()
    viewer = await mx.mtp.user("viewer")
    picture = png(32, 32)
    mxc = await upload(alice, picture, "image/png", "me.png")
    done = await alice.set_avatar(mxc)
    assert isinstance(done, nio.ProfileSetAvatarResponse), done
    got = await alice.get_avatar()
    assert isinstance(got, nio.ProfileGetAvatarResponse) and got.avatar_url == mxc
    whoami = await alice.whoami()
    assert isinstance(whoami, nio.WhoamiResponse)
    profile = await alice.get_profile()
    assert isinstance(profile, nio.ProfileGetResponse) and profile.avatar_url == mxc
    login = str(whoami.user_id).split(":")[0][1:]
    info = await viewer.call("user_info", user=[{"uuid": await uuid_of(mx, login)}])
    assert base64.b64decode(info["data"]["user"][0]["avatar"]) == picture
    elsewhere = await alice.set_avatar("mxc://elsewhere.example/abc")
    assert isinstance(elsewhere, nio.ProfileSetAvatarError)


async def test_member_events_carry_the_avatar(mx: Matrix) -> None:
    """Element draws avatars from member events: a change of picture or name is a new
    m.room.member event in each room, and the room's state and joined_members carry it."""
    alice, bob = await mx.user(), await mx.user()
    room = await mx.room(bob, alice)
    await bob.sync(timeout=0)
    mxc = await upload(alice, png(24, 24, (3, 3, 3)), "image/png", "face.png")
    assert isinstance(await alice.set_avatar(mxc), nio.ProfileSetAvatarResponse)

    def member(event: dict[str, Any]) -> bool:
        return event.get("type") == "m.room.member" and event.get("state_key") == \
            alice.user_id and event["content"].get("avatar_url") == mxc

    seen = await sync_until(bob, room, member)
    content = next(event["content"] for event in seen if member(event))
    assert content["membership"] == "join" and content["displayname"]
    state = await mx.raw("GET", f"/_matrix/client/v3/rooms/{room}/state/m.room.member/"
                                f"{alice.user_id}", bob.access_token)
    assert state.json()["avatar_url"] == mxc, state.text
    joined = await mx.raw("GET", f"/_matrix/client/v3/rooms/{room}/joined_members",
                          bob.access_token)
    assert joined.json()["joined"][alice.user_id]["avatar_url"] == mxc
    assert joined.json()["joined"][bob.user_id].get("avatar_url") is None

    assert isinstance(await alice.set_displayname("Alice on holiday"),
                      nio.ProfileSetDisplayNameResponse)
    seen = await sync_until(bob, room, lambda event: event.get("type") == "m.room.member" and
                            event["content"].get("displayname") == "Alice on holiday")
    renamed = next(event["content"] for event in seen
                   if event["content"].get("displayname") == "Alice on holiday")
    assert renamed["avatar_url"] == mxc
    # A fresh sync (the room's state) shows the latest of both.
    fresh = await mx.raw("GET", "/_matrix/client/v3/sync", bob.access_token)
    events = fresh.json()["rooms"]["join"][room]["state"]["events"] + fresh.json()[
        "rooms"]["join"][room]["timeline"]["events"]
    latest = [event["content"] for event in events if event["type"] == "m.room.member"
              and event["state_key"] == alice.user_id][-1]
    assert (latest["displayname"], latest["avatar_url"]) == ("Alice on holiday", mxc)


def photo(seed: int, width: int = 2048, height: int = 1536) -> bytes:
    """A JPEG of about 3 MiB, as a phone's holiday photo (noise compresses as badly)."""
    noise = Image.frombytes("RGB", (width, height), random.Random(seed).randbytes(
        width * height * 3))
    out = io.BytesIO()
    noise.save(out, "JPEG", quality=95)
    return out.getvalue()


@pytest.fixture(scope="module", params=DATABASE_KINDS)
def no_legacy_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
                     ) -> Iterator[ServerProcess]:
    env = {**MEDIA_ENV, "MORELIA_MEDIA_LEGACY_DOWNLOADS": "false",
           "MORELIA_MEDIA_MTP_INLINE_LIMIT": str(8 * 1024 * 1024)}
    with running_server(request.param, tmp_path_factory.mktemp("media-no-legacy"), env=env
                        ) as server:
        yield server


@pytest.fixture
async def plain(no_legacy_server: ServerProcess) -> AsyncIterator[Matrix]:
    async for matrix in matrix_session(no_legacy_server):
        yield matrix


async def test_without_legacy_downloads_only_authenticated_paths_serve(plain: Matrix
                                                                      ) -> None:
    alice = await plain.user()
    picture = png(200, 100, (40, 50, 60))
    server, media_id = parts(await upload(alice, picture, "image/png", "p.png"))
    one = f"{server}/{media_id}"
    for path in (f"/_matrix/media/v3/download/{one}", f"/_matrix/media/v3/download/{one}/p.png",
                 f"/_matrix/media/r0/download/{one}",
                 f"/_matrix/media/v3/thumbnail/{one}?width=32&height=32"):
        for token in (None, alice.access_token):
            refused = await plain.raw("GET", path, token)
            assert (refused.status_code, refused.json()["errcode"]) == (404, "M_NOT_FOUND"), \
                path
            assert "authenticated" in refused.json()["error"]
    got = await plain.raw("GET", f"/_matrix/client/v1/media/download/{one}", alice.access_token)
    assert (got.status_code, got.content) == (200, picture)
    thumb = await plain.raw("GET", f"/_matrix/client/v1/media/thumbnail/{one}?width=32&"
                                   f"height=32&method=scale", alice.access_token)
    assert thumb.status_code == 200
    assert Image.open(io.BytesIO(thumb.content)).size == (200, 100)  # 320x240, not upscaled
    anonymous = await plain.raw("GET", f"/_matrix/client/v1/media/download/{one}")
    assert (anonymous.status_code, anonymous.json()["errcode"]) == (401, "M_MISSING_TOKEN")
    # Uploads and the config are not downloads: they stay on the v3 paths.
    config = await plain.raw("GET", "/_matrix/media/v3/config", alice.access_token)
    assert config.json() == {"m.upload.size": LIMIT}


async def test_holiday_photos_of_3_mib_both_ways(plain: Matrix) -> None:
    reader = await plain.user()
    writer = await plain.mtp.user("mtp", push=True)
    flow = await writer.group("holiday")
    room = f"!{flow}:{SERVER_NAME}"
    assert isinstance(await reader.join(room), nio.JoinResponse)
    await reader.sync(timeout=0)

    sent = photo(1)
    assert 2.5 * 1024 * 1024 < len(sent) < 4 * 1024 * 1024
    reply = await writer.call("send_message", flow=[{"uuid": flow}], message=[{
        "client_id": 1, "text": "The beach", "file_picture": base64.b64encode(sent).decode()}])
    assert reply["errors"]["code"] == 200, reply
    seen = await sync_until(reader, room, lambda event: event.get("content", {}).get(
        "msgtype") == "m.image")
    content = next(e["content"] for e in seen if e["content"].get("msgtype") == "m.image")
    assert content["info"] == {"mimetype": "image/jpeg", "size": len(sent), "w": 2048,
                               "h": 1536}
    got = await reader.download(content["url"])
    assert isinstance(got, nio.DownloadResponse) and got.body == sent
    server, media_id = parts(content["url"])
    thumb = await reader.thumbnail(server, media_id, 320, 240, nio.ResizingMethod.scale)
    assert isinstance(thumb, nio.ThumbnailResponse)
    assert Image.open(io.BytesIO(thumb.body)).size == (320, 240)

    back = photo(2)
    mxc = await upload(reader, back, "image/jpeg", "IMG_0042.jpg")
    done = await reader.room_send(room, "m.room.message", {
        "msgtype": "m.image", "body": "IMG_0042.jpg", "url": mxc,
        "info": {"mimetype": "image/jpeg", "size": len(back), "w": 2048, "h": 1536}})
    assert isinstance(done, nio.RoomSendResponse), done
    message = await pushed_message(
        writer, lambda m: bool(m.get("file_picture")) and m["from_user"] != writer.uuid)
    assert base64.b64decode(message["file_picture"]) == back
    history = await writer.call("all_messages", flow=[{"uuid": flow}])
    pictures = [m["file_picture"] for m in history["data"]["message"] if m.get("file_picture")]
    assert [base64.b64decode(p) for p in pictures] == [sent, back]


async def uuid_of(mx: Matrix, login: str) -> str:
    from mod.db import dbhandler
    from tests.support import write_database

    uri = mx.server.env["MORELIA_DATABASE_URI"]
    user = write_database(uri, dbhandler.user_by_login, login)
    return str(user["uuid"])


@pytest.mark.postgres
@pytest.mark.skipif(not POSTGRES_URI, reason="MORELIA_TEST_POSTGRES_URI unset")
async def test_two_processes_share_the_store(tmp_path: Path) -> None:
    channel = f"morelia_media_{uuid.uuid4().hex[:12]}"
    store = tmp_path / "shared-media"
    with postgres_database() as database:
        env = {**MEDIA_ENV, "MORELIA_DATABASE_URI": database, "MORELIA_BROKER_URI": database,
               "MORELIA_BROKER_CHANNEL": channel, "MORELIA_MEDIA_PATH": str(store)}
        with ServerProcess(tmp_path, env=env) as first, ServerProcess(tmp_path, env=env
                                                                      ) as second:
            login = unique_login("mx")
            one, two = nio.AsyncClient(first.http, login), nio.AsyncClient(second.http, login)
            mtp = await Client.connect(second.url)
            try:
                assert isinstance(await one.register(login, PASSWORD), nio.RegisterResponse)
                assert isinstance(await two.login(PASSWORD), nio.LoginResponse)
                picture = png(300, 200, (1, 2, 3))
                mxc = await upload(one, picture, "image/png", "a.png")
                got = await two.download(mxc)
                assert isinstance(got, nio.DownloadResponse) and got.body == picture
                server, media_id = parts(mxc)
                thumbs = await asyncio.gather(*(
                    client.thumbnail(server, media_id, 50, 50, nio.ResizingMethod.crop)
                    for client in (one, two, one, two)))
                assert all(isinstance(thumb, nio.ThumbnailResponse) for thumb in thumbs)
                assert len({thumb.body for thumb in thumbs}) == 1  # type: ignore[union-attr]

                # The same bytes uploaded to both at once: one file.
                same = png(50, 50, (9, 9, 9))
                uris = await asyncio.gather(upload(one, same, "image/png", "x.png"),
                                            upload(two, same, "image/png", "y.png"))
                assert len(set(uris)) == 2
                assert len([p for p in (store / "files").rglob("*") if p.is_file()]) == 2
                assert not list((store / "tmp").iterdir())

                # An MTP picture sent on the second process downloads from the first.
                await mtp.register(unique_login("mtp"))
                flow = await mtp.group("shared")
                room = f"!{flow}:{SERVER_NAME}"
                assert isinstance(await one.join(room), nio.JoinResponse)
                await one.sync(timeout=0)
                sent = png(20, 20, (5, 5, 5))
                await mtp.call("send_message", flow=[{"uuid": flow}], message=[{
                    "client_id": 1, "file_picture": base64.b64encode(sent).decode()}])
                seen = await sync_until(one, room, lambda e: "url" in e.get("content", {}))
                url = next(e["content"]["url"] for e in seen if "url" in e.get("content", {}))
                got = await one.download(url)
                assert isinstance(got, nio.DownloadResponse) and got.body == sent
            finally:
                await one.close()
                await two.close()
                await mtp.close()


async def test_bad_media_requests_get_clear_errors_and_lose_nothing(mx: Matrix) -> None:
    alice = await mx.user()
    picture = png()
    server, media_id = parts(await upload(alice, picture, "image/png", "kept.png"))
    token = alice.access_token
    base = "/_matrix/client/v1/media"
    bad = [
        ("GET", f"{base}/download/{server}/no-such-media", None, 404, "M_NOT_FOUND"),
        ("GET", f"{base}/download/elsewhere.example/{media_id}", None, 404, "M_NOT_FOUND"),
        ("GET", f"{base}/download/{server}/..%2F..%2Fmorelia.db", None, 404, "M_NOT_FOUND"),
        ("GET", f"{base}/thumbnail/{server}/{media_id}?width=abc&height=10", None, 400,
         "M_INVALID_PARAM"),
        ("GET", f"{base}/thumbnail/{server}/{media_id}?width=10", None, 400, "M_MISSING_PARAM"),
        ("GET", f"{base}/thumbnail/{server}/{media_id}?width=10&height=10&method=melt", None,
         400, "M_INVALID_PARAM"),
        ("POST", "/_matrix/media/v3/upload?filename=a%00b", b"x", 400, "M_INVALID_PARAM"),
        ("PUT", f"/_matrix/media/v3/upload/{server}/{media_id}", b"x", 409,
         "M_CANNOT_OVERWRITE_MEDIA"),
        ("PUT", f"/_matrix/client/v3/profile/{alice.user_id}/avatar_url",
         b'{"avatar_url": "https://example.org/a.png"}', 400, "M_INVALID_PARAM"),
    ]
    for method, path, body, status, code in bad:
        response = await mx.raw(method, path, token, content=body)
        assert (response.status_code, response.json().get("errcode")) == (status, code), \
            (method, path, response.text)
    document = await upload(alice, b"%PDF-1.4 not a picture", "application/pdf", "a.pdf")
    response = await mx.raw("GET", f"{base}/thumbnail/{server}/{parts(document)[1]}"
                            "?width=10&height=10", token)
    assert response.status_code == 400 and response.json()["errcode"], response.text
    # What was stored before is still served, whole.
    got = await alice.download(f"mxc://{server}/{media_id}")
    assert isinstance(got, nio.DownloadResponse) and got.body == picture


async def test_asynchronous_uploads_past_the_cap_are_refused(mx: Matrix) -> None:
    alice, bob = await mx.user(), await mx.user()
    for _ in range(10):  # [MEDIA] MAX_PENDING_UPLOADS
        created = await mx.raw("POST", "/_matrix/media/v1/create", alice.access_token)
        assert created.status_code == 200, created.text
    refused = await mx.raw("POST", "/_matrix/media/v1/create", alice.access_token)
    assert (refused.status_code, refused.json()["errcode"]) == (429, "M_LIMIT_EXCEEDED")
    other = await mx.raw("POST", "/_matrix/media/v1/create", bob.access_token)
    assert other.status_code == 200, other.text
    assert isinstance(await upload(bob, png(8, 8), "image/png", "b.png"), str)
