"""MTP responses: the envelope every answer shares (`respond`, `error`), rendered off the event
loop when large."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

from mod.error import phrase
from mod.protocol.mtp.api import (
    PROTOCOL_REVISION,
    PROTOCOL_VERSION,
    DataOut,
    Errors,
    JsonapiOut,
    Response,
)


def _jsonapi() -> JsonapiOut:
    return JsonapiOut(version=PROTOCOL_VERSION, revision=PROTOCOL_REVISION)


JSONAPI = _jsonapi()  # never changed after this, so every response can share it


def respond(kind: str, code: int, detail: str = "", *, flow: Sequence[Any] | None = None,
            message: Sequence[Any] | None = None, user: Sequence[Any] | None = None,
            search: Any = None, with_data: bool = True) -> Response:
    stamp = int(time.time())
    data = None
    if with_data:
        fields: dict[str, Any] = {"time": stamp, "meta": None}
        if flow is not None:
            fields["flow"] = flow
        if message is not None:
            fields["message"] = message
        if user is not None:
            fields["user"] = user
        if search is not None:
            fields["search"] = search
        data = DataOut.model_validate(fields)
    # The envelope holds only values made here (the objects in `data` were validated above),
    # so it is assembled without validating it again.
    errors = Errors.model_construct(code=code, status=phrase(code), time=stamp,
                                    detail=detail or phrase(code))
    return Response.model_construct(type=kind, data=data, errors=errors, jsonapi=JSONAPI,
                                    meta=None)


# Responses holding more objects than this are built and serialised on a worker thread: a
# large get_update takes tens of milliseconds of CPU, which would hold up every connection.
LARGE_RESPONSE = 256


async def respond_off_loop(kind: str, code: int, *, always: bool = False,
                           **objects: Any) -> Response:
    """`respond`, rendered to its text on a worker thread when it is large (or `always`:
    messages found by a search may carry files of megabytes)."""
    lists = [items for items in objects.values() if isinstance(items, list | tuple)]
    if not always and sum(len(items) for items in lists) <= LARGE_RESPONSE:
        return respond(kind, code, **objects)

    def render() -> Response:
        response = respond(kind, code, **objects)
        response.dump()
        return response

    return await asyncio.to_thread(render)


def error(kind: str, code: int, detail: str, **objects: Any) -> Response:
    return respond(kind, code, detail, with_data=bool(objects), **objects)
