"""The media store's files: named by the SHA-256 of their bytes, so a file sent twice is
kept once, under `[MEDIA] PATH` (files/ab/abcd..., thumbnails in thumbs/, uploads in
progress in tmp/). Every file appears whole or not at all: it is written to a temporary
file and renamed into place, so several processes share one directory safely.

Everything here blocks (disk, Pillow): the service runs it on worker threads.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from PIL import Image, UnidentifiedImageError

from mod.error import ServiceError
from mod.imaging import open_safe

# The start of files Pillow is never asked to read (mod.imaging.SAFE_FORMATS), and their type.
MAGIC: tuple[tuple[int, bytes, str], ...] = (
    (0, b"%!PS", "application/postscript"),
    (0, b"\xc5\xd0\xd3\xc6", "application/postscript"),
    (0, b"%PDF-", "application/pdf"),
    (0, b"PK\x03\x04", "application/zip"),
    (0, b"\x1f\x8b", "application/gzip"),
    (0, b"OggS", "audio/ogg"),
    (0, b"ID3", "audio/mpeg"),
    (0, b"\xff\xfb", "audio/mpeg"),
    (0, b"\xff\xf3", "audio/mpeg"),
    (0, b"fLaC", "audio/flac"),
    (0, b"\x1a\x45\xdf\xa3", "video/webm"),
    (4, b"ftypM4A", "audio/mp4"),
    (4, b"ftyp", "video/mp4"),
    (8, b"WAVE", "audio/wav"),
    (8, b"AVI ", "video/x-msvideo"),
)
THUMBNAIL_METHODS = ("scale", "crop")
MAX_THUMBNAIL_SIDE = 2048


@dataclass(frozen=True, slots=True)
class Sniffed:
    content_type: str  # "" when not recognised
    width: int = 0
    height: int = 0


def sniff(head: bytes, path: Path | None = None) -> Sniffed:
    """What a file is, from its bytes: a picture of a safe format (with its size; only its
    header is read), else a type MAGIC knows."""
    try:
        with open_safe(path if path is not None else io.BytesIO(head)) as image:
            mime = Image.MIME.get(image.format or "", "")
            if mime:
                return Sniffed(mime, image.width, image.height)
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        pass
    for offset, magic, mime in MAGIC:
        if head[offset:offset + len(magic)] == magic:
            return Sniffed(mime)
    return Sniffed("")


class Incoming:
    """A file being written: hashed and counted as it comes, in a temporary file."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.temp = store.root / "tmp" / f"{os.getpid()}-{secrets.token_hex(8)}"
        self.temp.parent.mkdir(parents=True, exist_ok=True)
        self.file: IO[bytes] = self.temp.open("wb")
        self.hash = hashlib.sha256()
        self.size = 0
        self.head = b""

    def write(self, chunk: bytes) -> None:
        self.hash.update(chunk)
        self.size += len(chunk)
        if len(self.head) < 4096:
            self.head += chunk[:4096 - len(self.head)]
        self.file.write(chunk)

    def finish(self) -> tuple[str, Sniffed]:
        """Put the file in place; its hash and what it is."""
        try:
            digest, what = self.seal()
            self.place()
        finally:
            self.abort()
        return digest, what

    def seal(self) -> tuple[str, Sniffed]:
        """The whole file on disk, still in tmp/: its hash and what it is. `place` puts it
        where its hash names it, `abort` drops it (an upload refused once its size is known)."""
        self.file.flush()
        os.fsync(self.file.fileno())
        self.file.close()
        return self.hash.hexdigest(), sniff(self.head, self.temp)

    def place(self) -> None:
        """Rename a sealed file to its hash's name, or drop it if that name exists."""
        target = self.store.path(self.hash.hexdigest())
        try:
            if target.exists():
                os.utime(target)  # freshly used: a purge running now keeps it
                self.temp.unlink()
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(self.temp, target)
        finally:
            self.abort()

    def abort(self) -> None:
        with contextlib.suppress(OSError):
            self.file.close()
        self.temp.unlink(missing_ok=True)


class Store:
    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, sha256: str) -> Path:
        return self.root / "files" / sha256[:2] / sha256

    def incoming(self) -> Incoming:
        return Incoming(self)

    def stage(self, data: bytes) -> tuple[Incoming, str, Sniffed]:
        """Bytes held in memory written to tmp/ and sealed: the upload, its hash and what it
        is; the caller `place`s it once it may be kept, or `abort`s it."""
        incoming = self.incoming()
        try:
            incoming.write(data)
            return (incoming, *incoming.seal())
        except BaseException:
            incoming.abort()
            raise

    def put(self, data: bytes) -> tuple[str, int, Sniffed]:
        """Store bytes held in memory (an MTP file); (hash, size, what it is)."""
        incoming = self.incoming()
        try:
            incoming.write(data)
        except BaseException:
            incoming.abort()
            raise
        digest, what = incoming.finish()
        return digest, len(data), what

    def read(self, sha256: str) -> bytes:
        try:
            return self.path(sha256).read_bytes()
        except FileNotFoundError:
            raise ServiceError(404, "The file is no longer stored") from None

    def read_base64(self, sha256: str) -> str:
        """A stored file in MTP's string form."""
        return base64.b64encode(self.read(sha256)).decode()

    def remove(self, sha256: str, unused_since: float) -> bool:
        """Delete a file and its thumbnails, unless it was stored again after `unused_since`
        (an upload of the same bytes racing the purge)."""
        target = self.path(sha256)
        try:
            if target.stat().st_mtime >= unused_since:
                return False
            target.unlink()
        except FileNotFoundError:
            return False
        for thumb in (self.root / "thumbs" / sha256[:2]).glob(f"{sha256}-*"):
            thumb.unlink(missing_ok=True)
        return True

    def sweep(self, known: set[str], unused_since: float) -> int:
        """Remove every file no row names (`known`: the hashes rows name) stored before
        `unused_since`: those of purged rows, and those whose row was never written (a
        refused MTP send, a database write that failed after the file reached the disk).
        Also temporary files of uploads that died. How many stored files went."""
        removed = 0
        for path in (self.root / "files").glob("*/*"):
            if path.name not in known and self.remove(path.name, unused_since):
                removed += 1
        self.clean_temp(unused_since)
        return removed

    def clean_temp(self, older_than: float) -> int:
        """Remove temporary files left by processes that died mid-upload."""
        removed = 0
        for temp in (self.root / "tmp").glob("*"):
            with contextlib.suppress(OSError):
                if temp.stat().st_mtime < older_than:
                    temp.unlink()
                    removed += 1
        return removed
