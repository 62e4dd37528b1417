"""`outcrop models`, from a running server and from configuration."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ClientError

from tests.cli.conftest import HAIKU, OPUS, SONNET, ToolsServer, one_line_error, run_outcrop


def test_from_a_running_server(tools_server: ToolsServer) -> None:
    result = run_outcrop(["models", "*claude-3-*", "--json", "--endpoint-url", tools_server.url])
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["status"] == "ready"
    served = {m["modelId"]: m for m in doc["models"]}
    assert served[SONNET]["engine"] == "timed" and served[SONNET]["ready"] is True
    assert served[OPUS]["engine"] == "slow"
    assert all("claude-3-" in model_id for model_id in served)
    table = run_outcrop(["models", "--endpoint-url", tools_server.url])
    assert table.returncode == 0
    assert SONNET in table.stdout and "timed" in table.stdout
    assert f"(ready at {tools_server.url})" in table.stdout


def test_from_configuration(tools_server: ToolsServer) -> None:
    result = run_outcrop(["models", "--json", "--config", str(tools_server.config)])
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    served = {m["modelId"]: m for m in doc["models"]}
    assert doc["status"] == "not running"
    assert served[OPUS] == {
        "modelId": OPUS,
        "engine": "slow",
        "engineType": "scripted",
        "ready": None,
    }
    default = run_outcrop(["models", "--json", "--engine", "scripted"])
    assert {m["engine"] for m in json.loads(default.stdout)["models"]} == {"default"}


def test_unreachable_and_bad_config(tmp_path: Path) -> None:
    result = run_outcrop(["models", "--endpoint-url", "http://127.0.0.1:9"])
    assert result.returncode == 1
    assert one_line_error(result).startswith("outcrop: cannot reach http://127.0.0.1:9")
    bad = tmp_path / "bad.toml"
    bad.write_text("[engines.default]\ntype = 'nope'\n")
    result = run_outcrop(["models", "--config", str(bad)])
    assert result.returncode == 2
    assert str(bad) in one_line_error(result)


@pytest.mark.parametrize("variable", ["AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_BEDROCK_RUNTIME"])
def test_the_server_the_environment_names(tools_server: ToolsServer, variable: str) -> None:
    env = {"AWS_ENDPOINT_URL": "", "AWS_ENDPOINT_URL_BEDROCK_RUNTIME": "", "OUTCROP_CONFIG": ""}
    result = run_outcrop(["models", SONNET, "--json"], env={**env, variable: tools_server.url})
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["status"] == "ready"
    [listed] = doc["models"]
    assert (listed["modelId"], listed["engine"], listed["ready"]) == (SONNET, "timed", True)


def test_the_service_variable_comes_first(tools_server: ToolsServer) -> None:
    env = {
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
        "AWS_ENDPOINT_URL_BEDROCK_RUNTIME": tools_server.url,
    }
    result = run_outcrop(["models", SONNET, "--json"], env=env)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["status"] == "ready"


def test_an_unreachable_environment_endpoint_says_where_it_came_from() -> None:
    env = {"AWS_ENDPOINT_URL": "http://127.0.0.1:9", "AWS_ENDPOINT_URL_BEDROCK_RUNTIME": ""}
    result = run_outcrop(["models"], env=env)
    assert result.returncode == 1
    line = one_line_error(result)
    assert line.startswith("outcrop: cannot reach http://127.0.0.1:9")
    assert line.endswith("(from AWS_ENDPOINT_URL)")


def test_configuration_flags_win_over_the_environment(tools_server: ToolsServer) -> None:
    env = {"AWS_ENDPOINT_URL": "http://127.0.0.1:9"}
    result = run_outcrop(["models", SONNET, "--json", "--engine", "scripted"], env=env)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["status"] == "not running"


IMAGE_AND_VIDEO = {
    "amazon.nova-canvas-v1:0": "IMAGE",
    "amazon.titan-image-generator-v2:0": "IMAGE",
    "stability.stable-image-inpaint-v1:0": "IMAGE",
    "amazon.nova-reel-v1:1": "VIDEO",
}


def test_image_and_video_models_are_listed_as_unsupported(tools_server: ToolsServer) -> None:
    result = run_outcrop(["models", "--json", "--endpoint-url", tools_server.url])
    assert result.returncode == 0, result.stderr
    served = {m["modelId"]: m for m in json.loads(result.stdout)["models"]}
    for model_id, modality in IMAGE_AND_VIDEO.items():
        assert served[model_id]["unsupported"] == f"{modality} output"
        assert served[model_id]["ready"] is False
    assert "unsupported" not in served[HAIKU]
    table = run_outcrop(["models", "*canvas*", "--engine", "scripted"])
    assert "unsupported: IMAGE output" in table.stdout
    assert "from configuration; no server asked" in table.stdout


@pytest.mark.parametrize(("model_id", "modality"), sorted(IMAGE_AND_VIDEO.items()))
def test_invoking_them_names_the_modality(
    tools_server: ToolsServer, model_id: str, modality: str
) -> None:
    # Stability's models are served through inference profiles only (on Bedrock as here).
    identifier = f"us.{model_id}" if model_id.startswith("stability.") else model_id
    client = boto3.client(
        "bedrock-runtime",
        endpoint_url=tools_server.url,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )
    with pytest.raises(ClientError) as info:
        client.invoke_model(modelId=identifier, body=json.dumps({"taskType": "TEXT_IMAGE"}))
    error = info.value.response["Error"]
    assert error["Code"] == "ValidationException"
    assert error["Message"].startswith(f"Outcrop does not serve {modality.lower()} generation: ")
    assert f"{model_id} " in error["Message"] and f"outputs {modality}" in error["Message"]
