"""Loguru set-up: one line per event, to stderr and optionally to a rotating file, as text or
as one JSON object per line. Uvicorn's own lines (errors, access) go through the same set-up."""

from __future__ import annotations

import json
import logging
import re
import sys
import traceback
from typing import TYPE_CHECKING, Any

from loguru import logger

from mod.config.validator import Logging

if TYPE_CHECKING:
    from loguru import Record

UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access")
# Matrix clients may put their token in the query string, which uvicorn's access line shows.
_SECRET_QUERY = re.compile(r"((?:access_token|auth_id|password|token)=)[^&\s\"]+",
                           re.IGNORECASE)


def redact(text: str) -> str:
    """`text` with the values of secret-bearing query parameters replaced."""
    return _SECRET_QUERY.sub(r"\1<redacted>", text) if "=" in text else text


class _InterceptHandler(logging.Handler):
    """Send records of the standard logging module (uvicorn's) through loguru."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            level: str | int = logger.level(record.levelname).name
        except ValueError:
            level = record.levelno
        depth, frame = 0, sys._getframe(1)
        while frame is not None and frame.f_code.co_filename == logging.__file__:
            frame, depth = frame.f_back, depth + 1  # type: ignore[assignment]
        logger.opt(depth=depth + 1, exception=record.exc_info).log(
            level, redact(record.getMessage()))


def _json_line(record: Record) -> str:
    """Loguru format function for FORMAT = json: the line is made here and only referred to
    in the template, so braces in messages are never read as format fields."""
    line: dict[str, Any] = {
        "time": record["time"].isoformat(timespec="milliseconds"),
        "level": record["level"].name,
        "message": record["message"],
        "module": record["name"],
    }
    if record["exception"] is not None:
        kind, value, trace = record["exception"]
        line["exception"] = "".join(traceback.format_exception(kind, value, trace))
    record["extra"]["json_line"] = json.dumps(line, ensure_ascii=False)
    return "{extra[json_line]}\n"


def _format(settings: Logging) -> dict[str, Any]:
    if settings.format == "json":
        return {"format": _json_line, "colorize": False}
    return {}


def setup_logging(settings: Logging, stream: Any = None) -> None:
    """Log as `settings` say, to `stream` (default: standard error) and the file, if any."""
    logger.remove()
    form = _format(settings)
    logger.add(stream or sys.stderr, level=settings.level, backtrace=False, diagnose=False,
               **form)
    if settings.file:
        logger.add(
            settings.file,
            level=settings.level,
            rotation=settings.rotation,
            retention=settings.retention,
            enqueue=True,
            backtrace=False,
            diagnose=False,
            **form,
        )
    intercept_standard_logging()


def intercept_standard_logging() -> None:
    """Route the standard logging module, uvicorn's loggers included, into loguru."""
    logging.basicConfig(handlers=[_InterceptHandler()], level=0, force=True)
    for name in UVICORN_LOGGERS:
        named = logging.getLogger(name)
        if name == "uvicorn.access" and not named.handlers and not named.propagate:
            # uvicorn's --no-access-log leaves it so; a handler here would turn the access
            # line back on (uvicorn asks hasHandlers() per connection) and cost every response.
            continue
        named.handlers = [_InterceptHandler()]
        named.propagate = False
