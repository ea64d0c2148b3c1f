"""The media store in process (no server): hashing and deduplication, uploads past the
limit, thumbnails, the MTP <-> Matrix bridge, avatars and purging; on SQLite and on
PostgreSQL when MORELIA_TEST_POSTGRES_URI is set."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import io
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from PIL import Image
from sqlobject.sqlbuilder import Update

from mod.config.validator import Database, Settings
from mod.db import dbhandler as db
from mod.db import media as mediadb
from mod.db import schema
from mod.db.engine import Conn, Engine
from mod.db.models import Media
from mod.protocol.matrix.media import content_disposition
from mod.service import Service
from mod.service.media import media_root
from mod.service.mediastore import sniff
from tests.support import DATABASE_KINDS, database_uri
from tests.test_service import World, refused

pytestmark = pytest.mark.anyio


def png(width: int = 64, height: int = 48, color: tuple[int, int, int] = (200, 30, 30)
        ) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), color).save(out, "PNG")
    return out.getvalue()


async def chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


@contextlib.asynccontextmanager
async def media_world(kind: str, tmp_path: Path) -> AsyncIterator[World]:
    """The service with a media store under `tmp_path` (small limits, server example.test)."""
    with database_uri(kind, tmp_path) as uri:
        settings = Settings.model_validate({
            "database": {"uri": uri},
            "media": {"path": str(tmp_path / "store"), "max_upload_size": 100_000,
                      "mtp_inline_limit": 20_000, "max_pending_uploads": 3,
                      "unused_expires": 3600},
            "matrix": {"server_name": "example.test"}})
        engine = Engine(Database(uri=uri))
        engine.start(asyncio.get_running_loop())
        await asyncio.to_thread(schema.migrate, engine)
        service = Service(settings, engine)
        try:
            yield World(service, engine)
        finally:
            await service.media.stop()
            service.close()
            engine.stop()


@pytest.fixture(params=DATABASE_KINDS)
async def world(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[World]:
    async with media_world(request.param, tmp_path) as made:
        yield made


def files(root: Path) -> list[Path]:
    return sorted(path for path in (root / "files").rglob("*") if path.is_file())


async def test_files_are_named_by_hash_and_kept_once(world: World, tmp_path: Path) -> None:
    media = world.service.media
    alice, bob = await world.user("alice"), await world.user("bob")
    picture = png()
    first = await media.upload(alice, chunks(picture[:10], picture[10:]), "image/png", "a.png")
    second = await media.upload(bob, chunks(picture), "image/png", "b.png")
    assert first["media_id"] != second["media_id"]
    assert first["sha256"] == second["sha256"] == hashlib.sha256(picture).hexdigest()
    assert (first["size"], first["width"], first["height"]) == (len(picture), 64, 48)
    stored = files(tmp_path / "store")
    assert [path.name for path in stored] == [first["sha256"]]
    assert stored[0].read_bytes() == picture
    assert not list((tmp_path / "store" / "tmp").iterdir())
    row, path = await media.file(first["media_id"])
    assert (row["name"], row["content_type"], row["uploader"]) == ("a.png", "image/png",
                                                                   alice.uuid)
    assert path == stored[0]


async def test_an_upload_past_the_limit_is_refused_and_leaves_nothing(
        world: World, tmp_path: Path) -> None:
    media = world.service.media
    alice = await world.user("alice")
    assert "larger" in await refused(413, media.upload(alice, chunks(b"x"), "", "",
                                                       declared=100_001))
    read: list[int] = []

    async def endless() -> AsyncIterator[bytes]:
        for index in range(1000):
            read.append(index)
            yield b"y" * 8192

    await refused(413, media.upload(alice, endless(), "", ""))
    assert len(read) == 13  # stopped at the first chunk past 100,000 bytes
    assert files(tmp_path / "store") == []
    assert not list((tmp_path / "store" / "tmp").iterdir())
    await refused(400, media.upload(alice, chunks(b"x"), "text/html\n", ""))
    await refused(400, media.upload(alice, chunks(b"x"), "", "a/b.txt"))


async def test_asynchronous_upload_by_its_creator_once(world: World) -> None:
    media = world.service.media
    alice, bob = await world.user("alice"), await world.user("bob")
    media_id, _ = await media.create(alice)
    await refused(404, media.info(media_id))  # nothing uploaded yet
    await refused(403, media.upload(bob, chunks(b"hi"), "text/plain", "", media_id=media_id))
    row = await media.upload(alice, chunks(b"hi"), "text/plain", "n.txt", media_id=media_id)
    assert row["media_id"] == media_id and (await media.info(media_id))["size"] == 2
    await refused(409, media.upload(alice, chunks(b"again"), "", "", media_id=media_id))


async def test_thumbnails_scale_crop_and_are_kept(world: World) -> None:
    media = world.service.media
    alice = await world.user("alice")
    row = await media.upload(alice, chunks(png(400, 200)), "image/png", "")
    path, kind = await media.thumbnail(row["media_id"], 100, 100, "scale")
    assert kind == "image/jpeg"
    with Image.open(path) as image:
        assert image.size == (320, 160)  # the nearest configured size: 320x240 scale
    cropped, _ = await media.thumbnail(row["media_id"], 50, 50, "crop")
    with Image.open(cropped) as image:
        assert image.size == (96, 96)  # 96x96 crop
    mtime = path.stat().st_mtime_ns
    again, _ = await media.thumbnail(row["media_id"], 100, 100, "scale")
    assert again == path and path.stat().st_mtime_ns == mtime
    await refused(400, media.thumbnail(row["media_id"], 100, 100, "stretch"))
    await refused(400, media.thumbnail(row["media_id"], 0, 100, "scale"))
    text = await media.upload(alice, chunks(b"plain"), "text/plain", "")
    await refused(400, media.thumbnail(text["media_id"], 10, 10, "scale"))


async def test_a_decompression_bomb_is_not_thumbnailed(world: World) -> None:
    media = world.service.media
    media.thumbnails.max_pixels = 10_000
    alice = await world.user("alice")
    row = await media.upload(alice, chunks(png(200, 200)), "image/png", "")
    assert "too large to thumbnail" in await refused(
        400, media.thumbnail(row["media_id"], 32, 32, "scale"))


async def test_mtp_files_become_matrix_media_and_back(world: World) -> None:
    service = world.service
    alice = await world.user("alice")
    flow = await world.flow(alice)
    picture = png()
    encoded = base64.b64encode(picture).decode()
    sent = await service.messages.send(alice, flow, 1, {"text": "", "file_picture": encoded})
    assert sent.value["file_picture"] == encoded  # MTP reads what it sent, as before
    media_id = await world.engine.read(mediadb.ref_of, mediadb.MESSAGE, sent.value["uuid"])
    assert media_id is not None
    row, path = await service.media.file(media_id)
    assert path.read_bytes() == picture and row["content_type"] == "image/png"

    # A retry stores nothing new.
    await service.messages.send(alice, flow, 1, {"text": "", "file_picture": encoded})
    assert len(files(media_root(service.settings, world.engine))) == 1

    # Matrix m.image of that mxc -> MTP gets the bytes in file_picture.
    content = {"msgtype": "m.image", "body": "holiday.png", "url": service.media.mxc(media_id)}
    mtp, referred = await service.media.for_mtp(content)
    assert referred == media_id
    assert mtp == {"text": "", "file_picture": encoded}
    captioned, _ = await service.media.for_mtp({**content, "filename": "x.png",
                                                "body": "Look!"})
    assert captioned["text"] == "Look!"
    # Past the inline limit, a note with the name and size.
    big = await service.media.upload(alice, chunks(os.urandom(30_000)), "video/mp4",
                                     "clip.mp4")
    noted, _ = await service.media.for_mtp({"msgtype": "m.video", "body": "clip.mp4",
                                            "url": service.media.mxc(big["media_id"])})
    assert noted.keys() == {"text"} and "clip.mp4 (29.3 KiB)" in noted["text"]
    # Another server's media, or not a file: text only.
    assert await service.media.for_mtp({"msgtype": "m.image", "body": "x",
                                        "url": "mxc://elsewhere/abc"}) == ({"text": "x"}, "")


async def test_not_base64_stays_as_it_was(world: World) -> None:
    alice = await world.user("alice")
    flow = await world.flow(alice)
    sent = await world.service.messages.send(alice, flow, 1, {"file_document": "not base64!"})
    assert sent.value["file_document"] == "not base64!"
    assert await world.engine.read(mediadb.ref_of, mediadb.MESSAGE, sent.value["uuid"]) is None


async def test_purge_removes_only_what_nothing_refers_to(world: World, tmp_path: Path
                                                         ) -> None:
    service = world.service
    alice = await world.user("alice")
    flow = await world.flow(alice)
    store = tmp_path / "store"
    kept_bytes, lost_bytes, avatar_bytes = png(color=(1, 2, 3)), png(color=(4, 5, 6)), png(8, 8)
    sent = await service.messages.send(alice, flow, 1, {
        "file_picture": base64.b64encode(kept_bytes).decode()})
    lost = await service.media.upload(alice, chunks(lost_bytes), "image/png", "lost.png")
    avatar = await service.media.upload(alice, chunks(avatar_bytes), "image/png", "")
    await service.avatars.set(alice, alice.uuid, service.media.mxc(avatar["media_id"]))
    await service.media.thumbnail(lost["media_id"], 10, 10, "crop")
    await service.media.create(alice)  # never uploaded
    assert len(files(store)) == 3

    rows, removed = await service.media.purge(1)  # all are younger than a day
    assert (rows, removed) == ([], 0)

    past = time.time() - 3 * 86400
    for path in files(store):
        os.utime(path, (past, past))
    await world.engine.write(_age_rows, int(past))
    rows, removed = await service.media.purge(1)
    assert sorted(row["name"] for row in rows) == ["", "lost.png"] and removed == 1
    assert {path.name for path in files(store)} == {
        hashlib.sha256(kept_bytes).hexdigest(), hashlib.sha256(avatar_bytes).hexdigest()}
    assert not list((store / "thumbs").rglob("*.jpg"))

    # A deleted message no longer refers to its file.
    await service.messages.delete(alice, sent.value["uuid"])
    rows, removed = await service.media.purge(1)
    assert len(rows) == 1 and removed == 1


async def test_manage_py_media_purge(world: World, tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from manage import cli

    service = world.service
    alice = await world.user("alice")
    row = await service.media.upload(alice, chunks(b"old bytes"), "text/plain", "old.txt")
    past = time.time() - 10 * 86400
    for path in files(tmp_path / "store"):
        os.utime(path, (past, past))
    await world.engine.write(_age_rows, int(past))
    monkeypatch.delenv("MORELIA_CONFIG", raising=False)
    for key, value in (("DATABASE_URI", service.settings.database.uri),
                       ("MEDIA_PATH", str(tmp_path / "store")),
                       ("MATRIX_SERVER_NAME", "example.test")):
        monkeypatch.setenv(f"MORELIA_{key}", value)

    def purge(days: str) -> str:
        result = CliRunner().invoke(cli, ["media", "purge", "--older-than", days])
        assert result.exit_code == 0, (result.output, result.exception)
        return result.stdout

    assert purge("30").endswith("Removed 0 media (0 bytes), 0 files.\n")
    out = purge("7")
    assert f"removed mxc://example.test/{row['media_id']} text/plain 9 bytes old.txt" in out
    assert out.endswith("Removed 1 media (9 bytes), 1 file.\n")
    assert files(tmp_path / "store") == []
    bad = CliRunner().invoke(cli, ["media", "purge", "--older-than", "-1"])
    assert bad.exit_code == 2


async def test_purge_removes_files_no_row_names(world: World, tmp_path: Path) -> None:
    """A file whose row was never written (a database write failed after the file reached
    the disk) and a dead upload's temporary file go once older than the cut-off."""
    media, avatars = world.service.media, world.service.avatars
    alice = await world.user("alice")
    store = tmp_path / "store"
    kept = await media.upload(alice, chunks(b"kept"), "text/plain", "kept.txt")
    await avatars.set(alice, alice.uuid, media.mxc(kept["media_id"]))
    orphan, _, _ = await asyncio.to_thread(media.store.put, b"no row names me")
    fresh, _, _ = await asyncio.to_thread(media.store.put, b"nor me, but I am new")
    (store / "tmp").mkdir(exist_ok=True)
    (store / "tmp" / "123-dead").write_bytes(b"half an upload")
    past = time.time() - 3 * 86400
    for path in [*files(store), store / "tmp" / "123-dead"]:
        if fresh not in path.name:
            os.utime(path, (past, past))
    await world.engine.write(_age_rows, int(past))
    rows, removed = await media.purge(1)
    assert rows == [] and removed == 1
    assert {path.name for path in files(store)} == {kept["sha256"], fresh}
    assert not list((store / "tmp").iterdir())
    assert orphan != fresh


async def test_a_refused_send_stores_no_file(world: World, tmp_path: Path) -> None:
    service = world.service
    alice, bob = await world.user("alice"), await world.user("bob")
    flow = await world.flow(alice, "channel")
    picture = {"file_picture": base64.b64encode(png(color=(7, 7, 7))).decode()}
    await refused(403, service.messages.send(bob, flow, 1, picture))
    await refused(404, service.messages.send(alice, "no-such-flow", 1, picture))
    assert files(tmp_path / "store") == []
    await service.messages.send(alice, flow, 1, picture)
    assert len(files(tmp_path / "store")) == 1


async def test_pending_uploads_are_capped_and_expire(world: World) -> None:
    from mod.service.accounts import _purge

    media = world.service.media
    alice, bob = await world.user("alice"), await world.user("bob")
    created = [await media.create(alice) for _ in range(3)]
    stamp = int(time.time())
    assert all(stamp - 5 <= expires - 3600 <= stamp + 5 for _, expires in created)
    await refused(429, media.create(alice))
    await media.create(bob)  # the cap is per user
    # An upload fills one: alice may create another.
    await media.upload(alice, chunks(b"one"), "text/plain", "", media_id=created[0][0])
    await media.create(alice)
    await refused(429, media.create(alice))

    # Past UNUSED_EXPIRES they no longer count, cannot be uploaded to, and the hourly
    # purge drops them (the uploaded one stays).
    past = int(time.time()) - 7200
    await world.engine.write(_age_rows, past)
    await refused(404, media.upload(alice, chunks(b"late"), "text/plain", "",
                                    media_id=created[1][0]))
    await media.create(alice)
    assert await world.engine.write(_purge, int(time.time()), 0, int(time.time()) - 3600) == 4
    assert await world.engine.read(mediadb.by_id, created[1][0]) is None
    assert (await world.engine.read(mediadb.by_id, created[0][0]) or {}).get("sha256")
    await media.create(alice)
    await media.create(alice)
    await refused(429, media.create(alice))


async def test_an_avatar_or_name_change_is_a_member_event(world: World) -> None:
    from mod.protocol.matrix import views
    from mod.protocol.matrix.events import Renderer, parse
    from mod.service import People

    service = world.service
    alice, bob = await world.user("alice"), await world.user("bob")
    flows = [await world.flow(alice, "group", bob), await world.flow(bob, "group", alice)]
    picture = await service.media.upload(alice, chunks(png(8, 8)), "image/png", "")
    url = service.media.mxc(picture["media_id"])
    await service.avatars.set(alice, alice.uuid, url)
    changes = await world.engine.read(db.changes_after, 0, 100_000)
    changed = [change for change in changes if change.kind == "profile_changed"]
    assert sorted(change.flow_uuid for change in changed) == sorted(flows)
    await service.avatars.set(alice, alice.uuid, url)  # the same again: no new event
    await service.profiles.set_username(alice, alice.uuid, "Alice B.")
    changes = await world.engine.read(db.changes_after, 0, 100_000)
    assert len([change for change in changes if change.kind == "profile_changed"]) == 4

    users = {user.uuid: user for user in await service.profiles.users([alice.uuid, bob.uuid])}
    renderer = Renderer("example.test", people=People(
        users, await service.avatars.ids([alice.uuid, bob.uuid])))
    renderer.load_users([alice.uuid, bob.uuid])
    members = [event for event in renderer.all_events(parse(changes))
               if event["type"] == "m.room.member" and event["room_id"].startswith(
                   f"!{flows[0]}")]
    state = {event["state_key"]: event["content"]
             for event in views.state(await service.timeline.state(alice, flows[0]),
                                      "example.test")
             if event["type"] == "m.room.member"}
    assert [event["content"].get("avatar_url") for event in members][-2:] == [url, url]
    alice_state = next(content for key, content in state.items() if "alice" in key)
    assert alice_state == {"membership": "join", "displayname": "Alice B.", "avatar_url": url}
    bob_state = next(content for key, content in state.items() if "bob" in key)
    assert "avatar_url" not in bob_state
    assert {flow["uuid"] for flow in (await service.timeline.get_update(bob, 0)).flows} == set(
        flows)


def _age_rows(conn: Conn, stamp: int) -> None:
    conn.execute(Update(Media.sqlmeta.table, values={"time_created": stamp}))


def test_sniffing_and_disposition() -> None:
    assert sniff(png()).content_type == "image/png"
    assert sniff(b"%PDF-1.7 ...").content_type == "application/pdf"
    assert sniff(b"<svg xmlns='http://www.w3.org/2000/svg'/>").content_type == ""
    assert content_disposition("image/png", "a.png").startswith("inline;")
    assert content_disposition("image/svg+xml", "a.svg").startswith("attachment;")
    assert content_disposition("text/html", "").startswith("attachment")
    header = content_disposition("application/pdf", 'Отчёт "1".pdf')
    assert header == ("attachment; filename=\"_____ _1_.pdf\"; "
                      "filename*=utf-8''%D0%9E%D1%82%D1%87%D1%91%D1%82%20%221%22.pdf")


async def test_an_animation_is_thumbnailed_by_its_first_frame(world: World) -> None:
    media = world.service.media
    alice = await world.user("alice")
    frames = [Image.new("RGB", (120, 120), color) for color in ((250, 0, 0), (0, 0, 250))]
    out = io.BytesIO()
    frames[0].save(out, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    row = await media.upload(alice, chunks(out.getvalue()), "image/gif", "")
    path, _ = await media.thumbnail(row["media_id"], 30, 30, "crop")
    with Image.open(path) as image:
        assert image.size == (32, 32)  # the nearest configured size: 32x32 crop
        assert getattr(image, "n_frames", 1) == 1
        red, _, blue = image.convert("RGB").getpixel((16, 16))  # type: ignore[misc]
        assert red > 200 and blue < 50
