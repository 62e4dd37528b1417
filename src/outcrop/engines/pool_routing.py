"""The routing core of an engine pool (sans-IO): which upstream serves a request, and what each
upstream's health, circuit and counters are. The clock is passed in, so tests drive it.

- **Health**: `health_result(upstream, ok)` records an active check; an upstream is routed to
  only while its last check passed.
- **Circuit breaking**: `failure_threshold` consecutive failed requests open an upstream's
  circuit; after `cooldown_s` it is half-open and one trial request may go to it (and only one
  at a time): success closes the circuit, failure opens it for another cool-down.
- **Least outstanding requests**: without an affinity key, the available upstream with the
  fewest requests in flight (ties go round-robin).
- **Prefix affinity** (consistent hashing with bounded loads, Mirrokni et al. 2016, over
  rendezvous hashing): upstreams are ranked by a hash of (key, upstream); the first in that
  order whose outstanding requests are below `max(ceil(load_factor * (total + 1) / n),
  affinity_min_load)` serves. The
  same key (the same conversation prefix) thus goes to the same upstream while it is available
  and not overloaded, keeping that upstream's prefix cache warm; removing an upstream moves
  only the keys it held.
"""

from __future__ import annotations

import enum
import hashlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
"""Upper bounds (seconds) of the per-upstream latency histogram."""


@dataclass(frozen=True, slots=True)
class PoolPolicy:
    """A pool's routing, health and failure settings (`[engines.NAME.pool]`)."""

    health_interval_s: float = 5.0
    """Seconds between active health checks of each upstream."""
    health_timeout_s: float = 2.0
    """A health check not answered within this is a failed one."""
    max_attempts: int = 3
    """Upstreams tried for a request that fails before its first token (1: no retry)."""
    failure_threshold: int = 3
    """Consecutive failed requests that open an upstream's circuit."""
    cooldown_s: float = 10.0
    """Seconds an open circuit waits before a half-open trial request."""
    affinity_prefix_chars: int = 2048
    """Characters of the conversation's start (system + first user turn) hashed for prefix
    affinity; 0: no affinity (least outstanding requests only)."""
    load_factor: float = 1.25
    """Bounded load: an upstream takes an affinity request only while its outstanding requests
    stay below this times the pool's average (plus one) ..."""
    affinity_min_load: int = 4
    """... or below this many (a model server batches several streams at no loss: a strict
    bound on a lightly loaded pool would scatter conversations and lose their caches)."""


class Circuit(enum.StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


CIRCUIT_CODES = {Circuit.CLOSED: 0, Circuit.HALF_OPEN: 1, Circuit.OPEN: 2}
"""The circuit state as a gauge value."""


@dataclass(slots=True)
class Upstream:
    """One upstream's routing state and counters."""

    name: str
    index: int
    healthy: bool = False
    health_detail: str = "not checked yet"
    circuit: Circuit = Circuit.CLOSED
    consecutive_failures: int = 0
    opened_at: float = 0.0
    trial_in_flight: bool = False
    outstanding: int = 0
    requests: int = 0
    failures: int = 0
    early_failures: int = 0
    """Requests that failed here before their first token (tried on another upstream while
    `max_attempts` allowed)."""
    latency_counts: list[int] = field(default_factory=lambda: [0] * len(LATENCY_BUCKETS))
    latency_sum: float = 0.0
    latency_count: int = 0

    def observe(self, seconds: float) -> None:
        for i, bound in enumerate(LATENCY_BUCKETS):
            if seconds <= bound:
                self.latency_counts[i] += 1
        self.latency_sum += seconds
        self.latency_count += 1

    def snapshot(self) -> dict[str, object]:
        """What health reports for this upstream."""
        return {
            "upstream": self.name,
            "healthy": self.healthy,
            "detail": self.health_detail,
            "circuit": self.circuit.value,
            "consecutive_failures": self.consecutive_failures,
            "outstanding": self.outstanding,
            "requests": self.requests,
            "failures": self.failures,
            "early_failures": self.early_failures,
        }


@dataclass(frozen=True, slots=True)
class Ticket:
    """One request's hold on an upstream, from `begin` to `succeed`/`fail`/`release`."""

    upstream: Upstream
    started_at: float
    trial: bool


class Router:
    """Routes requests over `names` (see the module docstring); `clock` gives seconds."""

    def __init__(
        self, names: Sequence[str], policy: PoolPolicy, clock: Callable[[], float]
    ) -> None:
        if not names:
            raise ValueError("a pool needs at least one upstream")
        self.policy = policy
        self.clock = clock
        self.upstreams = [Upstream(name, i) for i, name in enumerate(names)]
        self._turn = 0

    # -- availability -----------------------------------------------------------------------

    def _refresh(self, upstream: Upstream) -> None:
        """An open circuit whose cool-down is over becomes half-open."""
        if (
            upstream.circuit is Circuit.OPEN
            and self.clock() - upstream.opened_at >= self.policy.cooldown_s
        ):
            upstream.circuit = Circuit.HALF_OPEN
            upstream.trial_in_flight = False

    def available(self, upstream: Upstream) -> bool:
        """Whether a request may go to `upstream` now."""
        self._refresh(upstream)
        if not upstream.healthy or upstream.circuit is Circuit.OPEN:
            return False
        return not (upstream.circuit is Circuit.HALF_OPEN and upstream.trial_in_flight)

    def any_available(self) -> bool:
        return any(self.available(u) for u in self.upstreams)

    # -- choosing ---------------------------------------------------------------------------

    def pick(self, key: str | None, exclude: frozenset[int] = frozenset()) -> Upstream | None:
        """The upstream for a request with affinity `key` (None: none), skipping the indexes
        in `exclude` (upstreams already tried); None when no upstream is available."""
        candidates = [u for u in self.upstreams if u.index not in exclude and self.available(u)]
        if not candidates:
            return None
        if key is not None:
            total = sum(u.outstanding for u in candidates)
            bound = max(
                math.ceil(self.policy.load_factor * (total + 1) / len(candidates)),
                self.policy.affinity_min_load,
            )
            for upstream in sorted(candidates, key=lambda u: _rank(key, u.name), reverse=True):
                if upstream.outstanding < bound:
                    return upstream
        # Least outstanding requests; among equals, the next after the last one chosen.
        n = len(self.upstreams)
        chosen = min(candidates, key=lambda u: (u.outstanding, (u.index - self._turn) % n))
        self._turn = (chosen.index + 1) % n
        return chosen

    def preferred(self, key: str) -> Upstream:
        """The upstream `key` hashes to first (all upstreams, available or not)."""
        return max(self.upstreams, key=lambda u: _rank(key, u.name))

    # -- a request's life -------------------------------------------------------------------

    def begin(self, upstream: Upstream) -> Ticket:
        self._refresh(upstream)
        upstream.outstanding += 1
        upstream.requests += 1
        trial = upstream.circuit is Circuit.HALF_OPEN
        if trial:
            upstream.trial_in_flight = True
        return Ticket(upstream, self.clock(), trial)

    def succeed(self, ticket: Ticket) -> None:
        """The upstream answered (a whole stream, or a refusal of the request itself)."""
        upstream = ticket.upstream
        upstream.outstanding -= 1
        upstream.consecutive_failures = 0
        if ticket.trial:  # the half-open trial passed (an older request's success does not)
            upstream.circuit = Circuit.CLOSED
            upstream.trial_in_flight = False
        upstream.observe(self.clock() - ticket.started_at)

    def fail(self, ticket: Ticket, *, early: bool = False) -> None:
        """The upstream failed the request (unreachable, an error, a stream cut off); `early`:
        before its first token."""
        upstream = ticket.upstream
        upstream.outstanding -= 1
        upstream.failures += 1
        upstream.early_failures += 1 if early else 0
        upstream.consecutive_failures += 1
        if ticket.trial:
            upstream.trial_in_flight = False
        if ticket.trial or (
            upstream.circuit is Circuit.CLOSED
            and upstream.consecutive_failures >= self.policy.failure_threshold
        ):
            upstream.circuit = Circuit.OPEN
            upstream.opened_at = self.clock()

    def release(self, ticket: Ticket) -> None:
        """The request ended with no verdict on the upstream (the client went away)."""
        ticket.upstream.outstanding -= 1
        if ticket.trial:
            ticket.upstream.trial_in_flight = False

    # -- health checks ----------------------------------------------------------------------

    def health_result(self, upstream: Upstream, ok: bool, detail: str = "") -> None:
        upstream.healthy = ok
        upstream.health_detail = "" if ok else (detail or "health check failed")


def _rank(key: str, name: str) -> int:
    """Rendezvous weight of `name` for `key` (stable across processes and restarts)."""
    digest = hashlib.blake2b(f"{key}\x00{name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")
