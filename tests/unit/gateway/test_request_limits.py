"""The request limits in front of the app: in-flight cap, body deadline, send stall."""

from __future__ import annotations

import asyncio
import json
from collections.abc import MutableMapping
from typing import Any

import pytest

from outcrop.gateway.asgi import ClientGone, read_body, wait_disconnect
from outcrop.gateway.request_limits import RequestLimits, RequestLimitSettings

Message = MutableMapping[str, Any]


def scope(path: str = "/model/m/invoke", method: str = "POST") -> Message:
    return {"type": "http", "method": method, "path": path, "http_version": "1.1"}


class Client:
    """Records what the server sends; `receive` gives `messages`, then waits forever."""

    def __init__(self, *messages: Message, blocked_send: bool = False) -> None:
        self.messages = list(messages)
        self.sent: list[Message] = []
        self.blocked_send = blocked_send
        self.forever = asyncio.Event()  # never set: a client that sends or reads nothing more

    async def receive(self) -> Message:
        if self.messages:
            return self.messages.pop(0)
        await self.forever.wait()
        raise AssertionError("unreachable")

    async def send(self, message: Message) -> None:
        if self.blocked_send and message["type"] == "http.response.body":
            await self.forever.wait()
        self.sent.append(message)

    def answer(self) -> tuple[int, dict[str, str], Message]:
        start, body = self.sent[0], self.sent[1]
        headers = {k.decode().lower(): v.decode() for k, v in start["headers"]}
        return start["status"], headers, json.loads(body["body"])


async def echo(scope: Message, receive: Any, send: Any) -> None:
    """Reads the whole body, then answers 200."""
    try:
        body = await read_body(receive, 1 << 20)
    except ClientGone:
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def test_a_stalled_body_is_answered_408_and_closed() -> None:
    limits = RequestLimits(echo, RequestLimitSettings(body_read_timeout_s=0.05))
    client = Client({"type": "http.request", "body": b"{", "more_body": True})
    await limits(scope(), client.receive, client.send)
    status, headers, body = client.answer()
    assert status == 408
    assert headers["x-amzn-errortype"].startswith("RequestTimeoutException:")
    assert headers["connection"] == "close"
    assert len(headers["x-amzn-requestid"]) == 36
    assert "not received within 0.05 seconds" in body["message"]
    assert limits.in_flight == 0


async def test_a_body_that_arrives_in_time_is_served() -> None:
    limits = RequestLimits(echo, RequestLimitSettings(body_read_timeout_s=30))
    client = Client(
        {"type": "http.request", "body": b"a", "more_body": True},
        {"type": "http.request", "body": b"b", "more_body": False},
    )
    await limits(scope(), client.receive, client.send)
    assert client.sent[0]["status"] == 200
    assert client.sent[1]["body"] == b"ab"


async def test_the_deadline_ends_once_the_response_has_started() -> None:
    # A duplex operation answers first and reads its body for as long as the session lasts.
    received: list[Message] = []

    async def duplex(scope: Message, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await asyncio.sleep(0.1)  # longer than the deadline
        received.append(await receive())

    limits = RequestLimits(duplex, RequestLimitSettings(body_read_timeout_s=0.01))
    client = Client({"type": "http.request", "body": b"late", "more_body": True})
    await limits(scope(), client.receive, client.send)
    assert received == [{"type": "http.request", "body": b"late", "more_body": True}]
    assert [m["type"] for m in client.sent] == ["http.response.start"]


@pytest.mark.parametrize(
    ("path", "code"),
    [
        ("/model/m/invoke", "ServiceUnavailableException"),
        ("/endpoints/chat/invocations", "ServiceUnavailable"),
    ],
)
async def test_requests_past_the_cap_get_503_at_once(path: str, code: str) -> None:
    release = asyncio.Event()

    async def busy(scope: Message, receive: Any, send: Any) -> None:
        await release.wait()
        await echo(scope, receive, send)

    limits = RequestLimits(busy, RequestLimitSettings(max_requests_in_flight=2))
    body = {"type": "http.request", "body": b"{}", "more_body": False}
    holders = [Client(dict(body)) for _ in range(2)]
    tasks = [asyncio.create_task(limits(scope(), c.receive, c.send)) for c in holders]
    await asyncio.sleep(0)
    assert limits.in_flight == 2
    refused = Client(dict(body))
    await limits(scope(path), refused.receive, refused.send)
    status, headers, _ = refused.answer()
    assert (status, headers["x-amzn-errortype"].split(":")[0]) == (503, code)
    health = Client(dict(body))
    health_task = asyncio.create_task(
        limits(scope("/_outcrop/health", "GET"), health.receive, health.send)
    )
    release.set()
    await asyncio.gather(*tasks, health_task)
    assert health.sent[0]["status"] == 200  # health is never refused
    assert limits.in_flight == 0


async def test_a_stalled_send_counts_as_the_client_leaving() -> None:
    left = asyncio.Event()

    async def streaming(scope: Message, receive: Any, send: Any) -> None:
        await read_body(receive, 1 << 20)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        pump = asyncio.create_task(
            send({"type": "http.response.body", "body": b"x", "more_body": True})
        )
        await wait_disconnect(receive)  # as the gateway watches while it pumps frames
        left.set()
        pump.cancel()

    limits = RequestLimits(streaming, RequestLimitSettings(send_stall_timeout_s=0.05))
    client = Client({"type": "http.request", "body": b"{}", "more_body": False}, blocked_send=True)
    await limits(scope(), client.receive, client.send)
    assert left.is_set()


async def test_a_stalled_send_nobody_cancels_drops_the_response() -> None:
    async def blunt(scope: Message, receive: Any, send: Any) -> None:
        await read_body(receive, 1 << 20)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"x", "more_body": False})

    limits = RequestLimits(blunt, RequestLimitSettings(send_stall_timeout_s=0.05))
    client = Client({"type": "http.request", "body": b"{}", "more_body": False}, blocked_send=True)
    request = asyncio.create_task(limits(scope(), client.receive, client.send))
    with pytest.raises(asyncio.CancelledError):
        await request  # the task sending is cancelled: the server drops the response
    assert limits.in_flight == 0


def test_limits_settings_reach_granian_and_the_wrapper() -> None:
    from granian.http import HTTP1Settings, HTTP2Settings

    from outcrop.config import Settings
    from outcrop.gateway.request_limits import request_limits, transport_limits

    limits = Settings.model_validate(
        {
            "limits": {
                "max_connections": 100,
                "header_read_timeout_s": 2.5,
                "stream_send_buffer_bytes": 32768,
                "h2_max_concurrent_streams": 16,
                "max_requests_in_flight": 7,
                "body_read_timeout_s": 3,
            }
        }
    ).limits
    options = transport_limits(limits).granian_options()
    assert options["backpressure"] == 100
    http1: HTTP1Settings = options["http1_settings"]
    http2: HTTP2Settings = options["http2_settings"]
    assert (http1.header_read_timeout, http1.max_buffer_size) == (2500, 32768)
    assert (http2.max_concurrent_streams, http2.max_send_buffer_size) == (16, 32768)
    assert request_limits(limits) == RequestLimitSettings(
        max_requests_in_flight=7, body_read_timeout_s=3, send_stall_timeout_s=60
    )


def test_a_header_timeout_granian_cannot_take_is_refused_at_start() -> None:
    from pydantic import ValidationError

    from outcrop.config import Settings

    with pytest.raises(ValidationError, match="header_read_timeout_s"):
        Settings.model_validate({"limits": {"header_read_timeout_s": 120}})
