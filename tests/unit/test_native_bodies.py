"""Native bodies and stream chunks as `outcrop invoke` and `outcrop bench` build and read them."""

from __future__ import annotations

import json

import pytest

from outcrop.catalog.foundation import foundation_models
from outcrop.cli.native import (
    NoDefaultBody,
    StreamUsage,
    chunk_text,
    chunk_usage,
    converse_request,
    converse_usage,
    default_body,
    family,
)
from outcrop.dialects.base import InvokeCall
from outcrop.dialects.registry import DIALECTS, dialect_for


@pytest.mark.parametrize(
    ("model_id", "expected"),
    [
        ("anthropic.claude-3-haiku-20240307-v1:0", "anthropic"),
        ("us.anthropic.claude-sonnet-4-6", "anthropic"),
        ("arn:aws:bedrock:us-east-1::foundation-model/amazon.titan-tg1-large", "amazon.titan"),
        ("us.amazon.nova-lite-v1:0", "amazon.nova"),
        ("meta.llama3-8b-instruct-v1:0", "meta"),
    ],
)
def test_family(model_id: str, expected: str) -> None:
    assert family(model_id) == expected


def test_anthropic_default_body_is_accepted_by_the_claude_dialect() -> None:
    model_id = "anthropic.claude-3-haiku-20240307-v1:0"
    body = default_body(model_id, "Hi", 20, system="Be brief")
    request = DIALECTS["anthropic"].parse(body, InvokeCall("r-1", model_id, True)).request
    assert request.sampling.max_tokens == 20
    assert request.system == "Be brief"
    assert request.messages[-1].text == "Hi"


STREAMED_TEXT_MODELS = sorted(
    model_id
    for model_id, model in foundation_models().items()
    if model.streaming and "TEXT" in model.output_modalities and dialect_for(model_id) is not None
)


@pytest.mark.parametrize("model_id", STREAMED_TEXT_MODELS)
def test_every_streamed_text_model_accepts_its_default_body(model_id: str) -> None:
    dialect = dialect_for(model_id)
    assert dialect is not None
    body = default_body(model_id, "Hi there", 16, system="Be brief", temperature=0.5)
    request = dialect.parse(body, InvokeCall("r-1", model_id, True)).request
    assert request.sampling.max_tokens == 16
    assert "Hi there" in json.dumps(body)


@pytest.mark.parametrize(
    ("model_id", "limit_key"),
    [
        ("amazon.titan-text-express-v1", "textGenerationConfig"),
        ("meta.llama3-8b-instruct-v1:0", "max_gen_len"),
        ("mistral.mistral-7b-instruct-v0:2", "max_tokens"),
        ("openai.gpt-oss-20b-1:0", "max_completion_tokens"),
        ("us.amazon.nova-micro-v1:0", "inferenceConfig"),
    ],
)
def test_other_families_get_their_native_shape(model_id: str, limit_key: str) -> None:
    assert limit_key in default_body(model_id, "Hi", 16)


def test_known_family_without_default_body() -> None:
    with pytest.raises(NoDefaultBody, match="--body"):
        default_body("amazon.titan-embed-text-v2:0", "Hi", 16)


def test_unknown_provider_still_gets_a_body_for_the_server_to_judge() -> None:
    assert default_body("nobody.model-x", "Hi", 16)["max_tokens"] == 16


@pytest.mark.parametrize(
    ("chunk", "text"),
    [
        ({"type": "content_block_delta", "delta": {"type": "text_delta", "text": "a"}}, "a"),
        ({"type": "message_start", "message": {}}, None),
        ({"completion": " b", "stop_reason": None}, " b"),
        ({"outputText": "c", "index": 0}, "c"),
        ({"generation": "d", "prompt_token_count": 1}, "d"),
        ({"contentBlockDelta": {"delta": {"text": "e"}, "contentBlockIndex": 0}}, "e"),
        ({"outputs": [{"text": "f", "stop_reason": None}]}, "f"),
        ({"choices": [{"index": 0, "delta": {"content": "g"}}]}, "g"),
        ({"choices": [{"text": "h", "stop_reason": None}]}, "h"),
        ({"generations": [{"text": "i", "finish_reason": "COMPLETE"}], "id": "x"}, "i"),
    ],
)
def test_chunk_text_per_family(chunk: dict[str, object], text: str | None) -> None:
    assert chunk_text(chunk) == text


def test_usage_from_invocation_metrics_and_converse_metadata() -> None:
    metrics = {
        "inputTokenCount": 3,
        "outputTokenCount": 4,
        "invocationLatency": 50,
        "firstByteLatency": 5,
    }
    assert chunk_usage({"amazon-bedrock-invocationMetrics": metrics}) == StreamUsage(3, 4, 50, 5)
    assert chunk_usage({"type": "message_delta"}) is None
    meta = {
        "metadata": {"usage": {"inputTokens": 1, "outputTokens": 2}, "metrics": {"latencyMs": 9}}
    }
    assert converse_usage(meta) == StreamUsage(1, 2, 9, None)
    assert converse_request("Hi", 5)["inferenceConfig"] == {"maxTokens": 5}
