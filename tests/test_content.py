"""The door check of JSON content (mod/content.py), in process."""

from __future__ import annotations

from typing import Any

import pytest

from mod import content
from mod.content import MAX_DEPTH, MAX_INT, ContentError, NotJson


def nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = {"a": value}
    return value


def refused(raw: str | bytes) -> ContentError:
    with pytest.raises(ContentError) as caught:
        content.loads(raw)
    return caught.value


def test_what_the_server_can_store_passes_unchanged() -> None:
    value = {"msgtype": "m.text", "body": "héllo 😀\u2028", "n": [MAX_INT, -MAX_INT, 1.5, None,
                                                               True], "x": nested(MAX_DEPTH - 1)}
    content.check(value)
    text = '{"a": "\\ud83d\\ude00", "b": 9007199254740991, "c": 1e300}'
    assert content.loads(text) == {"a": "😀", "b": MAX_INT, "c": 1e300}
    assert content.loads(b'{"k": []}') == {"k": []}


def test_refusals_name_the_field() -> None:
    assert refused('{"content": {"x": NaN}}').where == "content.x"
    assert refused('{"a": [1, Infinity]}').where == "a[1]"
    assert refused('{"a": -Infinity}').where == "a"
    assert refused('{"a": 1e999}').where == "a"
    assert "integers" in refused('{"a": 9007199254740992}').problem
    assert refused('{"a": [' + "9" * 5000 + "]}").where == "a[0]"
    assert "NUL" in refused('{"body": "a\\u0000b"}').problem
    assert "surrogate" in refused('{"body": "\\ud800"}').problem
    assert "surrogate" in refused('{"body": "\\udc00\\ud800"}').problem
    key = refused('{"ok": {"k\\ud800": 1}}')
    assert key.where == "ok.k\\ud800" and "key" in key.problem
    assert "key" in refused('{"\\u0000": 1}').problem
    assert "deeper" in refused(str(nested(MAX_DEPTH + 1)).replace("'", '"')).problem
    assert "deeper" in refused("[" * 100_000).problem  # no Python stack spent on it


def test_not_json_is_told_apart() -> None:
    for raw in ("{", "", "x", b"\xff\xfe", '{"a": 1,}', "[1] 2"):
        with pytest.raises(NotJson):
            content.loads(raw)


def test_check_walks_values_made_in_python() -> None:
    content.check({"a": [1, "b"]})
    for bad, where in (({"a": float("nan")}, "a"), ({"a": [{"b": "\x00"}]}, "a[0].b"),
                       ({1: "x"}, "body"), ({"a": {1, 2}}, "a"), ({"a": 2**80}, "a")):
        with pytest.raises(ContentError) as caught:
            content.check(bad)
        assert caught.value.where == where, caught.value
    content.check({"a": "\x00"}, nul=True)
    with pytest.raises(ContentError):
        content.check(nested(5), max_depth=3)


def test_readable_takes_what_was_stored_and_refuses_what_cannot_be_written() -> None:
    assert content.readable('{"a": "x\\u0000", "b": 1.5}', 10) == {"a": "x\x00", "b": 1.5}
    assert content.readable('{"a": "\\uD83D\\uDE00"}', 10) == {"a": "😀"}
    for raw in ('{"a": NaN}', '{"a": [1e999]}', '{"a": "\\ud800"}', "[" * 20 + "]" * 20):
        with pytest.raises(ContentError):
            content.readable(raw, 10)
    with pytest.raises(NotJson):
        content.readable("{bad", 10)


ONE_PASS_CASES: list[str | bytes] = [
    '{"msgtype": "m.text", "body": "hello"}', b'{"a": [1, 2.5, true, null, "x"]}',
    '{"body": "h\u00e9llo \U0001f510"}', "{\"a\": \"\\u00e9\"}", '{"a": 123456789012345}',
    '{"a": 1234567890123456}', '{"a": 9007199254740992}', '{"a": -9007199254740991}',
    '{"a": 1e308}', '{"a": 1e999}', '{"a": -Infinity}', '{"a": NaN}', "{\"a\": \"\\u0000\"}",
    "{\"\\ud800\": 1}", b'{"a": "\xed\xa0\x80"}', b'\xef\xbb\xbf{"a": 1}', "[" * 64 + "]" * 64,
    "[" * 65 + "]" * 65, '{"a": "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["}',
    '{"a": 1', "", "nope", '{"a": "\x00"}', '"\ud800"', '{"a": 1} x',
]


@pytest.mark.parametrize("raw", ONE_PASS_CASES)
def test_one_pass_agrees_with_the_full_check(raw: str | bytes) -> None:
    """Whatever the one pass returns, the full path returns too; it refuses nothing itself."""
    value = content._one_pass(raw, MAX_DEPTH)
    try:
        full: Any = content.json.loads(raw, parse_int=content._parse_int)
        content.check(full)
    except (ValueError, RecursionError):
        assert value is content._FULL
        return
    assert value is content._FULL or value == full
    assert content.loads(raw) == full
