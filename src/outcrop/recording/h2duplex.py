"""One full-duplex HTTP/2 request to an upstream: the bidirectional stream's transport.

InvokeModelWithBidirectionalStream needs HTTP/2 (the request body and the response stream
flow at once); aiohttp speaks HTTP/1.1 only. This drives the `h2` state machine (python-hyper)
over an asyncio connection: TLS with ALPN `h2` for `https://`, prior knowledge (h2c) for
`http://`. One connection per call; the request body is sent as the caller produces it,
within the peer's flow-control windows, and the response body is handed over as it arrives
(acknowledged at once, so the peer's window never closes on us).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator, Sequence
from urllib.parse import urlsplit

import h2.config
import h2.connection
import h2.events


class DuplexError(Exception):
    """The connection or the stream failed (reset, closed early, refused)."""


class DuplexCall:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._conn = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True, header_encoding="utf-8")
        )
        self._stream_id = 0
        self.status = 0
        self.headers: list[tuple[str, str]] = []
        self._headers_ready = asyncio.Event()
        self._window = asyncio.Event()
        self._body: asyncio.Queue[bytes | BaseException | None] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._failure: BaseException | None = None

    async def start(self, method: str, authority: str, scheme: str, path: str,
                    headers: Sequence[tuple[str, str]]) -> None:  # fmt: skip
        self._conn.initiate_connection()
        self._stream_id = self._conn.get_next_available_stream_id()
        self._conn.send_headers(
            self._stream_id,
            [
                (":method", method),
                (":scheme", scheme),
                (":authority", authority),
                (":path", path),
                *((k.lower(), v) for k, v in headers if k.lower() not in ("host", "connection")),
            ],
        )
        await self._flush()
        self._task = asyncio.create_task(self._read())

    async def response(self) -> None:
        """Wait for the response headers."""
        waiter = asyncio.create_task(self._headers_ready.wait())
        assert self._task is not None
        done, _ = await asyncio.wait({waiter, self._task}, return_when=asyncio.FIRST_COMPLETED)
        if waiter not in done:
            waiter.cancel()
            raise DuplexError(f"the upstream closed before answering: {self._failure!r}")

    async def send(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            if self._failure is not None:
                raise DuplexError(f"the upstream stream failed: {self._failure!r}")
            size = min(
                self._conn.local_flow_control_window(self._stream_id),
                self._conn.max_outbound_frame_size,
                len(view),
            )
            if size <= 0:
                self._window.clear()
                await self._window.wait()
                continue
            self._conn.send_data(self._stream_id, bytes(view[:size]))
            view = view[size:]
            await self._flush()

    async def end(self) -> None:
        with contextlib.suppress(Exception):
            self._conn.end_stream(self._stream_id)
            await self._flush()

    async def chunks(self) -> AsyncIterator[bytes]:
        while True:
            item = await self._body.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise DuplexError(f"the upstream stream failed: {item!r}")
            yield item

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task
        self._writer.close()
        with contextlib.suppress(Exception):
            await self._writer.wait_closed()

    async def _flush(self) -> None:
        data = self._conn.data_to_send()
        if data:
            self._writer.write(data)
            await self._writer.drain()

    async def _read(self) -> None:
        try:
            while True:
                data = await self._reader.read(65536)
                if not data:
                    raise DuplexError("the upstream closed the connection")
                for event in self._conn.receive_data(data):
                    self._on(event)
                await self._flush()
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            self._failure = exc
            self._body.put_nowait(exc)
            self._window.set()
        finally:
            self._window.set()

    def _on(self, event: h2.events.Event) -> None:
        if isinstance(event, h2.events.ResponseReceived):
            for name, value in event.headers:
                key = name.decode() if isinstance(name, bytes) else name
                text = value.decode() if isinstance(value, bytes) else value
                if key == ":status":
                    self.status = int(text)
                elif not key.startswith(":"):
                    self.headers.append((key, text))
            self._headers_ready.set()
        elif isinstance(event, h2.events.DataReceived):
            if event.data:
                self._body.put_nowait(event.data)
            self._conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        elif isinstance(event, h2.events.StreamEnded):
            self._body.put_nowait(None)
        elif isinstance(event, h2.events.StreamReset):
            self._body.put_nowait(DuplexError(f"stream reset (error code {event.error_code})"))
        elif isinstance(event, h2.events.WindowUpdated):
            self._window.set()
        elif isinstance(event, h2.events.ConnectionTerminated):
            self._body.put_nowait(DuplexError(f"connection ended ({event.error_code})"))


async def open_duplex(
    method: str, url: str, headers: Sequence[tuple[str, str]], connect_timeout_s: float = 30.0
) -> DuplexCall:
    """Connect and send the request headers; the body follows through `send`/`end`."""
    parts = urlsplit(url)
    secure = parts.scheme == "https"
    host = parts.hostname or ""
    port = parts.port or (443 if secure else 80)
    context: ssl.SSLContext | None = None
    if secure:
        context = ssl.create_default_context()
        context.set_alpn_protocols(["h2"])
    async with asyncio.timeout(connect_timeout_s):
        reader, writer = await asyncio.open_connection(
            host, port, ssl=context, server_hostname=host if secure else None
        )
    call = DuplexCall(reader, writer)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    await call.start(method, parts.netloc, parts.scheme, path, headers)
    return call
