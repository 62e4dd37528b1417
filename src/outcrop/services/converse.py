"""Bedrock Runtime's Converse, ConverseStream and CountTokens operations.

Each operation resolves the model identifier (Converse is model-agnostic on Bedrock: every
served text model answers it), checks the body against the service model (`wire.jsonbody`),
lets `dialects.converse` translate it, and runs the engine. Engine failures are translated by
the InvokeModel operations' own guard: before the first byte into HTTP errors, after it into
ConverseStream's exception members (the gateway turns any other error into
`internalServerException`, the stream's catch-all).

CountTokens counts a Converse input or an InvokeModel body with the served model's tokenizer
(`Engine.count_tokens`), the same count an invocation of that input reports as input tokens.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncGenerator, Mapping
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any

import orjson

from outcrop.catalog.resolver import ResolvedModel
from outcrop.dialects.converse import (
    ConverseEncoder,
    ConverseEvent,
    ConverseInput,
    assemble_output,
    parse_request,
    response_fields,
)
from outcrop.dialects.registry import DIALECTS
from outcrop.engines.base import Engine, EngineError, EngineNotReady
from outcrop.services.base import Operation, RequestContext, Response, StreamResponse
from outcrop.services.bedrock_runtime import (
    BedrockRuntime,
    _first_event,
    _guarded,
    _provider_model_name,
    decode_json_body,
    translate_engine_error,
)
from outcrop.types import Finish, GenerationEvent, GenerationRequest, TokenEvent, ToolCallEvent
from outcrop.wire import eventstream
from outcrop.wire.errors import (
    ModelErrorException,
    ModelStreamErrorException,
    NotImplementedYet,
    ServiceUnavailableException,
    ValidationException,
)
from outcrop.wire.jsonbody import parse_json_body
from outcrop.wire.restjson import ServiceSpec

NOT_A_CHAT_MODEL = (
    "This action doesn't support the model that you provided. Try again with a supported text "
    "or chat model."
)
"""Converse on an embedding model (wording unverified)."""


@dataclass(frozen=True, slots=True)
class _Prepared:
    resolved: ResolvedModel
    engine: Engine
    parsed: ConverseInput

    @property
    def request(self) -> GenerationRequest:
        return self.parsed.request


class ConverseOperations:
    """Converse, ConverseStream and CountTokens, served beside InvokeModel."""

    def __init__(self, runtime: BedrockRuntime) -> None:
        self.runtime = runtime
        self.spec = ServiceSpec.load("bedrock-runtime")

    def operations(self) -> dict[str, Operation]:
        return {
            "Converse": self.converse,
            "ConverseStream": self.converse_stream,
            "CountTokens": self.count_tokens,
        }

    # -- operations --------------------------------------------------------------------------

    async def converse(self, ctx: RequestContext) -> Response:
        prepared = self._prepare(ctx)
        encoder = self._encoder(prepared)
        events = encoder.start()
        pieces: list[str] = []
        finish: Finish | None = None
        resource = prepared.resolved.model.model_id
        try:
            async with aclosing(
                _guarded(prepared.engine, prepared.request, prepared.resolved)
            ) as run:
                async for event in run:
                    if isinstance(event, Finish):
                        finish = event
                        continue
                    if ctx.record.first_byte_ms is None:
                        ctx.record.first_byte_ms = ctx.elapsed_ms()
                    events += self._encode(encoder, event, pieces)
        except ModelStreamErrorException as exc:
            # Converse has no stream: a model that fails part-way is a ModelErrorException.
            raise ModelErrorException(
                exc.message,
                original_status_code=int(exc.members.get("originalStatusCode", 500)),
                resource_name=resource,
            ) from None
        if finish is None:
            raise ModelErrorException(
                "The engine ended the generation without finishing.", resource_name=resource
            )
        events += self._finish(ctx, prepared, encoder, finish, "".join(pieces))
        body = assemble_output(events)
        data = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
        return Response(data.encode(), [("Content-Type", "application/json")])

    async def converse_stream(self, ctx: RequestContext) -> StreamResponse:
        prepared = self._prepare(ctx)
        if not prepared.resolved.model.streaming:
            raise ValidationException(
                f"The model {prepared.resolved.model.model_id} does not support streaming."
            )
        run = _guarded(prepared.engine, prepared.request, prepared.resolved)
        # The first event is awaited before the 200 goes out, so that failures before the first
        # byte (model not ready, context window, engine down) are HTTP errors, as on Bedrock.
        first = await _first_event(run)
        encoder = self._encoder(prepared)

        async def frames() -> AsyncGenerator[bytes, None]:
            pieces: list[str] = []
            async with aclosing(run):
                for kind, payload in encoder.start():
                    yield event_frame(kind, payload)
                event: GenerationEvent = first
                rest = aiter(run)
                while True:
                    if isinstance(event, Finish):
                        text = "".join(pieces)
                        for kind, payload in self._finish(ctx, prepared, encoder, event, text):
                            yield event_frame(kind, payload)
                        return
                    if ctx.record.first_byte_ms is None:
                        ctx.record.first_byte_ms = ctx.elapsed_ms()
                    for kind, payload in self._encode(encoder, event, pieces):
                        yield event_frame(kind, payload)
                    try:
                        event = await anext(rest)
                    except StopAsyncIteration:
                        raise ModelStreamErrorException(
                            "The engine ended the stream without finishing.",
                            original_status_code=500,
                        ) from None

        return StreamResponse([("Content-Type", "application/vnd.amazon.eventstream")], frames())

    async def count_tokens(self, ctx: RequestContext) -> Response:
        resolved = self.runtime.resolve(str(ctx.params["modelId"]))
        ctx.record.model_id = resolved.model.model_id
        body = parse_json_body(self.spec.model.operation_model(ctx.operation), ctx.body)
        counted = body["input"]
        if "converse" in counted:
            request = parse_request(counted["converse"], ctx.request_id).request
        else:
            dialect = DIALECTS.get(resolved.model.provider)
            if dialect is None:
                raise NotImplementedYet(
                    f"Outcrop does not serve the {resolved.model.provider_name} body format for "
                    f"{resolved.model.model_id} yet."
                )
            native = decode_json_body(base64.b64decode(counted["invokeModel"]["body"]))
            request = dialect.parse(native, ctx.request_id)
        engine = self.runtime.engines[resolved.engine]
        try:
            tokens = engine.count_tokens(request)
        except EngineNotReady as exc:
            # CountTokens models no ModelNotReadyException; a 503 is what the SDKs retry.
            raise ServiceUnavailableException(
                f"Bedrock is unable to process your request. {exc}"
            ) from None
        except EngineError as exc:
            raise translate_engine_error(
                exc, started=False, resource=resolved.model.model_id
            ) from None
        ctx.record.input_tokens = tokens
        data = json.dumps({"inputTokens": tokens}, separators=(",", ":"))
        return Response(data.encode(), [("Content-Type", "application/json")])

    # -- shared steps ------------------------------------------------------------------------

    def _prepare(self, ctx: RequestContext) -> _Prepared:
        resolved = self.runtime.resolve(str(ctx.params["modelId"]))
        ctx.record.model_id = resolved.model.model_id
        if "TEXT" not in resolved.model.output_modalities:
            raise ValidationException(NOT_A_CHAT_MODEL)
        body = parse_json_body(self.spec.model.operation_model(ctx.operation), ctx.body)
        parsed = parse_request(body, ctx.request_id)
        return _Prepared(resolved, self.runtime.engines[resolved.engine], parsed)

    @staticmethod
    def _encoder(prepared: _Prepared) -> ConverseEncoder:
        return ConverseEncoder(signs_reasoning=prepared.resolved.model.provider == "anthropic")

    @staticmethod
    def _encode(
        encoder: ConverseEncoder,
        event: TokenEvent | ToolCallEvent,
        pieces: list[str],
    ) -> list[ConverseEvent]:
        if isinstance(event, ToolCallEvent):
            return encoder.tool_call(event)
        if event.kind == "text":
            pieces.append(event.text)
        return encoder.token(event)

    def _finish(
        self,
        ctx: RequestContext,
        prepared: _Prepared,
        encoder: ConverseEncoder,
        finish: Finish,
        text: str,
    ) -> list[ConverseEvent]:
        ctx.record.input_tokens = finish.input_tokens
        ctx.record.output_tokens = finish.output_tokens
        parsed = prepared.parsed
        fields: dict[str, Any] | None = None
        if parsed.response_field_paths:
            fields = response_fields(
                self._native_response(prepared, text, finish), parsed.response_field_paths
            )
        return encoder.finish(
            finish,
            latency_ms=ctx.elapsed_ms(),
            requested_max_tokens=parsed.request.sampling.max_tokens,
            response_fields=fields,
            performance_config=parsed.performance_config,
            service_tier=parsed.service_tier,
        )

    @staticmethod
    def _native_response(prepared: _Prepared, text: str, finish: Finish) -> Mapping[str, Any]:
        """The body the model family's InvokeModel would have answered: what
        additionalModelResponseFieldPaths point into (empty for families not served yet)."""
        dialect = DIALECTS.get(prepared.resolved.model.provider)
        if dialect is None:
            return {}
        model_name = _provider_model_name(prepared.resolved)
        return dialect.response(prepared.request, model_name, text, finish)


def event_frame(kind: str, payload: Mapping[str, Any]) -> bytes:
    """One ConverseStream event frame: the payload structure plus Bedrock's `p` padding, keys
    sorted as in real traffic."""
    body = {**payload, "p": eventstream.padding()}
    return eventstream.event_frame(kind, orjson.dumps(body, option=orjson.OPT_SORT_KEYS))
