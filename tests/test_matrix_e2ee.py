"""End-to-end encryption, server side, over raw HTTP against a real server: keys, one-time
and fallback keys, to-device messages, device lists in /sync, devices, cross-signing, key
backup, encrypted rooms and events, and how MTP sees an encrypted flow."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import pytest

from mod.service import ENCRYPTED_TEXT
from tests.inprocess import AppServer
from tests.support import Client
from tests.test_matrix_support import PASSWORD, SERVER_NAME, Matrix, login_name, user_id

pytestmark = pytest.mark.anyio

V3 = "/_matrix/client/v3"
OTK = "signed_curve25519"
ENCRYPTION = {"type": "m.room.encryption", "state_key": "",
              "content": {"algorithm": "m.megolm.v1.aes-sha2"}}


@dataclass
class Account:
    mx: Matrix
    login: str
    token: str
    device: str

    @property
    def user_id(self) -> str:
        return user_id(self.login)

    async def call(self, method: str, path: str, body: Any = None, status: int = 200,
                   **params: Any) -> dict[str, Any]:
        response = await self.mx.raw(method, V3 + path, self.token, json=body,
                                     params=params or None)
        assert response.status_code == status, (path, response.status_code, response.text)
        data: dict[str, Any] = response.json()
        return data

    async def sync(self, since: str | None = None, timeout: int = 0) -> dict[str, Any]:
        params: dict[str, Any] = {"timeout": timeout}
        if since:
            params["since"] = since
        return await self.call("GET", "/sync", **params)

    def device_keys(self, marker: str = "") -> dict[str, Any]:
        return {"user_id": self.user_id, "device_id": self.device,
                "algorithms": ["m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"],
                "keys": {f"curve25519:{self.device}": "curve" + marker,
                         f"ed25519:{self.device}": "ed" + marker},
                "signatures": {self.user_id: {f"ed25519:{self.device}": "sig" + marker}}}


async def account(mx: Matrix, device: str = "DEV1", login: str | None = None,
                  name: str | None = None) -> Account:
    """A new user (or a new device of `login`) with an access token; `name`: the device's
    initial display name."""
    named = {} if name is None else {"initial_device_display_name": name}
    if login is None:
        login = login_name("e2e")
        response = await mx.raw("POST", V3 + "/register", json={
            "username": login, "password": PASSWORD, "device_id": device,
            "auth": {"type": "m.login.dummy"}} | named)
    else:
        response = await mx.raw("POST", V3 + "/login", json={
            "type": "m.login.password", "identifier": {"type": "m.id.user", "user": login},
            "password": PASSWORD, "device_id": device} | named)
    assert response.status_code == 200, response.text
    return Account(mx, login, response.json()["access_token"], device)


async def shared_room(owner: Account, *members: Account, encrypted: bool = False) -> str:
    body: dict[str, Any] = {"preset": "public_chat"}
    if encrypted:
        body["initial_state"] = [ENCRYPTION]
    room = str((await owner.call("POST", "/createRoom", body))["room_id"])
    for member in members:
        await member.call("POST", f"/rooms/{room}/join", {})
    return room


async def test_keys_upload_query_claim_once_then_fallback(mx: Matrix) -> None:
    alice, bob = await account(mx, "ALICE1"), await account(mx, "BOB1")
    uploaded = await alice.call("POST", "/keys/upload", {
        "device_keys": alice.device_keys(),
        "one_time_keys": {f"{OTK}:A": {"key": "one"}, f"{OTK}:B": {"key": "two"}},
        "fallback_keys": {f"{OTK}:F": {"key": "fallback", "fallback": True}}})
    assert uploaded == {"one_time_key_counts": {OTK: 2}}
    # the same keys again change nothing
    again = await alice.call("POST", "/keys/upload", {
        "one_time_keys": {f"{OTK}:A": {"key": "one"}}})
    assert again == {"one_time_key_counts": {OTK: 2}}
    await alice.call("PUT", f"/devices/{alice.device}", {"display_name": "Alice's laptop"})

    queried = await bob.call("POST", "/keys/query", {"device_keys": {alice.user_id: []}})
    keys = queried["device_keys"][alice.user_id][alice.device]
    assert keys["keys"] == alice.device_keys()["keys"]
    assert keys["unsigned"]["device_display_name"] == "Alice's laptop"

    synced = await alice.sync()
    assert synced["device_one_time_keys_count"] == {OTK: 2}
    assert synced["device_unused_fallback_key_types"] == [OTK]

    claimed = []
    for _ in range(3):
        reply = await bob.call("POST", "/keys/claim", {
            "one_time_keys": {alice.user_id: {alice.device: OTK}}})
        claimed.append(reply["one_time_keys"][alice.user_id][alice.device])
    assert sorted(claimed[0] | claimed[1]) == [f"{OTK}:A", f"{OTK}:B"]  # each handed out once
    assert claimed[2] == {f"{OTK}:F": {"key": "fallback", "fallback": True}}

    synced = await alice.sync()
    assert synced["device_one_time_keys_count"] == {}
    assert synced["device_unused_fallback_key_types"] == []


async def test_upload_refuses_keys_of_another_device(mx: Matrix) -> None:
    alice = await account(mx, "ALICE1")
    keys = alice.device_keys() | {"device_id": "OTHER"}
    await alice.call("POST", "/keys/upload", {"device_keys": keys}, status=400)


async def test_to_device_delivered_once_and_deleted(mx: Matrix) -> None:
    alice, bob = await account(mx, "ALICE1"), await account(mx, "BOB1")
    first = await bob.sync()
    message = {"messages": {bob.user_id: {bob.device: {"secret": "s3cr3t"}}}}
    for _ in range(2):  # a retry of the same transaction sends nothing more
        await alice.call("PUT", "/sendToDevice/m.room_key_request/txn1", message)
    got = await bob.sync(first["next_batch"])
    assert got["to_device"]["events"] == [{"sender": alice.user_id,
                                           "type": "m.room_key_request",
                                           "content": {"secret": "s3cr3t"}}]
    # not again with a later since; and, once acknowledged, gone for good
    later = await bob.sync(got["next_batch"])
    assert later["to_device"]["events"] == []
    replayed = await bob.sync(first["next_batch"])
    assert replayed["to_device"]["events"] == []
    # another device of bob's gets nothing of it
    other = await account(mx, "BOB2", bob.login)
    assert (await other.sync())["to_device"]["events"] == []


async def test_to_device_wakes_a_waiting_sync_and_reaches_every_device(mx: Matrix) -> None:
    alice, bob = await account(mx, "ALICE1"), await account(mx, "BOB1")
    bob2 = await account(mx, "BOB2", bob.login)
    since = (await bob.sync())["next_batch"]
    waiting = asyncio.create_task(bob.sync(since, timeout=5000))
    await asyncio.sleep(0)
    started = time.monotonic()
    await alice.call("PUT", "/sendToDevice/m.dummy/t1",
                     {"messages": {bob.user_id: {"*": {"n": 1}}}})
    got = await waiting
    assert time.monotonic() - started < 3
    assert [event["content"] for event in got["to_device"]["events"]] == [{"n": 1}]
    assert [e["content"] for e in (await bob2.sync())["to_device"]["events"]] == [{"n": 1}]


async def test_device_lists_changed_reach_room_mates_only(mx: Matrix) -> None:
    alice, bob, carol = (await account(mx, "A1"), await account(mx, "B1"),
                         await account(mx, "C1"))
    await shared_room(alice, bob)
    bob_since = (await bob.sync())["next_batch"]
    carol_since = (await carol.sync())["next_batch"]
    waiting = asyncio.create_task(bob.sync(bob_since, timeout=5000))
    assert isinstance(mx.server, AppServer)
    await mx.server.until_long_polls()
    started = time.monotonic()
    await alice.call("POST", "/keys/upload", {"device_keys": alice.device_keys()})
    got = await waiting
    assert time.monotonic() - started < 3
    assert alice.user_id in got["device_lists"]["changed"]
    assert alice.user_id not in (await carol.sync(carol_since))["device_lists"]["changed"]
    changes = await bob.call("GET", "/keys/changes", **{"from": bob_since,
                                                        "to": got["next_batch"]})
    assert changes["changed"] == [alice.user_id]


def device_lists(synced: dict[str, Any]) -> tuple[list[str], list[str]]:
    lists = synced.get("device_lists") or {}
    return lists.get("changed", []), lists.get("left", [])


async def test_device_lists_name_new_and_former_room_mates(mx: Matrix) -> None:
    """A user who comes to share a room is in `changed` (the client asks for their keys), one
    who shares no room any more is in `left`; sharing one room of two is still sharing."""
    alice, bob, carol = (await account(mx, "A1"), await account(mx, "B1"),
                         await account(mx, "C1"))
    carol_room = await shared_room(alice, carol)
    alice_since = (await alice.sync())["next_batch"]
    bob_since = (await bob.sync())["next_batch"]
    carol_since = (await carol.sync())["next_batch"]

    room = await shared_room(alice, bob, carol)
    got = await alice.sync(alice_since)
    assert device_lists(got) == ([bob.user_id], [])  # carol shared a room already
    alice_since = got["next_batch"]
    got = await bob.sync(bob_since)
    assert device_lists(got) == (sorted([alice.user_id, carol.user_id]), [])
    bob_since = got["next_batch"]
    carol_since = (await carol.sync(carol_since))["next_batch"]

    waiting = asyncio.create_task(alice.sync(alice_since, timeout=5000))
    await mx.server.until_long_polls()
    await bob.call("POST", f"/rooms/{room}/leave", {})
    got = await waiting
    assert device_lists(got) == ([], [bob.user_id])
    changes = await alice.call("GET", "/keys/changes", **{"from": alice_since,
                                                          "to": got["next_batch"]})
    assert (changes["changed"], changes["left"]) == ([], [bob.user_id])
    got = await bob.sync(bob_since)
    assert device_lists(got) == ([], sorted([alice.user_id, carol.user_id]))

    got = await carol.sync(carol_since)
    assert device_lists(got) == ([], [bob.user_id])
    carol_since = got["next_batch"]
    await carol.call("POST", f"/rooms/{room}/leave", {})  # still in carol_room with alice
    got = await carol.sync(carol_since)
    assert device_lists(got) == ([], [])
    await carol.call("POST", f"/rooms/{carol_room}/leave", {})
    assert device_lists(await carol.sync(got["next_batch"])) == ([], [alice.user_id])


async def test_devices_last_seen_and_initial_name(mx: Matrix) -> None:
    before = int(time.time() * 1000)
    alice = await account(mx, "PHONE", name="Alice's phone")
    await account(mx, "PHONE", alice.login, name="renamed at login?")  # an initial name only
    laptop = await account(mx, "LAPTOP", alice.login, name="Laptop")
    await laptop.call("GET", "/account/whoami")

    async def listed() -> dict[str, dict[str, Any]]:
        return {d["device_id"]: d for d in (await alice.call("GET", "/devices"))["devices"]}

    devices = await listed()
    assert devices["PHONE"]["display_name"] == "Alice's phone"
    assert devices["LAPTOP"]["display_name"] == "Laptop"
    for device in devices.values():
        assert before <= device["last_seen_ts"] <= int(time.time() * 1000)
        assert device["last_seen_ip"] == "127.0.0.1"
    assert (await alice.call("GET", "/devices/PHONE"))["last_seen_ts"] == \
        devices["PHONE"]["last_seen_ts"]  # recorded at most once a minute
    unnamed = await account(mx, "BARE", alice.login)
    assert (await unnamed.call("GET", "/devices/BARE"))["display_name"] is None


async def test_deleting_a_device_removes_its_keys_and_logs_it_out(mx: Matrix) -> None:
    alice = await account(mx, "KEEP")
    doomed = await account(mx, "DOOMED", alice.login)
    await doomed.call("POST", "/keys/upload", {"device_keys": doomed.device_keys(),
                                               "one_time_keys": {f"{OTK}:X": {"key": "x"}}})
    listed = await alice.call("GET", "/devices")
    assert sorted(d["device_id"] for d in listed["devices"]) == ["DOOMED", "KEEP"]
    assert (await alice.call("GET", "/devices/DOOMED"))["device_id"] == "DOOMED"

    asked = await alice.call("DELETE", "/devices/DOOMED", {}, status=401)
    assert asked["flows"] == [{"stages": ["m.login.password"]}] and asked["session"]
    auth = {"type": "m.login.password", "session": asked["session"],
            "identifier": {"type": "m.id.user", "user": alice.login}}
    wrong = await alice.call("DELETE", "/devices/DOOMED",
                             {"auth": auth | {"password": "not it"}}, status=401)
    assert wrong["errcode"] == "M_FORBIDDEN"
    await alice.call("DELETE", "/devices/DOOMED", {"auth": auth | {"password": PASSWORD}})

    await doomed.call("GET", "/account/whoami", status=401)
    listed = await alice.call("GET", "/devices")
    assert [d["device_id"] for d in listed["devices"]] == ["KEEP"]
    queried = await alice.call("POST", "/keys/query", {"device_keys": {alice.user_id: []}})
    assert queried["device_keys"][alice.user_id] == {}
    claimed = await alice.call("POST", "/keys/claim", {
        "one_time_keys": {alice.user_id: {"DOOMED": OTK}}})
    assert claimed["one_time_keys"] == {}
    await alice.call("GET", "/devices/DOOMED", status=404)


async def test_delete_devices_in_bulk(mx: Matrix) -> None:
    alice = await account(mx, "ONE")
    two, three = (await account(mx, "TWO", alice.login),
                  await account(mx, "THREE", alice.login))
    auth = {"type": "m.login.password", "password": PASSWORD,
            "identifier": {"type": "m.id.user", "user": alice.login}}
    await alice.call("POST", "/delete_devices", {"devices": ["TWO", "THREE"]}, status=401)
    await alice.call("POST", "/delete_devices", {"devices": ["TWO", "THREE"], "auth": auth})
    for gone in (two, three):
        await gone.call("GET", "/account/whoami", status=401)
    await alice.call("GET", "/account/whoami")


async def test_cross_signing_and_signatures(mx: Matrix) -> None:
    alice, bob = await account(mx, "A1"), await account(mx, "B1")
    await alice.call("POST", "/keys/upload", {"device_keys": alice.device_keys()})

    def key(usage: str, public: str) -> dict[str, Any]:
        return {"user_id": alice.user_id, "usage": [usage],
                "keys": {f"ed25519:{public}": public}}

    # the first keys need no password, as Element sets them up right after registering
    await alice.call("POST", "/keys/device_signing/upload", {
        "master_key": key("master", "MASTER"), "self_signing_key": key("self_signing", "SSK"),
        "user_signing_key": key("user_signing", "USK")})
    queried = await bob.call("POST", "/keys/query", {"device_keys": {alice.user_id: []}})
    assert queried["master_keys"][alice.user_id]["keys"] == {"ed25519:MASTER": "MASTER"}
    assert queried["self_signing_keys"][alice.user_id]["usage"] == ["self_signing"]
    assert alice.user_id not in queried["user_signing_keys"]  # only for its owner
    own = await alice.call("POST", "/keys/query", {"device_keys": {alice.user_id: []}})
    assert alice.user_id in own["user_signing_keys"]

    # replacing them does
    replacing = {"master_key": key("master", "NEW")}
    await alice.call("POST", "/keys/device_signing/upload", replacing, status=401)
    await alice.call("POST", "/keys/device_signing/upload", replacing | {"auth": {
        "type": "m.login.password", "password": PASSWORD,
        "identifier": {"type": "m.id.user", "user": alice.login}}})

    signed = alice.device_keys() | {"signatures": {alice.user_id: {"ed25519:SSK": "by-ssk"}}}
    failures = await alice.call("POST", "/keys/signatures/upload", {
        alice.user_id: {alice.device: signed, "NOSUCH": signed}})
    assert list(failures["failures"][alice.user_id]) == ["NOSUCH"]
    queried = await bob.call("POST", "/keys/query", {"device_keys": {alice.user_id: []}})
    signatures = queried["device_keys"][alice.user_id][alice.device]["signatures"]
    assert signatures[alice.user_id] == {f"ed25519:{alice.device}": "sig",
                                         "ed25519:SSK": "by-ssk"}


async def test_key_backup_versions_and_keys(mx: Matrix) -> None:
    alice = await account(mx, "A1")
    await alice.call("GET", "/room_keys/version", status=404)
    algorithm = "m.megolm_backup.v1.curve25519-aes-sha2"
    created = await alice.call("POST", "/room_keys/version",
                               {"algorithm": algorithm, "auth_data": {"public_key": "pk"}})
    version = created["version"]
    newest = await alice.call("GET", "/room_keys/version")
    assert newest == {"version": version, "algorithm": algorithm,
                      "auth_data": {"public_key": "pk"}, "etag": "0", "count": 0}
    session = {"first_message_index": 0, "forwarded_count": 0, "is_verified": False,
               "session_data": {"ciphertext": "c"}}
    put = await alice.call("PUT", "/room_keys/keys", {"rooms": {"!r:x": {"sessions": {
        "S1": session}}}}, version=version)
    assert put["count"] == 1
    assert (await alice.call("GET", "/room_keys/keys", version=version)) == {
        "rooms": {"!r:x": {"sessions": {"S1": session}}}}
    assert (await alice.call("GET", "/room_keys/keys/!r:x/S1", version=version)) == session
    await alice.call("PUT", f"/room_keys/version/{version}",
                     {"algorithm": algorithm, "auth_data": {"public_key": "pk2"}})
    assert (await alice.call("GET", f"/room_keys/version/{version}"))["auth_data"] == {
        "public_key": "pk2"}
    await alice.call("DELETE", f"/room_keys/version/{version}")
    await alice.call("GET", "/room_keys/version", status=404)


# -- encrypted rooms --------------------------------------------------------------------------


async def test_encryption_state_from_create_room_and_put(mx: Matrix) -> None:
    alice, bob = await account(mx, "A1"), await account(mx, "B1")
    room = await shared_room(alice, bob, encrypted=True)
    state = await bob.call("GET", f"/rooms/{room}/state/m.room.encryption")
    assert state == {"algorithm": "m.megolm.v1.aes-sha2"}
    synced = await bob.sync()
    events = synced["rooms"]["join"][room]["state"]["events"] + \
        synced["rooms"]["join"][room]["timeline"]["events"]
    assert any(event["type"] == "m.room.encryption" for event in events)

    later = await shared_room(alice, bob)
    await alice.call("PUT", f"/rooms/{later}/state/m.room.encryption",
                     {"algorithm": "m.megolm.v1.aes-sha2", "rotation_period_ms": 604800000})
    assert (await bob.call("GET", f"/rooms/{later}/state/m.room.encryption"))[
        "rotation_period_ms"] == 604800000


async def test_encrypted_events_are_relayed_opaquely(mx: Matrix) -> None:
    alice, bob = await account(mx, "A1"), await account(mx, "B1")
    room = await shared_room(alice, bob, encrypted=True)
    since = (await bob.sync())["next_batch"]
    content = {"algorithm": "m.megolm.v1.aes-sha2", "sender_key": "sk", "ciphertext": "AwgA",
               "session_id": "sess", "device_id": alice.device}
    sent = await alice.call("PUT", f"/rooms/{room}/send/m.room.encrypted/t1", content)
    got = await bob.sync(since, timeout=3000)
    [event] = got["rooms"]["join"][room]["timeline"]["events"]
    assert event["type"] == "m.room.encrypted" and event["content"] == content
    assert event["event_id"] == sent["event_id"]
    fetched = await bob.call("GET", f"/rooms/{room}/event/{sent['event_id']}")
    assert fetched["content"] == content
    # plaintext has no place in an encrypted room, from Matrix either
    refused = await alice.call("PUT", f"/rooms/{room}/send/m.room.message/t2",
                               {"msgtype": "m.text", "body": "plain"}, status=403)
    assert "encrypted" in refused["error"]


async def test_mtp_sees_encrypted_messages_honestly(mx: Matrix) -> None:
    owner = await mx.mtp.user("mtp", push=True)
    flow = await owner.group("secret group")
    alice = await account(mx, "A1")
    room = f"!{flow}:{SERVER_NAME}"
    await alice.call("POST", f"/rooms/{room}/join", {})
    await owner_encrypts_over_matrix(mx, owner, room)
    await alice.call("PUT", f"/rooms/{room}/send/m.room.encrypted/t1",
                     {"algorithm": "m.megolm.v1.aes-sha2", "ciphertext": "AwgA"})
    listed = await owner.call("all_messages", flow=[{"uuid": flow}])
    assert listed["errors"]["code"] == 200, listed
    [message] = listed["data"]["message"]
    assert message["text"] == ENCRYPTED_TEXT and message["text"]

    refused = await owner.send(flow, "plaintext from MTP")
    assert refused["errors"]["code"] == 403
    assert "encrypted" in refused["errors"]["detail"]
    edit = await owner.call("edited_message", message=[{"uuid": message["uuid"],
                                                      "text": "changed"}])
    assert edit["errors"]["code"] == 403


async def owner_encrypts_over_matrix(mx: Matrix, owner: Client, room: str) -> None:
    """The MTP owner logs in over Matrix too and turns encryption on."""
    response = await mx.raw("POST", V3 + "/login", json={
        "type": "m.login.password", "identifier": {"type": "m.id.user", "user": owner.login},
        "password": "secret-password"})
    assert response.status_code == 200, response.text
    token = response.json()["access_token"]
    put = await mx.raw("PUT", f"{V3}/rooms/{room}/state/m.room.encryption", token,
                       json={"algorithm": "m.megolm.v1.aes-sha2"})
    assert put.status_code == 200, put.text


async def test_incremental_sync_counts_follow_uploads_and_claims(mx: Matrix) -> None:
    alice, bob = await account(mx, "A1"), await account(mx, "B1")
    await alice.call("POST", "/keys/upload", {"device_keys": alice.device_keys(),
                                              "one_time_keys": {f"{OTK}:1": {"k": 1}}})
    first = await alice.sync()
    second = await alice.sync(first["next_batch"])
    assert second["device_one_time_keys_count"] == {OTK: 1}
    third = await alice.sync(second["next_batch"])  # nothing changed: no read needed
    assert third["device_one_time_keys_count"] == {OTK: 1}
    await bob.call("POST", "/keys/claim", {"one_time_keys": {alice.user_id: {"A1": OTK}}})
    after_claim = await alice.sync(third["next_batch"], timeout=2000)
    assert after_claim["device_one_time_keys_count"] == {}
    await alice.call("POST", "/keys/upload", {"one_time_keys": {f"{OTK}:2": {"k": 2},
                                                                f"{OTK}:3": {"k": 3}}})
    after_upload = await alice.sync(after_claim["next_batch"])
    assert after_upload["device_one_time_keys_count"] == {OTK: 2}


async def test_logging_out_ends_the_device_as_on_synapse(mx: Matrix) -> None:
    alice = await account(mx, "STAY")
    leaving = await account(mx, "LEAVING", alice.login)
    await leaving.call("POST", "/keys/upload", {"device_keys": leaving.device_keys()})
    await alice.call("PUT", "/devices/LEAVING", {"display_name": "old phone"})
    await leaving.call("POST", "/logout", {})
    queried = await alice.call("POST", "/keys/query", {"device_keys": {alice.user_id: []}})
    assert queried["device_keys"][alice.user_id] == {}
    assert [d["device_id"] for d in (await alice.call("GET", "/devices"))["devices"]] == [
        "STAY"]
    await alice.call("POST", "/logout/all", {})
    again = await account(mx, "NEW", alice.login)
    assert [d["device_id"] for d in (await again.call("GET", "/devices"))["devices"]] == [
        "NEW"]
