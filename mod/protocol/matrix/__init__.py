"""The Matrix Client-Server API: HTTP routes under /_matrix/client on the shared service.

`matrix_routes()` gives the Starlette routes (every endpoint, then a catch-all answering
404 M_UNRECOGNIZED); `MatrixCORS` is the middleware that lets web clients in.
"""

from __future__ import annotations

from starlette.routing import BaseRoute

# Importing the endpoint modules registers their routes.
import mod.protocol.matrix.account
import mod.protocol.matrix.accountdata
import mod.protocol.matrix.backup
import mod.protocol.matrix.compat
import mod.protocol.matrix.devices
import mod.protocol.matrix.directory
import mod.protocol.matrix.keys
import mod.protocol.matrix.media
import mod.protocol.matrix.receipts
import mod.protocol.matrix.relations
import mod.protocol.matrix.rooms
import mod.protocol.matrix.send
import mod.protocol.matrix.sync
import mod.protocol.matrix.users  # noqa: F401
from mod.protocol.matrix.routing import MatrixCORS, build_routes

__all__ = ["MatrixCORS", "matrix_routes"]


def matrix_routes() -> list[BaseRoute]:
    """Every Matrix route: the catch-all of /_matrix, then the few outside it."""
    return build_routes()
