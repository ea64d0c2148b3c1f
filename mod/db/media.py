"""Queries of the media store: a row per uploaded file (`media`) and what refers to it
(`media_refs`). The bytes live on disk (`mod.service.mediastore`); functions take an open
`Conn` and return plain data."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypedDict

from sqlobject.sqlbuilder import AND, IN, NOTIN, OR, Delete, Insert, Select, Update, func

from mod.db.engine import Conn
from mod.db.models import Media, MediaQuota, MediaRef

MESSAGE = "message"
AVATAR = "avatar"


class MediaRow(TypedDict):
    media_id: str
    sha256: str  # "" while an asynchronous upload waits for its bytes
    content_type: str
    size: int
    name: str
    uploader: str
    time_created: int
    width: int
    height: int


_COLUMNS = (Media.q.media_id, Media.q.sha256, Media.q.content_type, Media.q.size, Media.q.name,
            Media.q.uploader, Media.q.time_created, Media.q.width, Media.q.height)


def _row(row: Sequence[Any]) -> MediaRow:
    return MediaRow(media_id=str(row[0]), sha256=str(row[1]), content_type=str(row[2]),
                    size=int(row[3]), name=str(row[4]), uploader=str(row[5]),
                    time_created=int(row[6]), width=int(row[7]), height=int(row[8]))


def insert(conn: Conn, media: MediaRow) -> None:
    conn.execute(Insert(Media.sqlmeta.table, values=dict(media)))


def by_id(conn: Conn, media_id: str) -> MediaRow | None:
    row = conn.one(Select(_COLUMNS, where=Media.q.media_id == media_id))
    return _row(row) if row else None


def same_file(conn: Conn, sha256: str, uploader: str, name: str, content_type: str
              ) -> MediaRow | None:
    """An earlier row of the same bytes, uploader, name and type (a retried send)."""
    row = conn.one(Select(_COLUMNS, where=AND(
        Media.q.sha256 == sha256, Media.q.uploader == uploader, Media.q.name == name,
        Media.q.content_type == content_type), limit=1))
    return _row(row) if row else None


def fill(conn: Conn, media: MediaRow) -> bool:
    """Give a pending row (asynchronous upload) its file; False when it has one already."""
    values = {key: value for key, value in media.items()
              if key not in ("media_id", "uploader", "time_created")}
    return conn.execute(Update(Media.sqlmeta.table, values=values, where=AND(
        Media.q.media_id == media["media_id"], Media.q.sha256 == ""))) == 1


def pending_count(conn: Conn, uploader: str, since: int) -> int:
    """Asynchronous uploads of a user made since `since` still waiting for their bytes."""
    row = conn.one(Select(func.COUNT(Media.q.id), where=AND(
        Media.q.uploader == uploader, Media.q.sha256 == "", Media.q.time_created >= since)))
    return int(row[0]) if row else 0


def drop_expired_pending(conn: Conn, before: int) -> int:
    """Delete asynchronous uploads made before `before` that never got their bytes."""
    return int(conn.execute(Delete(Media.sqlmeta.table, where=AND(
        Media.q.sha256 == "", Media.q.time_created < before))))


def all_hashes(conn: Conn) -> set[str]:
    """Every file hash a row names (what a purge must not remove from disk)."""
    rows = conn.all(Select(Media.q.sha256, where=Media.q.sha256 != "", distinct=True))
    return {str(row[0]) for row in rows}


def add_ref(conn: Conn, media_id: str, kind: str, owner: str) -> None:
    conn.execute(Insert(MediaRef.sqlmeta.table,
                        values={"media_id": media_id, "kind": kind, "owner": owner}))


def drop_refs(conn: Conn, kind: str, owner: str) -> None:
    conn.execute(Delete(MediaRef.sqlmeta.table,
                        where=AND(MediaRef.q.kind == kind, MediaRef.q.owner == owner)))


def ref_of(conn: Conn, kind: str, owner: str) -> str | None:
    """The media a message or avatar refers to (the latest)."""
    row = conn.one(Select(MediaRef.q.media_id, where=AND(
        MediaRef.q.kind == kind, MediaRef.q.owner == owner), orderBy=-MediaRef.q.id, limit=1))
    return str(row[0]) if row else None


def avatars(conn: Conn, owners: Sequence[str]) -> dict[str, str]:
    """user uuid -> avatar media ID, for those of these users who have one."""
    if not owners:
        return {}
    rows = conn.all(Select((MediaRef.q.owner, MediaRef.q.media_id), where=AND(
        MediaRef.q.kind == AVATAR, IN(MediaRef.q.owner, list(owners))), orderBy=MediaRef.q.id))
    return {str(row[0]): str(row[1]) for row in rows}


def unreferenced(conn: Conn, before: int) -> list[MediaRow]:
    """Rows made before `before` that no message or avatar refers to."""
    rows = conn.all(Select(_COLUMNS, where=AND(
        Media.q.time_created < before,
        NOTIN(Media.q.media_id, Select(MediaRef.q.media_id))), orderBy=Media.q.id))
    return [_row(row) for row in rows]


def delete(conn: Conn, media_ids: Sequence[str]) -> int:
    if not media_ids:
        return 0
    return conn.execute(Delete(Media.sqlmeta.table, where=IN(Media.q.media_id,
                                                             list(media_ids))))


# -- quotas ---------------------------------------------------------------------------------


def usage(conn: Conn, uploader: str, pending_since: int, exclude: str = "") -> tuple[int, int]:
    """(bytes, files) a user's media take: every stored upload, each row counted (the same
    bytes uploaded twice count twice), and asynchronous uploads made since `pending_since`
    still waiting for their bytes (a file each, no bytes yet); without the row `exclude`."""
    where = AND(Media.q.uploader == uploader,
                OR(Media.q.sha256 != "", Media.q.time_created >= pending_since))
    if exclude:
        where = AND(where, Media.q.media_id != exclude)
    row = conn.one(Select((func.COALESCE(func.SUM(Media.q.size), 0), func.COUNT(Media.q.id)),
                          where=where))
    return (int(row[0]), int(row[1])) if row else (0, 0)


def quota_of(conn: Conn, user_uuid: str) -> tuple[int | None, int | None] | None:
    """A user's own quota (max bytes, max files; None: that one is the default), or None
    when the operator set none."""
    row = conn.one(Select((MediaQuota.q.max_bytes, MediaQuota.q.max_files),
                          where=MediaQuota.q.user_uuid == user_uuid))
    if row is None:
        return None
    return (None if row[0] is None else int(row[0]), None if row[1] is None else int(row[1]))


def set_quota(conn: Conn, user_uuid: str, max_bytes: int | None, max_files: int | None
              ) -> None:
    """Give a user a quota of their own (None: that limit is the configured default)."""
    values = {"max_bytes": max_bytes, "max_files": max_files}
    if not conn.execute(Update(MediaQuota.sqlmeta.table, values=values,
                               where=MediaQuota.q.user_uuid == user_uuid)):
        conn.execute(Insert(MediaQuota.sqlmeta.table,
                            values={"user_uuid": user_uuid, **values}))


def drop_quota(conn: Conn, user_uuid: str) -> bool:
    """The user is back on the configured quota; False when they had none of their own."""
    return bool(conn.execute(Delete(MediaQuota.sqlmeta.table,
                                    where=MediaQuota.q.user_uuid == user_uuid)))


def serialize_uploads(conn: Conn) -> None:
    """On PostgreSQL, wait for other processes' writers until this transaction ends, so a
    quota check and the insert it guards cannot interleave with another process's. It is
    the change log's lock (`dbhandler.log_change`), which every writer may take anyway: one
    lock, so no two writers can each hold one the other waits for. On SQLite the one writer
    per database (BEGIN IMMEDIATE) serializes them already."""
    if conn.postgres:
        conn.execute("SELECT pg_advisory_xact_lock(7341)")
