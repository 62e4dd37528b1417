"""Model IDs newer than the catalog, with boto3: served with inferred metadata by default,
refused as on AWS in strict mode, and configured catalog entries (docs/models.md)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.support.server import ServerProcess, running_server

NEW_CLAUDE = "global.anthropic.claude-sonnet-5-5"
NEW_QWEN = "qwen.qwen4-coder-999b-a35b-v1:0"
CATALOGUED = ["qwen.qwen3-coder-480b-a35b-v1:0", "us.anthropic.claude-opus-4-7", "deepseek.v3.2"]

STRICT_CONFIG = """
[engines.default]
type = "scripted"

[catalog]
strict = true

[[catalog.models]]
id = "acme.rocket-v1:0"
provider = "Acme"
name = "Rocket"
inference_types = ["ON_DEMAND"]
"""


@pytest.fixture(scope="module")
def strict_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    config = tmp_path_factory.mktemp("strict") / "outcrop.toml"
    config.write_text(STRICT_CONFIG)
    with running_server(["--config", str(config)]) as server:
        yield server


def clients(server: ServerProcess) -> tuple[Any, Any]:
    config = Config(retries={"max_attempts": 1, "mode": "standard"})
    args: dict[str, Any] = {"endpoint_url": server.url, "region_name": "us-east-1"}
    return (
        boto3.client("bedrock-runtime", config=config, **args),
        boto3.client("bedrock", config=config, **args),
    )


def claude(text: str) -> str:
    return json.dumps(
        {
            "anthropic_version": "bedrock-2023-05-31",
            "max_tokens": 20,
            "messages": [{"role": "user", "content": text}],
        }
    )


def qwen(text: str) -> str:
    return json.dumps({"messages": [{"role": "user", "content": text}], "max_tokens": 20})


def test_new_claude_and_qwen_ids_stream(scripted_server: ServerProcess) -> None:
    runtime, _ = clients(scripted_server)
    stream = runtime.invoke_model_with_response_stream(modelId=NEW_CLAUDE, body=claude("basalt"))
    chunks = [json.loads(e["chunk"]["bytes"]) for e in stream["body"]]
    assert chunks[0]["message"]["model"] == "claude-sonnet-5-5"
    text = "".join(c["delta"].get("text", "") for c in chunks if c["type"] == "content_block_delta")
    assert text == "Echo: basalt"
    stream = runtime.invoke_model_with_response_stream(modelId=NEW_QWEN, body=qwen("gneiss"))
    chunks = [json.loads(e["chunk"]["bytes"]) for e in stream["body"]]
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == "Echo: gneiss"
    converse = runtime.converse_stream(
        modelId=NEW_QWEN, messages=[{"role": "user", "content": [{"text": "slate"}]}]
    )
    deltas = [
        e["contentBlockDelta"]["delta"]["text"]
        for e in converse["stream"]
        if "contentBlockDelta" in e
    ]
    assert "".join(deltas) == "Echo: slate"


def test_new_claude_base_id_needs_a_profile(scripted_server: ServerProcess) -> None:
    runtime, _ = clients(scripted_server)
    with pytest.raises(ClientError) as raised:
        runtime.invoke_model(modelId="anthropic.claude-sonnet-5-5", body=claude("x"))
    assert raised.value.response["Error"]["Code"] == "ValidationException"
    assert "on-demand throughput isn’t supported" in raised.value.response["Error"]["Message"]


def test_get_foundation_model_marks_inferred_metadata(scripted_server: ServerProcess) -> None:
    _, control = clients(scripted_server)
    response = control.get_foundation_model(modelIdentifier="anthropic.claude-sonnet-5-5")
    details = response["modelDetails"]
    assert details["modelName"].endswith(" (inferred by Outcrop)")
    assert details["providerName"] == "Anthropic"
    assert details["inferenceTypesSupported"] == ["INFERENCE_PROFILE"]
    assert response["ResponseMetadata"]["HTTPHeaders"]["x-outcrop-model-inferred"] == "true"
    listed = {m["modelId"] for m in control.list_foundation_models()["modelSummaries"]}
    assert "anthropic.claude-sonnet-5-5" not in listed
    catalogued = control.get_foundation_model(modelIdentifier="deepseek.v3.2")
    assert "x-outcrop-model-inferred" not in catalogued["ResponseMetadata"]["HTTPHeaders"]
    assert catalogued["modelDetails"]["modelName"] == "DeepSeek V3.2"


def test_strict_mode_refuses_ids_not_in_the_catalog(strict_server: ServerProcess) -> None:
    runtime, control = clients(strict_server)
    for model_id, body in ((NEW_CLAUDE, claude("x")), (NEW_QWEN, qwen("x"))):
        for call in (runtime.invoke_model, runtime.invoke_model_with_response_stream):
            with pytest.raises(ClientError) as raised:
                call(modelId=model_id, body=body)
            assert raised.value.response["Error"] == {
                "Code": "ValidationException",
                "Message": "The provided model identifier is invalid.",
            }
    with pytest.raises(ClientError) as raised:
        control.get_foundation_model(modelIdentifier="anthropic.claude-sonnet-5-5")
    assert raised.value.response["Error"]["Code"] == "ResourceNotFoundException"
    for model_id in CATALOGUED:
        body = claude("x") if "anthropic" in model_id else qwen("x")
        if model_id.startswith("deepseek."):  # DeepSeek's prompt body
            body = json.dumps({"prompt": "x", "max_tokens": 20})
        assert (
            runtime.invoke_model(modelId=model_id, body=body)["ResponseMetadata"]["HTTPStatusCode"]
            == 200
        )


def test_configured_catalog_entries(strict_server: ServerProcess) -> None:
    runtime, control = clients(strict_server)
    details = control.get_foundation_model(modelIdentifier="acme.rocket-v1:0")["modelDetails"]
    assert (details["providerName"], details["modelName"]) == ("Acme", "Rocket")
    listed = {m["modelId"] for m in control.list_foundation_models()["modelSummaries"]}
    assert "acme.rocket-v1:0" in listed
    answer = runtime.converse(
        modelId="acme.rocket-v1:0", messages=[{"role": "user", "content": [{"text": "pumice"}]}]
    )
    assert answer["output"]["message"]["content"][0]["text"] == "Echo: pumice"


def test_strict_config_is_validated(tmp_path: Path) -> None:
    from outcrop.config import ConfigError, load_settings

    bad = tmp_path / "bad.toml"
    bad.write_text('[catalog]\nstrict = "yes please"\n')
    with pytest.raises(ConfigError, match=r"catalog\.strict"):
        load_settings(bad)
