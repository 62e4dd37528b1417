"""The invocation pipeline: what every generating Bedrock operation does between parsing its
body and encoding its answer, in this order.

1. `Invoker.resolve`: the model identifier resolved once (catalog + the user's routes), with
   Bedrock's errors for unknown IDs and IDs that need an inference profile.
2. `Invoker.admit`: the call's model and size recorded; the admission checks the gateway
   registered (token quotas) run, counting the input only when one is registered.
3. The engine picked: the served one, or a scripted answer queued for the call
   (`engines.answering_engine`).
4. `Generation.events`: the engine's events, engine failures translated once
   (`invocation.errors`), through the call's guardrail (`invocation.guard`) when there is one.
5. `Generation.prefetch`: the first event awaited before a stream's 200 goes out, so that
   failures before the first byte are HTTP errors, as on Bedrock.
6. `Generation.finished`: the usage recorded for metrics, invocation logs and quotas.

Operations keep parsing their parameters and encoding their answers; SageMaker's engine-backed
containers and speech sessions use the same engine seam (`engines.generate`) with their own
error formats, and the same admission (`admission.CallAdmission`, which calls `admit`).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable, Mapping
from dataclasses import dataclass

from outcrop.catalog.resolver import OnDemandNotSupported, ResolvedModel, Resolver, UnknownModel
from outcrop.engines.base import Engine
from outcrop.invocation.context import RequestContext
from outcrop.invocation.engines import answering_engine, bedrock_events, count_input_tokens
from outcrop.invocation.guard import Guard
from outcrop.types import Finish, GenerationEvent, GenerationRequest
from outcrop.wire.errors import ModelErrorException, ModelStreamErrorException, ValidationException

INVALID_MODEL = "The provided model identifier is invalid."


def on_demand_message(model_id: str) -> str:
    # Verbatim from Bedrock (typographic apostrophe included).
    return (
        f"Invocation of model ID {model_id} with on-demand throughput isn’t supported. "
        "Retry your request with the ID or ARN of an inference profile that contains this model."
    )


def admit(
    ctx: RequestContext, model_id: str, input_tokens: Callable[[], int], max_output_tokens: int
) -> None:
    """Record the call's model and size, and run the admission checks the gateway registered
    (`ctx.call.admission`: token quotas reserve input plus max output here). The input is
    counted only when a check is registered."""
    ctx.record.model_id = model_id
    ctx.record.max_output_tokens = max_output_tokens
    checks = ctx.call.admission
    if not checks:
        return
    counted = input_tokens()
    ctx.record.input_tokens = counted
    for check in checks:
        check(counted, max_output_tokens)


def provider_model_name(resolved: ResolvedModel) -> str:
    """The model name a family's body reports (the provider's own, else the model ID)."""
    return resolved.model.provider_model_name or resolved.model.model_id


class Invoker:
    """Resolves model identifiers and starts admitted generations on the served engines."""

    def __init__(self, resolver: Resolver, engines: Mapping[str, Engine]) -> None:
        self.resolver = resolver
        self.engines = engines

    def resolve(self, identifier: str) -> ResolvedModel:
        try:
            return self.resolver.resolve(identifier)
        except OnDemandNotSupported as exc:
            raise ValidationException(on_demand_message(exc.model_id)) from None
        except UnknownModel:
            raise ValidationException(INVALID_MODEL) from None

    def engine(self, resolved: ResolvedModel) -> Engine:
        """The engine that serves a resolved model."""
        return self.engines[resolved.engine]

    def start(
        self,
        ctx: RequestContext,
        resolved: ResolvedModel,
        request: GenerationRequest,
        guard: Guard | None = None,
    ) -> Generation:
        """Admit the call (steps 2-3): the generation, on the engine that answers it."""
        engine = self.engine(resolved)
        model_id = resolved.model.model_id
        admit(
            ctx,
            model_id,
            lambda: count_input_tokens(engine, request, model_id),
            request.sampling.max_tokens,
        )
        return Generation(ctx, resolved, answering_engine(ctx, engine), request, guard)


@dataclass(slots=True)
class Generation:
    """One admitted call's generation (steps 4-6)."""

    ctx: RequestContext
    resolved: ResolvedModel
    engine: Engine
    request: GenerationRequest
    guard: Guard | None = None
    input_tokens: int | None = None
    """Counted by `count_input` (streams count before the first event)."""
    first_byte_ms: int | None = None

    @property
    def model_id(self) -> str:
        return self.resolved.model.model_id

    def count_input(self) -> int:
        """The input tokens of the request as it is now (guardrail masks applied)."""
        if self.input_tokens is None:
            self.input_tokens = count_input_tokens(self.engine, self.request, self.model_id)
        return self.input_tokens

    def events(self) -> AsyncGenerator[GenerationEvent, None]:
        """The engine's events (failures translated), through the guardrail when there is one."""
        engine, request, model_id = self.engine, self.request, self.model_id
        if self.guard is None:
            return bedrock_events(engine, request, model_id)
        return self.guard.events(
            lambda: bedrock_events(engine, request, model_id), self.count_input
        )

    async def prefetch(self) -> Prefetched:
        """The events with the first one awaited now (failures before it are HTTP errors)."""
        events = self.events()
        try:
            first = await anext(events)
        except StopAsyncIteration:
            raise ModelErrorException(
                "The engine produced no output.", original_status_code=500
            ) from None
        return Prefetched(first, events)

    def output_started(self) -> None:
        """Note the time of the first output (call on each output event)."""
        if self.first_byte_ms is None:
            self.first_byte_ms = self.ctx.elapsed_ms()

    def finished(self, finish: Finish) -> None:
        """Tell the interceptors (metrics, invocation logs, quotas) what the call used."""
        record = self.ctx.record
        record.input_tokens = finish.input_tokens
        record.output_tokens = finish.output_tokens
        record.first_byte_ms = self.first_byte_ms
        # With a cache point: what the prompt cache gave and took (docs/prompt-caching.md).
        record.cache_read_input_tokens = finish.cache_read_input_tokens
        record.cache_write_input_tokens = finish.cache_write_input_tokens


@dataclass(frozen=True, slots=True)
class Prefetched:
    """A generation's events, the first already received."""

    first: GenerationEvent
    rest: AsyncGenerator[GenerationEvent, None]

    async def aclose(self) -> None:
        """Abort the generation (`contextlib.aclosing(prefetched)` closes it however the
        answer ends)."""
        await self.rest.aclose()

    async def until_finish(self) -> AsyncGenerator[GenerationEvent, None]:
        """Every event through the `Finish`; an engine that ends without finishing is a
        `ModelStreamErrorException`."""
        event = self.first
        while True:
            yield event
            if isinstance(event, Finish):
                return
            try:
                event = await anext(self.rest)
            except StopAsyncIteration:
                raise ModelStreamErrorException(
                    "The engine ended the stream without finishing.",
                    original_status_code=500,
                ) from None
