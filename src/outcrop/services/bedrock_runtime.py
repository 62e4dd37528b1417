"""Amazon Bedrock Runtime operations: InvokeModel and InvokeModelWithResponseStream.

Each operation resolves the model identifier, checks the body's content type, lets the family's
dialect parse the body, runs the engine, and hands back a `Response` or `StreamResponse`.
Engine failures are translated here into Bedrock's modelled errors: before the first byte as
HTTP errors, after it as exception frames. A guardrail named in the request's headers is applied
through `services.guarded_invoke.InvokeGuard` (input before generation, output on the engine's
events, its members on the response objects); the service tier and request metadata through
`services.request_options`.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, Mapping
from contextlib import aclosing

from outcrop.catalog.modalities import unserved_message, unserved_output
from outcrop.catalog.resolver import OnDemandNotSupported, ResolvedModel, Resolver, UnknownModel
from outcrop.config import SpeechSettings
from outcrop.dialects.base import (
    Completion,
    CompletionBuilder,
    Invocation,
    InvokeCall,
    stream_events,
)
from outcrop.dialects.registry import dialect_for
from outcrop.engines.base import (
    ContextWindowExceeded,
    Engine,
    EngineError,
    EngineNotReady,
    EngineRequestError,
    EngineTimeout,
    EngineUnavailable,
)
from outcrop.engines.embeddings import BertEmbedder, EmbeddingEngine
from outcrop.guardrails.invoke import (
    UNKNOWN_GUARDRAIL,
    guardrail_headers,
    guardrail_request,
    refuse_unused_config,
)
from outcrop.guardrails.runtime import Guardrails
from outcrop.services.base import (
    Operation,
    RequestContext,
    Response,
    StreamResponse,
    admit,
    answering_engine,
)
from outcrop.services.bidirectional import BidirectionalStreaming
from outcrop.services.embeddings import EmbeddingService, is_embedding_model
from outcrop.services.guard import Guard
from outcrop.services.guarded_invoke import InvokeGuard
from outcrop.services.request_options import with_request_options
from outcrop.types import Finish, GenerationEvent, GenerationRequest, Usage
from outcrop.wire import eventstream
from outcrop.wire.errors import (
    AwsError,
    ModelErrorException,
    ModelNotReadyException,
    ModelStreamErrorException,
    ModelTimeoutException,
    NotImplementedYet,
    ServiceUnavailableException,
    ValidationException,
)
from outcrop.wire.jsonbody import decode_json_body

INVALID_MODEL = "The provided model identifier is invalid."
# AWS's documented description of ModelTimeoutException.
MODEL_TIMEOUT = (
    "The request took too long to process. Processing time exceeded the model timeout length."
)
# Verbatim from Bedrock (issue aws-samples/amazon-bedrock-client-for-mac#112).
STREAMING_UNSUPPORTED = "The model is unsupported for streaming."
JSON_TYPES = ("application/json", "*/*", "application/*")
BODY_TYPES = ("application/json", "application/octet-stream")
"""Request body types InvokeModel reads as JSON (docs/content-types.md)."""
# Verbatim from Bedrock (aws-sdk-ruby issue #3033, aws-signer-v4-dot-net issue #40).
INVALID_CONTENT_TYPE = "The provided Content Type is invalid or not supported for this model"


def on_demand_message(model_id: str) -> str:
    # Verbatim from Bedrock (typographic apostrophe included).
    return (
        f"Invocation of model ID {model_id} with on-demand throughput isn’t supported. "
        "Retry your request with the ID or ARN of an inference profile that contains this model."
    )


class BedrockRuntime:
    """The bedrock-runtime operations Outcrop serves."""

    def __init__(
        self,
        resolver: Resolver,
        engines: Mapping[str, Engine],
        embedder: EmbeddingEngine | None = None,
        speech: SpeechSettings | None = None,
        guardrails: Guardrails | None = None,
    ) -> None:
        self.resolver = resolver
        self.engines = engines
        self.embeddings = EmbeddingService(embedder if embedder is not None else BertEmbedder())
        self.bidirectional = BidirectionalStreaming(
            self.resolve, engines, speech or SpeechSettings()
        )
        self.guardrails = guardrails

    def operations(self) -> dict[str, Operation]:
        return {
            "InvokeModel": self.invoke_model,
            "InvokeModelWithResponseStream": self.invoke_model_with_response_stream,
            "InvokeModelWithBidirectionalStream": self.bidirectional.operation,
        }

    # -- operations --------------------------------------------------------------------------

    async def invoke_model(self, ctx: RequestContext) -> Response:
        target = self.resolve(str(ctx.params["modelId"]))
        if is_embedding_model(target.model):
            _check_content_type(ctx.params.get("contentType"), ctx.params.get("accept"))
            return await self.embeddings.invoke(ctx, target, decode_json_body(ctx.body))
        resolved, invocation, request, engine, guard = self._prepare(ctx, streaming=False)
        model_name = _provider_model_name(resolved)
        if guard is not None:
            request = await guard.check_input(request)
        builder = CompletionBuilder()
        first_byte_ms: int | None = None
        async with aclosing(guarded_events(engine, request, resolved, guard)) as events:
            async for event in events:
                if first_byte_ms is None and not isinstance(event, Finish):
                    first_byte_ms = ctx.elapsed_ms()
                builder.add(event)
        output = builder.build()
        finish = output.finish
        _record_usage(ctx, finish.input_tokens, finish.output_tokens, first_byte_ms)
        record_cache_usage(ctx, finish)
        body = invocation.response(output, model_name)
        if guard is not None:
            body = guard.decorate_body(
                body,
                lambda text, end: invocation.response(
                    Completion(text, output.reasoning, output.tool_calls, end), model_name
                ),
            )
        latency = ctx.elapsed_ms()
        headers = [
            ("Content-Type", "application/json"),
            *cache_headers(finish),
            ("X-Amzn-Bedrock-Invocation-Latency", str(latency)),
            ("X-Amzn-Bedrock-Output-Token-Count", str(finish.output_tokens)),
            *invocation.response_headers(output),
        ]
        headers += _echo_headers(ctx)
        return Response(json.dumps(body, ensure_ascii=False).encode(), headers)

    async def invoke_model_with_response_stream(self, ctx: RequestContext) -> StreamResponse:
        # Refused before the body is looked at (embedding models, and any other model whose
        # catalog entry says responseStreamingSupported: false).
        if not self.resolve(str(ctx.params["modelId"])).model.streaming:
            raise ValidationException(STREAMING_UNSUPPORTED)
        resolved, invocation, request, engine, guard = self._prepare(ctx, streaming=True)
        model_name = _provider_model_name(resolved)
        if guard is not None:
            request = await guard.check_input(request)
        input_tokens = count_input_tokens(engine, request, resolved.model.model_id)
        ctx.record.input_tokens = input_tokens
        events = guarded_events(engine, request, resolved, guard, input_tokens)
        # Pull the first event before answering 200, so that failures before the first byte
        # (model not ready, context window, engine down) are HTTP errors as on Bedrock.
        first = await _first_event(events)
        encoder = invocation.stream(model_name, input_tokens)
        if guard is not None:
            encoder = guard.stream_encoder(encoder)

        async def frames() -> AsyncGenerator[bytes, None]:
            first_byte_ms: int | None = None
            async with aclosing(events):
                for obj in encoder.start():
                    yield eventstream.chunk_frame(obj)
                event: GenerationEvent = first
                rest = aiter(events)
                while True:
                    if not isinstance(event, Finish):
                        if first_byte_ms is None:
                            first_byte_ms = ctx.elapsed_ms()
                            ctx.record.first_byte_ms = first_byte_ms
                        ctx.record.output_tokens = (
                            ctx.record.output_tokens or 0
                        ) + event.token_count
                        for obj in stream_events(encoder, event):
                            yield eventstream.chunk_frame(obj)
                    else:
                        total = ctx.elapsed_ms()
                        _record_usage(ctx, event.input_tokens, event.output_tokens, first_byte_ms)
                        record_cache_usage(ctx, event)
                        usage = Usage(
                            event.input_tokens,
                            event.output_tokens,
                            total,
                            first_byte_ms if first_byte_ms is not None else total,
                        )
                        for obj in encoder.finish(event, usage):
                            yield eventstream.chunk_frame(obj)
                        return
                    try:
                        event = await anext(rest)
                    except StopAsyncIteration:
                        raise ModelStreamErrorException(
                            "The engine ended the stream without finishing.",
                            original_status_code=500,
                        ) from None

        headers = [
            ("Content-Type", "application/vnd.amazon.eventstream"),
            ("X-Amzn-Bedrock-Content-Type", "application/json"),
            *_echo_headers(ctx),
        ]
        return StreamResponse(headers, frames())

    # -- shared steps ------------------------------------------------------------------------

    def _prepare(
        self, ctx: RequestContext, streaming: bool
    ) -> tuple[ResolvedModel, Invocation, GenerationRequest, Engine, InvokeGuard | None]:
        resolved = self.resolve(str(ctx.params["modelId"]))
        ctx.record.model_id = resolved.model.model_id
        unserved = unserved_output(resolved.model)
        if unserved is not None:
            raise ValidationException(unserved_message(resolved.model, unserved))
        # A guardrail's errors come first: with a non-JSON body it has its own.
        headers = guardrail_headers(ctx.params)
        if headers is not None and (
            self.guardrails is None
            or self.guardrails.resolve(headers.identifier, headers.version) is None
        ):
            raise ValidationException(UNKNOWN_GUARDRAIL)
        _check_content_type(ctx.params.get("contentType"), ctx.params.get("accept"))
        dialect = dialect_for(resolved.model.model_id)
        if dialect is None:
            raise NotImplementedYet(
                f"Outcrop does not serve the {resolved.model.provider_name} body format for "
                f"{resolved.model.model_id} yet."
            )
        body = decode_json_body(ctx.body)
        options = guardrail_request(headers, body)
        call = InvokeCall(ctx.request_id, resolved.model.model_id, streaming)
        invocation = dialect.parse(body, call)
        if options is None:
            refuse_unused_config(body)
        engine = self.engines[resolved.engine]
        request = with_request_options(ctx, invocation.request)
        admit(
            ctx,
            resolved.model.model_id,
            lambda: count_input_tokens(engine, request, resolved.model.model_id),
            request.sampling.max_tokens,
        )
        engine = answering_engine(ctx, engine)
        guard = None
        if options is not None and self.guardrails is not None:
            guard = InvokeGuard.open(self.guardrails, options, streaming=streaming)
        return resolved, invocation, request, engine, guard

    def resolve(self, identifier: str) -> ResolvedModel:
        try:
            return self.resolver.resolve(identifier)
        except OnDemandNotSupported as exc:
            raise ValidationException(on_demand_message(exc.model_id)) from None
        except UnknownModel:
            raise ValidationException(INVALID_MODEL) from None


def _check_content_type(content_type: object, accept: object) -> None:
    # Bedrock takes the body as `application/json` exactly: a charset parameter is refused
    # (requests-aws4auth issue #71), with the sentence quoted in aws-sdk-ruby issue #3033. The JS
    # v3 SDK sends `application/octet-stream` when `contentType` is omitted, and the JSON body is
    # read as such. See docs/content-types.md.
    if content_type is not None and str(content_type).strip().lower() not in BODY_TYPES:
        raise ValidationException(INVALID_CONTENT_TYPE)
    if accept is not None:
        accepted = [a.split(";", 1)[0].strip().lower() for a in str(accept).split(",")]
        if not any(a in JSON_TYPES for a in accepted):
            raise ValidationException(
                f"The provided accept type {accept} is not supported. Use application/json."
            )


def _echo_headers(ctx: RequestContext) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    latency = ctx.params.get("performanceConfigLatency")
    if latency is not None:
        out.append(("X-Amzn-Bedrock-PerformanceConfig-Latency", str(latency)))
    tier = ctx.params.get("serviceTier")
    if tier is not None:
        out.append(("X-Amzn-Bedrock-Service-Tier", str(tier)))
    return out


def _record_usage(
    ctx: RequestContext, input_tokens: int, output_tokens: int, first_byte_ms: int | None
) -> None:
    """Tell the interceptors (metrics, invocation logs) what the invocation used."""
    ctx.record.input_tokens = input_tokens
    ctx.record.output_tokens = output_tokens
    ctx.record.first_byte_ms = first_byte_ms


def cache_headers(finish: Finish) -> list[tuple[str, str]]:
    """InvokeModel's token-count headers: with a cache point, the cache read and write counts
    and, as input, only the tokens after the cache point (docs/prompt-caching.md)."""
    read, write = finish.cache_read_input_tokens, finish.cache_write_input_tokens
    if read is None or write is None:
        return [("X-Amzn-Bedrock-Input-Token-Count", str(finish.input_tokens))]
    return [
        ("X-Amzn-Bedrock-Cache-Read-Input-Token-Count", str(read)),
        ("X-Amzn-Bedrock-Cache-Write-Input-Token-Count", str(write)),
        ("X-Amzn-Bedrock-Input-Token-Count", str(finish.input_tokens - read - write)),
    ]


def record_cache_usage(ctx: RequestContext, finish: Finish) -> None:
    """Tell the interceptors what a request with a cache point read from and wrote to the
    prompt cache (docs/prompt-caching.md)."""
    ctx.record.cache_read_input_tokens = finish.cache_read_input_tokens
    ctx.record.cache_write_input_tokens = finish.cache_write_input_tokens


def _provider_model_name(resolved: ResolvedModel) -> str:
    return resolved.model.provider_model_name or resolved.model.model_id


def translate_engine_error(exc: EngineError, *, started: bool, resource: str) -> AwsError:
    """The Bedrock error for an engine failure, before (HTTP error) or after the first event
    (exception frame)."""
    if isinstance(exc, EngineTimeout):
        return ModelTimeoutException(MODEL_TIMEOUT)
    if isinstance(exc, EngineNotReady):
        return ModelNotReadyException(
            "Model is not ready for inference. Wait and try your request again."
        )
    if isinstance(exc, ContextWindowExceeded):
        return ValidationException("Input is too long for requested model.")
    if isinstance(exc, EngineRequestError):
        return ValidationException(str(exc))
    if isinstance(exc, EngineUnavailable):
        return ServiceUnavailableException(f"Bedrock is unable to process your request. {exc}")
    if started:
        return ModelStreamErrorException(
            f"The model failed while streaming: {exc}",
            original_status_code=500,
            original_message=str(exc),
        )
    return ModelErrorException(
        f"The model failed to process the request: {exc}",
        original_status_code=500,
        resource_name=resource,
    )


def guarded_events(
    engine: Engine,
    request: GenerationRequest,
    resolved: ResolvedModel,
    guard: Guard | None,
    input_tokens: int | None = None,
) -> AsyncGenerator[GenerationEvent, None]:
    """The engine's events (failures translated), through the guardrail when there is one."""
    if guard is None:
        return _guarded(engine, request, resolved)
    model_id = resolved.model.model_id
    return guard.events(
        lambda: _guarded(engine, request, resolved),
        lambda: (
            input_tokens
            if input_tokens is not None
            else count_input_tokens(engine, request, model_id)
        ),
    )


def count_input_tokens(engine: Engine, request: GenerationRequest, resource: str) -> int:
    try:
        return engine.count_tokens(request)
    except EngineError as exc:
        raise translate_engine_error(exc, started=False, resource=resource) from None


async def _guarded(
    engine: Engine, request: GenerationRequest, resolved: ResolvedModel
) -> AsyncGenerator[GenerationEvent, None]:
    """Engine events, with engine failures translated by `translate_engine_error`."""
    started = False
    try:
        async with aclosing(engine.generate(request)) as events:
            async for event in events:
                started = True
                yield event
    except EngineError as exc:
        raise translate_engine_error(
            exc, started=started, resource=resolved.model.model_id
        ) from None


async def _first_event(events: AsyncGenerator[GenerationEvent, None]) -> GenerationEvent:
    try:
        return await anext(events)
    except StopAsyncIteration:
        raise ModelErrorException(
            "The engine produced no output.", original_status_code=500
        ) from None
