"""mod.service.avatars: one picture per user for both protocols, kept in the media store."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mod.db import dbhandler as db
from tests.service_support import World
from tests.support import DATABASE_KINDS
from tests.test_media import chunks, media_world, png, refused

pytestmark = pytest.mark.anyio


@pytest.fixture(params=DATABASE_KINDS)
async def world(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[World]:
    async with media_world(request.param, tmp_path) as made:
        yield made


async def test_avatars_are_shared(world: World) -> None:
    media, avatars = world.service.media, world.service.avatars
    alice, bob = await world.user("alice"), await world.user("bob")
    picture = png(16, 16)
    row = await media.upload(alice, chunks(picture), "image/png", "me.png")
    url = media.mxc(row["media_id"])
    await refused(403, avatars.set(bob, alice.uuid, url))
    await refused(400, avatars.set(alice, alice.uuid, "https://example.org/a.png"))
    await avatars.set(alice, alice.uuid, url)
    assert await avatars.url(alice.uuid) == url
    user = await world.engine.read(db.user_by_uuid, alice.uuid)
    assert user is not None and base64.b64decode(user["avatar"]) == picture
    await avatars.set(alice, alice.uuid, "")
    assert await avatars.url(alice.uuid) == ""

    # An MTP avatar from before the media store is stored when first asked for.
    await world.engine.write(db.set_avatar, bob.uuid, base64.b64encode(picture).decode())
    url = await avatars.url(bob.uuid)
    assert url.startswith("mxc://example.test/") and await avatars.url(bob.uuid) == url
    row, path = await media.file(url.rpartition("/")[2])
    assert path.read_bytes() == picture and row["uploader"] == bob.uuid


async def test_mtp_sets_a_picture_and_refuses_anything_else(world: World) -> None:
    avatars = world.service.avatars
    alice = await world.user("alice")
    picture = png(20, 20)
    await avatars.from_mtp(alice, base64.b64encode(picture).decode())
    url = await avatars.url(alice.uuid)
    row, _ = await world.service.media.file(url.rpartition("/")[2])
    assert row["content_type"] == "image/png" and row["uploader"] == alice.uuid
    for encoded in ("not base64!", base64.b64encode(b"just some text").decode()):
        await refused(415, avatars.from_mtp(alice, encoded))
    assert await avatars.url(alice.uuid) == url  # a refusal changes nothing
    await avatars.from_mtp(alice, "")
    assert await avatars.url(alice.uuid) == ""

