"""Media quotas: how many bytes and files a user's media may take (`[MEDIA] QUOTA_BYTES`,
`QUOTA_FILES`, or the user's own quota an operator set in `media_quotas`; 0 is unlimited).

What counts is what the user uploaded: each `media` row of theirs with its size (the same
bytes uploaded twice count twice, though the store keeps them once), and each asynchronous
upload still waiting for its bytes as a file of no bytes. A file past the quota is refused
with 413 before it is stored: `check` runs in the writer job that inserts the row, so
concurrent uploads cannot all pass it.
"""

from __future__ import annotations

from dataclasses import dataclass

from mod.config.validator import Media as MediaSettings
from mod.db import media as mediadb
from mod.db.engine import Conn
from mod.db.media import MediaRow
from mod.error import ServiceError


@dataclass(frozen=True, slots=True)
class Quota:
    max_bytes: int  # 0: unlimited
    max_files: int  # 0: unlimited
    own_bytes: bool = False  # set by an operator for this user, not the configured default
    own_files: bool = False


@dataclass(frozen=True, slots=True)
class Usage:
    bytes: int
    files: int


def size_text(size: int) -> str:
    """Bytes as a person reads them: 512 bytes, 1.5 KiB, 20.0 MiB, 1.0 GiB."""
    if size < 1024:
        return f"{size} bytes"
    value = size / 1024
    for unit in ("KiB", "MiB"):
        if value < 1024:
            return f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"


def quota_of(conn: Conn, settings: MediaSettings, user_uuid: str) -> Quota:
    """The user's quota: their own where an operator set one, else the configured one."""
    own = mediadb.quota_of(conn, user_uuid)
    max_bytes, max_files = own if own is not None else (None, None)
    return Quota(settings.quota_bytes if max_bytes is None else max_bytes,
                 settings.quota_files if max_files is None else max_files,
                 max_bytes is not None, max_files is not None)


def usage_of(conn: Conn, settings: MediaSettings, user_uuid: str, now: int,
             exclude: str = "") -> Usage:
    used, files = mediadb.usage(conn, user_uuid, now - settings.unused_expires, exclude)
    return Usage(used, files)


def refuse(quota: Quota, usage: Usage, size: int) -> ServiceError | None:
    """Why one more file of `size` bytes does not fit (413), or None when it does. Every
    file takes at least a byte: a user at the quota's bytes stores no more files."""
    if quota.max_files and usage.files + 1 > quota.max_files:
        return ServiceError(413, f"Your media quota is {quota.max_files} files and you have "
                                 f"{usage.files}; ask the server's operator for more")
    if quota.max_bytes and usage.bytes + max(size, 1) > quota.max_bytes:
        what = f"This file ({size_text(size)})" if size else "Another file"
        return ServiceError(413, f"{what} does not fit in your media quota of "
                                 f"{size_text(quota.max_bytes)} ({size_text(usage.bytes)} "
                                 f"used); ask the server's operator for more")
    return None


@dataclass(frozen=True, slots=True)
class Standing:
    """A user's quota and usage, read before an upload streams in: to refuse one whose
    declared size does not fit before its bytes arrive, and to stop reading one as soon as
    it passes what is left. The writer job's `check` still decides."""

    quota: Quota
    usage: Usage

    def left(self) -> int | None:
        """Bytes the user may still store; None: unlimited."""
        return max(0, self.quota.max_bytes - self.usage.bytes) if self.quota.max_bytes else None

    def refuse(self, size: int) -> ServiceError | None:
        return refuse(self.quota, self.usage, size)

    def require(self, size: int) -> None:
        """413 unless one more file of `size` bytes fits."""
        refused = self.refuse(size)
        if refused is not None:
            raise refused


def standing(conn: Conn, settings: MediaSettings, user_uuid: str, now: int,
             exclude: str = "") -> Standing:
    return Standing(quota_of(conn, settings, user_uuid),
                    usage_of(conn, settings, user_uuid, now, exclude))


def check(conn: Conn, settings: MediaSettings, user_uuid: str, size: int, now: int,
          exclude: str = "") -> None:
    """In the writer job that stores the row: 413 unless one more file of `size` bytes fits
    (`exclude`: the pending row being filled, counted as the new file instead)."""
    mediadb.serialize_uploads(conn)
    standing(conn, settings, user_uuid, now, exclude).require(size)


# -- the writer jobs that store a media row under the quota ----------------------------------


def create_pending(conn: Conn, row: MediaRow, settings: MediaSettings) -> None:
    """An asynchronous upload's row (/create): at most `MAX_PENDING_UPLOADS` waiting, and a
    file of the quota."""
    cap, stamp = settings.max_pending_uploads, row["time_created"]
    if mediadb.pending_count(conn, row["uploader"], stamp - settings.unused_expires) >= cap:
        raise ServiceError(429, f"You have {cap} uploads waiting for their files; upload "
                                f"those or wait for them to expire")
    check(conn, settings, row["uploader"], 0, stamp)
    mediadb.insert(conn, row)


def insert(conn: Conn, row: MediaRow, settings: MediaSettings, quota: bool = True) -> None:
    if quota:
        check(conn, settings, row["uploader"], row["size"], row["time_created"])
    mediadb.insert(conn, row)


def fill(conn: Conn, row: MediaRow, settings: MediaSettings) -> bool:
    """A pending row given its file (False: it had one); the row counts as the new file."""
    check(conn, settings, row["uploader"], row["size"], row["time_created"],
          exclude=row["media_id"])
    return mediadb.fill(conn, row)


def drop_quota(conn: Conn, user_uuid: str) -> None:
    """The operator takes a user back to the configured quota."""
    mediadb.drop_quota(conn, user_uuid)


def set_quota(conn: Conn, user_uuid: str, set_bytes: bool, max_bytes: int | None,
              set_files: bool, max_files: int | None) -> None:
    """The operator gives a user a quota of their own: bytes, files or both (one not set
    stays as it was; neither left: the configured quota again)."""
    old_bytes, old_files = mediadb.quota_of(conn, user_uuid) or (None, None)
    new_bytes = max_bytes if set_bytes else old_bytes
    new_files = max_files if set_files else old_files
    if new_bytes is None and new_files is None:
        mediadb.drop_quota(conn, user_uuid)
    else:
        mediadb.set_quota(conn, user_uuid, new_bytes, new_files)
