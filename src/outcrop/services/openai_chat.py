"""Bedrock's OpenAI-compatible Chat Completions endpoint: `POST /openai/v1/chat/completions`.

Bedrock Runtime serves OpenAI's Create chat completion API under `/openai/v1` for the models
whose InvokeModel body is the Chat Completions body (gpt-oss and the other open-weight models),
so the OpenAI SDKs work with `base_url="https://bedrock-runtime.<region>.amazonaws.com/openai/v1"`
and a Bedrock API key (docs/openai-endpoint.md). This module answers it on the same engines,
routing, authentication (bearer API keys and SigV4), policies and quotas as InvokeModel: a call
is checked as `InvokeModel` (or `InvokeModelWithResponseStream` when it streams) on its model.

The body is read by the gpt-oss dialect (dialects/openai.py, shared Chat Completions parsing),
so `messages`, `max_tokens` / `max_completion_tokens`, sampling, `stop`, `tools` /
`tool_choice`, `response_format` (structured outputs) and `reasoning_effort` mean what they mean
on InvokeModel. Answers are OpenAI's: a `chat.completion` object, or with `"stream": true`
server-sent events of `chat.completion.chunk` objects (tool calls as indexed `tool_calls`
deltas), a usage chunk when `stream_options.include_usage` is set, and `data: [DONE]`. Reasoning
goes in `message.reasoning_content` (`delta.reasoning_content`), not in `content`.

Errors are OpenAI's JSON shape, `{"error": {"message", "type", "param", "code"}}`, with the
HTTP status of the Bedrock error the call met (its name in `code`, its message as is); an error
after the first chunk is one `data: {"error": ...}` event before the stream ends. That Bedrock
words them exactly so is unverified (docs/openai-endpoint.md). A stream's events pass through the
interceptors' `wrap_stream` one server-sent event per unit (wire/stream_units.py), so stream
fault rules and the active-streams gauge apply as to InvokeModelWithResponseStream.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import AsyncGenerator, Mapping, Sequence
from contextlib import aclosing
from typing import Any, Protocol

from outcrop.dialects import chatcompletions as cc
from outcrop.dialects.base import CallIds, CompletionBuilder, InvokeCall, base62_id
from outcrop.dialects.openai import GptOssDialect, call_id, finish_reason
from outcrop.dialects.registry import dialect_for
from outcrop.invocation.pipeline import Generation
from outcrop.services.base import RequestContext, Response, StreamResponse
from outcrop.services.bedrock_runtime import BedrockRuntime
from outcrop.types import Finish, GenerationEvent, TokenEvent, ToolCallEvent
from outcrop.wire.errors import AwsError, InternalServerException, ValidationException
from outcrop.wire.stream_units import SERVER_SENT_EVENTS

PREFIX = "/openai/v1"
CHAT_COMPLETIONS = f"{PREFIX}/chat/completions"
JSON = [("Content-Type", "application/json")]
EVENT_STREAM = [("Content-Type", "text/event-stream"), ("Cache-Control", "no-cache")]

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
}


class CallHooks(Protocol):
    """What the gateway runs around every call (its interceptors' `before`, `wrap_stream` and
    `after`)."""

    async def before(self, ctx: RequestContext) -> None: ...

    def wrap_stream(
        self, ctx: RequestContext, frames: AsyncGenerator[bytes, None]
    ) -> AsyncGenerator[bytes, None]: ...

    def after(self, ctx: RequestContext) -> None: ...


def error_body(err: AwsError) -> bytes:
    """OpenAI's error object for a Bedrock error."""
    kind = _ERROR_TYPES.get(err.status, "api_error")
    return json.dumps(
        {"error": {"message": err.message, "type": kind, "param": None, "code": err.code}},
        ensure_ascii=False,
    ).encode()


def error_response(err: AwsError) -> Response:
    return Response(error_body(err), [*JSON, ("X-Amzn-ErrorType", err.code)], err.status)


def not_served(model: str) -> ValidationException:
    # Wording unverified (bedrock-mantle answers "model `<id>` isn't supported on this route").
    return ValidationException(
        f"The model {model} isn't supported by the Chat Completions API. Use InvokeModel or "
        "Converse for this model."
    )


class OpenAIChatCompletions:
    """`POST /openai/v1/chat/completions` over the Bedrock Runtime's engines."""

    def __init__(self, runtime: BedrockRuntime) -> None:
        self.runtime = runtime

    async def handle(
        self, ctx: RequestContext, hooks: Sequence[CallHooks]
    ) -> Response | StreamResponse:
        """Answer one call; every failure becomes an OpenAI error response, never an exception."""
        call = ctx
        try:
            body = _body(ctx.body)
            model = body.get("model")
            if not isinstance(model, str) or not model:
                raise ValidationException("you must provide a model parameter")
            stream = body.get("stream") is True
            operation = "InvokeModelWithResponseStream" if stream else "InvokeModel"
            call = dataclasses.replace(ctx, operation=operation, params={"modelId": model})
            for hook in hooks:
                await hook.before(call)
            if stream:
                return await self._stream(call, body, model, hooks)
            answer = await self._complete(call, body, model)
        except AwsError as err:
            call.record.failed(err)
            call.record.status = err.status
            _after(call, hooks)
            return error_response(err)
        call.record.status = answer.status
        call.record.response_body = answer.body
        _after(call, hooks)
        return answer

    async def _prepare(
        self, ctx: RequestContext, body: Mapping[str, Any], model: str, streaming: bool
    ) -> Generation:
        resolved = self.runtime.resolve(model)
        model_id = resolved.model.model_id
        ctx.record.model_id = model_id
        dialect = dialect_for(model_id)
        if not isinstance(dialect, GptOssDialect):
            raise not_served(model)
        fields = {k: v for k, v in body.items() if k not in ("model", "stream")}
        request = dialect.parse(fields, InvokeCall(ctx.request_id, model_id, streaming)).request
        return await self.runtime.invoker.start(ctx, resolved, request)

    async def _complete(self, ctx: RequestContext, body: Mapping[str, Any], model: str) -> Response:
        generation = await self._prepare(ctx, body, model, streaming=False)
        builder = CompletionBuilder()
        async with aclosing(generation.events()) as events:
            async for event in events:
                if ctx.record.first_byte_ms is None and not isinstance(event, Finish):
                    ctx.record.first_byte_ms = ctx.elapsed_ms()
                builder.add(event)
        output = builder.build()
        finish = output.finish
        ctx.record.input_tokens, ctx.record.output_tokens = (
            finish.input_tokens,
            finish.output_tokens,
        )
        ids = CallIds(call_id)
        message: dict[str, Any] = {"role": "assistant", "content": output.text}
        if output.reasoning:
            message["reasoning_content"] = output.reasoning
        if output.tool_calls:
            message["tool_calls"] = [
                {
                    "id": ids(c.call_id),
                    "type": "function",
                    "function": {"name": c.name, "arguments": c.arguments},
                }
                for c in output.tool_calls
            ]
        answer = {
            "id": completion_id(),
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "logprobs": None,
                    "finish_reason": finish_reason(finish.stop_reason),
                }
            ],
            "usage": usage(finish),
        }
        return Response(json.dumps(answer, ensure_ascii=False).encode(), list(JSON))

    async def _stream(
        self,
        ctx: RequestContext,
        body: Mapping[str, Any],
        model: str,
        hooks: Sequence[CallHooks],
    ) -> StreamResponse:
        generation = await self._prepare(ctx, body, model, streaming=True)
        options = body.get("stream_options")
        include_usage = isinstance(options, Mapping) and options.get("include_usage") is True
        events = generation.events()
        # The first event before answering 200: failures before it are HTTP errors.
        try:
            first = await anext(events)
        except StopAsyncIteration:
            await events.aclose()
            raise InternalServerException("The engine produced no output.") from None
        chunks = ChunkEncoder(model, include_usage)
        ctx.call.stream_units = SERVER_SENT_EVENTS

        async def units() -> AsyncGenerator[bytes, None]:
            event: GenerationEvent = first
            async with aclosing(events):
                while True:
                    if ctx.record.first_byte_ms is None and not isinstance(event, Finish):
                        ctx.record.first_byte_ms = ctx.elapsed_ms()
                    for chunk in chunks.encode(event):
                        yield chunk
                    if isinstance(event, Finish):
                        ctx.record.input_tokens = event.input_tokens
                        ctx.record.output_tokens = event.output_tokens
                        return
                    try:
                        event = await anext(events)
                    except StopAsyncIteration:
                        raise InternalServerException(
                            "The engine ended the stream without finishing."
                        ) from None

        # The interceptors see one server-sent event per unit, as the gateway's see event-stream
        # frames (fault injection, the active-streams gauge, the invocation log); an error they
        # or the engine raise ends the stream with an error event, a dropped connection passes
        # on to the gateway.
        wrapped = units()
        for hook in hooks:
            wrapped = hook.wrap_stream(ctx, wrapped)

        async def frames() -> AsyncGenerator[bytes, None]:
            try:
                async with aclosing(wrapped) as stream:
                    async for unit in stream:
                        yield unit
            except AwsError as err:
                ctx.record.failed(err)
                yield b"data: " + error_body(err) + b"\n\n"
            finally:
                _after(ctx, hooks)

        return StreamResponse(list(EVENT_STREAM), frames())


class ChunkEncoder:
    """Engine events → `chat.completion.chunk` server-sent events, then `[DONE]`."""

    def __init__(self, model: str, include_usage: bool) -> None:
        self.id = completion_id()
        self.created = int(time.time())
        self.model = model
        self.include_usage = include_usage
        self._started = False
        self._tool_calls = cc.ToolCallDeltas(CallIds(call_id))

    def encode(self, event: GenerationEvent) -> list[bytes]:
        out: list[bytes] = []
        if not self._started:
            self._started = True
            out.append(self._chunk({"role": "assistant", "content": ""}, None))
        if isinstance(event, TokenEvent):
            key = "reasoning_content" if event.kind == "reasoning" else "content"
            out.append(self._chunk({key: event.text}, None))
        elif isinstance(event, ToolCallEvent):
            delta = self._tool_calls.delta(event)
            if delta is not None:
                out.append(self._chunk({"tool_calls": [delta]}, None))
        else:
            out.append(self._chunk({}, finish_reason(event.stop_reason)))
            if self.include_usage:
                out.append(self._sse({**self._head(), "choices": [], "usage": usage(event)}))
            out.append(b"data: [DONE]\n\n")
        return out

    def _head(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
        }

    def _chunk(self, delta: dict[str, Any], reason: str | None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": reason}
        return self._sse({**self._head(), "choices": [choice]})

    @staticmethod
    def _sse(value: dict[str, Any]) -> bytes:
        return b"data: " + json.dumps(value, ensure_ascii=False).encode() + b"\n\n"


def completion_id() -> str:
    return base62_id("chatcmpl-", 29)


def usage(finish: Finish) -> dict[str, int]:
    return {
        "prompt_tokens": finish.input_tokens,
        "completion_tokens": finish.output_tokens,
        "total_tokens": finish.input_tokens + finish.output_tokens,
    }


def _body(raw: bytes) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        value = None
    if not isinstance(value, dict):
        # OpenAI's wording, shortened (Bedrock's is unverified).
        raise ValidationException("We could not parse the JSON body of your request.")
    return value


def _after(ctx: RequestContext, hooks: Sequence[CallHooks]) -> None:
    for hook in hooks:
        try:
            hook.after(ctx)
        except Exception:  # an interceptor's bookkeeping never fails the call
            continue
