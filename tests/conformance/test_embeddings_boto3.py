"""Embedding models through boto3 against `outcrop serve --engine scripted` as a process.

The text engine is scripted, but embedding model IDs are always computed by the real embedding
model (all-MiniLM-L6-v2), so the vectors below carry meaning.
"""

from __future__ import annotations

import json
from typing import Any

import boto3
import numpy as np
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.support.server import ServerProcess

TITAN_V1 = "amazon.titan-embed-text-v1"
TITAN_V2 = "amazon.titan-embed-text-v2:0"
COHERE_EN = "cohere.embed-english-v3"
COHERE_ML = "cohere.embed-multilingual-v3"
COHERE_V4 = "cohere.embed-v4:0"

QUERY = "How do I reset my password?"
PARAPHRASE = "I forgot my password and need to change it."
UNRELATED = "Basalt is an igneous rock formed from lava."


def runtime(server: ServerProcess) -> Any:
    return boto3.client(
        "bedrock-runtime",
        endpoint_url=server.url,
        region_name="us-east-1",
        config=Config(retries={"max_attempts": 1, "mode": "standard"}),
    )


def invoke(
    server: ServerProcess, model_id: str, body: Any
) -> tuple[dict[str, Any], dict[str, str]]:
    response = runtime(server).invoke_model(
        modelId=model_id,
        body=json.dumps(body),
        contentType="application/json",
        accept="application/json",
    )
    return json.loads(response["body"].read()), response["ResponseMetadata"]["HTTPHeaders"]


def error_of(server: ServerProcess, model_id: str, body: str, stream: bool = False) -> ClientError:
    rt = runtime(server)
    call = rt.invoke_model_with_response_stream if stream else rt.invoke_model
    with pytest.raises(ClientError) as raised:
        call(modelId=model_id, body=body)
    return raised.value


def cos(a: Any, b: Any) -> float:
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return float(x @ y / (np.linalg.norm(x) * np.linalg.norm(y)))


# -- Titan ------------------------------------------------------------------------------------


def test_titan_g1(scripted_server: ServerProcess) -> None:
    body, headers = invoke(scripted_server, TITAN_V1, {"inputText": "hello world"})
    assert list(body) == ["embedding", "inputTextTokenCount"]
    assert len(body["embedding"]) == 1536
    assert all(isinstance(v, float) for v in body["embedding"])
    assert body["inputTextTokenCount"] == 2
    assert headers["x-amzn-bedrock-input-token-count"] == "2"
    assert "x-amzn-bedrock-output-token-count" not in headers
    assert int(headers["x-amzn-bedrock-invocation-latency"]) >= 0
    assert headers["content-type"] == "application/json"


@pytest.mark.parametrize("dimensions", [256, 512, 1024])
def test_titan_v2_dimensions_and_normalization(
    scripted_server: ServerProcess, dimensions: int
) -> None:
    body, _ = invoke(scripted_server, TITAN_V2, {"inputText": "granite", "dimensions": dimensions})
    assert list(body) == ["embedding", "inputTextTokenCount", "embeddingsByType"]
    assert len(body["embedding"]) == dimensions
    assert np.isclose(np.linalg.norm(body["embedding"]), 1.0, atol=1e-6)
    assert body["embeddingsByType"] == {"float": body["embedding"]}
    raw, _ = invoke(
        scripted_server,
        TITAN_V2,
        {"inputText": "granite", "dimensions": dimensions, "normalize": False},
    )
    assert np.linalg.norm(raw["embedding"]) > 1.5
    assert cos(raw["embedding"], body["embedding"]) > 0.999999


def test_titan_v2_binary(scripted_server: ServerProcess) -> None:
    body, _ = invoke(
        scripted_server,
        TITAN_V2,
        {"inputText": "granite", "dimensions": 512, "embeddingTypes": ["float", "binary"]},
    )
    binary = body["embeddingsByType"]["binary"]
    assert len(binary) == 512 and set(binary) <= {0, 1}
    assert binary == [int(v > 0) for v in body["embeddingsByType"]["float"]]
    only, _ = invoke(
        scripted_server, TITAN_V2, {"inputText": "granite", "embeddingTypes": ["binary"]}
    )
    assert list(only["embeddingsByType"]) == ["binary"]
    assert len(only["embedding"]) == 1024


def test_titan_similarity(scripted_server: ServerProcess) -> None:
    for model_id in (TITAN_V1, TITAN_V2):
        vecs = [
            invoke(scripted_server, model_id, {"inputText": t})[0]["embedding"]
            for t in (QUERY, PARAPHRASE, UNRELATED)
        ]
        assert cos(vecs[0], vecs[1]) > cos(vecs[0], vecs[2]) + 0.3, model_id
    # Deterministic: the same text gives the same vector.
    again = invoke(scripted_server, TITAN_V2, {"inputText": QUERY})[0]["embedding"]
    first = invoke(scripted_server, TITAN_V2, {"inputText": QUERY})[0]["embedding"]
    assert again == first


# -- Cohere -----------------------------------------------------------------------------------


@pytest.mark.parametrize("model_id", [COHERE_EN, COHERE_ML, f"us.{COHERE_EN}"])
def test_cohere_v3_floats(scripted_server: ServerProcess, model_id: str) -> None:
    texts = ["Hello World!", "goodbye cruel world!"]
    body, headers = invoke(
        scripted_server, model_id, {"texts": texts, "input_type": "search_document"}
    )
    assert list(body) == ["embeddings", "id", "response_type", "texts"]
    assert body["response_type"] == "embeddings_floats"
    assert body["id"] == headers["x-amzn-requestid"]
    assert body["texts"] == ["hello world!", "goodbye cruel world!"]
    assert np.array(body["embeddings"]).shape == (2, 1024)
    assert np.allclose(np.linalg.norm(body["embeddings"], axis=1), 1.0, atol=1e-6)
    tokens = int(headers["x-amzn-bedrock-input-token-count"])
    assert tokens >= 6
    assert "x-amzn-bedrock-output-token-count" not in headers


def test_cohere_v3_embedding_types(scripted_server: ServerProcess) -> None:
    types = ["float", "int8", "uint8", "binary", "ubinary"]
    body, _ = invoke(
        scripted_server,
        COHERE_EN,
        {
            "texts": [QUERY, PARAPHRASE, UNRELATED],
            "input_type": "search_query",
            "embedding_types": types,
        },
    )
    assert body["response_type"] == "embeddings_by_type"
    assert list(body["embeddings"]) == types
    e = {k: np.array(v) for k, v in body["embeddings"].items()}
    assert e["float"].shape == e["int8"].shape == e["uint8"].shape == (3, 1024)
    assert e["binary"].shape == e["ubinary"].shape == (3, 128)
    assert e["int8"].min() >= -128 and e["int8"].max() <= 127
    assert e["uint8"].min() >= 0 and e["uint8"].max() <= 255
    assert (e["binary"] == e["ubinary"] - 128).all()
    assert (np.unpackbits(e["ubinary"].astype(np.uint8), axis=1) == (e["float"] > 0)).all()
    # Similarity ranks survive every encoding.
    for kind in ("float", "int8"):
        v = e[kind].astype(float)
        assert cos(v[0], v[1]) > cos(v[0], v[2]) + 0.3, kind
    bits = np.unpackbits(e["ubinary"].astype(np.uint8), axis=1)
    hamming = [(bits[0] != bits[i]).sum() for i in (1, 2)]
    assert hamming[0] < hamming[1]


def test_cohere_v4(scripted_server: ServerProcess) -> None:
    body, _ = invoke(
        scripted_server,
        COHERE_V4,
        {
            "texts": [QUERY, PARAPHRASE, UNRELATED],
            "input_type": "search_query",
            "output_dimension": 512,
        },
    )
    assert body["response_type"] == "embeddings_by_type"
    floats = body["embeddings"]["float"]
    assert np.array(floats).shape == (3, 512)
    assert cos(floats[0], floats[1]) > cos(floats[0], floats[2]) + 0.3
    default, _ = invoke(scripted_server, COHERE_V4, {"texts": ["a"], "input_type": "clustering"})
    assert np.array(default["embeddings"]["float"]).shape == (1, 1536)


def test_cohere_truncation(scripted_server: ServerProcess) -> None:
    long_text = "1 " * 600  # 600 tokens in 1200 characters
    error = error_of(
        scripted_server, COHERE_EN, json.dumps({"texts": [long_text], "input_type": "clustering"})
    )
    assert error.response["Error"] == {
        "Code": "ValidationException",
        "Message": "Input is too long for requested model.",
    }
    assert error.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    for truncate in ("START", "END"):
        _, headers = invoke(
            scripted_server,
            COHERE_EN,
            {"texts": [long_text], "input_type": "clustering", "truncate": truncate},
        )
        assert headers["x-amzn-bedrock-input-token-count"] == "512"


# -- errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize("model_id", [TITAN_V1, TITAN_V2, COHERE_EN, COHERE_V4])
def test_streaming_an_embedding_model(scripted_server: ServerProcess, model_id: str) -> None:
    body = json.dumps(
        {"inputText": "x"} if "titan" in model_id else {"texts": ["x"], "input_type": "clustering"}
    )
    error = error_of(scripted_server, model_id, body, stream=True)
    assert error.response["Error"] == {
        "Code": "ValidationException",
        "Message": "The model is unsupported for streaming.",
    }
    headers = error.response["ResponseMetadata"]["HTTPHeaders"]
    assert (
        headers["x-amzn-errortype"]
        == "ValidationException:http://internal.amazon.com/coral/com.amazon.bedrock/"
    )


@pytest.mark.parametrize(
    ("model_id", "body", "message"),
    [
        (
            COHERE_EN,
            {"inputText": "Titan-style body"},
            "Malformed input request: #: required key [texts] not found#: required key "
            "[input_type] not found#: extraneous key [inputText] is not permitted, please "
            "reformat your input and try again.",
        ),
        (
            TITAN_V1,
            {"inputText": "x", "textGenerationConfig": {"maxTokenCount": 5}},
            "Malformed input request: extraneous key [textGenerationConfig] is not permitted, "
            "please reformat your input and try again.",
        ),
        (
            TITAN_V2,
            {"inputText": "x", "dimensions": 300},
            "Malformed input request: 300 is not a valid enum value, please reformat your input "
            "and try again.",
        ),
        (
            COHERE_EN,
            {"texts": ["x" * 2049], "input_type": "search_document", "truncate": "END"},
            "Malformed input request: #/texts/0: expected maxLength: 2048, actual: 2049, please "
            "reformat your input and try again.",
        ),
    ],
)
def test_malformed_bodies(
    scripted_server: ServerProcess, model_id: str, body: Any, message: str
) -> None:
    error = error_of(scripted_server, model_id, json.dumps(body))
    assert error.response["Error"] == {"Code": "ValidationException", "Message": message}


def test_unparseable_body_and_too_many_tokens(scripted_server: ServerProcess) -> None:
    error = error_of(scripted_server, TITAN_V2, "{ Malformed Request Body")
    assert error.response["Error"]["Message"] == (
        "Malformed input request, please reformat your input and try again."
    )
    error = error_of(scripted_server, TITAN_V2, json.dumps({"inputText": "rock " * 9000}))
    assert error.response["Error"]["Message"] == (
        "400 Bad Request: Too many input tokens. Max input tokens: 8192, request input token "
        "count: 9000"
    )
    # The server keeps serving.
    body, _ = invoke(scripted_server, TITAN_V2, {"inputText": "still here"})
    assert len(body["embedding"]) == 1024
