"""Guardrails through the AWS SDK for JavaScript v3 against `outcrop serve --config`.

The runtime client speaks HTTP/2 (h2c); the control-plane client HTTP/1.1. Covers a blocked
input and a masked output (non-streaming and streaming, where every chunk carries the action
and the last one the trace), a stream blocked midway, the documented errors as SDK exceptions,
ApplyGuardrail, guardrail management with versions, and the service tier echo.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conformance.guardrail_server import (
    BLOCKED_INPUT,
    BLOCKED_OUTPUT,
    ECHO,
    GUARDRAIL_ID,
    LATE_VIOLENCE,
    PII,
    guardrail_server,
)
from tests.conformance.jsclient import run_js
from tests.support.server import ServerProcess

pytestmark = pytest.mark.node

ACTION = "amazon-bedrock-guardrailAction"
TRACE = "amazon-bedrock-trace"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with guardrail_server(tmp_path_factory.mktemp("guardrails-js")) as proc:
        yield proc


def claude(text: str, **extra: Any) -> dict[str, Any]:
    return {
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": 200,
        "messages": [{"role": "user", "content": text}],
        **extra,
    }


def guarded(**extra: Any) -> dict[str, Any]:
    return {"guardrailIdentifier": GUARDRAIL_ID, "guardrailVersion": "DRAFT", **extra}


def test_invoke_blocked_input_and_masked_output(server: ServerProcess) -> None:
    run = run_js(
        {
            "endpoint": server.url,
            "operation": "InvokeModel",
            "modelId": ECHO,
            "body": claude("you are a worthless idiot"),
            "input": guarded(trace="ENABLED"),
        }
    )
    body = run.ok()["output"]["body"]
    assert body["content"][0]["text"] == BLOCKED_INPUT and body[ACTION] == "INTERVENED"
    filters = body[TRACE]["guardrail"]["input"][GUARDRAIL_ID]["contentPolicy"]["filters"]
    assert filters[0]["type"] == "INSULTS" and filters[0]["action"] == "BLOCKED"

    run = run_js(
        {
            "endpoint": server.url,
            "operation": "InvokeModel",
            "modelId": PII,
            "body": claude("hello"),
            "input": guarded(trace="ENABLED_FULL"),
        }
    )
    body = run.ok()["output"]["body"]
    assert body["content"][0]["text"] == (
        "Sure. Write to {EMAIL} or call {PHONE}. Account {Account Number}."
    )
    assert body[TRACE]["guardrail"]["actionReason"] == "No action.\nGuardrail masked."


def test_stream_masked_and_blocked_midway(server: ServerProcess) -> None:
    run = run_js(
        {
            "endpoint": server.url,
            "operation": "InvokeModelWithResponseStream",
            "modelId": PII,
            "body": claude("hello"),
            "input": guarded(trace="ENABLED"),
        }
    )
    run.ok()
    chunks = [e["data"] for e in run.events]
    deltas = [c for c in chunks if c["type"] == "content_block_delta"]
    assert "".join(d["delta"]["text"] for d in deltas) == (
        "Sure. Write to {EMAIL} or call {PHONE}. Account {Account Number}."
    )
    assert all(ACTION in d for d in deltas)
    assert chunks[-1]["type"] == "message_stop" and chunks[-1][ACTION] == "INTERVENED"
    assert chunks[-1][TRACE]["guardrail"]["modelOutput"][0].startswith("Sure. Write to mary")

    run = run_js(
        {
            "endpoint": server.url,
            "operation": "InvokeModelWithResponseStream",
            "modelId": LATE_VIOLENCE,
            "body": claude("tell me a story"),
            "input": guarded(),
        }
    )
    run.ok()
    chunks = [e["data"] for e in run.events]
    text = "".join(c["delta"]["text"] for c in chunks if c["type"] == "content_block_delta")
    assert text.endswith(BLOCKED_OUTPUT) and "kill" not in text
    assert [c["type"] for c in chunks][-3:] == [
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]


@pytest.mark.parametrize(
    ("extra", "body", "message"),
    [
        (
            {"guardrailIdentifier": GUARDRAIL_ID},
            claude("hi"),
            "Guardrail was enabled but input is in incorrect format.",
        ),
        (
            {"guardrailIdentifier": "nosuchguardrail", "guardrailVersion": "DRAFT"},
            claude("hi"),
            "The guardrail identifier or version provided in the request does not exist.",
        ),
        (
            {},
            claude("hi", **{"amazon-bedrock-guardrailConfig": {"tagSuffix": "x"}}),
            'Malformed input request: #: subject must not be valid against schema {"required":'
            '["messages"]}#: extraneous key [amazon-bedrock-guardrailConfig] is not permitted, '
            "please reformat your input and try again.",
        ),
    ],
)
@pytest.mark.parametrize("operation", ["InvokeModel", "InvokeModelWithResponseStream"])
def test_documented_errors(
    server: ServerProcess, operation: str, extra: dict[str, Any], body: Any, message: str
) -> None:
    run = run_js(
        {
            "endpoint": server.url,
            "operation": operation,
            "modelId": ECHO,
            "body": body,
            "input": extra,
            "maxAttempts": 1,
        }
    )
    error = run.error
    assert error is not None
    assert (error["name"], error["message"], error["$metadata"]["httpStatusCode"]) == (
        "ValidationException",
        message,
        400,
    )


def test_apply_guardrail(server: ServerProcess) -> None:
    run = run_js(
        {
            "endpoint": server.url,
            "operation": "ApplyGuardrail",
            "input": {
                "guardrailIdentifier": GUARDRAIL_ID,
                "guardrailVersion": "1",
                "source": "INPUT",
                "content": [{"text": {"text": "My SSN is 123-45-6789"}}],
                "outputScope": "FULL",
            },
        }
    )
    output = run.ok()["output"]
    assert output["action"] == "GUARDRAIL_INTERVENED"
    assert output["outputs"] == [{"text": BLOCKED_INPUT}]
    entities = output["assessments"][0]["sensitiveInformationPolicy"]["piiEntities"]
    assert {
        "match": "123-45-6789",
        "type": "US_SOCIAL_SECURITY_NUMBER",
        "action": "BLOCKED",
        "detected": True,
    } in entities
    assert output["guardrailCoverage"] == {"textCharacters": {"guarded": 21, "total": 21}}

    missing = run_js(
        {
            "endpoint": server.url,
            "operation": "ApplyGuardrail",
            "input": {
                "guardrailIdentifier": "nosuchone",
                "guardrailVersion": "DRAFT",
                "source": "OUTPUT",
                "content": [{"text": {"text": "x"}}],
            },
        }
    )
    assert missing.error is not None and missing.error["name"] == "ResourceNotFoundException"


def test_guardrail_management(server: ServerProcess) -> None:
    def control(operation: str, **input_: Any) -> dict[str, Any]:
        run = run_js(
            {"endpoint": server.url, "service": "bedrock", "operation": operation, "input": input_}
        )
        output: dict[str, Any] = run.ok()["output"]
        return output

    created = control(
        "CreateGuardrail",
        name="js-made",
        blockedInputMessaging="JS says no.",
        blockedOutputsMessaging="JS says no again.",
        sensitiveInformationPolicyConfig={
            "piiEntitiesConfig": [{"type": "NAME", "action": "ANONYMIZE"}]
        },
    )
    gid = created["guardrailId"]
    assert created["version"] == "DRAFT" and created["createdAt"].endswith("Z")
    assert control("CreateGuardrailVersion", guardrailIdentifier=gid)["version"] == "1"
    got = control("GetGuardrail", guardrailIdentifier=gid, guardrailVersion="1")
    assert got["sensitiveInformationPolicy"]["piiEntities"][0]["type"] == "NAME"
    assert got["status"] == "READY" and got["updatedAt"].endswith("Z")
    listed = control("ListGuardrails", guardrailIdentifier=gid)["guardrails"]
    assert [g["version"] for g in listed] == ["DRAFT", "1"]

    run = run_js(
        {
            "endpoint": server.url,
            "operation": "InvokeModel",
            "modelId": ECHO,
            "body": claude("Hello, I am talking with John Smith today."),
            "input": {"guardrailIdentifier": gid, "guardrailVersion": "1"},
        }
    )
    body = run.ok()["output"]["body"]
    assert body["content"][0]["text"] == "Echo: Hello, I am talking with {NAME} today."
    control("DeleteGuardrail", guardrailIdentifier=gid)


def test_service_tier_echo(server: ServerProcess) -> None:
    run = run_js(
        {
            "endpoint": server.url,
            "operation": "InvokeModel",
            "modelId": ECHO,
            "body": claude("hi"),
            "input": {"serviceTier": "flex", "performanceConfigLatency": "optimized"},
        }
    )
    output = run.ok()["output"]
    assert output["serviceTier"] == "flex" and output["performanceConfigLatency"] == "optimized"
    assert json.dumps(output["body"]).count("Echo: hi") == 1


def test_converse_and_converse_stream(server: ServerProcess) -> None:
    messages = [{"role": "user", "content": [{"text": "you are a worthless idiot"}]}]
    run = run_js(
        {
            "endpoint": server.url,
            "operation": "Converse",
            "modelId": ECHO,
            "input": {"messages": messages, "guardrailConfig": guarded(trace="enabled_full")},
        }
    )
    output = run.ok()["output"]
    assert output["stopReason"] == "guardrail_intervened"
    assert output["output"]["message"]["content"] == [{"text": BLOCKED_INPUT}]
    filters = output["trace"]["guardrail"]["inputAssessment"][GUARDRAIL_ID]["contentPolicy"][
        "filters"
    ]
    assert {f["type"]: f["detected"] for f in filters}["INSULTS"] is True
    assert {f["type"]: f["detected"] for f in filters}["HATE"] is False  # enabled_full

    run = run_js(
        {
            "endpoint": server.url,
            "operation": "ConverseStream",
            "modelId": PII,
            "input": {
                "messages": [{"role": "user", "content": [{"text": "hello"}]}],
                "guardrailConfig": guarded(trace="enabled", streamProcessingMode="sync"),
            },
        }
    )
    run.ok()
    events = run.events
    text = "".join(e["value"]["delta"]["text"] for e in events if e["event"] == "contentBlockDelta")
    assert text == "Sure. Write to {EMAIL} or call {PHONE}. Account {Account Number}."
    assert events[-2]["event"] == "messageStop"
    assert events[-2]["value"]["stopReason"] == "guardrail_intervened"
    assert events[-1]["event"] == "metadata"
    assert events[-1]["value"]["trace"]["guardrail"]["actionReason"] == (
        "No action.\nGuardrail masked."
    )
