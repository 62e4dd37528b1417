"""What an operation receives and returns, independent of ASGI."""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from outcrop.engines.base import Engine
    from outcrop.wire.errors import AwsError


@dataclass(slots=True)
class InvocationRecord:
    """What an invocation did, filled in by the operation as it learns it.

    Interceptors (metrics, invocation logs, quotas) read it once the call is over.
    """

    model_id: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_read_input_tokens: int | None = None
    """Prompt tokens read from the prompt cache (requests with a cache point only)."""
    cache_write_input_tokens: int | None = None
    """Prompt tokens written to the prompt cache (requests with a cache point only)."""
    first_byte_ms: int | None = None
    error_code: str | None = None
    error_message: str | None = None
    error_fault: str | None = None
    """`client` or `server`, as the error's service model says (see `AwsError.fault`)."""
    status: int = 200
    max_output_tokens: int | None = None
    response_body: bytes | None = None
    """The body of a complete (non-streaming) response; streams pass through `wrap_stream`."""

    def failed(self, err: AwsError) -> None:
        """Record the modelled error the call ended with."""
        self.error_code = err.code
        self.error_message = err.message
        self.error_fault = err.fault


@dataclass(frozen=True, slots=True)
class RequestContext:
    """Per-request facts the gateway established before calling an operation."""

    request_id: str
    operation: str
    params: Mapping[str, Any]
    body: bytes
    service: str = "bedrock-runtime"
    headers: tuple[tuple[str, str], ...] = ()
    started: float = field(default_factory=time.monotonic)
    record: InvocationRecord = field(default_factory=InvocationRecord)
    state: dict[str, Any] = field(default_factory=dict)
    """Scratch space for interceptors (e.g. the authenticated principal)."""
    method: str = "POST"
    raw_path: str = ""
    """The request path still percent-encoded, as received (what SigV4 signs)."""
    query: str = ""
    """The raw query string, without `?`."""
    scheme: str = "http"
    """`https` on the TLS listener."""

    def elapsed_ms(self) -> int:
        return int((time.monotonic() - self.started) * 1000)

    def header(self, name: str) -> str | None:
        lowered = name.lower()
        for key, value in self.headers:
            if key.lower() == lowered:
                return value
        return None


AdmissionCheck = Callable[["RequestContext", int, int], None]
"""Raises an AwsError to refuse a call once its size is known: (ctx, input, max output)."""


def admit(
    ctx: RequestContext, model_id: str, input_tokens: Callable[[], int], max_output_tokens: int
) -> None:
    """Called by an operation once it knows the model and the request's size, before generating.

    Records them in `ctx.record` and runs the admission checks interceptors registered in
    `ctx.state["admission"]` (token quotas reserve input plus max output here). The input
    count is computed only when a check is registered.
    """
    ctx.record.model_id = model_id
    ctx.record.max_output_tokens = max_output_tokens
    checks: list[AdmissionCheck] = ctx.state.get("admission", [])
    if not checks:
        return
    counted = input_tokens()
    ctx.record.input_tokens = counted
    for check in checks:
        check(ctx, counted, max_output_tokens)


EngineOverride = Callable[[], "Engine | None"]
"""Registered by an interceptor in `ctx.state["engine_override"]`: picks, when called, another
engine to answer the call (a scripted response queued through the admin API), or None."""


def picked_engine(ctx: RequestContext) -> Engine | None:
    """The engine the registered override picks now for an admitted call, if any (called once
    the call is admitted, so a call refused by a quota consumes no override)."""
    override: EngineOverride | None = ctx.state.get("engine_override")
    return override() if override is not None else None


def answering_engine(ctx: RequestContext, engine: Engine) -> Engine:
    """The engine that answers an admitted call: the override's pick, else `engine`."""
    chosen = picked_engine(ctx)
    return chosen if chosen is not None else engine


@dataclass(frozen=True, slots=True)
class Response:
    """A complete response: status, headers and body bytes."""

    body: bytes
    headers: list[tuple[str, str]]
    status: int = 200


@dataclass(frozen=True, slots=True)
class StreamResponse:
    """A 200 with headers now and event-stream frames as they are produced.

    Exceptions raised by `frames` after the headers went out are turned into exception frames
    by the gateway; closing `frames` early (client gone) aborts the generation behind it.
    """

    headers: list[tuple[str, str]]
    frames: AsyncGenerator[bytes, None]


Operation = Callable[[RequestContext], Awaitable[Response | StreamResponse]]


DuplexHandler = Callable[[RequestContext, AsyncIterator[bytes]], Awaitable[StreamResponse]]


@dataclass(frozen=True, slots=True)
class DuplexOperation:
    """An operation that reads its request body while its response streams (full duplex).

    The gateway does not read the body first: it calls `handler` with the body's chunks as an
    async iterator (`ctx.body` is empty), sends the response headers at once, and pumps the
    frames while the handler is still reading. Called like a plain `Operation` (with the whole
    body in `ctx.body`), it gets that body as a single chunk.
    """

    handler: DuplexHandler

    async def __call__(self, ctx: RequestContext) -> StreamResponse:
        return await self.handler(ctx, _single(ctx.body))


async def _single(body: bytes) -> AsyncIterator[bytes]:
    if body:
        yield body
