"""Who is typing, as every process keeps it from the change log (in process)."""

from __future__ import annotations

import json
import time

from mod.changes import Change
from mod.service.ephemeral import Typing


def change(position: int, kind: str, actor: str, payload: dict[str, object] | None = None,
           flow: str = "f") -> Change:
    return Change(position, 0, flow, kind, actor, actor, json.dumps(payload or {}))


def test_a_notice_lasts_until_its_timeout_or_its_authors_next_message() -> None:
    typing = Typing()
    soon = int(time.time() * 1000) + 60_000
    typing.observe(change(1, "typing", "ann", {"typing": True, "until": soon}))
    typing.observe(change(2, "typing", "bo", {"typing": True, "until": soon}))
    assert typing.typing("f") == ["ann", "bo"] and typing.changed_after("f", 1)
    typing.observe(change(3, "message_sent", "ann"))
    assert typing.typing("f") == ["bo"] and typing.changed_after("f", 2)
    typing.observe(change(4, "message_sent", "cy"))  # not typing: nothing changes
    assert not typing.changed_after("f", 3)
    typing.observe(change(5, "typing", "bo", {"typing": False, "until": 0}))
    assert typing.typing("f") == [] and typing.typing("other") == []
    typing.observe(change(6, "typing", "cy", {"typing": True, "until": 1}))
    assert typing.typing("f") == []  # its time has passed
