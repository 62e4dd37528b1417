"""Multi-model endpoints through boto3: TargetModel picks a model file under the container's
directory, loaded on first use and unloaded least-recently-used past `max_loaded_models`;
real GGUF models answer on the llama.cpp template."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config

from outcrop.engines.default_model import default_model_path
from tests.support.server import ServerProcess, running_server

CONFIG = """
[engines.default]
type = "scripted"

[engines.gguf]
type = "llamacpp"
n_ctx = 512

[sagemaker.endpoints.models]
variants = [{{ engine = "default", models_dir = "{scripted_dir}", max_loaded_models = 2 }}]

[sagemaker.endpoints.llms]
variants = [{{ engine = "gguf", models_dir = "{gguf_dir}", max_loaded_models = 1 }}]

[sagemaker.endpoints.single]
variants = [{{ engine = "default" }}]
"""


@pytest.fixture(scope="module")
def mme(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("mme")
    scripted_dir = root / "scripted"
    (scripted_dir / "team").mkdir(parents=True)
    for name in ("a.tar.gz", "b.tar.gz", "c.tar.gz", "team/d.tar.gz"):
        (scripted_dir / name).write_bytes(b"model data")
    gguf_dir = root / "gguf"
    gguf_dir.mkdir()
    source = default_model_path()  # linked, not copied: models may be symlinks
    (gguf_dir / "first.gguf").symlink_to(source)
    (gguf_dir / "second.gguf").symlink_to(source)
    config = root / "outcrop.toml"
    config.write_text(CONFIG.format(scripted_dir=scripted_dir, gguf_dir=gguf_dir))
    with running_server(["--config", str(config)], ready_timeout=300) as server:
        yield server


def runtime(server: ServerProcess) -> Any:
    return boto3.client(
        "sagemaker-runtime",
        endpoint_url=server.url,
        region_name="us-east-1",
        config=Config(retries={"total_max_attempts": 1}, proxies={}, read_timeout=120),
    )


def invoke(server: ServerProcess, endpoint: str, **extra: Any) -> dict[str, Any]:
    body = json.dumps({"inputs": "The capital of France is", "parameters": {"max_new_tokens": 8}})
    reply = runtime(server).invoke_endpoint(
        EndpointName=endpoint, ContentType="application/json", Body=body, **extra
    )
    return {"body": json.loads(reply["Body"].read()), "variant": reply["InvokedProductionVariant"]}


def container(server: ServerProcess, endpoint: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{server.url}/_outcrop/endpoints/{endpoint}", timeout=5) as r:
        (variant,) = json.loads(r.read())["ProductionVariants"]
    (found,) = variant["Outcrop"]["Containers"]
    result: dict[str, Any] = found
    return result


def test_target_models_load_on_first_use_and_the_least_recent_unloads(mme: ServerProcess) -> None:
    for target in ("a.tar.gz", "b.tar.gz", "a.tar.gz", "team/d.tar.gz"):
        answer = invoke(mme, "models", TargetModel=target)
        assert answer["body"] == [{"generated_text": "Echo: The capital of France is"}]
        assert answer["variant"] == "AllTraffic"
    state = container(mme, "models")
    # a and b loaded; a used again (most recent); d loaded and b, least recent, unloaded.
    assert state["MultiModel"] is True and state["ModelLoads"] == 3
    assert state["LoadedModels"] == ["a.tar.gz", "team/d.tar.gz"]


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        ({}, "must name a model with the TargetModel header"),
        ({"TargetModel": "missing.tar.gz"}, "no such model file"),
        ({"TargetModel": "../outcrop.toml"}, "not a relative path"),
        ({"TargetModel": "/etc/hostname"}, "not a relative path"),
    ],
)
def test_bad_target_models_are_validation_errors(
    mme: ServerProcess, extra: dict[str, str], fragment: str
) -> None:
    client = runtime(mme)
    with pytest.raises(client.exceptions.ValidationError) as info:
        client.invoke_endpoint(
            EndpointName="models", ContentType="application/json", Body=b'{"inputs": "x"}', **extra
        )
    assert fragment in info.value.response["Error"]["Message"]


def test_target_model_on_a_single_model_endpoint_is_refused(mme: ServerProcess) -> None:
    client = runtime(mme)
    with pytest.raises(client.exceptions.ValidationError) as info:
        client.invoke_endpoint(
            EndpointName="single",
            ContentType="application/json",
            Body=b'{"inputs": "x"}',
            TargetModel="a.tar.gz",
        )
    assert "is not a multi-model endpoint" in info.value.response["Error"]["Message"]


@pytest.mark.llamacpp
def test_real_gguf_models_answer_by_target(mme: ServerProcess) -> None:
    first = invoke(mme, "llms", TargetModel="first.gguf")["body"][0]["generated_text"]
    assert first.strip()
    assert container(mme, "llms")["LoadedModels"] == ["first.gguf"]
    second = invoke(mme, "llms", TargetModel="second.gguf")["body"][0]["generated_text"]
    assert second == first  # the same weights under another name
    # One model at a time: the second replaced the first.
    assert container(mme, "llms")["LoadedModels"] == ["second.gguf"]
    again = invoke(mme, "llms", TargetModel="first.gguf")["body"][0]["generated_text"]
    assert again == first  # reloaded, the same seeded answer
    assert container(mme, "llms")["ModelLoads"] == 3


def test_streaming_cannot_name_a_target_model(mme: ServerProcess) -> None:
    """InvokeEndpointWithResponseStream has no TargetModel member, so a multi-model endpoint
    cannot be streamed from (as on SageMaker)."""
    client = runtime(mme)
    with pytest.raises(client.exceptions.ValidationError) as info:
        client.invoke_endpoint_with_response_stream(
            EndpointName="models", ContentType="application/json", Body=b'{"inputs": "x"}'
        )
    assert "TargetModel" in info.value.response["Error"]["Message"]
