"""Amazon Bedrock Runtime operations: InvokeModel and InvokeModelWithResponseStream.

Each operation parses its parameters and body (the family's dialect), hands the call to the
invocation pipeline (`invocation.pipeline`: the model resolved once, the call admitted, the
engine picked, engine failures translated into Bedrock's errors: before the first byte as HTTP
errors, after it as exception frames) and encodes the answer as a `Response` or
`StreamResponse`. A guardrail named in the request's headers is applied through
`invocation.guarded_invoke.InvokeGuard` (input before generation, output on the engine's events,
its members on the response objects); the service tier and request metadata through
`invocation.request_options`.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, Mapping
from contextlib import aclosing

from outcrop.catalog.modalities import unserved_message, unserved_output
from outcrop.catalog.resolver import ResolvedModel, Resolver
from outcrop.config import SpeechSettings
from outcrop.dialects.base import (
    Completion,
    CompletionBuilder,
    InvokeCall,
    ParsedInvocation,
    stream_events,
)
from outcrop.dialects.registry import dialect_for
from outcrop.engines.base import Engine
from outcrop.engines.embeddings import BertEmbedder, EmbeddingEngine
from outcrop.guardrails.invoke import (
    UNKNOWN_GUARDRAIL,
    guardrail_headers,
    guardrail_request,
    refuse_unused_config,
)
from outcrop.guardrails.runtime import Guardrails
from outcrop.invocation.guarded_invoke import InvokeGuard
from outcrop.invocation.pipeline import Generation, Invoker, provider_model_name
from outcrop.invocation.request_options import with_request_options
from outcrop.services.base import Operation, RequestContext, Response, StreamResponse
from outcrop.services.bidirectional import BidirectionalStreaming
from outcrop.services.embeddings import EmbeddingService, is_embedding_model
from outcrop.types import Finish, Usage
from outcrop.wire import eventstream
from outcrop.wire.errors import (
    ModelErrorException,
    ModelStreamErrorException,
    NotImplementedYet,
    ValidationException,
)
from outcrop.wire.jsonbody import decode_json_body

# Verbatim from Bedrock (issue aws-samples/amazon-bedrock-client-for-mac#112).
STREAMING_UNSUPPORTED = "The model is unsupported for streaming."
JSON_TYPES = ("application/json", "*/*", "application/*")
BODY_TYPES = ("application/json", "application/octet-stream")
"""Request body types InvokeModel reads as JSON (docs/content-types.md)."""
# Verbatim from Bedrock (aws-sdk-ruby issue #3033, aws-signer-v4-dot-net issue #40).
INVALID_CONTENT_TYPE = "The provided Content Type is invalid or not supported for this model"


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
        self.invoker = Invoker(resolver, engines)
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

    def resolve(self, identifier: str) -> ResolvedModel:
        return self.invoker.resolve(identifier)

    # -- operations --------------------------------------------------------------------------

    async def invoke_model(self, ctx: RequestContext) -> Response:
        resolved = self.resolve(str(ctx.params["modelId"]))
        if is_embedding_model(resolved.model):
            _check_content_type(ctx.params.get("contentType"), ctx.params.get("accept"))
            return await self.embeddings.invoke(ctx, resolved, decode_json_body(ctx.body))
        invocation, generation = await self._start(ctx, resolved, streaming=False)
        model_name = provider_model_name(resolved)
        builder = CompletionBuilder()
        try:
            async with aclosing(generation.events()) as events:
                async for event in events:
                    if not isinstance(event, Finish):
                        generation.output_started()
                    builder.add(event)
        except ModelStreamErrorException as exc:
            # InvokeModel has no stream: a model that fails part-way is a ModelErrorException
            # (as in Converse), not the stream's exception, which this operation does not model.
            raise ModelErrorException(
                exc.message,
                original_status_code=int(exc.members.get("originalStatusCode", 500)),
                resource_name=resolved.model.model_id,
            ) from None
        output = builder.build()
        finish = output.finish
        generation.finished(finish)
        body = invocation.response(output, model_name)
        guard = generation.guard
        if isinstance(guard, InvokeGuard):
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
        resolved = self.resolve(str(ctx.params["modelId"]))
        # Refused before the body is looked at (embedding models, and any other model whose
        # catalog entry says responseStreamingSupported: false).
        if not resolved.model.streaming:
            raise ValidationException(STREAMING_UNSUPPORTED)
        invocation, generation = await self._start(ctx, resolved, streaming=True)
        ctx.record.input_tokens = generation.count_input()
        run = await generation.prefetch()
        encoder = invocation.stream(provider_model_name(resolved), generation.count_input())
        if isinstance(generation.guard, InvokeGuard):
            encoder = generation.guard.stream_encoder(encoder)

        async def frames() -> AsyncGenerator[bytes, None]:
            async with aclosing(run):
                for obj in encoder.start():
                    yield eventstream.chunk_frame(obj)
                async for event in run.until_finish():
                    if not isinstance(event, Finish):
                        if generation.first_byte_ms is None:
                            generation.output_started()
                            ctx.record.first_byte_ms = generation.first_byte_ms
                        ctx.record.output_tokens = (
                            ctx.record.output_tokens or 0
                        ) + event.token_count
                        for obj in stream_events(encoder, event):
                            yield eventstream.chunk_frame(obj)
                        continue
                    total = ctx.elapsed_ms()
                    generation.finished(event)
                    first_byte = generation.first_byte_ms
                    usage = Usage(
                        event.input_tokens,
                        event.output_tokens,
                        total,
                        first_byte if first_byte is not None else total,
                    )
                    for obj in encoder.finish(event, usage):
                        yield eventstream.chunk_frame(obj)

        headers = [
            ("Content-Type", "application/vnd.amazon.eventstream"),
            ("X-Amzn-Bedrock-Content-Type", "application/json"),
            *_echo_headers(ctx),
        ]
        return StreamResponse(headers, frames())

    # -- shared steps ------------------------------------------------------------------------

    async def _start(
        self, ctx: RequestContext, resolved: ResolvedModel, streaming: bool
    ) -> tuple[ParsedInvocation, Generation]:
        """Parse the body, admit the call and check its input against its guardrail."""
        ctx.record.model_id = resolved.model.model_id
        unserved = unserved_output(resolved.model)
        if unserved is not None:
            raise ValidationException(unserved_message(resolved.model, unserved))
        # A guardrail's errors come first: with a non-JSON body it has its own.
        headers = guardrail_headers(ctx.params)
        guardrail = None
        if headers is not None:
            if self.guardrails is not None:
                guardrail = self.guardrails.resolve(headers.identifier, headers.version)
            if guardrail is None:
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
        request = with_request_options(ctx, invocation.request)
        generation = await self.invoker.start(ctx, resolved, request)
        if options is not None and self.guardrails is not None and guardrail is not None:
            guard = InvokeGuard(self.guardrails, guardrail, options, streaming=streaming)
            generation.guard = guard
            generation.request = await guard.check_input(generation.request)
        return invocation, generation


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
