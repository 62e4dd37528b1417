"""SageMaker endpoints: routing rules, sessions, instance capacity and async locations."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from pathlib import Path

import pytest

from outcrop.config import SageMakerSettings
from outcrop.sagemaker.async_inference import AsyncStorage
from outcrop.sagemaker.capacity import InstancePool
from outcrop.sagemaker.endpoints import IC_NOT_ALLOWED, IC_REQUIRED, EndpointRegistry, RouteRequest
from outcrop.sagemaker.sessions import (
    SessionTable,
    format_new_session,
    parse_new_session,
)
from outcrop.wire.errors import SageMakerValidationError

SETTINGS = SageMakerSettings.model_validate(
    {
        "endpoints": {
            "ab": {
                "variants": [
                    {"name": "A", "weight": 3, "engine": "default", "dialect": "tgi"},
                    {"name": "B", "weight": 1, "url": "http://127.0.0.1:1/"},
                ]
            },
            "multi": {
                "variants": [
                    {"name": "D", "containers": {"x": {"url": "http://x"}, "y": {"engine": "e"}}}
                ]
            },
            "ic": {
                "variants": [{"name": "V", "engine": "default"}],
                "inference_components": {"small": {"engine": "default", "copies": 2}},
            },
        }
    }
)


def registry(seed: int = 7) -> EndpointRegistry:
    return EndpointRegistry(SETTINGS, random.Random(seed))


def test_unknown_endpoint_is_sagemakers_validation_error() -> None:
    with pytest.raises(SageMakerValidationError) as info:
        registry().route(RouteRequest("nope"))
    assert info.value.message == "Endpoint nope of account 123456789012 not found."
    assert info.value.body() == {"Message": "Endpoint nope of account 123456789012 not found."}


def test_unconfigured_registry_serves_any_name_from_the_default_engine() -> None:
    made: list[str] = []
    open_registry = EndpointRegistry(SageMakerSettings())
    open_registry.on_created = lambda e: made.append(e.name)
    route = open_registry.route(RouteRequest("whatever"))
    assert route.container.engine == "default" and route.variant.name == "AllTraffic"
    assert route.capacity == (1, None)
    open_registry.route(RouteRequest("whatever"))
    assert made == ["whatever"]


def test_weights_split_traffic() -> None:
    reg = registry()
    counts = Counter(reg.route(RouteRequest("ab")).variant.name for _ in range(4000))
    assert abs(counts["A"] / 4000 - 0.75) < 0.03
    assert reg.route(RouteRequest("ab", target_variant="B")).container.urls == (
        "http://127.0.0.1:1",
    )
    with pytest.raises(SageMakerValidationError):
        reg.route(RouteRequest("ab", target_variant="C"))


def test_direct_invocation_needs_a_known_hostname() -> None:
    reg = registry()
    assert reg.route(RouteRequest("multi", target_container="y")).container.engine == "e"
    for hostname in (None, "z"):
        with pytest.raises(SageMakerValidationError):
            reg.route(RouteRequest("multi", target_container=hostname))
    with pytest.raises(SageMakerValidationError):
        reg.route(RouteRequest("ab", target_container="x"))


def test_inference_components() -> None:
    reg = registry()
    route = reg.route(RouteRequest("ic", inference_component="small"))
    assert route.component is not None and route.variant.name == "V"
    assert route.capacity == (2, 1) and route.pool_key == ("ic", "component:small")
    with pytest.raises(SageMakerValidationError) as info:
        reg.route(RouteRequest("ic"))
    assert info.value.message == IC_REQUIRED
    with pytest.raises(SageMakerValidationError) as info:
        reg.route(RouteRequest("ab", inference_component="small"))
    assert info.value.message == IC_NOT_ALLOWED
    with pytest.raises(SageMakerValidationError):
        reg.route(RouteRequest("ic", inference_component="big"))


def test_target_model_is_refused() -> None:
    with pytest.raises(SageMakerValidationError) as info:
        registry().route(RouteRequest("ab", target_model="m.tar.gz"))
    assert "is not a multi-model endpoint" in info.value.message


def test_session_table_expiry_and_close() -> None:
    now = [1000.0]
    table = SessionTable(clock=lambda: now[0])
    route = registry().route(RouteRequest("ab", target_variant="B"))
    table.open("s-1", route, 1, expires_at=1010.0)
    assert table.lookup("ab", "s-1").instance == 1
    with pytest.raises(SageMakerValidationError):
        table.lookup("multi", "s-1")  # another endpoint's session
    now[0] = 1010.0
    with pytest.raises(SageMakerValidationError):
        table.lookup("ab", "s-1")
    table.open("s-2", route, 0, expires_at=2000.0)
    table.close("s-2")
    with pytest.raises(SageMakerValidationError):
        table.lookup("ab", "s-2")


def test_new_session_header_round_trip() -> None:
    value = format_new_session("abc-1", 1_700_000_000.0)
    assert value == "abc-1; Expires=2023-11-14T22:13:20Z"
    assert parse_new_session(value, 0.0) == ("abc-1", 1_700_000_000.0)
    assert parse_new_session("abc-2", 5.0) == ("abc-2", 5.0)
    assert parse_new_session("abc-3; Expires=garbage", 5.0) == ("abc-3", 5.0)


async def test_pool_bounds_concurrency_and_pins_instances() -> None:
    pool = InstancePool(2, 1)
    a = await pool.acquire()
    b = await pool.acquire()
    assert {a.instance, b.instance} == {0, 1}
    waiting = asyncio.ensure_future(pool.acquire(instance=a.instance))
    await asyncio.sleep(0.01)
    assert not waiting.done()
    b.release()
    await asyncio.sleep(0.01)
    assert not waiting.done()  # pinned to a's instance, b's release does not help
    a.release()
    a.release()  # idempotent
    c = await asyncio.wait_for(waiting, 1)
    assert c.instance == a.instance and pool.in_flight[c.instance] == 1
    c.release()
    assert pool.in_flight == [0, 0]


async def test_unbounded_pool_never_waits() -> None:
    pool = InstancePool(1, None)
    slots = [await pool.acquire() for _ in range(50)]
    assert pool.in_flight == [50]
    for slot in slots:
        slot.release()


def test_async_locations(tmp_path: Path) -> None:
    storage = AsyncStorage(tmp_path)
    default = storage.locations(
        "ep", "id-1", output_path=None, failure_path=None, extension=None, filename=None
    )
    assert default.output == "s3://outcrop-sagemaker-async/ep/output/id-1.out"
    assert default.failure == "s3://outcrop-sagemaker-async/ep/failures/id-1-error.out"
    storage.write(default.output, b"answer")
    assert (tmp_path / "outcrop-sagemaker-async/ep/output/id-1.out").read_bytes() == b"answer"
    local = storage.locations(
        "ep",
        "id-2",
        output_path=str(tmp_path / "out"),
        failure_path="s3://bucket/fail/",
        extension="a/b",
        filename="x.json",
    )
    assert local.output == (tmp_path / "out/a/b/x.json").as_uri()
    assert local.failure == "s3://bucket/fail/a/b/id-2-error.out"
    storage.write(local.output, b"1")
    assert storage.local_path(local.output).read_bytes() == b"1"
    storage.write("s3://inputs/request.json", b"2")
    assert storage.read("s3://inputs/request.json") == b"2"
    assert storage.local_path("s3://bucket/k%20ey") == tmp_path / "bucket" / "k ey"
