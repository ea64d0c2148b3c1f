"""Avatars, for both protocols: a user's picture is a file of the media store that the user's
`avatar` reference names (Matrix `avatar_url`), and MTP's `avatar` is its bytes in base64
(when not too large); setting one logs `profile_changed` in every flow of the user."""

from __future__ import annotations

import asyncio
import base64
import binascii

from mod.db import dbhandler as db
from mod.db import media as mediadb
from mod.db.engine import Conn
from mod.error import ServiceError
from mod.service.common import Caller, now
from mod.service.media import Media
from mod.service.mediastore import sniff


class Avatars:
    def __init__(self, media: Media) -> None:
        self.media = media

    async def set(self, caller: Caller, user_uuid: str, url: str) -> None:
        """A user's picture, for both protocols: Matrix `avatar_url` (an mxc URL of this
        server, or "" for none) and MTP `avatar` (its bytes in base64, when not too large)."""
        if user_uuid != caller.uuid:
            raise ServiceError(403, "You can only change your own avatar")
        media_id = self.media.media_id_of(url) if url else None
        if url and media_id is None:
            raise ServiceError(400, f"avatar_url must be an mxc:// URL of {self.media.server_name}")
        encoded = ""
        if media_id is not None:
            row = await self.media.info(media_id)
            if row["size"] <= self.media.settings.mtp_inline_limit:
                encoded = await asyncio.to_thread(self.media.store.read_base64, row["sha256"])
        await self.media.engine.write(_set_avatar, user_uuid, media_id or "", encoded, now())

    async def from_mtp(self, caller: Caller, encoded: str) -> None:
        """MTP's `avatar`: a picture's bytes in base64 ("" for none), kept in the media store
        (within the caller's quota) and set as the caller's avatar for both protocols."""
        if not encoded:
            await self.set(caller, caller.uuid, "")
            return
        try:
            data = await asyncio.to_thread(base64.b64decode, encoded, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ServiceError(415, "avatar must be a picture's bytes in base64") from exc
        if not (await asyncio.to_thread(sniff, data)).content_type.startswith("image/"):
            raise ServiceError(415, "avatar must be a JPEG, PNG, GIF or WebP picture")
        row = await self.media.store_bytes(caller.uuid, data, "avatar")
        await self.set(caller, caller.uuid, self.media.mxc(row["media_id"]))

    async def ids(self, user_uuids: list[str]) -> dict[str, str]:
        """user uuid -> avatar media ID, for those of these users who have one."""
        return await self.media.engine.read(mediadb.avatars, user_uuids)

    async def urls(self, user_uuids: list[str]) -> dict[str, str]:
        """user uuid -> avatar mxc URL, for those of these users who have one."""
        found = await self.ids(user_uuids)
        return {user: self.media.mxc(media_id) for user, media_id in found.items()}

    async def url(self, user_uuid: str) -> str:
        """The user's avatar as an mxc URL; an MTP `avatar` stored before the media store
        (base64 in the users table) is put in the store the first time it is asked for."""
        media_id = await self.media.engine.read(mediadb.ref_of, mediadb.AVATAR, user_uuid)
        if media_id:
            return self.media.mxc(media_id)
        user = await self.media.engine.read(db.user_by_uuid, user_uuid)
        if user is None or not user["avatar"]:
            return ""
        try:
            data = await asyncio.to_thread(base64.b64decode, user["avatar"], validate=True)
        except (binascii.Error, ValueError):
            return ""
        row = await self.media.store_bytes(user_uuid, data, "avatar", quota=False)
        await self.media.engine.write(mediadb.add_ref, row["media_id"], mediadb.AVATAR, user_uuid)
        return self.media.mxc(row["media_id"])


def _set_avatar(conn: Conn, user_uuid: str, media_id: str, encoded: str, stamp: int) -> None:
    if mediadb.ref_of(conn, mediadb.AVATAR, user_uuid) == (media_id or None):
        return  # the same picture again: nothing changes, no new member events
    mediadb.drop_refs(conn, mediadb.AVATAR, user_uuid)
    if media_id:
        mediadb.add_ref(conn, media_id, mediadb.AVATAR, user_uuid)
    db.set_avatar(conn, user_uuid, encoded)
    db.log_profile_changed(conn, user_uuid, stamp)
