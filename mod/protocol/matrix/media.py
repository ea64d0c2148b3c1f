"""The Matrix content repository: upload (at once, or `create` then upload), download and
thumbnails, authenticated under /_matrix/client/v1/media and, while `[MEDIA]
LEGACY_DOWNLOADS` is on, unauthenticated under /_matrix/media/v3 as well.

Downloads carry headers that keep an uploaded page from running in the server's origin:
`Content-Disposition: attachment` unless the type is one browsers render safely, `nosniff`,
and a sandboxing Content-Security-Policy. The rules and the files are the service's
(`service.media`); this module reads the request and writes the headers.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import quote

from starlette.requests import ClientDisconnect
from starlette.responses import FileResponse, Response

from mod.protocol.matrix.api import ContentUri, CreatedMedia, MediaConfig
from mod.protocol.matrix.errors import Code, MatrixError, Translation
from mod.protocol.matrix.routing import Call

# A thumbnail that took longer than [MEDIA] THUMBNAIL_TIMEOUT: the server gave up on it.
THUMBNAIL_ERRORS: Translation = {504: (504, Code.UNKNOWN)}

# Types a browser shows without running anything: served inline, everything else as a
# download. Not SVG (it can hold script), not HTML or text.
INLINE_TYPES = frozenset({
    "image/jpeg", "image/gif", "image/png", "image/apng", "image/webp", "image/avif",
    "image/bmp", "video/mp4", "video/webm", "video/ogg", "video/quicktime", "audio/mp4",
    "audio/ogg", "audio/webm", "audio/aac", "audio/mpeg", "audio/wav", "audio/wave",
    "audio/x-wav", "audio/flac", "audio/x-flac",
})
SAFE_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "sandbox; default-src 'none'; script-src 'none'; "
                               "plugin-types application/pdf; style-src 'unsafe-inline'; "
                               "media-src 'self'; object-src 'self';",
    "Cross-Origin-Resource-Policy": "cross-origin",
}


def content_disposition(content_type: str, name: str) -> str:
    kind = content_type.split(";")[0].strip().lower()
    disposition = "inline" if kind in INLINE_TYPES else "attachment"
    if not name:
        return disposition
    plain = "".join(char if 32 <= ord(char) < 127 and char not in '"\\' else "_"
                    for char in name)
    return f"{disposition}; filename=\"{plain}\"; filename*=utf-8''{quote(name, safe='')}"


def _served(path: Path, content_type: str, name: str) -> Response:
    headers = {**SAFE_HEADERS, "Content-Disposition": content_disposition(content_type, name),
               "Cache-Control": "private, max-age=86400"}
    return FileResponse(path, media_type=content_type, headers=headers)


def _local(call: Call) -> str:
    """The media ID of the path, which must name this server's media (no federation)."""
    if call.param("serverName") != call.server_name:
        raise MatrixError(404, Code.NOT_FOUND, "Media of other servers is not available here")
    return call.param("mediaId")


def _legacy_allowed(call: Call) -> None:
    if not call.service.settings.media.legacy_downloads:
        raise MatrixError(404, Code.NOT_FOUND, "Use the authenticated /_matrix/client/v1/media "
                                               "endpoints")


async def _chunks(call: Call) -> AsyncIterator[bytes]:
    try:
        async for chunk in call.request.stream():
            if chunk:
                yield chunk
    except ClientDisconnect:
        raise MatrixError(400, Code.UNKNOWN, "The upload was cut off") from None


def _declared(call: Call) -> int | None:
    length = call.request.headers.get("content-length", "")
    if not length:
        return None
    if not (length.isascii() and length.isdigit()) or len(length) > 18:
        raise MatrixError(400, Code.INVALID_PARAM, "Invalid Content-Length")
    return int(length)


async def _upload(call: Call, media_id: str | None) -> ContentUri:
    row = await call.service.media.upload(
        call.caller, _chunks(call), call.request.headers.get("content-type", "").strip(),
        call.query("filename") or "", _declared(call), media_id)
    return ContentUri(content_uri=call.service.media.mxc(row["media_id"]))


async def upload(call: Call) -> ContentUri:
    """POST /_matrix/media/v3/upload"""
    return await _upload(call, None)


async def upload_to(call: Call) -> ContentUri:
    """PUT /_matrix/media/v3/upload/{serverName}/{mediaId}"""
    await _upload(call, _local(call))
    return ContentUri()


async def create(call: Call) -> CreatedMedia:
    """POST /_matrix/media/v1/create"""
    media_id, expires = await call.service.media.create(call.caller)
    return CreatedMedia(content_uri=call.service.media.mxc(media_id),
                        unused_expires_at=expires * 1000)


async def config(call: Call) -> MediaConfig:
    """GET /_matrix/client/v1/media/config"""
    return MediaConfig(upload_size=call.service.settings.media.max_upload_size)


async def download(call: Call) -> Response:
    """GET /_matrix/client/v1/media/download/{serverName}/{mediaId}[/{fileName}]"""
    row, path = await call.service.media.file(_local(call))
    name = call.request.path_params.get("fileName") or row["name"]
    return _served(path, row["content_type"], name)


def _dimension(call: Call, name: str) -> int:
    value = call.query(name)
    if value is None:
        raise MatrixError(400, Code.MISSING_PARAM, f"Missing parameter: {name}")
    if not (value.isascii() and value.isdigit()) or len(value) > 6:
        raise MatrixError(400, Code.INVALID_PARAM, f"{name} must be a whole number")
    return int(value)


async def thumbnail(call: Call) -> Response:
    """GET /_matrix/client/v1/media/thumbnail/{serverName}/{mediaId}"""
    media_id = _local(call)
    path, kind = await call.service.media.thumbnail(
        media_id, _dimension(call, "width"), _dimension(call, "height"),
        call.query("method") or "scale")
    return _served(path, kind, "")


async def legacy_download(call: Call) -> Response:
    """GET /_matrix/media/v3/download/{serverName}/{mediaId}[/{fileName}]"""
    _legacy_allowed(call)
    return await download(call)


async def legacy_thumbnail(call: Call) -> Response:
    """GET /_matrix/media/v3/thumbnail/{serverName}/{mediaId}"""
    _legacy_allowed(call)
    return await thumbnail(call)
