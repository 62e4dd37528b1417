"""Titan Text Embeddings and Cohere Embed bodies: validation messages and response shapes."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from outcrop.dialects.embeddings import (
    IMAGES_UNSUPPORTED,
    INPUT_TOO_LONG,
    CohereEmbeddings,
    TitanEmbeddings,
    embedding_dialect,
)
from outcrop.types import TextEmbedding
from outcrop.wire.errors import ValidationException

G1 = TitanEmbeddings(v2=False)
V2 = TitanEmbeddings(v2=True)
V3 = CohereEmbeddings(v4=False)
V4 = CohereEmbeddings(v4=True)


def native(n: int, seed: int = 3) -> list[TextEmbedding]:
    rng = np.random.default_rng(seed)
    return [TextEmbedding(tuple(rng.normal(size=384).tolist()), 4 + i) for i in range(n)]


def message(dialect: Any, body: dict[str, Any]) -> str:
    with pytest.raises(ValidationException) as raised:
        dialect.parse(body)
    return raised.value.message


# -- verbatim messages captured from Bedrock (docs/dialects.md §4) ------------------------


def test_titan_style_body_sent_to_cohere() -> None:
    assert message(V3, {"inputText": "hello"}) == (
        "Malformed input request: #: required key [texts] not found#: required key "
        "[input_type] not found#: extraneous key [inputText] is not permitted, please reformat "
        "your input and try again."
    )


def test_text_generation_config_sent_to_titan_embeddings() -> None:
    body = {"inputText": "hello", "textGenerationConfig": {"maxTokenCount": 10}}
    assert message(G1, body) == (
        "Malformed input request: extraneous key [textGenerationConfig] is not permitted, "
        "please reformat your input and try again."
    )


def test_empty_titan_input() -> None:
    assert message(V2, {"inputText": ""}) == (
        "Malformed input request: expected minLength: 1, actual: 0, please reformat your "
        "input and try again."
    )


def test_cohere_text_over_2048_characters() -> None:
    body = {"texts": ["ok", "x" * 19882], "input_type": "search_document", "truncate": "END"}
    assert message(V3, body) == (
        "Malformed input request: #/texts/1: expected maxLength: 2048, actual: 19882, please "
        "reformat your input and try again."
    )


# -- other validation ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dialect", "body", "expected"),
    [
        (V2, {"inputText": "x", "dimensions": 300}, "300 is not a valid enum value"),
        (V2, {"inputText": "x", "embeddingTypes": ["int8"]}, "int8 is not a valid enum value"),
        (V2, {"inputText": 5}, "expected type: String, found: Integer"),
        (G1, {"inputText": "x", "dimensions": 256}, "extraneous key [dimensions] is not permitted"),
        (V2, {"inputText": "x", "normalize": "yes", "dimensions": 3}, "2 schema violations found"),
        (
            V3,
            {"texts": ["a"], "input_type": "query"},
            "#/input_type: query is not a valid enum value",
        ),
        (V3, {"texts": ["a"], "input_type": "clustering", "truncate": "LEFT"}, "#/truncate: LEFT"),
        (V3, {"texts": [1], "input_type": "clustering"}, "#/texts/0: expected type: String"),
        (
            V3,
            {"texts": ["a"] * 97, "input_type": "clustering"},
            "#/texts: expected maximum item count: 96, found: 97",
        ),
        (
            V3,
            {"texts": ["a"], "input_type": "clustering", "embedding_types": ["float", "int4"]},
            "#/embedding_types/1: int4 is not a valid enum value",
        ),
        (V4, {"texts": ["a"]}, "#: required key [input_type] not found"),
        (
            V4,
            {"texts": ["a"], "input_type": "search_query", "output_dimension": 384},
            "#/output_dimension: 384 is not a valid enum value",
        ),
    ],
)
def test_schema_violations(dialect: Any, body: dict[str, Any], expected: str) -> None:
    text = message(dialect, body)
    assert text.startswith("Malformed input request: ")
    assert text.endswith(", please reformat your input and try again.")
    assert expected in text


def test_images_are_refused() -> None:
    image = "data:image/png;base64,iVBORw0KGgo="
    assert message(V3, {"images": [image], "input_type": "image"}) == IMAGES_UNSUPPORTED
    body = {
        "input_type": "search_document",
        "inputs": [{"content": [{"type": "image_url", "image_url": image}]}],
    }
    assert message(V4, body) == IMAGES_UNSUPPORTED


def test_too_long_messages() -> None:
    assert V2.input_too_long(9875, 8192).message == (
        "400 Bad Request: Too many input tokens. Max input tokens: 8192, request input token "
        "count: 9875"
    )
    assert V3.input_too_long(600, 512).message == INPUT_TOO_LONG


# -- requests --------------------------------------------------------------------------------


def test_titan_requests() -> None:
    g1 = G1.parse({"inputText": "hello"})
    assert (g1.dimensions, g1.normalize, g1.request.texts) == (1536, False, ("hello",))
    assert (g1.request.max_input_tokens, g1.request.truncation) == (8192, "error")
    v2 = V2.parse({"inputText": "hello"})
    assert (v2.dimensions, v2.normalize, v2.types) == (1024, True, ("float",))
    v2 = V2.parse(
        {"inputText": "x", "dimensions": 256, "normalize": False, "embeddingTypes": ["binary"]}
    )
    assert (v2.dimensions, v2.normalize, v2.types) == (256, False, ("binary",))


def test_cohere_requests() -> None:
    v3 = V3.parse({"texts": ["Hello World!", "b"], "input_type": "search_document"})
    assert v3.request.texts == ("Hello World!", "b")
    assert (v3.request.max_input_tokens, v3.request.truncation) == (512, "error")
    assert (v3.dimensions, v3.normalize, v3.by_type) == (1024, True, False)
    assert (
        V3.parse({"texts": [], "input_type": "clustering", "truncate": "START"}).request.truncation
        == "drop_start"
    )
    v4 = V4.parse(
        {
            "input_type": "search_query",
            "texts": ["a"],
            "inputs": [{"content": [{"type": "text", "text": "b"}, {"type": "text", "text": "c"}]}],
            "output_dimension": 512,
            "max_tokens": 100,
            "truncate": "RIGHT",
        }
    )
    assert v4.request.texts == ("a", "b\nc")
    assert (v4.dimensions, v4.by_type, v4.types) == (512, True, ("float",))
    assert (v4.request.max_input_tokens, v4.request.truncation) == (100, "drop_end")


# -- responses -------------------------------------------------------------------------------


def test_titan_g1_response() -> None:
    plan = G1.parse({"inputText": "hello"})
    body = G1.response(plan, native(1), "rid")
    assert list(body) == ["embedding", "inputTextTokenCount"]
    assert len(body["embedding"]) == 1536 and body["inputTextTokenCount"] == 4
    assert abs(np.linalg.norm(body["embedding"]) - 1.0) > 0.5  # G1 vectors are not unit length


def test_titan_v2_response() -> None:
    plan = V2.parse({"inputText": "x", "dimensions": 512, "embeddingTypes": ["binary", "float"]})
    body = V2.response(plan, native(1), "rid")
    assert list(body) == ["embedding", "inputTextTokenCount", "embeddingsByType"]
    assert list(body["embeddingsByType"]) == ["binary", "float"]
    floats = np.array(body["embedding"])
    assert floats.shape == (512,) and np.isclose(np.linalg.norm(floats), 1.0)
    assert body["embeddingsByType"]["float"] == body["embedding"]
    assert body["embeddingsByType"]["binary"] == [int(v > 0) for v in floats]
    only_float = V2.response(V2.parse({"inputText": "x"}), native(1), "rid")
    assert list(only_float["embeddingsByType"]) == ["float"]


def test_cohere_float_response() -> None:
    plan = V3.parse(
        {"texts": ["Hello World!", "goodbye cruel world!"], "input_type": "search_document"}
    )
    body = V3.response(plan, native(2), "0e9cb5ab-1fef-46eb-8e2c-773f0f60f39d")
    assert list(body) == ["embeddings", "id", "response_type", "texts"]
    assert body["id"] == "0e9cb5ab-1fef-46eb-8e2c-773f0f60f39d"
    assert body["response_type"] == "embeddings_floats"
    assert body["texts"] == ["hello world!", "goodbye cruel world!"]
    assert np.array(body["embeddings"]).shape == (2, 1024)


def test_cohere_by_type_response() -> None:
    types = ["int8", "float", "ubinary", "binary", "uint8"]
    plan = V3.parse(
        {"texts": ["a", "b", "c"], "input_type": "classification", "embedding_types": types}
    )
    body = V3.response(plan, native(3), "rid")
    assert body["response_type"] == "embeddings_by_type"
    assert list(body["embeddings"]) == types
    shapes = {k: np.array(v).shape for k, v in body["embeddings"].items()}
    assert shapes == {
        "int8": (3, 1024),
        "float": (3, 1024),
        "ubinary": (3, 128),
        "binary": (3, 128),
        "uint8": (3, 1024),
    }
    v4 = V4.parse({"texts": ["A"], "input_type": "search_query", "output_dimension": 256})
    body = V4.response(v4, native(1), "rid")
    assert body["response_type"] == "embeddings_by_type"
    assert np.array(body["embeddings"]["float"]).shape == (1, 256)
    assert body["texts"] == ["A"]


def test_same_text_same_vector_across_families() -> None:
    [vector] = native(1)
    titan = V2.response(V2.parse({"inputText": "x"}), [vector], "r")["embedding"]
    cohere = V3.response(V3.parse({"texts": ["x"], "input_type": "search_query"}), [vector], "r")
    assert np.allclose(titan, cohere["embeddings"][0])


def test_dialect_lookup() -> None:
    assert embedding_dialect("amazon.titan-embed-text-v2:0") is not None
    assert embedding_dialect("amazon.titan-embed-text-v1:2:8k") is embedding_dialect(
        "amazon.titan-embed-text-v1"
    )
    assert embedding_dialect("cohere.embed-english-v3:0:512") is embedding_dialect(
        "cohere.embed-english-v3"
    )
    assert embedding_dialect("amazon.titan-embed-image-v1") is None
    assert embedding_dialect("anthropic.claude-3-haiku-20240307-v1:0") is None
