"""restJson1 bodies checked against botocore's input shapes (bedrock-runtime's Converse)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from outcrop.wire.errors import ValidationException
from outcrop.wire.jsonbody import (
    DEFAULT_MAX_JSON_DEPTH,
    MALFORMED_BODY,
    JsonInputError,
    load_json,
    max_json_depth,
    parse_json_body,
    set_max_json_depth,
)
from outcrop.wire.restjson import ServiceSpec

MODEL = ServiceSpec.load("bedrock-runtime").model
CONVERSE = MODEL.operation_model("Converse")
COUNT = MODEL.operation_model("CountTokens")


def error(body: Any, operation: Any = CONVERSE) -> str:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    with pytest.raises(ValidationException) as caught:
        parse_json_body(operation, raw)
    return caught.value.message


def test_valid_body_passes_and_unknown_members_are_ignored() -> None:
    body = {
        "messages": [{"role": "user", "content": [{"text": "hi"}]}],
        "inferenceConfig": {"maxTokens": 5, "temperature": 0, "topP": 1},
        "additionalModelRequestFields": {"anything": [1, {"x": None}]},
        "somethingNew": 1,
    }
    assert parse_json_body(CONVERSE, json.dumps(body).encode()) == body
    assert parse_json_body(CONVERSE, b"") == {}


def test_not_json() -> None:
    assert error(b"{nope") == MALFORMED_BODY
    assert error(b"[1, 2]") == MALFORMED_BODY


def test_ranges_and_enums() -> None:
    message = error(
        {
            "messages": [{"role": "robot", "content": [{"text": "hi"}]}],
            "inferenceConfig": {"maxTokens": 0, "temperature": 1.5},
        }
    )
    assert message == (
        "3 validation errors detected: "
        "Value 'robot' at 'messages.1.member.role' failed to satisfy constraint: Member must "
        "satisfy enum value set: [user, assistant, system]; "
        "Value '0' at 'inferenceConfig.maxTokens' failed to satisfy constraint: Member must have "
        "value greater than or equal to 1; "
        "Value '1.5' at 'inferenceConfig.temperature' failed to satisfy constraint: Member must "
        "have value less than or equal to 1"
    )


def test_required_members_and_types() -> None:
    message = error({"messages": [{"content": "text?"}], "inferenceConfig": {"topP": "high"}})
    assert message.startswith("3 validation errors detected: ")
    assert (
        "Value null at 'messages.1.member.role' failed to satisfy constraint: Member must not "
        "be null" in message
    )
    assert (
        "'messages.1.member.content' failed to satisfy constraint: Member must be a list" in message
    )
    assert "Value 'high' at 'inferenceConfig.topP'" in message


def test_unions_take_exactly_one_member() -> None:
    message = error({"messages": [{"role": "user", "content": [{"text": "a", "image": {}}]}]})
    assert "'messages.1.member.content.1.member'" in message
    assert error({"messages": [{"role": "user", "content": [{}]}]}).startswith("1 validation error")


def test_lengths_patterns_and_maps() -> None:
    tool = {"toolSpec": {"name": "bad name!", "inputSchema": {"json": {}}}}
    message = error(
        {
            "toolConfig": {"tools": [tool]},
            "system": [{"text": ""}],
            "requestMetadata": {},
        }
    )
    assert (
        "Value 'bad name!' at 'toolConfig.tools.1.member.toolSpec.name' failed to satisfy "
        "constraint: Member must satisfy regular expression pattern: [a-zA-Z0-9_-]+"
    ) in message
    assert (
        "Value '' at 'system.1.member.text' failed to satisfy constraint: Member must have "
        "length greater than or equal to 1" in message
    )
    assert (
        "at 'requestMetadata' failed to satisfy constraint: Member must have length greater "
        "than or equal to 1" in message
    )


def test_blobs_must_be_base64() -> None:
    message = error({"input": {"invokeModel": {"body": "***"}}}, COUNT)
    assert "'input.invokeModel.body' failed to satisfy constraint" in message
    ok = parse_json_body(COUNT, json.dumps({"input": {"invokeModel": {"body": "e30="}}}).encode())
    assert ok["input"]["invokeModel"]["body"] == "e30="


def test_count_tokens_requires_input() -> None:
    assert error({}, COUNT) == (
        "1 validation error detected: Value null at 'input' failed to satisfy constraint: "
        "Member must not be null"
    )


def deep(depth: int) -> str:
    return "[" * depth + "]" * depth


def test_the_depth_limit_is_configurable() -> None:
    assert max_json_depth() == DEFAULT_MAX_JSON_DEPTH
    assert load_json(deep(DEFAULT_MAX_JSON_DEPTH)) is not None
    with pytest.raises(JsonInputError):
        load_json(deep(DEFAULT_MAX_JSON_DEPTH + 1))
    try:
        set_max_json_depth(3)
        assert load_json('{"a": [{"b": 1}]}') == {"a": [{"b": 1}]}
        with pytest.raises(JsonInputError):
            load_json('{"a": [{"b": []}]}')
    finally:
        set_max_json_depth(DEFAULT_MAX_JSON_DEPTH)


@pytest.mark.parametrize(
    "raw",
    [b"NaN", b"[Infinity]", b"-Infinity", b"1e400", b'"\\ud800"', b'{"\\udfff": 1}', b"\xff"],
)
def test_hostile_json_is_refused(raw: bytes) -> None:
    with pytest.raises(JsonInputError):
        load_json(raw)
