"""The SageMaker operations in-process: slots given back however a stream ends, internal
failures in SageMaker's shape, the signing region in ModelError's log ARN."""

from __future__ import annotations

import asyncio
import gc
import json
from collections.abc import AsyncGenerator
from typing import Any

from botocore.eventstream import EventStreamBuffer

from outcrop.app import OutcropApp
from outcrop.config import Settings
from outcrop.engines.base import ContextWindowExceeded
from outcrop.engines.scripted import ScriptedEngine
from outcrop.sagemaker.endpoints import RouteRequest
from outcrop.services.base import RequestContext, StreamResponse
from outcrop.types import Finish, GenerationEvent, GenerationRequest, StopReason
from tests.asgi_driver import call

CONFIG: dict[str, Any] = {
    "engines": {
        "default": {"type": "scripted"},
        "slow": {"type": "scripted", "text": "a b c d e f g h", "delay_ms": 20},
    },
    "sagemaker": {
        "endpoints": {
            "slow": {"variants": [{"engine": "slow", "dialect": "lmi"}]},
            "tgi": {"variants": [{"engine": "default", "dialect": "tgi"}]},
        }
    },
}
STREAM = "/endpoints/slow/invocations-response-stream"
JSON = [("Content-Type", "application/json")]


def _app() -> OutcropApp:
    return OutcropApp(Settings.model_validate(CONFIG))


def _in_flight(app: OutcropApp, endpoint: str) -> list[int]:
    route = app.sagemaker.registry.route(RouteRequest(endpoint))
    return app.sagemaker.pool(route).in_flight


async def test_client_leaving_mid_stream_gives_the_slot_back() -> None:
    app = _app()
    body = json.dumps({"inputs": "x", "stream": True}).encode()
    result = await call(app, "POST", STREAM, body, JSON, disconnect_after_chunks=2)
    assert result.status == 200 and len(result.chunks) >= 2
    assert _in_flight(app, "slow") == [0]
    # the next request is served at once (one instance, one invocation at a time)
    whole = await asyncio.wait_for(call(app, "POST", STREAM, body, JSON), 5)
    buffer = EventStreamBuffer()
    buffer.add_data(whole.body)
    lines = [json.loads(m.payload) for m in buffer]
    assert lines[-1]["generated_text"] == "a b c d e f g h"
    await app.close()


async def test_stream_never_started_gives_the_slot_back() -> None:
    app = _app()
    ctx = RequestContext(
        "r1",
        "InvokeEndpointWithResponseStream",
        {"EndpointName": "slow"},
        json.dumps({"inputs": "x", "stream": True}).encode(),
        service="sagemaker-runtime",
    )
    answer = await app.sagemaker.operations()["InvokeEndpointWithResponseStream"](ctx)
    assert isinstance(answer, StreamResponse)
    assert _in_flight(app, "slow") == [1]
    del answer
    gc.collect()
    assert _in_flight(app, "slow") == [0]
    await app.close()


async def test_unexpected_failures_are_sagemakers_internal_failure() -> None:
    app = _app()

    async def broken(invocation: Any) -> Any:
        raise RuntimeError("bug")

    route = app.sagemaker.registry.route(RouteRequest("tgi"))
    app.sagemaker.backend(route).invoke = broken  # type: ignore[method-assign]
    result = await call(app, "POST", "/endpoints/tgi/invocations", b"{}", JSON)
    assert result.status == 500
    assert result.headers["x-amzn-errortype"] == (
        "InternalFailure:http://internal.amazon.com/coral/com.amazon.sagemaker/"
    )
    assert json.loads(result.body) == {
        "Message": "An internal error occurred. Try your request again."
    }
    assert _in_flight(app, "tgi") == [0]
    await app.close()


async def test_model_error_names_the_region_the_client_signed_for() -> None:
    app = _app()
    auth = (
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20250101/eu-west-3/sagemaker/aws4_request, "
        "SignedHeaders=host, Signature=" + "0" * 64
    )
    # Auth mode open takes any well-formed signature (a malformed one is refused).
    result = await call(
        app,
        "POST",
        "/endpoints/tgi/invocations",
        b"a,b",
        [
            ("Content-Type", "text/csv"),
            ("Authorization", auth),
            ("X-Amz-Date", "20250101T000000Z"),
        ],
    )
    body = json.loads(result.body)
    assert result.status == 424 and body["OriginalStatusCode"] == 415
    assert body["LogStreamArn"].startswith("arn:aws:logs:eu-west-3:123456789012:log-group:")
    assert "https://eu-west-3.console.aws.amazon.com/cloudwatch/" in body["Message"]
    await app.close()


class _TooLong(ScriptedEngine):
    async def generate(self, request: GenerationRequest) -> AsyncGenerator[GenerationEvent, None]:
        raise ContextWindowExceeded(5000, 100, 4096)
        yield Finish(StopReason.END_TURN, 0, 0)  # pragma: no cover - makes this a generator


async def test_requests_the_model_refuses_get_the_containers_validation_answer() -> None:
    settings = Settings.model_validate(CONFIG)
    app = OutcropApp(
        settings, engines={"default": _TooLong(name="default"), "slow": ScriptedEngine()}
    )
    result = await call(
        app, "POST", "/endpoints/tgi/invocations", json.dumps({"inputs": "x"}).encode(), JSON
    )
    body = json.loads(result.body)
    assert result.status == 424 and body["OriginalStatusCode"] == 422
    assert json.loads(body["OriginalMessage"]) == {
        "error": "Input validation error: prompt of 5000 tokens plus max_tokens 100 exceeds the "
        "context window of 4096 tokens",
        "error_type": "validation",
    }
    await app.close()


async def test_endpoints_made_on_first_use_are_described_without_routes_added_at_run_time() -> None:
    app = OutcropApp(Settings.model_validate({"engines": {"default": {"type": "scripted"}}}))
    routes = dict(app.gateway.local_routes)
    missing = await call(app, "GET", "/_outcrop/endpoints/made-later")
    assert missing.status == 404
    assert json.loads(missing.body)["message"].startswith("No operation matches GET")
    invoked = await call(
        app, "POST", "/endpoints/made-later/invocations", b'{"inputs": "hi"}', JSON
    )
    assert invoked.status == 200
    described = await call(app, "GET", "/_outcrop/endpoints/made-later")
    assert described.status == 200
    assert json.loads(described.body)["EndpointName"] == "made-later"
    assert app.gateway.local_routes == routes
    await app.close()
