"""Thumbnails, bounded: a fixed set of sizes (`[MEDIA] THUMBNAIL_SIZES`; a request gets the
nearest one that is large enough), each made once and kept on disk; all sizes of a picture
from one decode (`mod.imaging`), in a few worker processes of their own
(`[MEDIA] THUMBNAIL_WORKERS`), each job within `[MEDIA] THUMBNAIL_TIMEOUT` seconds.

Decoding never runs in the server process nor on its threads: a storm of thumbnail requests
waits for the workers and delays nothing else. A worker past its time limit is killed (its
memory goes with it) and replaced on the next job; requests for the picture being made wait
on that one job (single flight); a picture refused is remembered for a while, so asking
again costs nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time
from collections import OrderedDict
from pathlib import Path

from loguru import logger

import mod
from mod.config.validator import Media as MediaSettings
from mod.error import ServiceError, Throttled
from mod.imaging import Size, parse_sizes

ROOT = Path(mod.__file__).resolve().parent.parent
REMEMBERED = 1024  # refused pictures remembered
NICE = 10  # the workers' scheduling priority (niceness), below the server's
START_TIMEOUT = 60.0  # seconds a new worker may take to import Pillow
TIMED_OUT_FOR = 60.0  # seconds a picture that timed out (or killed its worker) is refused


def nearest(sizes: tuple[Size, ...], width: int, height: int, method: str) -> Size:
    """The size that answers a request: of the request's method when there is one (else any),
    the smallest at least as large as asked, else the largest."""
    same = [size for size in sizes if size.method == method] or list(sizes)
    large = [size for size in same if size.width >= width and size.height >= height]
    if large:
        return min(large, key=lambda size: size.width * size.height)
    return max(same, key=lambda size: size.width * size.height)


class Worker:
    """One worker process and its pipes."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    @classmethod
    async def start(cls) -> Worker:
        code = (f"import sys; sys.path.insert(0, {str(ROOT)!r}); "
                f"from mod.imaging import main; main()")
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-I", "-c", code, stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, limit=1024 * 1024)
        worker = cls(process)
        with contextlib.suppress(OSError):  # the server's own work comes first, from the start
            os.setpriority(os.PRIO_PROCESS, process.pid, NICE)
        assert process.stdout is not None
        try:  # ready once Pillow is imported: a job's time limit starts after that
            ready = await asyncio.wait_for(process.stdout.readline(), START_TIMEOUT)
        except BaseException:
            await worker.reap()
            raise
        if not ready:
            await worker.reap()
            raise ConnectionError("the thumbnail worker did not start")
        return worker

    async def run(self, job: dict[str, object], timeout: float) -> dict[str, object]:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(json.dumps(job).encode() + b"\n")
        await self.process.stdin.drain()
        line = await asyncio.wait_for(self.process.stdout.readline(), timeout)
        if not line:
            raise ConnectionError("the thumbnail worker ended")
        answer: dict[str, object] = json.loads(line)
        return answer

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.process.kill()

    async def reap(self) -> None:
        self.kill()
        with contextlib.suppress(ProcessLookupError):
            await self.process.wait()


class Thumbnails:
    def __init__(self, root: Path, settings: MediaSettings) -> None:
        self.root = root
        self.sizes = parse_sizes(settings.thumbnail_sizes)
        self.timeout = settings.thumbnail_timeout
        self.max_pixels = settings.max_image_pixels
        self.queue = settings.thumbnail_queue
        workers = settings.thumbnail_workers
        self.slots = asyncio.Semaphore(workers) if workers else None
        self.jobs: set[asyncio.Task[None]] = set()
        self.idle: list[Worker] = []
        self.busy: set[Worker] = set()
        self.making: dict[str, asyncio.Future[dict[str, str]]] = {}
        self.refused: OrderedDict[str, tuple[int, str, float]] = OrderedDict()
        self.closed = False

    def path(self, sha256: str, size: Size, suffix: str) -> Path:
        return self.root / sha256[:2] / f"{sha256}-{size.key()}.{suffix}"

    def _kept(self, sha256: str, size: Size) -> tuple[Path, str] | None:
        for kind, suffix in (("image/png", "png"), ("image/jpeg", "jpg")):
            path = self.path(sha256, size, suffix)
            if path.exists():
                return path, kind
        return None

    async def get(self, source: Path, sha256: str, width: int, height: int, method: str
                  ) -> tuple[Path, str]:
        """The thumbnail answering a request for width×height by `method`: its path and
        content type; made (with every other size) by a worker if not kept yet."""
        size = nearest(self.sizes, width, height, method)
        kept = await asyncio.to_thread(self._kept, sha256, size)
        if kept is not None:
            return kept
        self._check_refused(sha256)
        making = self.making.get(sha256)
        if making is None:
            if len(self.making) >= self.queue:
                raise Throttled(self.timeout, f"Too many pictures are being thumbnailed "
                                              f"now (at most {self.queue} at once)")
            making = asyncio.get_running_loop().create_future()
            self.making[sha256] = making
            task = asyncio.create_task(self._make(source, sha256, making))
            self.jobs.add(task)
            task.add_done_callback(self.jobs.discard)
            task.add_done_callback(lambda _: self.making.pop(sha256, None))
        made = await asyncio.shield(making)
        suffix = made[size.key()]
        return self.path(sha256, size, suffix), "image/png" if suffix == "png" else "image/jpeg"

    def _check_refused(self, sha256: str) -> None:
        found = self.refused.get(sha256)
        if found is None:
            return
        status, message, until = found
        if until and time.monotonic() > until:
            del self.refused[sha256]
            return
        raise ServiceError(status, message)

    def _refuse(self, sha256: str, status: int, message: str, for_seconds: float = 0.0
                ) -> ServiceError:
        self.refused[sha256] = (status, message,
                                time.monotonic() + for_seconds if for_seconds else 0.0)
        while len(self.refused) > REMEMBERED:
            self.refused.popitem(last=False)
        return ServiceError(status, message)

    async def _make(self, source: Path, sha256: str,
                    done: asyncio.Future[dict[str, str]]) -> None:
        try:
            done.set_result(await self._job(source, sha256))
        except BaseException as error:
            if not done.done():
                done.set_exception(error)
            if isinstance(error, asyncio.CancelledError):
                raise
        finally:
            if done.done() and not done.cancelled():
                done.exception()  # retrieved: nobody waiting is not an error

    async def _job(self, source: Path, sha256: str) -> dict[str, str]:
        if self.closed or self.slots is None:
            raise ServiceError(503, "Thumbnails are not made now")
        job = {"source": str(source), "target_dir": str(self.root / sha256[:2]),
               "sha256": sha256, "max_pixels": self.max_pixels,
               "sizes": [[size.width, size.height, size.method] for size in self.sizes]}
        async with self.slots:
            try:
                worker = self.idle.pop() if self.idle else await Worker.start()
            except (ConnectionError, OSError) as error:
                logger.warning("thumbnail worker did not start: {}", error)
                raise ServiceError(503, "Thumbnails cannot be made now") from None
            self.busy.add(worker)
            started = time.monotonic()
            try:
                answer = await worker.run(job, self.timeout)
            except TimeoutError:
                self.busy.discard(worker)
                await worker.reap()
                logger.warning("thumbnail of {} took over {} s: its worker was stopped",
                               sha256[:12], self.timeout)
                raise self._refuse(sha256, 504, f"Making this thumbnail took longer than "
                                                f"{self.timeout:g} s", TIMED_OUT_FOR) from None
            except (ConnectionError, OSError, ValueError) as error:
                self.busy.discard(worker)
                await worker.reap()
                logger.warning("thumbnail worker failed on {}: {}", sha256[:12], error)
                raise self._refuse(sha256, 500, "The thumbnail could not be made",
                                   TIMED_OUT_FOR) from None
            except BaseException:
                self.busy.discard(worker)
                await worker.reap()
                raise
            self.busy.discard(worker)
            if answer.get("retire") or self.closed:
                await worker.reap()
            else:
                self.idle.append(worker)
        status = int(str(answer.get("status", 500)))
        if status != 200:
            message = str(answer.get("error", "The thumbnail could not be made"))
            if status == 400:
                raise self._refuse(sha256, status, message)
            raise ServiceError(status, message)
        made = answer.get("made")
        assert isinstance(made, dict)
        logger.debug("thumbnails of {} made in {:.2f} s", sha256[:12],
                     time.monotonic() - started)
        return {str(key): str(value) for key, value in made.items()}

    def close(self) -> None:
        """Stop every worker now (server shutdown): none outlives the server."""
        self.closed = True
        for worker in [*self.idle, *self.busy]:
            worker.kill()
            if worker.process.stdin is not None:
                worker.process.stdin.close()
        self.idle.clear()
        self.busy.clear()

    async def stop(self) -> None:
        """`close`, and wait until the workers have ended."""
        workers = [*self.idle, *self.busy]
        self.close()
        for worker in workers:
            await worker.reap()

