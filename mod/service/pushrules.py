"""Changes to a user's push rules, as the Client-Server API's /pushrules endpoints make them.

A user's rules are the default set (`pushrules_default`) until they change one; from then on
the whole set is kept as their `m.push_rules` account data (so /sync echoes every change).
Each function changes a rule set in place or raises `ServiceError`.
"""

from __future__ import annotations

from typing import Any

from mod.error import ServiceError, TooLong
from mod.service.bounds import MAX_RULE_ID
from mod.service.pushrules_default import KINDS

Rules = dict[str, Any]


def _kind(rules: Rules, scope: str, kind: str) -> list[dict[str, Any]]:
    if scope != "global":
        raise ServiceError(400, "Push rules have only the global scope")
    if kind not in KINDS:
        raise ServiceError(400, f"Push rule kind must be one of {', '.join(KINDS)}")
    listed: list[dict[str, Any]] = rules.setdefault("global", {}).setdefault(kind, [])
    return listed


def find(rules: Rules, scope: str, kind: str, rule_id: str) -> dict[str, Any]:
    for rule in _kind(rules, scope, kind):
        if rule.get("rule_id") == rule_id:
            return rule
    raise ServiceError(404, f"No push rule {rule_id}")


def _index(listed: list[dict[str, Any]], rule_id: str) -> int:
    for index, rule in enumerate(listed):
        if rule.get("rule_id") == rule_id:
            return index
    raise ServiceError(404, f"No push rule {rule_id} to place this one next to")


def put(rules: Rules, scope: str, kind: str, rule_id: str, body: dict[str, Any],
        before: str | None, after: str | None) -> None:
    """Add or replace a user-defined rule. A new one goes before the server's defaults of its
    kind (after `.m.rule.master`), unless `before` or `after` place it."""
    listed = _kind(rules, scope, kind)
    if rule_id.startswith(".") or "/" in rule_id or not rule_id:
        raise ServiceError(400, "Rule IDs starting with '.' are the server's")
    if len(rule_id) > MAX_RULE_ID:
        raise TooLong(f"A push rule ID is at most {MAX_RULE_ID} characters")
    actions = body.get("actions")
    if not isinstance(actions, list):
        raise ServiceError(400, "A push rule needs a list of actions")
    rule: dict[str, Any] = {"rule_id": rule_id, "default": False, "enabled": True,
                            "actions": actions}
    if kind == "content":
        if not isinstance(body.get("pattern"), str):
            raise ServiceError(400, "A content rule needs a pattern")
        rule["pattern"] = body["pattern"]
    elif kind in ("override", "underride"):
        conditions = body.get("conditions", [])
        if not isinstance(conditions, list):
            raise ServiceError(400, "conditions must be a list")
        rule["conditions"] = conditions
    kept = [item for item in listed if item.get("rule_id") == rule_id]
    if kept:
        rule["enabled"] = kept[0].get("enabled", True)
        listed.remove(kept[0])
    if before:
        at = _index(listed, before)
    elif after:
        at = _index(listed, after) + 1
    else:
        at = next((index for index, item in enumerate(listed)
                   if item.get("default") and item.get("rule_id") != ".m.rule.master"),
                  len(listed))
    listed.insert(at, rule)


def delete(rules: Rules, scope: str, kind: str, rule_id: str) -> None:
    rule = find(rules, scope, kind, rule_id)
    if rule.get("default"):
        raise ServiceError(400, "The server's default rules cannot be deleted")
    _kind(rules, scope, kind).remove(rule)


def set_enabled(rules: Rules, scope: str, kind: str, rule_id: str, body: dict[str, Any]
                ) -> None:
    if not isinstance(body.get("enabled"), bool):
        raise ServiceError(400, "enabled must be true or false")
    find(rules, scope, kind, rule_id)["enabled"] = body["enabled"]


def set_actions(rules: Rules, scope: str, kind: str, rule_id: str, body: dict[str, Any]
                ) -> None:
    if not isinstance(body.get("actions"), list):
        raise ServiceError(400, "actions must be a list")
    find(rules, scope, kind, rule_id)["actions"] = body["actions"]
