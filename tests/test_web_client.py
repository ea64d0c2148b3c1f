"""The web client at / in a real browser (headless Chromium), against a real server, beside MTP
and Matrix clients. The browser's console must stay free of errors in every test."""

from __future__ import annotations

import base64
import io
import os
import shutil
import struct
import time
import zlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import nio
import pytest

from tests.support import ROOT, Client, ServerProcess, running_server, unique_login
from tests.test_matrix_support import SERVER_NAME, Matrix, sync_until
from tests.web_support import Page, action, browser, console_errors, needs_browser, wait_for

pytestmark = [pytest.mark.anyio, needs_browser, pytest.mark.slow]
SCREENSHOT = ROOT / "docs" / "screenshot.png"


@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    # A high rate limit: the paging test seeds a thousand messages as fast as it can.
    with running_server("sqlite", tmp_path_factory.mktemp("web"), env={
            "MORELIA_MATRIX_SERVER_NAME": SERVER_NAME, "MORELIA_MATRIX_SYNC_TIMEOUT_MAX": "5",
            "MORELIA_SERVER_RATE_LIMIT": "100000", "MORELIA_SERVER_RATE_BURST": "100000"},
                        ) as server:
        yield server


@pytest.fixture(scope="module")
def drivers() -> Iterator[list[Any]]:
    opened = [browser(), browser()]
    try:
        yield opened
    finally:
        for driver in opened:
            driver.quit()


@pytest.fixture
def pages(web: ServerProcess, drivers: list[Any]) -> Iterator[list[Page]]:
    """Two fresh browser tabs on the client (nobody logged in); no console errors after."""
    fresh = []
    for driver in drivers:
        driver.get(web.http + "/status")
        driver.execute_script("sessionStorage.clear(); localStorage.clear();")
        console_errors(driver)
        fresh.append(Page(driver, web.http))
    yield fresh
    for page in fresh:
        assert console_errors(page.driver) == []


@pytest.fixture
async def matrix(web: ServerProcess) -> AsyncIterator[Matrix]:
    session = Matrix(web)
    try:
        yield session
    finally:
        await session.close()


def png(width: int = 24, height: int = 16) -> bytes:
    """A small valid PNG: a teal rectangle."""
    row = b"\x00" + b"\x2f\x7d\x6d" * width
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(row * height)) + chunk(b"IEND", b""))


def badge(page: Page, title: str) -> str:
    """The unread count the list shows for a conversation ("" for none)."""
    found = page.flow_button(title).find_elements("css selector", ".badge")
    return str(found[0].text) if found else ""


async def mtp_user(web: ServerProcess, prefix: str = "mtp") -> Client:
    client = await Client.connect(web.url)
    await client.register(unique_login(prefix), push=True)
    return client


async def push_text(client: Client, kind: str, text: str, timeout: float = 10.0
                    ) -> dict[str, Any]:
    """The message of the next `kind` push whose text is `text` (others are passed over)."""
    deadline = time.monotonic() + timeout
    while True:
        frame = await client.push(max(0.05, deadline - time.monotonic()))
        message = (frame["data"].get("message") or [{}])[0]
        if frame["meta"]["event"] == kind and message.get("text") == text:
            return message  # type: ignore[no-any-return]


def delete_in_browser(page: Page, text: str) -> None:
    action(page, text, "delete")
    page.driver.switch_to.alert.accept()


def edit_in_browser(page: Page, text: str, new: str) -> None:
    from selenium.webdriver.common.keys import Keys
    action(page, text, "edit")
    box = page.css("#text")
    wait_for(lambda: box.get_attribute("value") == text, what="the text in the composer")
    box.send_keys(Keys.CONTROL, "a")
    box.send_keys(new, Keys.ENTER)


async def test_two_browsers_register_and_chat_live(pages: list[Page]) -> None:
    alice, bob = pages
    alice_login, bob_login = unique_login("alice"), unique_login("bob")
    alice.register(alice_login, username="Alice")
    bob.register(bob_login, username="Bob")
    # The token stays in the tab unless "remember me" is ticked.
    assert alice.driver.execute_script("return localStorage.getItem('morelia.session')") is None
    assert alice_login in alice.driver.execute_script(
        "return sessionStorage.getItem('morelia.session')")
    title = f"Lobby {alice_login[-4:]}"
    alice.create("group", title)
    alice.open_flow(title)
    assert alice.css("#messages .empty").text == "No messages yet: say hello!"

    bob.join(title)

    alice.say("Hi Bob!")
    bob.sees("Hi Bob!")
    assert alice.all("#messages .empty") == []
    bob.say("Hello, Alice.\nTwo lines.")
    alice.sees("Hello, Alice.\nTwo lines.")
    assert alice.row("Hello, Alice.\nTwo lines.").find_element(
        "css selector", ".author").text == "Bob"

    # Another flow open: the group's new messages count as unread in the list.
    alice.create("chat", login=bob_login)
    wait_for(lambda: alice.css("#flow-title").text == "Bob", what="the chat with bob open")
    bob.say("Are you there?")
    wait_for(lambda: badge(alice, title) == "1" and alice.driver.title == "(1) Morelia",
             what="an unread count")
    assert "Are you there?" in alice.flow_button(title).text
    alice.open_flow(title)
    wait_for(lambda: not alice.flow_button(title).find_elements("css selector", ".badge"))
    # A chat bob has never opened (alice started it) counts its messages as unread too.
    alice.open_flow("Bob")
    alice.say("Just between us")
    wait_for(lambda: badge(bob, "Alice") == "1", what="bob's unread count in the new chat")
    alice.open_flow(title)

    # Keyboard: Shift+Enter is a new line, Esc cancels an edit, ArrowUp edits one's last.
    from selenium.webdriver.common.keys import Keys
    box = alice.css("#text")
    box.send_keys("first")
    box.send_keys(Keys.SHIFT, Keys.ENTER)
    box.send_keys("second", Keys.ENTER)
    bob.sees("first\nsecond")
    box.send_keys(Keys.ARROW_UP)
    wait_for(lambda: alice.css("#editing").is_displayed(), what="editing")
    box.send_keys(Keys.ESCAPE)
    wait_for(lambda: not alice.css("#editing").is_displayed(), what="edit cancelled")
    assert box.get_attribute("value") == ""

    # Who is in the group; log out, and back in with the same history.
    alice.css("#members-button").click()
    # Its first focus is Close, not Leave: Enter on opening it leaves nothing.
    assert alice.driver.switch_to.active_element.text == "Close"
    names = wait_for(lambda: {node.text for node in alice.all("#members .author")}
                     >= {"Alice", "Bob"} and alice.all("#members .author"), what="members")
    assert len(names) == 2
    alice.css("#members-dialog .close").click()
    alice.css("#logout").click()
    wait_for(lambda: alice.css("#login-view").is_displayed(), what="logged out")
    # A wrong password and a taken login are said so, in the page's words.
    alice.type("#auth-login", alice_login)
    alice.type("#auth-password", "not-the-password")
    alice.css("#auth-submit").click()
    wait_for(lambda: alice.css("#auth-error").text == "Wrong login or password.",
             what="the wrong password refused")
    alice.css("#auth-switch").click()
    alice.type("#auth-login", bob_login)
    alice.css("#auth-submit").click()
    wait_for(lambda: alice.css("#auth-error").text
             == f"The login {bob_login} is taken: choose another.", what="the login taken")
    alice.log_in(alice_login)
    alice.open_flow(title)
    assert alice.texts() == ["Hi Bob!", "Hello, Alice.\nTwo lines.", "Are you there?",
                             "first\nsecond"]

    # The owner deletes another's message; bob cannot delete or edit alice's.
    assert [button.get_attribute("data-action") for button in bob.row("Hi Bob!").find_elements(
        "css selector", "button")] == ["reply", "react"]
    delete_in_browser(alice, "Are you there?")
    wait_for(lambda: bob.texts() == ["Hi Bob!", "Hello, Alice.\nTwo lines.",
                                     "Message deleted", "first\nsecond"], what="deleted")


async def test_browser_mtp_and_matrix_clients_see_each_other(
        web: ServerProcess, pages: list[Page], matrix: Matrix) -> None:
    page = pages[0]
    mtp = await mtp_user(web)
    flow = await mtp.group("Three clients")
    room = f"!{flow}:{SERVER_NAME}"
    element = await matrix.user("element")
    assert isinstance(await element.join(room), nio.JoinResponse)
    assert isinstance(await element.sync(timeout=0), nio.SyncResponse)
    login = unique_login("web")
    page.register(login)
    page.join("Three clients")

    # Sent in each, seen by the two others.
    page.say("from the browser")
    from_web = await push_text(mtp, "message_sent", "from the browser")
    await sync_until(element, room, lambda e: e["content"].get("body") == "from the browser")
    await mtp.send(flow, "from MTP", client_id=5)
    page.sees("from MTP")
    await sync_until(element, room, lambda e: e["content"].get("body") == "from MTP")
    sent = await element.room_send(room, "m.room.message", {"msgtype": "m.text",
                                                            "body": "from Matrix"})
    assert isinstance(sent, nio.RoomSendResponse), sent
    page.sees("from Matrix")
    from_matrix = await push_text(mtp, "message_sent", "from Matrix")

    # Edits, each seen by the two others.
    edit_in_browser(page, "from the browser", "from the browser, edited")
    await push_text(mtp, "message_edited", "from the browser, edited")
    await sync_until(element, room, lambda e: e["content"].get("m.new_content", {}).get(
        "body") == "from the browser, edited")
    mtp_message = next(m for m in (await mtp.call("all_messages", flow=[{"uuid": flow}]))[
        "data"]["message"] if m["text"] == "from MTP")
    await mtp.call("edited_message", message=[{"uuid": mtp_message["uuid"],
                                               "text": "from MTP, edited"}])
    page.sees("from MTP, edited")
    assert page.row("from MTP, edited").find_elements("css selector", ".edited")
    await sync_until(element, room, lambda e: e["content"].get("m.new_content", {}).get(
        "body") == "from MTP, edited")
    edit = await element.room_send(room, "m.room.message", {
        "msgtype": "m.text", "body": "* from Matrix, edited",
        "m.new_content": {"msgtype": "m.text", "body": "from Matrix, edited"},
        "m.relates_to": {"rel_type": "m.replace", "event_id": sent.event_id}})
    assert isinstance(edit, nio.RoomSendResponse), edit
    page.sees("from Matrix, edited")
    await push_text(mtp, "message_edited", "from Matrix, edited")

    # Deletions, each seen by the two others.
    delete_in_browser(page, "from the browser, edited")
    deleted = await push_text(mtp, "message_deleted", "Message deleted")
    assert deleted["uuid"] == from_web["uuid"]
    await sync_until(element, room, lambda e: e["type"] == "m.room.redaction")
    await mtp.call("delete_message", message=[{"uuid": mtp_message["uuid"]}])
    redacted = await element.room_redact(room, sent.event_id)
    assert isinstance(redacted, nio.RoomRedactResponse), redacted
    deleted = await push_text(mtp, "message_deleted", "Message deleted")
    deleted = deleted if deleted["uuid"] == from_matrix["uuid"] else await push_text(
        mtp, "message_deleted", "Message deleted")
    wait_for(lambda: len(page.all("#messages .message.deleted")) == 3, what="three deletions")
    assert page.texts() == ["Message deleted"] * 3
    seen = await sync_until(element, room, lambda e: e["type"] == "m.room.redaction"
                            and e["sender"] != element.user_id)
    assert any(e["type"] == "m.room.redaction" for e in seen)
    await mtp.close()


async def test_a_script_in_a_message_shows_as_text(web: ServerProcess,
                                                   pages: list[Page]) -> None:
    from selenium.common.exceptions import NoAlertPresentException

    page = pages[0]
    mtp = await mtp_user(web)
    flow = await mtp.group("Tricky")
    page.register(unique_login("xss"))
    attack = "<img src=x onerror=alert(1)><script>alert(2)</script>"
    page.join("Tricky")
    await mtp.send(flow, attack)
    page.sees(attack)
    assert page.all("#messages img") == [] and page.all("#messages script") == []
    assert attack in page.flow_button("Tricky").text
    with pytest.raises(NoAlertPresentException):
        page.driver.switch_to.alert.accept()
    # Edited to read like a deletion, it stays a message, live and after a reload.
    sent = (await mtp.send(flow, "soon misleading", client_id=2))["data"]["message"][0]
    page.sees("soon misleading")
    await mtp.call("edited_message", message=[{"uuid": sent["uuid"], "text": "Message deleted"}])
    page.sees("Message deleted")
    page.driver.refresh()
    page.sees("Message deleted")
    assert page.all("#messages .message.deleted") == []
    assert page.row("Message deleted").find_elements("css selector", ".edited")
    await mtp.close()


async def test_links_and_a_little_formatting_never_markup(web: ServerProcess,
                                                          pages: list[Page]) -> None:
    page = pages[0]
    mtp = await mtp_user(web)
    flow = await mtp.group("Formatting")
    page.register(unique_login("fmt"))
    page.join("Formatting")
    text = ("> a quoted line with **no <b>tags</b>**\n"
            "**bold**, *italic*, _also_, snake_case_name, `code <i>x</i> **kept**` and a link "
            "(see https://example.org/wiki/A_(b)?q=1). javascript:alert(1)")
    await mtp.send(flow, text)
    row = wait_for(lambda: next(iter(page.all("#messages .message[data-uuid]")), None))

    def found(selector: str) -> list[str]:
        return [str(node.text) for node in row.find_elements("css selector", selector)]

    assert found(".text blockquote") == ["a quoted line with no <b>tags</b>"]
    assert found("blockquote strong") == ["no <b>tags</b>"]
    assert found(".text > strong") == ["bold"]
    assert found(".text em") == ["italic", "also"]
    assert found(".text code") == ["code <i>x</i> **kept**"]
    links = row.find_elements("css selector", ".text a")
    assert [(a.get_attribute("href"), a.get_attribute("rel"), a.get_attribute("target"))
            for a in links] == [("https://example.org/wiki/A_(b)?q=1", "noopener noreferrer",
                                 "_blank")]
    assert row.find_elements("css selector", "b, i, script") == []
    assert "snake_case_name" in row.text and "javascript:alert(1)" in row.text
    # The list shows the first line that is not quoted, as it was written.
    assert "**bold**, *italic*" in page.flow_button("Formatting").text
    await mtp.close()


async def test_paging_back_through_a_thousand_messages(web: ServerProcess,
                                                       pages: list[Page]) -> None:
    page = pages[0]
    mtp = await mtp_user(web)
    flow = await mtp.group("Long history")
    for start in range(0, 1000, 100):  # pipelined: a hundred requests, then their answers
        for index in range(start, start + 100):
            await mtp.ws.send(json_frame(mtp, flow, index))
        for _ in range(100):
            assert (await mtp.response())["errors"]["code"] == 200
    page.register(unique_login("reader"))
    page.join("Long history")
    page.sees("message 999")
    assert len(page.texts()) < 100  # only the latest page at first
    for _ in range(60):
        texts = page.texts()
        if texts[0] == "message 0":
            break
        count = len(texts)
        page.driver.execute_script("document.querySelector('#messages').scrollTop = 0")
        wait_for(lambda: len(page.texts()) > count, what="an older page")  # noqa: B023
        # The reader stays where they were: the older page is above, out of sight.
        assert page.driver.execute_script("return document.querySelector('#messages').scrollTop")
    assert page.texts() == [f"message {index}" for index in range(1000)]
    # Far above the end, a button jumps to it, and counts what came meanwhile.
    assert page.css("#jump").is_displayed() and page.css("#jump").text == "↓"
    await mtp.send(flow, "a new one", client_id=5000)
    page.sees("a new one")
    wait_for(lambda: page.css("#jump").text == "↓ 1 new", what="the new message counted")
    page.css("#jump").click()
    wait_for(lambda: not page.css("#jump").is_displayed(), what="at the end")
    assert page.driver.execute_script(
        "const list = document.querySelector('#messages');"
        "return list.scrollHeight - list.scrollTop - list.clientHeight") < 80
    await mtp.close()


def json_frame(client: Client, flow: str, index: int) -> str:
    from tests.support import frame
    return frame("send_message", {"user": [client.cred], "flow": [{"uuid": flow}],
                                  "message": [{"client_id": index, "text": f"message {index}"}]})


async def test_pictures_show_inline_and_files_download(web: ServerProcess, pages: list[Page],
                                                       tmp_path: Path) -> None:
    page = pages[0]
    mtp = await mtp_user(web)
    flow = await mtp.group("Pictures")
    page.register(unique_login("pics"))
    page.join("Pictures")

    picture = png()
    await mtp.call("send_message", flow=[{"uuid": flow}], message=[{
        "client_id": 1, "text": "a picture", "file_picture": base64.b64encode(picture).decode()}])
    await mtp.call("send_message", flow=[{"uuid": flow}], message=[{
        "client_id": 2, "text": "a document",
        "file_document": base64.b64encode(b"%PDF-1.4 tiny").decode()}])
    page.sees("a document")
    image = page.row("a picture").find_element("css selector", "img.picture")
    wait_for(lambda: page.driver.execute_script(
        "return arguments[0].complete && arguments[0].naturalWidth", image) == 24,
        what="the picture decoded")
    assert page.row("a document").find_elements("css selector", "button.attachment")

    # From the browser: a file picked, and one too large.
    path = tmp_path / "dot.png"
    path.write_bytes(picture)
    page.css("#file").send_keys(str(path))
    sent = await mtp.push(10)
    while sent["meta"]["event"] != "message_sent" or not sent["data"]["message"][0].get(
            "file_picture"):
        sent = await mtp.push(10)
    assert base64.b64decode(sent["data"]["message"][0]["file_picture"]) == picture
    wait_for(lambda: len(page.all("#messages .message[data-uuid] img.picture")) == 2)
    notes = tmp_path / "notes.txt"
    notes.write_text("remember the milk\n")
    page.css("#file").send_keys(str(notes))
    wait_for(lambda: any(button.text.startswith("↓ notes.txt (") for button in page.all(
        "#messages .message[data-uuid] button.attachment")), what="the file by its name")
    listed = await mtp.call("all_messages", flow=[{"uuid": flow}], meta={"extensions": ["files"]})
    last = listed["data"]["message"][-1]
    assert (last["file_name"], last["file_type"]) == ("notes.txt", "text/plain")
    assert base64.b64decode(last["file_document"]) == b"remember the milk\n"
    big = tmp_path / "big.bin"
    big.write_bytes(b"\0" * (4 * 1024 * 1024 + 1))
    page.css("#file").send_keys(str(big))
    wait_for(lambda: "4 MB" in page.css("#notice").text, what="the size limit shown")
    await mtp.close()


async def test_a_conversation_read_at_its_end_stays_there_past_a_picture(
        web: ServerProcess, pages: list[Page]) -> None:
    page = pages[0]
    mtp = await mtp_user(web)
    flow = await mtp.group("Following")
    for index in range(30):
        await mtp.call("send_message", flow=[{"uuid": flow}],
                       message=[{"client_id": index + 1, "text": f"line {index}"}])
    page.register(unique_login("follow"))
    page.join("Following")
    page.sees("line 29")

    def away() -> int:
        return int(page.driver.execute_script(
            "const list = document.querySelector('#messages');"
            "return list.scrollHeight - list.scrollTop - list.clientHeight"))

    wait_for(lambda: away() < 80, what="the end of the conversation")
    picture = base64.b64encode(png(640, 480)).decode()
    await mtp.call("send_message", flow=[{"uuid": flow}],
                   message=[{"client_id": 100, "text": "", "file_picture": picture}])
    image = wait_for(lambda: next(iter(page.all("#messages img.picture")), None))
    assert (image.get_attribute("width"), image.get_attribute("height")) == ("320", "240")
    wait_for(lambda: page.driver.execute_script(
        "return arguments[0].complete && arguments[0].naturalWidth", image) == 640,
        what="the picture decoded")
    await mtp.call("send_message", flow=[{"uuid": flow}],
                   message=[{"client_id": 101, "text": "after the picture"}])
    page.sees("after the picture")
    wait_for(lambda: away() < 80, what="the end still shown")
    assert page.css("#jump").is_displayed() is False
    await mtp.close()


@pytest.mark.parametrize("kind", ["PNG", "JPEG", "GIF", "WEBP", "BMP"])
def test_the_page_reads_a_pictures_size_from_its_header(web: ServerProcess, drivers: list[Any],
                                                        kind: str) -> None:
    from PIL import Image

    out = io.BytesIO()
    extra = {"exif": Image.Exif()} if kind == "JPEG" else {}
    Image.new("RGB", (123, 45), (47, 125, 109)).save(out, kind, **extra)
    driver = drivers[0]
    driver.get(web.http + "/")
    size = driver.execute_async_script(
        "const [data, done] = arguments;"
        "import('/web/images.js').then((m) => done(m.imageSize(data, m.imageType(data))));",
        base64.b64encode(out.getvalue()).decode())
    assert size == [123, 45]


async def test_pictures_between_matrix_and_the_browser(web: ServerProcess, pages: list[Page],
                                                      matrix: Matrix, tmp_path: Path) -> None:
    """A Matrix m.image shows inline in the page; a picture the page sends (picked, or pasted)
    is an m.image to Matrix whose mxc:// download gives the same bytes."""
    page = pages[0]
    element = await matrix.user("photos")
    room = await matrix.room(element, name="Holiday photos", preset=nio.RoomPreset.public_chat)
    page.register(unique_login("holiday"))
    page.join("Holiday photos")

    beach = png(40, 30)
    uploaded, _ = await element.upload(io.BytesIO(beach), content_type="image/png",
                                       filename="beach.png", filesize=len(beach))
    assert isinstance(uploaded, nio.UploadResponse), uploaded
    sent = await element.room_send(room, "m.room.message", {
        "msgtype": "m.image", "body": "beach.png", "url": uploaded.content_uri,
        "info": {"mimetype": "image/png", "size": len(beach), "w": 40, "h": 30}})
    assert isinstance(sent, nio.RoomSendResponse), sent
    image = wait_for(lambda: page.all("#messages .message[data-uuid] img.picture"),
                     what="the Matrix picture inline")[0]
    wait_for(lambda: page.driver.execute_script(
        "return arguments[0].complete && arguments[0].naturalWidth", image) == 40,
        what="the Matrix picture decoded")
    assert image.get_attribute("src") == "data:image/png;base64," + base64.b64encode(
        beach).decode()
    # A click shows it large; Esc puts it away.
    from selenium.webdriver.common.keys import Keys
    image.click()
    wait_for(lambda: page.css("#viewer").is_displayed(), what="the picture viewer")
    assert page.css("#viewer-image").get_attribute("src") == image.get_attribute("src")
    page.driver.switch_to.active_element.send_keys(Keys.ESCAPE)
    wait_for(lambda: not page.css("#viewer").is_displayed(), what="the viewer closed")

    async def matrix_image(width: int) -> bytes:
        seen = await sync_until(element, room, lambda e: e["content"].get("msgtype") == "m.image"
                                and e["content"].get("info", {}).get("w") == width)
        event = next(e for e in seen if e["content"].get("info", {}).get("w") == width)
        got = await element.download(event["content"]["url"])
        assert isinstance(got, nio.DownloadResponse), got
        assert got.content_type == "image/png"
        return bytes(got.body)

    # Picked in the file dialog.
    picked = png(50, 20)
    path = tmp_path / "picked.png"
    path.write_bytes(picked)
    page.css("#file").send_keys(str(path))
    assert await matrix_image(50) == picked
    # Pasted into the message box: a ClipboardEvent holding the file, as a paste makes.
    pasted = png(60, 10)
    page.driver.execute_script("""
        const bytes = Uint8Array.from(atob(arguments[0]), (c) => c.charCodeAt(0));
        const data = new DataTransfer();
        data.items.add(new File([bytes], "pasted.png", { type: "image/png" }));
        document.querySelector("#text").dispatchEvent(
            new ClipboardEvent("paste", { clipboardData: data, bubbles: true, cancelable: true }));
    """, base64.b64encode(pasted).decode())
    assert await matrix_image(60) == pasted
    wait_for(lambda: len(page.all("#messages .message[data-uuid] img.picture")) == 3,
             what="three pictures in the page")
    assert page.all("#messages .pending") == []


async def test_the_page_works_at_phone_width_in_russian(web: ServerProcess,
                                                        pages: list[Page]) -> None:
    mtp = await mtp_user(web)
    flow = await mtp.group("Телефон")
    driver = browser(375, 740, "ru-RU")
    try:
        page = Page(driver, web.http)
        page.open()
        assert page.css("#auth-submit").text == "Войти"
        page.type("#auth-login", "nobody-here")
        page.type("#auth-password", "wrong")
        page.css("#auth-submit").click()
        wait_for(lambda: page.css("#auth-error").text == "Неверный логин или пароль.",
                 what="the refusal in Russian")
        page.register(unique_login("phone"))
        page.join("Телефон")
        wait_for(lambda: page.css("#pane").is_displayed() and not page.css(
            "#sidebar").is_displayed(), what="the conversation alone on screen")
        await mtp.send(flow, "Привет с телефона!")
        page.sees("Привет с телефона!")
        page.say("Ответ")
        await push_text(mtp, "message_sent", "Ответ")
        width = driver.execute_script("return document.documentElement.scrollWidth")
        assert width <= 375
        for selector in ("#text", "#send", "#attach", "#back"):
            box = page.css(selector).rect
            assert box["x"] >= 0 and box["x"] + box["width"] <= 375, selector
        page.css("#back").click()
        wait_for(lambda: page.css("#sidebar").is_displayed() and not page.css(
            "#pane").is_displayed(), what="the list alone on screen")
        assert page.css("#back").get_attribute("aria-label") == "К списку бесед"
        assert page.driver.switch_to.active_element.get_attribute("data-flow") == flow
        # In one conversation, the back button counts what waits in the others.
        other = await mtp.group("Другая")
        page.join("Другая")
        page.css("#back").click()
        page.open_flow("Телефон")
        wait_for(lambda: page.css("#flow-title").text == "Телефон", what="the first again")
        await mtp.send(other, "Там тоже", client_id=9)
        wait_for(lambda: page.css("#back").get_attribute("data-unread") == "1",
                 what="the count on the back button")
        assert page.css("#back").get_attribute("aria-label") == (
            "К списку бесед (Непрочитанных: 1)")
        # At desktop width, the Russian Edit/Delete of a short message stay inside the list.
        driver.set_window_size(1100, 760)
        wait_for(lambda: page.css("#sidebar").is_displayed(), what="two panes")
        page.row("Ответ")
        assert driver.execute_script("const list = document.querySelector('#messages');"
                                     "return list.scrollWidth - list.clientWidth") == 0
        assert console_errors(driver) == []
    finally:
        driver.quit()
        await mtp.close()


async def test_a_restart_is_caught_up_once(drivers: list[Any], tmp_path: Path) -> None:
    """The server restarts under an open page: what was sent meanwhile shows once, and what
    was typed while offline is sent once."""
    env = {"MORELIA_DATABASE_URI": f"sqlite:{tmp_path / 'restart.db'}"}
    server = ServerProcess(tmp_path, env=env).start()
    driver = drivers[0]
    try:
        mtp = await mtp_user(server)
        flow = await mtp.group("Restarts")
        page = Page(driver, server.http)
        page.register(unique_login("restart"))
        page.join("Restarts")
        await mtp.send(flow, "before", client_id=1)
        page.sees("before")
        await mtp.close()
        server.stop()
        wait_for(lambda: page.css("#offline").is_displayed(), what="the offline banner")
        page.say("typed while offline")
        wait_for(lambda: page.all("#messages .pending"), what="a pending message")
        # Meanwhile another process on the same database takes messages; the page can only
        # learn of them by catching up once its own server is back.
        other = ServerProcess(tmp_path, env=env).start()
        try:
            meanwhile = await Client.connect(other.url)
            meanwhile.uuid, meanwhile.auth_id = mtp.uuid, mtp.auth_id
            for index in range(3):
                await meanwhile.send(flow, f"meanwhile {index}", client_id=10 + index)
            await meanwhile.close()
        finally:
            other.stop()
        server = ServerProcess(tmp_path, env=env, port=server.port).start()
        back = await Client.connect(server.url)
        back.uuid, back.auth_id = mtp.uuid, mtp.auth_id
        wait_for(lambda: not page.css("#offline").is_displayed(), 15, what="back online")
        wait_for(lambda: "typed while offline" in page.texts()
                 and "meanwhile 2" in page.texts(), what="the caught-up messages")
        await back.send(flow, "after", client_id=20)  # a duplicate would show before it
        page.sees("after")
        texts = page.texts()
        assert sorted(texts) == sorted(["before", "typed while offline", "meanwhile 0",
                                        "meanwhile 1", "meanwhile 2", "after"]), texts
        stored = (await back.call("all_messages", flow=[{"uuid": flow}]))["data"]["message"]
        assert [m["text"] for m in stored].count("typed while offline") == 1
        assert page.all("#messages .pending") == []
        await back.close()
        # Only the page's attempts to reach the stopped server may have been logged.
        errors = [entry for entry in console_errors(driver)
                  if entry["level"] == "SEVERE"
                  and "ERR_CONNECTION_REFUSED" not in entry["message"]]
        assert errors == []
    finally:
        server.stop()


async def test_a_password_is_changed_in_settings_and_other_tabs_end(pages: list[Page]) -> None:
    here, there = pages
    login = unique_login("pw")
    here.register(login)
    there.log_in(login)
    here.css("#settings").click()
    wait_for(lambda: here.css("#settings-dialog").is_displayed(), what="the settings")
    here.type("#password-current", "not my password")
    here.type("#password-new", "a new secret")
    here.type("#password-repeat", "a new secret")
    here.css("#password-submit").click()
    wait_for(lambda: here.css("#password-error").text == "The current password is wrong.",
             what="the wrong password refused")
    here.type("#password-current", "secret-password")
    here.type("#password-repeat", "another secret")
    here.css("#password-submit").click()
    assert here.css("#password-error").text == "The new passwords do not match."
    here.type("#password-repeat", "a new secret")
    here.css("#password-submit").click()
    wait_for(lambda: not here.css("#settings-dialog").is_displayed(), what="the change")
    assert here.css("#notice").text == "Your password is changed."
    # This tab goes on; the other one's session ended ("sign out my other devices" is ticked).
    here.create("group", "still here")
    there.open()
    wait_for(lambda: there.css("#login-view").is_displayed(), what="the other tab signed out")
    there.type("#auth-login", login)
    there.type("#auth-password", "secret-password")
    there.css("#auth-submit").click()
    wait_for(lambda: there.css("#auth-error").text == "Wrong login or password.",
             what="the old password refused")
    there.log_in(login, "a new secret")
    there.flow_button("still here")


NOTIFICATIONS = """
window.shown = [];
const Real = window.Notification;
window.Notification = class extends Real {
  constructor(title, options) {
    super(title, options);
    window.shown.push([title, options.body, options.tag]);
  }
};
Object.defineProperty(document, "visibilityState", {configurable: true, get: () => "hidden"});
document.dispatchEvent(new Event("visibilitychange"));
"""


def choose(page: Page, selector: str, value: str) -> None:
    from selenium.webdriver.support.ui import Select
    Select(page.css(selector)).select_by_value(value)


def shown(page: Page) -> list[list[str]]:
    return list(page.driver.execute_script("return window.shown"))


async def test_who_is_typing_shows_under_the_conversation(pages: list[Page]) -> None:
    alice, bob = pages
    alice_login = unique_login("alice")
    alice.register(alice_login, username="Alice")
    bob.register(unique_login("bob"), username="Bob")
    alice.create("group", "Typists")
    alice.open_flow("Typists")
    bob.join("Typists")
    alice.css("#text").send_keys("I am writing a long")
    wait_for(lambda: bob.css("#typing").text == "Alice is typing…", what="the typing line")
    assert not alice.css("#typing").is_displayed()  # one's own notice is not shown
    alice.say(" answer")
    bob.sees("I am writing a long answer")
    wait_for(lambda: not bob.css("#typing").is_displayed(), what="the notice ended by the send")
    alice.css("#text").send_keys("and more")
    wait_for(lambda: bob.css("#typing").is_displayed(), what="typing again")
    alice.css("#text").clear()
    alice.driver.execute_script(
        "document.querySelector('#text').dispatchEvent(new Event('input'))")
    wait_for(lambda: not bob.css("#typing").is_displayed(), what="the notice ended when emptied")


def reactions_of(page: Page, text: str) -> list[tuple[str, str]]:
    """The reaction buttons under a message: (their text, aria-pressed)."""
    return [(str(button.text), str(button.get_attribute("aria-pressed")))
            for button in page.row(text).find_elements("css selector", ".reactions button")]


async def group_of_three(pages: list[Page], matrix: Matrix, title: str
                         ) -> tuple[str, nio.AsyncClient, str]:
    """Alice (the first page) makes a group that Bob (the second) and a Matrix user join:
    its room, the Matrix user's client, synced, and Bob's login."""
    alice, bob = pages
    alice.register(unique_login("alice"), username="Alice")
    bob_login = unique_login("bob")
    bob.register(bob_login, username="Bob")
    alice.create("group", title)
    alice.open_flow(title)
    bob.join(title)
    room = f"!{alice.driver.execute_script('return location.hash.slice(1)')}:{SERVER_NAME}"
    element = await matrix.user("element")
    assert isinstance(await element.join(room), nio.JoinResponse)
    assert isinstance(await element.sync(timeout=0), nio.SyncResponse)
    return room, element, bob_login


async def test_replies_and_reactions_between_browsers_mtp_and_matrix(
        web: ServerProcess, pages: list[Page], matrix: Matrix) -> None:
    alice, bob = pages
    room, element, _ = await group_of_three(pages, matrix, "Lunch")
    bob.say("Lunch at one?")
    alice.sees("Lunch at one?")

    # A reply from the message's menu: the quote shows in both browsers and leads to it.
    action(alice, "Lunch at one?", "reply")
    wait_for(lambda: alice.css("#replying").is_displayed(), what="the replying bar")
    assert "Bob" in alice.css("#replying-text").text
    alice.say("Yes, at the usual place")
    bob.sees("Yes, at the usual place")
    quote = bob.row("Yes, at the usual place").find_element("css selector", ".quote")
    assert quote.text.splitlines() == ["Bob", "Lunch at one?"]
    quote.click()
    wait_for(lambda: bob.driver.execute_script(
        "return document.activeElement.dataset.uuid || ''") != "", what="the answered message")
    answer = "Yes, at the usual place"
    seen = await sync_until(element, room, lambda event: event["content"].get("body") == answer)
    reply = next(event for event in seen if event["content"].get("body") == answer)
    target = reply["content"]["m.relates_to"]["m.in_reply_to"]["event_id"]
    question = next(event for event in seen if event["content"].get("body") == "Lunch at one?")
    assert target == question["event_id"]

    # Reactions: from the picker, by a click on a count, and from Matrix; all see them.
    action(bob, "Yes, at the usual place", "react")
    wait_for(lambda: bob.css("#react-dialog").is_displayed(), what="the picker")
    bob.css('#react-picks button[aria-label="React with 👍"]').click()
    wait_for(lambda: reactions_of(alice, "Yes, at the usual place") == [("👍 1", "false")],
             what="Bob's reaction in Alice's page")
    alice.row("Yes, at the usual place").find_element("css selector", ".reactions button").click()
    wait_for(lambda: reactions_of(bob, "Yes, at the usual place") == [("👍 2", "true")],
             what="both reactions in Bob's page")
    annotation = {"m.relates_to": {"rel_type": "m.annotation", "event_id": reply["event_id"],
                                   "key": "🎉"}}
    assert isinstance(await element.room_send(room, "m.reaction", annotation),
                      nio.RoomSendResponse)
    wait_for(lambda: reactions_of(alice, "Yes, at the usual place") == [
        ("👍 2", "true"), ("🎉 1", "false")], what="the Matrix user's reaction")
    label = alice.row("Yes, at the usual place").find_element(
        "css selector", ".reactions button").get_attribute("aria-label")
    assert "Bob" in label and "You" in label
    alice.row("Yes, at the usual place").find_element("css selector", ".reactions button").click()
    wait_for(lambda: reactions_of(bob, "Yes, at the usual place") == [
        ("👍 1", "true"), ("🎉 1", "false")], what="Alice's reaction taken back")
    seen = await sync_until(element, room, lambda event: event["type"] == "m.room.redaction")
    assert sum(event["type"] == "m.reaction" for event in seen) >= 1


async def test_read_on_one_device_is_read_on_every_device(web: ServerProcess,
                                                          pages: list[Page]) -> None:
    desk, laptop = pages
    login = unique_login("reader")
    desk.register(login, username="Reader")
    laptop.log_in(login)
    writer = await mtp_user(web, "writer")
    found = await writer.call("user_info", user=[{"login": login}])
    flow = await writer.group("Read anywhere", users=[found["data"]["user"][0]["uuid"]])
    for index in range(2):
        await writer.send(flow, f"news {index}", client_id=index + 1)
    for page in pages:
        wait_for(lambda page=page: badge(page, "Read anywhere") == "2", what="two unread")
    laptop.open_flow("Read anywhere")
    laptop.sees("news 1")
    wait_for(lambda: badge(desk, "Read anywhere") == "", what="read on the other device")
    desk.driver.refresh()  # and after a reload, from the server
    wait_for(lambda: desk.css("#chat-view").is_displayed(), what="the chat again")
    wait_for(lambda: desk.flow_button("Read anywhere").is_displayed(), what="the flow")
    assert badge(desk, "Read anywhere") == ""
    await writer.send(flow, "news 2", client_id=3)  # the laptop shows it: read there, so here
    laptop.sees("news 2")
    wait_for(lambda: desk.driver.execute_script(
        "return document.querySelector('#flows .badge') === null"), what="no count")
    laptop.driver.get(web.http + "/status")  # nobody reads now
    await writer.send(flow, "news 3", client_id=4)
    wait_for(lambda: badge(desk, "Read anywhere") == "1", what="one new")
    await writer.close()


async def test_at_completes_a_member_and_mentions_cross_to_matrix(
        web: ServerProcess, pages: list[Page], matrix: Matrix) -> None:
    from selenium.webdriver.common.keys import Keys
    alice, bob = pages
    room, element, bob_login = await group_of_three(pages, matrix, "Mentions")
    bob.driver.get(web.http + "/status")  # away: Bob's count and the mark come from the server
    box = alice.css("#text")
    box.send_keys("Lunch, @b")
    wait_for(lambda: alice.css("#mention-list").is_displayed(), what="the members offered")
    assert [option.text.split()[0] for option in alice.all("#mention-list [role=option]")] \
        == ["Bob"]
    assert box.get_attribute("aria-activedescendant") == "mention-0"
    box.send_keys(Keys.ENTER)  # chooses, does not send
    wait_for(lambda: box.get_attribute("value") == "Lunch, @Bob ", what="the name written")
    box.send_keys("?", Keys.ENTER)
    alice.sees("Lunch, @Bob ?")
    seen = await sync_until(element, room, lambda e: e["content"].get("body") == "Lunch, @Bob ?")
    event = next(e for e in seen if e["content"].get("body") == "Lunch, @Bob ?")
    assert event["content"]["m.mentions"] == {"user_ids": [f"@{bob_login}:{SERVER_NAME}"]}
    bob.open()
    wait_for(lambda: bob.css("#chat-view").is_displayed(), what="Bob back")
    bob.open_flow("Mentions")
    row = bob.row("Lunch, @Bob ?")
    assert "mentioned" in row.get_attribute("class")
    assert row.find_element("css selector", ".mention-mark").text == "mentions you"


async def test_the_display_name_bio_and_picture_are_changed_in_settings(
        web: ServerProcess, pages: list[Page], matrix: Matrix, tmp_path: Path) -> None:
    page = pages[0]
    login = unique_login("named")
    page.register(login, username="Anna")
    wait_for(lambda: page.css("#me").text == "Anna", what="the name shown")
    page.css("#settings").click()
    wait_for(lambda: page.css("#profile-name").get_attribute("value") == "Anna",
             what="the name in the settings")
    page.type("#profile-name", "Anna Karenina")
    page.type("#profile-bio", "Happy families are all alike")
    page.css("#profile-submit").click()
    wait_for(lambda: not page.css("#settings-dialog").is_displayed(), what="saved")
    assert page.css("#notice").text == "Your profile is saved."
    assert page.css("#me").text == "Anna Karenina"
    mtp = await mtp_user(web)
    reply = await mtp.call("user_info", user=[{"login": login}])
    found = reply["data"]["user"][0]
    assert (found["username"], found["bio"]) == ("Anna Karenina", "Happy families are all alike")

    # A picture, chosen in the settings: MTP and Matrix see it; removed, both lose it.
    picture = tmp_path / "me.png"
    picture.write_bytes(png(40, 40))
    page.css("#settings").click()
    wait_for(lambda: page.css("#settings-dialog").is_displayed(), what="the settings")
    viewer = await matrix.user("viewer")
    page.css("#avatar-file").send_keys(str(picture))
    wait_for(lambda: page.all("#avatar-preview img.avatar"), what="the picture shown")
    found = (await mtp.call("user_info", user=[{"login": login}]))["data"]["user"][0]
    assert base64.b64decode(found["avatar"]) == picture.read_bytes()
    profile = await matrix.raw("GET", f"/_matrix/client/v3/profile/@{login}:{SERVER_NAME}",
                               token=viewer.access_token)
    assert profile.json()["avatar_url"].startswith(f"mxc://{SERVER_NAME}/")
    page.css("#avatar-remove").click()
    wait_for(lambda: not page.all("#avatar-preview img.avatar"), what="the picture removed")
    found = (await mtp.call("user_info", user=[{"login": login}]))["data"]["user"][0]
    assert found["avatar"] == ""
    profile = await matrix.raw("GET", f"/_matrix/client/v3/profile/@{login}:{SERVER_NAME}",
                               token=viewer.access_token)
    assert profile.status_code == 200 and "avatar_url" not in profile.json()
    bad = await mtp.call("update_profile", auth=False, user=[{
        **mtp.cred, "avatar": base64.b64encode(b"not a picture").decode()}])
    assert bad["errors"]["code"] == 415, bad
    await mtp.close()


def invite_in_browser(page: Page, title: str, login: str) -> str:
    page.open_flow(title)
    page.css("#members-button").click()
    page.type("#invite-login", login)
    page.css("#invite-submit").click()
    said = wait_for(lambda: page.css("#invite-result").text, what="the invitation answered")
    page.driver.execute_script("arguments[0].close()", page.css("#members-dialog"))
    return str(said)


def invitation(page: Page, title: str) -> Any:
    return wait_for(lambda: next((item for item in page.all("#flows li.invitation")
                                  if title in item.text), None), what=f"the invitation to {title}")


async def test_invitations_from_the_members_dialog(pages: list[Page]) -> None:
    alice, bob = pages
    bob_login = unique_login("bob")
    alice.register(unique_login("alice"), username="Alice")
    bob.register(bob_login, username="Bob")
    for title in ("Secret plans", "Other plans"):
        alice.css("#new-flow").click()
        alice.type("#new-title", title)
        alice.css("#new-private").click()
        alice.css("#new-create").click()
        wait_for(lambda: not alice.css("#new-dialog").is_displayed(), what="the group made")
    assert invite_in_browser(alice, "Secret plans", "nobody-" + bob_login) == \
        f"Nobody has the login nobody-{bob_login}."
    assert invite_in_browser(alice, "Secret plans", bob_login) == "Bob is invited."
    invitation(bob, "Secret plans").find_element("css selector", "button.primary").click()
    wait_for(lambda: bob.css("#flow-title").text == "Secret plans", what="bob in the group")
    assert not bob.all("#flows li.invitation")
    alice.say("welcome in")
    bob.sees("welcome in")

    assert invite_in_browser(alice, "Other plans", bob_login) == "Bob is invited."
    invitation(bob, "Other plans").find_element("css selector", "button.link").click()
    wait_for(lambda: not bob.all("#flows li.invitation"), what="the invitation declined")
    bob.open()
    bob.flow_button("Secret plans")
    assert not bob.all("#flows li.invitation")


def search_in_browser(page: Page, text: str) -> list[Any]:
    """Search messages from the conversations' box (typed, then Enter); the results."""
    from selenium.webdriver.common.keys import Keys
    page.type("#flow-filter", text)
    wait_for(lambda: page.css("#search-messages").text == f"Search messages for “{text}”",
             what="the offer to search messages")
    page.css("#flow-filter").send_keys(Keys.ENTER)
    wait_for(lambda: page.css("#results-status").text not in ("", "Searching…"),
             what="the search answered")
    return page.all("#results-list button.result")


async def test_messages_are_searched_and_a_result_opens_at_its_message(
        web: ServerProcess, pages: list[Page]) -> None:
    page = pages[0]
    login = unique_login("finder")
    page.register(login, username="Finder")
    page.create("group", "Recipes")
    page.open_flow("Recipes")
    page.say("Борщ со сметаной")
    page.say("Pancakes need eggs")
    page.sees("Pancakes need eggs")
    same = await Client.connect(web.url)  # the same account over MTP writes the rest faster
    reply = await same.call("authentication", auth=False,
                            user=[{"login": login, "password": "secret-password"}])
    same.uuid, same.auth_id = reply["data"]["user"][0]["uuid"], reply["data"]["user"][0]["auth_id"]
    recipes = page.driver.execute_script("return location.hash.slice(1)")
    for number in range(60):
        await same.send(recipes, f"filler {number}", client_id=number + 1)
    await same.close()
    page.sees("filler 59")
    page.create("group", "Travel")
    page.open_flow("Travel")
    page.say("EGGS Benedict in Lisbon")
    page.sees("EGGS Benedict in Lisbon")
    outsider = await mtp_user(web, "outsider")
    await outsider.send(await outsider.group("Elsewhere"), "eggs nobody else may find")
    results = search_in_browser(page, "eggs")
    assert [(r.find_element("css selector", ".flow-title").text,
             r.find_element("css selector", ".result-text").text) for r in results] == [
        ("Travel", "You: EGGS Benedict in Lisbon"), ("Recipes", "You: Pancakes need eggs")]
    assert [mark.text for mark in page.all("#results-list mark")] == ["EGGS", "eggs"]
    assert page.css("#results-status").text == "Messages found: 2"
    assert not page.css("#flows").is_displayed()
    # A result far back in its conversation opens there, shown.
    results[1].click()
    wait_for(lambda: page.css("#flow-title").text == "Recipes", what="the conversation")
    found = wait_for(lambda: page.all("#messages .message.found"), what="the message shown")
    assert found[0].find_element("css selector", ".text").text == "Pancakes need eggs"
    # Russian, by a word's beginning, whatever its letter ё or е.
    [result] = search_in_browser(page, "сметан")
    assert result.find_element("css selector", "mark").text == "сметан"
    assert search_in_browser(page, "nothing-like-it") == []
    assert page.css("#results-status").text == "No messages found."
    page.css("#results-close").click()
    wait_for(lambda: page.css("#flows").is_displayed(), what="the conversations back")
    assert not page.css("#results").is_displayed()
    await outsider.close()


async def test_notifications_of_a_hidden_tab(pages: list[Page]) -> None:
    alice, bob = pages
    alice_login, bob_login = unique_login("alice"), unique_login("bob")
    alice.register(alice_login, username="Alice")
    bob.register(bob_login, username="Bob")
    bob.driver.execute_cdp_cmd("Browser.grantPermissions", {
        "origin": bob.base, "permissions": ["notifications"]})
    bob.css("#settings").click()
    bob.css("#notify-on").click()  # the browser asks on this click; granted here
    wait_for(lambda: bob.driver.execute_script(
        "return localStorage.getItem('morelia.notify.on')") == "1", what="notifications on")
    bob.driver.execute_script("arguments[0].close()", bob.css("#settings-dialog"))
    alice.create("chat", login=bob_login)
    alice.create("group", "Hikers")
    alice.open_flow("Hikers")
    bob.join("Hikers")
    bob.driver.execute_script(NOTIFICATIONS)

    # A direct chat notifies by default; a group does not, until asked to.
    alice.say("in the group")
    alice.open_flow("Bob")
    alice.say("just for you")
    chat = wait_for(lambda: shown(bob), what="a notification")
    assert chat == [["Alice", "just for you", chat[0][2]]]
    bob.css("#members-button").click()
    choose(bob, "#notify-mode", "all")
    bob.driver.execute_script("arguments[0].close()", bob.css("#members-dialog"))
    alice.open_flow("Hikers")
    alice.say("now the group")
    wait_for(lambda: len(shown(bob)) == 2, what="the group's notification")
    assert shown(bob)[1][:2] == ["Alice · Hikers", "now the group"]
    bob.open_flow("Alice")
    bob.css("#members-button").click()
    choose(bob, "#notify-mode", "off")
    bob.driver.execute_script("arguments[0].close()", bob.css("#members-dialog"))
    alice.open_flow("Bob")
    alice.say("muted")
    alice.open_flow("Hikers")
    alice.say("after the muted one")
    wait_for(lambda: len(shown(bob)) == 3, what="the group's second notification")
    assert [note[1] for note in shown(bob)] == ["just for you", "now the group",
                                                "after the muted one"]


@pytest.mark.skipif(os.environ.get("MORELIA_SCREENSHOT") != "1",
                    reason="makes docs/screenshot.png: run with MORELIA_SCREENSHOT=1")
async def test_screenshot_of_a_conversation(pages: list[Page], tmp_path: Path) -> None:
    """docs/screenshot.png, from a real run (what it shows is tested on its own above)."""
    maria, ivan = pages
    maria_login, ivan_login = unique_login("maria"), unique_login("ivan")
    maria.register(maria_login, username="Maria")
    ivan.register(ivan_login, username="Ivan")
    maria.create("group", "Weekend hike")
    maria.create("channel", "Club news")
    maria.create("chat", login=ivan_login)
    maria.open_flow("Weekend hike")
    ivan.join("Weekend hike")
    lines = [(maria, "Who is coming on Saturday?"),
             (ivan, "Me! What time do we leave?"),
             (maria, "8:00 at the station. Bring water and a raincoat."),
             (ivan, "Great, see you there.\nI'll bring the map."),
             (maria, "Perfect, see you!")]
    for speaker, text in lines:
        speaker.say(text)
        (ivan if speaker is maria else maria).sees(text)
    edit_in_browser(ivan, "Me! What time do we leave?", "Me too! What time do we leave?")
    maria.sees("Me too! What time do we leave?")
    # A reply, reactions and a mention, as people use them.
    action(ivan, "8:00 at the station. Bring water and a raincoat.", "reply")
    ivan.say("Is the station café open that early?")
    maria.sees("Is the station café open that early?")
    for page, text in ((ivan, "8:00 at the station. Bring water and a raincoat."),
                       (maria, "Great, see you there.\nI'll bring the map.")):
        action(page, text, "react")
        wait_for(lambda page=page: page.css("#react-dialog").is_displayed(), what="picker")
        page.css(f"#react-picks li:nth-child({1 if page is ivan else 2}) button").click()
    wait_for(lambda: len(maria.all("#messages .reactions button")) == 2, what="two reactions")
    box = maria.css("#text")
    box.send_keys("Yes, from 7:30 — ")
    box.send_keys("@I")
    wait_for(lambda: maria.css("#mention-list").is_displayed(), what="Ivan offered")
    from selenium.webdriver.common.keys import Keys
    box.send_keys(Keys.ENTER)
    box.send_keys("grab me a coffee?", Keys.ENTER)
    ivan.sees("Yes, from 7:30 — @Ivan grab me a coffee?")
    ivan.css("#text").send_keys("Sure")  # Maria sees Ivan typing
    wait_for(lambda: maria.css("#typing").is_displayed(), what="the typing line")
    wait_for(lambda: maria.driver.execute_script(
        "const l = document.querySelector('#messages');"
        "return l.scrollHeight - l.scrollTop - l.clientHeight < 2"), what="still at the end")
    shot = tmp_path / "screenshot.png"
    maria.screenshot(shot)
    assert shot.stat().st_size > 10_000
    shutil.copyfile(shot, SCREENSHOT)
