"""Matrix POST /search end to end (matrix-nio clients, the search over HTTP: nio has no
search call): room events found by their words in the rooms one is in, by rank or newest
first, a page at a time, edits bundled, context, and clear errors; MTP and Matrix find each
other's messages."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import nio
import pytest

from tests.support import expect_reply
from tests.test_matrix_support import SERVER_NAME, Matrix

pytestmark = pytest.mark.anyio

V3 = "/_matrix/client/v3"


async def send(client: nio.AsyncClient, room: str, body: str,
               extra: dict[str, Any] | None = None) -> str:
    response = await client.room_send(room, "m.room.message",
                                      {"msgtype": "m.text", "body": body, **(extra or {})},
                                      tx_id=str(uuid.uuid4()))
    assert isinstance(response, nio.RoomSendResponse), response
    return str(response.event_id)


async def search(mx: Matrix, client: nio.AsyncClient, term: Any, next_batch: str | None = None,
                 **criteria: Any) -> httpx.Response:
    path = f"{V3}/search" + (f"?next_batch={next_batch}" if next_batch else "")
    return await mx.raw("POST", path, client.access_token, json={
        "search_categories": {"room_events": {"search_term": term, **criteria}}})


async def room_events(mx: Matrix, client: nio.AsyncClient, term: str,
                      next_batch: str | None = None, **criteria: Any) -> dict[str, Any]:
    response = await search(mx, client, term, next_batch, **criteria)
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()["search_categories"]["room_events"]
    return found


def bodies(found: dict[str, Any]) -> list[str]:
    return [result["result"]["content"]["body"] for result in found["results"]]


async def test_room_events_of_ones_rooms_are_found_by_their_words(mx: Matrix) -> None:
    alice, bob = await mx.user("alice"), await mx.user("bob")
    shared = await mx.room(alice, bob, preset=nio.RoomPreset.public_chat)
    private = await mx.room(bob, preset=nio.RoomPreset.private_chat)
    meeting = await send(alice, shared, "The budget meeting moved to Friday")
    russian = await send(alice, shared, "Бюджет утвердили, ура!")
    await send(bob, private, "bob's own budget notes")
    found = await room_events(mx, alice, "BUDGET")
    assert found["count"] == 1 and found["highlights"] == ["budget"]
    [result] = found["results"]
    assert result["rank"] > 0
    event = result["result"]
    assert (event["event_id"], event["room_id"], event["type"]) == (
        meeting, shared, "m.room.message")
    single = await mx.raw("GET", f"{V3}/rooms/{shared}/event/{meeting}", alice.access_token)
    assert event == single.json()  # as the timeline renders it
    assert bodies(await room_events(mx, alice, "бюджет")) == ["Бюджет утвердили, ура!"]
    assert [r["result"]["event_id"] for r in (await room_events(mx, alice, "утвер"))[
        "results"]] == [russian]
    assert sorted(bodies(await room_events(mx, bob, "budget"))) == [
        "The budget meeting moved to Friday", "bob's own budget notes"]
    assert bodies(await room_events(mx, bob, "budget", filter={"rooms": [private]})) == [
        "bob's own budget notes"]
    assert bodies(await room_events(mx, bob, "budget", filter={"not_rooms": [private]})) == [
        "The budget meeting moved to Friday"]
    # Only message bodies are searched.
    assert (await room_events(mx, bob, "budget", keys=["content.name"]))["results"] == []


async def test_edits_are_found_by_their_new_words_and_redactions_never(mx: Matrix) -> None:
    alice = await mx.user("alice")
    room = await mx.room(alice)
    first = await send(alice, room, "a rough sketch")
    await send(alice, room, "* a finished drawing", {
        "m.new_content": {"msgtype": "m.text", "body": "a finished drawing"},
        "m.relates_to": {"rel_type": "m.replace", "event_id": first}})
    gone = await send(alice, room, "a regrettable remark")
    redacted = await alice.room_redact(room, gone)
    assert isinstance(redacted, nio.RoomRedactResponse), redacted
    assert (await room_events(mx, alice, "sketch"))["results"] == []
    [result] = (await room_events(mx, alice, "drawing"))["results"]
    event = result["result"]
    assert event["event_id"] == first and event["content"]["body"] == "a rough sketch"
    edit = event["unsigned"]["m.relations"]["m.replace"]
    assert edit["content"]["m.new_content"]["body"] == "a finished drawing"
    assert (await room_events(mx, alice, "regrettable"))["results"] == []


async def test_pages_newest_first_and_by_rank_come_with_next_batch(mx: Matrix) -> None:
    alice = await mx.user("alice")
    room = await mx.room(alice)
    sent = [await send(alice, room, f"numbered note {number}") for number in range(5)]
    for order in ("recent", "rank"):
        seen: list[str] = []
        token = None
        while True:
            found = await room_events(mx, alice, "note", token, order_by=order,
                                      filter={"limit": 2})
            assert len(found["results"]) <= 2
            seen.extend(result["result"]["event_id"] for result in found["results"])
            token = found.get("next_batch")
            if token is None:
                break
        assert sorted(seen) == sorted(sent), order
        if order == "recent":
            assert seen == sent[::-1] and "count" not in found


async def test_context_and_profiles_come_when_asked(mx: Matrix) -> None:
    alice, bob = await mx.user("alice"), await mx.user("bob")
    room = await mx.room(alice, bob)
    await send(bob, room, "what is for lunch?")
    target = await send(alice, room, "soup and bread")
    after = await send(bob, room, "lovely")
    [result] = (await room_events(mx, alice, "soup", event_context={
        "before_limit": 1, "after_limit": 3, "include_profile": True}))["results"]
    assert result["result"]["event_id"] == target
    context = result["context"]
    assert [event["content"]["body"] for event in context["events_before"]] == [
        "what is for lunch?"]
    assert [event["event_id"] for event in context["events_after"]] == [after]
    assert context["profile_info"][bob.user_id]["displayname"]
    assert context["start"] and context["end"]
    plain = (await room_events(mx, alice, "soup"))["results"][0]
    assert "context" not in plain


async def test_mtp_and_matrix_find_each_others_messages(mx: Matrix) -> None:
    alice = await mx.user("alice")
    room = await mx.room(alice, preset=nio.RoomPreset.public_chat)
    flow = room[1:].split(":")[0]
    mtp = await mx.mtp.user("mtp")
    expect_reply(await mtp.call("join_flow", flow=[{"uuid": flow}]), "join_flow", 200)
    expect_reply(await mtp.send(flow, "written over mtp: lighthouse"), "send_message", 200)
    await send(alice, room, "written over matrix: harbour")
    assert bodies(await room_events(mx, alice, "lighthouse")) == [
        "written over mtp: lighthouse"]
    reply = expect_reply(await mtp.call("search_messages", search={"text": "harbour"}),
                         "search_messages", 200)
    assert [m["text"] for m in reply["data"]["message"]] == ["written over matrix: harbour"]


@pytest.mark.parametrize(("body", "status", "errcode"), [
    ({}, 400, "M_MISSING_PARAM"),
    ({"search_categories": {"room_events": {}}}, 400, "M_MISSING_PARAM"),
    ({"search_categories": {"room_events": {"search_term": 5}}}, 400, "M_BAD_JSON"),
    ({"search_categories": {"room_events": {"search_term": ""}}}, 400, "M_INVALID_PARAM"),
    ({"search_categories": {"room_events": {"search_term": "x" * 257}}}, 400, "M_TOO_LARGE"),
    ({"search_categories": {"room_events": {
        "search_term": " ".join(f"w{n}" for n in range(17))}}}, 400, "M_LIMIT_EXCEEDED"),
    ({"search_categories": {"room_events": {"search_term": "a", "keys": ["content.x"]}}},
     400, "M_BAD_JSON"),
    ({"search_categories": {"room_events": {"search_term": "a", "order_by": "oldest"}}},
     400, "M_INVALID_PARAM"),
    ({"search_categories": {"room_events": {"search_term": "a", "filter": {"limit": "3"}}}},
     400, "M_BAD_JSON"),
    ({"search_categories": {"room_events": {"search_term": "a", "filter": {
        "rooms": [f"!123:{SERVER_NAME}"]}}}}, 404, "M_NOT_FOUND"),
    ({"search_categories": {"room_events": {"search_term": "a", "filter": {
        "rooms": ["!123:elsewhere.example"]}}}}, 404, "M_NOT_FOUND"),
])
async def test_bad_searches_get_clear_errors(mx: Matrix, body: dict[str, Any], status: int,
                                             errcode: str) -> None:
    alice = await mx.user("alice")
    response = await mx.raw("POST", f"{V3}/search", alice.access_token, json=body)
    assert (response.status_code, response.json()["errcode"]) == (status, errcode), \
        response.text


async def test_other_refusals(mx: Matrix) -> None:
    alice, bob = await mx.user("alice"), await mx.user("bob")
    private = await mx.room(bob, preset=nio.RoomPreset.private_chat)
    refused = await search(mx, alice, "a", filter={"rooms": [private]})
    assert (refused.status_code, refused.json()["errcode"]) == (403, "M_FORBIDDEN")
    bad_token = await search(mx, alice, "a", "not-a-token")
    assert (bad_token.status_code, bad_token.json()["errcode"]) == (400, "M_INVALID_PARAM")
    anonymous = await mx.raw("POST", f"{V3}/search", json={
        "search_categories": {"room_events": {"search_term": "a"}}})
    assert (anonymous.status_code, anonymous.json()["errcode"]) == (401, "M_MISSING_TOKEN")
    nothing = await mx.raw("POST", f"{V3}/search", alice.access_token,
                           json={"search_categories": {}})
    assert nothing.status_code == 200 and nothing.json() == {"search_categories": {}}
