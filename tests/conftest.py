from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.support import POSTGRES_URI, Client, ServerProcess, database_uri

DATABASES = ["sqlite", *(["postgres"] if POSTGRES_URI else [])]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(params=DATABASES)
def db_uri(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh database: SQLite, and PostgreSQL too when MORELIA_TEST_POSTGRES_URI is set."""
    with database_uri(request.param, tmp_path) as uri:
        yield uri


@pytest.fixture
def server(db_uri: str, tmp_path: Path) -> Iterator[ServerProcess]:
    """A real server process on a fresh database."""
    with ServerProcess(tmp_path, env={"MORELIA_DATABASE_URI": db_uri}) as process:
        yield process


@pytest.fixture
async def alice(server: ServerProcess) -> AsyncIterator[Client]:
    client = await Client.connect(server.url)
    await client.register("alice")
    yield client
    await client.close()


@pytest.fixture
async def bob(server: ServerProcess) -> AsyncIterator[Client]:
    client = await Client.connect(server.url)
    await client.register("bob")
    yield client
    await client.close()
