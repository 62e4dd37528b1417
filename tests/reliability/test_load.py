"""Concurrent streams over HTTP/1.1 and h2c at once: every one arrives whole and in order."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest

from tests.reliability.clients import (
    FAST_MODEL,
    H2Client,
    claude_body,
    expected_echo,
    h1_stream,
    stream_path,
    stream_text,
)
from tests.support.server import ServerProcess

pytestmark = pytest.mark.reliability

H1_STREAMS = 200
H2_STREAMS = 100


def _check(body: bytes, prompt: str) -> str:
    """`ok`, or `corrupted` for a stream whose frames or text are not what was asked."""
    try:
        text, stopped = stream_text(body)
    except Exception:
        return "corrupted"
    return "ok" if stopped and text == expected_echo(prompt) else "corrupted"


async def test_concurrent_http1_and_h2c_streams_arrive_whole(
    limited_server: ServerProcess,
) -> None:
    prompts = [f"stream {i}: granite, basalt and {i * 7} grains of quartz" for i in range(300)]
    h1_prompts, h2_prompts = prompts[:H1_STREAMS], prompts[H1_STREAMS:][:H2_STREAMS]
    started = time.monotonic()
    timeout = aiohttp.ClientTimeout(total=180)
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0), timeout=timeout
    ) as session:
        h2 = await H2Client.open("127.0.0.1", limited_server.port)
        try:
            path = stream_path(FAST_MODEL)
            ids = [await h2.request("POST", path, claude_body(p)) for p in h2_prompts]
            h1_results = await asyncio.gather(
                *(h1_stream(session, limited_server.url, p) for p in h1_prompts),
                return_exceptions=True,
            )
            await h2.wait(ids, 180)
        finally:
            await h2.close()
    elapsed = time.monotonic() - started
    outcomes: dict[str, int] = {"ok": 0, "lost": 0, "corrupted": 0}
    for result, prompt in zip(h1_results, h1_prompts, strict=True):
        outcomes["lost" if isinstance(result, BaseException) else _check(result, prompt)] += 1
    for stream_id, prompt in zip(ids, h2_prompts, strict=True):
        response = h2.responses[stream_id]
        if not response.ended or response.status != 200:
            outcomes["lost"] += 1
        else:
            outcomes[_check(bytes(response.data), prompt)] += 1
    print(
        f"\nload: {H1_STREAMS} HTTP/1.1 + {H2_STREAMS} h2c streams in {elapsed:.1f} s: "
        f"{outcomes['ok']} whole, {outcomes['lost']} lost, {outcomes['corrupted']} corrupted"
    )
    assert outcomes == {"ok": H1_STREAMS + H2_STREAMS, "lost": 0, "corrupted": 0}
