"""The service in process (no server): rights, retries and change-log positions, on SQLite and
on PostgreSQL when MORELIA_TEST_POSTGRES_URI is set."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from mod import lib
from mod.config.validator import Database
from mod.db import dbhandler as db
from mod.db import schema, search
from mod.db.engine import Engine
from mod.error import ServiceError
from mod.service import ENCRYPTED_TEXT, Caller
from tests.service_support import World

pytestmark = pytest.mark.anyio


async def refused(code: int, call: Any) -> str:
    with pytest.raises(ServiceError) as caught:
        await call
    assert caught.value.code == code, caught.value.detail
    return caught.value.detail


async def test_each_write_returns_the_position_of_its_change(world: World) -> None:
    owner, other = await world.user("owner"), await world.user("other")
    done = await world.service.flows.add(owner, "group", "t", "", [])
    assert (done.position, "flow_created") == (await world.last_change())[:2]
    flow = done.value["uuid"]
    joined = await world.service.flows.join(other, flow)
    assert (joined.position, "flow_joined", other.uuid) == await world.last_change()
    again = await world.service.flows.join(other, flow)
    assert again.position == 0  # a member already: nothing written
    sent = await world.service.messages.send(owner, flow, 1, {"text": "hi"})
    assert (sent.position, "message_sent", sent.value["uuid"]) == await world.last_change()
    edited = await world.service.messages.edit(owner, sent.value["uuid"], "hi!")
    assert (edited.position, "message_edited") == (await world.last_change())[:2]
    renamed = await world.service.flows.rename(owner, flow, title="new")
    assert (renamed.position, "flow_changed") == (await world.last_change())[:2]
    left = await world.service.flows.leave(other, flow)
    assert (left.position, "flow_left", other.uuid) == await world.last_change()
    deleted = await world.service.messages.delete(owner, sent.value["uuid"])
    assert (deleted.position, "message_deleted") == (await world.last_change())[:2]


async def test_a_retried_send_stores_once_and_answers_the_same(world: World) -> None:
    owner = await world.user("owner")
    flow = await world.flow(owner)
    first = await world.service.messages.send(owner, flow, 5, {"text": "once"})
    again = await world.service.messages.send(owner, flow, 5, {"text": "once"})
    assert again == first
    other_content = await world.service.messages.send(owner, flow, 5, {"text": "twice"})
    assert other_content.value["uuid"] != first.value["uuid"]
    by_txn = await world.service.messages.send(owner, flow, 0, {"text": "m"}, txn="t1")
    assert await world.service.messages.send(owner, flow, 0, {"text": "m"}, txn="t1") == by_txn
    other_device = Caller(owner.uuid, lib.token_hash(lib.new_token()), False)
    elsewhere = await world.service.messages.send(other_device, flow, 0, {"text": "m"},
                                                  txn="t1")
    assert elsewhere.value["uuid"] != by_txn.value["uuid"]
    page = await world.service.messages.page(owner, flow, None, None)
    assert page.count == 4


async def test_a_retried_edit_or_delete_answers_the_first_position(world: World) -> None:
    owner = await world.user("owner")
    flow = await world.flow(owner)
    sent = await world.service.messages.send(owner, flow, 1, {"text": "x"})
    uuid = sent.value["uuid"]
    edit = await world.service.messages.edit(owner, uuid, "y", flow, txn="e1")
    assert await world.service.messages.edit(owner, uuid, "y", flow, txn="e1") == edit
    gone = await world.service.messages.delete(owner, uuid, flow, txn="d1")
    assert await world.service.messages.delete(owner, uuid, flow, txn="d1") == gone
    await refused(404, world.service.messages.delete(owner, uuid, flow, txn="d2"))


async def test_a_message_named_in_another_flow_is_not_found(world: World) -> None:
    owner = await world.user("owner")
    here, there = await world.flow(owner), await world.flow(owner)
    sent = await world.service.messages.send(owner, here, 1, {"text": "x"})
    await refused(404, world.service.messages.edit(owner, sent.value["uuid"], "y", there))


# -- the rights table (PROTOCOL.md, "Rights") --------------------------------------------------


async def test_editing_needs_the_author_a_member_and_a_live_message(world: World) -> None:
    owner, author = await world.user("owner"), await world.user("author")
    stranger = await world.user("stranger")
    flow = await world.flow(owner, "group", author)
    sent = (await world.service.messages.send(author, flow, 1, {"text": "x"})).value["uuid"]
    await refused(403, world.service.messages.edit(owner, sent, "not mine"))
    await refused(403, world.service.messages.edit(stranger, sent, "not mine"))
    await world.service.messages.edit(author, sent, "mine")
    await world.service.flows.leave(author, flow)
    await refused(403, world.service.messages.edit(author, sent, "after leaving"))
    await world.service.flows.join(author, flow)
    await world.service.messages.delete(owner, sent)
    await refused(404, world.service.messages.edit(author, sent, "after deletion"))
    await refused(404, world.service.messages.delete(author, sent))
    await refused(404, world.service.messages.edit(author, "123", "unknown"))


async def test_deleting_needs_the_author_a_member_the_owner_or_a_superuser(world: World) -> None:
    owner, author, other = await world.user("owner"), await world.user("a"), await world.user("b")
    admin = await world.user("admin", superuser=True)
    flow = await world.flow(owner, "group", author, other)

    async def message() -> str:
        return (await world.service.messages.send(author, flow, 1, {"text": "x"},
                                                  txn=lib.new_uuid())).value["uuid"]

    await refused(403, world.service.messages.delete(other, await message()))
    await world.service.messages.delete(owner, await message())
    await world.service.messages.delete(admin, await message())  # not even a member
    await world.service.messages.delete(author, await message())
    kept = await message()
    await world.service.flows.leave(author, flow)
    await refused(403, world.service.messages.delete(author, kept))


async def test_reading_writing_inviting_and_renaming_by_flow_type(world: World) -> None:
    owner, member = await world.user("owner"), await world.user("member")
    stranger, admin = await world.user("stranger"), await world.user("admin", superuser=True)
    group = await world.flow(owner, "group", member)
    channel = await world.flow(owner, "channel", member, admin)
    chat = await world.flow(owner, "chat", member)
    messages, flows = world.service.messages, world.service.flows
    for flow in (group, channel, chat):
        await refused(403, messages.page(stranger, flow, None, None))
        await refused(403, messages.send(stranger, flow, 1, {"text": "x"}))
        await messages.page(member, flow, None, None)
    await messages.send(member, group, 1, {"text": "x"})
    await messages.send(member, chat, 1, {"text": "x"})
    await refused(403, messages.send(member, channel, 1, {"text": "x"}))
    await messages.send(admin, channel, 1, {"text": "x"})
    await flows.invite(member, group, stranger.uuid)
    await refused(403, flows.invite(member, channel, stranger.uuid))
    await flows.invite(admin, channel, stranger.uuid)
    await refused(403, flows.invite(owner, chat, stranger.uuid))
    await flows.rename(member, group, title="by a member")
    await refused(403, flows.rename(member, channel, title="by a member"))
    await flows.rename(admin, channel, title="by a superuser member")
    await refused(403, flows.rename(stranger, group, title="by a stranger"))
    await refused(404, flows.rename(owner, "123", title="nowhere"))


async def test_joining_and_leaving(world: World) -> None:
    owner, guest, invitee = (await world.user("owner"), await world.user("guest"),
                             await world.user("invitee"))
    public = await world.flow(owner)
    private = await world.flow(owner, private=True)
    chat = await world.flow(owner, "chat", guest)
    await world.service.flows.join(guest, public)
    await refused(403, world.service.flows.join(guest, private))
    await world.service.flows.invite(owner, private, invitee.uuid)
    await world.service.flows.join(invitee, private)
    await refused(403, world.service.flows.join(invitee, chat))
    await refused(403, world.service.flows.leave(owner, public))
    await world.service.flows.leave(guest, public)
    await refused(404, world.service.flows.join(guest, "404"))


async def test_profile_rules_hold_for_everyone(world: World) -> None:
    alice, bob = await world.user("alice"), await world.user("bob")
    await world.service.profiles.set_username(alice, alice.uuid, "Alice")
    await refused(403, world.service.profiles.set_username(alice, bob.uuid, "Bob"))
    await refused(400, world.service.profiles.set_username(alice, alice.uuid, "x" * 257))
    await refused(415, world.service.accounts.register("carol", "pw", email="not-an-address"))


async def test_a_deleted_flag_is_filled_in_for_older_databases(tmp_path: Path) -> None:
    engine = Engine(Database(uri=f"sqlite:{tmp_path / 'old.db'}"))
    try:
        engine.write_sync(db.create_tables)
        engine.write_sync(db.create_user, "u1", "ann", "h", "Ann", "", 100, 5)
        engine.write_sync(db.create_flow, "f1", "group", "t", "", "u1", ["u1"], 6)
        for uuid in ("m1", "m2"):
            engine.write_sync(db.insert_message, uuid, "f1", "u1", 1, {"text": "x"}, 7)
        engine.write_sync(db.update_message, "m1", "u1", {"text": "gone"}, 8, "message_deleted")
        # A version 2 database: no `deleted`, and no search index (version 11) to name it.
        engine.write_sync(search.drop)
        engine.write_sync(lambda conn: conn.execute("ALTER TABLE messages DROP COLUMN deleted"))
        schema.migrate(engine)
        states = {uuid: engine.read_sync(db.message_state, uuid) for uuid in ("m1", "m2")}
        assert {uuid: state[1] for uuid, state in states.items() if state} == {
            "m1": True, "m2": False}
        payload = json.loads(engine.read_sync(db.changes_after, 0)[-1].payload)
        assert payload["message"]["text"] == "gone"
    finally:
        engine._drop_thread_tx()
        engine.stop()


# -- end-to-end encryption --------------------------------------------------------------------

ENCRYPTION = {"algorithm": "m.megolm.v1.aes-sha2"}


def device(caller: Caller, name: str) -> Caller:
    return dataclasses.replace(caller, device=name)


async def test_plaintext_stays_out_of_an_encrypted_flow(world: World) -> None:
    owner, member, outsider = (await world.user("o"), await world.user("m"),
                               await world.user("x"))
    flow = await world.flow(owner, "group", member)
    sent = await world.service.messages.send(member, flow, 1, {"text": "before"})
    await refused(403, world.service.flows.encrypt(outsider, flow, ENCRYPTION))
    done = await world.service.flows.encrypt(member, flow, ENCRYPTION)
    assert await world.last_change() == (done.position, "flow_encrypted", "")
    assert "end-to-end encrypted" in await refused(403, world.service.messages.send(
        member, flow, 2, {"text": "plain"}))
    assert "end-to-end encrypted" in await refused(403, world.service.messages.edit(
        member, sent.value["uuid"], "changed"))
    stored = await world.service.messages.send(member, flow, 3, {"text": "ignored"},
                                               encrypted=True)
    assert stored.value["text"] == ENCRYPTED_TEXT
    await world.service.messages.delete(member, sent.value["uuid"])  # deleting still works
    # a flow made encrypted from the start
    made = await world.service.flows.add(owner, "group", "", "", [], encryption=ENCRYPTION)
    await refused(403, world.service.messages.send(owner, made.value["uuid"], 1,
                                                   {"text": "plain"}))


async def test_one_time_keys_are_claimed_once_then_the_fallback(world: World) -> None:
    alice = device(await world.user("a"), "A1")
    counts = await world.service.keys.upload(
        alice, {"keys": {}}, {"signed_curve25519:1": {"k": 1}, "signed_curve25519:2": {"k": 2}},
        {"signed_curve25519:F": {"k": "f"}})
    assert counts == {"signed_curve25519": 2}
    want = {alice.uuid: {"A1": "signed_curve25519"}}
    first, second, third = [await world.service.keys.claim(want) for _ in range(3)]
    assert first[alice.uuid]["A1"] != second[alice.uuid]["A1"]
    assert third[alice.uuid]["A1"] == {"signed_curve25519:F": {"k": "f"}}
    found = await world.service.keys.for_sync(alice, None, 10**9)
    assert found.counts == {} and found.unused_fallback == []
    # a new fallback key replaces the used one
    await world.service.keys.upload(alice, None, {}, {"signed_curve25519:G": {"k": "g"}})
    assert (await world.service.keys.for_sync(alice, None, 10**9)).unused_fallback == [
        "signed_curve25519"]


async def test_to_device_waits_until_acknowledged(world: World) -> None:
    alice, bob = device(await world.user("a"), "A1"), device(await world.user("b"), "B1")
    await world.service.keys.upload(bob, {"keys": {}}, {}, {})
    before = (await world.last_change())[0]
    messages = {bob.uuid: {"B1": {"n": 1}, "NOSUCH": {"n": 2}}}
    await world.service.keys.send_to_device(alice, "m.x", messages, "t1")
    await world.service.keys.send_to_device(alice, "m.x", messages, "t1")  # a retry
    upto = (await world.last_change())[0]
    got = await world.service.keys.for_sync(bob, before, upto)
    assert got.to_device == [(alice.uuid, "m.x", {"n": 1})] and got.news
    assert (await world.service.keys.for_sync(bob, before, upto)).to_device  # not yet acked
    assert not (await world.service.keys.for_sync(bob, upto, upto)).to_device
    assert not (await world.service.keys.for_sync(bob, before, upto)).to_device  # deleted


async def test_device_changes_are_addressed_to_room_mates(world: World) -> None:
    alice, bob, carol = (device(await world.user("a"), "A1"), await world.user("b"),
                         await world.user("c"))
    await world.flow(alice, "group", bob)
    await world.service.keys.upload(alice, {"keys": {"ed25519:A1": "x"}}, {}, {})
    rows = await world.engine.read(db.changes_after, 0, 100_000)
    change = rows[-1]
    assert (change.kind, change.flow_uuid, change.subject) == ("device_keys_changed", "",
                                                               alice.uuid)
    assert sorted(json.loads(change.payload)["users"]) == sorted([alice.uuid, bob.uuid])
    assert await world.service.keys.changes(bob, 0, change.position) == ([alice.uuid], [])
    assert await world.service.keys.changes(carol, 0, change.position) == ([], [])
    # the same keys again are no change
    await world.service.keys.upload(alice, {"keys": {"ed25519:A1": "x"}}, {}, {})
    assert (await world.last_change())[0] == change.position
