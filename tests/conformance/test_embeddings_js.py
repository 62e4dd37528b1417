"""Embeddings and the foundation-model catalog through the AWS SDK for JavaScript v3, against
`outcrop serve --engine scripted` as a process."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from tests.conformance.jsclient import run_js
from tests.support.server import ServerProcess

pytestmark = pytest.mark.node

QUERY = "How do I reset my password?"
PARAPHRASE = "I forgot my password and need to change it."
UNRELATED = "Basalt is an igneous rock formed from lava."


def js(server: ServerProcess, operation: str, **command: Any) -> Any:
    return run_js({"endpoint": server.url, "operation": operation, **command})


def cos(a: Any, b: Any) -> float:
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return float(x @ y / (np.linalg.norm(x) * np.linalg.norm(y)))


def test_titan_v2(scripted_server: ServerProcess) -> None:
    run = js(
        scripted_server,
        "InvokeModel",
        modelId="amazon.titan-embed-text-v2:0",
        body={"inputText": "granite", "dimensions": 512, "embeddingTypes": ["float", "binary"]},
        accept="application/json",
    )
    done = run.ok()
    body = done["output"]["body"]
    assert done["output"]["contentType"] == "application/json"
    assert len(body["embedding"]) == 512
    assert np.isclose(np.linalg.norm(body["embedding"]), 1.0, atol=1e-6)
    assert body["embeddingsByType"]["binary"] == [int(v > 0) for v in body["embedding"]]
    headers = done["response"]["headers"]
    assert headers["x-amzn-bedrock-input-token-count"] == str(body["inputTextTokenCount"])
    assert "x-amzn-bedrock-output-token-count" not in headers


def test_cohere_similarity(scripted_server: ServerProcess) -> None:
    run = js(
        scripted_server,
        "InvokeModel",
        modelId="cohere.embed-multilingual-v3",
        body={
            "texts": [QUERY, PARAPHRASE, UNRELATED],
            "input_type": "search_query",
            "embedding_types": ["float", "int8"],
        },
    )
    body = run.ok()["output"]["body"]
    assert body["response_type"] == "embeddings_by_type"
    for kind in ("float", "int8"):
        v = body["embeddings"][kind]
        assert len(v) == 3 and len(v[0]) == 1024
        assert cos(v[0], v[1]) > cos(v[0], v[2]) + 0.3


def test_streaming_an_embedding_model(scripted_server: ServerProcess) -> None:
    run = js(
        scripted_server,
        "InvokeModelWithResponseStream",
        modelId="cohere.embed-english-v3",
        body={"texts": ["x"], "input_type": "clustering"},
        maxAttempts=1,
    )
    error = run.error
    assert error is not None
    assert error["name"] == "ValidationException"
    assert error["message"] == "The model is unsupported for streaming."
    assert error["$metadata"]["httpStatusCode"] == 400


def test_malformed_body(scripted_server: ServerProcess) -> None:
    run = js(
        scripted_server,
        "InvokeModel",
        modelId="cohere.embed-english-v3",
        body={"inputText": "Titan-style body"},
        maxAttempts=1,
    )
    assert run.error is not None and run.error["name"] == "ValidationException"
    assert run.error["message"] == (
        "Malformed input request: #: required key [texts] not found#: required key "
        "[input_type] not found#: extraneous key [inputText] is not permitted, please reformat "
        "your input and try again."
    )


def test_list_and_get_foundation_models(scripted_server: ServerProcess) -> None:
    listed = js(
        scripted_server,
        "ListFoundationModels",
        service="bedrock",
        region="ap-northeast-1",
        input={"byOutputModality": "EMBEDDING", "byProvider": "Amazon"},
    ).ok()["output"]["modelSummaries"]
    found = {s["modelId"] for s in listed}
    assert {"amazon.titan-embed-text-v1", "amazon.titan-embed-text-v2:0"} <= found
    assert all(
        s["providerName"] == "Amazon" and s["outputModalities"] == ["EMBEDDING"] for s in listed
    )
    assert all(
        s["modelArn"].startswith("arn:aws:bedrock:ap-northeast-1::foundation-model/")
        for s in listed
    )
    details = js(
        scripted_server,
        "GetFoundationModel",
        service="bedrock",
        input={"modelIdentifier": "anthropic.claude-3-haiku-20240307-v1:0"},
    ).ok()["output"]["modelDetails"]
    assert details["responseStreamingSupported"] is True
    assert details["modelLifecycle"] == {"status": "ACTIVE"}
    missing = js(
        scripted_server,
        "GetFoundationModel",
        service="bedrock",
        input={"modelIdentifier": "acme.rocket-v1:0"},
        maxAttempts=1,
    )
    assert missing.error is not None
    assert missing.error["name"] == "ResourceNotFoundException"
    assert missing.error["message"] == (
        "Could not resolve the foundation model from the provided model identifier."
    )
    assert missing.error["$metadata"]["httpStatusCode"] == 404
