"""MTP search_messages end to end (PROTOCOL.md): whole messages of the flows one reads, by
rank or newest first, a page at a time, and clear answers to bad requests."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.support import (
    DATABASE_KINDS,
    Client,
    Clients,
    ServerProcess,
    expect_reply,
    running_server,
)

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module", params=DATABASE_KINDS)
def mtp(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
        ) -> Iterator[ServerProcess]:
    with running_server(request.param, tmp_path_factory.mktemp("search"), users=20,
                        in_process=True) as process:
        yield process


async def search(client: Client, text: Any, flows: list[str] | None = None,
                 **options: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"search": {"text": text, **options}}
    if flows is not None:
        data["flow"] = [{"uuid": flow} for flow in flows]
    return await client.call("search_messages", **data)


async def found(client: Client, text: str, **options: Any) -> list[str]:
    reply = expect_reply(await search(client, text, **options), "search_messages", 200)
    return [message["text"] for message in reply["data"]["message"]]


async def test_whole_messages_of_ones_flows_are_found_by_their_words(clients: Clients) -> None:
    anna, boris = await clients.user("anna"), await clients.user("boris")
    group = await anna.group(users=[boris.uuid])
    private = await boris.group()
    for text in ("Meeting tomorrow at ten", "Встреча завтра в десять, ёлки!"):
        expect_reply(await anna.send(group, text), "send_message", 200)
    expect_reply(await boris.send(private, "a private meeting"), "send_message", 200)
    reply = expect_reply(await search(anna, "MEETING"), "search_messages", 200)
    [message] = reply["data"]["message"]
    page = expect_reply(await anna.call("all_messages", flow=[{"uuid": group}]),
                        "all_messages", 200)
    assert message == page["data"]["message"][0]  # as all_messages gives it
    assert reply["data"]["search"] == {"count": 1, "highlights": ["meeting"]}
    assert await found(anna, "встреча ЕЛКИ") == ["Встреча завтра в десять, ёлки!"]
    assert await found(anna, "завт") == ["Встреча завтра в десять, ёлки!"]
    assert sorted(await found(boris, "meeting")) == ["Meeting tomorrow at ten",
                                                     "a private meeting"]
    assert await found(boris, "meeting", flows=[private]) == ["a private meeting"]
    assert (await search(anna, "meeting", flows=[private]))["errors"]["code"] == 403


async def test_edits_and_deletions_change_what_is_found(clients: Clients) -> None:
    anna = await clients.user("anna")
    flow = await anna.group()
    first = (await anna.send(flow, "an original thought"))["data"]["message"][0]["uuid"]
    second = (await anna.send(flow, "another thought", 2))["data"]["message"][0]["uuid"]
    expect_reply(await anna.call("edited_message", message=[{"uuid": first,
                                                            "text": "a revised idea"}]),
                 "edited_message", 200)
    expect_reply(await anna.call("delete_message", message=[{"uuid": second}]),
                 "delete_message", 200)
    assert await found(anna, "thought") == []
    assert await found(anna, "original") == []
    assert await found(anna, "revised") == ["a revised idea"]
    assert await found(anna, "deleted") == []


@pytest.mark.parametrize("order", ["rank", "recent"])
async def test_pages_come_with_a_token_for_the_next(clients: Clients, order: str) -> None:
    anna = await clients.user("anna")
    flow = await anna.group()
    for number in range(7):
        await anna.send(flow, f"paged words {number}", number)
    seen: list[str] = []
    token = None
    while True:
        reply = expect_reply(await search(anna, "paged", order=order, limit=3,
                                          next_batch=token), "search_messages", 200)
        seen.extend(message["text"] for message in reply["data"]["message"])
        token = reply["data"]["search"].get("next_batch")
        if token is None:
            break
    assert sorted(seen) == sorted(f"paged words {number}" for number in range(7))
    if order == "recent":
        assert seen == [f"paged words {number}" for number in range(6, -1, -1)]


@pytest.mark.parametrize(("data", "code", "detail"), [
    ({}, 400, "data.search.text"),
    ({"search": {"order": "rank"}}, 400, "data.search.text"),
    ({"search": {"text": ""}}, 400, "no word"),
    ({"search": {"text": "x" * 257}}, 400, "at most 256 characters"),
    ({"search": {"text": " ".join(f"w{n}" for n in range(17))}}, 400, "at most 16 words"),
    ({"search": {"text": 5}}, 415, "search.text"),
    ({"search": {"text": ["a"]}}, 415, "search.text"),
    ({"search": {"text": "a", "limit": "5"}}, 415, "search.limit"),
    ({"search": {"text": "a", "limit": 0}}, 400, "at least 1"),
    ({"search": {"text": "a", "order": "sideways"}}, 400, "rank, recent"),
    ({"search": {"text": "a", "next_batch": "not a token"}}, 400, "next_batch"),
    ({"search": "a"}, 415, "data.search"),
    ({"search": {"text": "a"}, "flow": [{"uuid": "1234"}]}, 404, "No flow 1234"),
    ({"search": {"text": "a"}, "flow": [{"title": "no uuid"}]}, 400, "uuid"),
])
async def test_bad_requests_get_clear_answers(clients: Clients, data: dict[str, Any],
                                              code: int, detail: str) -> None:
    anna = await clients.user("anna")
    reply = await anna.call("search_messages", **data)
    assert reply["type"] == "search_messages"
    assert reply["errors"]["code"] == code and detail in reply["errors"]["detail"], reply
    # The connection goes on.
    assert (await anna.call("ping_pong"))["errors"]["code"] == 200


async def test_a_search_needs_credentials(clients: Clients) -> None:
    stranger = await clients.anonymous()
    reply = await stranger.call("search_messages", auth=False, search={"text": "a"})
    assert reply["errors"]["code"] == 401


async def test_messages_found_carry_what_the_connection_asked_for(clients: Clients) -> None:
    anna = await clients.user("anna")
    flow = await anna.group()
    first = (await anna.send(flow, "the question"))["data"]["message"][0]["uuid"]
    answer = expect_reply(await anna.call("send_message", flow=[{"uuid": flow}], message=[
        {"client_id": 2, "text": "the answer", "reply_to": first}]), "send_message", 200)
    uuid = answer["data"]["message"][0]["uuid"]
    expect_reply(await anna.call("react", message=[{"uuid": uuid, "reaction": "👍"}]),
                 "react", 200)
    plain = expect_reply(await search(anna, "answer"), "search_messages", 200)
    assert not {"reply_to", "reactions"} & set(plain["data"]["message"][0])
    asked = await anna.call("ping_pong", meta={
        "extensions": ["replies", "reactions", "mentions", "files"]})
    assert asked["meta"]["extensions"] == ["files", "mentions", "reactions", "replies"]
    found = expect_reply(await search(anna, "answer"), "search_messages", 200)
    page = expect_reply(await anna.call("all_messages", flow=[{"uuid": flow}]),
                        "all_messages", 200)
    [message] = found["data"]["message"]
    assert message == page["data"]["message"][1]  # as all_messages gives it to them
    assert message["reply_to"] == first
    assert message["reactions"] == [{"key": "👍", "users": [anna.uuid]}]
