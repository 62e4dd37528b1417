"""The state store in `/metrics`: whether it answered last, and how often it failed.

`outcrop_state_up{backend}` is 1 while the store's last operation succeeded, 0 once one failed
(until one succeeds again); `outcrop_state_errors_total{backend}` counts operations that failed
because the store could not answer. Both are read from the store's `StateHealth` at scrape
time.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from outcrop.state.store import StateHealth


class StateCollector(Collector):
    def __init__(self, health: StateHealth) -> None:
        self.health = health

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "outcrop_state_up",
            "1 while the state store's last operation succeeded, else 0.",
            labels=["backend"],
        )
        up.add_metric([self.health.backend], 1.0 if self.health.ok else 0.0)
        yield up
        errors = CounterMetricFamily(
            "outcrop_state_errors",
            "State store operations that failed because the store could not answer.",
            labels=["backend"],
        )
        errors.add_metric([self.health.backend], float(self.health.errors))
        yield errors
