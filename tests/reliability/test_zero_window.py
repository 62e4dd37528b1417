"""HTTP/2 clients that never open their receive window: the server buffers a bounded amount
per stream, keeps answering health, and ends the stalled streams' generation once their send
has stalled (2 s here).

Granian then cannot reset such a stream (its end is queued behind data the client's window
does not admit), so the client sees nothing more until it opens its window or closes the
connection; what stays behind per stream is Granian's bounded channel (4 messages) and the
stream's send buffer (`stream_send_buffer_bytes`).
"""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.reliability.clients import (
    SLOW_MODEL,
    H2Client,
    claude_body,
    health_answers,
    metric_sum,
    rss_bytes,
    stream_path,
)
from tests.support.server import ServerProcess

pytestmark = pytest.mark.reliability

CONNECTIONS = 2
STREAMS_PER_CONNECTION = 100
MIB = 1024 * 1024


async def test_zero_window_streams_are_bounded_and_reset(limited_server: ServerProcess) -> None:
    pid, url = limited_server.proc.pid, limited_server.url
    rss_before = peak = rss_bytes(pid)
    clients = [
        await H2Client.open("127.0.0.1", limited_server.port, window=0) for _ in range(CONNECTIONS)
    ]
    health: list[bool] = []
    try:
        streams = [
            (client, await client.request("POST", stream_path(SLOW_MODEL), claude_body("slow")))
            for client in clients
            for _ in range(STREAMS_PER_CONNECTION)
        ]
        deadline = time.monotonic() + 60
        started = ended = 0.0
        while time.monotonic() < deadline:
            peak = max(peak, rss_bytes(pid))
            health.append(await asyncio.to_thread(health_answers, url, 5.0))
            active = metric_sum(url, "outcrop_active_streams")
            started = max(started, active)
            if started >= len(streams) and active == 0:
                ended = started
                break
            await asyncio.sleep(0.2)
        disconnects = metric_sum(url, "outcrop_invocation_client_disconnects_total")
    finally:
        for client in clients:
            await client.close()
    print(
        f"\nzero window: {len(streams)} h2c streams on {CONNECTIONS} connections; server RSS "
        f"{rss_before / MIB:.0f} MiB before, peak {peak / MIB:.0f} MiB "
        f"(+{(peak - rss_before) / MIB:.1f} MiB); {ended:.0f} of {started:.0f} active streams "
        f"ended by the send stall; health answered {sum(health)}/{len(health)} probes; "
        f"client disconnects counted so far: {disconnects:.0f}"
    )
    assert started == len(streams)
    assert ended == len(streams)
    assert all(health)
    assert peak - rss_before < 100 * MIB
