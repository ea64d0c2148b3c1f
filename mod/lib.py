"""Password hashing, tokens and identifiers."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import secrets
import uuid

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()


def set_password_cost(time_cost: int, memory_kib: int) -> None:
    """Hash new passwords with these argon2id parameters ([SECURITY] PASSWORD_TIME_COST,
    PASSWORD_MEMORY_KIB); a hash made earlier is verified with its own."""
    global _hasher
    if (_hasher.time_cost, _hasher.memory_cost) != (time_cost, memory_kib):
        _hasher = PasswordHasher(time_cost=time_cost, memory_cost=memory_kib)


@functools.cache
def _dummy_hash(time_cost: int, memory_kib: int) -> str:
    """A valid hash of a random secret at this cost, verified against when a login is unknown
    so that the answer takes as long as for a known login (made on first need, not at
    import: a hash at the default cost takes a tenth of a second)."""
    return PasswordHasher(time_cost=time_cost, memory_cost=memory_kib).hash(
        secrets.token_urlsafe(16))


def new_uuid() -> str:
    """A random identifier: the 128-bit integer of a uuid4, in decimal."""
    return str(uuid.uuid4().int)


def new_token() -> str:
    """A random bearer token with 256 bits from the CSPRNG."""
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    """What the database keeps of a token: tokens are random, so a fast hash is enough."""
    return hashlib.sha256(token.encode()).hexdigest()


def hash_password(password: str) -> str:
    """Slow, salted argon2id hash. Blocks for ~100 ms: call it off the event loop."""
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """Whether `password` matches. An empty or destroyed hash never matches."""
    if not password_hash:
        _burn(password)
        return False
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def _burn(password: str) -> None:
    with contextlib.suppress(VerificationError, InvalidHashError):
        _hasher.verify(_dummy_hash(_hasher.time_cost, _hasher.memory_cost), password)


def verify_unknown(password: str) -> None:
    """Spend the time a real verification takes, for logins that do not exist."""
    _burn(password)
