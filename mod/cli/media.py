"""manage.py media: the media store's upkeep (files nothing refers to any more) and users'
media quotas (an operator's quota for one user, in `media_quotas`)."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

from loguru import logger

from mod.cli.admin import require_tables
from mod.cli.common import CliError, Database
from mod.cli.moderation import user
from mod.config.validator import Settings
from mod.db import media as mediadb
from mod.db.engine import Conn
from mod.db.media import MediaRow
from mod.service import quota as quotas
from mod.service.media import media_root, purge_rows
from mod.service.mediastore import Store

DEFAULT = "default"
UNITS = {"": 1, "b": 1, "k": 1024, "kib": 1024, "m": 1024 ** 2, "mib": 1024 ** 2,
         "g": 1024 ** 3, "gib": 1024 ** 3, "t": 1024 ** 4, "tib": 1024 ** 4}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$")
LIMIT = 2 ** 62  # what a BIGINT column holds, with room to add to it


@dataclass(slots=True)
class Purged:
    rows: list[MediaRow]
    files: int

    @property
    def size(self) -> int:
        return sum(row["size"] for row in self.rows)


def purge(database: Database, settings: Settings, days: float) -> Purged:
    """Remove the files (and rows) that no message or avatar refers to, made more than
    `days` ago, and files older than that no row names. A file stored again meanwhile (the
    same bytes uploaded anew) stays."""
    require_tables(database)
    before = int(time.time() - days * 86400)
    rows = database.write(purge_rows, before)
    known = database.read(mediadb.all_hashes)
    store = Store(media_root(settings, database.engine))
    files = database.run("sweep", lambda: store.sweep(known, before))
    logger.info("media purge with manage.py: {} rows, {} files", len(rows), files)
    return Purged(rows, files)


def parse_size(text: str) -> int | None:
    """A quota's bytes as an operator writes them: 1073741824, 500MiB, 2GiB, 1.5G, 0
    (unlimited); "default" (None): the configured default."""
    if text.strip().lower() == DEFAULT:
        return None
    found = _SIZE.match(text.lower())
    if found is None or found.group(2) not in UNITS:
        raise CliError(f"{text!r} is not a size: write bytes, or a number with KiB, MiB, GiB "
                       f"or TiB (2GiB, 500MiB), 0 for unlimited, or default")
    size = int(float(found.group(1)) * UNITS[found.group(2)])
    if size > LIMIT:
        raise CliError(f"{text!r} is more than this server can count")
    return size


def parse_count(text: str) -> int | None:
    """A quota's number of files: a whole number (0: unlimited) or "default" (None)."""
    if text.strip().lower() == DEFAULT:
        return None
    if not text.strip().isdigit() or int(text) > LIMIT:
        raise CliError(f"{text!r} is not a number of files: a whole number, 0 for unlimited, "
                       f"or default")
    return int(text)


@dataclass(frozen=True, slots=True)
class QuotaView:
    login: str
    quota: quotas.Quota
    usage: quotas.Usage


def _view(conn: Conn, settings: Settings, user_uuid: str) -> tuple[quotas.Quota, quotas.Usage]:
    standing = quotas.standing(conn, settings.media, user_uuid, int(time.time()))
    return standing.quota, standing.usage


def show_quota(database: Database, settings: Settings, login: str) -> QuotaView:
    """A user's media usage and quota."""
    account = user(database, login)
    quota, usage = database.read(_view, settings, account.uuid)
    return QuotaView(login, quota, usage)


def set_quota(database: Database, settings: Settings, login: str, max_bytes: str | None,
              max_files: str | None, default: bool) -> QuotaView:
    """Give a user a media quota of their own (`max_bytes`/`max_files` as the operator wrote
    them; one not given stays as it was), or, with `default`, the configured one again.
    Running servers apply it at the user's next upload (they read it in each upload's
    write)."""
    if default and (max_bytes is not None or max_files is not None):
        raise CliError("--default takes the user back to the configured quota: give it "
                       "without --bytes or --files")
    account = user(database, login)
    if default:
        database.write(quotas.drop_quota, account.uuid)
        logger.info("media quota reset to the default with manage.py: {}", account.uuid)
        return show_quota(database, settings, login)
    new_bytes = None if max_bytes is None else parse_size(max_bytes)
    new_files = None if max_files is None else parse_count(max_files)
    database.write(quotas.set_quota, account.uuid, max_bytes is not None, new_bytes,
                   max_files is not None, new_files)
    view = show_quota(database, settings, login)
    logger.info("media quota set with manage.py: {} ({} bytes, {} files)", account.uuid,
                view.quota.max_bytes, view.quota.max_files)
    return view


def describe(view: QuotaView) -> list[str]:
    """What `manage.py media quota` prints about a user."""
    quota, usage = view.quota, view.usage

    def limit(value: int, text: str, own: bool) -> str:
        shown = "unlimited" if value == 0 else text
        return f"{shown} ({'own' if own else 'default'})"

    return [f"User {view.login!r}:",
            f"  bytes: {usage.bytes} ({quotas.size_text(usage.bytes)}) of "
            + limit(quota.max_bytes, f"{quota.max_bytes} ({quotas.size_text(quota.max_bytes)})",
                    quota.own_bytes),
            f"  files: {usage.files} of " + limit(quota.max_files, str(quota.max_files),
                                                  quota.own_files)]
