from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from mod.config.validator import Database
from mod.db import dbhandler as db
from mod.db.engine import Engine
from tests.inprocess import AppServer
from tests.service_support import World, service_world
from tests.support import (
    CHEAP_PASSWORDS,
    DATABASE_KINDS,
    Client,
    Clients,
    ServerProcess,
    database_uri,
)
from tests.test_matrix_support import Matrix, matrix_server, matrix_session


def pytest_configure(config: pytest.Config) -> None:
    """manage.py, run by tests in this process or as a child, hashes passwords cheaply too;
    server subprocesses are forked from a helper that has imported the server's libraries."""
    os.environ.update(CHEAP_PASSWORDS)
    ServerProcess.forked = True


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Modules marked `slow` first: with `--dist loadfile` a long file that starts last would
    run alone at the end."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(params=DATABASE_KINDS)
def db_uri(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh database: SQLite, and PostgreSQL too when MORELIA_TEST_POSTGRES_URI is set."""
    with database_uri(request.param, tmp_path) as uri:
        yield uri



@pytest.fixture
def engine(db_uri: str) -> Iterator[Engine]:
    """An engine on a fresh database of the db_uri kind, its tables made."""
    engine = Engine(Database(uri=db_uri))
    engine.write_sync(db.create_tables)
    yield engine
    engine.stop()

@pytest.fixture
def server(request: pytest.FixtureRequest, db_uri: str, tmp_path: Path
           ) -> Iterator[ServerProcess]:
    """The server on a fresh database: in this process (see `inprocess.AppServer`), or a
    process of its own for tests marked `server_process`."""
    kind = ServerProcess if request.node.get_closest_marker("server_process") else AppServer
    with kind(tmp_path, env={"MORELIA_DATABASE_URI": db_uri}) as process:
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


@pytest.fixture
async def clients(mtp: ServerProcess) -> AsyncIterator[Clients]:
    """Users on the module's MTP server (`mtp`, defined by each module for its settings)."""
    pool = Clients(mtp.url)
    yield pool
    await pool.close()


@pytest.fixture(scope="module", params=DATABASE_KINDS)
def mx_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
              ) -> Iterator[ServerProcess]:
    """One server per Matrix test module and database: in this process, or a process of its
    own for modules marked `server_process`."""
    in_process = request.node.get_closest_marker("server_process") is None
    with matrix_server(request.param, tmp_path_factory.mktemp("matrix"), in_process=in_process
                       ) as server:
        yield server


@pytest.fixture
async def mx(mx_server: ServerProcess) -> AsyncIterator[Matrix]:
    async for matrix in matrix_session(mx_server):
        yield matrix


@pytest.fixture(params=DATABASE_KINDS)
async def world(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[World]:
    """The service on a fresh database, in this process."""
    with database_uri(request.param, tmp_path) as uri:
        async with service_world(uri) as made:
            yield made
