"""Per-upstream Prometheus metrics of engine pools (`engines/pool.py`), read at scrape time.

Labelled by `engine` (the pool's name) and `upstream` (its URL, or `replica-N` for managed
llama.cpp children); both come from the configuration, so the label set is bounded.

| metric                                   | type      | meaning                                  |
|------------------------------------------|-----------|------------------------------------------|
| outcrop_upstream_requests_total          | counter   | requests sent to the upstream            |
| outcrop_upstream_failures_total          | counter   | requests the upstream failed             |
| outcrop_upstream_early_failures_total    | counter   | of those, failed before the first token  |
| outcrop_upstream_outstanding             | gauge     | requests in flight on it now             |
| outcrop_upstream_healthy                 | gauge     | 1 when its last health check passed      |
| outcrop_upstream_circuit_state           | gauge     | 0 closed, 1 half-open, 2 open            |
| outcrop_upstream_latency_seconds         | histogram | duration of the requests it completed    |
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from outcrop.engines.pool import PoolEngine
from outcrop.engines.pool_routing import CIRCUIT_CODES, LATENCY_BUCKETS

_LABELS = ["engine", "upstream"]


def pools(engines: Mapping[str, object]) -> Iterator[tuple[str, PoolEngine]]:
    """The pools among `engines` (seen through wrappers such as `DeadlineEngine`)."""
    for name, engine in engines.items():
        inner = getattr(engine, "inner", engine)
        if isinstance(inner, PoolEngine):
            yield name, inner


class PoolCollector(Collector):
    """Collects every pool's per-upstream state when `/metrics` is scraped."""

    def __init__(self, engines: Mapping[str, object]) -> None:
        self.engines = engines

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "outcrop_upstream_requests", "Requests sent to the upstream.", labels=_LABELS
        )
        failures = CounterMetricFamily(
            "outcrop_upstream_failures", "Requests the upstream failed.", labels=_LABELS
        )
        early = CounterMetricFamily(
            "outcrop_upstream_early_failures",
            "Requests the upstream failed before their first token (retried elsewhere).",
            labels=_LABELS,
        )
        outstanding = GaugeMetricFamily(
            "outcrop_upstream_outstanding", "Requests in flight on the upstream.", labels=_LABELS
        )
        healthy = GaugeMetricFamily(
            "outcrop_upstream_healthy",
            "1 when the upstream's last health check passed, else 0.",
            labels=_LABELS,
        )
        circuit = GaugeMetricFamily(
            "outcrop_upstream_circuit_state",
            "The upstream's circuit: 0 closed, 1 half-open, 2 open.",
            labels=_LABELS,
        )
        latency = HistogramMetricFamily(
            "outcrop_upstream_latency_seconds",
            "Duration of the requests the upstream completed.",
            labels=_LABELS,
        )
        for name, pool in pools(self.engines):
            for upstream in pool.router.upstreams:
                pool.router.available(upstream)  # an elapsed cool-down shows as half-open
                labels = [name, upstream.name]
                requests.add_metric(labels, upstream.requests)
                failures.add_metric(labels, upstream.failures)
                early.add_metric(labels, upstream.early_failures)
                outstanding.add_metric(labels, upstream.outstanding)
                healthy.add_metric(labels, 1.0 if upstream.healthy else 0.0)
                circuit.add_metric(labels, CIRCUIT_CODES[upstream.circuit])
                buckets = [
                    (str(bound), float(count))
                    for bound, count in zip(LATENCY_BUCKETS, upstream.latency_counts, strict=True)
                ]
                buckets.append(("+Inf", float(upstream.latency_count)))
                latency.add_metric(labels, buckets, upstream.latency_sum)
        yield from (requests, failures, early, outstanding, healthy, circuit, latency)
