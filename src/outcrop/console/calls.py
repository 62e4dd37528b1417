"""The ring of recent calls the console shows, and the interceptor that fills it.

`CallRecorder` runs around every runtime call (it is the last interceptor, so its
`wrap_stream` sees the frames exactly as the client gets them, faults applied). What it keeps
is cheap to take: references to the request's headers and body, and for a stream each frame
with its offset from the start of the call, within `[console] max_call_bytes`. Nothing is
decoded on the hot path: a call's events, assembled text and usage are decoded when someone
opens the call (`console.assemble`). `CallRing` holds the last `[console] max_calls` calls,
and hands each new call's summary to the live feeds that are open (none: nothing to do).
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import OrderedDict
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field
from typing import Any
from weakref import WeakKeyDictionary

from outcrop.gateway.call_facts import principal_of
from outcrop.gateway.interceptors import BaseInterceptor
from outcrop.gateway.metrics import RUNTIME_SERVICES
from outcrop.invocation.context import RequestContext
from outcrop.wire.stream_units import StreamUnits

REDACTED = "(redacted)"
SECRET_HEADERS = frozenset(
    {"authorization", "x-amz-security-token", "x-api-key", "cookie", "proxy-authorization"}
)
"""Request headers whose values are never kept (credentials)."""


def redact_headers(headers: tuple[tuple[str, str], ...]) -> list[tuple[str, str]]:
    """The headers with credentials replaced; a SigV4 `Authorization` keeps its access key
    and scope (not secret), never its signature."""
    kept: list[tuple[str, str]] = []
    for name, value in headers:
        lowered = name.lower()
        if lowered == "authorization" and value.startswith("AWS4-HMAC-SHA256"):
            credential = value.split("Credential=", 1)[-1].split(",", 1)[0]
            kept.append((name, f"AWS4-HMAC-SHA256 Credential={credential}, Signature={REDACTED}"))
        elif lowered in SECRET_HEADERS:
            kept.append((name, REDACTED))
        else:
            kept.append((name, value))
    return kept


@dataclass(slots=True)
class RecordedCall:
    """One finished call as the console keeps it."""

    seq: int
    request_id: str
    started_at: float
    """Wall-clock seconds when the call arrived."""
    service: str
    operation: str
    method: str
    path: str
    query: str
    model_id: str
    """As the caller named it (SageMaker: the endpoint name)."""
    resolved_model: str | None
    engine: str | None
    principal: str
    status: int
    error_code: str | None
    error_message: str | None
    ttft_ms: int | None
    duration_ms: int
    input_tokens: int | None
    output_tokens: int | None
    streaming: bool
    headers: list[tuple[str, str]]
    body: bytes
    response_body: bytes | None
    frames: list[tuple[int, bytes]]
    """A stream's units with their offsets (ms) from the call's start."""
    units: StreamUnits | None
    truncated: bool
    rules: list[str] = field(default_factory=list)
    details: dict[str, Any] | None = None
    """The decoded view (console.assemble), made once on first request."""

    @property
    def size(self) -> int:
        """Bytes of body and events kept (what `[console] max_total_bytes` bounds)."""
        response = len(self.response_body) if self.response_body is not None else 0
        return len(self.body) + response + sum(len(frame) for _, frame in self.frames)

    @property
    def tokens_per_s(self) -> float | None:
        if not self.output_tokens:
            return None
        generating_ms = self.duration_ms - (self.ttft_ms or 0)
        if generating_ms <= 0:
            return None
        return round(self.output_tokens * 1000 / generating_ms, 1)

    def summary(self) -> dict[str, Any]:
        """The row of the live table."""
        return {
            "seq": self.seq,
            "id": self.request_id,
            "time": int(self.started_at * 1000),
            "service": self.service,
            "operation": self.operation,
            "modelId": self.model_id,
            "resolvedModel": self.resolved_model,
            "engine": self.engine,
            "principal": self.principal,
            "status": self.status,
            "errorCode": self.error_code,
            "ttftMs": self.ttft_ms,
            "durationMs": self.duration_ms,
            "inputTokens": self.input_tokens,
            "outputTokens": self.output_tokens,
            "tokensPerS": self.tokens_per_s,
            "streaming": self.streaming,
            "rules": self.rules,
        }


class CallRing:
    """The last `capacity` calls by request ID, and the queues of the open live feeds."""

    def __init__(self, capacity: int, max_feeds: int, max_bytes: int | None = None) -> None:
        self.capacity = capacity
        self.max_feeds = max_feeds
        self.max_bytes = max_bytes
        self.bytes = 0
        """What the kept calls' bodies and frames add up to."""
        self._calls: OrderedDict[str, RecordedCall] = OrderedDict()
        self._seq = itertools.count(1)
        self._feeds: set[asyncio.Queue[dict[str, Any] | None]] = set()

    def next_seq(self) -> int:
        return next(self._seq)

    def add(self, call: RecordedCall) -> None:
        self._calls[call.request_id] = call
        self.bytes += call.size
        while len(self._calls) > self.capacity or (
            self.max_bytes is not None and self.bytes > self.max_bytes and len(self._calls) > 1
        ):
            _, dropped = self._calls.popitem(last=False)
            self.bytes -= dropped.size
        if self._feeds:
            row = call.summary()
            for queue in self._feeds:
                if queue.full():  # a feed too slow to keep up is told to reload
                    continue
                queue.put_nowait(row)

    def __len__(self) -> int:
        return len(self._calls)

    def get(self, request_id: str) -> RecordedCall | None:
        return self._calls.get(request_id)

    def since(self, after: int, limit: int) -> list[RecordedCall]:
        """Calls with `seq` above `after`, oldest first, at most `limit` (the newest ones)."""
        calls = [c for c in self._calls.values() if c.seq > after]
        return calls[-limit:] if limit < len(calls) else calls

    def clear(self) -> int:
        count = len(self._calls)
        self._calls.clear()
        self.bytes = 0
        return count

    def open_feed(self, size: int = 1024) -> asyncio.Queue[dict[str, Any] | None] | None:
        """A queue receiving each new call's summary, or None at `max_feeds` open feeds."""
        if len(self._feeds) >= self.max_feeds:
            return None
        queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(size)
        self._feeds.add(queue)
        return queue

    def close_feed(self, queue: asyncio.Queue[dict[str, Any] | None]) -> None:
        self._feeds.discard(queue)

    def end_feeds(self) -> None:
        """End every open feed (the server is stopping: a feed would hold its graceful stop)."""
        for queue in self._feeds:
            while not queue.empty():
                queue.get_nowait()
            queue.put_nowait(None)

    @property
    def feeds(self) -> int:
        return len(self._feeds)


@dataclass(slots=True)
class _Capture:
    frames: list[tuple[int, bytes]] = field(default_factory=list)
    room: int = 0
    truncated: bool = False


class CallRecorder(BaseInterceptor):
    """Records every runtime call into `ring` (see the module docstring)."""

    def __init__(
        self,
        ring: CallRing,
        max_call_bytes: int,
        engine_of: Callable[[str], str | None],
    ) -> None:
        self.ring = ring
        self.max_call_bytes = max_call_bytes
        self.engine_of = engine_of
        self._streams: WeakKeyDictionary[RequestContext, _Capture] = WeakKeyDictionary()

    def wrap_stream(
        self, ctx: RequestContext, frames: AsyncGenerator[bytes, None]
    ) -> AsyncGenerator[bytes, None]:
        if ctx.service not in RUNTIME_SERVICES:
            return frames
        capture = _Capture(room=max(0, self.max_call_bytes - len(ctx.body)))
        self._streams[ctx] = capture
        return _capture(ctx, frames, capture)

    def after(self, ctx: RequestContext) -> None:
        if ctx.service not in RUNTIME_SERVICES:
            return
        record = ctx.record
        capture = self._streams.pop(ctx, None)
        duration_ms = ctx.elapsed_ms()
        body = ctx.body[: self.max_call_bytes]
        truncated = len(body) < len(ctx.body)
        response = record.response_body
        if response is not None:
            room = max(0, self.max_call_bytes - len(body))
            truncated = truncated or len(response) > room
            response = response[:room]
        if capture is not None:
            truncated = truncated or capture.truncated
        resolved = record.model_id
        params = ctx.params
        model_id = str(params.get("modelId", params.get("EndpointName", resolved or "")))
        self.ring.add(
            RecordedCall(
                seq=self.ring.next_seq(),
                request_id=ctx.request_id,
                started_at=time.time() - duration_ms / 1000,
                service=ctx.service,
                operation=ctx.operation,
                method=ctx.method,
                path=ctx.raw_path,
                query=ctx.query,
                model_id=model_id,
                resolved_model=resolved,
                engine=(
                    self.engine_of(resolved)
                    if resolved and ctx.service == "bedrock-runtime"
                    else None
                ),
                principal=principal_of(ctx),
                status=record.status,
                error_code=record.error_code,
                error_message=record.error_message,
                ttft_ms=record.first_byte_ms,
                duration_ms=duration_ms,
                input_tokens=record.input_tokens,
                output_tokens=record.output_tokens,
                streaming=capture is not None,
                headers=redact_headers(ctx.headers),
                body=body,
                response_body=response,
                frames=capture.frames if capture is not None else [],
                units=ctx.call.stream_units,
                truncated=truncated,
                rules=list(ctx.call.matched_rules),
            )
        )


async def _capture(
    ctx: RequestContext, frames: AsyncGenerator[bytes, None], capture: _Capture
) -> AsyncGenerator[bytes, None]:
    try:
        async for frame in frames:
            if len(frame) <= capture.room:
                capture.room -= len(frame)
                capture.frames.append((ctx.elapsed_ms(), frame))
            else:
                capture.truncated = True
            yield frame
    finally:
        await frames.aclose()
