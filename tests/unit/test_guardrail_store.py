"""The guardrail store: IDs and ARNs, DRAFT and numbered versions, persistence, configured ones."""

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
    MAX_VERSIONS,
    STATE_FILE,
    GuardrailStore,
    StateFileError,
    config_guardrail_id,
)
from outcrop.wire.errors import (
    ConflictException,
    ResourceNotFoundException,
    ServiceQuotaExceededException,
    ValidationException,
)

SPEC = {"name": "one", "blockedInputMessaging": "no", "blockedOutputsMessaging": "no"}


def test_ids_arns_versions_and_persistence(tmp_path: Path) -> None:
    store = GuardrailStore(tmp_path, "123456789012")
    record = store.create(SPEC, "eu-west-1", tags=[{"key": "k", "value": "v"}])
    assert re.fullmatch(r"[a-z0-9]{12}", record.guardrail_id)
    assert record.arn == f"arn:aws:bedrock:eu-west-1:123456789012:guardrail/{record.guardrail_id}"
    _, version = store.create_version(record.guardrail_id, "first", None)
    assert version == "1"
    store.update(record.arn, {**SPEC, "description": "changed"})
    assert store.get_version(record.guardrail_id, "1")[1].spec == SPEC
    assert store.get_version(record.guardrail_id, "DRAFT")[1].spec["description"] == "changed"

    reopened = GuardrailStore(tmp_path, "123456789012")
    again = reopened.get(record.guardrail_id)
    assert again.arn == record.arn and again.tags == [{"key": "k", "value": "v"}]
    assert set(again.versions) == {"1"} and again.draft.spec["description"] == "changed"
    _, second = reopened.create_version(record.guardrail_id, None, None)
    assert second == "2"
    reopened.delete(record.guardrail_id, "1")
    assert set(GuardrailStore(tmp_path, "123456789012").get(record.guardrail_id).versions) == {"2"}
    reopened.delete(record.guardrail_id, None)
    with pytest.raises(ResourceNotFoundException):
        GuardrailStore(tmp_path, "123456789012").get(record.guardrail_id)


def test_names_tokens_and_quota(tmp_path: Path) -> None:
    store = GuardrailStore(tmp_path, "123456789012")
    first = store.create(SPEC, "us-east-1", token="tok1")
    assert store.create(SPEC, "us-east-1", token="tok1") is first
    with pytest.raises(ConflictException):
        store.create(SPEC, "us-east-1")
    assert store.create_version(first.guardrail_id, None, "v")[1] == "1"
    assert store.create_version(first.guardrail_id, None, "v")[1] == "1"
    for _ in range(MAX_VERSIONS - 1):
        store.create_version(first.guardrail_id, None, None)
    with pytest.raises(ServiceQuotaExceededException):
        store.create_version(first.guardrail_id, None, None)
    with pytest.raises(ResourceNotFoundException):
        store.get_version(first.guardrail_id, "99")
    with pytest.raises(ValidationException):
        store.create(
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


def test_configured_guardrails_are_read_only_and_not_persisted(tmp_path: Path) -> None:
    store = GuardrailStore(tmp_path, "123456789012")
    gid = store.add_configured(SPEC, None, "us-east-1")
    assert gid == config_guardrail_id("one") and re.fullmatch(r"[a-z0-9]{12}", gid)
    assert set(store.get(gid).versions) == {"1"}
    for change in (lambda: store.update(gid, SPEC), lambda: store.delete(gid, None)):
        with pytest.raises(ConflictException, match="configuration file"):
            change()
    store.create({**SPEC, "name": "two"}, "us-east-1")
    saved = json.loads((tmp_path / STATE_FILE).read_text())
    assert [g["draft"]["spec"]["name"] for g in saved["guardrails"]] == ["two"]


def test_unreadable_state_file_stops_the_server(tmp_path: Path) -> None:
    (tmp_path / STATE_FILE).write_text("{not json")
    with pytest.raises(StateFileError):
        GuardrailStore(tmp_path, "123456789012")
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
