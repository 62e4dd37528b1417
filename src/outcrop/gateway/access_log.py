"""The access log: one line per AWS operation call on standard error, for a person to watch.

On by default (`[server] access_log = true`); `outcrop serve --quiet` turns it off. Each line,
written once the call is over (for streams: once the stream has ended), reads

    10:42:07 POST ConverseStream us.amazon.nova-lite-v1:0 200 1834ms 12/64 tokens
    10:42:09 POST InvokeModel nobody.model-x 400 2ms ValidationException

local time, HTTP method, operation, the model as the caller named it (a SageMaker endpoint's
name; `-` for calls without one), HTTP status, latency, input/output tokens (`-` where unknown),
and the error code when the call failed (also for a stream that ended with an exception event
after its 200). In a fleet (`[shared]` set, or `[server] replica_id`) the replica that served
the call follows the time, in brackets. Admin routes, `/metrics` and health checks are not
logged. This is not the Bedrock-shaped invocation log (gateway/invocation_log.py), which is
JSON for machines.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

from outcrop.config import ServerSettings
from outcrop.gateway.interceptors import BaseInterceptor
from outcrop.services.base import RequestContext

_MODEL_PARAMS = ("modelId", "EndpointName", "guardrailIdentifier")
"""Request parameters that name what was called, the first present wins."""


def access_line(ctx: RequestContext, clock: str) -> str:
    """The log line of a finished call (`clock`: the time of day to show)."""
    record = ctx.record
    model = next((str(ctx.params[k]) for k in _MODEL_PARAMS if ctx.params.get(k)), None)
    model = model or record.model_id or "-"
    parts = [clock, ctx.method, ctx.operation, model, str(record.status), f"{ctx.elapsed_ms()}ms"]
    if record.input_tokens is not None or record.output_tokens is not None:
        parts.append(f"{_count(record.input_tokens)}/{_count(record.output_tokens)} tokens")
    if record.error_code is not None:
        parts.append(record.error_code)
    return " ".join(parts)


def _count(tokens: int | None) -> str:
    return "-" if tokens is None else str(tokens)


def _stderr() -> TextIO:
    # Looked up on each line, so that a redirected sys.stderr (tests) is honoured.
    return sys.stderr


class AccessLog(BaseInterceptor):
    """Writes `access_line` for every finished call to `sink()` (standard error)."""

    def __init__(
        self,
        sink: Callable[[], TextIO] = _stderr,
        clock: Callable[[], str] = lambda: time.strftime("%H:%M:%S"),
    ) -> None:
        self._sink = sink
        self._clock = clock
        self.replica: str | None = None
        """Shown after the time when set (replicas of a fleet)."""

    @classmethod
    def from_settings(cls, settings: ServerSettings) -> AccessLog | None:
        return cls() if settings.access_log else None

    def after(self, ctx: RequestContext) -> None:
        out = self._sink()
        clock = self._clock()
        if self.replica is not None:
            clock = f"{clock} [{self.replica}]"
        out.write(access_line(ctx, clock) + "\n")
        out.flush()
