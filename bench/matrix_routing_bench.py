"""Matrix routing alone: the hand-written router against Starlette's route matching.

    python bench/matrix_routing_bench.py [--rounds 5] [--calls 20000]

For a mix of request paths (the two of `matrix_bench.py`, `PUT .../send/...` and `GET /sync`,
and a few others), times finding the handler and its path parameters: `MatrixRouter.find`
(a `RouteIndex` of the route list) with the split of the raw path it needs, against trying
one Starlette `Route` per path template in turn, as Starlette's `Router` does. Prints
microseconds per lookup, the median of the rounds, with the range.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import unquote_to_bytes

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from starlette.responses import Response
from starlette.routing import Match, Route

from mod.protocol.matrix.dispatch import RouteIndex, table
from mod.protocol.matrix.routes import ROUTES

TABLE = table(ROUTES)

V3 = "/_matrix/client/v3"
PATHS = {
    "send": ("PUT", f"{V3}/rooms/!0f4a9c2e7b1d4e8f:morelia.test/send/m.room.message/m17.1"),
    "sync": ("GET", f"{V3}/sync"),
    "room state": ("GET", f"{V3}/rooms/!0f4a9c2e7b1d4e8f:morelia.test/state/m.room.name/"),
    "profile": ("GET", f"{V3}/profile/@alice:morelia.test/displayname"),
    "unknown": ("GET", f"{V3}/no/such/endpoint"),
}


def endpoint(request: Any) -> Response:
    return Response()


def hand_written() -> Callable[[dict[str, Any]], Any]:
    router = RouteIndex(ROUTES)

    def find(scope: dict[str, Any]) -> Any:
        parts = [(unquote_to_bytes(part) if b"%" in part else part).decode("utf-8", "replace")
                 for part in scope["raw_path"].split(b"/")]
        return router.find(parts)

    return find


def starlette() -> Callable[[dict[str, Any]], Any]:
    routes = [Route(path, endpoint, methods=list(methods)) for path, methods in TABLE.items()]

    def find(scope: dict[str, Any]) -> Any:
        for route in routes:
            match, child = route.matches(scope)
            if match is Match.FULL:
                return TABLE[route.path], child["path_params"]
        return None

    return find


def per_call(find: Callable[[dict[str, Any]], Any], scope: dict[str, Any], calls: int
             ) -> float:
    started = time.perf_counter()
    for _ in range(calls):
        find(scope)
    return (time.perf_counter() - started) / calls * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=20000)
    options = parser.parse_args()
    routers = {"hand-written": hand_written(), "starlette": starlette()}
    print(f"{len(TABLE)} path templates; microseconds per lookup, median (range) of "
          f"{options.rounds} interleaved rounds of {options.calls}")
    for name, (method, path) in PATHS.items():
        scope = {"type": "http", "method": method, "path": path, "raw_path": path.encode(),
                 "root_path": ""}
        assert (routers["hand-written"](scope) is None) == (routers["starlette"](scope) is None)
        times: dict[str, list[float]] = {router: [] for router in routers}
        for _ in range(options.rounds):
            for router, find in routers.items():
                times[router].append(per_call(find, scope, options.calls))
        figures = "   ".join(f"{router} {statistics.median(values):6.2f} "
                              f"({min(values):.2f}-{max(values):.2f})"
                              for router, values in times.items())
        print(f"{name:12} {figures}")


if __name__ == "__main__":
    main()
