"""The change kinds (`mod.changes`): the strings the database holds, and the named sets."""

from __future__ import annotations

from sqlobject.converters import sqlrepr
from sqlobject.sqlbuilder import IN

from mod import changes as kinds
from mod.changes import Kind
from mod.db import engine  # noqa: F401  (teaches sqlrepr the kinds)
from mod.db.models import Change

# What databases written by every earlier version hold: a rename here orphans their rows.
STORED = {
    "message_sent", "message_edited", "message_deleted", "flow_created", "flow_joined",
    "flow_left", "flow_invited", "invite_declined", "flow_changed", "flow_encrypted",
    "flow_deleted", "profile_changed", "user_changed", "tokens_revoked", "typing", "receipt",
    "private_receipt", "account_data", "room_event", "device_keys_changed",
    "one_time_keys_changed", "to_device",
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
