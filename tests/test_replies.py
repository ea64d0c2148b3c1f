"""Replies between the protocols: a Matrix reply's fallback is not part of its text for MTP."""

from __future__ import annotations

import pytest

from mod.service.replies import body_for_mtp, without_fallback

REPLY = {"m.in_reply_to": {"event_id": "$m1"}}


@pytest.mark.parametrize(("body", "text"), [
    ("> <@a:x.org> hi\n\nhello", "hello"),
    ("> <@a:x.org> hi\n> there\n\nhello\n> mine", "hello\n> mine"),
    ("> <@a:x.org> hi\nhello", "hello"),  # no empty line after the quote
    (">\n\nhello", "hello"),
    ("> only the quote", ""),
    ("hello\n> later", "hello\n> later"),
    ("", ""),
])
def test_the_fallback_is_the_leading_quote(body: str, text: str) -> None:
    assert without_fallback(body) == text


def test_only_a_reply_loses_its_leading_quote() -> None:
    body = "> <@a:x.org> hi\n\nhello"
    assert body_for_mtp({"body": body, "m.relates_to": REPLY}) == "hello"
    assert body_for_mtp({"body": body}) == body
    assert body_for_mtp({"body": body, "m.relates_to": {"rel_type": "m.thread"}}) == body
    assert body_for_mtp({"body": body, "m.relates_to": "nonsense"}) == body
    assert body_for_mtp({"m.relates_to": REPLY}) == ""
