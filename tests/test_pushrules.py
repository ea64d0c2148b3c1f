"""Push rule changes as rules (in process): the default set, placing, enabling, deleting."""

from __future__ import annotations

from typing import Any

import pytest

from mod.error import ServiceError
from mod.service import pushrules
from mod.service.pushrules_default import default_rules


def ids_of(rules: dict[str, Any], kind: str) -> list[str]:
    return [rule["rule_id"] for rule in rules["global"][kind]]


def test_the_default_set_names_the_user() -> None:
    rules = default_rules("@ann:example.org", "ann")
    assert set(rules["global"]) == {"override", "content", "room", "sender", "underride"}
    assert rules["global"]["content"][0]["pattern"] == "ann"
    invite = next(rule for rule in rules["global"]["override"]
                  if rule["rule_id"] == ".m.rule.invite_for_me")
    assert {"kind": "event_match", "key": "state_key", "pattern": "@ann:example.org"} in (
        invite["conditions"])
    assert all(rule["default"] for kind in rules["global"].values() for rule in kind)
    assert rules["global"]["override"][0] == {
        "rule_id": ".m.rule.master", "default": True, "enabled": False, "conditions": [],
        "actions": []}
    # Each user gets a copy of their own.
    other = default_rules("@bo:example.org", "bo")
    other["global"]["override"][0]["enabled"] = True
    assert default_rules("@ann:example.org", "ann") == rules


def test_a_new_rule_goes_before_the_defaults_after_master() -> None:
    rules = default_rules("@ann:example.org", "ann")
    pushrules.put(rules, "global", "override", "mine", {"actions": ["notify"],
                                                        "conditions": []}, None, None)
    assert ids_of(rules, "override")[:2] == [".m.rule.master", "mine"]
    pushrules.put(rules, "global", "override", "first", {"actions": []}, "mine", None)
    pushrules.put(rules, "global", "override", "last", {"actions": []}, None,
                  ".m.rule.suppress_edits")
    assert ids_of(rules, "override")[1:3] == ["first", "mine"]
    assert ids_of(rules, "override")[-1] == "last"
    pushrules.put(rules, "global", "room", "!r:example.org", {"actions": []}, None, None)
    assert ids_of(rules, "room") == ["!r:example.org"]


def test_changes_and_refusals() -> None:
    rules = default_rules("@ann:example.org", "ann")
    pushrules.set_enabled(rules, "global", "override", ".m.rule.master", {"enabled": True})
    pushrules.set_actions(rules, "global", "underride", ".m.rule.message", {"actions": []})
    assert rules["global"]["override"][0]["enabled"] is True
    assert pushrules.find(rules, "global", "underride", ".m.rule.message")["actions"] == []
    pushrules.put(rules, "global", "content", "word", {"actions": [], "pattern": "cake"},
                  None, None)
    pushrules.delete(rules, "global", "content", "word")
    assert ids_of(rules, "content") == [".m.rule.contains_user_name"]
    for change, code in (
            (lambda: pushrules.delete(rules, "global", "override", ".m.rule.master"), 400),
            (lambda: pushrules.put(rules, "global", "override", ".mine", {"actions": []},
                                   None, None), 400),
            (lambda: pushrules.put(rules, "global", "content", "x", {"actions": []},
                                   None, None), 400),
            (lambda: pushrules.put(rules, "global", "override", "x", {}, None, None), 400),
            (lambda: pushrules.put(rules, "device", "override", "x", {"actions": []},
                                   None, None), 400),
            (lambda: pushrules.put(rules, "global", "nonsense", "x", {"actions": []},
                                   None, None), 400),
            (lambda: pushrules.put(rules, "global", "override", "x", {"actions": []},
                                   "missing", None), 404),
            (lambda: pushrules.find(rules, "global", "room", "missing"), 404),
            (lambda: pushrules.set_enabled(rules, "global", "override", ".m.rule.master",
                                           {"enabled": "yes"}), 400)):
        with pytest.raises(ServiceError) as caught:
            change()
        assert caught.value.code == code
