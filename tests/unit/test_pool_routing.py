"""The engine pool's routing core (engines/pool_routing.py) on a fake clock: least outstanding
requests, bounded-load prefix affinity, health, and the circuit breaker's open / half-open /
closed cycle."""

from __future__ import annotations

from collections import Counter

from outcrop.engines.pool_routing import Circuit, PoolPolicy, Router, Upstream

NAMES = ["http://a:8000/v1", "http://b:8000/v1", "http://c:8000/v1"]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def router(policy: PoolPolicy | None = None, names: list[str] = NAMES) -> tuple[Router, Clock]:
    clock = Clock()
    r = Router(names, policy or PoolPolicy(), clock)
    for upstream in r.upstreams:
        r.health_result(upstream, True)
    return r, clock


def by_name(r: Router, name: str) -> Upstream:
    return next(u for u in r.upstreams if u.name == name)


def test_least_outstanding_without_key() -> None:
    r, _ = router()
    a, b, c = r.upstreams
    r.begin(a)
    r.begin(a)
    r.begin(b)
    assert r.pick(None) is c
    r.begin(c)
    r.begin(c)
    assert r.pick(None) is b


def test_ties_rotate() -> None:
    r, _ = router()
    picks = [r.pick(None) for _ in range(6)]
    assert [p.index for p in picks if p is not None] == [0, 1, 2, 0, 1, 2]


def test_same_key_same_upstream_and_keys_spread() -> None:
    r, _ = router()
    first = r.pick("conversation 1")
    assert first is not None
    assert all(r.pick("conversation 1") is first for _ in range(20))
    assert r.preferred("conversation 1") is first
    spread = Counter(r.preferred(f"conversation {i}").index for i in range(300))
    assert set(spread) == {0, 1, 2}
    assert min(spread.values()) > 60  # rendezvous hashing spreads keys about evenly


def test_affinity_keeps_its_upstream_up_to_the_minimum_load() -> None:
    r, _ = router(PoolPolicy(load_factor=1.25, affinity_min_load=3))
    home = r.preferred("conv")
    for _ in range(3):
        assert r.pick("conv") is home  # others idle, yet home keeps it: below 3
        r.begin(home)
    spill = r.pick("conv")
    assert spill is not None and spill is not home


def test_affinity_is_bounded_by_load() -> None:
    r, _ = router(PoolPolicy(load_factor=1.25, affinity_min_load=1))
    home = r.preferred("hot prefix")
    a, b = (u for u in r.upstreams if u is not home)
    for upstream in (home, home, a, a, b):
        r.begin(upstream)
    # total 5: bound ceil(1.25 * 6 / 3) = 3, and home holds 2: the key keeps its upstream
    assert r.pick("hot prefix") is home
    r.begin(home)
    # total 6: bound ceil(1.25 * 7 / 3) = 3, and home holds 3: the request goes elsewhere,
    # to the key's next upstream in rendezvous order (not merely the least loaded one)
    spill = r.pick("hot prefix")
    assert spill is not None and spill is not home
    fresh, _ = router()
    fresh.health_result(by_name(fresh, home.name), False)
    second_choice = fresh.pick("hot prefix")
    assert second_choice is not None and spill.name == second_choice.name


def test_affinity_skips_unavailable_and_returns() -> None:
    r, _ = router()
    home = r.preferred("conv")
    r.health_result(home, False, "connection refused")
    moved = r.pick("conv")
    assert moved is not None and moved is not home
    assert r.pick("conv") is moved  # stable while home is out
    r.health_result(home, True)
    assert r.pick("conv") is home


def test_removing_an_upstream_moves_only_its_keys() -> None:
    r, _ = router()
    keys = [f"k{i}" for i in range(200)]
    before = {k: r.pick(k) for k in keys}
    gone = r.upstreams[1]
    r.health_result(gone, False)
    after = {k: r.pick(k) for k in keys}
    moved = [k for k in keys if after[k] is not before[k]]
    assert moved and all(before[k] is gone for k in moved)


def test_exclude_and_none_available() -> None:
    r, _ = router()
    assert r.pick("x", frozenset({0, 1})) is r.upstreams[2]
    assert r.pick(None, frozenset({0, 1, 2})) is None
    for upstream in r.upstreams:
        r.health_result(upstream, False, "down")
    assert r.pick(None) is None and not r.any_available()
    assert r.upstreams[0].snapshot()["detail"] == "down"


def test_unchecked_upstreams_are_not_used() -> None:
    r = Router(NAMES, PoolPolicy(), Clock())
    assert r.pick(None) is None


def test_circuit_opens_after_consecutive_failures() -> None:
    r, clock = router(PoolPolicy(failure_threshold=3, cooldown_s=10))
    a = r.upstreams[0]
    r.fail(r.begin(a))
    r.fail(r.begin(a))
    r.succeed(r.begin(a))  # a success resets the count
    r.fail(r.begin(a))
    r.fail(r.begin(a))
    assert r.available(a)
    assert a.circuit is Circuit.CLOSED
    r.fail(r.begin(a), early=True)
    assert not r.available(a)
    assert a.circuit.value == "open"
    assert (a.failures, a.early_failures, a.requests, a.outstanding) == (5, 1, 6, 0)
    assert all(r.pick(None, frozenset()) is not a for _ in range(5))
    clock.now += 9.9
    assert not r.available(a)
    clock.now += 0.1
    assert r.available(a)
    assert a.circuit.value == "half_open"


def test_half_open_allows_one_trial_then_closes_on_success() -> None:
    r, clock = router(PoolPolicy(failure_threshold=1, cooldown_s=5))
    a = r.upstreams[0]
    r.fail(r.begin(a))
    clock.now += 5
    trial = r.begin(a)
    assert trial.trial and not r.available(a)  # one trial at a time
    assert r.pick(None, frozenset({1, 2})) is None
    clock.now += 2
    r.succeed(trial)
    assert a.circuit is Circuit.CLOSED and r.available(a)
    assert a.latency_count == 1 and a.latency_sum == 2


def test_half_open_trial_failure_reopens_for_a_full_cooldown() -> None:
    r, clock = router(PoolPolicy(failure_threshold=1, cooldown_s=5))
    a = r.upstreams[0]
    r.fail(r.begin(a))
    clock.now += 6
    r.fail(r.begin(a))
    assert a.circuit is Circuit.OPEN and a.opened_at == clock.now
    clock.now += 4
    assert not r.available(a)
    clock.now += 1
    assert r.available(a)


def test_released_trial_frees_the_half_open_slot() -> None:
    r, clock = router(PoolPolicy(failure_threshold=1, cooldown_s=1))
    a = r.upstreams[0]
    r.fail(r.begin(a))
    clock.now += 1
    r.release(r.begin(a))  # the client went away: no verdict
    assert a.circuit is Circuit.HALF_OPEN and r.available(a)


def test_old_success_does_not_close_an_open_circuit() -> None:
    r, _ = router(PoolPolicy(failure_threshold=1, cooldown_s=10))
    a = r.upstreams[0]
    long_stream = r.begin(a)
    r.fail(r.begin(a))
    r.succeed(long_stream)
    assert a.circuit is Circuit.OPEN


def test_unhealthy_half_open_upstream_gets_no_trial() -> None:
    r, clock = router(PoolPolicy(failure_threshold=1, cooldown_s=1))
    a = r.upstreams[0]
    r.fail(r.begin(a))
    r.health_result(a, False)
    clock.now += 5
    assert not r.available(a)
    r.health_result(a, True)
    assert r.available(a)


def test_latency_histogram_buckets() -> None:
    r, clock = router()
    a = r.upstreams[0]
    ticket = r.begin(a)
    clock.now += 0.3
    r.succeed(ticket)
    assert a.latency_counts[:4] == [0, 0, 0, 1] and a.latency_counts[-1] == 1
