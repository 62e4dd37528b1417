"""SageMaker Runtime through the JS v3 SDK (`@aws-sdk/client-sagemaker-runtime`, HTTP/1.1),
against the same `outcrop serve` and test container as the boto3 module.

Each dialect and the container passthrough, streamed and not; every modelled error as the JS
SDK raises it (with its members: OriginalStatusCode, OriginalMessage, LogStreamArn, ErrorCode);
variants, inference components, multi-container endpoints, sessions and async invocations.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.conformance.jsclient import JsRun, run_js
from tests.conformance.sagemaker_fixtures import SageMakerSetup, sagemaker

__all__ = ["sagemaker"]  # the fixture, imported for pytest

pytestmark = pytest.mark.node


def js(setup: SageMakerSetup, operation: str, endpoint: str, **command: Any) -> JsRun:
    return run_js(
        {
            "endpoint": setup.server.url,
            "operation": operation,
            "endpointName": endpoint,
            "maxAttempts": 1,
            **command,
        }
    )


def stream_bytes(run: JsRun) -> str:
    assert {e["event"] for e in run.events} == {"PayloadPart"}
    return "".join(e["value"]["Bytes"] for e in run.events)


def sse(raw: str, prefix: str = "data:") -> list[Any]:
    blocks = [b for b in raw.split("\n\n") if b]
    assert all(b.startswith(prefix) for b in blocks), raw
    return [
        "[DONE]" if b[len(prefix) :].strip() == "[DONE]" else json.loads(b[len(prefix) :])
        for b in blocks
    ]


def test_js_engine_backed_dialects(sagemaker: SageMakerSetup) -> None:
    tgi = js(sagemaker, "InvokeEndpoint", "tgi", body={"inputs": "mica schist"}).ok()
    assert tgi["output"]["Body"] == [{"generated_text": "Echo: mica schist"}]
    assert tgi["output"]["ContentType"] == "application/json"
    assert tgi["output"]["InvokedProductionVariant"] == "AllTraffic"

    streamed = js(
        sagemaker,
        "InvokeEndpointWithResponseStream",
        "tgi",
        body={"inputs": "mica schist", "stream": True},
    )
    done = streamed.ok()
    assert done["output"]["ContentType"] == "text/event-stream"
    events = sse(stream_bytes(streamed))
    assert events[-1]["generated_text"] == "Echo: mica schist"
    assert [e["index"] for e in events] == list(range(1, len(events) + 1))

    lmi = js(
        sagemaker,
        "InvokeEndpointWithResponseStream",
        "lmi",
        body={"inputs": "gneiss", "stream": True},
    )
    lines = [json.loads(line) for line in stream_bytes(lmi).splitlines()]
    assert lines[-1]["generated_text"] == "Echo: gneiss"
    assert lmi.ok()["output"]["ContentType"] == "application/jsonlines"

    chat_body = {"messages": [{"role": "user", "content": "slate"}]}
    chat = js(sagemaker, "InvokeEndpoint", "chat", body=chat_body).ok()
    assert chat["output"]["Body"]["choices"][0]["message"]["content"] == "Echo: slate"
    chunks = sse(
        stream_bytes(
            js(
                sagemaker,
                "InvokeEndpointWithResponseStream",
                "chat",
                body={**chat_body, "stream": True},
            )
        ),
        prefix="data: ",
    )
    assert chunks[-1] == "[DONE]"
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks[:-1]) == (
        "Echo: slate"
    )


def test_js_container_passthrough(sagemaker: SageMakerSetup) -> None:
    run = js(
        sagemaker,
        "InvokeEndpoint",
        "echo",
        body="5.1,3.5,1.4,0.2",
        contentType="text/csv",
        accept="application/json",
        input={"CustomAttributes": "tenant=7", "InferenceId": "js-1"},
    ).ok()
    body = run["output"]["Body"]
    assert body["body"] == "5.1,3.5,1.4,0.2"
    assert body["content_type"] == "text/csv"
    assert body["accept"] == "application/json"
    assert body["inference_id"] == "js-1"
    assert run["output"]["CustomAttributes"] == "container-saw=tenant=7"

    streamed = js(
        sagemaker,
        "InvokeEndpointWithResponseStream",
        "echo",
        body={"stream": True, "chunks": 3},
    )
    raw = stream_bytes(streamed)
    assert [json.loads(line)["part"] for line in raw.splitlines()] == [0, 1, 2]
    assert streamed.ok()["output"]["ContentType"] == "application/jsonlines"


def test_js_slow_container_streams_incrementally(sagemaker: SageMakerSetup) -> None:
    run = js(sagemaker, "InvokeEndpointWithResponseStream", "slow", body={"gap_ms": 250})
    run.ok()
    stamps = [e["t"] for e in run.events]
    assert len(stamps) == 5
    assert stamps[-1] - stamps[0] > 750


@pytest.mark.parametrize(
    ("endpoint", "error_code"),
    [("broken", "StreamBroken"), ("hangstream", "ModelInvocationTimeExceeded")],
)
def test_js_mid_stream_failures(sagemaker: SageMakerSetup, endpoint: str, error_code: str) -> None:
    run = js(sagemaker, "InvokeEndpointWithResponseStream", endpoint, body={})
    error = run.error
    assert error is not None
    assert error["name"] == "ModelStreamError"
    assert error["ErrorCode"] == error_code
    assert run.events and all(e["event"] == "PayloadPart" for e in run.events)


def test_js_model_errors(sagemaker: SageMakerSetup) -> None:
    for operation in ("InvokeEndpoint", "InvokeEndpointWithResponseStream"):
        error = js(sagemaker, operation, "fail500", body={}).error
        assert error is not None
        assert error["name"] == "ModelError"
        assert error["$metadata"]["httpStatusCode"] == 424
        assert error["OriginalStatusCode"] == 500
        assert json.loads(error["OriginalMessage"])["code"] == 500
        assert error["LogStreamArn"].endswith(":log-group:/aws/sagemaker/Endpoints/fail500")
        assert error["$fault"] == "client"

        timeout = js(sagemaker, operation, "hang", body={}).error
        assert timeout is not None and timeout["name"] == "ModelError"
        assert "timed out" in timeout["message"]

    wrong_type = js(sagemaker, "InvokeEndpoint", "tgi", body="a,b", contentType="text/csv").error
    assert wrong_type is not None and wrong_type["OriginalStatusCode"] == 415

    not_ready = js(sagemaker, "InvokeEndpoint", "notready-js", body={}).error
    assert not_ready is not None
    assert not_ready["name"] == "ModelNotReadyException"
    assert not_ready["$metadata"]["httpStatusCode"] == 429


def test_js_validation_errors(sagemaker: SageMakerSetup) -> None:
    unknown = js(sagemaker, "InvokeEndpoint", "missing", body={}).error
    assert unknown is not None
    assert unknown["name"] == "ValidationError"
    assert unknown["message"] == "Endpoint missing of account 123456789012 not found."
    variant = js(sagemaker, "InvokeEndpoint", "ab", body={}, input={"TargetVariant": "Z"}).error
    assert variant is not None and variant["name"] == "ValidationError"
    too_big = js(sagemaker, "InvokeEndpoint", "echo", body="x" * (6 * 1024 * 1024 + 1)).error
    assert too_big is not None
    assert too_big["$metadata"]["httpStatusCode"] == 413
    component = js(sagemaker, "InvokeEndpoint", "components", body={}).error
    assert component is not None and component["name"] == "ValidationError"


def test_js_routing_and_sessions(sagemaker: SageMakerSetup) -> None:
    b = js(sagemaker, "InvokeEndpoint", "ab", body={}, input={"TargetVariant": "B"}).ok()
    assert b["output"]["InvokedProductionVariant"] == "B"
    first = js(
        sagemaker, "InvokeEndpoint", "multi", body={}, input={"TargetContainerHostname": "first"}
    ).ok()
    assert first["output"]["Body"]["instance"] == "first"
    small = js(
        sagemaker,
        "InvokeEndpoint",
        "components",
        body={"inputs": "ic"},
        input={"InferenceComponentName": "small"},
    ).ok()
    assert small["output"]["Body"] == {"generated_text": "Echo: ic"}

    opened = js(
        sagemaker,
        "InvokeEndpoint",
        "sticky",
        body={"requestType": "NEW_SESSION"},
        input={"SessionId": "NEW_SESSION"},
    ).ok()
    session_id = opened["output"]["NewSessionId"].split(";")[0]
    variant = opened["output"]["InvokedProductionVariant"]
    again = js(
        sagemaker,
        "InvokeEndpointWithResponseStream",
        "sticky",
        body={"inputs": "x", "stream": True},
        input={"SessionId": session_id},
    ).ok()
    assert again["output"]["InvokedProductionVariant"] == variant
    closed = js(
        sagemaker,
        "InvokeEndpoint",
        "sticky",
        body={"requestType": "CLOSE"},
        input={"SessionId": session_id},
    ).ok()
    assert closed["output"]["ClosedSessionId"] == session_id
    gone = js(sagemaker, "InvokeEndpoint", "sticky", body={}, input={"SessionId": session_id})
    assert gone.error is not None and gone.error["name"] == "ValidationError"


def test_js_invoke_endpoint_async(sagemaker: SageMakerSetup) -> None:
    run = js(
        sagemaker,
        "InvokeEndpointAsync",
        "lmi",
        body={"inputs": "queued"},
        input={"InferenceId": "js-async-1"},
    ).ok()
    assert run["output"]["InferenceId"] == "js-async-1"
    assert run["output"]["OutputLocation"] == (
        "s3://outcrop-sagemaker-async/lmi/output/js-async-1.out"
    )
    assert run["response"]["statusCode"] == 202
