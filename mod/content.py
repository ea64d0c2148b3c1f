"""What JSON the server takes in: only JSON it can store, read back and render again.

Both protocols keep what clients send (Matrix event content, MTP message fields) and serve it
back later, so a value the database, the JSON readers or the JSON writers cannot hold would
break every reader of it, long after it was accepted. `loads` reads a body strictly and
`check` walks a value already read; both raise `ContentError` naming the offending field.
"""

from __future__ import annotations

import json
import math
from typing import Any

MAX_DEPTH = 64
MAX_INT = 2**53 - 1  # what every JSON reader takes as an exact integer (canonical JSON's bound)
_INT_DIGITS = len(str(MAX_INT)) + 1  # sign included

# An MTP message's files (base64 strings), in the order a message's first file is chosen
# (a Matrix event carries one); the original server's message columns bear the same names.
FILE_FIELDS = ("file_picture", "file_video", "file_audio", "file_document")
# What a client sends of a message: its text, its files, its emoji.
CONTENT_FIELDS = ("text", *FILE_FIELDS, "emoji")


class ContentError(ValueError):
    """A value the server will not store; `where` names the field (dotted path)."""

    def __init__(self, where: str, problem: str) -> None:
        where = where or "body"
        if len(where) > 200:
            where = "..." + where[-197:]
        super().__init__(f"{where}: {problem}")
        self.where = where
        self.problem = problem


class _Huge:
    """An integer literal too long to be in range, kept unconverted (int() of thousands of
    digits is slow, and refused past 4300)."""


HUGE = _Huge()


class NotJson(ValueError):
    """Text that is not JSON at all."""


def _field(where: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{where}[{key}]"
    return f"{where}.{key}" if where else key


def _bad_text(text: str, nul: bool = False) -> str | None:
    """Why a string cannot be stored as it is (with `nul`: written out as JSON), or None."""
    if text.isascii():
        return "holds a NUL character" if not nul and "\x00" in text else None
    if not nul and "\x00" in text:
        return "holds a NUL character"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "holds a lone surrogate (not valid Unicode)"
    return None


def _shown(key: str) -> str:
    """A key as an error message may quote it: printable, short, valid Unicode."""
    safe = key.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\x00")
    return safe if len(safe) <= 64 else safe[:61] + "..."


def check(value: Any, where: str = "", max_depth: int = MAX_DEPTH, nul: bool = False) -> None:
    """Refuse (ContentError) a value nested deeper than `max_depth`, with a number that is not
    finite or not an exact integer in range, or with a string or key that is not valid Unicode
    or (unless `nul`) holds NUL. Iterative, so no depth of input costs a Python stack."""
    stack: list[tuple[Any, str, int]] = [(value, where, 0)]
    while stack:
        item, path, depth = stack.pop()
        if isinstance(item, str):
            problem = _bad_text(item, nul)
            if problem:
                raise ContentError(path, problem)
        elif isinstance(item, bool) or item is None:
            continue
        elif item is HUGE or isinstance(item, int):
            if not isinstance(item, int) or not -MAX_INT <= item <= MAX_INT:
                raise ContentError(path, f"integers must be within ±{MAX_INT}")
        elif isinstance(item, float):
            if not math.isfinite(item):
                raise ContentError(path, "numbers must be finite (no NaN or Infinity)")
        elif isinstance(item, dict | list):
            if depth >= max_depth:
                raise ContentError(path, f"nested deeper than {max_depth} levels")
            if isinstance(item, dict):
                for key, child in item.items():
                    if not isinstance(key, str):
                        raise ContentError(path, "object keys must be strings")
                    problem = _bad_text(key, nul)
                    if problem:
                        raise ContentError(_field(path, _shown(key)), f"the key {problem}")
                    stack.append((child, _field(path, key), depth + 1))
            else:
                stack.extend((child, _field(path, index), depth + 1)
                             for index, child in enumerate(item))
        else:
            raise ContentError(path, f"{type(item).__name__} is not a JSON value")


def _parse_int(text: str) -> int | _Huge:
    if len(text) > _INT_DIGITS:
        return HUGE  # refused by `check`, with the field's name
    return int(text)


def loads(raw: str | bytes, max_depth: int = MAX_DEPTH, nul: bool = False) -> Any:
    """JSON text as a value `check` accepts: NotJson if it is not JSON, ContentError if it
    holds what the server will not store. Most bodies are read and checked in one pass
    (`_one_pass`); the rest, and every refusal, take the full path that names the field."""
    value = _one_pass(raw, max_depth)
    if value is not _FULL:
        return value
    try:
        value = json.loads(raw, parse_int=_parse_int)
    except RecursionError:
        raise ContentError("", f"nested deeper than {max_depth} levels") from None
    except ValueError as exc:  # includes UnicodeDecodeError
        raise NotJson(str(exc).splitlines()[0] if str(exc) else "not JSON") from None
    check(value, max_depth=max_depth, nul=nul)
    return value


class _Full(Exception):
    """What the one pass leaves to the full check."""


_FULL = _Full()


def _int_in_range(text: str) -> int:
    if len(text) >= _INT_DIGITS - 1:  # 16 digits or more: may be out of range
        raise _FULL
    return int(text)


def _float_finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _FULL
    return value


def _constant(text: str) -> float:
    raise _FULL


def _one_pass(raw: str | bytes, max_depth: int) -> Any:
    """`raw` read by the JSON decoder alone, when that proves it acceptable: valid UTF-8 (so
    no lone surrogate), no `\\u` escape (so no NUL or lone surrogate in a string, as the
    decoder refuses raw control characters), fewer brackets than `max_depth` (so no deeper
    nesting), and numbers checked as they are read. Else _FULL, also for what is not JSON."""
    try:
        text = raw.decode() if isinstance(raw, bytes | bytearray) else raw
        if not text.isascii():
            text.encode()
        if "\\u" in text or text.count("[") + text.count("{") > max_depth:
            return _FULL
        return _ONE_PASS.decode(text)
    except (ValueError, _Full):  # UnicodeError is a ValueError
        return _FULL


_ONE_PASS = json.JSONDecoder(parse_int=_int_in_range, parse_float=_float_finite,
                             parse_constant=_constant)


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ContentError("", "numbers must be finite (no NaN or Infinity)")
    return value


def _no_constant(text: str) -> float:
    raise ContentError("", "numbers must be finite (no NaN or Infinity)")


def readable(raw: str, max_depth: int = MAX_DEPTH) -> Any:
    """JSON the server stored, read back for rendering: as `loads` with NUL allowed, but
    text that is not nested deep and escapes nothing (nearly all of it) is read in one pass."""
    if "\\u" in raw or raw.count("[") + raw.count("{") > max_depth:
        return loads(raw, max_depth, nul=True)
    try:
        return _READER.decode(raw)
    except ContentError:
        raise
    except ValueError as exc:
        raise NotJson(str(exc).splitlines()[0]) from None


_READER = json.JSONDecoder(parse_float=_finite, parse_constant=_no_constant)
