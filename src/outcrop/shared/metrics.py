"""Replica identity and shared-state health on `/metrics`, read when scraped.

* `outcrop_replica_info{replica}`: 1, naming this replica (`[server] replica_id`), so that a
  series can be joined to the replica that served it when a scraper does not add it.
* `outcrop_shared_up{replica, backend}`: 1 when the last call to the shared store (Redis)
  succeeded, 0 when it failed, absent without `[shared]`.
* `outcrop_shared_failures_total{replica, feature}`: calls to Redis that failed (or were
  skipped while it was known down), by feature: quotas, rules, sessions, health. Each is a call
  that got the feature's failure mode (docs/deploy.md).
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from outcrop.shared.client import SharedState


class ReplicaCollector(Collector):
    def __init__(self, replica_id: str, shared: SharedState | None) -> None:
        self.replica_id = replica_id
        self.shared = shared

    def collect(self) -> Iterator[Metric]:
        info = GaugeMetricFamily(
            "outcrop_replica_info", "This replica's identity.", labels=["replica"]
        )
        info.add_metric([self.replica_id], 1.0)
        yield info
        if self.shared is None:
            return
        up = GaugeMetricFamily(
            "outcrop_shared_up",
            "1 when the last call to the shared store succeeded, else 0.",
            labels=["replica", "backend"],
        )
        up.add_metric([self.replica_id, "redis"], 1.0 if self.shared.up else 0.0)
        yield up
        failures = CounterMetricFamily(
            "outcrop_shared_failures",
            "Calls to the shared store that failed or were skipped while it was down.",
            labels=["replica", "feature"],
        )
        for feature in ("quotas", "rules", "sessions", "health"):
            failures.add_metric([self.replica_id, feature], self.shared.failures[feature])
        yield failures
