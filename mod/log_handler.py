"""Loguru set-up: one line per event, to stderr and optionally to a rotating file."""

from __future__ import annotations

import logging
import sys

from loguru import logger

from mod.config.validator import Logging


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
        logger.opt(depth=depth + 1, exception=record.exc_info).log(level, record.getMessage())


def setup_logging(settings: Logging) -> None:
    logger.remove()
    logger.add(sys.stderr, level=settings.level, backtrace=False, diagnose=False)
    if settings.file:
        logger.add(
            settings.file,
            level=settings.level,
            rotation=settings.rotation,
            retention=settings.retention,
            enqueue=True,
            backtrace=False,
            diagnose=False,
        )
    logging.basicConfig(handlers=[_InterceptHandler()], level=0, force=True)
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers = [_InterceptHandler()]
        logging.getLogger(name).propagate = False
