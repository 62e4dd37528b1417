"""InvokeModel and InvokeModelWithResponseStream through boto3 (HTTP/1.1) and aiobotocore,
against `outcrop serve` started as a process on the scripted engine."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import aiobotocore.session
import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, EventStreamError

from tests.conformance.conftest import APP_PROFILE, BROKEN, DEAD, HAIKU, SLOW
from tests.support.server import ServerProcess


def client(server: ServerProcess, **config: Any) -> Any:
    return boto3.client(
        "bedrock-runtime",
        endpoint_url=server.url,
        region_name="us-east-1",
        config=Config(retries={"max_attempts": 1, "mode": "standard"}, **config),
    )


def claude(text: str, max_tokens: int = 100, **extra: Any) -> str:
    return json.dumps(
        {
            "anthropic_version": "bedrock-2023-05-31",
            "max_tokens": max_tokens,
            "messages": [{"role": "user", "content": text}],
            **extra,
        }
    )


def stream_objects(response: dict[str, Any]) -> list[dict[str, Any]]:
    return [json.loads(event["chunk"]["bytes"]) for event in response["body"]]


@pytest.mark.parametrize(
    "model_id",
    [
        HAIKU,
        f"us.{HAIKU}",
        f"global.{HAIKU}",
        f"arn:aws:bedrock:us-east-1::foundation-model/{HAIKU}",
        f"arn:aws:bedrock:us-east-1:123456789012:inference-profile/eu.{HAIKU}",
        APP_PROFILE,
    ],
)
def test_invoke_model_every_identifier_form(invoke_server: ServerProcess, model_id: str) -> None:
    response = client(invoke_server).invoke_model(
        modelId=model_id, body=claude("granite and basalt")
    )
    body = json.loads(response["body"].read())
    assert body["content"] == [{"type": "text", "text": "Echo: granite and basalt"}]
    assert body["model"] == "claude-3-haiku-20240307"
    headers = response["ResponseMetadata"]["HTTPHeaders"]
    assert headers["x-amzn-bedrock-input-token-count"] == str(body["usage"]["input_tokens"])
    assert headers["x-amzn-bedrock-output-token-count"] == str(body["usage"]["output_tokens"])
    assert response["contentType"] == "application/json"


def test_stream_events_in_order_and_agree_with_invoke(invoke_server: ServerProcess) -> None:
    rt = client(invoke_server)
    whole = json.loads(rt.invoke_model(modelId=HAIKU, body=claude("a b c d"))["body"].read())
    response = rt.invoke_model_with_response_stream(modelId=HAIKU, body=claude("a b c d"))
    assert response["contentType"] == "application/json"
    objects = stream_objects(response)
    types = [o["type"] for o in objects]
    assert types[0] == "message_start" and types[1] == "content_block_start"
    assert set(types[2:-3]) == {"content_block_delta"}
    assert types[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    text = "".join(o["delta"]["text"] for o in objects if o["type"] == "content_block_delta")
    assert text == whole["content"][0]["text"]
    metrics = objects[-1]["amazon-bedrock-invocationMetrics"]
    assert metrics["inputTokenCount"] == whole["usage"]["input_tokens"]
    assert metrics["outputTokenCount"] == whole["usage"]["output_tokens"]
    assert objects[-2]["usage"]["output_tokens"] == whole["usage"]["output_tokens"]
    assert metrics["invocationLatency"] >= metrics["firstByteLatency"] >= 0


def test_stream_arrives_incrementally(invoke_server: ServerProcess) -> None:
    response = client(invoke_server).invoke_model_with_response_stream(
        modelId=SLOW, body=claude("x")
    )
    stamps = [time.monotonic() for _ in response["body"]]
    # ten tokens 100 ms apart: the deltas must not arrive in one burst
    assert stamps[-1] - stamps[0] > 0.6


def test_stop_sequences_and_max_tokens(invoke_server: ServerProcess) -> None:
    rt = client(invoke_server)
    cut = json.loads(rt.invoke_model(modelId=HAIKU, body=claude("a b c d", 3))["body"].read())
    assert cut["stop_reason"] == "max_tokens" and cut["usage"]["output_tokens"] == 3
    body = claude("alpha beta gamma", stop_sequences=[" gamma"])
    stopped = json.loads(rt.invoke_model(modelId=HAIKU, body=body)["body"].read())
    assert stopped["stop_reason"] == "stop_sequence"
    assert stopped["stop_sequence"] == " gamma"
    assert stopped["content"][0]["text"] == "Echo: alpha beta"


def test_validation_errors_reach_boto3_as_modelled_class(invoke_server: ServerProcess) -> None:
    rt = client(invoke_server)
    cases = [
        (HAIKU, "{oops", "Malformed input request, please reformat your input and try again."),
        ("acme.claude-unknown-v9:0", claude("x"), "The provided model identifier is invalid."),
        (HAIKU, claude("x", model="claude"), "extraneous key [model] is not permitted"),
    ]
    for model_id, body, message in cases:
        for call in (rt.invoke_model, rt.invoke_model_with_response_stream):
            with pytest.raises(rt.exceptions.ValidationException) as info:
                call(modelId=model_id, body=body)
            assert message in info.value.response["Error"]["Message"]
            assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    with pytest.raises(rt.exceptions.ValidationException) as info:
        rt.invoke_model(modelId=HAIKU, body=b"\xff\xfe", contentType="application/json")
    with pytest.raises(rt.exceptions.ValidationException) as info:
        rt.invoke_model(modelId=HAIKU, body=claude("x"), contentType="text/plain")
    assert info.value.response["Error"]["Message"] == (
        "The provided Content Type is invalid or not supported for this model"
    )
    for content_type in ("application/json; charset=utf-8", "application/JSON;charset=UTF-8"):
        with pytest.raises(rt.exceptions.ValidationException):
            rt.invoke_model(modelId=HAIKU, body=claude("x"), contentType=content_type)
    # what the JS v3 SDK sends when contentType is omitted
    ok = rt.invoke_model(modelId=HAIKU, body=claude("x"), contentType="application/octet-stream")
    assert json.loads(ok["body"].read())["type"] == "message"


def test_model_error_before_first_byte(invoke_server: ServerProcess) -> None:
    rt = client(invoke_server)
    for call in (rt.invoke_model, rt.invoke_model_with_response_stream):
        with pytest.raises(rt.exceptions.ModelErrorException) as info:
            call(modelId=DEAD, body=claude("x"))
        assert info.value.response["originalStatusCode"] == 500


def test_mid_stream_failure_is_event_stream_error(invoke_server: ServerProcess) -> None:
    response = client(invoke_server).invoke_model_with_response_stream(
        modelId=BROKEN, body=claude("x y z")
    )
    seen: list[dict[str, Any]] = []
    with pytest.raises(EventStreamError) as info:
        for event in response["body"]:
            seen.append(json.loads(event["chunk"]["bytes"]))
    assert info.value.response["Error"]["Code"] == "modelStreamErrorException"
    assert [o["type"] for o in seen][:2] == ["message_start", "content_block_start"]


def test_unserved_operation_is_a_clear_error(invoke_server: ServerProcess) -> None:
    rt = client(invoke_server)
    with pytest.raises(ClientError) as info:
        rt.start_async_invoke(
            modelId=HAIKU,
            modelInput={},
            outputDataConfig={"s3OutputDataConfig": {"s3Uri": "s3://b/k"}},
        )
    assert info.value.response["Error"]["Code"] == "NotImplementedException"
    assert "StartAsyncInvoke" in info.value.response["Error"]["Message"]


def test_concurrent_streams_do_not_mix(invoke_server: ServerProcess) -> None:
    rt = client(invoke_server, max_pool_connections=16)
    results: dict[int, str] = {}

    def one(i: int) -> None:
        response = rt.invoke_model_with_response_stream(
            modelId=HAIKU, body=claude(f"stream {i} " * 5)
        )
        results[i] = "".join(
            o["delta"]["text"]
            for o in stream_objects(response)
            if o["type"] == "content_block_delta"
        )

    threads = [threading.Thread(target=one, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == {i: "Echo: " + " ".join([f"stream {i}"] * 5) for i in range(16)}


def test_server_keeps_serving_after_a_client_disconnects(invoke_server: ServerProcess) -> None:
    rt = client(invoke_server)
    response = rt.invoke_model_with_response_stream(modelId=SLOW, body=claude("x"))
    events = iter(response["body"])
    next(events)
    response["body"].close()
    ok = json.loads(rt.invoke_model(modelId=HAIKU, body=claude("still there"))["body"].read())
    assert ok["content"][0]["text"] == "Echo: still there"


async def test_aiobotocore_invoke_and_stream(invoke_server: ServerProcess) -> None:
    session = aiobotocore.session.get_session()
    async with session.create_client(
        "bedrock-runtime", endpoint_url=invoke_server.url, region_name="us-east-1"
    ) as rt:
        response = await rt.invoke_model(modelId=HAIKU, body=claude("async rocks"))
        body = json.loads(await response["body"].read())
        assert body["content"][0]["text"] == "Echo: async rocks"
        streamed = await rt.invoke_model_with_response_stream(
            modelId=HAIKU, body=claude("async rocks")
        )
        objects = [json.loads(e["chunk"]["bytes"]) async for e in streamed["body"]]
        assert objects[-1]["type"] == "message_stop"
        text = "".join(o["delta"]["text"] for o in objects if o["type"] == "content_block_delta")
        assert text == body["content"][0]["text"]
        with pytest.raises(rt.exceptions.ValidationException):
            await rt.invoke_model(modelId="nope.nope", body=claude("x"))


def test_health_lists_models(invoke_server: ServerProcess) -> None:
    status, body = invoke_server.health()
    assert status == 200
    models = body["models"]
    assert isinstance(models, dict)
    assert models[HAIKU] == {"engine": "default", "ready": True}
    assert models[BROKEN]["engine"] == "broken"
