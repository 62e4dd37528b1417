"""Bedrock Runtime's Converse, ConverseStream and CountTokens operations.

Each operation resolves the model identifier (Converse is model-agnostic on Bedrock: every
served text model answers it), checks the body against the service model (`wire.jsonbody`),
lets `dialects.converse` translate it, and runs it through the invocation pipeline
(`invocation.pipeline`), which translates engine failures once: before the first byte into HTTP
errors, after it into ConverseStream's exception members (the gateway turns any other error
into `internalServerException`, the stream's catch-all).

A guardrail in the body (`guardrailConfig`, guardContent blocks) is applied through
`invocation.guarded_converse.ConverseGuard`: the prompt before generation, the answer on the
engine's events, `stopReason: guardrail_intervened` and `trace` in the answer. The service tier
schedules the generation and the request metadata goes to the invocation log
(`invocation.request_options`).

CountTokens counts a Converse input or an InvokeModel body with the served model's tokenizer
(`Engine.count_tokens`), the same count an invocation of that input reports as input tokens.
"""

from __future__ import annotations

import base64
import dataclasses
import json
from collections.abc import AsyncGenerator, Mapping
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any

import orjson

from outcrop.catalog.resolver import ResolvedModel
from outcrop.dialects.base import Completion, CompletionBuilder, InvokeCall
from outcrop.dialects.converse import (
    ConverseEncoder,
    ConverseEvent,
    ConverseInput,
    assemble_output,
    parse_request,
    response_fields,
)
from outcrop.dialects.registry import dialect_for
from outcrop.dialects.structured import check_supported
from outcrop.guardrails.invoke import UNKNOWN_GUARDRAIL
from outcrop.invocation.engines import count_tokens_operation
from outcrop.invocation.guarded_converse import ConverseGuard
from outcrop.invocation.pipeline import Generation, provider_model_name
from outcrop.invocation.request_options import tier_priority
from outcrop.services.base import Operation, RequestContext, Response, StreamResponse
from outcrop.services.bedrock_runtime import STREAMING_UNSUPPORTED, BedrockRuntime
from outcrop.types import Finish, TokenEvent, ToolCallEvent
from outcrop.wire import eventstream
from outcrop.wire.errors import (
    ModelErrorException,
    ModelStreamErrorException,
    NotImplementedYet,
    ValidationException,
)
from outcrop.wire.jsonbody import decode_json_body, parse_json_body
from outcrop.wire.restjson import ServiceSpec

ANTHROPIC_VERSION = "bedrock-2023-05-31"
NOT_A_CHAT_MODEL = (
    "This action doesn't support the model that you provided. Try again with a supported text "
    "or chat model."
)
"""Converse on an embedding model (wording unverified)."""
COUNT_UNSUPPORTED = "The provided model doesn't support counting tokens."
"""CountTokens on an embedding model (wording unverified)."""


@dataclass(slots=True)
class _Generation:
    """One generation being answered: its encoder and what the engine produced so far."""

    encoder: ConverseEncoder
    output: CompletionBuilder | None = None
    """The native completion, gathered only for additionalModelResponseFieldPaths."""


@dataclass(frozen=True, slots=True)
class _Prepared:
    parsed: ConverseInput
    run: Generation
    guard: ConverseGuard | None = None

    @property
    def resolved(self) -> ResolvedModel:
        return self.run.resolved


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
        prepared = await self._prepare(ctx, streaming=False)
        generation = self._generation(prepared)
        events = generation.encoder.start()
        finish: Finish | None = None
        resource = prepared.resolved.model.model_id
        try:
            async with aclosing(prepared.run.events()) as run:
                async for event in run:
                    if isinstance(event, Finish):
                        finish = event
                    else:
                        events += self._encode(prepared.run, generation, event)
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
        events += self._finish(ctx, prepared, generation, finish)
        body = assemble_output(events)
        data = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
        return Response(data.encode(), [("Content-Type", "application/json")])

    async def converse_stream(self, ctx: RequestContext) -> StreamResponse:
        prepared = await self._prepare(ctx, streaming=True)
        if not prepared.resolved.model.streaming:
            raise ValidationException(STREAMING_UNSUPPORTED)
        # The first event is awaited before the 200 goes out, so that failures before the first
        # byte (model not ready, context window, engine down) are HTTP errors, as on Bedrock.
        run = await prepared.run.prefetch()
        generation = self._generation(prepared)

        async def frames() -> AsyncGenerator[bytes, None]:
            async with aclosing(run):
                for kind, payload in generation.encoder.start():
                    yield event_frame(kind, payload)
                async for event in run.until_finish():
                    if isinstance(event, Finish):
                        for kind, payload in self._finish(ctx, prepared, generation, event):
                            yield event_frame(kind, payload)
                    else:
                        for kind, payload in self._encode(prepared.run, generation, event):
                            yield event_frame(kind, payload)

        return StreamResponse([("Content-Type", "application/vnd.amazon.eventstream")], frames())

    async def count_tokens(self, ctx: RequestContext) -> Response:
        resolved = self.runtime.resolve(str(ctx.params["modelId"]))
        ctx.record.model_id = resolved.model.model_id
        if "TEXT" not in resolved.model.output_modalities:
            raise ValidationException(COUNT_UNSUPPORTED)
        body = parse_json_body(self.spec.model.operation_model(ctx.operation), ctx.body)
        counted = body["input"]
        if "converse" in counted:
            request = parse_request(counted["converse"], ctx.request_id).request
        else:
            dialect = dialect_for(resolved.model.model_id)
            if dialect is None:
                raise NotImplementedYet(
                    f"Outcrop does not serve the {resolved.model.provider_name} body format for "
                    f"{resolved.model.model_id} yet."
                )
            native = decode_json_body(base64.b64decode(counted["invokeModel"]["body"]))
            call = InvokeCall(ctx.request_id, resolved.model.model_id, streaming=False)
            request = dialect.parse(native, call).request
        engine = self.runtime.invoker.engine(resolved)
        tokens = count_tokens_operation(engine, request, resolved.model.model_id)
        ctx.record.input_tokens = tokens
        data = json.dumps({"inputTokens": tokens}, separators=(",", ":"))
        return Response(data.encode(), [("Content-Type", "application/json")])

    # -- shared steps ------------------------------------------------------------------------

    async def _prepare(self, ctx: RequestContext, streaming: bool) -> _Prepared:
        resolved = self.runtime.resolve(str(ctx.params["modelId"]))
        ctx.record.model_id = resolved.model.model_id
        if "TEXT" not in resolved.model.output_modalities:
            raise ValidationException(NOT_A_CHAT_MODEL)
        body = parse_json_body(self.spec.model.operation_model(ctx.operation), ctx.body)
        guard = None
        if "guardrailConfig" in body:
            if self.runtime.guardrails is None:
                raise ValidationException(UNKNOWN_GUARDRAIL)
            guard = ConverseGuard.from_body(self.runtime.guardrails, body, streaming=streaming)
        parsed = parse_request(body, ctx.request_id)
        if guard is not None:
            # Checked once the conversation is known to be valid; the model sees what the
            # guardrail lets through (masked text included).
            parsed = parse_request(await guard.check_input(body), ctx.request_id)
        if parsed.request_metadata:
            ctx.call.request_metadata = dict(parsed.request_metadata)
        priority = tier_priority((parsed.service_tier or {}).get("type"))
        if priority:
            parsed = dataclasses.replace(
                parsed, request=dataclasses.replace(parsed.request, priority=priority)
            )
        check_supported(resolved.model.model_id, parsed.request.response_schema)
        run = await self.runtime.invoker.start(ctx, resolved, parsed.request, guard)
        return _Prepared(parsed, run, guard)

    @staticmethod
    def _generation(prepared: _Prepared) -> _Generation:
        signs = prepared.resolved.model.provider == "anthropic"
        output = CompletionBuilder() if prepared.parsed.response_field_paths else None
        return _Generation(ConverseEncoder(signs_reasoning=signs), output)

    @staticmethod
    def _encode(
        run: Generation, generation: _Generation, event: TokenEvent | ToolCallEvent
    ) -> list[ConverseEvent]:
        run.output_started()
        if generation.output is not None:
            generation.output.add(event)
        if isinstance(event, ToolCallEvent):
            return generation.encoder.tool_call(event)
        return generation.encoder.token(event)

    def _finish(
        self, ctx: RequestContext, prepared: _Prepared, generation: _Generation, finish: Finish
    ) -> list[ConverseEvent]:
        prepared.run.finished(finish)
        parsed = prepared.parsed
        fields: dict[str, Any] | None = None
        if generation.output is not None:
            generation.output.add(finish)
            native = self._native_response(ctx, prepared, generation.output.build())
            fields = response_fields(native, parsed.response_field_paths)
        events = generation.encoder.finish(
            finish,
            latency_ms=ctx.elapsed_ms(),
            requested_max_tokens=parsed.request.sampling.max_tokens,
            response_fields=fields,
            performance_config=parsed.performance_config,
            service_tier=parsed.service_tier,
        )
        guard = prepared.guard
        if guard is None:
            return events
        return self._guardrail_results(ctx, prepared, guard, events)

    def _guardrail_results(
        self,
        ctx: RequestContext,
        prepared: _Prepared,
        guard: ConverseGuard,
        events: list[ConverseEvent],
    ) -> list[ConverseEvent]:
        """`stopReason: guardrail_intervened` and the `trace` in the final events. Converse's
        trace shows the model's own body as modelOutput (ConverseStream's, its text)."""
        render = None
        if not guard.streaming and prepared.resolved.model.provider == "anthropic":

            def render(text: str, end: Finish) -> Mapping[str, Any]:
                return self._native_response(ctx, prepared, Completion(text, "", (), end))

        trace = guard.trace(render)
        out: list[ConverseEvent] = []
        for kind, payload in events:
            if kind == "messageStop" and guard.stop_reason is not None:
                payload = {**payload, "stopReason": guard.stop_reason}
            elif kind == "metadata" and trace is not None:
                payload = {**payload, "trace": trace}
            out.append((kind, payload))
        return out

    @staticmethod
    def _native_response(
        ctx: RequestContext, prepared: _Prepared, output: Completion
    ) -> Mapping[str, Any]:
        """What additionalModelResponseFieldPaths point into: the model's own response body.

        For Claude (whose `/stop_sequence` is the documented example) this is the body Claude's
        InvokeModel dialect answers for the same generation. How Bedrock maps other families'
        native fields for Converse is unverified, so their paths point at nothing.
        """
        model = prepared.resolved.model
        dialect = dialect_for(model.model_id)
        if model.provider != "anthropic" or dialect is None:
            return {}
        body = {
            "anthropic_version": ANTHROPIC_VERSION,
            "max_tokens": prepared.parsed.request.sampling.max_tokens,
            "messages": [{"role": "user", "content": "."}],
        }
        invocation = dialect.parse(body, InvokeCall(ctx.request_id, model.model_id))
        return invocation.response(output, provider_model_name(prepared.resolved))


def event_frame(kind: str, payload: Mapping[str, Any]) -> bytes:
    """One ConverseStream event frame: the payload structure plus Bedrock's `p` padding, keys
    sorted as in real traffic."""
    body = {**payload, "p": eventstream.padding()}
    return eventstream.event_frame(kind, orjson.dumps(body, option=orjson.OPT_SORT_KEYS))
