"""What Element does beyond plain text, end to end: typing notices, receipts and read markers,
account data and push rules, DMs made with `is_direct`, reactions and custom event types,
relations, context, the user directory."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import nio
import pytest

from tests.inprocess import AppServer
from tests.support import Client, ServerProcess, unique_login
from tests.test_matrix_support import SERVER_NAME, Matrix, matrix_server, matrix_session, user_id

pytestmark = pytest.mark.anyio

V3 = "/_matrix/client/v3"
V1 = "/_matrix/client/v1"


async def call(mx: Matrix, client: nio.AsyncClient, method: str, path: str,
               body: Any = None, status: int = 200) -> Any:
    response = await mx.raw(method, path, client.access_token,
                            **({} if body is None else {"json": body}))
    assert response.status_code == status, response.text
    return response.json()


async def sync(mx: Matrix, client: nio.AsyncClient, since: str | None = None,
               timeout: int = 0) -> dict[str, Any]:
    query = f"?timeout={timeout}" + (f"&since={since}" if since else "")
    result: dict[str, Any] = await call(mx, client, "GET", f"{V3}/sync{query}")
    return result


async def sync_until(mx: Matrix, client: nio.AsyncClient, since: str, want: Any,
                     rounds: int = 10) -> tuple[dict[str, Any], str]:
    """Long-poll until `want(response)` is true: that response and the next since."""
    for _ in range(rounds):
        response = await sync(mx, client, since, 2000)
        since = response["next_batch"]
        if want(response):
            return response, since
    raise AssertionError("never saw it")


def ephemeral(response: dict[str, Any], room: str, kind: str) -> list[dict[str, Any]]:
    joined = response["rooms"]["join"].get(room, {})
    return [e for e in joined.get("ephemeral", {}).get("events", []) if e["type"] == kind]


def typing_users(response: dict[str, Any], room: str) -> list[str] | None:
    found = ephemeral(response, room, "m.typing")
    return found[-1]["content"]["user_ids"] if found else None


def timeline(response: dict[str, Any], room: str) -> list[dict[str, Any]]:
    joined = response["rooms"]["join"].get(room, {})
    events: list[dict[str, Any]] = joined.get("timeline", {}).get("events", [])
    return events


async def say(client: nio.AsyncClient, room: str, body: str) -> str:
    response = await client.room_send(room, "m.room.message",
                                      {"msgtype": "m.text", "body": body})
    assert isinstance(response, nio.RoomSendResponse), response
    return str(response.event_id)


# -- typing -----------------------------------------------------------------------------------


async def test_typing_wakes_the_other_member_and_ends_with_a_message(mx: Matrix) -> None:
    alice, bob = await mx.user(), await mx.user()
    room = await mx.room(alice, bob)
    since = (await sync(mx, bob))["next_batch"]
    waiting = asyncio.create_task(sync(mx, bob, since, 5000))
    assert isinstance(mx.server, AppServer)
    await mx.server.until_long_polls()
    started = time.monotonic()
    typed = await alice.room_typing(room, True, timeout=30000)
    assert isinstance(typed, nio.RoomTypingResponse), typed
    response = await asyncio.wait_for(waiting, 5)
    assert time.monotonic() - started < 1.5
    assert typing_users(response, room) == [alice.user_id]
    assert timeline(response, room) == []

    await say(alice, room, "done typing")
    response, since = await sync_until(
        mx, bob, response["next_batch"], lambda r: typing_users(r, room) is not None)
    assert typing_users(response, room) == []
    assert [e["content"]["body"] for e in timeline(response, room)] == ["done typing"]


async def test_typing_ends_by_its_timeout(mx: Matrix) -> None:
    alice, bob = await mx.user(), await mx.user()
    room = await mx.room(alice, bob)
    since = (await sync(mx, bob))["next_batch"]
    await call(mx, alice, "PUT", f"{V3}/rooms/{room}/typing/{alice.user_id}",
               {"typing": True, "timeout": 600})
    response, since = await sync_until(mx, bob, since,
                                       lambda r: typing_users(r, room) is not None)
    assert typing_users(response, room) == [alice.user_id]
    response, since = await sync_until(mx, bob, since,
                                       lambda r: typing_users(r, room) is not None)
    assert typing_users(response, room) == []


async def test_typing_crosses_between_mtp_and_matrix(mx: Matrix) -> None:
    mtp = await Client.connect(mx.server.url)
    login = unique_login("typist")
    reply = await mtp.call("register_user", auth=False,
                           meta={"push": True, "extensions": ["typing"]},
                           user=[{"login": login, "password": "secret-password"}])
    assert reply["meta"] == {"extensions": ["typing"]}
    mtp.uuid, mtp.auth_id = reply["data"]["user"][0]["uuid"], reply["data"]["user"][0]["auth_id"]
    try:
        flow = await mtp.group("typing across")
        room = f"!{flow}:{SERVER_NAME}"
        bob = await mx.user()
        assert isinstance(await bob.join(room), nio.JoinResponse)
        bob_uuid = (await mtp.call("user_info", user=[{"login": bob.user}])
                    )["data"]["user"][0]["uuid"]
        since = (await sync(mx, bob))["next_batch"]

        await mtp.call("typing", flow=[{"uuid": flow, "typing": True}])
        response, since = await sync_until(mx, bob, since,
                                           lambda r: typing_users(r, room) is not None)
        assert typing_users(response, room) == [user_id(login)]

        typed = await bob.room_typing(room, True, timeout=30000)
        assert isinstance(typed, nio.RoomTypingResponse), typed
        seen = []  # its own notice first, then Bob's beside it
        while not seen or bob_uuid not in seen[-1]:
            push = await mtp.push()
            if push["meta"]["event"] == "typing":
                assert push["data"]["flow"][0]["uuid"] == flow
                seen.append(push["data"]["flow"][0]["typing"])
        assert seen == [[mtp.uuid], sorted([mtp.uuid, bob_uuid])]
    finally:
        await mtp.close()


async def test_typing_only_as_oneself_and_by_members(mx: Matrix) -> None:
    alice, bob, eve = await mx.user(), await mx.user(), await mx.user()
    room = await mx.room(alice, bob)
    await call(mx, bob, "PUT", f"{V3}/rooms/{room}/typing/{alice.user_id}",
               {"typing": True}, status=403)
    await call(mx, eve, "PUT", f"{V3}/rooms/{room}/typing/{eve.user_id}",
               {"typing": True}, status=403)
    await call(mx, alice, "PUT", f"{V3}/rooms/{room}/typing/{alice.user_id}",
               {"typing": "yes"}, status=400)


# -- receipts ---------------------------------------------------------------------------------


async def test_receipts_and_read_markers(mx: Matrix) -> None:
    alice, bob = await mx.user(), await mx.user()
    room = await mx.room(alice, bob)
    first = await say(alice, room, "read me")
    since = (await sync(mx, alice))["next_batch"]
    bob_since = (await sync(mx, bob))["next_batch"]

    assert isinstance(await bob.update_receipt_marker(room, first), nio.UpdateReceiptMarkerResponse)
    response, since = await sync_until(mx, alice, since,
                                       lambda r: bool(ephemeral(r, room, "m.receipt")))
    content = ephemeral(response, room, "m.receipt")[0]["content"]
    assert list(content[first]["m.read"]) == [bob.user_id]
    assert content[first]["m.read"][bob.user_id]["ts"] > 0

    # Element's way: /read_markers with the read marker and a private receipt.
    second = await say(alice, room, "and me")
    await call(mx, bob, "POST", f"{V3}/rooms/{room}/read_markers",
               {"m.fully_read": second, "m.read.private": second})
    mine, bob_since = await sync_until(
        mx, bob, bob_since, lambda r: bool(ephemeral(r, room, "m.receipt")) and bool(
            r["rooms"]["join"].get(room, {}).get("account_data", {}).get("events")))
    assert ephemeral(mine, room, "m.receipt")[-1]["content"][second] == {
        "m.read.private": {bob.user_id: ephemeral(mine, room, "m.receipt")[-1]["content"][
            second]["m.read.private"][bob.user_id]}}
    assert mine["rooms"]["join"][room]["account_data"]["events"] == [
        {"type": "m.fully_read", "content": {"event_id": second}}]
    got = await call(mx, bob, "GET",
                     f"{V3}/user/{bob.user_id}/rooms/{room}/account_data/m.fully_read")
    assert got == {"event_id": second}
    # A threaded receipt keeps its thread.
    await call(mx, bob, "POST", f"{V3}/rooms/{room}/receipt/m.read/{second}",
               {"thread_id": "main"})
    response, since = await sync_until(mx, alice, since,
                                       lambda r: bool(ephemeral(r, room, "m.receipt")))
    assert ephemeral(response, room, "m.receipt")[0]["content"] == {
        second: {"m.read": {bob.user_id: {
            "ts": ephemeral(response, room, "m.receipt")[0]["content"][second]["m.read"][
                bob.user_id]["ts"], "thread_id": "main"}}}}

    # Alice never sees the private receipt, not even in an initial sync.
    fresh = await sync(mx, alice)
    receipts = ephemeral(fresh, room, "m.receipt")
    assert receipts and all("m.read.private" not in by_type
                            for by_type in receipts[0]["content"].values())
    # (nio sends its receipts for the main thread: the later one replaced the first)
    assert receipts[0]["content"][second]["m.read"].keys() == {bob.user_id}
    # Bob's initial sync shows his private one.
    own = ephemeral(await sync(mx, bob), room, "m.receipt")[0]["content"]
    assert bob.user_id in own[second]["m.read.private"]


# -- account data and push rules --------------------------------------------------------------


async def test_account_data_echoed_to_other_devices(mx: Matrix) -> None:
    alice = await mx.user()
    other_device = mx.client(alice.user)
    assert isinstance(await other_device.login("matrix-secret-1"), nio.LoginResponse)
    room = await mx.room(alice)
    since = (await sync(mx, other_device))["next_batch"]
    direct = {"@someone:morelia.test": [room]}
    await call(mx, alice, "PUT", f"{V3}/user/{alice.user_id}/account_data/m.direct", direct)
    await call(mx, alice, "PUT",
               f"{V3}/user/{alice.user_id}/rooms/{room}/account_data/m.tag",
               {"tags": {"m.favourite": {}}})
    seen: dict[str, Any] = {}
    room_seen: dict[str, Any] = {}
    for _ in range(10):
        response = await sync(mx, other_device, since, 2000)
        since = response["next_batch"]
        seen.update({e["type"]: e["content"] for e in response["account_data"]["events"]})
        joined = response["rooms"]["join"].get(room, {})
        room_seen.update({e["type"]: e["content"]
                          for e in joined.get("account_data", {}).get("events", [])})
        if "m.direct" in seen and "m.tag" in room_seen:
            break
    assert seen["m.direct"] == direct
    assert room_seen["m.tag"] == {"tags": {"m.favourite": {}}}
    assert await call(mx, alice, "GET",
                      f"{V3}/user/{alice.user_id}/account_data/m.direct") == direct
    await call(mx, alice, "GET", f"{V3}/user/{alice.user_id}/account_data/m.nothing",
               status=404)
    bob = await mx.user()
    await call(mx, bob, "GET", f"{V3}/user/{alice.user_id}/account_data/m.direct", status=403)
    await call(mx, bob, "PUT", f"{V3}/user/{alice.user_id}/account_data/m.direct", {},
               status=403)
    initial = await sync(mx, other_device)
    kinds = {e["type"] for e in initial["account_data"]["events"]}
    assert {"m.direct", "m.push_rules"} <= kinds


MAX_TAGS = 100  # [MATRIX] MAX_ROOM_TAGS, by default


async def test_room_tags_are_the_rooms_m_tag_account_data(mx: Matrix) -> None:
    alice, bob = await mx.user(), await mx.user()
    room = await mx.room(alice)
    tags = f"{V3}/user/{alice.user_id}/rooms/{room}/tags"
    assert await call(mx, alice, "GET", tags) == {"tags": {}}
    await call(mx, alice, "PUT", f"{tags}/m.favourite", {"order": 0.25})
    await call(mx, alice, "PUT", f"{tags}/u.work", {})
    assert await call(mx, alice, "GET", tags) == {
        "tags": {"m.favourite": {"order": 0.25}, "u.work": {}}}
    stored = await call(mx, alice, "GET", f"{V3}/user/{alice.user_id}/rooms/{room}/account_data/"
                        "m.tag")
    assert stored == {"tags": {"m.favourite": {"order": 0.25}, "u.work": {}}}
    await call(mx, alice, "DELETE", f"{tags}/u.work")
    await call(mx, alice, "DELETE", f"{tags}/never.there")  # taking off what is not there: ok
    assert await call(mx, alice, "GET", tags) == {"tags": {"m.favourite": {"order": 0.25}}}
    # Only one's own tags, of rooms one is in; an order is a number from 0 to 1.
    await call(mx, bob, "GET", tags, status=403)
    await call(mx, bob, "PUT", f"{V3}/user/{bob.user_id}/rooms/{room}/tags/x", {}, status=403)
    for bad in ({"order": 2}, {"order": "first"}, {"order": True}):
        await call(mx, alice, "PUT", f"{tags}/bad", bad, status=400)
    await call(mx, alice, "PUT", f"{tags}/{'x' * 256}", {}, status=400)
    for index in range(MAX_TAGS - 1):
        await call(mx, alice, "PUT", f"{tags}/t{index}", {})
    refused = await mx.raw("PUT", f"{tags}/one.more", alice.access_token, json={})
    assert refused.status_code == 400 and refused.json()["errcode"] == "M_LIMIT_EXCEEDED"
    assert str(MAX_TAGS) in refused.json()["error"]
    await call(mx, alice, "PUT", f"{tags}/t0", {"order": 0.5})  # changing one still works


async def test_account_data_survives_a_restart(tmp_path: Path) -> None:
    with matrix_server("sqlite", tmp_path, in_process=True) as server:
        async for mx in matrix_session(server):
            alice = await mx.user()
            await call(mx, alice, "PUT",
                       f"{V3}/user/{alice.user_id}/account_data/im.vector.setting",
                       {"on": True})
            server.stop()
            server.start()
            assert await call(mx, alice, "GET",
                              f"{V3}/user/{alice.user_id}/account_data/im.vector.setting"
                              ) == {"on": True}
            events = (await sync(mx, alice))["account_data"]["events"]
            assert {"type": "im.vector.setting", "content": {"on": True}} in events


async def test_push_rules_default_set_and_changes(mx: Matrix) -> None:
    alice = await mx.user()
    rules = await call(mx, alice, "GET", f"{V3}/pushrules/")
    override = [rule["rule_id"] for rule in rules["global"]["override"]]
    assert override[0] == ".m.rule.master" and ".m.rule.suppress_notices" in override
    assert [r["rule_id"] for r in rules["global"]["underride"]][-2:] == [
        ".m.rule.message", ".m.rule.encrypted"]
    mention = next(rule for rule in rules["global"]["override"]
                   if rule["rule_id"] == ".m.rule.is_user_mention")
    assert mention["conditions"][0]["value"] == alice.user_id
    since = (await sync(mx, alice))["next_batch"]

    base = f"{V3}/pushrules/global"
    await call(mx, alice, "PUT", f"{base}/room/!quiet:morelia.test",
               {"actions": ["dont_notify"]})
    await call(mx, alice, "PUT", f"{base}/override/.m.rule.master/enabled", {"enabled": True})
    await call(mx, alice, "PUT", f"{base}/underride/.m.rule.message/actions",
               {"actions": []})
    assert await call(mx, alice, "GET", f"{base}/override/.m.rule.master/enabled") == {
        "enabled": True}
    assert (await call(mx, alice, "GET", f"{base}/room/!quiet:morelia.test"))["actions"] == [
        "dont_notify"]
    await call(mx, alice, "PUT", f"{base}/override/.m.rule.mine", {"actions": []}, status=400)
    await call(mx, alice, "DELETE", f"{base}/override/.m.rule.master", status=400)
    await call(mx, alice, "GET", f"{base}/room/!nothing:morelia.test", status=404)
    response, _ = await sync_until(mx, alice, since, lambda r: any(
        e["type"] == "m.push_rules" and e["content"]["global"]["room"]
        for e in r["account_data"]["events"]))
    pushed = next(e for e in response["account_data"]["events"] if e["type"] == "m.push_rules")
    assert pushed["content"]["global"]["override"][0]["enabled"] is True
    await call(mx, alice, "DELETE", f"{base}/room/!quiet:morelia.test")
    assert (await call(mx, alice, "GET", f"{V3}/pushrules/"))["global"]["room"] == []
    assert await call(mx, alice, "GET", f"{V3}/pushers") == {"pushers": []}
    await call(mx, alice, "POST", f"{V3}/pushers/set", {"kind": None, "app_id": "x",
                                                        "pushkey": "y"})


# -- DMs --------------------------------------------------------------------------------------


async def test_is_direct_on_the_invitees_member_event(mx: Matrix) -> None:
    alice, bob = await mx.user(), await mx.user()
    since = (await sync(mx, bob))["next_batch"]
    created = await alice.room_create(is_direct=True, invite=[bob.user_id],
                                      preset=nio.RoomPreset.trusted_private_chat)
    assert isinstance(created, nio.RoomCreateResponse), created
    room = created.room_id

    def invite_member(response: dict[str, Any]) -> dict[str, Any]:
        state = response["rooms"]["invite"][room]["invite_state"]["events"]
        return next(e for e in state if e["type"] == "m.room.member"
                    and e["state_key"] == bob.user_id)

    response, _ = await sync_until(mx, bob, since, lambda r: room in r["rooms"]["invite"])
    assert invite_member(response)["content"]["is_direct"] is True
    assert invite_member(await sync(mx, bob))["content"]["is_direct"] is True

    assert isinstance(await bob.join(room), nio.JoinResponse)
    members = [e for e in timeline(await sync(mx, bob), room)
               if e["type"] == "m.room.member" and e["state_key"] == bob.user_id]
    assert members[0]["content"]["membership"] == "invite"
    assert members[0]["content"]["is_direct"] is True


# -- reactions, custom types, relations, context ---------------------------------------------


async def test_reactions_and_custom_events_round_trip(mx: Matrix) -> None:
    alice, bob = await mx.user(), await mx.user()
    room = await mx.room(alice, bob)
    mtp = await mx.mtp.user()
    message = await say(alice, room, "react to me")
    since = (await sync(mx, bob))["next_batch"]
    reaction = {"m.relates_to": {"rel_type": "m.annotation", "event_id": message, "key": "👍"}}
    sent = await bob.room_send(room, "m.reaction", reaction)
    assert isinstance(sent, nio.RoomSendResponse), sent
    custom = {"anything": [1, 2, {"deep": True}]}
    other = await call(mx, alice, "PUT", f"{V3}/rooms/{room}/send/org.example.custom/t1",
                       custom)
    again = await call(mx, alice, "PUT", f"{V3}/rooms/{room}/send/org.example.custom/t1",
                       custom)
    assert again == other

    seen: list[dict[str, Any]] = []
    while len(seen) < 2:
        response = await sync(mx, bob, since, 2000)
        since = response["next_batch"]
        seen += timeline(response, room)
    assert [(e["type"], e["content"], e["event_id"]) for e in seen] == [
        ("m.reaction", reaction, sent.event_id),
        ("org.example.custom", custom, other["event_id"])]
    assert seen[0]["unsigned"]["transaction_id"]
    history = await call(mx, alice, "GET", f"{V3}/rooms/{room}/messages?dir=b&limit=3")
    assert [e["type"] for e in history["chunk"]][:2] == ["org.example.custom", "m.reaction"]
    single = await call(mx, alice, "GET", f"{V3}/rooms/{room}/event/{sent.event_id}")
    assert single["content"] == reaction

    # MTP sees only the message.
    flow = room[1:].split(":")[0]
    joined = await mtp.call("join_flow", flow=[{"uuid": flow}])
    assert joined["errors"]["code"] == 200, joined
    update = await mtp.call("get_update", time=0)
    texts = [m["text"] for m in update["data"].get("message") or [] if m["from_flow"] == flow]
    assert texts == ["react to me"]

    # Relations and context.
    related = await call(mx, alice, "GET", f"{V1}/rooms/{room}/relations/{message}")
    assert [e["event_id"] for e in related["chunk"]] == [sent.event_id]
    only = await call(mx, alice, "GET",
                      f"{V1}/rooms/{room}/relations/{message}/m.annotation/m.reaction")
    assert [e["event_id"] for e in only["chunk"]] == [sent.event_id]
    none = await call(mx, alice, "GET", f"{V1}/rooms/{room}/relations/{message}/m.thread")
    assert none["chunk"] == []
    context = await call(mx, alice, "GET", f"{V3}/rooms/{room}/context/{sent.event_id}?limit=4")
    assert context["event"]["event_id"] == sent.event_id
    assert context["events_before"][0]["event_id"] == message
    assert context["events_after"][0]["event_id"] == other["event_id"]
    assert any(e["type"] == "m.room.create" for e in context["state"])
    await call(mx, alice, "GET", f"{V3}/rooms/{room}/context/$999999999", status=404)

    # Taking a reaction back: its author redacts it; another member (not the owner) may not.
    carol = await mx.user()
    assert isinstance(await carol.join(room), nio.JoinResponse)
    await call(mx, carol, "PUT", f"{V3}/rooms/{room}/redact/{sent.event_id}/x1", {},
               status=403)
    redacted = await call(mx, bob, "PUT", f"{V3}/rooms/{room}/redact/{sent.event_id}/x1", {})
    redaction = next(e for e in timeline(await sync(mx, alice), room)
                     if e["event_id"] == redacted["event_id"])
    assert redaction["type"] == "m.room.redaction" and redaction["redacts"] == sent.event_id


async def test_reactions_in_a_channel_and_custom_events_follow_the_rules(mx: Matrix) -> None:
    owner = await mx.mtp.user()
    channel = await owner.group("News", kind="channel")
    bob = await mx.user()
    room = f"!{channel}:morelia.test"
    assert isinstance(await bob.join(room), nio.JoinResponse)
    sent = await owner.send(channel, "headline")
    assert sent["errors"]["code"] == 200
    message = f"$m{sent['data']['message'][0]['uuid']}"
    await call(mx, bob, "PUT", f"{V3}/rooms/{room}/send/m.reaction/r1", {"m.relates_to": {
        "rel_type": "m.annotation", "event_id": message, "key": "🎉"}})
    await call(mx, bob, "PUT", f"{V3}/rooms/{room}/send/org.example.custom/c1", {},
               status=403)
    eve = await mx.user()
    await call(mx, eve, "PUT", f"{V3}/rooms/{room}/send/m.reaction/r1", {}, status=403)


# -- directory --------------------------------------------------------------------------------


async def test_user_directory_finds_those_sharing_a_room(mx: Matrix) -> None:
    alice, bob, stranger = await mx.user("dira"), await mx.user("dirb"), await mx.user("dirc")
    await mx.room(alice, bob)
    found = await call(mx, alice, "POST", f"{V3}/user_directory/search",
                       {"search_term": bob.user.split("-")[1]})
    assert [r["user_id"] for r in found["results"]] == [bob.user_id]
    assert found["limited"] is False
    hidden = await call(mx, alice, "POST", f"{V3}/user_directory/search",
                        {"search_term": stranger.user})
    assert hidden["results"] == []
    assert await call(mx, alice, "GET", f"{V3}/account/3pid") == {"threepids": []}
    assert user_id(alice.user) == alice.user_id


async def test_user_directory_of_everyone(tmp_path: Path) -> None:
    with matrix_server("sqlite", tmp_path, in_process=True) as plain:
        plain.stop()
    server = ServerProcess(tmp_path, env={**plain.env, "MORELIA_MATRIX_USER_DIRECTORY": "all"})
    with server:
        async for mx in matrix_session(server):
            alice, stranger = await mx.user(), await mx.user()
            found = await call(mx, alice, "POST", f"{V3}/user_directory/search",
                               {"search_term": stranger.user, "limit": 5})
            assert [r["user_id"] for r in found["results"]] == [stranger.user_id]
