"""The guardrail store: IDs and ARNs, DRAFT and numbered versions, persistence, configured ones,
the import of a pre-database state file."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from outcrop.app import check_settings
from outcrop.config import ConfigError, Settings
from outcrop.config.guardrails import GuardrailSettings
from outcrop.engines.embeddings import BertEmbedder
from outcrop.guardrails.runtime import open_guardrails
from outcrop.guardrails.store import (
    IMPORTED_FILE,
    MAX_VERSIONS,
    STATE_FILE,
    GuardrailStore,
    LegacyFile,
    StateFileError,
    config_guardrail_id,
)
from outcrop.state.sqlite import DATABASE_FILE, SQLiteStore
from outcrop.wire.errors import (
    ConflictException,
    ResourceNotFoundException,
    ServiceQuotaExceededException,
    ValidationException,
)

SPEC = {"name": "one", "blockedInputMessaging": "no", "blockedOutputsMessaging": "no"}


def file_store(path: Path) -> GuardrailStore:
    return GuardrailStore(SQLiteStore(path / DATABASE_FILE), "123456789012")


async def reopened(path: Path) -> GuardrailStore:
    store = file_store(path)
    await store.refresh()
    return store


async def test_ids_arns_versions_and_persistence(tmp_path: Path) -> None:
    store = file_store(tmp_path)
    record = await store.create(SPEC, "eu-west-1", tags=[{"key": "k", "value": "v"}])
    assert re.fullmatch(r"[a-z0-9]{12}", record.guardrail_id)
    assert record.arn == f"arn:aws:bedrock:eu-west-1:123456789012:guardrail/{record.guardrail_id}"
    _, version = await store.create_version(record.guardrail_id, "first", None)
    assert version == "1"
    await store.update(record.arn, {**SPEC, "description": "changed"})
    assert store.get_version(record.guardrail_id, "1")[1].spec == SPEC
    assert store.get_version(record.guardrail_id, "DRAFT")[1].spec["description"] == "changed"

    again_store = await reopened(tmp_path)
    again = again_store.get(record.guardrail_id)
    assert again.arn == record.arn and again.tags == [{"key": "k", "value": "v"}]
    assert set(again.versions) == {"1"} and again.draft.spec["description"] == "changed"
    _, second = await again_store.create_version(record.guardrail_id, None, None)
    assert second == "2"
    await again_store.delete(record.guardrail_id, "1")
    assert set((await reopened(tmp_path)).get(record.guardrail_id).versions) == {"2"}
    await again_store.delete(record.guardrail_id, None)
    with pytest.raises(ResourceNotFoundException):
        (await reopened(tmp_path)).get(record.guardrail_id)
    # The name is free again once its guardrail is gone.
    assert (await again_store.create(SPEC, "us-east-1")).name == "one"


async def test_names_tokens_and_quota(tmp_path: Path) -> None:
    store = file_store(tmp_path)
    first = await store.create(SPEC, "us-east-1", token="tok1")
    assert (await store.create(SPEC, "us-east-1", token="tok1")).guardrail_id == first.guardrail_id
    with pytest.raises(ConflictException):
        await store.create(SPEC, "us-east-1")
    assert (await store.create_version(first.guardrail_id, None, "v"))[1] == "1"
    assert (await store.create_version(first.guardrail_id, None, "v"))[1] == "1"
    for _ in range(MAX_VERSIONS - 1):
        await store.create_version(first.guardrail_id, None, None)
    with pytest.raises(ServiceQuotaExceededException):
        await store.create_version(first.guardrail_id, None, None)
    with pytest.raises(ResourceNotFoundException):
        store.get_version(first.guardrail_id, "99")
    second = await store.create({**SPEC, "name": "two"}, "us-east-1")
    with pytest.raises(ConflictException):
        await store.update(second.guardrail_id, SPEC)  # renaming onto a taken name
    renamed = await store.update(second.guardrail_id, {**SPEC, "name": "three"})
    assert renamed.name == "three"
    assert (await store.create({**SPEC, "name": "two"}, "us-east-1")).name == "two"
    with pytest.raises(ValidationException):
        await store.create(
            {
                "name": "bad",
                "blockedInputMessaging": "n",
                "blockedOutputsMessaging": "n",
                "contentPolicyConfig": {
                    "filtersConfig": [
                        {"type": "PROMPT_ATTACK", "inputStrength": "HIGH", "outputStrength": "HIGH"}
                    ]
                },
            },
            "us-east-1",
        )


async def test_configured_guardrails_are_read_only_and_not_persisted(tmp_path: Path) -> None:
    store = file_store(tmp_path)
    gid = store.add_configured(SPEC, None, "us-east-1")
    assert gid == config_guardrail_id("one") and re.fullmatch(r"[a-z0-9]{12}", gid)
    assert set(store.get(gid).versions) == {"1"}
    with pytest.raises(ConflictException, match="configuration file"):
        await store.update(gid, SPEC)
    with pytest.raises(ConflictException, match="configuration file"):
        await store.delete(gid, None)
    with pytest.raises(ConflictException):
        await store.create(SPEC, "us-east-1")  # the configured one has the name
    await store.create({**SPEC, "name": "two"}, "us-east-1")
    assert [r.name for r in (await reopened(tmp_path)).records()] == ["two"]
    assert store.get(gid).configured  # still served after the refresh


def legacy_file(path: Path, *names: str) -> None:
    """A guardrails.json as Outcrop wrote it before the state store."""
    stamp = "2026-01-01T00:00:00.000Z"
    guardrails = [
        {
            "guardrailId": f"legacy{i:06d}",
            "arn": f"arn:aws:bedrock:us-east-1:123456789012:guardrail/legacy{i:06d}",
            "draft": {
                "version": "DRAFT",
                "spec": {**SPEC, "name": name},
                "createdAt": stamp,
                "updatedAt": stamp,
                "description": None,
            },
            "versions": [
                {
                    "version": "1",
                    "spec": {**SPEC, "name": name},
                    "createdAt": stamp,
                    "updatedAt": stamp,
                    "description": "v1",
                }
            ],
            "nextVersion": 2,
            "tags": [],
            "tokens": {"t": "1"},
        }
        for i, name in enumerate(names)
    ]
    (path / STATE_FILE).write_text(json.dumps({"format": 1, "guardrails": guardrails}))


async def test_a_legacy_state_file_is_imported_once(tmp_path: Path) -> None:
    legacy_file(tmp_path, "old", "older")
    guardrails = open_guardrails(GuardrailSettings(state_dir=tmp_path), "us-east-1", BertEmbedder())
    await guardrails.store.refresh()
    assert sorted(r.name for r in guardrails.store.records()) == ["old", "older"]
    assert guardrails.store.get_version("legacy000000", "1")[1].description == "v1"
    assert not (tmp_path / STATE_FILE).exists() and (tmp_path / IMPORTED_FILE).exists()
    # Imported guardrails are ordinary ones: versioned on, numbering where the file left off.
    _, version = await guardrails.store.create_version("legacy000000", None, None)
    assert version == "2"
    # A file put back (or left by a replica that imported it first) adds nothing twice.
    legacy_file(tmp_path, "old", "older")
    again = open_guardrails(GuardrailSettings(state_dir=tmp_path), "us-east-1", BertEmbedder())
    await again.store.refresh()
    assert sorted(r.name for r in again.store.records()) == ["old", "older"]
    assert set(again.store.get("legacy000000").versions) == {"1", "2"}


def test_unreadable_state_file_stops_the_server(tmp_path: Path) -> None:
    (tmp_path / STATE_FILE).write_text("{not json")
    with pytest.raises(StateFileError):
        LegacyFile.find(tmp_path)
    with pytest.raises(ConfigError, match="guardrails"):
        open_guardrails(GuardrailSettings(state_dir=tmp_path), "us-east-1", BertEmbedder())


def _checked(data: dict[str, Any]) -> None:
    check_settings(Settings.model_validate(data))


def test_configured_definitions_are_checked_at_load() -> None:
    good = {**SPEC, "id": "abc123"}
    _checked({"guardrails": {"define": [good]}})
    for bad, message in (
        ({**SPEC, "blockedInputMessaging": ""}, "blockedInputMessaging"),
        ({**SPEC, "wordPolicyConfig": {"wordsConfig": [{"txt": "x"}]}}, "wordsConfig"),
        ({**SPEC, "nmae": "x"}, "unknown member"),
        ({**SPEC, "id": "Not Valid"}, "id"),
    ):
        with pytest.raises(ValueError, match=message):
            _checked({"guardrails": {"define": [bad]}})
    with pytest.raises(ValueError, match="twice"):
        _checked({"guardrails": {"define": [SPEC, SPEC]}})


def test_state_dir_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("OUTCROP_STATE_DIR", str(tmp_path / "a"))
    assert GuardrailSettings().resolved_state_dir() == tmp_path / "a"
    monkeypatch.delenv("OUTCROP_STATE_DIR")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "x"))
    assert GuardrailSettings().resolved_state_dir() == tmp_path / "x" / "outcrop"
    assert GuardrailSettings(state_dir=tmp_path / "b").resolved_state_dir() == tmp_path / "b"
