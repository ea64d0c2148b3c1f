"""The media store, for both protocols: uploads (streamed, counted, refused past the size
limit), downloads and thumbnails, and the bridge between MTP's inline files (`file_*`,
base64) and Matrix's `mxc://` URLs. Files are kept once per content (`mediastore`), their
metadata in the `media` table, and what refers to them in `media_refs`.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import re
import secrets
import string
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from mod.config.validator import Settings
from mod.content import FILE_FIELDS
from mod.db import media as mediadb
from mod.db.engine import Conn, Engine
from mod.db.media import MediaRow
from mod.error import ServiceError
from mod.service import quota as quotas
from mod.service.common import Caller, now
from mod.service.mediastore import (
    MAX_THUMBNAIL_SIDE,
    THUMBNAIL_METHODS,
    Incoming,
    Store,
)
from mod.service.replies import body_for_mtp
from mod.service.thumbnails import Thumbnails

# MTP's file fields (in the order a message's first file is chosen) and the Matrix msgtype
# of each; a file's name when it has none: picture, video, audio, document.
FILE_TYPES = dict(zip(FILE_FIELDS, ("m.image", "m.video", "m.audio", "m.file"), strict=True))
FIELD_OF = {msgtype: field for field, msgtype in FILE_TYPES.items()}
DEFAULT_NAMES = {field: field.removeprefix("file_") for field in FILE_FIELDS}
OCTET_STREAM = "application/octet-stream"
_CONTENT_TYPE = re.compile(r"^[A-Za-z0-9!#$&^_.+-]{1,64}/[A-Za-z0-9!#$&^_.+-]{1,64}"
                           r"(\s*;\s*[A-Za-z0-9_-]+=[A-Za-z0-9_.\"-]{1,64})*$")
_MEDIA_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
FLUSH = 1024 * 1024  # bytes gathered before a write goes to a thread


def media_root(settings: Settings, engine: Engine) -> Path:
    """`[MEDIA] PATH`, else `media` beside the SQLite file (PostgreSQL: the working dir)."""
    if settings.media.path:
        return Path(settings.media.path)
    filename = "" if engine.postgres else str(engine.connection.filename)
    if filename and filename != ":memory:":
        return Path(filename).resolve().parent / "media"
    return Path("media").resolve()


def new_media_id() -> str:
    return "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(24))


def valid_name(name: str) -> str:
    if len(name) > 255 or any(ord(char) < 32 or char in "/\\\x7f" for char in name):
        raise ServiceError(400, "A file name has at most 255 characters, without control "
                                "characters or slashes")
    return name


class Media:
    def __init__(self, settings: Settings, engine: Engine) -> None:
        self.settings = settings.media
        self.server_name = settings.matrix.server_name
        self.engine = engine
        self.store = Store(media_root(settings, engine))
        self.thumbnails = Thumbnails(self.store.root / "thumbs", settings.media)

    def close(self) -> None:
        self.thumbnails.close()

    async def stop(self) -> None:
        """Stop the thumbnail workers and wait for them (server shutdown)."""
        await self.thumbnails.stop()

    # -- mxc URLs ----------------------------------------------------------------------------

    def mxc(self, media_id: str) -> str:
        return f"mxc://{self.server_name}/{media_id}"

    def media_id_of(self, url: object) -> str | None:
        """The media ID of an `mxc://` URL of this server; None for anything else."""
        if not isinstance(url, str) or not url.startswith("mxc://"):
            return None
        server, _, media_id = url[6:].partition("/")
        return media_id if server == self.server_name and _MEDIA_ID.fullmatch(media_id) else None

    # -- uploads -----------------------------------------------------------------------------

    def too_large(self) -> ServiceError:
        return ServiceError(413, f"The file is larger than this server accepts "
                                 f"({self.settings.max_upload_size} bytes)")

    async def create(self, caller: Caller) -> tuple[str, int]:
        """A media ID whose bytes its creator uploads later (asynchronous upload), and when
        it expires unused (seconds). At most `[MEDIA] MAX_PENDING_UPLOADS` wait at once; each
        counts as a file towards the quota (413 when no file fits)."""
        stamp = now()
        row = MediaRow(media_id=new_media_id(), sha256="", content_type=OCTET_STREAM, size=0,
                       name="", uploader=caller.uuid, time_created=stamp, width=0, height=0)
        await self.engine.write(quotas.create_pending, row, self.settings)
        return row["media_id"], stamp + self.settings.unused_expires

    async def upload(self, caller: Caller, chunks: AsyncIterator[bytes], content_type: str,
                     name: str, declared: int | None = None, media_id: str | None = None
                     ) -> MediaRow:
        """Store an upload as it streams in; 413 as soon as it passes the size limit or the
        uploader's quota (a declared size past either: before a byte is read). With
        `media_id`, the bytes of an ID `create` made (its creator only, once)."""
        if declared is not None and declared > self.settings.max_upload_size:
            raise self.too_large()
        valid_name(name)
        if content_type and not _CONTENT_TYPE.fullmatch(content_type):
            raise ServiceError(400, f"Invalid content type {content_type[:80]!r}")
        if media_id is not None:
            await self._pending(caller, media_id)
        standing = await self.engine.read(quotas.standing, self.settings, caller.uuid, now(),
                                          media_id or "")
        standing.require(declared or 0)
        incoming = await asyncio.to_thread(self.store.incoming)
        try:
            await self._receive(incoming, chunks, standing)
            sha256, what = await asyncio.to_thread(incoming.seal)
        except BaseException:
            await asyncio.to_thread(incoming.abort)
            raise
        declared_type = content_type.split(";")[0].strip().lower()
        kind = content_type if declared_type and declared_type != OCTET_STREAM else (
            what.content_type or OCTET_STREAM)
        row = MediaRow(media_id=media_id or new_media_id(), sha256=sha256, content_type=kind,
                       size=incoming.size, name=name, uploader=caller.uuid, time_created=now(),
                       width=what.width, height=what.height)
        await asyncio.shield(self._commit(incoming, row, fill=media_id is not None))
        return row

    async def _commit(self, incoming: Incoming, row: MediaRow, fill: bool = False,
                      quota: bool = True) -> None:
        """A sealed upload kept: its row inserted (or a pending one filled) in the writer job
        that checks the quota, then its file put in place. Refused, it leaves neither file
        nor row. Run shielded: once begun, a cancelled request cannot part a row from its
        file."""
        try:
            if not fill:
                await self.engine.write(quotas.insert, row, self.settings, quota)
            elif not await self.engine.write(quotas.fill, row, self.settings):
                raise ServiceError(409, "This media ID already has its file")
        except BaseException:
            await asyncio.to_thread(incoming.abort)
            raise
        try:
            await asyncio.to_thread(incoming.place)
        except BaseException:
            await self.engine.write(mediadb.delete, [row["media_id"]])
            raise

    async def _receive(self, incoming: Incoming, chunks: AsyncIterator[bytes],
                       standing: quotas.Standing) -> None:
        limit = self.settings.max_upload_size
        left = standing.left()
        held: list[bytes] = []
        size = 0
        async for chunk in chunks:
            size += len(chunk)
            if incoming.size + size > limit:
                raise self.too_large()
            if left is not None and incoming.size + size > left:
                standing.require(incoming.size + size)
            held.append(chunk)
            if size >= FLUSH:
                await asyncio.to_thread(incoming.write, b"".join(held))
                held, size = [], 0
        if held:
            await asyncio.to_thread(incoming.write, b"".join(held))

    async def _pending(self, caller: Caller, media_id: str) -> None:
        row = await self.engine.read(mediadb.by_id, media_id)
        if row is None:
            raise ServiceError(404, f"No media {media_id}")
        if row["uploader"] != caller.uuid:
            raise ServiceError(403, "Only the creator of a media ID uploads its file")
        if row["sha256"]:
            raise ServiceError(409, "This media ID already has its file")
        if row["time_created"] < now() - self.settings.unused_expires:
            raise ServiceError(404, f"Media {media_id} expired before its file was uploaded")

    # -- downloads ---------------------------------------------------------------------------

    async def info(self, media_id: str) -> MediaRow:
        row = await self.engine.read(mediadb.by_id, media_id) if _MEDIA_ID.fullmatch(
            media_id) else None
        if row is None or not row["sha256"]:
            raise ServiceError(404, "Media not found")
        return row

    async def file(self, media_id: str) -> tuple[MediaRow, Path]:
        """A stored file's metadata and where its bytes are."""
        row = await self.info(media_id)
        path = self.store.path(row["sha256"])
        if not await asyncio.to_thread(path.is_file):
            raise ServiceError(404, "The file is no longer stored")
        return row, path

    async def thumbnail(self, media_id: str, width: int, height: int, method: str
                        ) -> tuple[Path, str]:
        """A thumbnail of an image, `scale`d to fit in width×height or `crop`ped to it: of the
        configured size nearest to that (`thumbnails.nearest`), made from the file's bytes
        (which decide whether it is a picture, not its declared type)."""
        if method not in THUMBNAIL_METHODS:
            raise ServiceError(400, "method must be scale or crop")
        if not (0 < width <= MAX_THUMBNAIL_SIDE and 0 < height <= MAX_THUMBNAIL_SIDE):
            raise ServiceError(400, f"width and height must be 1 to {MAX_THUMBNAIL_SIDE}")
        row = await self.info(media_id)
        if not row["content_type"].startswith("image/") or "svg" in row["content_type"]:
            raise ServiceError(400, "Only images have thumbnails")
        return await self.thumbnails.get(self.store.path(row["sha256"]), row["sha256"],
                                         width, height, method)

    # -- the bridge between MTP and Matrix ---------------------------------------------------

    async def store_bytes(self, uploader: str, data: bytes, name: str, quota: bool = True,
                          declared: str = "") -> MediaRow:
        """Keep bytes an MTP client sent; the same bytes, name and sender give the same row
        (a retried send_message, not counted again). Past the quota: 413, nothing kept
        (`quota=False`: what the server moves into the store itself, an old avatar). Its type
        is what the bytes are, else the `declared` one (MTP's `file_type`), if valid."""
        incoming, sha256, what = await asyncio.to_thread(self.store.stage, data)
        declared = declared.strip().lower() if _CONTENT_TYPE.fullmatch(declared) else ""
        kind = what.content_type or declared or OCTET_STREAM
        try:
            found = await self.engine.read(mediadb.same_file, sha256, uploader, name, kind)
            if found is not None:
                await asyncio.to_thread(incoming.place)
                return found
            if quota:  # on a reader first: a refusal costs the writer nothing
                (await self.engine.read(quotas.standing, self.settings, uploader, now())
                 ).require(len(data))
        except BaseException:
            await asyncio.to_thread(incoming.abort)
            raise
        row = MediaRow(media_id=new_media_id(), sha256=sha256, content_type=kind,
                       size=len(data), name=name, uploader=uploader, time_created=now(),
                       width=what.width, height=what.height)
        await asyncio.shield(self._commit(incoming, row, quota=quota))
        return row

    async def from_mtp(self, caller: Caller, content: dict[str, str], name: str = "",
                       declared: str = "") -> tuple[str, dict[str, Any]] | None:
        """An MTP message's first file, stored with its `name` and `declared` type (MTP's
        `file_name` and `file_type`): (media ID, the Matrix content of the message). None
        when it has no file in base64."""
        found = await asyncio.to_thread(self.first_file, content)
        if found is None:
            return None
        field, data = found
        row = await self.store_bytes(caller.uuid, data, name, declared=declared)
        return row["media_id"], self.matrix_content(field, row, content.get("text", ""))

    def first_file(self, content: dict[str, str]) -> tuple[str, bytes] | None:
        """An MTP message's first file field and its bytes; None when that field is not
        base64 (MTP keeps it as it is; Matrix reads which file it was), empty or too big."""
        field = next((field for field in FILE_TYPES if content.get(field)), None)
        if field is None:
            return None
        try:
            data = base64.b64decode(content[field], validate=True)
        except (binascii.Error, ValueError):
            return None
        if not data or len(data) > self.settings.max_upload_size:
            return None
        return field, data

    def put_file(self, content: dict[str, str], uploader: str) -> tuple[str, MediaRow] | None:
        """Blocking: an MTP message's first file written to the store, and the row that would
        describe it (not inserted: the caller inserts it, or uses an equal one already there,
        in its own transaction). Used by the import from the original."""
        found = self.first_file(content)
        if found is None:
            return None
        field, data = found
        sha256, size, what = self.store.put(data)
        return field, MediaRow(media_id=new_media_id(), sha256=sha256,
                               content_type=what.content_type or OCTET_STREAM, size=size,
                               name="", uploader=uploader, time_created=now(),
                               width=what.width, height=what.height)

    def matrix_content(self, field: str, row: MediaRow, text: str) -> dict[str, Any]:
        """The Matrix content of an MTP message whose file `field` is the stored `row`."""
        kind = row["content_type"]
        extension = kind.rpartition("/")[2].replace("jpeg", "jpg").replace("plain", "txt")
        name = row["name"] or DEFAULT_NAMES[field] + (
            f".{extension}" if "-" not in extension else "")
        info: dict[str, Any] = {"mimetype": kind, "size": row["size"]}
        if row["width"]:
            info.update(w=row["width"], h=row["height"])
        msgtype = FILE_TYPES[field]
        if kind.startswith("image/"):
            msgtype = "m.image"  # what the bytes are decides how Matrix clients show them
        elif msgtype == "m.image" or (kind != OCTET_STREAM and not kind.startswith(
                ("audio/", "video/"))):
            msgtype = "m.file"
        return {"msgtype": msgtype, "body": text or name, "filename": name,
                "url": self.mxc(row["media_id"]), "info": info}

    @staticmethod
    def file_of(matrix: dict[str, Any]) -> tuple[str, str]:
        """The name and type of a Matrix message's file ("" for what it does not say)."""
        if str(matrix.get("msgtype")) not in FIELD_OF:
            return "", ""
        info = matrix.get("info")
        kind = info.get("mimetype") if isinstance(info, dict) else None
        name = matrix.get("filename") or matrix.get("body")
        return (name[:255] if isinstance(name, str) else "",
                kind[:255] if isinstance(kind, str) else "")

    async def for_mtp(self, matrix: dict[str, Any]) -> tuple[dict[str, str], str]:
        """What MTP gets of a Matrix message: its text, and for a file of this server (an
        `m.image`, `m.file`, ...) the bytes in base64 in the matching `file_*` field, or,
        past `[MEDIA] MTP_INLINE_LIMIT`, a note with the file's name and size. Also the media
        ID the message refers to ("" for none)."""
        body = body_for_mtp(matrix)
        field = FIELD_OF.get(str(matrix.get("msgtype")))
        media_id = self.media_id_of(matrix.get("url")) if field else None
        if field is None or media_id is None:
            return {"text": body}, ""
        row = await self.engine.read(mediadb.by_id, media_id)
        if row is None or not row["sha256"]:
            return {"text": body}, ""
        filename = str(matrix.get("filename") or "") or body or row["name"]
        caption = body if body and body != filename else ""
        if row["size"] > self.settings.mtp_inline_limit:
            size = quotas.size_text(row["size"])
            note = f"📎 {filename or 'file'} ({size}): too large to show here; open it in a " \
                   f"Matrix client"
            return {"text": f"{caption}\n{note}" if caption else note}, media_id
        encoded = await asyncio.to_thread(self.store.read_base64, row["sha256"])
        return {"text": caption, field: encoded}, media_id

    async def purge(self, days: float) -> tuple[list[MediaRow], int]:
        """`manage.py media purge` in process: the rows and the number of files removed."""
        before = now() - int(days * 86400)
        rows = await self.engine.write(purge_rows, before)
        known = await self.engine.read(mediadb.all_hashes)
        return rows, await asyncio.to_thread(self.store.sweep, known, before)

def purge_rows(conn: Conn, before: int) -> list[MediaRow]:
    """Delete the rows of files made before `before` that nothing refers to; return them."""
    rows = mediadb.unreferenced(conn, before)
    mediadb.delete(conn, [row["media_id"] for row in rows])
    return rows
