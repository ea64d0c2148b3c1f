"""The public room directory: the groups and channels anyone may join.

Invite-only flows (chats, Matrix rooms made private, MTP flows made `private`) never appear.
Pages run oldest room first; `next_batch` and `since` are `p<offset>`.
"""

from __future__ import annotations

from mod.protocol.matrix import ids
from mod.protocol.matrix.api import PublicRoom, PublicRooms, PublicRoomsRequest
from mod.protocol.matrix.errors import Code, MatrixError
from mod.protocol.matrix.routing import Call
from mod.service import Flow

DEFAULT_LIMIT = 100
MAX_LIMIT = 500


def _number(value: str, name: str) -> int:
    # ASCII digits only: str.isdigit() also takes "²", which int() refuses.
    if not (value.isascii() and value.isdigit()) or len(value) > 18:
        raise MatrixError(400, Code.INVALID_PARAM, f"{name} must be a non-negative integer")
    return int(value)


def _offset(since: str | None) -> int:
    if not since:
        return 0
    if not since.startswith("p"):
        raise MatrixError(400, Code.INVALID_PARAM, "since is not a token this server gave")
    return _number(since[1:], "since")


def _search_term(term: str | None) -> str:
    if not term:
        return ""
    if "\x00" in term or any("\ud800" <= char <= "\udfff" for char in term):
        raise MatrixError(400, Code.INVALID_PARAM,
                          "generic_search_term holds characters that cannot be searched")
    return term


async def _page(call: Call, search: str, since: str | None, limit: int) -> PublicRooms:
    offset = _offset(since)
    limit = min(limit, MAX_LIMIT)
    flows, total = await call.service.flows.public(search, offset, limit)
    after = offset + len(flows)
    return PublicRooms(
        chunk=[_entry(call, flow) for flow in flows],
        next_batch=f"p{after}" if flows and after < total else None,
        prev_batch=f"p{max(0, offset - limit)}" if offset else None,
        total_room_count_estimate=total)


def _entry(call: Call, flow: Flow) -> PublicRoom:
    return PublicRoom(room_id=ids.room_id(flow["uuid"], call.server_name),
                      name=flow["title"] or None, topic=flow["info"] or None,
                      num_joined_members=len(flow["users"]))


async def public_rooms(call: Call) -> PublicRooms:
    """GET /_matrix/client/v3/publicRooms"""
    limit = call.query("limit")
    return await _page(call, "", call.query("since"),
                       DEFAULT_LIMIT if limit is None else _number(limit, "limit"))


async def search_public_rooms(call: Call) -> PublicRooms:
    """POST /_matrix/client/v3/publicRooms"""
    body = await call.body(PublicRoomsRequest)
    term = body.filter.generic_search_term if body.filter is not None else None
    return await _page(call, _search_term(term), body.since,
                       DEFAULT_LIMIT if body.limit is None else body.limit)
