"""Status codes and reason phrases shared by both protocols."""

from __future__ import annotations

import functools
import math
from http import HTTPStatus

PROTOCOL_PHRASES: dict[int, str] = {
    499: "Client Closed Request",
    505: "Version Not Supported",
    520: "Unknown Error",
    526: "Invalid SSL Certificate",
}


@functools.lru_cache(maxsize=64)
def phrase(code: int) -> str:
    """The reason phrase for a status code, as PROTOCOL.md spells it."""
    if code in PROTOCOL_PHRASES:
        return PROTOCOL_PHRASES[code]
    try:
        return HTTPStatus(code).phrase
    except ValueError:
        return PROTOCOL_PHRASES[520]


class ServiceError(Exception):
    """A request that cannot be carried out; rendered by each protocol in its own way."""

    def __init__(self, code: int, detail: str, payload: object = None) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.payload = payload

    def __repr__(self) -> str:
        return f"ServiceError({self.code}, {self.detail!r})"


class Unavailable(ServiceError):
    """The database cannot be reached right now."""

    def __init__(self, detail: str = "The database is unavailable, try again later") -> None:
        super().__init__(503, detail)


class Locked(ServiceError):
    """The account is locked by an operator: MTP answers 401, Matrix M_USER_DEACTIVATED."""

    def __init__(self) -> None:
        super().__init__(401, "This account is locked")


class Throttled(ServiceError):
    """Too many attempts: 429, with the whole seconds to wait before trying again."""

    def __init__(self, retry_after: float, what: str) -> None:
        seconds = max(1, math.ceil(retry_after))
        super().__init__(429, f"{what}; try again in {seconds} s")
        self.retry_after = seconds


class TokenRefused(ServiceError):
    """A registration token that is wrong, used up or expired: 403. `unknown`: never issued
    (a guess, counted against the client's address)."""

    def __init__(self, unknown: bool) -> None:
        super().__init__(403, "The registration token is wrong, used up or expired")
        self.unknown = unknown


class TooLong(ServiceError):
    """A client's string or key material past its bound (docs/BOUNDS.md): 400, Matrix
    M_TOO_LARGE."""

    def __init__(self, detail: str) -> None:
        super().__init__(400, detail)


class OverLimit(ServiceError):
    """A count past its bound (docs/BOUNDS.md), such as one-time keys or waiting to-device
    messages: `code` (400 or 429), Matrix M_LIMIT_EXCEEDED."""
