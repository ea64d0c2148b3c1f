"""manage.py db import-original: a database of the original server's schema, imported, then
used over MTP and Matrix with the old passwords."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner, Result
from PIL import Image

from manage import cli
from mod.db import imported, original
from tests.support import DATABASE_KINDS, Client, ServerProcess, database_uri, postgres_database

# The original's tables as SQLObject 3.9 created them for release 0.4.0 (its `.schema` and
# `\d`, compared): default naming, an integer id, BLOBCol as TEXT on SQLite (holding base64)
# and BYTEA on PostgreSQL, the Flow/UserConfig RelatedJoin as flow_user_config. On PostgreSQL
# the message table has no foreign keys: the original creates its tables in alphabetical
# order, so adding them fails (user_config does not exist yet) and its next start goes on.
SQLITE_SCHEMA = """
CREATE TABLE user_config (id INTEGER PRIMARY KEY AUTOINCREMENT, uuid TEXT NOT NULL UNIQUE,
    login TEXT NOT NULL, password TEXT NOT NULL, hash_password TEXT, username TEXT,
    is_bot BOOLEAN, auth_id TEXT, token_ttl INT, email TEXT, avatar TEXT, bio TEXT,
    salt TEXT, key TEXT);
CREATE TABLE flow (id INTEGER PRIMARY KEY AUTOINCREMENT, uuid TEXT NOT NULL UNIQUE,
    time_created INT, flow_type TEXT, title TEXT, info TEXT, owner TEXT);
CREATE TABLE message (id INTEGER PRIMARY KEY AUTOINCREMENT, uuid TEXT NOT NULL UNIQUE,
    text TEXT, time INT, file_picture TEXT, file_video TEXT, file_audio TEXT,
    file_document TEXT, emoji TEXT, edited_time INT, edited_status BOOLEAN,
    user_id INT CONSTRAINT user_id_exists REFERENCES user_config(id),
    flow_id INT CONSTRAINT flow_id_exists REFERENCES flow(id));
CREATE TABLE admin (id INTEGER PRIMARY KEY AUTOINCREMENT, username TEXT NOT NULL UNIQUE,
    hash_password TEXT NOT NULL);
CREATE TABLE flow_user_config (flow_id INT NOT NULL, user_config_id INT NOT NULL);
"""
POSTGRES_SCHEMA = """
CREATE TABLE user_config (id SERIAL PRIMARY KEY, uuid TEXT NOT NULL UNIQUE,
    login TEXT NOT NULL, password TEXT NOT NULL, hash_password TEXT, username TEXT,
    is_bot BOOL, auth_id TEXT, token_ttl INT, email TEXT, avatar BYTEA, bio TEXT,
    salt BYTEA, key BYTEA);
CREATE TABLE flow (id SERIAL PRIMARY KEY, uuid TEXT NOT NULL UNIQUE, time_created INT,
    flow_type TEXT, title TEXT, info TEXT, owner TEXT);
CREATE TABLE message (id SERIAL PRIMARY KEY, uuid TEXT NOT NULL UNIQUE, text TEXT, time INT,
    file_picture BYTEA, file_video BYTEA, file_audio BYTEA, file_document BYTEA, emoji BYTEA,
    edited_time INT, edited_status BOOL, user_id INT, flow_id INT);
CREATE TABLE admin (id SERIAL PRIMARY KEY, username TEXT NOT NULL UNIQUE,
    hash_password TEXT NOT NULL);
CREATE TABLE flow_user_config (flow_id INT NOT NULL, user_config_id INT NOT NULL);
"""



def png(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (10, 120, 200)).save(buffer, "PNG")
    return buffer.getvalue()


# What clients sent (JSON strings); the original kept their UTF-8 bytes in its BLOB columns.
PICTURE = base64.b64encode(png(3, 2)).decode()
PICTURE_SHA256 = hashlib.sha256(png(3, 2)).hexdigest()
EMOJI = "🙂"
PASSWORDS = {"alice": "alice-old-pass", "bob": "bob's old pass", "carol": "carol-pw-1",
             "dave": "dave-pw-2"}
U = {name: str(10**20 + n) for n, name in enumerate(
    ["alice", "bob", "carol", "dave", "nul", "bob2", "mallory"], 1)}
F = {name: str(2 * 10**20 + n) for n, name in enumerate(
    ["chat", "group", "channel", "crowd", "forum"], 1)}
# (id, uuid, text, time, picture, emoji, edited_time, edited, user id, flow id): ids out of
# time order on purpose; the import keeps the time order.
MESSAGES: list[tuple[Any, ...]] = [
    (1, "m1", "Hello group", 1_600_000_100, None, None, None, False, 1, 2),
    (2, "m2", "A picture", 1_600_000_300, PICTURE, None, None, False, 2, 2),
    (3, "m3", "Earlier than the picture", 1_600_000_200, None, None, None, False, 3, 2),
    (4, "m4", "Edited text", 1_600_000_400, None, None, 1_600_000_900, True, 3, 2),
    (5, "m5", "", 1_600_000_500, None, EMOJI, None, False, 1, 2),
    (6, "m6", "Hi Bob", 1_600_000_050, None, None, None, False, 1, 1),
    (7, "m7", "News", 1_600_000_600, None, None, None, False, 1, 3),
    (8, "m8", "Nowhere", 1_600_000_700, None, None, None, False, 1, None),
    (9, "m9", "In the crowd chat", 1_600_000_700, None, None, None, False, 1, 4),
    (10, "m10", "Outsider in a chat", 1_600_000_800, None, None, None, False, 3, 1),
    (11, "m11", "Bob wrote in the channel", 1_600_000_650, None, None, None, False, 2, 3),
]
NUL_MESSAGE = (12, "m12", "bad\x00text", 1_600_000_900, None, None, None, False, 1, 2)
pytestmark = [pytest.mark.anyio, pytest.mark.slow]
GROUP_TEXTS = ["Hello group", "Earlier than the picture", "A picture", "Edited text", ""]


def build_original(kind: str, target: str) -> None:
    """An original server's database: users (one with NUL in its login on SQLite, one with
    the login of another), each flow type plus a chat of three and an unknown type,
    messages with files, an edited message, an admin."""
    sqlite = kind == "sqlite"
    users = [(1, U["alice"], "alice", "Alice", False, "alice@example.org"),
             (2, U["bob"], "bob", "Bob", False, ""), (3, U["carol"], "carol", "", False, ""),
             (4, U["dave"], "dave", "Dave bot", True, "not an address"),
             (5, U["bob2"], "bob", "Second Bob", False, ""),
             (6, U["mallory"], "mallory", "Mallory", False, "")]
    if sqlite:
        users.append((7, U["nul"], "ev\x00e", "Eve", False, ""))
    flows = [(1, F["chat"], 1_600_000_000, "chat", "", "", U["alice"], [1, 2]),
             (2, F["group"], 1_600_000_001, "group", "Friends", "Our group", U["alice"],
              [1, 2, 3]),
             (3, F["channel"], 1_600_000_002, "channel", "News", "", U["alice"], [1, 4]),
             (4, F["crowd"], 1_600_000_003, "chat", "", "", U["alice"], [1, 2, 3]),
             (5, F["forum"], 1_600_000_004, "forum", "Forum", "", U["alice"], [1])]
    messages = [*MESSAGES, *([NUL_MESSAGE] if sqlite else [])]

    def data(value: str | None) -> Any:
        """A BLOB as the original stored a client's string: its UTF-8 bytes, which SQLObject
        writes as base64 text on SQLite."""
        if value is None:
            return None
        return base64.b64encode(value.encode()).decode() if sqlite else value.encode()

    statements: list[tuple[str, tuple[Any, ...]]] = []
    for uid, uuid, login, username, bot, email in users:
        statements.append(("INSERT INTO user_config (id, uuid, login, password, hash_password, "
                           "username, is_bot, auth_id, token_ttl, email, avatar, bio) VALUES "
                           "(?, ?, ?, ?, 'h', ?, ?, 'old-token', 3600, ?, ?, ?)",
                           (uid, uuid, login, PASSWORDS.get(login, "other-pw"), username, bot,
                            email, data("avatar-" + login), f"bio of {login}")))
    statements.append(("INSERT INTO admin (username, hash_password) VALUES ('alice', 'x')", ()))
    statements.append(("INSERT INTO admin (username, hash_password) VALUES ('nobody', 'x')", ()))
    for fid, uuid, created, flow_type, title, info, owner, members in flows:
        statements.append(("INSERT INTO flow (id, uuid, time_created, flow_type, title, info, "
                            "owner) VALUES (?, ?, ?, ?, ?, ?, ?)",
                            (fid, uuid, created, flow_type, title, info, owner)))
        statements.extend(("INSERT INTO flow_user_config VALUES (?, ?)", (fid, member))
                          for member in members)
    for mid, uuid, text, when, picture, emoji, edited_time, edited, uid, fid in messages:
        statements.append(("INSERT INTO message (id, uuid, text, time, file_picture, emoji, "
                           "edited_time, edited_status, user_id, flow_id) VALUES "
                           "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                           (mid, uuid, text, when, data(picture), data(emoji), edited_time,
                            edited, uid, fid)))
    if sqlite:
        with contextlib.closing(sqlite3.connect(target)) as conn, conn:
            conn.executescript(SQLITE_SCHEMA)
            for sql, params in statements:
                conn.execute(sql, params)
        return
    import psycopg

    with psycopg.connect(target.replace("postgres://", "postgresql://", 1)) as pg:
        pg.execute(POSTGRES_SCHEMA)
        for sql, params in statements:
            pg.execute(sql.replace("?", "%s"), params)


@contextlib.contextmanager
def original_database(kind: str, directory: Path) -> Iterator[str]:
    """The original's database as its `[DATABASE] URI` names it."""
    if kind == "sqlite":
        path = directory / "db_sqlite.db"
        build_original(kind, str(path))
        yield f"sqlite:{path}"
    else:
        with postgres_database() as uri:
            build_original(kind, uri)
            yield uri + "?debug=True"


def run(*args: str) -> Result:
    result = CliRunner().invoke(cli, list(args))
    assert "Traceback" not in result.output, result.output
    return result


def ok(*args: str) -> str:
    result = run(*args)
    assert result.exit_code == 0, (result.output, result.exception)
    return result.output


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def target_counts() -> dict[str, int]:
    from mod.cli.common import Database, load
    from mod.db import dbhandler, media

    with Database(load()) as database:
        counts = database.read(dbhandler.counts)
        counts["changes"] = database.read(dbhandler.last_position)
        counts["media"] = len(database.read(media.unreferenced, 2**62))
        counts["referenced"] = int(PICTURE_SHA256 in database.read(media.all_hashes))
    return counts


@pytest.fixture(params=DATABASE_KINDS)
def setup(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
          ) -> Iterator[tuple[str, str]]:
    """(source, target): an original database and an empty server database of one kind."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MORELIA_CONFIG", raising=False)
    with original_database(request.param, tmp_path) as source, \
            database_uri(request.param, tmp_path) as target:
        monkeypatch.setenv("MORELIA_DATABASE_URI", target)
        ok("db", "create")
        ok("db", "user-create", "--login", "mallory", "--username", "Other Mallory",
           "--password", "pw-here")
        yield source, target


async def test_import_then_log_in_over_both_protocols(setup: tuple[str, str], tmp_path: Path
                                                      ) -> None:
    source, target = setup
    sqlite = source.startswith("sqlite:")
    before = digest(Path(source[len("sqlite:"):])) if sqlite else ""
    empty = target_counts()

    dry = ok("db", "import-original", source, "--dry-run")
    assert "Would import: 4 users, 3 flows, 8 messages." in dry, dry
    assert target_counts() == empty

    output = ok("db", "import-original", source)
    assert "Imported: 4 users, 3 flows, 8 messages." in output, output
    for secret in PASSWORDS.values():
        assert secret not in output
    skipped = [line for line in output.splitlines() if line.startswith("skipped ")]
    expected = [
        "skipped user 5 ('bob'): user 2 of the original has the same login",
        "skipped user 6 ('mallory'): the login belongs to another account here",
        "skipped flow 4 (chat ''): a chat has exactly two members here; 3 of",
        "skipped flow 5 (forum 'Forum'): its type 'forum' is none of chat, group, channel",
        "skipped message 8 (m8): it has no flow",
        "skipped message 9 (m9): its flow 4 was not imported",
        f"skipped message 10 (m10): its author is not a member of chat {F['chat']}",
    ]
    if sqlite:
        expected += ["skipped user 7 ('ev\\x00e'): its login holds a NUL character",
                     "skipped message 12 (m12): its text holds a NUL character"]
    for line in expected:
        assert any(found.startswith(line) for found in skipped), (line, output)
    assert len(skipped) == len(expected), output
    assert "note: admin 'nobody'" in output
    assert "users: 7/7 done (4 imported" in output or "users: 6/6 done (4 imported" in output
    assert "messages: " in output
    imported = target_counts()
    assert imported["users"] == 5 and imported["messages"] == 8
    # The picture went into the media store, referred to by its message (as over MTP).
    assert imported["referenced"] == 1 and imported["media"] == 0

    again = ok("db", "import-original", source)
    assert "Imported: 0 users, 0 flows, 0 messages." in again, again
    assert "Already here (same uuid, left as they are): 4 users, 3 flows, 8 messages." in again
    assert target_counts() == imported
    if sqlite:
        assert digest(Path(source[len("sqlite:"):])) == before

    users = ok("user", "list")
    assert any(line.split()[0] == "alice" and " yes " in line for line in users.splitlines())

    with ServerProcess(tmp_path, env={"MORELIA_DATABASE_URI": target}) as server:
        await _mtp_sees_everything(server)
        _matrix_sees_everything(server)


async def _mtp_sees_everything(server: ServerProcess) -> None:
    client = await Client.connect(server.url)
    try:
        reply = await client.call("authentication", auth=False, user=[
            {"login": "carol", "password": PASSWORDS["carol"]}])
        assert reply["errors"]["code"] == 200, reply
        assert reply["data"]["user"][0]["uuid"] == U["carol"]
        client.uuid, client.auth_id = U["carol"], reply["data"]["user"][0]["auth_id"]
        wrong = await (await Client.connect(server.url)).call(
            "authentication", auth=False, user=[{"login": "bob", "password": "other-pw"}])
        assert wrong["errors"]["code"] == 401
        flows = (await client.call("all_flow"))["data"]["flow"]
        assert F["group"] in {flow["uuid"] for flow in flows}
        page = await client.call("all_messages", flow=[{"uuid": F["group"]}])
        messages = page["data"]["message"]
        assert [m["text"] for m in messages] == GROUP_TEXTS
        assert [m["time"] for m in messages] == sorted(m["time"] for m in messages)
        assert messages[2]["file_picture"] == PICTURE  # as the original served it
        assert messages[3]["edited_status"] is True and messages[3]["edited_time"] == 1_600_000_900
        assert messages[4]["emoji"] == EMOJI
        assert {m["from_user"] for m in messages} == {U["alice"], U["bob"], U["carol"]}
        found = await client.call("search_messages", search={"text": "picture"})
        assert [m["text"] for m in found["data"]["message"]] == ["A picture",
                                                                "Earlier than the picture"]
        info = await client.call("user_info", user=[{"uuid": U["dave"]}])
        dave = info["data"]["user"][1] if len(info["data"]["user"]) > 1 else \
            info["data"]["user"][0]
        assert dave["uuid"] == U["dave"] and dave["is_bot"] is True
        assert dave["avatar"] == "avatar-dave"
        assert dave["bio"] == "bio of dave" and dave["username"] == "Dave bot"
        group = next(flow for flow in flows if flow["uuid"] == F["group"])
        assert (group["time"], group["title"], group["info"], group["owner"]) == \
            (1_600_000_001, "Friends", "Our group", U["alice"])
        assert set(group["users"]) == {U["alice"], U["bob"], U["carol"]}
    finally:
        await client.close()


def _matrix_sees_everything(server: ServerProcess) -> None:
    with httpx.Client(base_url=server.http, timeout=10) as http:
        login = http.post("/_matrix/client/v3/login", json={
            "type": "m.login.password", "identifier": {"type": "m.id.user", "user": "alice"},
            "password": PASSWORDS["alice"]})
        assert login.status_code == 200, login.text
        headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
        sync = http.get("/_matrix/client/v3/sync", headers=headers, params={
            "filter": '{"room": {"timeline": {"limit": 50}}}'})
        assert sync.status_code == 200, sync.text
        rooms = sync.json()["rooms"]["join"]
        assert {f"!{F[name]}:localhost" for name in ("chat", "group", "channel")} <= set(rooms)
        timeline = rooms[f"!{F['group']}:localhost"]["timeline"]["events"]
        bodies = [e["content"].get("body") for e in timeline if e["type"] == "m.room.message"]
        # The message without text shows its emoji.
        assert bodies == [*GROUP_TEXTS[:4], EMOJI]
        picture = next(e["content"] for e in timeline if e["type"] == "m.room.message"
                       and e["content"].get("body") == "A picture")
        assert picture["msgtype"] == "m.image" and picture["info"]["w"] == 3, picture
        server_name, media_id = picture["url"].removeprefix("mxc://").split("/")
        got = http.get(f"/_matrix/client/v1/media/download/{server_name}/{media_id}",
                       headers=headers)
        assert got.status_code == 200 and got.content == png(3, 2)
        stamps = [e["origin_server_ts"] for e in timeline if e["type"] == "m.room.message"]
        assert stamps == sorted(stamps) and stamps[0] == 1_600_000_100 * 1000


def test_bad_sources_get_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MORELIA_CONFIG", raising=False)
    monkeypatch.setenv("MORELIA_DATABASE_URI", f"sqlite:{tmp_path / 'morelia.db'}")
    ok("db", "create")
    missing = run("db", "import-original", str(tmp_path / "nothing.db"))
    assert missing.exit_code == 1 and "there is no database file" in missing.output
    own = run("db", "import-original", f"sqlite:{tmp_path / 'morelia.db'}")
    assert own.exit_code == 1 and "this server's own database" in own.output
    other = run("db", "import-original", f"sqlite:{tmp_path / 'morelia.db'}x")
    assert other.exit_code == 1
    foreign = tmp_path / "foreign.db"
    with contextlib.closing(sqlite3.connect(foreign)) as conn:
        conn.execute("CREATE TABLE t (x)")
    wrong = run("db", "import-original", str(foreign))
    assert wrong.exit_code == 1 and "not an original Morelia Server database" in wrong.output
    mysql = run("db", "import-original", "mysql://u@h/db")
    assert mysql.exit_code == 1 and "unknown kind of source 'mysql'" in mysql.output


@pytest.mark.parametrize(("given", "kind", "target"), [
    ("sqlite:/srv/old/db_sqlite.db", "sqlite", "/srv/old/db_sqlite.db"),
    ("sqlite:///srv/old/db_sqlite.db", "sqlite", "/srv/old/db_sqlite.db"),
    ("sqlite:db_sqlite.db", "sqlite", "db_sqlite.db"),
    ("/srv/old/db_sqlite.db", "sqlite", "/srv/old/db_sqlite.db"),
    ("postgres://u:secret@h/db?debug=True", "postgres", "postgresql://u:secret@h/db"),
])
def test_source_forms(given: str, kind: str, target: str) -> None:
    location = original.locate(given)
    assert (location.kind, location.target) == (kind, target)
    assert "secret" not in location.shown


def test_blobs_become_the_strings_the_original_served() -> None:
    assert original.blob(None, True) == original.blob(None, False) == ""
    assert original.blob("", True) == original.blob(b"", False) == ""  # a deleted message's
    assert original.blob(memoryview("🙂".encode()), False) == "🙂"  # BYTEA
    assert original.blob(base64.b64encode("🙂".encode()).decode(), True) == "🙂"  # SQLite
    assert original.blob("aVZCT1J3MEs=", True) == "iVBORw0K"  # a client's base64, kept
    assert original.blob(b"aVZCT1J3MEs=", True) == "iVBORw0K"  # ... in a BLOB on SQLite
    assert original.blob("not base64!", True) == "not base64!"  # not SQLObject's: kept
    # Bytes that are not UTF-8 (not from the original's clients) become base64.
    assert original.blob(b"\x00\xff", False) == "AP8="
    assert original.blob("AP8=", True) == "AP8="


def test_source_is_opened_read_only(setup: tuple[str, str]) -> None:
    source, _ = setup
    with original.Source(original.locate(source)) as opened, \
            pytest.raises(Exception, match=r"(?i)read.?only"):
        opened.raw.execute("INSERT INTO admin (username, hash_password) VALUES ('x', 'y')")


def test_a_failed_batch_leaves_nothing_and_a_rerun_finishes(
        setup: tuple[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A failed batch is rolled back whole; the re-run imports the rest, and a Matrix client
    of the running server sees it arrive in its /sync."""
    source, target = setup
    real = imported.insert_messages

    def failing(conn: Any, messages: Any, now: int, *rest: Any) -> None:
        real(conn, messages[:2], now, *rest)
        raise RuntimeError("disk full")

    monkeypatch.setattr(imported, "insert_messages", failing)
    broken = run("db", "import-original", source)
    assert broken.exit_code == 1
    assert "run the command again to import the rest" in broken.output, broken.output
    assert "disk full" in broken.output, broken.output
    counts = target_counts()
    assert counts["users"] == 5 and counts["flows"] == 3 and counts["messages"] == 0
    monkeypatch.setattr(imported, "insert_messages", real)
    with ServerProcess(tmp_path, env={"MORELIA_DATABASE_URI": target}) as server, \
            httpx.Client(base_url=server.http, timeout=15) as http:
        login = http.post("/_matrix/client/v3/login", json={
            "type": "m.login.password", "user": "bob", "password": PASSWORDS["bob"]})
        assert login.status_code == 200, login.text
        headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
        first = http.get("/_matrix/client/v3/sync", headers=headers).json()
        assert f"!{F['group']}:localhost" in first["rooms"]["join"]
        output = ok("db", "import-original", source)
        assert "Imported: 0 users, 0 flows, 8 messages." in output, output
        assert "Already here (same uuid, left as they are): 4 users, 3 flows, 0 messages." \
            in output
        bodies: list[str] = []
        since = first["next_batch"]
        for _ in range(10):  # until the group's four texts are in; each /sync waits for news
            if len(bodies) >= 4:
                break
            sync = http.get("/_matrix/client/v3/sync", headers=headers,
                            params={"since": since, "timeout": 10_000}).json()
            since = sync["next_batch"]
            room = sync.get("rooms", {}).get("join", {}).get(f"!{F['group']}:localhost", {})
            bodies += [e["content"]["body"] for e in room.get("timeline", {}).get("events", [])
                       if e["type"] == "m.room.message" and e["content"]["body"] in GROUP_TEXTS]
        assert bodies == GROUP_TEXTS[:4]


def test_an_empty_target_gets_its_tables(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                         ) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MORELIA_CONFIG", raising=False)
    monkeypatch.setenv("MORELIA_DATABASE_URI", f"sqlite:{tmp_path / 'new.db'}")
    with original_database("sqlite", tmp_path) as source:
        dry = run("db", "import-original", source, "--dry-run")
        assert dry.exit_code == 1 and "db create" in dry.output  # a dry run creates nothing
        assert not (tmp_path / "new.db").exists()
        output = ok("db", "import-original", source)
    assert "Created the tables in" in output
    assert "Imported: 5 users, 3 flows, 8 messages." in output, output


HUGE = 10**20  # beyond the 64-bit integers both databases store


def with_messages(path: Path, count: int, huge_at: int) -> None:
    """`count` more messages by alice in the group, the one at `huge_at` with time 10^20."""
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        conn.executemany(
            "INSERT INTO message (id, uuid, text, time, edited_status, user_id, flow_id) "
            "VALUES (?, ?, ?, ?, 0, 1, 2)",
            [(100 + n, f"bulk-{n}", f"bulk {n}", 1_600_001_000 + n) for n in range(count)])
        # as a literal: SQLite keeps an integer beyond 64 bits as a REAL (a bound int overflows)
        conn.execute(f"UPDATE message SET time = {HUGE} WHERE uuid = ?", (f"bulk-{huge_at}",))


@pytest.fixture(params=DATABASE_KINDS)
def bulk(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
         ) -> Iterator[str]:
    """The original's SQLite database (the original's PostgreSQL tables hold 32-bit times)
    with 1,001 more messages, one with time 10^20; an empty target of each kind."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MORELIA_CONFIG", raising=False)
    path = tmp_path / "db_sqlite.db"
    build_original("sqlite", str(path))
    with_messages(path, 1001, 500)
    with database_uri(request.param, tmp_path) as target:
        monkeypatch.setenv("MORELIA_DATABASE_URI", target)
        ok("db", "create")
        yield f"sqlite:{path}"


def test_a_row_beyond_64_bits_is_reported_and_skipped(bulk: str) -> None:
    """Issue 19, case 10: one message whose time is 10^20 made every run fail ("Python int
    too large to convert to SQLite INTEGER"), the last batch neither imported nor skipped.
    It is reported in one line and skipped; the other 1,000 are imported, and a second run
    imports nothing twice."""
    output = ok("db", "import-original", bulk)
    assert "Imported: 5 users, 3 flows, 1008 messages." in output, output
    huge = [line for line in output.splitlines() if "bulk-500" in line]
    assert huge == [f"skipped message 600 (bulk-500): its time {HUGE} is beyond the 64-bit "
                    "integers this server stores"], output
    again = ok("db", "import-original", bulk)
    assert "Imported: 0 users, 0 flows, 0 messages." in again, again
    assert "Already here (same uuid, left as they are): 5 users, 3 flows, 1008 messages." \
        in again, again
    assert [line for line in again.splitlines() if "bulk-500" in line] == huge
    assert target_counts()["messages"] == 1008


def test_a_row_the_database_refuses_is_isolated_and_skipped(
        bulk: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The safety net under the row checks: should the database refuse a batch all the same
    (here the range check is taken away), the batch is written row by row, and only the row
    the database refuses is reported and skipped."""
    from mod.service import importer

    checked = importer.message_problem
    monkeypatch.setattr(importer, "message_problem",
                        lambda message: None if message.uuid == "bulk-500" else
                        checked(message))
    output = ok("db", "import-original", bulk)
    assert "Imported: 5 users, 3 flows, 1008 messages." in output, output
    huge = [line for line in output.splitlines() if "bulk-500" in line]
    assert len(huge) == 1 and huge[0].startswith(
        "skipped message bulk-500: the database refused it: "), output
    assert target_counts()["messages"] == 1008


def test_integers_beyond_64_bits_are_refused_in_every_row() -> None:
    from mod.service.importrows import flow_problem, message_problem

    flow = original.OldFlow(1, "f", HUGE, "group", "t", "", "o", ())
    assert flow_problem(flow) == (f"its time {HUGE} is beyond the 64-bit integers this server "
                                  "stores")
    assert flow_problem(original.OldFlow(1, "f", -(2**63), "group", "t", "", "o", ())) is None
    message = original.OldMessage(1, "m", "text", 1, {}, -(2**64), True, 1, 1)
    assert "its edited_time" in (message_problem(message) or "")
    assert message_problem(original.OldMessage(1, "m", "text", 2**63 - 1, {}, 0, False, 1,
                                               1)) is None
