"""mod.service.richtext: Matrix HTML kept as the safe subset, and MTP's formatting subset as
HTML for Matrix clients, never markup a user wrote."""

from __future__ import annotations

import nio
import pytest

from mod.service.richtext import sanitise, to_html
from tests.test_matrix_support import SERVER_NAME, Matrix, sync_until


@pytest.mark.parametrize(("dirty", "clean"), [
    ("<b>bold</b> <i>it</i>", "<b>bold</b> <i>it</i>"),
    ("<script>alert(1)</script>hi", "hi"),
    ('<img src="x" onerror="alert(1)">', "<img>"),
    ('<img src="https://tracker.example/p.png">', "<img>"),
    ('<img src="mxc://example.org/abc" alt="a">', '<img src="mxc://example.org/abc" alt="a">'),
    ('<a href="javascript:alert(1)">x</a>', '<a rel="noopener noreferrer">x</a>'),
    ('<a href="https://ok.example/">ok</a>',
     '<a href="https://ok.example/" rel="noopener noreferrer">ok</a>'),
    ('<iframe src="https://x"></iframe>text', "text"),
    ('<span data-mx-spoiler="" style="color:red">s</span>', '<span data-mx-spoiler="">s</span>'),
    ('<code class="language-python">x</code>', '<code class="language-python">x</code>'),
    ('<code class="evil other">x</code>', "<code>x</code>"),
    ("<mx-reply><blockquote>q</blockquote></mx-reply>ans",
     "<mx-reply><blockquote>q</blockquote></mx-reply>ans"),
    ("<style>body{}</style><p>p</p>", "<p>p</p>"),
])
def test_only_the_safe_subset_is_kept(dirty: str, clean: str) -> None:
    assert sanitise(dirty) == clean


@pytest.mark.parametrize(("text", "formatted"), [
    ("plain words, 2*3*4 and snake_case_name", None),
    ("**bold**, *it*, _it_", "<strong>bold</strong>, <em>it</em>, <em>it</em>"),
    ("`<b>not bold</b>`", "<code>&lt;b&gt;not bold&lt;/b&gt;</code>"),
    ("**<script>**", "<strong>&lt;script&gt;</strong>"),
    ("see https://example.org/a_(b)).", 'see <a href="https://example.org/a_(b)">'
                                         "https://example.org/a_(b)</a>)."),
    ("> quoted\n> two\nanswer & more", "<blockquote>quoted<br>two</blockquote>answer &amp; more"),
    ("<b>written</b>", None),  # text that looks like markup stays text
])
def test_the_formatting_subset_as_html(text: str, formatted: str | None) -> None:
    assert to_html(text) == formatted


@pytest.mark.anyio
async def test_matrix_clients_get_safe_html_both_ways(mx: Matrix) -> None:
    owner = await mx.mtp.user("mtp")
    flow = await owner.group("formats")
    room = f"!{flow}:{SERVER_NAME}"
    writer, reader = await mx.user("writer"), await mx.user("reader")
    for client in (writer, reader):
        assert isinstance(await client.join(room), nio.JoinResponse)
    await reader.sync(timeout=0)
    sent = await writer.room_send(room, "m.room.message", {
        "msgtype": "m.text", "body": "hi", "format": "org.matrix.custom.html",
        "formatted_body": '<b>hi</b><img src=x onerror="alert(1)"><script>x</script>'})
    assert isinstance(sent, nio.RoomSendResponse), sent
    event = await reader.room_get_event(room, sent.event_id)
    assert isinstance(event, nio.RoomGetEventResponse), event
    assert event.event.source["content"]["formatted_body"] == "<b>hi</b><img>"
    reply = await owner.send(flow, "**Done**, see `make test`", client_id=2)
    assert reply["errors"]["code"] == 200, reply
    seen = await sync_until(reader, room, lambda e: e["content"].get("body", "").startswith(
        "**Done**"))
    content = next(e for e in seen if e["content"].get("body", "").startswith("**Done**"))[
        "content"]
    assert (content["format"], content["formatted_body"]) == (
        "org.matrix.custom.html", "<strong>Done</strong>, see <code>make test</code>")
