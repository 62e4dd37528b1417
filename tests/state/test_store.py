"""The state store on SQLite and on a real PostgreSQL: versioned documents, all-or-nothing
compare-and-set batches, generations, migrations, durability of acknowledged writes across a
killed process, no lost update between writer processes, and a PostgreSQL that goes away."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest

from outcrop.state import migrations
from outcrop.state.migrations import LATEST, Migration
from outcrop.state.postgres import PostgresStore
from outcrop.state.sqlite import SQLiteStore
from outcrop.state.store import (
    Delete,
    Put,
    StateConflict,
    StateStore,
    StateUnavailable,
    Write,
    probe,
)
from tests.state.conftest import BACKENDS, store_for
from tests.support.postgres_server import postgres_server

REPO = Path(__file__).resolve().parents[2]
each_backend = pytest.mark.parametrize("state_url", BACKENDS, indirect=True)


@each_backend
async def test_documents_are_versioned(documents: StateStore) -> None:
    assert await documents.get("k", "a") is None
    assert await documents.commit([Put("k", "a", {"n": 1}, 0)]) == {("k", "a"): 1}
    assert await documents.commit([Put("k", "a", {"n": 2}, 1)]) == {("k", "a"): 2}
    await documents.commit([Put("k", "b", {"text": "ünï \u2028 \\u0000"}, 0)])
    found = await documents.get("k", "a")
    assert found is not None and (found.body, found.version) == ({"n": 2}, 2)
    assert [(d.key, d.version) for d in await documents.list("k")] == [("a", 2), ("b", 1)]
    assert (await documents.list("k"))[1].body == {"text": "ünï \u2028 \\u0000"}
    await documents.commit([Delete("k", "a", 2)])
    assert [d.key for d in await documents.list("k")] == ["b"]
    # Deleted documents start again at version 1.
    assert await documents.commit([Put("k", "a", {}, 0)]) == {("k", "a"): 1}


@each_backend
async def test_a_failed_expectation_applies_nothing(documents: StateStore) -> None:
    await documents.commit([Put("k", "a", {"n": 1}, 0), Put("other", "x", {}, 0)])
    before = await documents.generation("k")
    batches: list[list[Write]] = [
        [Put("k", "a", {"n": 9}, 0)],  # exists
        [Put("k", "new", {}, 0), Put("k", "a", {"n": 9}, 7)],  # stale version
        [Put("k", "new", {}, 0), Delete("other", "x", 5)],
        [Delete("k", "missing", 1)],
    ]
    for batch in batches:
        with pytest.raises(StateConflict):
            await documents.commit(batch)
    assert [(d.key, d.body) for d in await documents.list("k")] == [("a", {"n": 1})]
    assert await documents.generation("k") == before


@each_backend
async def test_generations_move_per_kind(documents: StateStore) -> None:
    assert await documents.generation("g") == 0
    await documents.commit([Put("g", "a", {}, 0)])
    first = await documents.generation("g")
    other = await documents.generation("h")
    await documents.commit([Put("g", "a", {}, 1)])
    assert await documents.generation("g") > first
    assert await documents.generation("h") == other


@each_backend
async def test_migrations_run_once_and_a_newer_schema_is_refused(state_url: str) -> None:
    for _ in range(2):
        store = store_for(state_url)
        await store.open()
        await store.commit([Put("k", "a", {}, 0)]) if await store.get("k", "a") is None else None
        await store.close()
    rows = _schema_rows(state_url)
    assert [r[0] for r in rows] == list(range(1, LATEST + 1))
    _execute(state_url, "INSERT INTO outcrop_schema VALUES (999, 'future', 'x')")
    newer = store_for(state_url)
    with pytest.raises(StateUnavailable, match="newer"):
        await newer.open()
    await newer.close()


def _schema_rows(url: str) -> list[tuple[object, ...]]:
    query = "SELECT version FROM outcrop_schema ORDER BY version"
    if url.startswith("postgresql://"):
        with psycopg.connect(url) as conn:
            return list(conn.execute(query).fetchall())
    with sqlite3.connect(url[len("sqlite:///") :]) as lite:
        return list(lite.execute(query).fetchall())


def _execute(url: str, statement: str) -> None:
    if url.startswith("postgresql://"):
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(statement)
        return
    lite = sqlite3.connect(url[len("sqlite:///") :])
    with lite:
        lite.execute(statement)
    lite.close()


@contextmanager
def replica(*args: str) -> Iterator[subprocess.Popen[str]]:
    """`python -m tests.state.replica ARGS` as its own process, ready (connected)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO)])}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.state.replica", *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        cwd=REPO,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def go(proc: subprocess.Popen[str]) -> None:
    assert proc.stdin is not None
    proc.stdin.write("go\n")
    proc.stdin.flush()


@each_backend
async def test_acknowledged_writes_survive_a_killed_process(state_url: str) -> None:
    acked: list[int] = []
    with replica("ack", state_url, "100000") as proc:
        go(proc)
        assert proc.stdout is not None
        while len(acked) < 50:
            line = proc.stdout.readline()
            assert line.startswith("acked "), line
            acked.append(int(line.split()[1]))
        os.kill(proc.pid, signal.SIGKILL)  # mid-write: commits may be in flight
        proc.wait()
    store = store_for(state_url)
    stored = {int(d.key) for d in await store.list("ack")}
    await store.close()
    assert set(acked) <= stored


@each_backend
async def test_concurrent_writer_processes_lose_no_update(state_url: str) -> None:
    per_process = 40
    with (
        replica("increment", state_url, str(per_process)) as first,
        replica("increment", state_url, str(per_process)) as second,
    ):
        go(first)
        go(second)
        for proc in (first, second):
            assert proc.stdout is not None
            assert proc.stdout.read().strip() == "done"
            assert proc.wait() == 0
    store = store_for(state_url)
    counter = await store.get("counter", "shared")
    await store.close()
    assert counter is not None and counter.body["value"] == 2 * per_process


async def test_memory_store_uses_the_same_schema() -> None:
    store = SQLiteStore(None)
    await store.commit([Put("k", "a", {"x": 1}, 0)])
    with pytest.raises(StateConflict):
        await store.commit([Put("k", "a", {"x": 1}, 0)])
    assert [d.body for d in await store.list("k")] == [{"x": 1}]
    await store.close()


async def test_postgresql_down_fails_fast_and_recovers() -> None:
    """Stopped: every operation fails with StateUnavailable (bounded by the pool and operation
    time limits, never a hang) and health says so; restarted: the same store serves again,
    with every acknowledged write there."""
    with postgres_server() as server:
        store = PostgresStore(
            server.url(), pool_timeout_s=2.0, connect_timeout_s=2.0, operation_timeout_s=5.0
        )
        await store.commit([Put("k", "before", {}, 0)])
        server.stop()
        for operation in (
            store.get("k", "before"),
            store.commit([Put("k", "while-down", {}, 0)]),
            store.generation("k"),
            store.ping(),
        ):
            with pytest.raises(StateUnavailable):
                # A generous bound that only a hang would exceed.
                await asyncio.wait_for(operation, 120)
        assert not store.health.ok and store.health.errors >= 4
        assert store.health.report()["backend"] == "postgresql"
        server.start()
        deadline = asyncio.get_running_loop().time() + 120
        while True:
            try:
                await store.commit([Put("k", "after", {}, 0)])
                break
            except StateUnavailable:
                # The pool replaces its broken connections in the background.
                assert asyncio.get_running_loop().time() < deadline, store.health.detail
                await asyncio.sleep(0.1)
        assert store.health.ok
        assert [d.key for d in await store.list("k")] == ["after", "before"]
        await store.close()


class Silent(SQLiteStore):
    """A store whose ping never answers (a server that accepts and says nothing)."""

    async def ping(self) -> None:
        await asyncio.Event().wait()


async def test_health_probe_is_bounded() -> None:
    store = Silent(None)
    await asyncio.wait_for(probe(store, 0.05), 60)
    assert store.health.report() == {
        "backend": "sqlite",
        "ok": False,
        "detail": "no answer within 0.05 s",
    }
    await SQLiteStore.ping(store)  # a real answer clears it
    assert store.health.ok
    await store.close()


@each_backend
async def test_a_database_at_an_older_schema_is_migrated_in_order(
    state_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = store_for(state_url)
    await store.commit([Put("k", "kept", {"v": 1}, 0)])
    await store.close()
    step = Migration(
        LATEST + 1,
        "an index on updated_at (a step added by a later release)",
        ("CREATE INDEX outcrop_documents_updated ON outcrop_documents (updated_at)",),
    )
    monkeypatch.setattr(migrations, "MIGRATIONS", (*migrations.MIGRATIONS, step))
    monkeypatch.setattr(migrations, "LATEST", LATEST + 1)
    upgraded = store_for(state_url)
    kept = await upgraded.get("k", "kept")
    assert kept is not None and kept.body == {"v": 1}
    await upgraded.close()
    assert [r[0] for r in _schema_rows(state_url)] == list(range(1, LATEST + 2))
