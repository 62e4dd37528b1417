"""Guardrail writes are durable and acknowledged, or refused and not applied (issue 13, item 4).

A CreateGuardrail whose description held a lone surrogate answered 500 yet stayed in memory;
every later write then answered 500 while taking effect in memory only, ListGuardrails answered
500, and all of it was gone after a restart. Crashes left `.guardrails-*.json` files behind.
Guardrails now live in the state store; a write it does not commit is not applied either.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest

from outcrop.app import OutcropApp
from outcrop.config import Settings
from outcrop.engines.scripted import ScriptedEngine
from outcrop.guardrails.store import GuardrailStore, LegacyFile
from outcrop.state.sqlite import DATABASE_FILE, SQLiteStore
from outcrop.state.store import StateUnavailable, Write
from outcrop.wire.errors import ValidationException
from tests.asgi_driver import Result, call

JSON = [("content-type", "application/json")]


def spec(name: str, description: str = "fine") -> dict[str, str]:
    return {
        "name": name,
        "description": description,
        "blockedInputMessaging": "no",
        "blockedOutputsMessaging": "no",
    }


def app_with_state(state_dir: Path) -> OutcropApp:
    settings = Settings.model_validate(
        {"engines": {"default": {"type": "scripted"}}, "guardrails": {"state_dir": str(state_dir)}}
    )
    return OutcropApp(settings, engines={"default": ScriptedEngine()})


def raw_body(name: str, description_json: str) -> bytes:
    """A CreateGuardrail body whose description is given as JSON text (escapes and all)."""
    return (
        '{"name":"' + name + '","description":' + description_json + ","
        '"blockedInputMessaging":"no","blockedOutputsMessaging":"no"}'
    ).encode()


def names(result: Result) -> list[str]:
    assert result.status == 200, result.body
    return sorted(g["name"] for g in json.loads(result.body)["guardrails"])


async def test_a_lone_surrogate_is_refused_and_not_applied(tmp_path: Path) -> None:
    app = app_with_state(tmp_path)
    ok = await call(app, "POST", "/guardrails", raw_body("kept", '"fine"'), JSON)
    assert ok.status == 202, ok.body
    bad = await call(app, "POST", "/guardrails", raw_body("bad", '"x\\ud800y"'), JSON)
    assert bad.status == 400, bad.body
    assert bad.headers["x-amzn-errortype"].startswith("ValidationException")
    assert names(await call(app, "GET", "/guardrails")) == ["kept"]
    # Later writes by anyone still work, durably.
    later = await call(app, "POST", "/guardrails", raw_body("later", '"also fine"'), JSON)
    assert later.status == 202, later.body
    guardrail_id = json.loads(ok.body)["guardrailId"]
    update = await call(
        app, "PUT", f"/guardrails/{guardrail_id}", raw_body("kept", '"\\udfff"'), JSON
    )
    assert update.status == 400
    restarted = app_with_state(tmp_path)
    assert names(await call(restarted, "GET", "/guardrails")) == ["kept", "later"]
    got = await call(restarted, "GET", f"/guardrails/{guardrail_id}")
    assert json.loads(got.body)["description"] == "fine"


class FailingCommits(SQLiteStore):
    """SQLite whose commits fail as a store that went away would, once `failing` is set."""

    failing = False

    async def commit(self, writes: Sequence[Write]) -> dict[tuple[str, str], int]:
        if self.failing:
            self.health.failed("injected")
            raise StateUnavailable("injected")
        return await super().commit(writes)


async def test_a_write_that_cannot_be_made_durable_is_not_applied(tmp_path: Path) -> None:
    documents = FailingCommits(tmp_path / DATABASE_FILE)
    store = GuardrailStore(documents, "123456789012")
    first = await store.create(spec("first"), "us-east-1")
    documents.failing = True
    with pytest.raises(StateUnavailable):
        await store.create(spec("second"), "us-east-1")
    with pytest.raises(StateUnavailable):
        await store.create_version(first.guardrail_id, "v1", None)
    with pytest.raises(StateUnavailable):
        await store.update(first.guardrail_id, spec("first", "changed"))
    assert [r.name for r in store.records()] == ["first"]
    assert store.get(first.guardrail_id).versions == {}
    assert store.get(first.guardrail_id).draft.spec["description"] == "fine"
    again = GuardrailStore(SQLiteStore(tmp_path / DATABASE_FILE), "123456789012")
    await again.refresh()
    assert [r.name for r in again.records()] == ["first"]
    assert again.get(first.guardrail_id).versions == {}


async def test_unstorable_text_is_refused_without_a_state_dir() -> None:
    store = GuardrailStore(SQLiteStore(None), "123456789012")
    with pytest.raises(ValidationException):
        await store.create(spec("x", "\ud800"), "us-east-1")
    with pytest.raises(ValidationException):
        await store.create(spec("y"), "us-east-1", tags=[{"key": "k", "value": "\udc00"}])
    await store.refresh()
    assert store.records() == []
    first = await store.create(spec("z"), "us-east-1")
    with pytest.raises(ValidationException):
        await store.create_version(first.guardrail_id, "\ud83d", None)
    await store.refresh()
    assert store.get(first.guardrail_id).versions == {}


def test_stale_temporary_files_are_removed_at_start(tmp_path: Path) -> None:
    (tmp_path / ".guardrails-abc123.json").write_text('{"half": ')
    (tmp_path / "other.json").write_text("{}")
    assert LegacyFile.find(tmp_path) is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.json"]


async def test_parsed_definitions_follow_updates_and_do_not_pile_up() -> None:
    store = GuardrailStore(SQLiteStore(None), "123456789012")
    record = await store.create(spec("one"), "us-east-1")
    parsed = []
    for word in ("first", "second", "third"):
        body = {**spec("one"), "wordPolicyConfig": {"wordsConfig": [{"text": word}]}}
        await store.update(record.guardrail_id, body)
        await store.refresh()
        record = store.get(record.guardrail_id)
        definition = store.definition(record, record.draft)
        assert word in json.dumps(record.draft.spec)
        assert store.definition(record, record.draft) is definition
        parsed.append(definition)
    assert len({id(d) for d in parsed}) == 3  # each update parsed anew, even within one ms
    assert len(store._definitions) == 1
