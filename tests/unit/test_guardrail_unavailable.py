"""Issue 13 item 11: a guardrail with denied topics needs the embedding model; without it,
ApplyGuardrail (and any guarded call) answers the modelled 503 ServiceUnavailableException,
which the SDKs retry, instead of a 500."""

from __future__ import annotations

import json
from pathlib import Path

from outcrop.config import EmbeddingSettings, ScriptedSettings, Settings
from outcrop.engines.scripted import ScriptedEngine
from outcrop.gateway.app import OutcropApp
from outcrop.guardrails.settings import GuardrailSettings
from tests.asgi_driver import call

GUARDRAIL = {
    "id": "topics0001",
    "name": "no-weather",
    "blockedInputMessaging": "Blocked.",
    "blockedOutputsMessaging": "Blocked.",
    "topicPolicyConfig": {
        "topicsConfig": [
            {"name": "weather", "definition": "Talk about the weather.", "type": "DENY"}
        ]
    },
}


def app(tmp_path: Path) -> OutcropApp:
    settings = Settings(
        engines={"default": ScriptedSettings(type="scripted")},
        embeddings=EmbeddingSettings(model=tmp_path / "no-such-model"),
        guardrails=GuardrailSettings(state_dir=tmp_path, define=[GUARDRAIL]),
    )
    return OutcropApp(settings, engines={"default": ScriptedEngine()})


async def test_apply_guardrail_without_the_embedding_model_is_a_503(tmp_path: Path) -> None:
    body = {"source": "INPUT", "content": [{"text": {"text": "Will it rain tomorrow?"}}]}
    result = await call(
        app(tmp_path),
        "POST",
        "/guardrail/topics0001/version/DRAFT/apply",
        json.dumps(body).encode(),
        [("content-type", "application/json")],
    )
    assert result.status == 503, result.body
    assert result.headers["x-amzn-errortype"].startswith("ServiceUnavailableException:")
    assert len(result.headers["x-amzn-requestid"]) == 36
    assert json.loads(result.body)["message"].startswith("Bedrock is unable to process")


async def test_guarded_converse_without_the_embedding_model_is_a_503(tmp_path: Path) -> None:
    body = {
        "messages": [{"role": "user", "content": [{"text": "Will it rain tomorrow?"}]}],
        "guardrailConfig": {"guardrailIdentifier": "topics0001", "guardrailVersion": "DRAFT"},
    }
    result = await call(
        app(tmp_path),
        "POST",
        "/model/amazon.nova-lite-v1%3A0/converse",
        json.dumps(body).encode(),
        [("content-type", "application/json")],
    )
    assert result.status == 503, result.body
    assert result.headers["x-amzn-errortype"].startswith("ServiceUnavailableException:")
