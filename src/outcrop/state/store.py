"""The durable state store's interface and its sans-IO parts.

State is kept as documents: a `kind` (what it is: `guardrail`, `sagemaker-async-job`, ...), a
`key` unique within the kind, a JSON object `body` and a `version` that starts at 1 and grows by
one at every write. Writes are batches (`commit`) of conditional puts and deletes applied all or
nothing: each names the version it expects to replace (0: the document must not exist yet), and
a batch whose expectation no longer holds, because another writer (on this replica or another)
changed the document first, is refused whole with `StateConflict`. That compare-and-set is what
keeps concurrent writers on different replicas from losing each other's updates: the loser
reads again and retries.

Every commit also advances a generation number per kind it touched, so a replica can tell with
one small read whether anything of a kind changed since it last looked (`generation`).

`StateUnavailable` is the one error a backend raises when it cannot answer (server down, pool
exhausted, disk full, time limit); callers translate it into their service's AWS error.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class Document:
    """One stored document at one version."""

    kind: str
    key: str
    body: dict[str, Any]
    version: int


@dataclass(frozen=True, slots=True)
class Put:
    """Write `body` as (`kind`, `key`) if the stored version is `expect` (0: absent)."""

    kind: str
    key: str
    body: dict[str, Any]
    expect: int

    def __post_init__(self) -> None:
        if self.expect < 0:
            raise ValueError("expect must be 0 (absent) or a stored version")


@dataclass(frozen=True, slots=True)
class Delete:
    """Remove (`kind`, `key`) if the stored version is `expect`."""

    kind: str
    key: str
    expect: int

    def __post_init__(self) -> None:
        if self.expect < 1:
            raise ValueError("a delete names the stored version it removes")


Write = Put | Delete


class StateConflict(Exception):
    """A write's expected version did not hold; nothing of its batch was applied."""

    def __init__(self, kind: str, key: str) -> None:
        super().__init__(f"{kind}/{key} changed concurrently")
        self.kind = kind
        self.key = key


class StateUnavailable(Exception):
    """The backend could not answer (down, no free connection, time limit, disk full)."""


@dataclass(slots=True)
class StateHealth:
    """What health and metrics report about the store: the outcome of its last operation."""

    backend: str
    ok: bool = True
    detail: str = ""
    errors: int = 0
    """Operations that failed with StateUnavailable since the start."""
    changed_at: float = field(default_factory=time.time)

    def succeeded(self) -> None:
        if not self.ok:
            self.ok, self.detail, self.changed_at = True, "", time.time()

    def failed(self, detail: str) -> None:
        self.errors += 1
        if self.ok or self.detail != detail:
            self.ok, self.detail, self.changed_at = False, detail, time.time()

    def report(self) -> dict[str, Any]:
        return {"backend": self.backend, "ok": self.ok, "detail": self.detail}


class StateStore(Protocol):
    """The durable document store (SQLite or PostgreSQL)."""

    backend: str
    """`sqlite` or `postgresql`."""
    health: StateHealth

    async def open(self) -> None:
        """Connect and bring the schema up to date (idempotent; concurrent replicas safe)."""
        ...

    async def close(self) -> None: ...

    async def get(self, kind: str, key: str) -> Document | None: ...

    async def list(self, kind: str) -> list[Document]:
        """Every document of a kind, by key."""
        ...

    async def commit(self, writes: Sequence[Write]) -> dict[tuple[str, str], int]:
        """Apply `writes` all or nothing, durably; the new version of each put document.
        StateConflict when an expectation fails."""
        ...

    async def generation(self, kind: str) -> int:
        """A number that changes whenever a document of `kind` is written (0: never)."""
        ...

    async def ping(self) -> None:
        """One round trip; StateUnavailable when the backend does not answer."""
        ...


async def probe(store: StateStore, timeout_s: float) -> None:
    """Ping `store` for health, waiting at most `timeout_s` (a store that does not answer in
    time is reported down; its own, longer limits apply to real operations)."""
    try:
        async with asyncio.timeout(timeout_s):
            await store.ping()
    except TimeoutError:
        store.health.failed(f"no answer within {timeout_s:g} s")
    except StateUnavailable:
        pass  # recorded by the store


def encode_body(body: dict[str, Any]) -> str:
    """A document body as stored (JSON text; ValueError for text UTF-8 cannot encode)."""
    text = json.dumps(body, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(f"document body is not valid Unicode: {exc.reason}") from None
    return text


def decode_body(text: str) -> dict[str, Any]:
    value = json.loads(text)
    if not isinstance(value, dict):
        raise ValueError("a stored document body is not a JSON object")
    return value


def touched_kinds(writes: Sequence[Write]) -> list[str]:
    """The kinds a batch writes, sorted (generations are advanced, and locked, in this order
    so that concurrent batches cannot deadlock on them)."""
    return sorted({w.kind for w in writes})


def ordered(writes: Sequence[Write]) -> list[Write]:
    """A batch in a fixed (kind, key) order: concurrent batches lock rows in the same order."""
    keys = [(w.kind, w.key) for w in writes]
    if len(set(keys)) != len(keys):
        raise ValueError("a batch writes one document at most once")
    return sorted(writes, key=lambda w: (w.kind, w.key))
