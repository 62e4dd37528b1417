"""Prometheus metrics for `GET /metrics`, named after Bedrock's CloudWatch runtime metrics.

Each CloudWatch metric of the `AWS/Bedrock` namespace becomes a Prometheus metric in snake case
under the `outcrop_` prefix, labelled by `model` (the base model ID the request resolved to or,
for a call refused before that, e.g. throttled, the known base model its identifier names;
`unknown` otherwise, which keeps the label set bounded; the endpoint name for SageMaker
Runtime) and `operation`. Only the runtime services' operations count (not the
Bedrock control plane's):

| CloudWatch               | Prometheus                                      | type      |
|--------------------------|-------------------------------------------------|-----------|
| Invocations              | outcrop_invocations_total                       | counter   |
| InvocationLatency        | outcrop_invocation_latency_seconds              | histogram |
| InvocationClientErrors   | outcrop_invocation_client_errors_total          | counter   |
| InvocationServerErrors   | outcrop_invocation_server_errors_total          | counter   |
| InvocationThrottles      | outcrop_invocation_throttles_total              | counter   |
| InputTokenCount          | outcrop_input_token_count_total                 | counter   |
| OutputTokenCount         | outcrop_output_token_count_total                | counter   |
| TimeToFirstToken         | outcrop_time_to_first_token_seconds             | histogram |

As in CloudWatch, Invocations and InvocationLatency count successful requests only; an error
counts once, as a throttle (ThrottlingException), a client error or a server error according to
the error's `fault` in the service model. Latencies are in seconds (Prometheus' base unit;
CloudWatch reports milliseconds). TimeToFirstToken is observed for streaming operations. A
stream the client abandoned counts in `outcrop_invocation_client_disconnects_total` only.
Beyond CloudWatch: `outcrop_active_streams` (streams being sent now) and, read from the engines
at scrape time, `outcrop_engine_queue_depth` and `outcrop_engine_ready` labelled by `engine`,
and the per-upstream metrics of engine pools (`engines/pool_metrics.py`, handed in by the
composition root).

The `model` label takes at most `[limits] max_metric_label_values` values (200 by default:
about 0.4 MB of exposition text, every metric and histogram bucket included):
SageMaker endpoint names are the client's choice, and one series per name would grow memory
and `/metrics` without bound. The values are kept least recently used first; a new value past
the cap evicts the least recently used one with no stream in flight (its series leave
`/metrics`, as a restarted target's would), and when every value has a stream in flight the
call counts under the model label `other`.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import AsyncGenerator, Callable, Iterator, Mapping, Sequence
from typing import Protocol
from weakref import WeakKeyDictionary

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from outcrop.catalog.foundation import foundation_models
from outcrop.catalog.identifiers import parse_identifier
from outcrop.gateway.interceptors import BaseInterceptor
from outcrop.invocation.context import RequestContext
from outcrop.services.base import Response

UNKNOWN_MODEL = "unknown"
OTHER_MODEL = "other"
DEFAULT_MAX_LABEL_VALUES = 200
CLIENT_DISCONNECTED = "ClientDisconnected"
THROTTLING_CODES = frozenset({"ThrottlingException", "throttlingException"})
LATENCY_BUCKETS = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    120.0,
)
RUNTIME_SERVICES = frozenset({"bedrock-runtime", "sagemaker-runtime"})
"""Services whose operations are model invocations (the control plane's are not counted)."""
_LABELS = ("model", "operation")


def outcome(error_code: str | None, error_fault: str | None, status: int) -> str:
    """How an invocation counts: success, throttle, client_error, server_error or disconnect."""
    if error_code is None and status < 400:
        return "success"
    if error_code == CLIENT_DISCONNECTED:
        return "disconnect"
    if error_code in THROTTLING_CODES:
        return "throttle"
    if error_fault is not None:
        return "client_error" if error_fault == "client" else "server_error"
    return "client_error" if 400 <= status < 500 else "server_error"


class _Readiness(Protocol):
    @property
    def ready(self) -> bool: ...


class Gauged(Protocol):
    """What the engine gauges read from an engine (`engines.base.Engine` is one)."""

    @property
    def queue_depth(self) -> int: ...

    def health(self) -> _Readiness: ...


class _EngineCollector(Collector):
    """Engine gauges read when scraped, so they are never stale."""

    def __init__(self, engines: Mapping[str, Gauged]) -> None:
        self.engines = engines

    def collect(self) -> Iterator[Metric]:
        depth = GaugeMetricFamily(
            "outcrop_engine_queue_depth", "Requests waiting for the engine.", labels=["engine"]
        )
        ready = GaugeMetricFamily(
            "outcrop_engine_ready", "1 when the engine can serve, else 0.", labels=["engine"]
        )
        for name, engine in self.engines.items():
            depth.add_metric([name], engine.queue_depth)
            ready.add_metric([name], 1.0 if engine.health().ready else 0.0)
        yield depth
        yield ready


class LabelLimiter:
    """At most `capacity` distinct label values, least recently used first (see the module
    docstring); `forget` is told which value to drop from every metric."""

    def __init__(self, capacity: int, forget: Callable[[str], None]) -> None:
        self.capacity = capacity
        self.forget = forget
        self._values: OrderedDict[str, int] = OrderedDict()
        """Value → streams in flight under it."""

    def __len__(self) -> int:
        return len(self._values)

    def admit(self, value: str) -> str:
        """The label to count a call under: `value`, or `other` when none can make room."""
        if value in self._values:
            self._values.move_to_end(value)
            return value
        if len(self._values) >= self.capacity:
            idle = next((v for v, streams in self._values.items() if streams == 0), None)
            if idle is None:
                return OTHER_MODEL
            del self._values[idle]
            self.forget(idle)
        self._values[value] = 0
        return value

    def streaming(self, value: str, delta: int) -> None:
        if value in self._values:
            self._values[value] += delta


class Metrics(BaseInterceptor):
    """The metrics interceptor and the `/metrics` route; one registry per application."""

    def __init__(
        self,
        engines: Mapping[str, Gauged],
        aliases: Mapping[str, str] | None = None,
        max_label_values: int = DEFAULT_MAX_LABEL_VALUES,
        collectors: Sequence[Collector] = (),
    ) -> None:
        self.aliases = dict(aliases or {})
        self.labels = LabelLimiter(max_label_values, self._forget)
        self._streaming: WeakKeyDictionary[RequestContext, Gauge] = WeakKeyDictionary()
        self._model_labels: WeakKeyDictionary[RequestContext, str] = WeakKeyDictionary()
        self.registry = CollectorRegistry()
        r = self.registry
        self.invocations = Counter(
            "outcrop_invocations",
            "Successful invocations (CloudWatch: Invocations).",
            _LABELS,
            registry=r,
        )
        self.latency = Histogram(
            "outcrop_invocation_latency_seconds",
            "Latency of successful invocations, to the last byte (CloudWatch: InvocationLatency).",
            _LABELS,
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.client_errors = Counter(
            "outcrop_invocation_client_errors",
            "Invocations that ended in a client-side error (CloudWatch: InvocationClientErrors).",
            _LABELS,
            registry=r,
        )
        self.server_errors = Counter(
            "outcrop_invocation_server_errors",
            "Invocations that ended in a server-side error (CloudWatch: InvocationServerErrors).",
            _LABELS,
            registry=r,
        )
        self.throttles = Counter(
            "outcrop_invocation_throttles",
            "Invocations refused by throttling (CloudWatch: InvocationThrottles).",
            _LABELS,
            registry=r,
        )
        self.disconnects = Counter(
            "outcrop_invocation_client_disconnects",
            "Streams the client abandoned before the end.",
            _LABELS,
            registry=r,
        )
        self.input_tokens = Counter(
            "outcrop_input_token_count",
            "Input (prompt) tokens (CloudWatch: InputTokenCount).",
            _LABELS,
            registry=r,
        )
        self.output_tokens = Counter(
            "outcrop_output_token_count",
            "Generated tokens (CloudWatch: OutputTokenCount).",
            _LABELS,
            registry=r,
        )
        self.cache_read_tokens = Counter(
            "outcrop_cache_read_input_token_count",
            "Prompt tokens read from the prompt cache (CloudWatch: CacheReadInputTokenCount).",
            _LABELS,
            registry=r,
        )
        self.cache_write_tokens = Counter(
            "outcrop_cache_write_input_token_count",
            "Prompt tokens written to the prompt cache (CloudWatch: CacheWriteInputTokenCount).",
            _LABELS,
            registry=r,
        )
        self.time_to_first_token = Histogram(
            "outcrop_time_to_first_token_seconds",
            "Time to the first generated token of streams (CloudWatch: TimeToFirstToken).",
            _LABELS,
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.active_streams = Gauge(
            "outcrop_active_streams", "Response streams being sent now.", _LABELS, registry=r
        )
        r.register(_EngineCollector(engines))
        for collector in collectors:
            r.register(collector)
        self._labelled = (
            self.invocations,
            self.latency,
            self.client_errors,
            self.server_errors,
            self.throttles,
            self.disconnects,
            self.input_tokens,
            self.output_tokens,
            self.time_to_first_token,
            self.active_streams,
        )

    def _forget(self, model: str) -> None:
        """Drop every series of an evicted `model` label value."""
        for metric in self._labelled:
            with metric._lock:  # prometheus_client has no public "remove all matching"
                stale = [key for key in metric._metrics if key[0] == model]
            for key in stale:
                metric.remove(*key)

    def _model(self, ctx: RequestContext) -> str:
        """The call's `model` label, admitted once per call."""
        label = self._model_labels.get(ctx)
        if label is None:
            label = self._model_labels[ctx] = self.labels.admit(model_label(ctx, self.aliases))
        return label

    # -- interceptor -------------------------------------------------------------------------

    def wrap_stream(
        self, ctx: RequestContext, frames: AsyncGenerator[bytes, None]
    ) -> AsyncGenerator[bytes, None]:
        """Counts the stream as active until `after`, which the gateway runs once the stream
        has ended however it ended; the frames pass through untouched (no per-frame work)."""
        if ctx.service not in RUNTIME_SERVICES:
            return frames
        model = self._model(ctx)
        gauge = self.active_streams.labels(model, ctx.operation)
        gauge.inc()
        self.labels.streaming(model, 1)
        self._streaming[ctx] = gauge
        return frames

    def after(self, ctx: RequestContext) -> None:
        if ctx.service not in RUNTIME_SERVICES:
            return
        record = ctx.record
        streaming = self._streaming.pop(ctx, None)
        model = self._model(ctx)
        if streaming is not None:
            streaming.dec()
            self.labels.streaming(model, -1)
        labels = (model, ctx.operation)
        if record.input_tokens:
            self.input_tokens.labels(*labels).inc(record.input_tokens)
        if record.output_tokens:
            self.output_tokens.labels(*labels).inc(record.output_tokens)
        if record.cache_read_input_tokens:
            self.cache_read_tokens.labels(*labels).inc(record.cache_read_input_tokens)
        if record.cache_write_input_tokens:
            self.cache_write_tokens.labels(*labels).inc(record.cache_write_input_tokens)
        if streaming is not None and record.first_byte_ms is not None:
            self.time_to_first_token.labels(*labels).observe(record.first_byte_ms / 1000)
        kind = outcome(record.error_code, record.error_fault, record.status)
        if kind == "success":
            self.invocations.labels(*labels).inc()
            self.latency.labels(*labels).observe(ctx.elapsed_ms() / 1000)
        elif kind == "throttle":
            self.throttles.labels(*labels).inc()
        elif kind == "client_error":
            self.client_errors.labels(*labels).inc()
        elif kind == "server_error":
            self.server_errors.labels(*labels).inc()
        else:
            self.disconnects.labels(*labels).inc()

    # -- route -------------------------------------------------------------------------------

    def exposition(self) -> bytes:
        """The current metrics in the Prometheus text format."""
        return generate_latest(self.registry)

    async def route(self, request: object) -> Response:
        # Rendered in a thread: a large exposition must not hold the event loop (and every
        # stream on it) for the whole scrape.
        text = await asyncio.to_thread(self.exposition)
        return Response(text, [("Content-Type", CONTENT_TYPE_LATEST)])


def model_label(ctx: RequestContext, aliases: Mapping[str, str]) -> str:
    """The model a call counts under: what the operation resolved, else (for calls refused
    before it ran, e.g. throttled) the known base model its identifier names, else `unknown`."""
    if ctx.record.model_id:
        return ctx.record.model_id
    identifier = ctx.params.get("modelId")
    if identifier is not None:
        ref = parse_identifier(str(identifier), aliases)
        if ref is not None and ref.base_model_id in foundation_models():
            return ref.base_model_id
    return UNKNOWN_MODEL
