"""How long `manage.py db import-original` takes for a sizeable original server.

    python bench/import_bench.py [--users 2000] [--flows 200] [--messages 50000]

Builds an original server's SQLite database (its schema as SQLObject created it; each user
with a clear password, each flow a group of 20 members or a chat of two, messages with a
small picture on every tenth), imports it into a fresh SQLite database with manage.py in a
subprocess, and prints the time of each phase (read from the progress lines) and the total.
Hashing each password with argon2id dominates the users phase; it runs on every core.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import os
import random
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.test_import_original import SQLITE_SCHEMA  # noqa: E402

# A client's base64 string (1.5 KiB of bytes), as SQLObject kept it on SQLite: base64 again.
PICTURE = base64.b64encode(base64.b64encode(bytes(range(256)) * 6)).decode()


def build(path: Path, users: int, flows: int, messages: int) -> None:
    rng = random.Random(7)
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        conn.executescript(SQLITE_SCHEMA)
        conn.executemany(
            "INSERT INTO user_config (id, uuid, login, password, username, is_bot, email, bio) "
            "VALUES (?, ?, ?, ?, ?, 0, ?, '')",
            [(n, str(10**20 + n), f"user{n}", f"password-{n}", f"User {n}",
              f"user{n}@example.org") for n in range(1, users + 1)])
        conn.execute("INSERT INTO admin (username, hash_password) VALUES ('user1', 'x')")
        members: dict[int, list[int]] = {}
        for f in range(1, flows + 1):
            chat = f % 4 == 0
            chosen = rng.sample(range(1, users + 1), 2 if chat else 20)
            members[f] = chosen
            conn.execute("INSERT INTO flow (id, uuid, time_created, flow_type, title, info, "
                         "owner) VALUES (?, ?, ?, ?, ?, '', ?)",
                         (f, str(2 * 10**20 + f), 1_600_000_000 + f,
                          "chat" if chat else "group", f"Flow {f}", str(10**20 + chosen[0])))
            conn.executemany("INSERT INTO flow_user_config VALUES (?, ?)",
                             [(f, u) for u in chosen])
        rows = []
        for m in range(1, messages + 1):
            f = rng.randint(1, flows)
            rows.append((m, str(3 * 10**20 + m), f"message {m}", 1_600_100_000 + m,
                         PICTURE if m % 10 == 0 else None, rng.choice(members[f]), f))
        conn.executemany("INSERT INTO message (id, uuid, text, time, file_picture, "
                         "edited_status, user_id, flow_id) VALUES (?, ?, ?, ?, ?, 0, ?, ?)",
                         rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--flows", type=int, default=200)
    parser.add_argument("--messages", type=int, default=50_000)
    args = parser.parse_args()
    from mod import lib

    clock = time.monotonic()
    for n in range(4):
        lib.hash_password(f"sample-{n}")
    one_hash = (time.monotonic() - clock) / 4
    with tempfile.TemporaryDirectory() as tmp:
        source, target = Path(tmp) / "db_sqlite.db", Path(tmp) / "morelia.db"
        build(source, args.users, args.flows, args.messages)
        env = {**os.environ, "MORELIA_DATABASE_URI": f"sqlite:{target}"}
        env.pop("MORELIA_CONFIG", None)
        started = time.monotonic()
        process = subprocess.Popen(
            [sys.executable, str(ROOT / "manage.py"), "db", "import-original",
             f"sqlite:{source}"], cwd=tmp, env=env, stdout=subprocess.PIPE, text=True)
        assert process.stdout is not None
        phases: dict[str, float] = {}
        last = ""
        for line in process.stdout:
            kind = line.split(":", 1)[0]
            if kind in ("users", "flows", "messages"):
                phases[kind] = time.monotonic() - started
            last = line.strip()
        code = process.wait()
        total = time.monotonic() - started
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = usage.ru_utime + usage.ru_stime
        print(f"{args.users} users, {args.flows} flows, {args.messages} messages, "
              f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; one argon2id "
              f"hash alone: {one_hash * 1000:.0f} ms")
        print(f"users (argon2id hashing) done at {phases.get('users', 0):.1f} s, flows at "
              f"{phases.get('flows', 0):.1f} s, messages at {phases.get('messages', 0):.1f} s")
        rate = args.messages / max(phases.get("messages", 0) - phases.get("flows", 0), 1e-9)
        cores = os.cpu_count() or 1
        print(f"total {total:.1f} s; messages {rate:,.0f}/s; CPU time of the import "
              f"{cpu:.0f} s (on {cores} idle cores: about {cpu / cores:.0f} s)")
        print(last)
        return code


if __name__ == "__main__":
    raise SystemExit(main())
