"""The fleet state store: PostgreSQL through psycopg 3 and psycopg_pool's async pool.

Replicas share one database. A batch runs in one transaction at READ COMMITTED: a put that
expects version N is `UPDATE ... WHERE version = N` (a concurrent writer of the same row makes
it wait for the row lock, then re-check the version: it matches no row and the batch is
refused with StateConflict), a put that expects absence is `INSERT ... ON CONFLICT DO NOTHING`
(no row inserted: conflict), and the kinds' generation rows are advanced last, in sorted order.
A commit returns once PostgreSQL acknowledged it (the server's `synchronous_commit`, on by
default, makes that durable).

Nothing waits unbounded: a connection is awaited from the pool for at most `pool_timeout_s`, a
new one is given `connect_timeout_s` to connect, and each operation, round trips included, is
cut off after `operation_timeout_s` (also sent as the session's `statement_timeout`); each of
those, and any connection error, is StateUnavailable. Connections broken while the server was
away are checked on the way out of the pool and replaced, so service resumes by itself once
PostgreSQL is back.

Migrations run under a transaction-level advisory lock, so replicas starting together apply
each step once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import psycopg
from psycopg_pool import AsyncConnectionPool, PoolTimeout

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
Connection = psycopg.AsyncConnection[Any]

_MIGRATION_LOCK = 0x6F757463  # "outc": the advisory lock migrations hold


class PostgresStore:
    """`StateStore` on PostgreSQL."""

    backend = "postgresql"

    def __init__(
        self,
        url: str,
        *,
        pool_min_size: int = 1,
        pool_max_size: int = 10,
        pool_timeout_s: float = 5.0,
        connect_timeout_s: float = 5.0,
        operation_timeout_s: float = 10.0,
    ) -> None:
        self.url = url
        self.health = StateHealth(self.backend)
        self.operation_timeout_s = operation_timeout_s
        self.pool_timeout_s = pool_timeout_s
        self._pool = AsyncConnectionPool(
            url,
            min_size=pool_min_size,
            max_size=pool_max_size,
            timeout=pool_timeout_s,
            open=False,
            check=AsyncConnectionPool.check_connection,
            reconnect_timeout=max(1.0, connect_timeout_s),
            kwargs={
                "autocommit": True,  # transactions are explicit (conn.transaction())
                "connect_timeout": max(1, round(connect_timeout_s)),
                "options": f"-c statement_timeout={round(operation_timeout_s * 1000)}",
            },
            name="outcrop-state",
        )
        self._opened = False
        self._migrated = False
        self._opening: asyncio.Lock | None = None

    # -- plumbing ----------------------------------------------------------------------------

    async def _run(self, work: Callable[[Connection], Awaitable[T]]) -> T:
        if not self._migrated:
            await self.open()
        result = await self._attempt(work)
        self.health.succeeded()
        return result

    async def _attempt(self, work: Callable[[Connection], Awaitable[T]]) -> T:
        try:
            async with asyncio.timeout(self.operation_timeout_s):
                async with self._pool.connection(timeout=self.pool_timeout_s) as conn:
                    return await work(conn)
        except StateConflict:
            raise
        except PoolTimeout:
            detail = f"no connection to PostgreSQL within {self.pool_timeout_s:g} s"
        except TimeoutError:
            detail = f"PostgreSQL did not answer within {self.operation_timeout_s:g} s"
        except psycopg.Error as exc:
            detail = f"PostgreSQL: {str(exc).strip() or type(exc).__name__}"
        except SchemaTooNew as exc:
            detail = str(exc)
        self.health.failed(detail)
        raise StateUnavailable(detail) from None

    async def open(self) -> None:
        if self._opening is None:
            self._opening = asyncio.Lock()
        async with self._opening:
            if self._migrated:
                return
            if not self._opened:
                # Opening starts the pool's background connecting; it does not wait for it.
                await self._pool.open(wait=False)
                self._opened = True
            await self._attempt(_migrate)
            self._migrated = True
            self.health.succeeded()

    async def close(self) -> None:
        if self._opened:
            await self._pool.close()

    # -- operations --------------------------------------------------------------------------

    async def get(self, kind: str, key: str) -> Document | None:
        async def work(c: Connection) -> Document | None:
            cur = await c.execute(
                "SELECT body, version FROM outcrop_documents WHERE kind = %s AND key = %s",
                (kind, key),
            )
            row = await cur.fetchone()
            return None if row is None else Document(kind, key, decode_body(row[0]), row[1])

        return await self._run(work)

    async def list(self, kind: str) -> list[Document]:
        async def work(c: Connection) -> list[Document]:
            cur = await c.execute(
                "SELECT key, body, version FROM outcrop_documents WHERE kind = %s ORDER BY key",
                (kind,),
            )
            rows = await cur.fetchall()
            return [Document(kind, key, decode_body(body), version) for key, body, version in rows]

        return await self._run(work)

    async def generation(self, kind: str) -> int:
        async def work(c: Connection) -> int:
            cur = await c.execute("SELECT value FROM outcrop_generations WHERE kind = %s", (kind,))
            row = await cur.fetchone()
            return 0 if row is None else int(row[0])

        return await self._run(work)

    async def ping(self) -> None:
        async def work(c: Connection) -> None:
            await c.execute("SELECT 1")

        await self._run(work)

    async def commit(self, writes: Sequence[Write]) -> dict[tuple[str, str], int]:
        batch = ordered(writes)
        encoded = {(w.kind, w.key): encode_body(w.body) for w in batch if isinstance(w, Put)}
        kinds = touched_kinds(batch)

        async def work(c: Connection) -> dict[tuple[str, str], int]:
            async with c.transaction():
                return await _apply(c, batch, encoded, kinds)

        return await self._run(work)


async def _apply(
    c: Connection, batch: list[Write], encoded: dict[tuple[str, str], str], kinds: list[str]
) -> dict[tuple[str, str], int]:
    versions: dict[tuple[str, str], int] = {}
    for write in batch:
        if isinstance(write, Delete):
            cur = await c.execute(
                "DELETE FROM outcrop_documents WHERE kind = %s AND key = %s AND version = %s",
                (write.kind, write.key, write.expect),
            )
        elif write.expect == 0:
            cur = await c.execute(
                "INSERT INTO outcrop_documents (kind, key, body, version, updated_at) "
                "VALUES (%s, %s, %s, 1, now()::text) ON CONFLICT (kind, key) DO NOTHING",
                (write.kind, write.key, encoded[(write.kind, write.key)]),
            )
        else:
            cur = await c.execute(
                "UPDATE outcrop_documents SET body = %s, version = version + 1, "
                "updated_at = now()::text WHERE kind = %s AND key = %s AND version = %s",
                (encoded[(write.kind, write.key)], write.kind, write.key, write.expect),
            )
        if cur.rowcount != 1:
            raise StateConflict(write.kind, write.key)
        if isinstance(write, Put):
            versions[(write.kind, write.key)] = write.expect + 1
    for kind in kinds:
        await c.execute(
            "INSERT INTO outcrop_generations (kind, value) VALUES (%s, 1) "
            "ON CONFLICT (kind) DO UPDATE SET value = outcrop_generations.value + 1",
            (kind,),
        )
    return versions


async def _migrate(c: Connection) -> None:
    async with c.transaction():
        await c.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
        await c.execute(SCHEMA_TABLE)
        cur = await c.execute("SELECT COALESCE(MAX(version), 0) FROM outcrop_schema")
        row = await cur.fetchone()
        assert row is not None
        for step in pending(int(row[0])):
            for statement in step.statements:
                await c.execute(statement)
            await c.execute(
                "INSERT INTO outcrop_schema (version, description, applied_at) "
                "VALUES (%s, %s, now()::text)",
                (step.number, step.description),
            )
