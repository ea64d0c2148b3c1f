"""The Matrix Client-Server API: HTTP routes under /_matrix on the shared service.

`MatrixGate(ROUTES)` holds the Matrix routes' place among the app's routes (`routes()`: the
catch-all of /_matrix, then the few paths outside it); the app's lifespan opens it with a
`MatrixRouter(ROUTES, Matrix(...))`, the router built from the route list (`routes.py`) with
the Matrix context. `MatrixCORS` is the middleware that lets web clients in.
"""

from __future__ import annotations

from mod.protocol.matrix.context import Matrix
from mod.protocol.matrix.cors import MatrixCORS
from mod.protocol.matrix.dispatch import MatrixGate, MatrixRouter
from mod.protocol.matrix.routes import ROUTES

__all__ = ["ROUTES", "Matrix", "MatrixCORS", "MatrixGate", "MatrixRouter"]
