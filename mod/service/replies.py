"""Replies between the protocols. A Matrix reply (`m.relates_to.m.in_reply_to`) may begin its
`body` with a fallback for clients that do not know replies: the quoted lines of the message
it answers ("> <@dave:example.org> ...") and an empty line. Clients that know replies strip
it, as the spec says; so does the text MTP and the web client get of such a message."""

from __future__ import annotations

from typing import Any


def is_reply(content: dict[str, Any]) -> bool:
    relation = content.get("m.relates_to")
    return isinstance(relation, dict) and isinstance(relation.get("m.in_reply_to"), dict)


def without_fallback(body: str) -> str:
    """A reply's body without its leading quoted lines and the empty line after them."""
    lines = body.split("\n")
    quoted = 0
    while quoted < len(lines) and lines[quoted].startswith(">"):
        quoted += 1
    if not quoted:
        return body
    rest = lines[quoted:]
    if rest and not rest[0].strip():
        rest = rest[1:]
    return "\n".join(rest)


def body_for_mtp(content: dict[str, Any]) -> str:
    """The text MTP shows of a Matrix message: its body, a reply's without the fallback."""
    body = str(content.get("body", ""))
    return without_fallback(body) if is_reply(content) else body
