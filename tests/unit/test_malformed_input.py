"""Issue 13 item 9: malformed bodies get the ValidationException AWS gives, never a 500.

Each case broke the server before: a 500 InternalServerException, or an exception escaping the
app (Granian's plain-text 500 without `x-amzn-RequestId`). Driven in process through the whole
app with the scripted engine.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from outcrop.app import OutcropApp
from outcrop.config import ScriptedSettings, Settings
from outcrop.config.security import LimitsSettings
from outcrop.dialects.converse import bad_schema_message
from outcrop.engines.scripted import ScriptedEngine
from outcrop.wire.errors import AwsError
from outcrop.wire.jsonbody import DEFAULT_MAX_JSON_DEPTH, MALFORMED_BODY, set_max_json_depth
from tests.asgi_driver import Result, call

JSON = [("content-type", "application/json")]
CLAUDE = "/model/anthropic.claude-3-haiku-20240307-v1%3A0"
NOVA = "/model/amazon.nova-lite-v1%3A0"
TITAN = "/model/amazon.titan-text-express-v1"


def app() -> OutcropApp:
    settings = Settings(engines={"default": ScriptedSettings(type="scripted")})
    return OutcropApp(settings, engines={"default": ScriptedEngine()})


def claude(**extra: Any) -> dict[str, Any]:
    return {
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": 20,
        "messages": [{"role": "user", "content": "hello"}],
        **extra,
    }


def validation_message(result: Result) -> str:
    assert result.status == 400, result.body
    assert len(result.headers["x-amzn-requestid"]) == 36
    assert result.headers["x-amzn-errortype"].startswith("ValidationException:")
    message: str = json.loads(result.body)["message"]
    return message


def deep(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize(
    "raw",
    [
        # nesting: far past the limit, and just past it
        json.dumps(claude()).replace('"messages": [', f'"messages": [{deep(5000)}, '),
        json.dumps(claude(metadata={"user_id": "u"}))[:-1] + f', "x": {deep(101)}}}',
        # not JSON, though Python's json reads them
        json.dumps(claude(temperature=float("nan"))),
        json.dumps(claude(temperature=float("inf"))),
        # a number beyond a double
        json.dumps(claude(temperature=1)).replace(
            '"temperature": 1', '"temperature": 1' + "0" * 400
        ),
        # a lone surrogate (unencodable, so unanswerable)
        json.dumps(claude()).replace("hello", "\\ud800"),
        json.dumps(claude()).replace('"role"', '"ro\\udc00le"'),
    ],
)
async def test_hostile_json_is_malformed_before_any_generation(raw: str) -> None:
    result = await call(app(), "POST", f"{CLAUDE}/invoke", raw.encode(), JSON)
    assert validation_message(result) == MALFORMED_BODY


@pytest.mark.parametrize(
    ("path", "body", "expected"),
    [
        (
            f"{NOVA}/invoke",
            {
                "messages": [{"role": "user", "content": [{"text": "hi"}]}],
                "toolConfig": {"tools": [5]},
            },
            "Malformed input request: #/toolConfig/tools/0: expected type: JSONObject, found: "
            "Integer, please reformat your input and try again.",
        ),
        (
            f"{NOVA}/invoke",
            {"messages": [{"role": "user", "content": 1.5}]},
            "Malformed input request: #/messages/0/content: expected type: JSONArray, found: "
            "BigDecimal, please reformat your input and try again.",
        ),
        (
            f"{TITAN}/invoke",
            {"inputText": "hi", "textGenerationConfig": {"stopSequences": 5}},
            "Malformed input request: expected type: JSONArray, found: Integer, please reformat "
            "your input and try again.",
        ),
        (
            "/model/cohere.embed-english-v3/invoke",
            {"texts": 5, "input_type": "search_document"},
            "Malformed input request: #/texts: expected type: JSONArray, found: Integer, please "
            "reformat your input and try again.",
        ),
        (
            "/model/amazon.titan-embed-text-v2%3A0/invoke",
            {"inputText": "hi", "dimensions": 1e20},
            "Malformed input request: 100000000000000000000 is not a valid enum value, please "
            "reformat your input and try again.",
        ),
        (
            f"{CLAUDE}/invoke",
            claude(messages=[{"role": "user", "content": None}]),
            'Malformed input request: #: subject must not be valid against schema {"required":'
            '["messages"]}#/messages/0/content: expected type: JSONArray, found: Null, please '
            "reformat your input and try again.",
        ),
        (
            f"{CLAUDE}/invoke",
            claude(tools=[{"name": "f", "input_schema": {"type": "object", "properties": 5}}]),
            'Malformed input request: #: subject must not be valid against schema {"required":'
            '["messages"]}#/tools/0/input_schema/properties: expected type: JSONObject, found: '
            "Integer, please reformat your input and try again.",
        ),
        (
            f"{CLAUDE}/converse",
            {
                "messages": [{"role": "user", "content": [{"text": "hi"}]}],
                "toolConfig": {
                    "tools": [
                        {
                            "toolSpec": {
                                "name": "f",
                                "inputSchema": {"json": {"type": "object", "required": "x"}},
                            }
                        }
                    ]
                },
            },
            bad_schema_message(0),
        ),
    ],
)
async def test_wrong_types_are_the_dialects_validation_errors(
    path: str, body: dict[str, Any], expected: str
) -> None:
    result = await call(app(), "POST", path, json.dumps(body).encode(), JSON)
    assert validation_message(result) == expected


async def test_a_bad_tool_schema_is_refused_before_the_stream_starts() -> None:
    body = {
        "messages": [{"role": "user", "content": [{"text": "hi"}]}],
        "toolConfig": {
            "tools": [{"toolSpec": {"name": "f", "inputSchema": {"json": {"properties": [1]}}}}]
        },
    }
    result = await call(app(), "POST", f"{CLAUDE}/converse-stream", json.dumps(body).encode(), JSON)
    assert validation_message(result) == bad_schema_message(0)


async def test_container_bodies_get_the_containers_own_400() -> None:
    raw = b'{"inputs": "hi", "parameters": ' + deep(5000).encode() + b"}"
    result = await call(app(), "POST", "/endpoints/rocks/invocations", raw, JSON)
    assert result.status == 424  # SageMaker's ModelError: the container answered 400
    assert result.headers["x-amzn-errortype"].startswith("ModelError:")
    assert "Received client error (400)" in json.loads(result.body)["Message"]


async def test_an_error_that_cannot_be_answered_normally_still_gets_a_modelled_500(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def broken(*args: Any) -> None:
        raise UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed")

    served = app()
    monkeypatch.setattr(served.gateway, "_send_error", broken)
    result = await call(served, "POST", "/model/nope/invoke", b"{}", JSON)
    assert result.status == 500
    assert len(result.headers["x-amzn-requestid"]) == 36
    assert result.headers["x-amzn-errortype"].startswith("InternalServerException:")


def test_errors_echoing_a_lone_surrogate_still_serialize() -> None:
    status, _, body = AwsError("bad value '\ud800'").to_http()
    assert status == 500
    assert json.loads(body)["message"] == "bad value '\ud800'"


async def test_deeply_nested_request_metadata_header_is_a_validation_error() -> None:
    headers = [*JSON, ("x-amzn-bedrock-request-metadata", deep(3000))]
    result = await call(app(), "POST", f"{CLAUDE}/invoke", json.dumps(claude()).encode(), headers)
    assert result.status == 400, result.body
    assert result.headers["x-amzn-errortype"].startswith("ValidationException:")


async def test_deeply_nested_sagemaker_body_naming_a_session_request_is_not_a_500() -> None:
    raw = b'{"requestType": "NEW_SESSION", "x": ' + deep(3000).encode() + b"}"
    result = await call(app(), "POST", "/endpoints/rocks/invocations", raw, JSON)
    assert result.status == 424, result.body
    assert result.headers["x-amzn-errortype"].startswith("ModelError:")


async def test_null_members_are_absent_members() -> None:
    body = {
        "messages": [{"role": "user", "content": [{"text": "hi"}]}],
        "inferenceConfig": {"maxTokens": None, "temperature": None},
    }
    result = await call(app(), "POST", f"{CLAUDE}/converse", json.dumps(body).encode(), JSON)
    assert result.status == 200, result.body


async def test_a_server_tool_without_a_name_is_malformed() -> None:
    body = claude(tools=[{"type": "bash_20250124"}])
    result = await call(app(), "POST", f"{CLAUDE}/invoke", json.dumps(body).encode(), JSON)
    assert validation_message(result).endswith(
        "#/tools/0/name: expected type: String, found: Null, please reformat your input and "
        "try again."
    )


async def test_the_nesting_limit_comes_from_the_limits_section() -> None:
    settings = Settings(
        engines={"default": ScriptedSettings(type="scripted")},
        limits=LimitsSettings(max_json_depth=4),
    )
    try:
        served = OutcropApp(settings, engines={"default": ScriptedEngine()})
        ok = claude(metadata={"user_id": "u"})  # object > messages > message: 3 levels
        deeper = claude(messages=[{"role": "user", "content": [{"type": "text", "text": "x"}]}])
        assert (
            await call(served, "POST", f"{CLAUDE}/invoke", json.dumps(ok).encode(), JSON)
        ).status == 200
        result = await call(served, "POST", f"{CLAUDE}/invoke", json.dumps(deeper).encode(), JSON)
        assert validation_message(result) == MALFORMED_BODY
    finally:
        set_max_json_depth(DEFAULT_MAX_JSON_DEPTH)
