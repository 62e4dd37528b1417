"""A finished call's token settlement and stream release ride on the next quota script of the
same replica (no round trip of their own under load), and go alone after SETTLE_DELAY_S."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from outcrop.app import OutcropApp
from outcrop.config import Settings
from outcrop.engines.scripted import ScriptedEngine
from outcrop.shared import quotas
from outcrop.shared.quotas import SharedQuotaEnforcer
from tests.asgi_driver import call
from tests.support.redis_server import RedisServer
from tests.unit.test_security import PATH, claude


def count_round_trips(enforcer: SharedQuotaEnforcer) -> list[str]:
    """Record the feature of every call the enforcer makes to Redis."""
    made: list[str] = []
    run = enforcer.shared.run

    async def counted(feature: str, fn: Callable[[], Awaitable[Any]]) -> Any:
        made.append(feature)
        return await run(feature, fn)

    enforcer.shared.run = counted  # type: ignore[method-assign, assignment]
    return made


def app_on(redis_server: RedisServer) -> OutcropApp:
    settings = Settings.model_validate(
        {
            "engines": {"default": {"type": "scripted"}},
            "shared": {"url": redis_server.url, "key_prefix": f"t{uuid.uuid4().hex[:12]}"},
            "quotas": [{"model": "*", "tokens_per_minute": 1000}],
        }
    )
    return OutcropApp(settings, engines={"default": ScriptedEngine()})


async def tokens_left(app: OutcropApp) -> float:
    answer = await call(app, "GET", "/_outcrop/quotas")
    (row,) = json.loads(answer.body)["quotas"][0]["counters"]
    return float(row["tokensLeft"])


async def test_the_next_call_carries_the_last_ones_settlement(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(quotas, "SETTLE_DELAY_S", 3600.0)  # never alone, in this test
    app = app_on(redis_server)
    enforcer = app.quotas
    assert isinstance(enforcer, SharedQuotaEnforcer)
    try:
        made = count_round_trips(enforcer)
        assert (await call(app, "POST", PATH, claude(max_tokens=500))).status == 200
        assert len(enforcer._pending) == 1  # reserved 4 + 500; used 4 + 4: not yet given back
        assert await tokens_left(app) < 600
        assert (await call(app, "POST", PATH, claude(max_tokens=500))).status == 200
        # The second call's admission gave the first call's 496 back: its reservation fit.
        assert len(enforcer._pending) == 1
        # admit + reserve, twice; no settlement alone (and the counters read above: a SCAN, a read)
        assert [f for f in made if f == "quotas"] == ["quotas"] * 6
        assert await tokens_left(app) < 600  # the second's reservation, still held
    finally:
        await app.close()
    assert enforcer._pending == []  # close sent the last settlement


async def test_a_settlement_no_call_carries_goes_alone_after_the_delay(
    redis_server: RedisServer,
) -> None:
    app = app_on(redis_server)
    enforcer = app.quotas
    assert isinstance(enforcer, SharedQuotaEnforcer)
    try:
        assert (await call(app, "POST", PATH, claude(max_tokens=500))).status == 200
        await asyncio.gather(*enforcer._releasing)
        assert enforcer._pending == []
        assert await tokens_left(app) >= 1000 - 8  # only the usage is charged
    finally:
        await app.close()


async def test_a_call_that_does_not_stream_costs_no_round_trip_for_a_concurrency_quota(
    redis_server: RedisServer,
) -> None:
    settings = Settings.model_validate(
        {
            "engines": {"default": {"type": "scripted"}},
            "shared": {"url": redis_server.url, "key_prefix": f"t{uuid.uuid4().hex[:12]}"},
            "quotas": [{"model": "*", "concurrent_streams": 1}],
        }
    )
    app = OutcropApp(settings, engines={"default": ScriptedEngine()})
    enforcer = app.quotas
    assert isinstance(enforcer, SharedQuotaEnforcer)
    made = count_round_trips(enforcer)
    try:
        assert (await call(app, "POST", PATH, claude())).status == 200
        assert "quotas" not in made
        stream = PATH.replace("/invoke", "/invoke-with-response-stream")
        assert (await call(app, "POST", stream, claude())).status == 200
        assert "quotas" in made  # a stream takes its slot in Redis
    finally:
        await app.close()
