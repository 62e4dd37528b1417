"""Fault injection: rules that make chosen calls fail the way AWS can fail, on demand.

Rules match calls and fire as gateway/rules.py describes (operation, model, principal,
prompt; `times`, default every match; `probability`); the first that fires decides. No rule, no
fault: faults happen only where a rule says so.

Actions (`after_events` = K counts the stream's frames sent before the fault acts):

* `error`: any modelled error (by shape name) instead of the response.
* `stream_error`: the modelled exception frame for `error` after K events (boto3 raises
  EventStreamError with that code; the JS SDK the modelled class). A shape the operation's
  stream does not model becomes internalServerException, as the gateway does for any error.
* `cut`: the stream ends cleanly after K events, without its final events.
* `stall`: after K events nothing is sent for `stall_seconds` (default: until the client
  gives up), then the stream goes on.
* `latency`: `latency_ms` before every event from event K on (per token for token-per-frame
  streams); non-streaming calls wait `latency_ms` once.
* `corrupt_crc`: event K+1 goes out with a wrong message CRC (on server-sent events, which
  carry no checksum, with its JSON cut short: wire/stream_units.py).
* `drop`: the connection is dropped after K events (non-streaming: after the response
  headers, mid-body).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from collections.abc import AsyncGenerator, Callable, Mapping
from weakref import WeakKeyDictionary

from outcrop.config.security import FaultRuleSettings
from outcrop.gateway.asgi import AbortConnection
from outcrop.gateway.call_facts import is_streaming, model_key, principal_of
from outcrop.gateway.interceptors import BaseInterceptor
from outcrop.gateway.rules import Rule, RuleRegistry
from outcrop.invocation.context import RequestContext
from outcrop.wire import errors
from outcrop.wire.errors import AwsError


def error_classes() -> dict[str, list[type[AwsError]]]:
    """Every error shape Outcrop knows, by shape name (subclasses defined anywhere count).

    A name may belong to several services (ModelNotReadyException is Bedrock's and
    SageMaker's, with different bodies); `error_class` picks by service.
    """
    found: dict[str, list[type[AwsError]]] = {}
    pending: list[type[AwsError]] = [errors.AwsError]
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        found.setdefault(cls.code, []).append(cls)
    return found


def error_class(name: str, service: str = "bedrock-runtime") -> type[AwsError]:
    """The class for a shape name (also in its stream spelling, lowerCamel) on `service`."""
    known = error_classes()
    candidates = known.get(name[:1].upper() + name[1:])
    if not candidates:
        raise ValueError(f"unknown error {name!r}; known: {', '.join(sorted(known))}")
    sagemaker = service.startswith("sagemaker")
    for cls in candidates:
        if issubclass(cls, errors.SageMakerError) == sagemaker:
            return cls
    return candidates[0]


def make_error(name: str, message: str | None, service: str = "bedrock-runtime") -> AwsError:
    cls = error_class(name, service)
    text = message or f"Outcrop fault injection: {cls.code}."
    # Shapes with required members (SageMaker's ModelStreamError needs an ErrorCode) get the
    # shape name there; every other member keeps its class default.
    required = {
        p.name: cls.code
        for p in inspect.signature(cls.__init__).parameters.values()
        if p.kind is p.KEYWORD_ONLY and p.default is p.empty
    }
    return cls(text, **required)


FaultRule = Rule[FaultRuleSettings]


class FaultRegistry(RuleRegistry[FaultRuleSettings]):
    """The fault rules in force (gateway/rules.py), shared with the admin API and config."""

    id_prefix = "fault"

    def check(self, settings: FaultRuleSettings) -> None:
        if settings.error is not None:
            error_class(settings.error)  # ValueError now, not at the first match


class FaultInjector(BaseInterceptor):
    """Applies the first firing rule to a call: before it, or inside its stream."""

    def __init__(self, registry: FaultRegistry, aliases: Mapping[str, str] | None = None) -> None:
        self._streams: WeakKeyDictionary[RequestContext, FaultRule] = WeakKeyDictionary()
        """The rule a streaming call's frames are given to (`wrap_stream`)."""
        self.registry = registry
        self.aliases = dict(aliases or {})

    async def before(self, ctx: RequestContext) -> None:
        if not self.registry:
            return
        rule = self.registry.pick(
            ctx.operation, model_key(ctx, self.aliases), principal_of(ctx), ctx.body
        )
        if rule is None:
            return
        ctx.call.matched_rules.append(f"fault:{rule.id}")
        s = rule.settings
        streaming = is_streaming(ctx)
        if s.action == "error":
            assert s.error is not None
            raise make_error(s.error, s.message, ctx.service)
        if streaming:
            self._streams[ctx] = rule
            return
        # Non-streaming calls: the stream actions reduce to what can happen before a body.
        if s.action == "latency":
            await asyncio.sleep(s.latency_ms / 1000)
        elif s.action == "stall":
            await asyncio.sleep(_stall(s))
        elif s.action == "drop":
            raise AbortConnection(response_started=False)
        elif s.action == "stream_error":
            raise make_error(s.error or "InternalServerException", s.message, ctx.service)

    def wrap_stream(
        self, ctx: RequestContext, frames: AsyncGenerator[bytes, None]
    ) -> AsyncGenerator[bytes, None]:
        rule = self._streams.pop(ctx, None)
        if rule is None:
            return frames
        units = ctx.call.stream_units
        corrupt = corrupt_crc if units is None else units.corrupt
        return faulty_stream(rule.settings, frames, ctx.service, corrupt)


async def faulty_stream(
    s: FaultRuleSettings,
    frames: AsyncGenerator[bytes, None],
    service: str = "bedrock-runtime",
    corrupt: Callable[[bytes], bytes] | None = None,
) -> AsyncGenerator[bytes, None]:
    """`frames` with the rule's action applied after `after_events` of them (`corrupt`: how
    `corrupt_crc` damages a frame, `corrupt_crc` itself for event-stream frames)."""
    sent = 0
    async with contextlib.aclosing(frames):
        async for frame in frames:
            if sent >= s.after_events:
                if s.action == "stream_error":
                    raise make_error(s.error or "InternalServerException", s.message, service)
                if s.action == "cut":
                    return
                if s.action == "drop":
                    raise AbortConnection(response_started=True)
                if s.action == "stall" and sent == s.after_events:
                    await asyncio.sleep(_stall(s))
                if s.action == "latency":
                    await asyncio.sleep(s.latency_ms / 1000)
                if s.action == "corrupt_crc" and sent == s.after_events:
                    frame = (corrupt or corrupt_crc)(frame)
            yield frame
            sent += 1
    # The stream had K events or fewer: errors and drops still happen, at its end.
    if s.action == "stream_error":
        raise make_error(s.error or "InternalServerException", s.message, service)
    if s.action == "drop":
        raise AbortConnection(response_started=True)


def _stall(s: FaultRuleSettings) -> float:
    return s.stall_seconds if s.stall_seconds is not None else 24 * 3600.0


def corrupt_crc(frame: bytes) -> bytes:
    """The frame with its trailing message CRC inverted (the prelude stays valid)."""
    if len(frame) < 16:
        return frame
    tail = bytes(b ^ 0xFF for b in frame[-4:])
    return frame[:-4] + tail
