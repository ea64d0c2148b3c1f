"""The change kinds (`mod.changes`): the strings the database holds, and the named sets."""

from __future__ import annotations

import pytest
from sqlobject.converters import sqlrepr
from sqlobject.sqlbuilder import IN

from mod import changes as kinds
from mod.changes import (
    ContentPayload,
    EmptyPayload,
    FlowPayload,
    Kind,
    MessagePayload,
    RevokedPayload,
    TypingPayload,
    UsersPayload,
    payload_of,
)
from mod.db import engine  # noqa: F401  (also teaches sqlrepr the kinds)
from mod.db.models import Change

# What databases written by every earlier version hold: a rename here orphans their rows.
STORED = {
    "message_sent", "message_edited", "message_deleted", "flow_created", "flow_joined",
    "flow_left", "flow_invited", "invite_declined", "flow_changed", "flow_encrypted",
    "flow_deleted", "profile_changed", "user_changed", "tokens_revoked", "typing", "receipt",
    "private_receipt", "account_data", "room_event", "device_keys_changed",
    "one_time_keys_changed", "to_device", "reaction_added", "reaction_removed",
}


def test_the_kinds_are_the_strings_stored() -> None:
    assert {kind.value for kind in Kind} == STORED
    assert all(kind == kind.value and hash(kind) == hash(kind.value) for kind in Kind)


def test_a_kind_renders_in_sql_as_its_string() -> None:
    assert sqlrepr(Kind.RECEIPT, "sqlite") == "'receipt'"
    assert sqlrepr(IN(Change.q.kind, [Kind.TYPING]), "postgres").endswith("('typing'))")


def test_the_sets_hold_what_their_names_say() -> None:
    assert kinds.MTP_PUSHED.isdisjoint(kinds.MATRIX_ONLY)
    assert kinds.SIDELINE == kinds.EPHEMERAL | kinds.PERSONAL
    assert kinds.SIDELINE <= kinds.MATRIX_ONLY
    assert {*kinds.SHARING, Kind.FLOW_DELETED} == kinds.MEMBER_SET
    assert kinds.KEY_SYNC == kinds.ADDRESSED | kinds.SHARING
    assert kinds.STATE.isdisjoint(kinds.MESSAGE_KINDS | kinds.MATRIX_ONLY)


def test_each_kind_reads_into_its_model() -> None:
    message = {"uuid": "m", "from_user": "u", "text": "hi", "emoji": ""}
    assert payload_of(Kind.MESSAGE_SENT, {"message": message}) == MessagePayload(message, None)
    flow = {"uuid": "f", "owner": "u", "type": "group", "title": "t", "info": "",
            "users": ["u", "v"]}
    created = payload_of(Kind.FLOW_CREATED, {"flow": flow})
    assert isinstance(created, FlowPayload) and created.members == ["u", "v"]
    invited = payload_of(Kind.FLOW_INVITED, {"flow": flow, "is_direct": True})
    assert isinstance(invited, FlowPayload) and invited.is_direct
    assert payload_of(Kind.FLOW_DELETED, {"users": ["u", 3]}) == UsersPayload(("u",))
    assert payload_of(Kind.TO_DEVICE, {"users": ["v"]}) == UsersPayload(("v",))
    assert payload_of(Kind.TOKENS_REVOKED, {}) == RevokedPayload(None, False)
    assert payload_of(Kind.TOKENS_REVOKED, {"locked": True}) == RevokedPayload(None, True)
    assert payload_of(Kind.TOKENS_REVOKED, {"token": "h"}) == RevokedPayload("h", False)
    assert payload_of(Kind.TYPING, {"typing": True, "until": 5}) == TypingPayload(True, 5)
    assert payload_of(Kind.PROFILE_CHANGED, {}) == EmptyPayload()
    assert payload_of(Kind.RECEIPT, {"room": "f"}) == ContentPayload({"room": "f"})


def test_a_payload_lacking_what_its_kind_holds_is_refused() -> None:
    for kind, payload in [
        (Kind.MESSAGE_SENT, {"message": {"uuid": "m", "text": "hi"}}),  # no from_user
        (Kind.MESSAGE_EDITED, {"message": {"uuid": 1, "text": "hi"}}),
        (Kind.FLOW_CREATED, {"flow": {"owner": "u", "type": "g", "title": "t", "info": "",
                                      "users": [1]}}),
        (Kind.FLOW_CHANGED, {"flow": {"title": "t"}}),
        (Kind.FLOW_ENCRYPTED, {"content": []}),
        (Kind.ROOM_EVENT, {"mx": {"content": {}}}),
        (Kind.TYPING, {"typing": True, "until": "soon"}),
        (Kind.MESSAGE_SENT, {"mx": []}),
        (Kind.USER_CHANGED, []),
    ]:
        with pytest.raises(ValueError):
            payload_of(kind, payload)


def test_a_row_reads_its_payload_once() -> None:
    row = kinds.Change(1, 2, "f", Kind.TYPING, "a", "a", '{"typing": false}')
    assert row.data is row.data
    assert row == kinds.Change(1, 2, "f", Kind.TYPING, "a", "a", '{"typing": false}')
    broken = kinds.Change(1, 2, "", Kind.TOKENS_REVOKED, "a", "a", "{")
    with pytest.raises(ValueError):
        _ = broken.data
