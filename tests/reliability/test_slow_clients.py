"""Clients that stall their request body or their headers: health keeps answering and the
stalled connections are closed by the timeouts (2 s for bodies and 1 s for headers in this
suite's server)."""

from __future__ import annotations

import asyncio

import pytest

from tests.reliability.clients import answer_of, health_answers, stalled_body, stalled_headers
from tests.support.server import ServerProcess

pytestmark = pytest.mark.reliability

STALLED_BODIES = 150
STALLED_HEADERS = 150


async def test_stalled_bodies_and_headers_are_closed(limited_server: ServerProcess) -> None:
    port = limited_server.port
    bodies = [await stalled_body("127.0.0.1", port) for _ in range(STALLED_BODIES)]
    headers = [await stalled_headers("127.0.0.1", port) for _ in range(STALLED_HEADERS)]
    try:
        healthy_while_stalled = await asyncio.to_thread(health_answers, limited_server.url, 5.0)
        body_answers = await asyncio.gather(*(answer_of(r, 60) for r, _ in bodies))
        header_answers = await asyncio.gather(*(answer_of(r, 60) for r, _ in headers))
    finally:
        for _, writer in bodies + headers:
            writer.close()
    timed_out = sum(
        1
        for a in body_answers
        if a is not None and a.startswith(b"HTTP/1.1 408") and b"RequestTimeoutException" in a
    )
    headers_closed = sum(1 for a in header_answers if a is not None)
    healthy_after = await asyncio.to_thread(health_answers, limited_server.url, 5.0)
    print(
        f"\nslow clients: {STALLED_BODIES} stalled bodies -> {timed_out} answered 408 and "
        f"closed; {STALLED_HEADERS} stalled header blocks -> {headers_closed} closed; health "
        f"answered while stalled: {healthy_while_stalled}, after: {healthy_after}"
    )
    assert healthy_while_stalled and healthy_after
    assert timed_out == STALLED_BODIES
    assert headers_closed == STALLED_HEADERS
