"""The web client: the files of `mod/web/`, served from memory with caching and security headers.

The client is plain HTML, CSS and JavaScript modules with no build step; it speaks MTP over
`/ws` like any other client. The files are read once, when the app is built (never on the event
loop), and each is served with a strong ETag and `Cache-Control: no-cache`, so a browser keeps
them and only revalidates (304) until the server is upgraded.
"""

from __future__ import annotations

import hashlib
import mimetypes
from dataclasses import dataclass
from pathlib import Path

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

WEB = Path(__file__).resolve().parent / "web"
TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
         ".css": "text/css; charset=utf-8", ".json": "application/json",
         ".svg": "image/svg+xml"}
# blob: and data: images are the pictures of messages (base64 in MTP), shown without a server
# round trip; nothing else is allowed from anywhere but this origin, and no inline code at all.
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
       "media-src 'self' blob:; connect-src 'self'; manifest-src 'self'; base-uri 'none'; "
       "form-action 'none'; frame-ancestors 'none'")
SECURITY = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY",
            "Cross-Origin-Opener-Policy": "same-origin"}


@dataclass(frozen=True)
class Asset:
    body: bytes
    media_type: str
    etag: str


def load(root: Path = WEB) -> dict[str, Asset]:
    """Every file of the client by its URL path ("/" is index.html)."""
    assets: dict[str, Asset] = {}
    for path in sorted(root.rglob("*")):
        if not path.is_file() or path.suffix not in TYPES:
            continue
        body = path.read_bytes()
        etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        name = path.relative_to(root).as_posix()
        media_type = TYPES.get(path.suffix) or mimetypes.guess_type(name)[0] or "text/plain"
        assets["/" if name == "index.html" else f"/web/{name}"] = Asset(body, media_type, etag)
    if "/web/icon.svg" in assets:  # what browsers ask for on pages without an icon (/status)
        assets["/favicon.ico"] = assets["/web/icon.svg"]
    return assets


class WebClient:
    """GET /, GET /favicon.ico and GET /web/{path}: the client's files; 404 for anything else
    under /web/."""

    def __init__(self, assets: dict[str, Asset]) -> None:
        self.assets = assets

    async def page(self, request: Request) -> Response:
        asset = self.assets.get(request.url.path)
        if asset is None:
            return PlainTextResponse("Not Found\n", status_code=404, headers=SECURITY)
        headers = {**SECURITY, "ETag": asset.etag, "Cache-Control": "no-cache"}
        if asset.etag in request.headers.get("if-none-match", ""):
            return Response(status_code=304, headers=headers)
        return Response(asset.body, media_type=asset.media_type, headers=headers)


def web_routes() -> list[BaseRoute]:
    serve = WebClient(load())
    return [Route("/", serve.page, methods=["GET", "HEAD"]),
            Route("/favicon.ico", serve.page, methods=["GET", "HEAD"]),
            Route("/web/{path:path}", serve.page, methods=["GET", "HEAD"])]
