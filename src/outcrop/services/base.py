"""What an operation receives (`RequestContext`, from `invocation.context`) and returns
(`Response`, `StreamResponse`), independent of ASGI."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from outcrop.invocation.context import InvocationRecord as InvocationRecord
from outcrop.invocation.context import RequestContext as RequestContext


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
