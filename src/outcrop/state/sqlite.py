"""The embedded state store: SQLite (the standard library's `sqlite3`), a file or memory.

One connection, used from one worker thread (`sqlite3` calls block), so the event loop never
waits on the disk. The file is in WAL mode with `synchronous = FULL`: a commit returns only
once it is on disk, so a write acknowledged to a client survives a crash or power loss. A batch
runs in `BEGIN IMMEDIATE`, which takes the database's write lock before reading the versions it
checks, so that several processes sharing one file (two `outcrop serve` on one state
directory) serialise their batches; a process waits for the lock at most `busy_timeout_s`, then
the write fails with StateUnavailable rather than hanging.

`path=None` keeps the database in memory (gone when the process ends): the same code and
schema, for tests and for servers told to keep no state.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

from outcrop.state.migrations import SCHEMA_TABLE, SchemaTooNew, pending
from outcrop.state.store import (
    Delete,
    Document,
    Put,
    StateConflict,
    StateHealth,
    StateUnavailable,
    Write,
    decode_body,
    encode_body,
    ordered,
    touched_kinds,
)

T = TypeVar("T")

DATABASE_FILE = "outcrop-state.sqlite3"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class SQLiteStore:
    """`StateStore` on SQLite."""

    backend = "sqlite"

    def __init__(self, path: Path | None, *, busy_timeout_s: float = 5.0) -> None:
        self.path = path
        self.busy_timeout_s = busy_timeout_s
        self.health = StateHealth(self.backend)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="outcrop-sqlite")
        self._connection: sqlite3.Connection | None = None
        self._opening: asyncio.Lock | None = None

    # -- plumbing ----------------------------------------------------------------------------

    async def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        if self._connection is None:
            await self.open()
        connection = self._connection
        assert connection is not None
        loop = asyncio.get_running_loop()
        try:
            result = await loop.run_in_executor(self._executor, work, connection)
        except sqlite3.Error as exc:
            self.health.failed(f"sqlite: {exc}")
            raise StateUnavailable(f"the state database failed: {exc}") from None
        self.health.succeeded()
        return result

    def _connect(self) -> sqlite3.Connection:
        if self.path is None:
            target = ":memory:"
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            target = str(self.path)
        connection = sqlite3.connect(
            target,
            timeout=self.busy_timeout_s,
            isolation_level=None,  # transactions are explicit (BEGIN IMMEDIATE)
            check_same_thread=False,  # used from the worker thread only, one call at a time
        )
        try:
            if self.path is not None:
                connection.execute("PRAGMA journal_mode = WAL")
                connection.execute("PRAGMA synchronous = FULL")
            _migrate(connection)
        except BaseException:
            connection.close()
            raise
        return connection

    async def open(self) -> None:
        if self._opening is None:
            self._opening = asyncio.Lock()
        async with self._opening:
            if self._connection is not None:
                return
            loop = asyncio.get_running_loop()
            try:
                self._connection = await loop.run_in_executor(self._executor, self._connect)
            except (sqlite3.Error, OSError, SchemaTooNew) as exc:
                self.health.failed(f"sqlite: {exc}")
                raise StateUnavailable(f"cannot open the state database: {exc}") from None
            self.health.succeeded()

    async def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(self._executor, connection.close)
        self._executor.shutdown(wait=False)

    # -- operations --------------------------------------------------------------------------

    async def get(self, kind: str, key: str) -> Document | None:
        def work(c: sqlite3.Connection) -> Document | None:
            row = c.execute(
                "SELECT body, version FROM outcrop_documents WHERE kind = ? AND key = ?",
                (kind, key),
            ).fetchone()
            return None if row is None else Document(kind, key, decode_body(row[0]), row[1])

        return await self._run(work)

    async def list(self, kind: str) -> list[Document]:
        def work(c: sqlite3.Connection) -> list[Document]:
            rows = c.execute(
                "SELECT key, body, version FROM outcrop_documents WHERE kind = ? ORDER BY key",
                (kind,),
            ).fetchall()
            return [Document(kind, key, decode_body(body), version) for key, body, version in rows]

        return await self._run(work)

    async def generation(self, kind: str) -> int:
        def work(c: sqlite3.Connection) -> int:
            row = c.execute("SELECT value FROM outcrop_generations WHERE kind = ?", (kind,))
            found = row.fetchone()
            return 0 if found is None else int(found[0])

        return await self._run(work)

    async def ping(self) -> None:
        await self._run(lambda c: c.execute("SELECT 1").fetchone())

    async def commit(self, writes: Sequence[Write]) -> dict[tuple[str, str], int]:
        batch = ordered(writes)
        encoded = {(w.kind, w.key): encode_body(w.body) for w in batch if isinstance(w, Put)}
        kinds = touched_kinds(batch)

        def work(c: sqlite3.Connection) -> dict[tuple[str, str], int]:
            c.execute("BEGIN IMMEDIATE")
            try:
                versions = _apply(c, batch, encoded, kinds)
            except BaseException:
                c.execute("ROLLBACK")
                raise
            c.execute("COMMIT")
            return versions

        return await self._run(work)


def _apply(
    c: sqlite3.Connection, batch: list[Write], encoded: dict[tuple[str, str], str], kinds: list[str]
) -> dict[tuple[str, str], int]:
    versions: dict[tuple[str, str], int] = {}
    stamp = _now()
    for write in batch:
        row = c.execute(
            "SELECT version FROM outcrop_documents WHERE kind = ? AND key = ?",
            (write.kind, write.key),
        ).fetchone()
        stored = 0 if row is None else int(row[0])
        if stored != write.expect:
            raise StateConflict(write.kind, write.key)
        if isinstance(write, Delete):
            c.execute(
                "DELETE FROM outcrop_documents WHERE kind = ? AND key = ?", (write.kind, write.key)
            )
            continue
        body = encoded[(write.kind, write.key)]
        c.execute(
            "INSERT INTO outcrop_documents (kind, key, body, version, updated_at) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT (kind, key) DO UPDATE SET "
            "body = excluded.body, version = excluded.version, updated_at = excluded.updated_at",
            (write.kind, write.key, body, stored + 1, stamp),
        )
        versions[(write.kind, write.key)] = stored + 1
    for kind in kinds:
        c.execute(
            "INSERT INTO outcrop_generations (kind, value) VALUES (?, 1) "
            "ON CONFLICT (kind) DO UPDATE SET value = outcrop_generations.value + 1",
            (kind,),
        )
    return versions


def _migrate(c: sqlite3.Connection) -> None:
    c.execute("BEGIN IMMEDIATE")
    try:
        c.execute(SCHEMA_TABLE)
        applied = c.execute("SELECT COALESCE(MAX(version), 0) FROM outcrop_schema").fetchone()[0]
        for step in pending(int(applied)):
            for statement in step.statements:
                c.execute(statement)
            c.execute(
                "INSERT INTO outcrop_schema (version, description, applied_at) VALUES (?, ?, ?)",
                (step.number, step.description, _now()),
            )
    except BaseException:
        c.execute("ROLLBACK")
        raise
    c.execute("COMMIT")
