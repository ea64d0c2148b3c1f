"""The operator's changes in the service (`service/moderation.py`), in process: each commits its
change-log row with it, and a refusal commits nothing. tests/test_operator.py runs the same
through manage.py against running servers."""

from __future__ import annotations

import pytest

from mod.db import dbhandler as db
from mod.db.engine import Conn, Engine
from mod.error import ServiceError
from mod.service import moderation

NOW = 1_000_000


def kinds(engine: Engine) -> list[tuple[str, str]]:
    return [(change.kind, change.subject) for change in engine.read_sync(db.changes_after, 0)]


def user(engine: Engine, login: str) -> str:
    made = engine.write_sync(db.create_user, f"uuid-{login}", login, "hash", login, "", 3600,
                             NOW)
    assert made is not None
    return made["uuid"]


def account(engine: Engine, uuid: str) -> db.UserRow:
    found = engine.read_sync(db.user_by_uuid, uuid)
    assert found is not None
    return found


def test_a_lock_revokes_the_tokens_and_tells_every_process(engine: Engine) -> None:
    bob = user(engine, "bob")
    engine.write_sync(db.add_token, bob, "t1", NOW, NOW + 100)
    engine.write_sync(db.add_token, bob, "t2", NOW, NOW + 100)
    assert engine.write_sync(moderation.set_locked, bob, True, NOW) == 2
    assert account(engine, bob)["locked"] is True
    assert engine.read_sync(db.token_owner, "t1", NOW) is None
    assert kinds(engine) == [("tokens_revoked", bob)]
    assert engine.write_sync(moderation.set_locked, bob, False, NOW) == 0
    assert account(engine, bob)["locked"] is False
    assert kinds(engine) == [("tokens_revoked", bob)]


def test_rights_and_password_are_logged(engine: Engine) -> None:
    bob = user(engine, "bob")
    engine.write_sync(moderation.set_superuser, bob, True, NOW)
    engine.write_sync(moderation.set_password, bob, moderation.password_hash("new"), NOW)
    found = account(engine, bob)
    assert found["is_superuser"] and found["password_hash"] != "hash"
    assert kinds(engine) == [("user_changed", bob), ("tokens_revoked", bob)]


def test_a_deleted_flow_is_left_by_each_member_then_gone(engine: Engine) -> None:
    alice, bob = user(engine, "alice"), user(engine, "bob")
    flow = engine.write_sync(db.create_flow, "flow-1", "group", "T", "", alice, [alice, bob],
                             NOW)
    assert engine.write_sync(moderation.delete_flow, flow["uuid"], NOW)["users"] == [alice, bob]
    assert engine.read_sync(db.flow_by_uuid, flow["uuid"]) is None
    assert [kind for kind, _ in kinds(engine)][-3:] == ["flow_left", "flow_left", "flow_deleted"]


def refused(code: int, call: object) -> str:
    assert callable(call)
    with pytest.raises(ServiceError) as caught:
        call()
    assert caught.value.code == code
    return caught.value.detail


def test_refusals_say_the_operators_line_and_commit_nothing(engine: Engine) -> None:
    assert refused(404, lambda: engine.write_sync(moderation.delete_flow, "none", NOW)) == (
        "there is no flow none")
    assert refused(400, lambda: moderation.password_hash("")) == (
        "the password cannot be empty")
    assert refused(400, lambda: moderation.check_password("x" * 4097)) == (
        "the password is at most 4096 characters")
    assert refused(400, lambda: moderation.new_registration_token("no spaces")).startswith(
        "a token is 1 to 64 characters")
    token = moderation.new_registration_token(None)
    assert len(token) == 16 and set(token) <= set(moderation.TOKEN_ALPHABET)
    engine.write_sync(moderation.create_registration_token, token, 1, 0, NOW)
    assert refused(409, lambda: engine.write_sync(
        moderation.create_registration_token, token, 5, 0, NOW)) == (
        f"the token {token!r} already exists")
    assert [row["uses_allowed"] for row in engine.read_sync(moderation.registration_tokens)] == [1]
    engine.write_sync(moderation.delete_registration_token, token)
    assert refused(404, lambda: engine.write_sync(moderation.delete_registration_token,
                                                  token)) == (
        f"there is no registration token {token!r}")
    assert kinds(engine) == []


def test_the_lists(engine: Engine) -> None:
    alice = user(engine, "alice")
    engine.write_sync(db.create_flow, "flow-1", "group", "T", "", alice, [alice], NOW)

    def logins(conn: Conn) -> list[str]:
        return [row.login for row in moderation.all_users(conn)]

    assert engine.read_sync(logins) == ["alice"]
    assert [row["uuid"] for row in engine.read_sync(moderation.all_flows)] == ["flow-1"]
