"""Stream units that are not event-stream frames (the OpenAI endpoint's server-sent events):
what fault injection's `corrupt_crc` and the invocation log make of them."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator

import pytest

from outcrop.config.security import FaultRuleSettings
from outcrop.gateway.faults import faulty_stream
from outcrop.gateway.invocation_log import invocation_entry
from outcrop.invocation.context import RequestContext
from outcrop.wire.stream_units import SERVER_SENT_EVENTS

EVENTS = [
    b'data: {"choices": [{"delta": {"content": "one"}}]}\n\n',
    b'data: {"choices": [{"delta": {"content": " two"}}]}\n\n',
    b"data: [DONE]\n\n",
]


async def _units() -> AsyncGenerator[bytes, None]:
    for event in EVENTS:
        yield event


def test_corrupted_event_is_still_an_event_but_not_json() -> None:
    async def run() -> list[bytes]:
        rule = FaultRuleSettings(action="corrupt_crc", after_events=1)
        stream = faulty_stream(rule, _units(), corrupt=SERVER_SENT_EVENTS.corrupt)
        return [unit async for unit in stream]

    sent = asyncio.run(run())
    assert sent[0] == EVENTS[0] and sent[2] == EVENTS[2]
    assert sent[1] != EVENTS[1]
    assert sent[1].startswith(b"data: ") and sent[1].endswith(b"\n\n")
    with pytest.raises(ValueError):
        json.loads(sent[1].removeprefix(b"data: "))


def test_invocation_log_decodes_server_sent_events() -> None:
    ctx = RequestContext("r-1", "InvokeModelWithResponseStream", {"modelId": "m"}, b"{}")
    ctx.call.stream_units = SERVER_SENT_EVENTS
    entry = invocation_entry(ctx, now=1_700_000_000.0, include_bodies=True, stream_frames=EVENTS)
    assert entry["output"]["outputContentType"] == "text/event-stream"
    assert entry["output"]["outputBodyJson"] == [
        {"choices": [{"delta": {"content": "one"}}]},
        {"choices": [{"delta": {"content": " two"}}]},
    ]
