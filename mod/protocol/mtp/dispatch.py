"""MTP's dispatcher: hands each frame to the method that owns it, after the checks of
PROTOCOL.md."""

from __future__ import annotations

import json
import re
import time
from typing import Any, NamedTuple

from loguru import logger
from pydantic import ValidationError

from mod import metrics
from mod.config.validator import Protocol
from mod.error import ServiceError
from mod.protocol.mtp import methods
from mod.protocol.mtp.api import EXTENSIONS, GRANTED, AnswerMeta, Request, Response
from mod.protocol.mtp.responses import error
from mod.service import Caller, Service

_VERSION = re.compile(r"([0-9]{1,6})(?:\.([0-9]{1,6}))?")
_BAD_CHARACTER = re.compile("[\x00\ud800-\udfff]")


def _suspect(frame: str | bytes) -> bool:
    """Whether a frame may hold NUL or a lone surrogate. JSON carries them only as escapes
    (\\u0000, \\ud800 to \\udfff), so frames without "\\u0000" or "\\ud" need no search."""
    if isinstance(frame, bytes):
        return b"\\u0000" in frame or b"\\ud" in frame or b"\\uD" in frame
    return "\\u0000" in frame or "\\ud" in frame or "\\uD" in frame


def _version(text: str) -> tuple[int, int] | None:
    """(major, minor) of a version such as "1.0"; None unless it is ASCII digits."""
    found = _VERSION.fullmatch(text.strip())
    if found is None:
        return None
    return int(found.group(1)), int(found.group(2) or 0)


def _describe(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error["loc"]) or "request"
    return f"Invalid request: {where}: {error['msg']}"


def _bad_string_path(value: Any, path: str) -> str | None:
    """The dotted path of the first string (or key) holding NUL or a lone surrogate."""
    if isinstance(value, str):
        return path if _BAD_CHARACTER.search(value) else None
    if isinstance(value, dict):
        for key, item in value.items():
            where = f"{path}.{key}" if path else str(key)
            if _BAD_CHARACTER.search(key):
                return path or "request"
            found = _bad_string_path(item, where)
            if found:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = _bad_string_path(item, f"{path}.{index}" if path else str(index))
            if found:
                return found
    return None


def _printable(path: str) -> str:
    """A path safe to echo: any NUL or lone surrogate in it replaced."""
    return _BAD_CHARACTER.sub("\ufffd", path)


class Handled(NamedTuple):
    """A request's response, the caller it authenticated as, its `meta.push` wish, and the
    extensions granted when it asked for some."""

    response: Response
    caller: Caller | None = None
    push: bool | None = None
    extensions: frozenset[str] | None = None


class MTPController:
    """Checks and dispatches frames; one per server process."""

    def __init__(self, service: Service, protocol: Protocol) -> None:
        self.service = service
        low, high = _version(protocol.min_version), _version(protocol.max_version)
        assert low is not None and high is not None
        self.versions = (low, high)

    def parse(self, frame: str | bytes) -> Request | Response:
        """The request a frame holds, or the 415 answer saying why it holds none."""
        has_escape = _suspect(frame)
        if not has_escape:
            # The common case in one pass; any failure is explained by the careful path.
            try:
                return Request.model_validate_json(frame)
            except ValidationError:
                pass
        try:
            raw: Any = json.loads(frame)
        except (ValueError, RecursionError) as exc:
            detail = str(exc).splitlines()[0] if isinstance(exc, ValueError) else "too deep"
            return error("error", 415, f"The frame is not JSON: {detail}")
        if not isinstance(raw, dict):
            return error("error", 415, "The frame must hold a JSON object")
        kind = raw.get("type")
        echo = kind if isinstance(kind, str) and not _BAD_CHARACTER.search(kind) else "error"
        if has_escape:
            try:
                where = _bad_string_path(raw, "")
            except RecursionError:
                where = "request"
            if where:
                return error(echo, 415, f"Invalid request: {_printable(where)}: must be "
                                        "valid Unicode without NUL (\\u0000) characters "
                                        "or lone surrogates")
        try:
            return Request.model_validate(raw)
        except ValidationError as exc:
            return error(echo, 415, _describe(exc))

    def refuse(self, frame: str | bytes, code: int, detail: str) -> Response:
        """An error response to a frame that is not handled (e.g. over the rate limit). It
        still echoes the frame's `type`, as every response to a readable frame does."""
        try:
            raw: Any = json.loads(frame)
        except (ValueError, RecursionError):
            raw = None
        kind = raw.get("type") if isinstance(raw, dict) else None
        if not isinstance(kind, str) or len(kind) > 64 or _BAD_CHARACTER.search(kind):
            kind = "error"
        return error(kind, code, detail)

    async def handle(self, frame: str | bytes, address: str = "",
                     extensions: frozenset[str] = frozenset()) -> Handled:
        """The response to one frame, the caller it authenticated as, and its push wish.
        `address` is the client's, for the service's count of failed logins; `extensions`,
        those its connection has (a request that names others has those instead).

        Every frame is answered: a failure nobody foresaw is a 500 answer, not a closed
        connection."""
        try:
            request = self.parse(frame)
        except Exception:
            logger.exception("reading a frame failed")
            return Handled(self.refuse(frame, 500, "The server failed to read this request"))
        if isinstance(request, Response):
            metrics.mtp_answered("error", request.errors.code, 0.0)
            return Handled(request)
        asked = request.meta.extensions if request.meta is not None else None
        granted = extensions if asked is None else frozenset(asked).intersection(EXTENSIONS)
        started = time.perf_counter()
        GRANTED.set(granted)
        response, caller = await self._answer(request, address)
        method = request.type if request.type in methods.METHODS else "other"
        metrics.mtp_answered(method, response.errors.code, time.perf_counter() - started)
        if request.meta is None or caller is None:
            return Handled(response, caller)
        if asked is not None:
            response.meta = AnswerMeta(extensions=sorted(granted))
        return Handled(response, caller, request.meta.push,
                       None if asked is None else granted)

    async def _answer(self, request: Request, address: str
                      ) -> tuple[Response, Caller | None]:
        echo = request.type
        version = _version(request.jsonapi.version)
        low, high = self.versions
        if version is None or not low <= version <= high:
            return error(echo, 505, f"Protocol version {request.jsonapi.version} is not "
                         f"supported (supported: {low[0]}.{low[1]} to "
                         f"{high[0]}.{high[1]})"), None
        caller = None
        try:
            public = methods.PUBLIC.get(request.type)
            if public is not None:
                return await public(self.service, request, address)
            method = methods.AUTHENTICATED.get(request.type)
            if method is None:
                return error(echo, 405, f"Unknown method {request.type!r}"), None
            caller = await self._authenticate(request)
            response = await method(self.service, request, caller)
            if request.type == "delete_user" and response.errors.code == 200:
                return response, None  # the account is gone: nothing to bind the connection to
            return response, caller
        except ServiceError as exc:
            return error(echo, exc.code, exc.detail), caller
        except Exception:
            logger.exception("{} failed", request.type)
            return error(echo, 500, "The server failed to handle this request"), caller

    async def _authenticate(self, request: Request) -> Caller:
        users = request.data.user if request.data else None
        if not users or not users[0].uuid or not users[0].auth_id:
            raise ServiceError(401, "The request needs data.user[0].uuid and auth_id")
        return await self.service.accounts.authenticate(users[0].auth_id, users[0].uuid)
