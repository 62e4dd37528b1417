"""GET /_outcrop/quotas: each quota rule with its live counters, from the process's counters and
from Redis (the same assertions on both backends)."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from outcrop.app import OutcropApp
from outcrop.config import Settings
from outcrop.engines.scripted import ScriptedConfig, ScriptedEngine
from outcrop.shared.quotas import SharedQuotaEnforcer
from tests.asgi_driver import call
from tests.support.redis_server import RedisServer
from tests.unit.gateway.test_admin_guard import LOCAL, VERIFY, signed
from tests.unit.test_security import HAIKU, PATH, claude

SONNET = "anthropic.claude-3-sonnet-20240229-v1:0"
SONNET_PATH = PATH.replace("haiku-20240307", "sonnet-20240229")
STREAM = PATH.replace("/invoke", "/invoke-with-response-stream")
QUOTAS = [
    {"model": "anthropic.*", "requests_per_minute": 3, "tokens_per_minute": 1000},
    {"model": HAIKU, "concurrent_streams": 4},
]


@pytest.fixture(params=["process", "redis"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@asynccontextmanager
async def server(
    backend: str, redis: RedisServer, engine: ScriptedEngine | None = None, **limits: Any
) -> AsyncIterator[OutcropApp]:
    sections: dict[str, Any] = {
        "engines": {"default": {"type": "scripted"}},
        "quotas": QUOTAS,
        "limits": limits,
    }
    if backend == "redis":
        sections["shared"] = {"url": redis.url, "key_prefix": f"t{uuid.uuid4().hex[:12]}"}
    app = OutcropApp(
        Settings.model_validate(sections), engines={"default": engine or ScriptedEngine()}
    )
    try:
        yield app
    finally:
        await app.close()


@pytest.fixture
def redis(backend: str, request: pytest.FixtureRequest) -> RedisServer | None:
    return request.getfixturevalue("redis_server") if backend == "redis" else None


async def counters(app: OutcropApp, query: str = "") -> dict[str, Any]:
    answer = await call(app, "GET", "/_outcrop/quotas", query=query)
    assert answer.status == 200, answer.body
    body: dict[str, Any] = json.loads(answer.body)
    return body


async def settled(app: OutcropApp) -> None:
    """Redis settles after the response (a task); wait for it."""
    if isinstance(app.quotas, SharedQuotaEnforcer):
        await asyncio.gather(*app.quotas._releasing)


async def test_lists_each_rule_with_the_levels_left_busiest_first(
    backend: str, redis: RedisServer
) -> None:
    async with server(backend, redis) as app:
        before = await counters(app)
        assert before["backend"] == backend
        assert [q["rule"]["model"] for q in before["quotas"]] == ["anthropic.*", HAIKU]
        assert [q["counters"] for q in before["quotas"]] == [[], []]

        started = time.monotonic()
        for path in (PATH, PATH, SONNET_PATH):
            assert (await call(app, "POST", path, claude())).status == 200
        await settled(app)
        listed = await counters(app)
        elapsed = time.monotonic() - started

        rates = listed["quotas"][0]
        assert (rates["total"], rates["truncated"]) == (2, False)
        haiku, sonnet = rates["counters"]  # the emptier bucket first
        assert (haiku["model"], sonnet["model"]) == (HAIKU, SONNET)
        refill = elapsed * 3 / 60 + 0.01  # what the buckets earned meanwhile, at most
        assert 1 <= haiku["requestsLeft"] <= 1 + refill
        assert 2 <= sonnet["requestsLeft"] <= 2 + refill
        # Tokens: reserved, then settled to the usage; some were used.
        assert 0 < haiku["tokensLeft"] < 1000
        assert haiku["requestsPerMinute"] == 3 and haiku["tokensPerMinute"] == 1000
        assert haiku["concurrentStreams"] is None and haiku["streamsInFlight"] == 0
        # The streams-only rule: no buckets. In process it made a counter for HAIKU's calls;
        # Redis holds a stream counter only once a stream was admitted.
        expected = [] if backend == "redis" else [HAIKU]
        streams = listed["quotas"][1]["counters"]
        assert [row["model"] for row in streams] == expected
        assert all(r["requestsLeft"] is None and r["tokensLeft"] is None for r in streams)

        first = await counters(app, "limit=1")
        assert first["limit"] == 1
        assert [c["model"] for c in first["quotas"][0]["counters"]] == [HAIKU]
        assert first["quotas"][0]["truncated"] is True


async def test_streams_in_flight_are_counted_until_they_end(
    backend: str, redis: RedisServer
) -> None:
    slow = ScriptedEngine(ScriptedConfig(token_count=10_000, delay_ms=20))
    async with server(backend, redis, slow) as app:
        held = asyncio.create_task(
            call(app, "POST", STREAM, claude(max_tokens=900), disconnect_after_chunks=100)
        )
        in_flight = None
        for _ in range(6000):  # until the stream is admitted (polled: no event to wait on)
            rows = (await counters(app))["quotas"][1]["counters"]
            in_flight = rows[0]["streamsInFlight"] if rows else None
            if in_flight == 1 or held.done():
                break
            await asyncio.sleep(0.01)
        assert in_flight == 1
        await held
        await settled(app)
        rows = (await counters(app))["quotas"][1]["counters"]
        if backend == "redis":
            assert rows == []  # the lease set emptied: Redis dropped the key
        else:
            (row,) = rows
            assert (row["model"], row["streamsInFlight"], row["concurrentStreams"]) == (
                HAIKU,
                0,
                4,
            )


@pytest.mark.parametrize("query", ["limit=0", "limit=abc", "limit=6", "limit=-1"])
async def test_a_bad_limit_is_refused(backend: str, redis: RedisServer, query: str) -> None:
    async with server(backend, redis, max_quota_counters_listed=5) as app:
        answer = await call(app, "GET", "/_outcrop/quotas", query=query)
        assert answer.status == 400
        assert json.loads(answer.body) == {"message": "limit must be an integer from 1 to 5"}
        assert (await counters(app, "limit=5"))["limit"] == 5


async def test_the_counters_are_behind_the_admin_guard() -> None:
    app = OutcropApp(
        Settings.model_validate(
            {"engines": {"default": {"type": "scripted"}}, "quotas": QUOTAS, **VERIFY}
        ),
        engines={"default": ScriptedEngine()},
    )
    try:
        unsigned = await call(app, "GET", "/_outcrop/quotas", headers=LOCAL)
        assert unsigned.status == 403
        assert unsigned.headers["x-amzn-errortype"].startswith("MissingAuthenticationToken")
        cross_site = [*LOCAL, ("origin", "http://evil.example")]
        assert (await call(app, "GET", "/_outcrop/quotas", headers=cross_site)).status == 403
        ok = await call(
            app, "GET", "/_outcrop/quotas", headers=signed("GET", "/_outcrop/quotas", b"")
        )
        assert ok.status == 200, ok.body
        assert json.loads(ok.body)["backend"] == "process"
    finally:
        await app.close()
