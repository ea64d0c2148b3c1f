"""manage.py media: the media store's upkeep (files nothing refers to any more)."""

from __future__ import annotations

import time
from dataclasses import dataclass

from loguru import logger

from mod.cli.admin import require_tables
from mod.cli.common import Database
from mod.config.validator import Settings
from mod.db import media as mediadb
from mod.db.media import MediaRow
from mod.service.media import media_root, purge_rows
from mod.service.mediastore import Store


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
    store = Store(media_root(settings, database.engine), settings.media.max_image_pixels)
    files = database.run("sweep", lambda: store.sweep(known, before))
    logger.info("media purge with manage.py: {} rows, {} files", len(rows), files)
    return Purged(rows, files)
