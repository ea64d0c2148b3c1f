"""Server processes forked from a process that has already imported the server's libraries.

A `uvicorn server:app` subprocess spends most of its start (about 0.3 s of CPU on this
machine, a hundred times per run of the suite) importing pydantic, Starlette, SQLObject and
the server's own modules. `spawn` asks one helper process per test process, which imported
them once, to fork a child that becomes `python -m uvicorn ...`: a process of its own, with its
own pid, environment, working directory, output and signals, as `subprocess.Popen` would give.

`server.py` itself is imported by the child, after its environment is set, since it reads the
configuration when imported. Starts whose imports depend on the environment (uvicorn's worker
processes, Prometheus' multiprocess mode) are executed afresh: see `forkable`.

Run as `python -m tests.forkserver`, this module is the helper: it reads one JSON request per
line on stdin, and writes `{"pid": n}` for each child it forks and `{"exit": n, "code": c}`
when one ends (c as `Popen.returncode`: negative for a signal).
"""

from __future__ import annotations

import json
import os
import runpy
import select
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# What server.py imports, save server.py: none of these reads the environment when imported.
PRELOADED = ["uvicorn.main", "uvicorn.protocols.http.auto", "uvicorn.protocols.websockets.auto",
             "uvicorn.lifespan.on", "uvloop",
             "mod.config.config", "mod.db.schema", "mod.db.heartbeat", "mod.db.engine",
             "mod.hub", "mod.log_handler", "mod.protocol.matrix", "mod.protocol.mtp.dispatch",
             "mod.protocol.mtp.registry", "mod.protocol.mtp.session", "mod.service",
             "mod.stopping", "mod.webclient",
             # imported when first used: by a server on PostgreSQL, with Redis, and by anyio
             "psycopg", "redis.asyncio", "anyio._backends._asyncio"]


def forkable(args: list[str], env: dict[str, str]) -> bool:
    """Whether a child forked from the helper behaves as one started afresh would."""
    return "--workers" not in args and "PROMETHEUS_MULTIPROC_DIR" not in env


class Forked:
    """The part of `subprocess.Popen` the tests use, for a child of the helper."""

    def __init__(self, helper: Helper, pid: int) -> None:
        self.helper = helper
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            self.returncode = self.helper.exits.get(self.pid)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        with self.helper.changed:
            if not self.helper.changed.wait_for(lambda: self.poll() is not None, timeout):
                raise subprocess.TimeoutExpired(f"pid {self.pid}", timeout or 0)
        assert self.returncode is not None
        return self.returncode

    def send_signal(self, signum: int) -> None:
        if self.poll() is None:
            os.kill(self.pid, signum)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


class Helper:
    """This test process's end of the helper: asks it for children, hears of their ends."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-u", "-m", "tests.forkserver"], cwd=ROOT,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.exits: dict[int, int] = {}
        self.started: list[int] = []
        self.changed = threading.Condition()
        self.asking = threading.Lock()
        threading.Thread(target=self._listen, name="forkserver", daemon=True).start()

    def _listen(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            message = json.loads(line)
            with self.changed:
                if "pid" in message:
                    self.started.append(message["pid"])
                else:
                    self.exits[message["exit"]] = message["code"]
                self.changed.notify_all()
        with self.changed:  # the helper is gone, and its children's ends with it
            self.started.append(-1)
            self.changed.notify_all()

    def spawn(self, argv: list[str], env: dict[str, str], cwd: Path, log: Path) -> Forked:
        request = {"argv": argv, "env": env, "cwd": str(cwd), "log": str(log)}
        assert self.process.stdin is not None
        with self.asking:
            self.process.stdin.write(json.dumps(request).encode() + b"\n")
            self.process.stdin.flush()
            with self.changed:
                self.changed.wait_for(lambda: bool(self.started), 30)
                pid = self.started.pop(0) if self.started else -1
        if pid < 0:
            raise RuntimeError("the fork server did not answer")
        return Forked(self, pid)


_helper: Helper | None = None
_making = threading.Lock()


def spawn(argv: list[str], env: dict[str, str], cwd: Path, log: Path) -> Forked:
    """`python -m uvicorn *argv` in `cwd` with exactly `env`, its output appended to `log`."""
    global _helper
    with _making:
        if _helper is None or _helper.process.poll() is not None:
            _helper = Helper()
    return _helper.spawn(argv, env, cwd, log)


# The helper's side.

def _become(request: dict[str, Any], keep: list[int]) -> None:
    """In the forked child: take on the request's environment and output, and run uvicorn.
    Leaves by SystemExit only, through the helper's frames, which hold nothing to clean up."""
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    signal.set_wakeup_fd(-1)
    for fd in keep:
        os.close(fd)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    log = os.open(request["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(log)
    os.close(null)
    sys.argv = ["uvicorn", *request["argv"]]
    runpy.run_module("uvicorn", run_name="__main__", alter_sys=True)
    sys.exit(0)


def _serve() -> None:
    import importlib

    for name in PRELOADED:
        importlib.import_module(name)
    woken, wake = os.pipe()
    os.set_blocking(wake, False)
    os.set_blocking(woken, False)
    signal.set_wakeup_fd(wake)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    requests = os.fdopen(0, "rb", buffering=0)
    pending = b""
    while True:
        ready, _, _ = select.select([0, woken], [], [])
        if woken in ready:
            while True:
                try:
                    os.read(woken, 512)
                except BlockingIOError:
                    break
            _reap()
        if 0 not in ready:
            continue
        data = requests.read(65536)
        if not data:
            return
        pending += data
        while b"\n" in pending:
            line, pending = pending.split(b"\n", 1)
            pid = os.fork()
            if pid == 0:
                _become(json.loads(line), [woken, wake])
            _tell({"pid": pid})


def _reap() -> None:
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        _tell({"exit": pid, "code": os.waitstatus_to_exitcode(status)})


def _tell(message: dict[str, int]) -> None:
    os.write(1, json.dumps(message).encode() + b"\n")


if __name__ == "__main__":
    _serve()
