"""Replay encodes a recorded stream's frames once per loaded interaction, not once per call:
re-encoding every frame from its decoded event on each replay made replay cost more server CPU
per stream than the scripted engine generating the same stream (bench/replay.py)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from types import SimpleNamespace
from typing import cast

import pytest

from outcrop.config.recording import RecordingSettings
from outcrop.invocation.context import RequestContext
from outcrop.recording.cassette import (
    Call,
    Cassette,
    Interaction,
    RecordedEvent,
    RecordedRequest,
    RecordedResponse,
)
from outcrop.recording.operations import RecordingOperations
from outcrop.services.base import StreamResponse
from outcrop.wire import eventstream

BODY = {"messages": [{"role": "user", "content": [{"text": "hi"}]}]}
FRAMES = [eventstream.chunk_frame({"n": n, "text": f"token {n}"}) for n in range(5)]


def stream_interaction() -> Interaction:
    events = tuple(RecordedEvent.from_frame(f, t=0.0) for f in FRAMES)
    return Interaction(
        "bedrock-runtime",
        "InvokeModelWithResponseStream",
        "m",
        RecordedRequest("POST", "/model/m/invoke-with-response-stream", "", {}, {"json": BODY}),
        RecordedResponse(
            200, (("Content-Type", "application/vnd.amazon.eventstream"),), None, events
        ),
    )


async def drain(response: StreamResponse) -> list[bytes]:
    return [frame async for frame in response.frames]


def test_replayed_frames_are_encoded_once_per_interaction(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    Cassette([stream_interaction()]).save(tmp_path / "s.json")
    ops = RecordingOperations(
        RecordingSettings.model_validate({"dir": tmp_path, "mode": "none", "replay_speed": 0}),
        "us-east-1",
    )
    encoded = 0
    original = RecordedEvent.frame

    def counting(self: RecordedEvent, audio: bytes = b"") -> bytes:
        nonlocal encoded
        encoded += 1
        return original(self, audio)

    monkeypatch.setattr(RecordedEvent, "frame", counting)
    call = Call("bedrock-runtime", "InvokeModelWithResponseStream", "m", {"json": BODY})

    async def replay_three_times() -> list[list[bytes]]:
        out = []
        for _ in range(3):
            found = ops.library.decide(call).replay
            assert found is not None
            ctx = cast(RequestContext, SimpleNamespace(started=time.monotonic()))
            response = await ops._replay(ctx, found)
            assert isinstance(response, StreamResponse)
            out.append(await drain(response))
        return out

    played = asyncio.run(replay_three_times())
    assert played == [FRAMES] * 3
    assert encoded == len(FRAMES)
