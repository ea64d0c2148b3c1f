"""The account rules in the service (no server): changing a password."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mod.db import dbhandler as db
from mod.error import ServiceError
from mod.service.common import Caller
from tests.service_support import World, service_world
from tests.support import database_uri, unique_login

pytestmark = pytest.mark.anyio

FAILURES = 3


@pytest.fixture
async def strict(tmp_path: Path) -> AsyncIterator[World]:
    """A service that refuses a login after FAILURES wrong passwords, without slowing them."""
    with database_uri("sqlite", tmp_path) as uri:
        async with service_world(uri, security={"login_failures": FAILURES,
                                                "login_delay": 0}) as made:
            yield made


async def signed_in(world: World, login: str, password: str = "first-secret") -> Caller:
    return (await world.service.accounts.login(login, password, device="D1")).caller


async def refused(code: int, world: World, caller: Caller, current: str, new: str) -> None:
    with pytest.raises(ServiceError) as caught:
        await world.service.accounts.change_password(caller, current, new)
    assert caught.value.code == code, caught.value.detail


async def test_a_new_password_needs_the_current_one(world: World) -> None:
    login = unique_login("pw")
    caller = (await world.service.accounts.register(login, "first-secret")).caller
    await refused(401, world, caller, "wrong", "second-secret")
    await refused(401, world, caller, "", "second-secret")
    await refused(400, world, caller, "first-secret", "")
    await refused(400, world, caller, "first-secret", "x" * 4097)

    assert await world.service.accounts.change_password(caller, "first-secret",
                                                        "second-secret") == 0
    with pytest.raises(ServiceError):
        await signed_in(world, login)
    assert (await signed_in(world, login, "second-secret")).uuid == caller.uuid


async def test_the_other_sessions_end_and_the_callers_stays(world: World) -> None:
    login = unique_login("pw")
    caller = (await world.service.accounts.register(login, "first-secret")).caller
    phone = await signed_in(world, login)
    laptop = await signed_in(world, login)
    kept = await world.service.accounts.change_password(caller, "first-secret", "second-secret",
                                                        end_other_sessions=False)
    assert kept == 0
    assert await world.service.accounts.still_valid(phone)

    ended = await world.service.accounts.change_password(caller, "second-secret", "third")
    assert ended == 2
    assert await world.service.accounts.still_valid(caller)
    assert not await world.service.accounts.still_valid(phone)
    assert not await world.service.accounts.still_valid(laptop)
    changes = await world.engine.read(db.changes_after, 0, 100_000)
    revoked = [change.data for change in changes if change.kind == "tokens_revoked"]
    assert len(revoked) == 1 and revoked[0].ends(phone.token_hash)
    assert not revoked[0].ends(caller.token_hash)


async def test_wrong_current_passwords_are_refused_as_failed_logins_are(strict: World) -> None:
    login = unique_login("pw")
    caller = (await strict.service.accounts.register(login, "first-secret")).caller
    for _ in range(FAILURES):
        await refused(401, strict, caller, "guess", "second-secret")
    await refused(429, strict, caller, "first-secret", "second-secret")
