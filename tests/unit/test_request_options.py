"""Service tiers as scheduling priorities, the priority turn, and request metadata checks."""

from __future__ import annotations

import asyncio

import pytest

from outcrop.engines.scheduling import PriorityTurn
from outcrop.services.base import RequestContext
from outcrop.services.request_options import (
    METADATA_STATE_KEY,
    parse_metadata_header,
    tier_priority,
    with_request_options,
)
from outcrop.types import ChatMessage, GenerationRequest, SamplingParams
from outcrop.wire.errors import ValidationException


def test_tiers() -> None:
    assert [tier_priority(t) for t in ("priority", "default", "reserved", "flex", None)] == [
        -1,
        0,
        0,
        1,
        0,
    ]


def test_request_options_set_priority_and_metadata() -> None:
    ctx = RequestContext(
        "r",
        "InvokeModel",
        {"serviceTier": "flex", "requestMetadata": '{"team": "search", "env": "prod"}'},
        b"",
    )
    request = GenerationRequest((ChatMessage("user", "hi"),), SamplingParams(5))
    out = with_request_options(ctx, request)
    assert out.priority == 1
    assert ctx.state[METADATA_STATE_KEY] == {"team": "search", "env": "prod"}


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("not json", "JSON object"),
        ('["a"]', "JSON object"),
        ('{"a": 1}', "JSON object"),
        ("{}", "length greater than or equal to 1"),
        ('{"bad key!": "v"}', "regular expression pattern"),
        ('{"k": "' + "v" * 257 + '"}', "length less than or equal to 256"),
        ("{" + ",".join(f'"k{i}": "v"' for i in range(17)) + "}", "less than or equal to 16"),
    ],
)
def test_metadata_errors(raw: str, message: str) -> None:
    with pytest.raises(ValidationException, match=message):
        parse_metadata_header(raw)


async def test_priority_turn_orders_by_priority_then_arrival() -> None:
    turn = PriorityTurn()
    order: list[str] = []
    await turn.acquire()

    async def worker(name: str, priority: int) -> None:
        await turn.acquire(priority)
        order.append(name)
        turn.release()

    tasks = []
    for name, priority in (("flex1", 1), ("default1", 0), ("priority1", -1), ("default2", 0)):
        tasks.append(asyncio.create_task(worker(name, priority)))
        await asyncio.sleep(0)
    cancelled = asyncio.create_task(worker("gone", -5))
    await asyncio.sleep(0)
    cancelled.cancel()
    turn.release()
    await asyncio.gather(*tasks)
    assert order == ["priority1", "default1", "default2", "flex1"]
    assert not turn.locked() and turn.waiting == 0


async def test_priority_turn_with_several_slots_queues_only_beyond_them() -> None:
    turn = PriorityTurn(capacity=2)
    await turn.acquire()
    await turn.acquire(5)
    assert turn.locked() and turn.held == 2
    waiter = asyncio.create_task(turn.acquire())
    await asyncio.sleep(0)
    assert turn.waiting == 1 and not waiter.done()
    turn.release()
    await waiter  # the freed slot passed straight to the waiter
    assert turn.held == 2
    turn.release()
    turn.release()
    assert turn.held == 0 and not turn.locked()
