"""A generation time limit around any engine: past it, generation is aborted with EngineTimeout.

The limit covers the whole generation, from the call to its last event; the wrapped engine's
iterator is closed (aborting its work) when the limit strikes. Everything else is delegated.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator

from outcrop.engines.base import Engine, EngineTimeout
from outcrop.types import EngineHealth, GenerationEvent, GenerationRequest


class DeadlineEngine(Engine):
    """`inner`, with generations limited to `timeout_s` seconds."""

    def __init__(self, inner: Engine, timeout_s: float) -> None:
        self.inner = inner
        self.timeout_s = timeout_s
        self.name = inner.name

    async def generate(self, request: GenerationRequest) -> AsyncGenerator[GenerationEvent, None]:
        deadline = time.monotonic() + self.timeout_s
        async with contextlib.aclosing(self.inner.generate(request)) as events:
            while True:
                remaining = deadline - time.monotonic()
                try:
                    async with asyncio.timeout(max(remaining, 0.0)):
                        event = await anext(events)
                except StopAsyncIteration:
                    return
                except TimeoutError:
                    raise EngineTimeout(
                        f"generation exceeded the model timeout of {self.timeout_s:g} s"
                    ) from None
                yield event

    def count_tokens(self, request: GenerationRequest) -> int:
        return self.inner.count_tokens(request)

    def health(self) -> EngineHealth:
        return self.inner.health()

    async def start(self) -> None:
        await self.inner.start()

    async def close(self) -> None:
        await self.inner.close()

    @property
    def queue_depth(self) -> int:
        return self.inner.queue_depth
