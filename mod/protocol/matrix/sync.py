"""Matrix `/sync` and filters.

`next_batch` is the change-log position the batch covers (`s<position>`). Each syncing user
has a stream on the hub, like an MTP connection (`streams.UserStream`): an incremental sync
takes its batch from it when it can (no database round trip), and one with nothing for the
user waits on it, so a change that concerns the user — whichever protocol or process made
it — ends the wait at once, and changes that do not concern them cost nothing.

Filters are not stored: a filter ID is the filter itself, URL-safe base64 of its JSON, so
any process reads it back. Of a filter, the room timeline `limit` is honoured.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import dataclasses
import functools
import json

from starlette.responses import JSONResponse

from mod import content, metrics
from mod.protocol.matrix import api, ids, sidelines, sync_keys, views
from mod.protocol.matrix.api import Filter, FilterId, SyncReply
from mod.protocol.matrix.errors import Code, MatrixError
from mod.protocol.matrix.events import token_digest
from mod.protocol.matrix.routing import Call, read_json, validate
from mod.protocol.matrix.streams import UserStream

DEFAULT_LIMIT = 10
MAX_LIMIT = 500
MAX_FILTER = 8192


def _filter(value: str | None) -> Filter:
    if not value:
        return Filter()
    text = value if value.startswith("{") else _decode_filter_id(value)
    return validate(Filter, read_json(text, "filter"))


def _decode_filter_id(filter_id: str) -> str:
    try:
        return base64.urlsafe_b64decode(filter_id + "=" * (-len(filter_id) % 4)).decode()
    except (binascii.Error, ValueError):
        raise MatrixError(400, Code.INVALID_PARAM, "Unknown filter ID") from None


def _timeline_limit(value: Filter) -> int:
    timeline = value.room.timeline if value.room is not None else None
    limit = timeline.limit if timeline is not None else None
    return DEFAULT_LIMIT if limit is None else min(limit, MAX_LIMIT)


@functools.lru_cache(maxsize=256)
def _limit_of(value: str | None) -> int:
    """The timeline limit of a filter (or filter ID): a client sends the same one with every
    sync, so it is read once (a refused one raises, and is not kept)."""
    return _timeline_limit(_filter(value))


def _timeout(call: Call) -> float:
    value = call.query("timeout")
    if value is None:
        return 0.0
    if not ids.is_number(value):
        raise MatrixError(400, Code.INVALID_PARAM, "timeout must be milliseconds")
    return min(int(value) / 1000, call.matrix.settings.sync_timeout_max)


async def sync(call: Call) -> SyncReply:
    """GET /_matrix/client/v3/sync"""
    since_text = call.query("since")
    since = ids.parse_token(since_text, "since") if since_text else None
    timeout = _timeout(call)
    limit = _limit_of(call.query("filter"))
    full_state = call.query("full_state") == "true"
    matrix = call.matrix
    caller = call.caller
    viewer = token_digest(caller.token_hash)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    stream = matrix.streams.open(caller.uuid)
    revocations = stream.revocations
    try:
        if since is not None:
            stream.acknowledge(since)
        while True:
            upto = max(matrix.hub.position, since or 0)
            query = views.SyncQuery(caller.uuid, viewer, matrix.server_name, since, upto, limit,
                                    full_state)
            result = await _batch(call, query, stream)
            keys = await sync_keys.read(call, stream, since, result.position)
            if keys.through is not None and keys.through < result.position:
                # more to-device messages wait than one batch carries: end it at the last
                result = await _batch(call, dataclasses.replace(
                    query, upto=keys.through, exact=True), stream)
            remaining = deadline - loop.time()
            if (since is None or full_state or not result.empty or keys.news or remaining <= 0
                    or matrix.hub.stopped):
                break
            # A revocation that came while the batch was read set the event before this
            # clears it: the count, not the event, tells.
            if stream.revocations == revocations and not stream.newer_than(upto):
                stream.event.clear()
                metrics.SYNCS_WAITING.inc()
                try:
                    await asyncio.wait_for(stream.event.wait(), remaining)
                except TimeoutError:
                    break
                finally:
                    metrics.SYNCS_WAITING.dec()
            if stream.revocations != revocations:  # logged out, or locked by an operator
                revocations = stream.revocations
                if not await call.service.accounts.still_valid(caller):
                    raise MatrixError(401, Code.UNKNOWN_TOKEN, "The access token was revoked",
                                      soft_logout=False)
    finally:
        matrix.streams.close(stream)
    reply = api.sync_reply(ids.token(result.position), result.rooms)
    await sidelines.decorate(matrix, caller.uuid, reply, result.side, result.kept, since,
                             result.position)
    return await sync_keys.add(call, reply, keys)


async def _batch(call: Call, query: views.SyncQuery, stream: UserStream) -> views.SyncResult:
    """One batch: from the user's stream in memory when it covers the request and needs no
    room state, else from the database."""
    if query.since is not None and not query.full_state and stream.covers(query.since):
        changes = stream.between(query.since, query.upto)
        if not changes:
            return views.SyncResult(api.no_rooms(), query.upto)
        batch = views.batch_from_changes(changes, query)
        if batch is not None:
            return views.render_batch(batch, query, *await call.matrix.users.with_avatars(
                batch.users))
    timeline = call.service.timeline
    if query.since is None:
        return views.initial(await timeline.initial_sync(call.caller, query.upto, query.exact,
                                                         query.limit), query)
    return views.incremental(await timeline.sync_changes(call.caller, query.since, query.upto,
                                                         query.limit, query.full_state), query)


async def create_filter(call: Call) -> FilterId:
    """POST /_matrix/client/v3/user/{userId}/filter"""
    data = await call.json()
    validate(Filter, data)
    text = json.dumps(data, separators=(",", ":"), sort_keys=True)
    if len(text) > MAX_FILTER:
        raise MatrixError(400, Code.TOO_LARGE, f"A filter is at most {MAX_FILTER} bytes")
    return FilterId(filter_id=base64.urlsafe_b64encode(text.encode()).decode().rstrip("="))


async def get_filter(call: Call) -> JSONResponse:
    """GET /_matrix/client/v3/user/{userId}/filter/{filterId}"""
    text = _decode_filter_id(call.param("filterId"))
    try:
        return JSONResponse(content.loads(text))
    except ValueError:  # not one this server made
        raise MatrixError(404, Code.NOT_FOUND, "Unknown filter ID") from None
