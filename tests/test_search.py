"""mod.service.search and its index (mod.db.search), in process, on SQLite and on PostgreSQL
when MORELIA_TEST_POSTGRES_URI is set: what a search finds, for whom, in which order, a page
at a time, and its bounds."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from mod.config.validator import Search as SearchSettings
from mod.db import search as index
from mod.db.engine import Conn
from mod.error import ServiceError
from mod.service import Caller, Found
from mod.service.search import parse
from tests.service_support import World, service_world
from tests.support import DATABASE_KINDS, database_uri

pytestmark = pytest.mark.anyio

ENCRYPTION = {"algorithm": "m.megolm.v1.aes-sha2"}


async def refused(code: int, call: Any) -> str:
    with pytest.raises(ServiceError) as caught:
        await call
    assert caught.value.code == code, caught.value.detail
    return caught.value.detail


async def texts(world: World, caller: Caller, text: str, **options: Any) -> list[str]:
    found = await world.service.search.messages(caller, text, **options)
    return [hit.message["text"] for hit in found.hits]


async def send(world: World, caller: Caller, flow: str, *texts: str) -> list[str]:
    uuids = []
    for number, text in enumerate(texts):
        sent = await world.service.messages.send(caller, flow, number, {"text": text})
        uuids.append(sent.value["uuid"])
    return uuids


# -- what a search text means -----------------------------------------------------------------


def test_a_search_text_is_its_words_and_the_last_is_a_prefix_when_long_enough() -> None:
    settings = SearchSettings()
    query = parse("  Meeting e-mail meeting tomo", settings)
    assert query.terms == index.Terms(("Meeting", "e-mail", "tomo"), prefix=True)
    assert query.highlights == ("meeting", "e", "mail", "tomo")
    assert parse("meeting tomo ", settings).terms.prefix is False  # a finished word
    assert parse("meeting the", settings).terms.prefix is False  # too short to be a prefix
    assert parse("meeting tomorrow?", settings).terms.prefix is False
    assert parse("!!! ёлка", settings).terms.phrases == ("ёлка",)


@pytest.mark.parametrize(("text", "code", "words"), [
    ("", 400, "no word"), ("  ", 400, "no word"), ("!!! ... 🙂", 400, "no word"),
    ("x" * 257, 400, "at most 256 characters"),
    (" ".join(f"w{n}" for n in range(17)), 400, "at most 16 words")])
def test_a_search_text_out_of_bounds_is_refused(text: str, code: int, words: str) -> None:
    with pytest.raises(ServiceError) as caught:
        parse(text, SearchSettings())
    assert caught.value.code == code and words in caught.value.detail


# -- what is found, and for whom ------------------------------------------------------------


async def test_english_and_russian_words_are_found_whatever_their_case(world: World) -> None:
    anna = await world.user("anna")
    flow = await world.flow(anna)
    await send(world, anna, flow, "The Meeting is at ten", "Привет, МИР! Ёлка зелёная",
               "write to anna@example.com about the e-mail", "nothing here")
    assert await texts(world, anna, "meeting") == ["The Meeting is at ten"]
    assert await texts(world, anna, "MEETING ten") == ["The Meeting is at ten"]
    assert await texts(world, anna, "мир") == ["Привет, МИР! Ёлка зелёная"]
    assert await texts(world, anna, "привет ЁЛКА") == ["Привет, МИР! Ёлка зелёная"]
    assert await texts(world, anna, "елка зеленая") == ["Привет, МИР! Ёлка зелёная"]
    assert await texts(world, anna, "anna") == ["write to anna@example.com about the e-mail"]
    assert await texts(world, anna, "example.com mail") == [
        "write to anna@example.com about the e-mail"]
    assert await texts(world, anna, "meet") == ["The Meeting is at ten"]  # a prefix
    assert await texts(world, anna, "meet ") == []  # a whole word
    assert await texts(world, anna, "here meeting") == []  # every word in one message
    assert await texts(world, anna, "прив") == ["Привет, МИР! Ёлка зелёная"]


async def test_only_the_flows_one_reads_are_searched(world: World) -> None:
    anna, boris, vera = (await world.user("anna"), await world.user("boris"),
                         await world.user("vera"))
    public = await world.flow(anna)
    private = await world.flow(anna, "group", boris, private=True)
    chat = await world.flow(boris, "chat", vera)
    await send(world, anna, public, "secret plans in public")
    await send(world, boris, private, "secret plans in private")
    await send(world, vera, chat, "secret plans in a chat")
    assert sorted(await texts(world, boris, "secret")) == [
        "secret plans in a chat", "secret plans in private"]
    assert sorted(await texts(world, anna, "secret")) == [
        "secret plans in private", "secret plans in public"]
    assert await texts(world, vera, "secret") == ["secret plans in a chat"]
    # A public flow one is not in is not searched either: reading it takes joining it.
    outsider = await world.user("outsider")
    assert await texts(world, outsider, "secret") == []
    await refused(403, world.service.search.messages(outsider, "secret", flows=[public]))
    await refused(403, world.service.search.messages(anna, "secret", flows=[chat]))
    await refused(404, world.service.search.messages(anna, "secret", flows=["12345"]))
    assert await texts(world, boris, "secret", flows=[private]) == ["secret plans in private"]
    assert await texts(world, boris, "secret", not_flows=[private]) == ["secret plans in a chat"]
    assert await texts(world, boris, "secret", flows=[]) == []
    # Leaving a flow takes its messages out of one's results.
    await world.service.flows.leave(vera, chat)
    assert await texts(world, vera, "secret") == []


async def test_deleted_and_encrypted_messages_are_never_found(world: World) -> None:
    anna = await world.user("anna")
    flow = await world.flow(anna)
    _, gone = await send(world, anna, flow, "a kept word", "a deleted word")
    await world.service.messages.delete(anna, gone)
    assert await texts(world, anna, "word") == ["a kept word"]
    assert await texts(world, anna, "deleted") == []
    assert await texts(world, anna, "message") == []  # the text a deleted message reads
    secret = await world.flow(anna)
    await world.service.flows.encrypt(anna, secret, ENCRYPTION)
    await world.service.messages.send(anna, secret, 1, {"text": "ignored"}, encrypted=True)
    assert await texts(world, anna, "encrypted") == []
    assert await texts(world, anna, "matrix client") == []


async def test_an_edit_is_found_by_its_new_words_only(world: World) -> None:
    anna = await world.user("anna")
    flow = await world.flow(anna)
    [uuid] = await send(world, anna, flow, "the first draft")
    await world.service.messages.edit(anna, uuid, "the final text")
    assert await texts(world, anna, "draft") == []
    found = await world.service.search.messages(anna, "final")
    assert [hit.message["uuid"] for hit in found.hits] == [uuid]
    assert found.hits[0].message["edited_status"] is True


async def test_rank_puts_closer_matches_first_and_recent_the_newest(world: World) -> None:
    anna = await world.user("anna")
    flow = await world.flow(anna)
    await send(world, anna, flow, "coffee", "a long message that says coffee only once among "
               "many other words of no interest", "coffee coffee coffee", "tea")
    by_rank = await world.service.search.messages(anna, "coffee")
    # bm25 on SQLite, ts_rank on PostgreSQL: they agree that the word once in a long message
    # is the farthest.
    assert sorted(hit.message["text"] for hit in by_rank.hits[:2]) == [
        "coffee", "coffee coffee coffee"]
    assert by_rank.hits[-1].message["text"].startswith("a long message")
    assert by_rank.count == 3 and by_rank.next_batch is None
    assert [hit.rank for hit in by_rank.hits] == sorted((hit.rank for hit in by_rank.hits),
                                                       reverse=True)
    assert all(hit.rank > 0 for hit in by_rank.hits)
    assert by_rank.highlights == ("coffee",)
    recent = await world.service.search.messages(anna, "coffee", order="recent")
    assert [hit.message["text"] for hit in recent.hits] == [
        "coffee coffee coffee", by_rank.hits[-1].message["text"], "coffee"]


@pytest.mark.parametrize("order", ["rank", "recent"])
async def test_pages_follow_one_another_to_the_end(world: World, order: str) -> None:
    anna = await world.user("anna")
    flow = await world.flow(anna)
    sent = await send(world, anna, flow, *(f"page word {n}" for n in range(23)))
    seen: list[str] = []
    token = None
    pages = 0
    while True:
        found = await world.service.search.messages(anna, "word", order=order, limit=5,
                                                    next_batch=token)
        seen.extend(hit.message["uuid"] for hit in found.hits)
        pages += 1
        if order == "rank" and token is None:
            assert found.count == 23
        if pages == 2:  # a message sent meanwhile changes no page
            await send(world, anna, flow, "a new word")
        token = found.next_batch
        if token is None:
            break
    assert pages == 5 and sorted(seen) == sorted(sent) and len(seen) == len(set(seen))
    if order == "recent":
        assert seen == sent[::-1]


async def test_limits_and_tokens_are_checked(world: World) -> None:
    anna = await world.user("anna")
    flow = await world.flow(anna)
    await send(world, anna, flow, *(f"many {n}" for n in range(60)))
    assert len((await world.service.search.messages(anna, "many")).hits) == 10
    big = await world.service.search.messages(anna, "many", limit=1000)
    assert len(big.hits) == 50 and big.next_batch is not None  # [SEARCH] RESULTS_LIMIT
    await refused(400, world.service.search.messages(anna, "many", limit=0))
    await refused(400, world.service.search.messages(anna, "many", order="oldest"))
    for token in ("x", "r1", "t1.2", "r" + "9" * 30 + ".1", big.next_batch + "0" * 20):
        await refused(400, world.service.search.messages(anna, "many", next_batch=token))
    # A token of one order is not one of the other.
    await refused(400, world.service.search.messages(anna, "many", order="recent",
                                                     next_batch=big.next_batch))
    await refused(400, world.service.search.messages(
        anna, "many", flows=[str(n) for n in range(101)]))


async def test_matrix_hits_carry_their_events_edits_and_context(world: World) -> None:
    anna = await world.user("anna")
    flow = await world.flow(anna)
    first, target, last = await send(world, anna, flow, "before", "the target", "after")
    await world.service.messages.edit(anna, target, "the target, edited")
    found = await world.service.search.messages(anna, "target", events=True, context=(1, 5))
    [hit] = found.hits
    assert hit.sent is not None and hit.sent.subject == target
    assert hit.edit is not None and hit.edit.kind == "message_edited"
    assert [change.subject for change in hit.before] == [first]
    assert [change.subject for change in hit.after][:2] == [last, target]  # the send, the edit
    assert found.people is not None and anna.uuid in found.people.users


# -- bounds -----------------------------------------------------------------------------------


async def test_searches_past_the_queue_are_refused_while_others_are_served(
        tmp_path: Path) -> None:
    with database_uri(DATABASE_KINDS[0], tmp_path) as uri:
        async with service_world(uri, search={"at_once": 1, "queue": 1}) as world:
            anna = await world.user("anna")
            flow = await world.flow(anna)
            await send(world, anna, flow, "queued word")
            search = world.service.search
            await search._running.acquire()  # a search running
            try:
                waiting = asyncio.create_task(search.messages(anna, "queued"))
                while search._waiting == 0:
                    await asyncio.sleep(0)
                assert "Too many searches" in await refused(429, search.messages(anna, "word"))
                # Reading goes on meanwhile.
                page = await world.service.messages.page(anna, flow, None, None)
                assert page.count == 1
            finally:
                search._running.release()
            assert [hit.message["text"] for hit in (await waiting).hits] == ["queued word"]
            assert len((await search.messages(anna, "word")).hits) == 1


def _many(conn: Conn, flow: str, user: str, count: int) -> None:
    """`count` messages of the same words, straight into the table (the next search indexes
    them)."""
    numbers = ("SELECT generate_series(1, %s) AS n" if conn.postgres else
               "WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < ?) "
               "SELECT n FROM s")
    conn.execute(f"INSERT INTO messages (uuid, flow_uuid, user_uuid, client_id, text, "
                 "file_picture, file_video, file_audio, file_document, emoji, time_created, "
                 "edited_time, edited_status, deleted, reply_to, file_name, file_type) "
                 f"SELECT 'bulk' || n, {'%s' if conn.postgres else '?'}, "
                 f"{'%s' if conn.postgres else '?'}, n, "
                 "'slow words of a slow search number ' || n, '', '', '', '', '', 1, 0, "
                 f"{'FALSE, FALSE' if conn.postgres else '0, 0'}, '', '', '' "
                 f"FROM ({numbers}) AS numbers",
                 flow, user, count)


@pytest.mark.parametrize("kind", DATABASE_KINDS)
async def test_a_search_past_its_time_is_stopped_and_the_next_is_served(
        tmp_path: Path, kind: str) -> None:
    with database_uri(kind, tmp_path) as uri:
        async with service_world(uri, search={"timeout": 0.001}) as world:
            anna = await world.user("anna")
            flow = await world.flow(anna)
            await world.engine.write(_many, flow, anna.uuid, 30_000)
            detail = await refused(503, world.service.search.messages(anna, "slow words"))
            assert "longer than 0.001 s" in detail
            world.service.search.settings = SearchSettings(timeout=10)
            found = await world.service.search.messages(anna, "slow number")
            assert found.count == 30_000 and len(found.hits) == 10


async def test_messages_the_index_has_not_caught_up_with_are_found_as_they_are(
        world: World) -> None:
    """Messages written straight into the table, past the service: the next search finds
    them; one edited and one deleted before the index caught up are found as they are then;
    the index stays sound."""
    anna = await world.user("anna")
    flow = await world.flow(anna)
    await world.engine.write(_many, flow, anna.uuid, 3)
    await world.service.messages.edit(anna, "bulk1", "a quick word now")
    await world.service.messages.delete(anna, "bulk2")
    assert sorted(await texts(world, anna, "slow")) == ["slow words of a slow search number 3"]
    assert await texts(world, anna, "quick") == ["a quick word now"]
    # Caught up now: the triggers keep edits and deletions.
    await world.service.messages.edit(anna, "bulk1", "a slower word")
    assert await texts(world, anna, "quick") == []
    assert sorted(await texts(world, anna, "slower")) == ["a slower word"]
    await world.service.messages.delete(anna, "bulk3")
    assert await texts(world, anna, "slow ") == []  # the whole word
    if not world.engine.postgres:
        await world.engine.write(lambda conn: conn.execute(
            "INSERT INTO messages_search (messages_search) VALUES ('integrity-check')"))


async def test_the_index_catches_up_by_itself(world: World) -> None:
    anna = await world.user("anna")
    flow = await world.flow(anna)
    await send(world, anna, flow, "caught up")
    task = asyncio.create_task(world.service.search.index_forever(every=0.01))
    try:
        def pending(conn: Conn) -> int:
            return index.catch_up(conn, 0) if not conn.postgres else 0

        while await world.engine.write(pending):
            await asyncio.sleep(0.01)
    finally:
        task.cancel()
    assert await texts(world, anna, "caught") == ["caught up"]


async def test_a_found_page_is_plain_data(world: World) -> None:
    anna = await world.user("anna")
    flow = await world.flow(anna)
    await send(world, anna, flow, "plain")
    found = await world.service.search.messages(anna, "plain")
    assert isinstance(found, Found) and found.people is None and found.deletions == ()
