"""Clients that leave mid-stream, or before a non-streaming answer is ready: generation stops
and nothing stays behind (the active-streams gauge returns to 0, every call is counted as a
client disconnect)."""

from __future__ import annotations

import asyncio

import pytest

from tests.reliability.clients import (
    SLOW_MODEL,
    H2Client,
    claude_body,
    metric_sum,
    stream_path,
    until,
)
from tests.support.server import ServerProcess

pytestmark = pytest.mark.reliability

H1_STREAMS = 40
H2_STREAMS = 40
NON_STREAMING = 10
DISCONNECTS = "outcrop_invocation_client_disconnects_total"
ACTIVE = "outcrop_active_streams"


async def _h1_leave(port: int, path: str, first_bytes: int) -> None:
    """Send a request, read `first_bytes` of the answer (0: none), then close the socket."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    body = claude_body("leave early")
    writer.write(
        (
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        + body
    )
    await writer.drain()
    if first_bytes:
        await reader.readexactly(first_bytes)
    else:
        await asyncio.sleep(0.5)  # the call is generating (its answer takes minutes)
    writer.close()


async def test_clients_leaving_mid_stream_stop_generation(limited_server: ServerProcess) -> None:
    url, port = limited_server.url, limited_server.port
    before = metric_sum(url, DISCONNECTS)
    streaming = stream_path(SLOW_MODEL)
    h2 = await H2Client.open("127.0.0.1", port)
    body = claude_body("leave early")
    ids = [await h2.request("POST", streaming, body) for _ in range(H2_STREAMS)]
    await asyncio.gather(
        *(_h1_leave(port, streaming, 2000) for _ in range(H1_STREAMS)),
        *(_h1_leave(port, f"/model/{SLOW_MODEL}/invoke", 0) for _ in range(NON_STREAMING)),
    )
    assert await until(lambda: all(len(h2.responses[i].data) > 0 for i in ids), 60)
    active_while_open = metric_sum(url, ACTIVE)
    await h2.close()  # every h2 stream leaves at once with its connection
    expected = H1_STREAMS + H2_STREAMS + NON_STREAMING
    counted = await until(lambda: metric_sum(url, DISCONNECTS) - before >= expected, 60)
    drained = await until(lambda: metric_sum(url, ACTIVE) == 0, 60)
    print(
        f"\ndisconnects: {H1_STREAMS} HTTP/1.1 + {H2_STREAMS} h2c streams left mid-stream and "
        f"{NON_STREAMING} non-streaming calls left while generating; active streams "
        f"{active_while_open:.0f} before the h2 client left, {metric_sum(url, ACTIVE):.0f} after; "
        f"{metric_sum(url, DISCONNECTS) - before:.0f} client disconnects counted"
    )
    assert counted and drained
    assert active_while_open >= H2_STREAMS
