"""PoolEngine (engines/pool.py) over scripted member engines: retry before the first token,
no retry after it, request errors passed on, attempts bounded, health checks and health,
per-upstream metrics, and the configuration that builds pools."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from typing import Any

import pytest
from prometheus_client.exposition import generate_latest
from pydantic import ValidationError

from outcrop.config import LlamaCppSettings, OpenAISettings
from outcrop.engines.base import (
    Engine,
    EngineError,
    EngineRequestError,
    EngineUnavailable,
)
from outcrop.engines.deadline import DeadlineEngine
from outcrop.engines.factory import build_engine
from outcrop.engines.pool import PoolEngine, affinity_key
from outcrop.engines.pool_metrics import PoolCollector
from outcrop.engines.pool_routing import Circuit, PoolPolicy
from outcrop.gateway.metrics import Metrics
from outcrop.types import (
    ChatMessage,
    EngineHealth,
    Finish,
    GenerationEvent,
    GenerationRequest,
    SamplingParams,
    StopReason,
    TokenEvent,
)


def request(first: str = "hi", *later: str) -> GenerationRequest:
    turns = [ChatMessage("system", "be brief"), ChatMessage("user", first)]
    for i, text in enumerate(later):
        turns.append(ChatMessage("assistant" if i % 2 == 0 else "user", text))
    return GenerationRequest(tuple(turns), SamplingParams(max_tokens=8))


class Member(Engine):
    """Answers with `tokens` of its name, or fails as told: `fail_before` (an error raised
    before any event) or `fail_after` (raised after the first token)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.calls = 0
        self.healthy: str | None = None
        self.fail_before: EngineError | None = None
        self.fail_after: EngineError | None = None
        self.gate: asyncio.Event | None = None
        self.closed_streams = 0

    async def generate(self, request: GenerationRequest) -> AsyncGenerator[GenerationEvent, None]:
        self.calls += 1
        try:
            if self.fail_before is not None:
                raise self.fail_before
            yield TokenEvent(self.name)
            if self.gate is not None:
                await self.gate.wait()
            if self.fail_after is not None:
                raise self.fail_after
            yield Finish(StopReason.END_TURN, 1, 1)
        except GeneratorExit:
            self.closed_streams += 1
            raise

    def count_tokens(self, request: GenerationRequest) -> int:
        if self.fail_before is not None:
            raise self.fail_before
        return 7

    def health(self) -> EngineHealth:
        return EngineHealth(True, "ready", extra={"model": "m"})

    async def probe(self, timeout_s: float) -> str | None:
        return self.healthy


async def pool(n: int = 3, **policy: Any) -> tuple[PoolEngine, list[Member]]:
    members = [Member(f"m{i}") for i in range(n)]
    engine = PoolEngine(
        "pool", [(f"http://u{i}/v1", m) for i, m in enumerate(members)], PoolPolicy(**policy)
    )
    await engine.check_all()
    return engine, members


async def texts(engine: Engine, req: GenerationRequest) -> list[str]:
    return [e.text async for e in engine.generate(req) if isinstance(e, TokenEvent)]


async def test_failure_before_first_token_is_retried_elsewhere() -> None:
    engine, members = await pool()
    home = engine.router.preferred(affinity_key(request(), 2048) or "")
    members[home.index].fail_before = EngineUnavailable("connection refused")
    answer = await texts(engine, request())
    assert answer and answer[0] != members[home.index].name
    assert members[home.index].calls == 1
    assert (home.failures, home.early_failures, home.outstanding) == (1, 1, 0)
    served = [u for u in engine.router.upstreams if u.requests and u is not home]
    assert len(served) == 1 and served[0].failures == 0 and served[0].latency_count == 1


async def test_failure_after_first_token_ends_the_stream_with_that_error() -> None:
    engine, members = await pool()
    home = engine.router.preferred(affinity_key(request(), 2048) or "")
    members[home.index].fail_after = EngineError("upstream broke off the stream")
    seen: list[GenerationEvent] = []
    with pytest.raises(EngineError, match="broke off") as raised:
        async for event in engine.generate(request()):
            seen.append(event)
    assert not isinstance(raised.value, EngineUnavailable)
    assert seen == [TokenEvent(members[home.index].name)]
    assert sum(m.calls for m in members) == 1  # no retry once a token was passed on
    assert (home.failures, home.early_failures, home.outstanding) == (1, 0, 0)


async def test_request_errors_are_not_retried_and_do_not_count() -> None:
    engine, members = await pool(failure_threshold=1)
    for m in members:
        m.fail_before = EngineRequestError("prompt too long")
    with pytest.raises(EngineRequestError):
        await texts(engine, request())
    assert sum(m.calls for m in members) == 1
    assert all(u.failures == 0 and u.circuit is Circuit.CLOSED for u in engine.router.upstreams)


async def test_attempts_are_bounded_and_the_last_error_raised() -> None:
    engine, members = await pool(max_attempts=2)
    for m in members:
        m.fail_before = EngineUnavailable(f"{m.name} down")
    with pytest.raises(EngineUnavailable, match="down"):
        await texts(engine, request())
    assert sum(m.calls for m in members) == 2


async def test_open_circuits_send_requests_elsewhere() -> None:
    engine, members = await pool(failure_threshold=2, cooldown_s=3600)
    home = engine.router.preferred(affinity_key(request(), 2048) or "")
    members[home.index].fail_before = EngineUnavailable("refused")
    for _ in range(2):
        await texts(engine, request())
    assert home.circuit is Circuit.OPEN
    for _ in range(3):
        await texts(engine, request())
    assert members[home.index].calls == 2


async def test_no_available_upstream_is_unavailable() -> None:
    engine, members = await pool()
    for m in members:
        m.healthy = "connection refused"
    await engine.check_all()
    with pytest.raises(EngineUnavailable, match="no upstream"):
        await texts(engine, request())
    assert sum(m.calls for m in members) == 0
    with pytest.raises(EngineUnavailable):
        engine.count_tokens(request())


async def test_same_conversation_same_member() -> None:
    engine, _ = await pool()
    first = await texts(engine, request("plan a trip"))
    second = await texts(engine, request("plan a trip", "Sure.", "To Oslo"))
    assert first[0] == second[0]
    assert engine.count_tokens(request()) == 7


async def test_tokens_are_counted_by_an_upstream_that_can() -> None:
    engine, members = await pool()
    home = engine.router.preferred(affinity_key(request(), 2048) or "")
    members[home.index].fail_before = EngineUnavailable("child died")
    assert engine.count_tokens(request()) == 7
    members[home.index].fail_before = EngineRequestError("bad template")
    with pytest.raises(EngineRequestError):
        engine.count_tokens(request())
    for m in members:
        m.fail_before = EngineUnavailable("down")
    with pytest.raises(EngineUnavailable, match="no upstream"):
        engine.count_tokens(request())


async def test_closing_the_stream_releases_the_upstream() -> None:
    engine, members = await pool()
    gate = asyncio.Event()
    for m in members:
        m.gate = gate
    stream = engine.generate(request())
    assert isinstance(await anext(stream), TokenEvent)
    held = [u for u in engine.router.upstreams if u.outstanding]
    assert len(held) == 1
    await stream.aclose()
    assert held[0].outstanding == 0 and held[0].failures == 0
    assert members[held[0].index].closed_streams == 1


async def test_a_consumer_that_stops_at_the_finish_records_a_success() -> None:
    engine, members = await pool(failure_threshold=1, cooldown_s=0)
    home = engine.router.preferred(affinity_key(request(), 2048) or "")
    members[home.index].fail_before = EngineUnavailable("refused")
    await texts(engine, request())
    assert home.circuit is Circuit.OPEN
    members[home.index].fail_before = None
    stream = engine.generate(request())  # the half-open trial goes home again
    async for event in stream:
        if isinstance(event, Finish):
            break  # as the gateway does: it stops reading at the Finish, then closes
    await stream.aclose()
    assert home.circuit.value == "closed"
    assert (home.outstanding, home.consecutive_failures, home.latency_count) == (0, 0, 1)


async def test_health_states_and_upstreams() -> None:
    members = [Member("a"), Member("b")]
    engine = PoolEngine("p", [("u-a", members[0]), ("u-b", members[1])], PoolPolicy())
    health = engine.health()
    assert (health.ready, health.state) == (False, "loading")
    await engine.check_all()
    health = engine.health()
    assert health.ready and health.state == "ready"
    upstreams = health.extra["upstreams"]
    assert isinstance(upstreams, list)
    assert [u["upstream"] for u in upstreams] == ["u-a", "u-b"]
    assert upstreams[0]["healthy"] is True and upstreams[0]["circuit"] == "closed"
    members[0].healthy = "refused"
    await engine.check_all()
    health = engine.health()
    assert health.ready
    upstreams = health.extra["upstreams"]
    assert isinstance(upstreams, list) and upstreams[0]["detail"] == "refused"
    members[1].healthy = "refused"
    await engine.check_all()
    health = engine.health()
    assert (health.ready, health.state) == (False, "failed")


async def test_start_returns_and_checks_go_on_until_close() -> None:
    members = [Member("a")]
    members[0].healthy = "refused"
    engine = PoolEngine("p", [("u", members[0])], PoolPolicy(health_interval_s=0.01))
    await asyncio.wait_for(engine.start(), 10)
    assert not engine.health().ready
    members[0].healthy = None
    async with asyncio.timeout(30):
        while not engine.health().ready:  # noqa: ASYNC110 - the checks run on their own
            await asyncio.sleep(0.01)
    await engine.close()
    assert engine.health().state == "failed"


async def test_a_probe_that_hangs_or_raises_is_a_failed_check() -> None:
    class Hanging(Member):
        async def probe(self, timeout_s: float) -> str | None:
            await asyncio.Event().wait()
            return None

    class Raising(Member):
        async def probe(self, timeout_s: float) -> str | None:
            raise OSError("boom")

    engine = PoolEngine(
        "p", [("h", Hanging("h")), ("r", Raising("r"))], PoolPolicy(health_timeout_s=0.05)
    )
    await engine.check_all()
    hanging, raising = engine.router.upstreams
    assert not hanging.healthy and "no answer" in hanging.health_detail
    assert not raising.healthy and "boom" in raising.health_detail


async def test_upstream_metrics_are_exported() -> None:
    engine, members = await pool(2)
    members[0].fail_before = EngineUnavailable("refused")
    members[1].fail_before = EngineUnavailable("refused")
    with pytest.raises(EngineUnavailable):
        await texts(engine, request())
    members[0].fail_before = members[1].fail_before = None
    await texts(engine, request())
    engines = {"pool": DeadlineEngine(engine, 60)}
    metrics = Metrics(engines, collectors=[PoolCollector(engines)])
    text = generate_latest(metrics.registry).decode()
    for upstream in engine.router.upstreams:
        labels = f'engine="pool",upstream="{upstream.name}"'
        assert f"outcrop_upstream_requests_total{{{labels}}} {upstream.requests:.1f}" in text
        assert f"outcrop_upstream_failures_total{{{labels}}} 1.0" in text
        assert f"outcrop_upstream_early_failures_total{{{labels}}} 1.0" in text
        assert f"outcrop_upstream_outstanding{{{labels}}} 0.0" in text
        assert f"outcrop_upstream_healthy{{{labels}}} 1.0" in text
        assert f"outcrop_upstream_circuit_state{{{labels}}} 0.0" in text
    (served,) = [u for u in engine.router.upstreams if u.latency_count]
    labels = f'engine="pool",le="+Inf",upstream="{served.name}"'
    bucket = f"outcrop_upstream_latency_seconds_bucket{{{labels}}} 1.0"
    assert bucket in text
    assert text.count("outcrop_upstream_latency_seconds_count{") == 2


def test_openai_settings_take_one_form() -> None:
    single = OpenAISettings(type="openai", upstream="http://h:1/v1")
    assert type(build_engine("e", single)).__name__ == "OpenAICompatEngine"
    many = OpenAISettings(
        type="openai",
        upstreams=["http://a:1/v1", "http://b:1/v1"],
        pool={"max_attempts": 2, "cooldown_s": 1},
    )
    built = build_engine("e", many)
    assert isinstance(built, PoolEngine)
    assert [u.name for u in built.router.upstreams] == ["http://a:1/v1", "http://b:1/v1"]
    assert built.policy.max_attempts == 2 and built.policy.cooldown_s == 1
    with pytest.raises(ValidationError, match="either upstream or upstreams"):
        OpenAISettings(type="openai")
    with pytest.raises(ValidationError, match="either upstream or upstreams"):
        OpenAISettings(type="openai", upstream="http://a/v1", upstreams=["http://b/v1"])
    with pytest.raises(ValidationError):
        OpenAISettings(type="openai", upstreams=["ftp://a"])
    with pytest.raises(ValidationError):
        OpenAISettings(type="openai", upstreams=[])
    with pytest.raises(ValidationError):
        OpenAISettings(type="openai", upstream="http://a/v1", pool={"surprise": 1})


def test_llamacpp_replicas_or_upstreams_build_a_pool() -> None:
    one = build_engine("e", LlamaCppSettings(type="llamacpp"))
    assert type(one).__name__ == "LlamaServerEngine"
    three = build_engine("e", LlamaCppSettings(type="llamacpp", replicas=3))
    assert isinstance(three, PoolEngine)
    assert [u.name for u in three.router.upstreams] == ["replica-0", "replica-1", "replica-2"]
    assert [m.name for m in three.members] == ["e/0", "e/1", "e/2"]
    urls = ["http://gpu-1:8080", "http://gpu-2:8080"]
    external = build_engine("e", LlamaCppSettings(type="llamacpp", upstreams=urls))
    assert isinstance(external, PoolEngine)
    assert [u.name for u in external.router.upstreams] == urls
    with pytest.raises(ValidationError, match="either replicas or upstreams"):
        LlamaCppSettings(type="llamacpp", replicas=2, upstreams=urls)
