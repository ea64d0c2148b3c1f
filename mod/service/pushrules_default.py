"""The Matrix specification's default push rule set (Client-Server API, "Predefined rules"),
as data. `{user_id}` and `{localpart}` stand for the user the set is made for."""

from __future__ import annotations

import copy
from typing import Any

NOTIFY_SOUND = ["notify", {"set_tweak": "sound", "value": "default"}]
NOTIFY_SOUND_HIGHLIGHT = [*NOTIFY_SOUND, {"set_tweak": "highlight"}]


def _match(key: str, pattern: str) -> dict[str, Any]:
    return {"kind": "event_match", "key": key, "pattern": pattern}


_OVERRIDE: list[dict[str, Any]] = [
    {"rule_id": ".m.rule.master", "enabled": False, "conditions": [], "actions": []},
    {"rule_id": ".m.rule.suppress_notices",
     "conditions": [_match("content.msgtype", "m.notice")], "actions": []},
    {"rule_id": ".m.rule.invite_for_me",
     "conditions": [_match("type", "m.room.member"), _match("content.membership", "invite"),
                    _match("state_key", "{user_id}")],
     "actions": ["notify", {"set_tweak": "sound", "value": "default"}]},
    {"rule_id": ".m.rule.member_event", "conditions": [_match("type", "m.room.member")],
     "actions": []},
    {"rule_id": ".m.rule.is_user_mention",
     "conditions": [{"kind": "event_property_contains", "key": "content.m\\.mentions.user_ids",
                     "value": "{user_id}"}],
     "actions": NOTIFY_SOUND_HIGHLIGHT},
    {"rule_id": ".m.rule.contains_display_name", "conditions": [{"kind":
                                                                 "contains_display_name"}],
     "actions": NOTIFY_SOUND_HIGHLIGHT},
    {"rule_id": ".m.rule.is_room_mention",
     "conditions": [{"kind": "event_property_is", "key": "content.m\\.mentions.room",
                     "value": True},
                    {"kind": "sender_notification_permission", "key": "room"}],
     "actions": ["notify", {"set_tweak": "highlight"}]},
    {"rule_id": ".m.rule.roomnotif",
     "conditions": [_match("content.body", "@room"),
                    {"kind": "sender_notification_permission", "key": "room"}],
     "actions": ["notify", {"set_tweak": "highlight"}]},
    {"rule_id": ".m.rule.tombstone",
     "conditions": [_match("type", "m.room.tombstone"), _match("state_key", "")],
     "actions": ["notify", {"set_tweak": "highlight"}]},
    {"rule_id": ".m.rule.reaction", "conditions": [_match("type", "m.reaction")],
     "actions": []},
    {"rule_id": ".m.rule.room.server_acl",
     "conditions": [_match("type", "m.room.server_acl"), _match("state_key", "")],
     "actions": []},
    {"rule_id": ".m.rule.suppress_edits",
     "conditions": [{"kind": "event_property_is", "key": "content.m\\.relates_to.rel_type",
                     "value": "m.replace"}],
     "actions": []},
]

_CONTENT: list[dict[str, Any]] = [
    {"rule_id": ".m.rule.contains_user_name", "pattern": "{localpart}",
     "actions": NOTIFY_SOUND_HIGHLIGHT},
]

_ONE_TO_ONE = {"kind": "room_member_count", "is": "2"}

_UNDERRIDE: list[dict[str, Any]] = [
    {"rule_id": ".m.rule.call", "conditions": [_match("type", "m.call.invite")],
     "actions": ["notify", {"set_tweak": "sound", "value": "ring"}]},
    {"rule_id": ".m.rule.encrypted_room_one_to_one",
     "conditions": [_ONE_TO_ONE, _match("type", "m.room.encrypted")], "actions": NOTIFY_SOUND},
    {"rule_id": ".m.rule.room_one_to_one",
     "conditions": [_ONE_TO_ONE, _match("type", "m.room.message")], "actions": NOTIFY_SOUND},
    {"rule_id": ".m.rule.message", "conditions": [_match("type", "m.room.message")],
     "actions": ["notify"]},
    {"rule_id": ".m.rule.encrypted", "conditions": [_match("type", "m.room.encrypted")],
     "actions": ["notify"]},
]

KINDS = ("override", "content", "room", "sender", "underride")


def _fill(value: Any, user_id: str, localpart: str) -> Any:
    if isinstance(value, str):
        return value.replace("{user_id}", user_id).replace("{localpart}", localpart)
    if isinstance(value, list):
        return [_fill(item, user_id, localpart) for item in value]
    if isinstance(value, dict):
        return {key: _fill(item, user_id, localpart) for key, item in value.items()}
    return value


def default_rules(user_id: str, localpart: str) -> dict[str, Any]:
    """The default rule set of one user: `{"global": {kind: [rule, ...]}}`."""
    rules: dict[str, list[dict[str, Any]]] = {
        "override": _OVERRIDE, "content": _CONTENT, "room": [], "sender": [],
        "underride": _UNDERRIDE}
    filled = {kind: [{"default": True, "enabled": True, **_fill(copy.deepcopy(rule), user_id,
                                                                  localpart)}
                     for rule in rules[kind]] for kind in KINDS}
    return {"global": filled}
