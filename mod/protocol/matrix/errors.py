"""Matrix errors: the `M_*` codes, and the one place where a `ServiceError` becomes one."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from pydantic import ValidationError

from mod.error import Locked, OverLimit, ServiceError, Throttled, TooLong


class Code(StrEnum):
    FORBIDDEN = "M_FORBIDDEN"
    UNKNOWN_TOKEN = "M_UNKNOWN_TOKEN"
    MISSING_TOKEN = "M_MISSING_TOKEN"
    BAD_JSON = "M_BAD_JSON"
    DUPLICATE_ANNOTATION = "M_DUPLICATE_ANNOTATION"
    NOT_JSON = "M_NOT_JSON"
    NOT_FOUND = "M_NOT_FOUND"
    LIMIT_EXCEEDED = "M_LIMIT_EXCEEDED"
    CANNOT_OVERWRITE_MEDIA = "M_CANNOT_OVERWRITE_MEDIA"
    UNRECOGNIZED = "M_UNRECOGNIZED"
    UNKNOWN = "M_UNKNOWN"
    USER_IN_USE = "M_USER_IN_USE"
    INVALID_USERNAME = "M_INVALID_USERNAME"
    MISSING_PARAM = "M_MISSING_PARAM"
    INVALID_PARAM = "M_INVALID_PARAM"
    TOO_LARGE = "M_TOO_LARGE"
    GUEST_ACCESS_FORBIDDEN = "M_GUEST_ACCESS_FORBIDDEN"
    USER_DEACTIVATED = "M_USER_DEACTIVATED"


class MatrixError(Exception):
    """An error response: HTTP status, errcode, message, and any extra body keys."""

    def __init__(self, status: int, code: Code, error: str, **extra: Any) -> None:
        super().__init__(error)
        self.status = status
        self.code = code
        self.error = error
        self.extra = extra

    def body(self) -> dict[str, Any]:
        return {"errcode": str(self.code), "error": self.error, **self.extra}


Translation = Mapping[int, tuple[int, Code]]

# Service status -> (HTTP status, errcode), for every endpoint.
DEFAULT: Translation = {
    400: (400, Code.INVALID_PARAM),
    401: (401, Code.UNKNOWN_TOKEN),
    403: (403, Code.FORBIDDEN),
    404: (404, Code.NOT_FOUND),
    409: (409, Code.UNKNOWN),
    413: (413, Code.TOO_LARGE),
    415: (400, Code.BAD_JSON),
    429: (429, Code.LIMIT_EXCEEDED),
    503: (503, Code.UNKNOWN),
}

# Endpoints where the service's answer means something else in Matrix terms.
LOGIN: Translation = {401: (403, Code.FORBIDDEN)}
REGISTER: Translation = {409: (400, Code.USER_IN_USE)}
UPLOAD_TO: Translation = {409: (409, Code.CANNOT_OVERWRITE_MEDIA)}
REACT: Translation = {409: (400, Code.DUPLICATE_ANNOTATION)}


def from_service(exc: ServiceError, translation: Translation | None = None) -> MatrixError:
    if isinstance(exc, Locked):
        return MatrixError(403, Code.USER_DEACTIVATED, exc.detail)
    if isinstance(exc, Throttled):
        return MatrixError(429, Code.LIMIT_EXCEEDED, exc.detail,
                           retry_after_ms=exc.retry_after * 1000)
    if isinstance(exc, TooLong):
        return MatrixError(400, Code.TOO_LARGE, exc.detail)
    if isinstance(exc, OverLimit):
        return MatrixError(exc.code, Code.LIMIT_EXCEEDED, exc.detail)
    status, code = (translation or {}).get(exc.code) or DEFAULT.get(exc.code) or (
        500, Code.UNKNOWN)
    extra: dict[str, Any] = {"soft_logout": False} if code is Code.UNKNOWN_TOKEN else {}
    detail = exc.detail if status < 500 or exc.code >= 500 else "Internal server error"
    return MatrixError(status, code, detail, **extra)


def from_validation(exc: ValidationError) -> MatrixError:
    """A body whose fields are missing or of the wrong type."""
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error["loc"]) or "body"
    if error["type"] == "missing":
        return MatrixError(400, Code.MISSING_PARAM, f"Missing field: {where}")
    return MatrixError(400, Code.BAD_JSON, f"Invalid field {where}: {error['msg']}")


def missing_token() -> MatrixError:
    return MatrixError(401, Code.MISSING_TOKEN, "Missing access token")


def unrecognized(method: str, path: str, allowed: bool = False) -> MatrixError:
    if allowed:
        return MatrixError(405, Code.UNRECOGNIZED, f"{method} is not allowed on {path}")
    return MatrixError(404, Code.UNRECOGNIZED, f"Unrecognized request: {method} {path}")
