"""OpenAICompatEngine's I/O against a small aiohttp upstream on loopback whose answers each test
scripts: readiness, HTTP error mapping, error events mid-stream, and that closing the
generator drops the upstream connection (so a real upstream stops generating)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from tests.support.server import free_port

from outcrop.engines.base import (
    EngineError,
    EngineNotReady,
    EngineRequestError,
    EngineUnavailable,
)
from outcrop.engines.openai_compat import OpenAICompatEngine
from outcrop.types import (
    ChatMessage,
    Finish,
    GenerationEvent,
    GenerationRequest,
    SamplingParams,
    StopReason,
    TokenEvent,
    ToolCallEvent,
    ToolSpec,
)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
REQUEST = GenerationRequest((ChatMessage("user", "hi"),), SamplingParams(max_tokens=8))


def sse(payload: object) -> bytes:
    return b"data: " + json.dumps(payload).encode() + b"\n\n"


def delta(text: str, finish: str | None = None) -> bytes:
    return sse({"choices": [{"index": 0, "delta": {"content": text}, "finish_reason": finish}]})


async def _models(request: web.Request) -> web.Response:
    return web.json_response({"object": "list", "data": [{"id": "up-model"}]})


async def start_upstream(chat: Handler) -> tuple[web.AppRunner, str]:
    app = web.Application()
    app.router.add_get("/v1/models", _models)
    app.router.add_post("/v1/chat/completions", chat)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, f"http://127.0.0.1:{port}/v1"


async def ready_engine(url: str) -> AsyncIterator[OpenAICompatEngine]:
    engine = OpenAICompatEngine(url)
    task = asyncio.create_task(engine.start())
    try:
        for _ in range(100):
            if engine.health().ready:
                break
            await asyncio.sleep(0.05)
        assert engine.health().ready and engine.model == "up-model"
        yield engine
    finally:
        task.cancel()
        await engine.close()


async def collect(engine: OpenAICompatEngine) -> list[GenerationEvent]:
    return [event async for event in engine.generate(REQUEST)]


async def test_streams_tokens_with_the_upstreams_usage() -> None:
    seen: list[dict[str, object]] = []

    async def chat(request: web.Request) -> web.StreamResponse:
        seen.append(await request.json())
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for piece in (delta("Hi"), delta(" there", "stop")):
            await response.write(piece)
        await response.write(
            sse({"choices": [], "usage": {"prompt_tokens": 4, "completion_tokens": 2}})
        )
        await response.write(b"data: [DONE]\n\n")
        return response

    runner, url = await start_upstream(chat)
    try:
        async for engine in ready_engine(url):
            events = await collect(engine)
    finally:
        await runner.cleanup()
    assert events == [TokenEvent("Hi"), TokenEvent(" there"), Finish(StopReason.END_TURN, 4, 2)]
    assert seen[0]["model"] == "up-model" and seen[0]["stream"] is True


async def test_not_ready_before_the_upstream_answers_then_unavailable() -> None:
    engine = OpenAICompatEngine(f"http://127.0.0.1:{free_port()}/v1")
    with pytest.raises(EngineNotReady):
        await collect(engine)
    assert engine.health().state == "loading"
    # once it has answered, a refused connection is "unavailable", not "not ready"
    engine._answered, engine.model = True, "m"
    with pytest.raises(EngineUnavailable):
        await collect(engine)
    await engine.close()


@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        (400, {"error": {"message": "bad max_tokens"}}, EngineRequestError),
        (500, {"error": {"message": "CUDA out of memory"}}, EngineError),
    ],
)
async def test_http_errors_map_to_engine_errors(
    status: int, body: dict[str, object], error: type[EngineError]
) -> None:
    async def chat(request: web.Request) -> web.Response:
        return web.json_response(body, status=status)

    runner, url = await start_upstream(chat)
    try:
        async for engine in ready_engine(url):
            with pytest.raises(error) as caught:
                await collect(engine)
    finally:
        await runner.cleanup()
    assert type(caught.value) is error
    assert str(body["error"]["message"]) in str(caught.value)  # type: ignore[index]


async def test_error_event_mid_stream_is_an_engine_error() -> None:
    async def chat(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(delta("Hi"))
        await response.write(sse({"error": {"message": "engine died"}}))
        return response

    runner, url = await start_upstream(chat)
    events: list[GenerationEvent] = []
    try:
        async for engine in ready_engine(url):
            with pytest.raises(EngineError, match="engine died"):
                async for event in engine.generate(REQUEST):
                    events.append(event)
    finally:
        await runner.cleanup()
    assert events == [TokenEvent("Hi")]


async def test_closing_the_generator_drops_the_upstream_connection() -> None:
    gone = asyncio.Event()

    async def chat(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        try:
            for _ in range(200):
                await response.write(delta("x"))
                await asyncio.sleep(0.02)
        except (ConnectionResetError, asyncio.CancelledError):
            gone.set()
            raise
        return response

    runner, url = await start_upstream(chat)
    try:
        async for engine in ready_engine(url):
            stream = engine.generate(REQUEST)
            assert await anext(stream) == TokenEvent("x")
            await stream.aclose()
            await asyncio.wait_for(gone.wait(), timeout=3)
    finally:
        await runner.cleanup()


async def test_tool_calls_stream_as_tool_call_events() -> None:
    seen: list[dict[str, Any]] = []

    async def chat(request: web.Request) -> web.StreamResponse:
        seen.append(await request.json())
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        first = {"index": 0, "id": "call_9", "type": "function", "function": {"name": "w"}}
        rest = {"index": 0, "function": {"arguments": '{"city": "Oslo"}'}}
        for fragment, finish in ((first, None), (rest, "tool_calls")):
            choice = {"index": 0, "delta": {"tool_calls": [fragment]}, "finish_reason": finish}
            await response.write(sse({"choices": [choice]}))
        await response.write(b"data: [DONE]\n\n")
        return response

    request = GenerationRequest(
        (ChatMessage("user", "weather in Oslo?"),),
        SamplingParams(max_tokens=30),
        tools=(ToolSpec("w", "weather", {"type": "object"}),),
    )
    runner, url = await start_upstream(chat)
    try:
        async for engine in ready_engine(url):
            events = [event async for event in engine.generate(request)]
    finally:
        await runner.cleanup()
    assert seen[0]["tools"][0]["function"]["name"] == "w" and seen[0]["tool_choice"] == "auto"
    assert events[:2] == [
        ToolCallEvent("call_9", "w", "", 0),
        ToolCallEvent("call_9", "w", '{"city": "Oslo"}', 1),
    ]
    finish = events[-1]
    assert isinstance(finish, Finish) and finish.stop_reason is StopReason.TOOL_USE


def cut_stream(pieces: list[bytes], *, abort: bool) -> Handler:
    """An upstream that streams `pieces`, then ends the body (`abort`: drops the connection
    mid-body instead) without ever sending a finish_reason."""

    async def chat(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for piece in pieces:
            await response.write(piece)
        if abort:
            assert request.transport is not None
            request.transport.close()
        return response

    return chat


async def events_until_error(handler: Handler) -> tuple[list[GenerationEvent], EngineError]:
    runner, url = await start_upstream(handler)
    events: list[GenerationEvent] = []
    try:
        async for engine in ready_engine(url):
            with pytest.raises(EngineError) as caught:
                async for event in engine.generate(REQUEST):
                    events.append(event)
    finally:
        await runner.cleanup()
    return events, caught.value


@pytest.mark.parametrize(
    ("pieces", "abort"),
    [
        ([delta("Hi"), delta(" there")], False),  # body closed, no [DONE]
        ([delta("Hi"), delta(" there"), b"data: [DONE]\n\n"], False),  # [DONE], no finish
        ([delta("Hi"), delta(" there")], True),  # connection dropped mid-body
    ],
    ids=["closed", "done-without-finish", "dropped"],
)
async def test_a_stream_cut_after_tokens_is_a_stream_error_not_a_finish(
    pieces: list[bytes], abort: bool
) -> None:
    events, error = await events_until_error(cut_stream(pieces, abort=abort))
    assert events == [TokenEvent("Hi"), TokenEvent(" there")]  # and no Finish
    # a plain EngineError: after the first event it becomes the in-stream exception
    assert not isinstance(error, EngineUnavailable)
    assert "without a finish_reason" in str(error) or "broke off" in str(error)


@pytest.mark.parametrize(
    ("pieces", "abort"),
    [
        ([], False),
        ([b"data: [DONE]\n\n"], False),
        ([sse({"choices": [], "usage": {"prompt_tokens": 4, "completion_tokens": 0}})], False),
        ([b": keep-alive\n\n"], True),
    ],
    ids=["empty", "done-only", "usage-only", "dropped"],
)
async def test_a_stream_cut_before_any_token_is_unavailable(
    pieces: list[bytes], abort: bool
) -> None:
    events, error = await events_until_error(cut_stream(pieces, abort=abort))
    assert events == []
    assert isinstance(error, EngineUnavailable)


@pytest.mark.parametrize(
    "body",
    [
        {"choices": [{"index": 0, "message": {"content": "Hi"}}]},
        {"choices": [{"index": 0, "message": {"content": "Hi"}, "finish_reason": None}]},
        {"choices": []},
        {"id": "x"},
    ],
    ids=["no-finish", "null-finish", "no-choices", "empty"],
)
async def test_a_json_answer_without_a_finish_is_unavailable(body: dict[str, Any]) -> None:
    async def chat(request: web.Request) -> web.Response:
        return web.json_response(body)

    events, error = await events_until_error(chat)
    assert events == []  # nothing of a truncated answer is passed on
    assert isinstance(error, EngineUnavailable)


async def test_a_json_answer_with_a_finish_is_unchanged() -> None:
    async def chat(request: web.Request) -> web.Response:
        choice = {"index": 0, "message": {"content": "Hi"}, "finish_reason": "length"}
        usage = {"prompt_tokens": 3, "completion_tokens": 1}
        return web.json_response({"choices": [choice], "usage": usage})

    runner, url = await start_upstream(chat)
    try:
        async for engine in ready_engine(url):
            events = await collect(engine)
    finally:
        await runner.cleanup()
    assert events == [TokenEvent("Hi"), Finish(StopReason.MAX_TOKENS, 3, 1)]


async def test_a_json_answer_that_is_not_json_is_an_engine_error() -> None:
    async def chat(request: web.Request) -> web.Response:
        return web.Response(text="<html>gateway</html>", content_type="text/html")

    events, error = await events_until_error(chat)
    assert events == [] and "malformed" in str(error)
