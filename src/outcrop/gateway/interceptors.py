"""The extension points of the gateway: code that runs around every AWS operation.

Authentication, authorization, quotas, fault injection, metrics and invocation logging are
interceptors. `before` may refuse a call by raising an `AwsError`; `wrap_stream` may alter a
stream's frames (fault injection); `after` sees the finished call and its `InvocationRecord`
(for streams: once the stream has ended).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Protocol

from outcrop.services.base import RequestContext


class Interceptor(Protocol):
    async def before(self, ctx: RequestContext) -> None:
        """Run before the operation; raise an AwsError to refuse the call."""
        ...

    def wrap_stream(
        self, ctx: RequestContext, frames: AsyncGenerator[bytes, None]
    ) -> AsyncGenerator[bytes, None]:
        """Return the frames to send (the same generator when there is nothing to change)."""
        ...

    def after(self, ctx: RequestContext) -> None:
        """Run once the call is over, successful or not (`ctx.record` says which)."""
        ...


class BaseInterceptor:
    """An interceptor that does nothing; subclass and override what you need."""

    async def before(self, ctx: RequestContext) -> None:
        return None

    def wrap_stream(
        self, ctx: RequestContext, frames: AsyncGenerator[bytes, None]
    ) -> AsyncGenerator[bytes, None]:
        return frames

    def after(self, ctx: RequestContext) -> None:
        return None
