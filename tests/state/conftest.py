"""Fixtures for the state store's tests: one throwaway PostgreSQL per session (a fresh database
per test), and `documents`, the store under test, on each backend."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from outcrop.state.postgres import PostgresStore
from outcrop.state.sqlite import DATABASE_FILE, SQLiteStore
from outcrop.state.store import StateStore
from tests.support.postgres_server import PostgresServer, postgres_server

BACKENDS = ("sqlite", "postgresql")


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    with postgres_server() as server:
        yield server


@pytest.fixture
def state_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A URL for an empty store on the test's backend (parametrize `backend`)."""
    backend = getattr(request, "param", "sqlite")
    if backend == "postgresql":
        server: PostgresServer = request.getfixturevalue("postgres")
        return server.create_database(f"t_{uuid.uuid4().hex}")
    return f"sqlite:///{tmp_path / DATABASE_FILE}"


def store_for(url: str, **options: float) -> StateStore:
    if url.startswith("postgresql://"):
        return PostgresStore(url, **options)  # type: ignore[arg-type]
    return SQLiteStore(Path(url[len("sqlite:///") :]))


@pytest.fixture
async def documents(state_url: str) -> AsyncIterator[StateStore]:
    store = store_for(state_url)
    await store.open()
    yield store
    await store.close()


@pytest.fixture
def postgres_alone() -> Iterator[PostgresServer]:
    """A PostgreSQL of the test's own, for tests that stop and start it."""
    with postgres_server() as server:
        yield server
