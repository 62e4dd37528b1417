"""What an operation receives and returns, independent of ASGI."""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class RequestContext:
    """Per-request facts the gateway established before calling an operation."""

    request_id: str
    operation: str
    params: Mapping[str, Any]
    body: bytes
    started: float = field(default_factory=time.monotonic)

    def elapsed_ms(self) -> int:
        return int((time.monotonic() - self.started) * 1000)


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
