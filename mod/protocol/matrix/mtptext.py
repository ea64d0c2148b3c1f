"""MTP messages as Matrix content: what a Matrix client shows of one (its text, else its emoji,
else which files it carries), and an MTP text that uses the web client's formatting subset
with a formatted body as well (the service's `richtext`)."""

from __future__ import annotations

from typing import Any

from mod.content import FILE_FIELDS
from mod.service import richtext


def mtp_body(message: dict[str, Any]) -> str:
    """The text a Matrix client shows for an MTP message: its text, else its emoji, else
    which files it carries (Matrix clients cannot open MTP's inline files)."""
    files = [f"({field[5:]})" for field in FILE_FIELDS if message.get(field)]
    return str(message["text"] or message["emoji"] or " ".join(files))


def text_content(text: str) -> dict[str, Any]:
    """An MTP text as `m.text`, with a formatted body when it uses the formatting subset."""
    formatted = richtext.to_html(text)
    if formatted is None:
        return {"msgtype": "m.text", "body": text}
    return {"msgtype": "m.text", "body": text, "format": richtext.HTML,
            "formatted_body": formatted}
