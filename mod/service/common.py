"""What every area of the service shares: the caller, committed results, retry keys."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import Generic, TypeVar

from mod import lib
from mod.db import dbhandler as db
from mod.db.engine import Conn
from mod.service.records import User

T = TypeVar("T")

# How long a retried request (MTP send_message, a Matrix transaction ID) returns what its
# first run committed instead of doing it again.
RETRY_WINDOW = 24 * 3600


def now() -> int:
    return int(time.time())


@dataclass(slots=True, frozen=True)
class Caller:
    """An authenticated user, as a request's credentials identify them."""

    uuid: str
    token_hash: str
    is_superuser: bool
    device: str = ""


@dataclass(slots=True, frozen=True)
class Credentials:
    """What a successful registration or login hands back to the client."""

    user: User
    token: str
    token_ttl: int
    device: str = ""

    @property
    def caller(self) -> Caller:
        return Caller(self.user.uuid, lib.token_hash(self.token), self.user.is_superuser,
                      self.device)


@dataclass(slots=True, frozen=True)
class Committed(Generic[T]):
    """What a write committed, and the change-log position of its last change (0: none)."""

    value: T
    position: int


def logged_since(conn: Conn, mark: int) -> int:
    """The position of the last change a write job logged after `len(conn.changes)` was
    `mark`; 0 when it logged none."""
    return conn.changes[-1].position if len(conn.changes) > mark else 0


def retry_key(*parts: str) -> str:
    """The key a retried request is known by: a hash of its parts, each length-prefixed so
    that no two different requests give the same key."""
    text = "".join(f"{len(part)}:{part}" for part in parts)
    return hashlib.sha256(text.encode()).hexdigest()


def committed_before(conn: Conn, key: str | None, stamp: int) -> int | None:
    """The change-log position a retried write (by its key) committed the first time, within
    RETRY_WINDOW; None for a first run."""
    if key is None:
        return None
    earlier = db.txn_result(conn, key, stamp - RETRY_WINDOW)
    return None if earlier is None else int(earlier)

