"""Finding people: `/user_directory/search`, and `/account/3pid` (this server binds no
e-mail addresses or phone numbers to Matrix accounts, so the list is empty)."""

from __future__ import annotations

from starlette.responses import JSONResponse

from mod.protocol.matrix import ids
from mod.protocol.matrix.errors import Code, MatrixError
from mod.protocol.matrix.routing import Call

DEFAULT_LIMIT = 10


async def search(call: Call) -> JSONResponse:
    """POST /_matrix/client/v3/user_directory/search"""
    body = await call.json()
    term, limit = body.get("search_term"), body.get("limit", DEFAULT_LIMIT)
    if not isinstance(term, str):
        raise MatrixError(400, Code.MISSING_PARAM, "search_term must be a string")
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 0:
        raise MatrixError(400, Code.BAD_JSON, "limit must be a non-negative integer")
    users, limited = await call.service.userdata.search_users(call.caller, term.strip(), limit)
    return JSONResponse({"limited": limited, "results": [
        {"user_id": ids.user_id(user.login, call.server_name),
         "display_name": user.username or user.login} for user in users]})


async def third_party_ids(call: Call) -> JSONResponse:
    """GET /_matrix/client/v3/account/3pid"""
    return JSONResponse({"threepids": []})
