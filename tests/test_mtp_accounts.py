"""Accounts end to end: register_user, authentication, tokens, user_info, delete_user, storage."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import (
    DATABASE_KINDS,
    Client,
    Clients,
    ServerProcess,
    expect_reply,
    frame,
    running_server,
    unique_login,
)

pytestmark = pytest.mark.anyio

USERS_LIMIT = 3
PROFILE_KEYS = {"uuid", "login", "username", "is_bot", "avatar", "bio", "time_created"}


@pytest.fixture(scope="module", params=DATABASE_KINDS)
def mtp(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
        ) -> Iterator[ServerProcess]:
    env = {"MORELIA_PROTOCOL_USERS_LIMIT": str(USERS_LIMIT)}
    directory = tmp_path_factory.mktemp("accounts")
    with running_server(request.param, directory, env, users=150, in_process=True
                        ) as process:
        yield process


def query(server: ServerProcess, sql: str) -> list[tuple[Any, ...]]:
    """Rows of a query on the server's database (SQLite file or PostgreSQL)."""
    uri = server.env["MORELIA_DATABASE_URI"]
    if uri.startswith("sqlite:"):
        with contextlib.closing(sqlite3.connect(uri.removeprefix("sqlite:"))) as conn:
            return list(conn.execute(sql).fetchall())
    import psycopg

    with psycopg.connect(uri.replace("postgres://", "postgresql://", 1)) as conn:
        return list(conn.execute(sql).fetchall())


def database_bytes(server: ServerProcess) -> bytes:
    """Everything SQLite keeps on disk for the server's database (file, WAL)."""
    path = Path(server.env["MORELIA_DATABASE_URI"].removeprefix("sqlite:"))
    return b"".join(p.read_bytes() for p in (path, Path(f"{path}-wal")) if p.exists())


async def register(client: Client, login: str, password: str = "secret-password",
                   **extra: Any) -> dict[str, Any]:
    return await client.call("register_user", auth=False,
                             user=[{"login": login, "password": password, **extra}])


async def log_in(client: Client, login: str, password: str = "secret-password"
                 ) -> dict[str, Any]:
    return await client.call("authentication", auth=False,
                             user=[{"login": login, "password": password}])


async def ping(client: Client, uuid: str, auth_id: str) -> int:
    reply = await client.send_raw(frame("ping_pong", {"user": [{"uuid": uuid,
                                                                "auth_id": auth_id}]}))
    expect_reply(reply, "ping_pong", reply["errors"]["code"])
    return int(reply["errors"]["code"])


def no_secrets(value: Any) -> None:
    """No user object anywhere in a reply carries a password."""
    if isinstance(value, dict):
        assert "password" not in value and "password_hash" not in value, value
        for item in value.values():
            no_secrets(item)
    elif isinstance(value, list):
        for item in value:
            no_secrets(item)


# -- register_user ----------------------------------------------------------------------------


async def test_register_user_answers_201_with_uuid_token_and_ttl(clients: Clients) -> None:
    client = await clients.anonymous()
    reply = expect_reply(await register(client, unique_login("reg")), "register_user", 201)
    user = reply["data"]["user"][0]
    assert user["uuid"].isdigit()
    assert isinstance(user["auth_id"], str) and len(user["auth_id"]) >= 22  # >= 128 bits
    assert type(user["token_ttl"]) is int and user["token_ttl"] > 0
    no_secrets(reply)
    assert await ping(client, user["uuid"], user["auth_id"]) == 200


async def test_every_registration_gets_new_uuid_and_token(clients: Clients) -> None:
    client = await clients.anonymous()
    first = expect_reply(await register(client, unique_login("reg")), "register_user", 201)
    second = expect_reply(await register(client, unique_login("reg")), "register_user", 201)
    assert first["data"]["user"][0]["uuid"] != second["data"]["user"][0]["uuid"]
    assert first["data"]["user"][0]["auth_id"] != second["data"]["user"][0]["auth_id"]


async def test_a_taken_login_gets_409_and_changes_nothing(clients: Clients) -> None:
    client = await clients.anonymous()
    login = unique_login("taken")
    expect_reply(await register(client, login, "first-password"), "register_user", 201)
    reply = await register(client, login, "second-password")
    expect_reply(reply, "register_user", 409)
    assert reply["data"] is None
    expect_reply(await log_in(client, login, "first-password"), "authentication", 200)
    expect_reply(await log_in(client, login, "second-password"), "authentication", 401)


@pytest.mark.parametrize("user", [
    {"password": "pw"},
    {"login": "", "password": "pw"},
    {"login": "LOGIN"},
    {"login": "LOGIN", "password": ""},
    {},
])
async def test_register_without_login_or_password_gets_400(clients: Clients,
                                                          user: dict[str, str]) -> None:
    client = await clients.anonymous()
    login = unique_login("nopw")
    user = {key: (login if value == "LOGIN" else value) for key, value in user.items()}
    reply = await client.call("register_user", auth=False, user=[user])
    expect_reply(reply, "register_user", 400)
    # Nothing was created under that login.
    expect_reply(await register(client, login), "register_user", 201)


async def test_register_without_any_user_gets_400(clients: Clients) -> None:
    client = await clients.anonymous()
    expect_reply(await client.send_raw(frame("register_user", None)), "register_user", 400)
    expect_reply(await client.send_raw(frame("register_user", {"user": []})),
                 "register_user", 400)


@pytest.mark.parametrize("email", ["not-an-address", "a@b", "@example.org", "a b@example.org",
                                   "alice@", "alice@.org"])
async def test_an_invalid_email_gets_415(clients: Clients, email: str) -> None:
    client = await clients.anonymous()
    login = unique_login("mail")
    expect_reply(await register(client, login, email=email), "register_user", 415)
    expect_reply(await register(client, login), "register_user", 201)


async def test_username_and_email_are_kept(clients: Clients) -> None:
    client = await clients.anonymous()
    login = unique_login("named")
    reply = await register(client, login, username="Alice Liddell", email="alice@example.org")
    user = expect_reply(reply, "register_user", 201)["data"]["user"][0]
    client.uuid, client.auth_id = user["uuid"], user["auth_id"]
    reply = await client.call("user_info", user=[{"uuid": client.uuid}])
    profile = expect_reply(reply, "user_info", 200)["data"]["user"][0]
    assert profile["login"] == login
    assert profile["username"] == "Alice Liddell"
    assert profile["email"] == "alice@example.org"


async def test_register_binds_nothing_it_should_not(clients: Clients) -> None:
    """register_user and authentication need no credentials; others still do afterwards."""
    client = await clients.anonymous()
    expect_reply(await register(client, unique_login("bind")), "register_user", 201)
    expect_reply(await client.send_raw(frame("ping_pong", None)), "ping_pong", 401)


# -- authentication ---------------------------------------------------------------------------


async def test_authentication_gives_a_new_token_for_the_same_user(clients: Clients) -> None:
    alice = await clients.user("auth")
    reply = expect_reply(await log_in(alice, alice.login), "authentication", 200)
    user = reply["data"]["user"][0]
    assert user["uuid"] == alice.uuid
    assert user["auth_id"] != alice.auth_id and len(user["auth_id"]) >= 22
    assert type(user["token_ttl"]) is int and user["token_ttl"] > 0
    no_secrets(reply)


async def test_wrong_password_and_unknown_login_get_the_same_401(clients: Clients) -> None:
    alice = await clients.user("probe")
    wrong = expect_reply(await log_in(alice, alice.login, "not-the-password"),
                         "authentication", 401)
    unknown = expect_reply(await log_in(alice, unique_login("nobody")), "authentication", 401)
    for reply in (wrong, unknown):
        reply["errors"].pop("time")
    assert wrong == unknown


async def test_authentication_without_login_or_password_gets_400(clients: Clients) -> None:
    client = await clients.anonymous()
    for user in ({"login": "x"}, {"password": "x"}, {}):
        reply = await client.call("authentication", auth=False, user=[user])
        expect_reply(reply, "authentication", 400)


async def test_several_tokens_of_one_user_are_valid_at_once(clients: Clients) -> None:
    alice = await clients.user("devices")
    phone, laptop = await clients.anonymous(), await clients.anonymous()
    tokens = [alice.auth_id]
    for device in (phone, laptop, phone):
        reply = expect_reply(await log_in(device, alice.login), "authentication", 200)
        tokens.append(reply["data"]["user"][0]["auth_id"])
    assert len(set(tokens)) == len(tokens)
    for token in tokens:
        for device in (alice, phone, laptop):
            assert await ping(device, alice.uuid, token) == 200


async def early_in_a_second() -> None:
    """Wait for the start of a second: token times are whole seconds, so a 1 s token issued
    late in a second ends at the next one, before a request right after could use it."""
    while time.time() % 1 > 0.3:
        await asyncio.sleep(0.01)


async def test_expired_tokens_get_401_even_when_cached(tmp_path: Path) -> None:
    env = {"MORELIA_SECURITY_TOKEN_TTL": "1", "MORELIA_SECURITY_TOKEN_CACHE_SECONDS": "60"}
    with running_server("sqlite", tmp_path, env) as server:
        client = await Client.connect(server.url)
        try:
            await early_in_a_second()
            reply = await client.register(unique_login("ttl"))
            assert reply["data"]["user"][0]["token_ttl"] == 1
            # Use the token at once, so that the server caches its check...
            expect_reply(await client.call("ping_pong"), "ping_pong", 200)
            # ...and the cache (60 s) must not make it outlive its expiry (1 s, counted in
            # whole seconds): refused within a few seconds.
            deadline = time.monotonic() + 5
            while (code := (await client.call("ping_pong"))["errors"]["code"]) == 200:
                assert time.monotonic() < deadline, "the token outlived its expiry"
                await asyncio.sleep(0.05)
            assert code == 401
            expect_reply(await client.call("get_update"), "get_update", 401)
            # A fresh login works again.
            await early_in_a_second()
            reply = expect_reply(await log_in(client, client.login), "authentication", 200)
            assert reply["data"]["user"][0]["token_ttl"] == 1
            client.auth_id = reply["data"]["user"][0]["auth_id"]
            expect_reply(await client.call("ping_pong"), "ping_pong", 200)
        finally:
            await client.close()


# -- user_info --------------------------------------------------------------------------------


async def test_user_info_returns_public_profiles(clients: Clients) -> None:
    alice = await clients.user("info")
    bob = await clients.user("info", email="bob@example.org")
    reply = await alice.call("user_info", user=[{"uuid": bob.uuid}, {"uuid": alice.uuid}])
    profiles = {p["uuid"]: p for p in expect_reply(reply, "user_info", 200)["data"]["user"]}
    assert set(profiles) == {alice.uuid, bob.uuid}
    other = profiles[bob.uuid]
    assert set(other) >= PROFILE_KEYS
    assert other.get("email") in (None, ""), "email is returned only to its owner"
    assert other["login"] == bob.login and other["is_bot"] is False
    assert type(other["time_created"]) is int
    assert "auth_id" not in other and "token_ttl" not in other
    no_secrets(reply)
    own = profiles[alice.uuid]
    assert "email" in own


async def test_email_is_returned_only_for_the_callers_own_entry(clients: Clients) -> None:
    alice = await clients.user("mail", email="alice@example.org")
    bob = await clients.user("mail", email="bob@example.org")
    reply = await bob.call("user_info", user=[{"uuid": alice.uuid}, {"uuid": bob.uuid}])
    text = json.dumps(reply)
    assert "alice@example.org" not in text
    profiles = {p["uuid"]: p for p in expect_reply(reply, "user_info", 200)["data"]["user"]}
    assert profiles[bob.uuid]["email"] == "bob@example.org"


async def test_user_info_with_nobody_asked_gets_400(clients: Clients) -> None:
    alice = await clients.user("info")
    expect_reply(await alice.call("user_info"), "user_info", 400)


async def test_user_info_over_the_limit_gets_429(clients: Clients) -> None:
    alice = await clients.user("info")
    asked = [{"uuid": alice.uuid}] * USERS_LIMIT
    expect_reply(await alice.call("user_info", user=asked), "user_info", 200)
    reply = await alice.call("user_info", user=[*asked, {"uuid": alice.uuid}])
    expect_reply(reply, "user_info", 429)


async def test_user_info_with_unknown_uuids_gets_404_with_the_found_ones(
        clients: Clients) -> None:
    alice = await clients.user("info")
    bob = await clients.user("info")
    reply = await alice.call("user_info", user=[{"uuid": bob.uuid}, {"uuid": "11111"},
                                                {"uuid": "22222"}])
    expect_reply(reply, "user_info", 404)
    assert [p["uuid"] for p in reply["data"]["user"]] == [bob.uuid]
    detail = reply["errors"]["detail"]
    assert "11111" in detail and "22222" in detail and bob.uuid not in detail


async def test_user_info_finds_users_by_login(clients: Clients) -> None:
    alice = await clients.user("info")
    bob = await clients.user("info")
    reply = await alice.call("user_info", user=[{"login": bob.login}])
    assert [p["uuid"] for p in expect_reply(reply, "user_info", 200)["data"]["user"]] == [
        bob.uuid]
    reply = await alice.call("user_info", user=[{"login": "nobody-here"}, {"uuid": bob.uuid}])
    expect_reply(reply, "user_info", 404)
    assert [p["uuid"] for p in reply["data"]["user"]] == [bob.uuid]
    assert "nobody-here" in reply["errors"]["detail"]
    expect_reply(await alice.call("user_info", user=[{"bio": "neither"}]), "user_info", 400)


# -- update_profile (an extension) ------------------------------------------------------------


async def update_profile(client: Client, **fields: Any) -> dict[str, Any]:
    return await client.send_raw(frame("update_profile", {"user": [{**client.cred, **fields}]}))


async def test_update_profile_changes_ones_own_name_and_bio(clients: Clients) -> None:
    alice = await clients.user("named", email="named@example.org")
    bob = await clients.user("friend")
    flow = await alice.group("friends", users=[bob.uuid])
    since = expect_reply(await bob.call("get_update", time=0), "get_update", 200)["data"]["time"]

    reply = await update_profile(alice, username="Alice Liddell", bio="Curiouser and curiouser")
    profile = expect_reply(reply, "update_profile", 200)["data"]["user"][0]
    assert profile["uuid"] == alice.uuid and profile["login"] == alice.login
    assert (profile["username"], profile["bio"]) == ("Alice Liddell", "Curiouser and curiouser")
    assert profile["email"] == "named@example.org"  # one's own, as user_info shows it
    reply = await update_profile(alice, bio="")
    assert expect_reply(reply, "update_profile", 200)["data"]["user"][0]["username"] == \
        "Alice Liddell"

    seen = await bob.call("user_info", user=[{"uuid": alice.uuid}])
    other = expect_reply(seen, "user_info", 200)["data"]["user"][0]
    assert (other["username"], other["bio"]) == ("Alice Liddell", "")
    assert "email" not in other
    update = expect_reply(await bob.call("get_update", time=since), "get_update", 200)["data"]
    assert flow in {item["uuid"] for item in update["flow"]}
    assert {"uuid": alice.uuid, "username": "Alice Liddell"}.items() <= next(
        user for user in update["user"] if user["uuid"] == alice.uuid).items()

    for entry, code in [({}, 400), ({"username": "x" * 257}, 415), ({"bio": 5}, 415),
                        ({"bio": "x" * 65537}, 415)]:
        expect_reply(await update_profile(alice, **entry), "update_profile", code)


# -- change_password (an extension) -----------------------------------------------------------


async def change_password(client: Client, current: str | None, new: str | None,
                          **extra: Any) -> dict[str, Any]:
    entry = {**client.cred, "password": current, "new_password": new, **extra}
    return await client.send_raw(frame("change_password", {"user": [entry]}))


async def test_change_password_needs_the_current_one_and_ends_the_other_sessions(
        clients: Clients) -> None:
    alice = await clients.anonymous()
    await alice.register(unique_login("pw"), push=True)
    other_device = await clients.anonymous()
    second = expect_reply(await log_in(other_device, alice.login), "authentication", 200)
    second_token = second["data"]["user"][0]["auth_id"]

    for current, new, code in [("wrong", "new-secret", 401), (None, "new-secret", 401),
                               ("secret-password", "", 400), ("secret-password", None, 400),
                               ("secret-password", "x" * 4097, 415)]:
        reply = await change_password(alice, current, new)
        expect_reply(reply, "change_password", code)
    assert await ping(other_device, alice.uuid, second_token) == 200

    reply = expect_reply(await change_password(alice, "secret-password", "new-secret"),
                         "change_password", 200)
    assert reply["data"] is None
    # This connection goes on, pushes included; the other session is over.
    expect_reply(await alice.call("ping_pong"), "ping_pong", 200)
    await alice.group("after the change")
    assert (await alice.push())["meta"]["event"] == "flow_created"
    assert await ping(other_device, alice.uuid, second_token) == 401
    expect_reply(await log_in(other_device, alice.login), "authentication", 401)
    expect_reply(await log_in(other_device, alice.login, "new-secret"), "authentication", 200)


async def test_change_password_may_keep_the_other_sessions(clients: Clients) -> None:
    alice = await clients.anonymous()
    await alice.register(unique_login("pw"))
    other_device = await clients.anonymous()
    second = expect_reply(await log_in(other_device, alice.login), "authentication", 200)
    reply = await change_password(alice, "secret-password", "new-secret",
                                  end_other_sessions=False)
    expect_reply(reply, "change_password", 200)
    assert await ping(other_device, alice.uuid, second["data"]["user"][0]["auth_id"]) == 200
    expect_reply(await log_in(other_device, alice.login, "new-secret"), "authentication", 200)


# -- delete_user ------------------------------------------------------------------------------


async def test_delete_user_with_a_wrong_password_gets_401_and_deletes_nothing(
        clients: Clients) -> None:
    alice = await clients.user("del")
    # user[0] carries the credentials, and the login and password asked again.
    alice_entry = {**alice.cred, "login": alice.login, "password": "wrong"}
    reply = await alice.send_raw(frame("delete_user", {"user": [alice_entry]}))
    expect_reply(reply, "delete_user", 401)
    alice_entry = {**alice.cred, "login": alice.login}
    reply = await alice.send_raw(frame("delete_user", {"user": [alice_entry]}))
    expect_reply(reply, "delete_user", 401)
    expect_reply(await alice.call("ping_pong"), "ping_pong", 200)
    expect_reply(await log_in(alice, alice.login), "authentication", 200)


async def delete(client: Client, password: str = "secret-password") -> dict[str, Any]:
    entry = {**client.cred, "login": client.login, "password": password}
    return await client.send_raw(frame("delete_user", {"user": [entry]}))


async def test_delete_user_anonymises_revokes_and_frees_the_login(clients: Clients) -> None:
    alice = await clients.user("gone", email="gone@example.org", username="Gone Girl")
    bob = await clients.user("stays")
    other_device = await clients.anonymous()
    second = expect_reply(await log_in(other_device, alice.login), "authentication", 200)
    second_token = second["data"]["user"][0]["auth_id"]
    flow = await bob.group("history", users=[alice.uuid])
    sent = expect_reply(await alice.send(flow, "my last words"), "send_message", 200)
    message_uuid = sent["data"]["message"][0]["uuid"]

    reply = expect_reply(await delete(alice), "delete_user", 200)
    assert reply["data"] is None

    # Every token is revoked, on this connection and on the other device.
    expect_reply(await alice.call("ping_pong"), "ping_pong", 401)
    assert await ping(other_device, alice.uuid, second_token) == 401
    expect_reply(await log_in(alice, alice.login), "authentication", 401)

    # The profile is anonymised.
    reply = await bob.call("user_info", user=[{"uuid": alice.uuid}])
    profile = expect_reply(reply, "user_info", 200)["data"]["user"][0]
    assert profile["login"] == "User deleted"
    assert profile["username"] == "User deleted"
    assert profile["bio"] == "deleted"
    assert profile["avatar"] == ""
    assert profile.get("email") in (None, "")
    assert "gone@example.org" not in json.dumps(reply)

    # The messages stay, still attributed to the deleted uuid.
    reply = await bob.call("all_messages", flow=[{"uuid": flow}])
    messages = expect_reply(reply, "all_messages", 200)["data"]["message"]
    assert [(m["uuid"], m["from_user"], m["text"]) for m in messages] == [
        (message_uuid, alice.uuid, "my last words")]

    # The login can be registered again, by someone new.
    newcomer = await clients.anonymous()
    reply = expect_reply(await register(newcomer, alice.login), "register_user", 201)
    assert reply["data"]["user"][0]["uuid"] != alice.uuid


async def test_delete_user_then_old_token_is_refused_for_every_method(
        mtp: ServerProcess, clients: Clients) -> None:
    alice = await clients.user("gone")
    expect_reply(await delete(alice), "delete_user", 200)
    # The password hash is destroyed and no token is left.
    assert query(mtp, f"SELECT password_hash FROM users WHERE uuid = '{alice.uuid}'") == [("",)]
    assert query(mtp, f"SELECT * FROM tokens WHERE user_uuid = '{alice.uuid}'") == []
    for kind in ("get_update", "all_flow", "user_info", "delete_user", "ping_pong"):
        expect_reply(await alice.call(kind), kind, 401)


# -- what is stored ---------------------------------------------------------------------------


async def test_passwords_are_stored_as_argon2id_and_tokens_only_hashed(
        mtp: ServerProcess, clients: Clients) -> None:
    password = "clear-text-password-7d1c"
    alice = await clients.user("stored", password=password)
    login = expect_reply(await log_in(alice, alice.login, password), "authentication", 200)
    tokens = [alice.auth_id, login["data"]["user"][0]["auth_id"]]

    rows = query(mtp, f"SELECT password_hash FROM users WHERE uuid = '{alice.uuid}'")
    assert len(rows) == 1
    stored = rows[0][0]
    assert stored.startswith("$argon2id$")
    assert password not in stored

    text = repr(query(mtp, "SELECT * FROM tokens"))
    assert all(token not in text for token in tokens)
    assert password not in text
    assert len(query(mtp, f"SELECT * FROM tokens WHERE user_uuid = '{alice.uuid}'")) == 2

    if mtp.env["MORELIA_DATABASE_URI"].startswith("sqlite:"):
        raw = database_bytes(mtp)
        assert password.encode() not in raw
        assert all(token.encode() not in raw for token in tokens)


async def test_the_same_password_hashes_differently(mtp: ServerProcess,
                                                    clients: Clients) -> None:
    first = await clients.user("salt", password="shared-password")
    second = await clients.user("salt", password="shared-password")
    rows = query(mtp, "SELECT password_hash FROM users WHERE uuid IN "
                      f"('{first.uuid}', '{second.uuid}')")
    hashes = [row[0] for row in rows]
    assert len(hashes) == 2 and hashes[0] != hashes[1]
