"""The baseline for bench/mtp_bench.py: a bare websocket endpoint answering a fixed MTP reply.

No validation and no database: what uvicorn, Starlette and the websocket layer cost alone.
"""

from __future__ import annotations

import json

from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

REPLY = json.dumps({
    "type": "ping_pong",
    "data": None,
    "errors": {"code": 200, "status": "OK", "time": 1700000000, "detail": "OK"},
    "jsonapi": {"version": "1.0", "revision": "17"},
    "meta": None,
})


async def echo(websocket: WebSocket) -> None:
    await websocket.accept()
    try:
        while True:
            await websocket.receive_text()
            await websocket.send_text(REPLY)
    except WebSocketDisconnect:
        return


app = Starlette(routes=[WebSocketRoute("/ws", echo)])
