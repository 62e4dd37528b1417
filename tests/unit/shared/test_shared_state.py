"""Quotas and rules shared through Redis (outcrop.shared): two apps in one process act as two
replicas on one Redis, each test under its own key prefix."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from outcrop.app import OutcropApp
from outcrop.config import Settings
from outcrop.engines.scripted import ScriptedConfig, ScriptedEngine
from outcrop.gateway.faults import FaultInjector
from outcrop.invocation.admission import CallAdmission
from outcrop.invocation.context import RequestContext
from outcrop.shared.quotas import SharedQuotaEnforcer
from outcrop.types import ChatMessage, Finish, GenerationRequest, SamplingParams, StopReason
from outcrop.wire.errors import ThrottlingException
from tests.asgi_driver import call
from tests.support.redis_server import RedisServer, running_redis
from tests.support.server import free_port
from tests.unit.test_security import PATH, claude, error

JSON = [("content-type", "application/json")]
STREAM = PATH.replace("/invoke", "/invoke-with-response-stream")
HAIKU = "anthropic.claude-3-haiku-20240307-v1:0"


def replica(
    url: str, prefix: str, engine: ScriptedEngine | None = None, **sections: Any
) -> OutcropApp:
    shared = {"url": url, "key_prefix": prefix, **sections.pop("shared", {})}
    settings = Settings.model_validate(
        {"engines": {"default": {"type": "scripted"}}, "shared": shared, **sections}
    )
    return OutcropApp(settings, engines={"default": engine or ScriptedEngine()})


@asynccontextmanager
async def replicas(n: int, url: str, **sections: Any) -> AsyncIterator[list[OutcropApp]]:
    prefix = f"t{uuid.uuid4().hex[:12]}"
    apps = [replica(url, prefix, **sections) for _ in range(n)]
    try:
        yield apps
    finally:
        for app in apps:
            await app.close()


def quota(app: OutcropApp) -> SharedQuotaEnforcer:
    assert isinstance(app.quotas, SharedQuotaEnforcer)
    return app.quotas


async def test_requests_per_minute_are_counted_across_replicas(redis_server: RedisServer) -> None:
    async with replicas(
        2, redis_server.url, quotas=[{"model": HAIKU, "requests_per_minute": 3}]
    ) as (a, b):
        statuses = [(await call(app, "POST", PATH, claude())).status for app in (a, b, a)]
        assert statuses == [200, 200, 200]
        status, code, message = error(await call(b, "POST", PATH, claude()))
        assert (status, code, message) == (
            429,
            "ThrottlingException",
            "Too many requests, please wait before trying again.",
        )


async def test_concurrent_streams_are_leases_across_replicas(redis_server: RedisServer) -> None:
    slow = ScriptedEngine(ScriptedConfig(token_count=10_000, delay_ms=20))
    prefix = f"t{uuid.uuid4().hex[:12]}"
    sections: dict[str, Any] = {"quotas": [{"model": HAIKU, "concurrent_streams": 2}]}
    a = replica(redis_server.url, prefix, slow, **sections)
    b = replica(redis_server.url, prefix, **sections)
    try:
        # Two streams held open on A (disconnected by the client only later).
        held = [
            asyncio.create_task(
                call(a, "POST", STREAM, claude(max_tokens=4000), disconnect_after_chunks=400)
            )
            for _ in range(2)
        ]

        for _ in range(6000):  # until both are admitted (polled: no event to wait on)
            if len(quota(a)._held) == 2:
                break
            await asyncio.sleep(0.01)
        assert len(quota(a)._held) == 2
        status, code, _ = error(await call(b, "POST", STREAM, claude()))
        assert (status, code) == (400, "ServiceQuotaExceededException")
        await asyncio.gather(*held)
        await asyncio.gather(*quota(a)._releasing)
        assert (await call(b, "POST", STREAM, claude())).status == 200
    finally:
        await a.close()
        await b.close()


async def test_token_quota_reserves_fleet_wide(redis_server: RedisServer) -> None:
    async with replicas(
        2, redis_server.url, quotas=[{"model": HAIKU, "tokens_per_minute": 100}]
    ) as (a, b):
        status, code, _ = error(await call(a, "POST", PATH, claude(max_tokens=500)))
        assert (status, code) == (400, "ServiceQuotaExceededException")
        assert (await call(a, "POST", PATH, claude(max_tokens=90))).status == 200
        # A reserved 90 + input; settled to what it used. B now lacks room for 90 more.
        await asyncio.gather(*quota(a)._releasing)
        status, code, message = error(await call(b, "POST", PATH, claude(max_tokens=95)))
        assert (status, code, message) == (
            429,
            "ThrottlingException",
            "Too many tokens, please wait before trying again.",
        )


async def test_a_fault_added_on_one_replica_fires_once_on_another(
    redis_server: RedisServer,
) -> None:
    async with replicas(2, redis_server.url) as (a, b):
        rule = {"action": "error", "error": "ServiceUnavailableException", "times": 1}
        added = await call(a, "POST", "/_outcrop/faults", json.dumps(rule).encode(), JSON)
        assert added.status == 201, added.body
        rule_id = json.loads(added.body)["id"]
        assert rule_id == "fault-1"
        status, code, _ = error(await call(b, "POST", PATH, claude()))
        assert (status, code) == (503, "ServiceUnavailableException")
        assert (await call(a, "POST", PATH, claude())).status == 200
        assert (await call(b, "POST", PATH, claude())).status == 200
        listed = json.loads((await call(b, "GET", "/_outcrop/faults")).body)["rules"]
        assert [(r["id"], r["fired"], r["remaining"]) for r in listed] == [(rule_id, 1, 0)]
        deleted = await call(b, "DELETE", "/_outcrop/faults/rule", query=f"id={rule_id}")
        assert deleted.status == 200
        assert json.loads((await call(a, "GET", "/_outcrop/faults")).body)["rules"] == []


async def test_a_scripted_response_queued_on_one_replica_answers_on_another(
    redis_server: RedisServer,
) -> None:
    async with replicas(3, redis_server.url) as (a, b, c):
        added = await call(
            a, "POST", "/_outcrop/responses", json.dumps({"text": "from A"}).encode(), JSON
        )
        assert added.status == 201, added.body
        answered = await call(c, "POST", PATH, claude())
        assert json.loads(answered.body)["content"][0]["text"] == "from A"
        again = await call(b, "POST", PATH, claude())
        assert json.loads(again.body)["content"][0]["text"] != "from A"


async def test_configured_faults_are_added_once_by_every_replica(redis_server: RedisServer) -> None:
    faults = [{"action": "error", "error": "ThrottlingException", "operation": "Converse"}]
    async with replicas(2, redis_server.url, faults=faults) as apps:
        for app in apps:
            app.start_engines()
            await app.wait_ready()
        listed = json.loads((await call(apps[0], "GET", "/_outcrop/faults")).body)["rules"]
        assert [r["id"] for r in listed] == ["fault-config-1"]


async def test_redis_unreachable_quotas_fail_open_or_closed_and_rules_keep_the_last_copy() -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    quotas = [{"model": HAIKU, "requests_per_minute": 1}]
    async with replicas(1, dead, quotas=quotas) as (fail_open,):
        for _ in range(3):
            assert (await call(fail_open, "POST", PATH, claude())).status == 200
        health = fail_open.health()[1]
        assert health["shared"]["up"] is False
        assert health["shared"]["failures"]["quotas"] >= 3
        assert health["replica"] == fail_open.replica_id
        metrics = (await call(fail_open, "GET", "/metrics")).body.decode().splitlines()
        replica_label = f'replica="{fail_open.replica_id}"'
        assert f'outcrop_shared_up{{backend="redis",{replica_label}}} 0.0' in metrics
        quota_failures = f'outcrop_shared_failures_total{{feature="quotas",{replica_label}}}'
        assert any(
            line.startswith(quota_failures) and float(line.split()[-1]) >= 3 for line in metrics
        )
        listed = await call(fail_open, "GET", "/_outcrop/faults")
        assert listed.status == 503
        assert "Redis" in json.loads(listed.body)["message"]
    async with replicas(1, dead, quotas=quotas, shared={"quotas_on_failure": "closed"}) as (
        closed,
    ):
        status, code, _ = error(await call(closed, "POST", PATH, claude()))
        assert (status, code) == (503, "ServiceUnavailableException")


async def test_rules_fall_back_to_the_last_known_copy() -> None:
    with running_redis() as own:
        async with replicas(1, own.url, shared={"retry_after_s": 300}) as (app,):
            rule = {"action": "error", "error": "ThrottlingException", "times": 2}
            added = await call(app, "POST", "/_outcrop/faults", json.dumps(rule).encode(), JSON)
            assert added.status == 201
            assert error(await call(app, "POST", PATH, claude()))[1] == "ThrottlingException"
            injector = next(i for i in app.interceptors if isinstance(i, FaultInjector))
            assert injector.registry.rules()[0].fired == 1
            own.stop()
            # Redis is gone: the copy last read (fired once) goes on, counted here.
            assert error(await call(app, "POST", PATH, claude()))[1] == "ThrottlingException"
            assert (await call(app, "POST", PATH, claude())).status == 200
            assert app.health()[1]["shared"]["up"] is False


async def test_quotas_failing_closed_answer_sagemaker_in_its_own_shape() -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    quotas = [{"model": "my-endpoint", "requests_per_minute": 1}]
    async with replicas(1, dead, quotas=quotas, shared={"quotas_on_failure": "closed"}) as (app,):
        result = await call(
            app, "POST", "/endpoints/my-endpoint/invocations", b'{"inputs": "hi"}', JSON
        )
        assert result.status == 503
        assert result.headers["x-amzn-errortype"].split(":")[0] == "ServiceUnavailable"


async def test_a_replica_renews_the_leases_of_its_streams(redis_server: RedisServer) -> None:
    """A stream outliving `lease_s` keeps its slot: its replica renews the lease."""
    slow = ScriptedEngine(ScriptedConfig(token_count=100_000, delay_ms=20))
    prefix = f"t{uuid.uuid4().hex[:12]}"
    sections: dict[str, Any] = {
        "quotas": [{"model": HAIKU, "concurrent_streams": 1}],
        "shared": {"lease_s": 3},  # renewed every second: a loaded machine has 2 s to spare
    }
    a = replica(redis_server.url, prefix, slow, **sections)
    b = replica(redis_server.url, prefix, **sections)
    a.start_engines()
    try:
        held = asyncio.create_task(
            call(a, "POST", STREAM, claude(max_tokens=50_000), disconnect_after_chunks=10**6)
        )
        assert a.shared is not None
        redis = a.shared.redis
        for _ in range(6000):  # polled: admitted once the lease is held
            if quota(a)._held:
                break
            await asyncio.sleep(0.01)
        (lease,) = quota(a)._held.values()
        key = lease.streams[0].streams
        first = await redis.zscore(key, lease.lease_id)
        assert first is not None
        # Until the lease was renewed and Redis's clock is past its first expiry.
        renewed: float | None = first
        for _ in range(6000):
            seconds, micros = await redis.time()
            renewed = await redis.zscore(key, lease.lease_id)
            if renewed is not None and renewed > first and seconds * 1000 + micros // 1000 > first:
                break
            await asyncio.sleep(0.05)
        assert renewed is not None and renewed > first
        status, code, _ = error(await call(b, "POST", STREAM, claude()))
        assert (status, code) == (400, "ServiceQuotaExceededException")
        held.cancel()
    finally:
        await a.close()
        await b.close()


async def test_sessions_fail_closed_while_redis_is_unreachable() -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    async with replicas(1, dead) as (app,):
        path = "/endpoints/my-endpoint/invocations"
        plain = await call(app, "POST", path, b'{"inputs": "hi"}', JSON)
        assert plain.status == 200, plain.body
        named = await call(
            app, "POST", path, b'{"inputs": "hi"}', [*JSON, ("x-amzn-sagemaker-session-id", "s-1")]
        )
        assert named.status == 503, named.body
        assert named.headers["x-amzn-errortype"].split(":")[0] == "ServiceUnavailable"


async def test_a_session_of_several_turns_settles_every_turns_reservation(
    redis_server: RedisServer,
) -> None:
    # Regression: the shared lease kept only the last reservation, so a speech session of
    # several turns was charged each earlier turn's whole reservation.
    def turn(max_tokens: int) -> GenerationRequest:
        return GenerationRequest((ChatMessage("user", "hi"),), SamplingParams(max_tokens))

    sonic = "amazon.nova-sonic-v1:0"
    async with replicas(1, redis_server.url, quotas=[{"tokens_per_minute": 100}]) as (a,):
        enforcer, engine = quota(a), ScriptedEngine()
        ctx = RequestContext("s1", "InvokeModelWithBidirectionalStream", {"modelId": sonic}, b"")
        await enforcer.before(ctx)
        admission = CallAdmission(ctx, sonic)
        for _ in range(2):  # two turns, each reserving about 2 + 40
            await admission.admit(engine, turn(40))
            admission.finished(Finish(StopReason.END_TURN, 2, 3))
        enforcer.after(ctx)
        later = RequestContext("s2", "InvokeModel", {"modelId": sonic}, b"")
        await enforcer.before(later)
        # 10 tokens used: a call needing about 85 fits only if both reservations came back.
        for _ in range(100):
            try:
                await CallAdmission(later, sonic).admit(engine, turn(83))
                break
            except ThrottlingException:  # the settlement is sent to Redis after the call
                await asyncio.sleep(0.05)
        else:
            raise AssertionError("the session's unused reservations were not given back")
