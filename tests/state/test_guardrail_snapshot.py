"""Guardrails over the state store as replicas see them: a change through one store instance
(another replica) applies at the other's next refresh, a refresh with nothing changed reads
only the generation, concurrent refreshes share checks, and replicas versioning one guardrail
at once (other processes included) get distinct, gap-free numbers. On SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from outcrop.guardrails.store import GuardrailStore
from outcrop.state.sqlite import SQLiteStore
from outcrop.state.store import Document, StateStore
from outcrop.wire.errors import ResourceNotFoundException
from tests.state.conftest import BACKENDS, store_for
from tests.state.test_store import go, replica

each_backend = pytest.mark.parametrize("state_url", BACKENDS, indirect=True)
SPEC = {"name": "g", "blockedInputMessaging": "no", "blockedOutputsMessaging": "no"}
ACCOUNT = "123456789012"


class Counting(SQLiteStore):
    """SQLite counting the reads a refresh makes."""

    generations = 0
    lists = 0

    async def generation(self, kind: str) -> int:
        self.generations += 1
        return await super().generation(kind)

    async def list(self, kind: str) -> list[Document]:
        self.lists += 1
        return await super().list(kind)


async def test_refresh_reads_the_generation_only_when_nothing_changed(tmp_path: Path) -> None:
    documents = Counting(tmp_path / "state.sqlite3")
    store = GuardrailStore(documents, ACCOUNT)
    await store.create(SPEC, "us-east-1")
    await store.refresh()
    lists = documents.lists
    for _ in range(5):
        await store.refresh()
    assert documents.lists == lists
    # Fifty calls at once share checks: one runs, the others wait for the next one.
    generations = documents.generations
    await asyncio.gather(*(store.refresh() for _ in range(50)))
    assert documents.generations - generations <= 2
    await documents.close()


@each_backend
async def test_a_change_through_one_replica_applies_at_the_others_next_refresh(
    state_url: str,
) -> None:
    a = GuardrailStore(store_for(state_url), ACCOUNT)
    c = GuardrailStore(store_for(state_url), ACCOUNT)
    await c.refresh()
    record = await a.create(SPEC, "us-east-1")
    await c.refresh()
    assert c.get(record.guardrail_id).name == "g"
    await a.update(record.guardrail_id, {**SPEC, "description": "new"})
    await a.create_version(record.guardrail_id, None, None)
    await c.refresh()
    found = c.get(record.guardrail_id)
    assert found.draft.spec["description"] == "new" and set(found.versions) == {"1"}
    await a.delete(record.guardrail_id, None)
    await c.refresh()
    with pytest.raises(ResourceNotFoundException):
        c.get(record.guardrail_id)
    await a.documents.close()
    await c.documents.close()


@each_backend
async def test_replicas_versioning_at_once_get_distinct_gapless_numbers(state_url: str) -> None:
    replicas = [GuardrailStore(store_for(state_url), ACCOUNT) for _ in range(3)]
    record = await replicas[0].create(SPEC, "us-east-1")
    results = await asyncio.gather(
        *(r.create_version(record.guardrail_id, None, None) for r in replicas * 5)
    )
    assert sorted(int(number) for _, number in results) == list(range(1, 16))
    for r in replicas:
        await r.documents.close()


@each_backend
async def test_processes_versioning_at_once_get_distinct_gapless_numbers(state_url: str) -> None:
    documents: StateStore = store_for(state_url)
    record = await GuardrailStore(documents, ACCOUNT).create(SPEC, "us-east-1")
    await documents.close()
    per_process = 9
    numbers: list[int] = []
    with (
        replica("version", state_url, record.guardrail_id, str(per_process)) as first,
        replica("version", state_url, record.guardrail_id, str(per_process)) as second,
    ):
        go(first)
        go(second)
        for proc in (first, second):
            assert proc.stdout is not None
            lines = proc.stdout.read().split()
            assert proc.wait() == 0
            numbers += [
                int(n)
                for kind, n in zip(lines[::2], lines[1::2], strict=False)
                if kind == "version"
            ]
    assert sorted(numbers) == list(range(1, 2 * per_process + 1))


@each_backend
async def test_one_name_created_on_two_replicas_at_once_exists_once(state_url: str) -> None:
    a = GuardrailStore(store_for(state_url), ACCOUNT)
    b = GuardrailStore(store_for(state_url), ACCOUNT)
    outcomes = await asyncio.gather(
        a.create(SPEC, "us-east-1"), b.create(SPEC, "us-east-1"), return_exceptions=True
    )
    assert sorted(type(o).__name__ for o in outcomes) == ["ConflictException", "GuardrailRecord"]
    # The same creation token on both: one guardrail, both answered with it.
    token_spec = {**SPEC, "name": "tokened"}
    first, second = await asyncio.gather(
        a.create(token_spec, "us-east-1", token="t-1"),
        b.create(token_spec, "us-east-1", token="t-1"),
    )
    assert first.guardrail_id == second.guardrail_id
    await a.refresh()
    assert sorted(r.name for r in a.records()) == ["g", "tokened"]
    await a.documents.close()
    await b.documents.close()
