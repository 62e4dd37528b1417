"""Load clients for the reliability suite and bench/hardening.py: HTTP/1.1 (aiohttp), HTTP/2
with prior knowledge (python-h2 over asyncio streams), stalled and raw sockets, and reading the
server's health, metrics and memory. Traffic goes to 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
from botocore.eventstream import EventStreamBuffer

FAST_MODEL = "anthropic.claude-3-haiku-20240307-v1:0"
"""Routed to the scripted engine without delay (an echo of the prompt)."""
SLOW_MODEL = "anthropic.claude-3-sonnet-20240229-v1:0"
"""Routed to a scripted engine with a long answer and a delay between tokens."""

SERVER_CONFIG = """
[engines.default]
type = "scripted"

[engines.slow]
type = "scripted"
token_count = 1500
delay_ms = 10

[[models]]
match = "anthropic.claude-3-sonnet*"
engine = "slow"

[[models]]
match = "*"
engine = "default"
"""
"""A scripted server: `FAST_MODEL` echoes, `SLOW_MODEL` streams 100 tokens a second for 15 s
(the scripted engine plans its whole answer up front: a few hundred bytes a token)."""


def stream_path(model: str) -> str:
    return f"/model/{model}/invoke-with-response-stream"


def claude_body(prompt: str, max_tokens: int = 4000) -> bytes:
    return json.dumps(
        {
            "anthropic_version": "bedrock-2023-05-31",
            "max_tokens": max_tokens,
            "messages": [{"role": "user", "content": prompt}],
        }
    ).encode()


def stream_text(body: bytes) -> tuple[str, bool]:
    """The text of an Anthropic response stream and whether it ended with `message_stop`.

    Raises on a frame that does not decode (bad CRC, truncated prelude) or an exception frame.
    """
    buffer = EventStreamBuffer()
    buffer.add_data(body)
    text = []
    stopped = False
    for message in buffer:
        headers = message.headers
        if headers.get(":message-type") != "event":
            raise ValueError(f"not an event: {headers} {message.payload[:200]!r}")
        event = json.loads(base64.b64decode(json.loads(message.payload)["bytes"]))
        if event["type"] == "content_block_delta":
            text.append(event["delta"]["text"])
        stopped = event["type"] == "message_stop"
    return "".join(text), stopped


def expected_echo(prompt: str) -> str:
    return "Echo: " + " ".join(prompt.split())


# -- HTTP/1.1 --------------------------------------------------------------------------------


async def h1_stream(session: aiohttp.ClientSession, url: str, prompt: str) -> bytes:
    """One InvokeModelWithResponseStream over HTTP/1.1; the raw event-stream body."""
    async with session.post(
        url + stream_path(FAST_MODEL),
        data=claude_body(prompt),
        headers={"Content-Type": "application/json"},
    ) as response:
        if response.status != 200:
            raise ValueError(f"status {response.status}: {await response.text()}")
        return await response.read()


# -- HTTP/2 with prior knowledge ---------------------------------------------------------------


@dataclass
class H2Response:
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    data: bytearray = field(default_factory=bytearray)
    ended: bool = False
    reset: int | None = None
    """The RST_STREAM error code, when the server reset the stream."""

    @property
    def done(self) -> bool:
        return self.ended or self.reset is not None


class H2Client:
    """One h2c connection (python-h2 over asyncio streams) carrying many streams.

    `window=0` announces a zero initial stream window and never grants more, so the server
    cannot send any response body (a client that does not read); otherwise received data is
    acknowledged at once.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        self.responses: dict[int, H2Response] = {}
        self.closed = False
        self.read_window = True
        self._reader_task: asyncio.Task[None] | None = None

    @classmethod
    async def open(cls, host: str, port: int, *, window: int | None = None) -> H2Client:
        reader, writer = await asyncio.open_connection(host, port)
        client = cls(reader, writer)
        client.conn.initiate_connection()
        if window is not None:
            client.read_window = False
            client.conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: window})
        await client.flush()
        client._reader_task = asyncio.create_task(client._read())
        return client

    async def flush(self) -> None:
        data = self.conn.data_to_send()
        if data and not self.writer.is_closing():
            self.writer.write(data)
            await self.writer.drain()

    async def request(self, method: str, path: str, body: bytes = b"") -> int:
        stream_id: int = self.conn.get_next_available_stream_id()
        self.responses[stream_id] = H2Response()
        headers = [
            (":method", method),
            (":path", path),
            (":scheme", "http"),
            (":authority", "127.0.0.1"),
            ("content-type", "application/json"),
            ("content-length", str(len(body))),
        ]
        self.conn.send_headers(stream_id, headers, end_stream=not body)
        if body:
            self.conn.send_data(stream_id, body, end_stream=True)
        await self.flush()
        return stream_id

    async def _read(self) -> None:
        try:
            while True:
                data = await self.reader.read(65536)
                if not data:
                    break
                for event in self.conn.receive_data(data):
                    self._on_event(event)
                await self.flush()
        except (ConnectionError, h2.exceptions.ProtocolError):
            pass
        finally:
            self.closed = True

    def _on_event(self, event: Any) -> None:
        response = self.responses.get(getattr(event, "stream_id", 0) or 0)
        if isinstance(event, h2.events.ResponseReceived) and response is not None:
            headers = {k.decode(): v.decode() for k, v in event.headers}
            response.status = int(headers[":status"])
            response.headers = headers
        elif isinstance(event, h2.events.DataReceived) and response is not None:
            response.data += event.data
            if self.read_window:
                self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        elif isinstance(event, h2.events.StreamEnded) and response is not None:
            response.ended = True
        elif isinstance(event, h2.events.StreamReset) and response is not None:
            response.reset = int(event.error_code)

    async def wait(self, stream_ids: list[int], within_s: float) -> bool:
        """Whether all those streams ended (or were reset) within `within_s` seconds."""
        deadline = time.monotonic() + within_s
        while time.monotonic() < deadline:
            if all(self.responses[s].done for s in stream_ids):
                return True
            if self.closed:
                return False
            await asyncio.sleep(0.05)
        return False

    async def close(self) -> None:
        if self._reader_task is not None:
            self._reader_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader_task
        self.writer.close()
        with contextlib.suppress(OSError):
            await self.writer.wait_closed()


# -- stalled clients ---------------------------------------------------------------------------


async def stalled_body(host: str, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A request whose headers promise a body of which only a few bytes ever come."""
    reader, writer = await asyncio.open_connection(host, port)
    body = claude_body("stalled")
    writer.write(
        (
            f"POST {stream_path(FAST_MODEL)} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode()
        + body[:10]
    )
    await writer.drain()
    return reader, writer


async def stalled_headers(
    host: str, port: int
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A request whose header block never ends."""
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(b"POST /model/x/invoke HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
    await writer.drain()
    return reader, writer


async def answer_of(reader: asyncio.StreamReader, within_s: float) -> bytes | None:
    """Everything the server sends until it closes the connection; None if it has not closed
    it within `within_s` seconds."""
    try:
        async with asyncio.timeout(within_s):
            return await reader.read()
    except TimeoutError:
        return None
    except ConnectionError:
        return b""


async def until(condition: Callable[[], bool], within_s: float) -> bool:
    """Whether `condition()` became true within `within_s` seconds (checked every 0.1 s)."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if condition():
            return True
        await asyncio.sleep(0.1)
    return condition()


# -- the server's state ------------------------------------------------------------------------


def health_answers(url: str, timeout: float = 1.0) -> bool:
    """Whether GET /_outcrop/health answers (any status) within `timeout` seconds."""
    try:
        with urllib.request.urlopen(f"{url}/_outcrop/health", timeout=timeout) as response:
            response.read()
            return True
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False


def metric_sum(url: str, name: str) -> float:
    """The sum of a metric's samples over all label sets, from /metrics."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as response:
        text = response.read().decode()
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            total += float(line.rsplit(" ", 1)[1])
    return total


def rss_bytes(pid: int) -> int:
    """The resident set size of process `pid` (Linux /proc)."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise ValueError(f"no VmRSS for {pid}")
