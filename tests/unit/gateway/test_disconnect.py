"""A client that leaves a non-streaming call before its answer is ready stops the generation.

Regression for issue 13 item 11: InvokeModel, Converse and InvokeEndpoint gathered the whole
answer after their client had gone. The engine here counts the tokens it produces; the client
leaves once it has produced a few; only a few more may follow.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator, MutableMapping
from typing import Any

import pytest

from outcrop.app import OutcropApp
from outcrop.config import ScriptedSettings, Settings
from outcrop.engines.base import Engine
from outcrop.types import (
    EngineHealth,
    Finish,
    GenerationEvent,
    GenerationRequest,
    StopReason,
    TokenEvent,
)

LEAVE_AFTER = 5
PLANNED = 1000


class CountingEngine(Engine):
    """Produces `PLANNED` tokens, yielding to the event loop after each; counts them."""

    def __init__(self) -> None:
        self.name = "counting"
        self.produced = 0
        self.reached = asyncio.Event()
        self.closed = asyncio.Event()

    def health(self) -> EngineHealth:
        return EngineHealth(ready=True, state="ready")

    def count_tokens(self, request: GenerationRequest) -> int:
        return 3

    async def generate(self, request: GenerationRequest) -> AsyncGenerator[GenerationEvent, None]:
        try:
            for i in range(PLANNED):
                self.produced += 1
                if self.produced == LEAVE_AFTER:
                    self.reached.set()
                yield TokenEvent(f" t{i}")
                await asyncio.sleep(0)
            yield Finish(StopReason.END_TURN, 3, PLANNED)
        finally:
            self.closed.set()


CALLS = {
    "InvokeModel": (
        "/model/anthropic.claude-3-haiku-20240307-v1%3A0/invoke",
        {
            "anthropic_version": "bedrock-2023-05-31",
            "max_tokens": 4000,
            "messages": [{"role": "user", "content": "hi"}],
        },
    ),
    "Converse": (
        "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse",
        {"messages": [{"role": "user", "content": [{"text": "hi"}]}]},
    ),
    "InvokeEndpoint": (
        "/endpoints/chat/invocations",
        {"inputs": "hi", "parameters": {"max_new_tokens": 4000}},
    ),
}


@pytest.mark.parametrize("operation", sorted(CALLS))
async def test_generation_stops_when_the_client_leaves(operation: str) -> None:
    path, body = CALLS[operation]
    engine = CountingEngine()
    settings = Settings(engines={"default": ScriptedSettings(type="scripted")})
    app = OutcropApp(settings, engines={"default": engine})
    sent: list[MutableMapping[str, Any]] = []
    body_sent = False
    at_disconnect = 0

    async def receive() -> dict[str, Any]:
        nonlocal body_sent, at_disconnect
        if not body_sent:
            body_sent = True
            return {"type": "http.request", "body": json.dumps(body).encode(), "more_body": False}
        await engine.reached.wait()
        at_disconnect = engine.produced
        return {"type": "http.disconnect"}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": path,
        "raw_path": path.encode(),
        "headers": [(b"content-type", b"application/json")],
        "query_string": b"",
    }
    await asyncio.wait_for(app(scope, receive, send), 30)
    after = engine.produced - at_disconnect
    print(f"{operation}: {engine.produced} tokens produced, {after} after the disconnect")
    assert engine.closed.is_set()
    assert at_disconnect == LEAVE_AFTER
    assert after <= 3  # a few event-loop turns, against ~1,000 without the fix
    assert sent == []  # nothing is sent to a client that has gone
