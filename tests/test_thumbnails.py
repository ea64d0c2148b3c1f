"""Thumbnails end to end (issue 19, cases 1 and 2): a PostScript file sent as image/png never
starts Ghostscript; a storm of thumbnail requests of a 7900x7900 PNG at 12 widths is one
decode in a worker process, keeps only the configured sizes, leaves the server's memory small
and delays no other user; a thumbnail past its time limit is refused and its worker
replaced."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import io
import os
import signal
import stat
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import nio
import pytest
from PIL import Image

from tests.support import ServerProcess, running_server, zero_png
from tests.test_matrix_support import SERVER_NAME, Matrix, matrix_session, sync_until

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

ENV = {"MORELIA_MATRIX_SERVER_NAME": SERVER_NAME, "MORELIA_MATRIX_SYNC_TIMEOUT_MAX": "5"}
SIZES = ("32x32-crop", "96x96-crop", "320x240-scale", "640x480-scale", "800x600-scale")
MIB = 1024 * 1024

# A PostScript file as Pillow's EPS reader takes it: a decoder would hand it to Ghostscript,
# which would read a file and then loop for ever.
EPS = b"""%!PS-Adobe-3.0 EPSF-3.0
%%BoundingBox: 0 0 64 64
%%EndComments
(/etc/passwd) (r) file 100 string readstring pop pop
{ 1 pop } loop
showpage
%%EOF
"""


def png(width: int, height: int, color: tuple[int, int, int] = (30, 90, 200)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), color).save(out, "PNG")
    return out.getvalue()


def children(pid: int) -> list[int]:
    """The processes whose parent is `pid` (the server's thumbnail workers)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
                if int(fields[1]) == pid and fields[0] != "Z":
                    found.append(int(entry))
    return found


def peak_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


def pid_of(server: ServerProcess) -> int:
    assert server.process is not None
    return server.process.pid


async def started_workers(server: ServerProcess, *pending: asyncio.Task[httpx.Response],
                          rss: int = 0) -> list[int]:
    """The server's worker processes as soon as there are any, using more than `rss` bytes
    (decoding); none if `pending` ended first."""
    while not all(task.done() for task in pending):
        found = [pid for pid in children(pid_of(server)) if rss_of(pid) > rss]
        if found:
            return found
        await asyncio.sleep(0.005)
    return []


def rss_of(pid: int) -> int:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


@pytest.fixture(scope="module")
def fake_gs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A program named gs, first on PATH, that leaves a mark if it is ever started."""
    where = tmp_path_factory.mktemp("fake-gs")
    mark = where / "gs-was-started"
    gs = where / "bin" / "gs"
    gs.parent.mkdir()
    gs.write_text(f"#!/bin/sh\necho \"$@\" >> '{mark}'\nexit 1\n")
    gs.chmod(gs.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return gs.parent, mark


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, fake_gs: tuple[Path, Path]
           ) -> Iterator[ServerProcess]:
    env = {**ENV, "PATH": f"{fake_gs[0]}{os.pathsep}{os.environ.get('PATH', '')}"}
    with running_server("sqlite", tmp_path_factory.mktemp("thumbs"), env=env) as process:
        yield process


@pytest.fixture
async def mx(server: ServerProcess) -> AsyncIterator[Matrix]:
    async for matrix in matrix_session(server):
        yield matrix


async def upload(mx: Matrix, client: nio.AsyncClient, data: bytes, kind: str) -> str:
    response = await mx.raw("POST", "/_matrix/media/v3/upload", client.access_token,
                            content=data, headers={"Content-Type": kind})
    assert response.status_code == 200, response.text
    return str(response.json()["content_uri"]).removeprefix("mxc://")


async def thumbnail(mx: Matrix, one: str, width: int, height: int, method: str = "scale",
                    token: str | None = None) -> httpx.Response:
    query = f"width={width}&height={height}&method={method}"
    if token is None:
        return await mx.raw("GET", f"/_matrix/media/v3/thumbnail/{one}?{query}")
    return await mx.raw("GET", f"/_matrix/client/v1/media/thumbnail/{one}?{query}", token)


async def others_are_served(mx: Matrix) -> None:
    """Another user (Matrix and MTP) sends, syncs, uploads, downloads and gets a thumbnail."""
    bob = await mx.user("bob")
    room = await mx.room(bob)
    sent = await bob.room_send(room, "m.room.message", {"msgtype": "m.text", "body": "hi"})
    assert isinstance(sent, nio.RoomSendResponse), sent
    assert isinstance(await bob.sync(timeout=0), nio.SyncResponse)
    picture = png(120, 90)
    one = await upload(mx, bob, picture, "image/png")
    got = await mx.raw("GET", f"/_matrix/client/v1/media/download/{one}", bob.access_token)
    assert (got.status_code, got.content) == (200, picture)
    writer = await mx.mtp.user("carol")
    flow = await writer.group("still here")
    reply = await writer.call("send_message", flow=[{"uuid": flow}],
                              message=[{"client_id": 1, "text": "still served"}])
    assert reply["errors"]["code"] == 200, reply


async def test_postscript_never_reaches_ghostscript(mx: Matrix, fake_gs: tuple[Path, Path]
                                                    ) -> None:
    _, mark = fake_gs
    alice = await mx.user("alice")
    one = await upload(mx, alice, EPS, "image/png")
    for token in (alice.access_token, None):  # authenticated, and the legacy path
        refused = await thumbnail(mx, one, 64, 64, "scale", token)
        assert refused.status_code == 400, refused.text
        assert "not a picture" in refused.json()["error"]
        assert not mark.exists(), mark.read_text()

    # An MTP picture is sniffed from its bytes: PostScript is a file, never an image.
    writer = await mx.mtp.user("mtp")
    flow = await writer.group("eps")
    room = f"!{flow}:{SERVER_NAME}"
    assert isinstance(await alice.join(room), nio.JoinResponse)
    await alice.sync(timeout=0)
    reply = await writer.call("send_message", flow=[{"uuid": flow}], message=[{
        "client_id": 1, "text": "", "file_picture": base64.b64encode(EPS).decode()}])
    assert reply["errors"]["code"] == 200, reply
    seen = await sync_until(alice, room, lambda event: "url" in event.get("content", {}))
    content = next(event["content"] for event in seen if "url" in event["content"])
    assert (content["msgtype"], content["info"]["mimetype"]) == ("m.file",
                                                                 "application/postscript")
    mtp_one = str(content["url"]).removeprefix("mxc://")
    refused = await thumbnail(mx, mtp_one, 32, 32, "crop", alice.access_token)
    assert refused.status_code == 400, refused.text

    await others_are_served(mx)
    assert not mark.exists(), mark.read_text()


async def test_a_storm_of_thumbnails_is_one_decode(mx: Matrix, server: ServerProcess
                                                  ) -> None:
    alice = await mx.user("alice")
    picture = zero_png()
    assert 200_000 < len(picture) < 300_000
    one = await upload(mx, alice, picture, "image/png")
    sha = hashlib.sha256(picture).hexdigest()
    storm = [asyncio.create_task(thumbnail(mx, one, width, 100, "scale",
                                           alice.access_token if width % 2 else None))
             for width in range(100, 112)]
    # Hold the decoding worker still while the storm is pending: everyone else is served.
    server_pid = pid_of(server)
    stopped = await started_workers(server, *storm)
    for pid in stopped:
        os.kill(pid, signal.SIGSTOP)
    try:
        await others_are_served(mx)
    finally:
        for pid in stopped:
            os.kill(pid, signal.SIGCONT)
    answers = await asyncio.gather(*storm)
    assert [answer.status_code for answer in answers] == [200] * 12, answers
    assert {Image.open(io.BytesIO(answer.content)).size for answer in answers} == {(240, 240)}
    thumbs = server.directory / "media" / "thumbs" / sha[:2]
    kept = sorted(path.name for path in thumbs.glob(f"{sha}-*"))
    assert kept == sorted(f"{sha}-{size}.png" for size in SIZES)
    # The picture (250 MB decoded) was never decoded in the server process.
    assert peak_rss(server_pid) < 300 * MIB
    crop = await thumbnail(mx, one, 40, 40, "crop", alice.access_token)
    assert Image.open(io.BytesIO(crop.content)).size == (96, 96)


@pytest.fixture
def slow_server(tmp_path: Path) -> Iterator[ServerProcess]:
    env = {**ENV, "MORELIA_MEDIA_THUMBNAIL_TIMEOUT": "2"}
    with running_server("sqlite", tmp_path, env=env) as process:
        yield process


async def test_a_thumbnail_past_its_time_limit_is_refused(slow_server: ServerProcess
                                                          ) -> None:
    async for mx in matrix_session(slow_server):
        alice = await mx.user("alice")
        one = await upload(mx, alice, zero_png(), "image/png")
        asked = asyncio.create_task(thumbnail(mx, one, 320, 240, "scale", alice.access_token))
        # Hold the worker still once it decodes: its job surely outlasts the limit.
        workers = await started_workers(slow_server, asked, rss=100 * MIB)
        for pid in workers:
            os.kill(pid, signal.SIGSTOP)
        late = await asked
        assert (late.status_code, late.json()["errcode"]) == (504, "M_UNKNOWN"), late.text
        assert "longer than 2 s" in late.json()["error"]
        assert children(pid_of(slow_server)) == []  # its worker was stopped
        again = await thumbnail(mx, one, 320, 240, "scale")  # remembered: no second try
        assert again.status_code == 504
        await others_are_served(mx)
        bob = await mx.user("bob")
        small = await upload(mx, bob, png(64, 48), "image/png")
        thumb = await thumbnail(mx, small, 32, 32, "crop", bob.access_token)
        assert thumb.status_code == 200, thumb.text
        assert Image.open(io.BytesIO(thumb.content)).size == (32, 32)
        assert "took over 2.0 s" in slow_server.log()


async def test_workers_end_with_the_server(tmp_path: Path) -> None:
    with running_server("sqlite", tmp_path, env=ENV) as process:
        async for mx in matrix_session(process):
            alice = await mx.user("alice")
            one = await upload(mx, alice, png(300, 200), "image/png")
            assert (await thumbnail(mx, one, 96, 96, "crop", alice.access_token)
                    ).status_code == 200
        workers = children(pid_of(process))
        assert workers
    for pid in workers:
        assert not Path(f"/proc/{pid}").exists() or "Z" in Path(
            f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


async def test_a_picture_past_the_pixel_limit_is_never_decoded(mx: Matrix, server: ServerProcess
                                                               ) -> None:
    alice = await mx.user("alice")
    picture = zero_png(8001)  # 64,016,001 pixels: one row past [MEDIA] MAX_IMAGE_PIXELS
    one = await upload(mx, alice, picture, "image/png")
    for token in (alice.access_token, None):
        refused = await thumbnail(mx, one, 96, 96, "crop", token)
        assert (refused.status_code, refused.json()["errcode"]) == (400, "M_INVALID_PARAM")
        assert "too large to thumbnail (8001×8001 pixels)" in refused.json()["error"]
    await others_are_served(mx)
    assert peak_rss(pid_of(server)) < 300 * MIB


async def test_a_worker_that_dies_is_replaced(mx: Matrix, server: ServerProcess) -> None:
    alice = await mx.user("alice")
    one = await upload(mx, alice, zero_png(7899), "image/png")
    asked = asyncio.create_task(thumbnail(mx, one, 96, 96, "crop", alice.access_token))
    for pid in await started_workers(server, asked, rss=100 * MIB):
        os.kill(pid, signal.SIGKILL)  # as the kernel's OOM killer would
    died = await asked
    if died.status_code != 200:  # the job was not over yet when its worker was killed
        assert (died.status_code, died.json()["errcode"]) == (500, "M_UNKNOWN"), died.text
        assert died.json()["error"] == "The thumbnail could not be made"
    await others_are_served(mx)
    small = await upload(mx, alice, png(50, 40), "image/png")
    thumb = await thumbnail(mx, small, 32, 32, "crop", alice.access_token)
    assert thumb.status_code == 200, thumb.text


@pytest.fixture
def queue_server(tmp_path: Path) -> Iterator[ServerProcess]:
    env = {**ENV, "MORELIA_MEDIA_THUMBNAIL_QUEUE": "1", "MORELIA_MEDIA_THUMBNAIL_TIMEOUT": "60"}
    with running_server("sqlite", tmp_path, env=env) as process:
        yield process


async def test_thumbnails_waiting_at_once_are_bounded(queue_server: ServerProcess) -> None:
    async for mx in matrix_session(queue_server):
        alice = await mx.user("alice")
        warm, one, two = [await upload(mx, alice, png(900 + side, 700), "image/png")
                          for side in range(3)]
        made = await thumbnail(mx, warm, 320, 240, "scale", alice.access_token)
        assert made.status_code == 200, made.text
        workers = children(pid_of(queue_server))  # the worker, idle now, waits for a job
        assert workers
        for pid in workers:  # the next job waits on it for as long as the test likes
            os.kill(pid, signal.SIGSTOP)
        try:
            asked = [asyncio.create_task(thumbnail(mx, picture, 320, 240, "scale",
                                                   alice.access_token)) for picture in (one, two)]
            done, _ = await asyncio.wait(asked, return_when=asyncio.FIRST_COMPLETED)
            refused = done.pop().result()  # one picture is being made: the other is refused
            assert refused.status_code == 429, refused.text
            assert refused.json()["errcode"] == "M_LIMIT_EXCEEDED"
            assert refused.json()["retry_after_ms"] > 0
            assert "(at most 1 at once)" in refused.json()["error"]
            await others_are_served(mx)
        finally:
            for pid in workers:
                os.kill(pid, signal.SIGCONT)
        answers = [await task for task in asked]
        assert sorted(answer.status_code for answer in answers) == [200, 429]
        for picture in (one, two):  # once the queue is free, each is made
            again = await thumbnail(mx, picture, 320, 240, "scale", alice.access_token)
            assert again.status_code == 200, again.text
