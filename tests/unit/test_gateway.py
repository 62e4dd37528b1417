"""The gateway in-process: headers on every response, errors, streaming and disconnects."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncGenerator
from typing import Any

import pytest
from botocore.eventstream import EventStreamBuffer

from outcrop.config import ScriptedSettings, Settings
from outcrop.engines.base import Engine, EngineError, EngineNotReady
from outcrop.engines.scripted import ScriptedConfig, ScriptedEngine
from outcrop.gateway.app import OutcropApp
from outcrop.services.bedrock_runtime import INVALID_CONTENT_TYPE
from outcrop.types import (
    EngineHealth,
    Finish,
    GenerationEvent,
    GenerationRequest,
    StopReason,
    TokenEvent,
)
from tests.asgi_driver import Result, call

HAIKU = "anthropic.claude-3-haiku-20240307-v1%3A0"
JSON = [("content-type", "application/json")]


def claude(text: str = "hello there", max_tokens: int = 50) -> bytes:
    return json.dumps(
        {
            "anthropic_version": "bedrock-2023-05-31",
            "max_tokens": max_tokens,
            "messages": [{"role": "user", "content": text}],
        }
    ).encode()


class FailingEngine(Engine):
    """Fails before or after its first token, or is not ready; records aborts."""

    def __init__(self, mode: str) -> None:
        self.name = "failing"
        self.mode = mode
        self.closed = asyncio.Event()
        self.produced = 0

    def health(self) -> EngineHealth:
        ready = self.mode != "loading"
        return EngineHealth(ready=ready, state="ready" if ready else "loading")

    def count_tokens(self, request: GenerationRequest) -> int:
        return 3

    async def generate(self, request: GenerationRequest) -> AsyncGenerator[GenerationEvent, None]:
        if self.mode == "loading":
            raise EngineNotReady("loading")
        if self.mode == "before":
            raise EngineError("kaput")
        try:
            for i in range(1000):
                if self.mode == "after" and i == 2:
                    raise EngineError("died mid-way")
                self.produced += 1
                yield TokenEvent(f" t{i}")
                await asyncio.sleep(0.01)
            yield Finish(StopReason.END_TURN, 3, 1000)
        finally:
            self.closed.set()


def app_with(engine: Engine | None = None) -> OutcropApp:
    settings = Settings(engines={"default": ScriptedSettings(type="scripted")})
    return OutcropApp(settings, engines={"default": engine or ScriptedEngine()})


def error_of(result: Result) -> tuple[int, str, str]:
    return (
        result.status,
        result.headers["x-amzn-errortype"].split(":", 1)[0],
        json.loads(result.body)["message"],
    )


def frames(result: Result) -> list[Any]:
    buf = EventStreamBuffer()
    buf.add_data(result.body)
    return list(buf)


async def test_every_response_has_request_id_and_date() -> None:
    app = app_with()
    ok = await call(app, "POST", f"/model/{HAIKU}/invoke", claude(), JSON)
    bad = await call(app, "POST", "/model/nope/invoke", claude(), JSON)
    for result in (ok, bad):
        assert len(result.headers["x-amzn-requestid"]) == 36
        assert result.headers["date"].endswith(" GMT")
    assert ok.headers["x-amzn-requestid"] != bad.headers["x-amzn-requestid"]


async def test_invoke_model_headers_carry_usage() -> None:
    result = await call(app_with(), "POST", f"/model/{HAIKU}/invoke", claude("a b c"), JSON)
    assert result.status == 200
    body = json.loads(result.body)
    assert result.headers["x-amzn-bedrock-input-token-count"] == str(body["usage"]["input_tokens"])
    assert result.headers["x-amzn-bedrock-output-token-count"] == str(
        body["usage"]["output_tokens"]
    )
    assert int(result.headers["x-amzn-bedrock-invocation-latency"]) >= 0


@pytest.mark.parametrize(
    ("payload", "headers", "expected"),
    [
        (b"{not json", JSON, "Malformed input request, please reformat your input and try again."),
        (b"\xff\xfe{}", JSON, "Malformed input request, please reformat your input and try again."),
        (b"[1, 2]", JSON, "Malformed input request, please reformat your input and try again."),
        (claude(), [("content-type", "text/plain")], INVALID_CONTENT_TYPE),
        (
            claude(),
            [("content-type", "application/json; charset=utf-8")],
            INVALID_CONTENT_TYPE,
        ),
        (
            claude(),
            [("content-type", "application/json"), ("accept", "image/png")],
            "The provided accept type image/png",
        ),
    ],
)
async def test_bad_bodies_are_validation_errors(
    payload: bytes, headers: list[tuple[str, str]], expected: str
) -> None:
    app = app_with()
    result = await call(app, "POST", f"/model/{HAIKU}/invoke", payload, headers)
    status, code, message = error_of(result)
    assert (status, code) == (400, "ValidationException")
    assert message.startswith(expected)
    # and the server goes on serving
    assert (await call(app, "POST", f"/model/{HAIKU}/invoke", claude(), JSON)).status == 200


async def test_body_over_the_modelled_maximum() -> None:
    result = await call(app_with(), "POST", f"/model/{HAIKU}/invoke", b" " * 25_000_001, JSON)
    status, code, message = error_of(result)
    assert (status, code) == (400, "ValidationException")
    assert "Member must have length less than or equal to 25000000" in message


async def test_unknown_model_and_on_demand_profile_only() -> None:
    app = app_with()
    assert error_of(await call(app, "POST", "/model/acme.nothing-v1/invoke", claude(), JSON)) == (
        400,
        "ValidationException",
        "The provided model identifier is invalid.",
    )
    sonnet = "anthropic.claude-3-7-sonnet-20250219-v1:0"
    status, _, message = error_of(
        await call(app, "POST", f"/model/{sonnet}/invoke", claude(), JSON)
    )
    assert status == 400 and message.startswith(f"Invocation of model ID {sonnet} with on-demand")
    ok = await call(app, "POST", f"/model/us.{sonnet}/invoke", claude(), JSON)
    assert ok.status == 200


async def test_unknown_route_and_unserved_operation() -> None:
    app = app_with()
    assert error_of(await call(app, "GET", "/nothing"))[:2] == (404, "UnknownOperationException")
    status, code, message = error_of(await call(app, "POST", "/async-invoke", b"{}", JSON))
    assert (status, code) == (501, "NotImplementedException")
    assert "StartAsyncInvoke" in message


async def test_stream_events_in_order() -> None:
    result = await call(
        app_with(), "POST", f"/model/{HAIKU}/invoke-with-response-stream", claude("x y"), JSON
    )
    assert result.status == 200
    assert result.headers["content-type"] == "application/vnd.amazon.eventstream"
    assert result.headers["x-amzn-bedrock-content-type"] == "application/json"
    types = [
        json.loads(base64.b64decode(json.loads(m.payload)["bytes"]))["type"] for m in frames(result)
    ]
    assert types[:2] == ["message_start", "content_block_start"]
    assert types[-3:] == ["content_block_stop", "message_delta", "message_stop"]


async def test_disconnect_aborts_generation() -> None:
    engine = FailingEngine("slow")
    result = await call(
        app_with(engine),
        "POST",
        f"/model/{HAIKU}/invoke-with-response-stream",
        claude(),
        JSON,
        disconnect_after_chunks=4,
    )
    await asyncio.wait_for(engine.closed.wait(), 1)
    assert result.status == 200
    assert engine.produced < 20


async def test_model_not_ready_is_retryable_429() -> None:
    result = await call(
        app_with(FailingEngine("loading")), "POST", f"/model/{HAIKU}/invoke", claude(), JSON
    )
    assert error_of(result)[:2] == (429, "ModelNotReadyException")


async def test_engine_failure_before_first_byte_is_model_error() -> None:
    for path in ("invoke", "invoke-with-response-stream"):
        result = await call(
            app_with(FailingEngine("before")), "POST", f"/model/{HAIKU}/{path}", claude(), JSON
        )
        status, code, _ = error_of(result)
        assert (status, code) == (424, "ModelErrorException")
        assert json.loads(result.body)["originalStatusCode"] == 500


async def test_engine_failure_mid_stream_is_an_exception_frame() -> None:
    result = await call(
        app_with(FailingEngine("after")),
        "POST",
        f"/model/{HAIKU}/invoke-with-response-stream",
        claude(),
        JSON,
    )
    assert result.status == 200
    last = frames(result)[-1]
    assert last.headers[":message-type"] == "exception"
    assert last.headers[":exception-type"] == "modelStreamErrorException"
    assert json.loads(last.payload)["originalStatusCode"] == 500


async def test_health_reports_loading_then_ready() -> None:
    loading = await call(app_with(FailingEngine("loading")), "GET", "/_outcrop/health")
    assert loading.status == 503
    assert json.loads(loading.body)["status"] == "loading"
    ready = await call(app_with(ScriptedEngine(ScriptedConfig())), "GET", "/_outcrop/health")
    body = json.loads(ready.body)
    assert ready.status == 200 and body["status"] == "ready"
    assert body["models"]["anthropic.claude-3-haiku-20240307-v1:0"] == {
        "engine": "default",
        "ready": True,
    }
