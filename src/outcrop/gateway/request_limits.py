"""Request limits the HTTP server does not enforce, as an ASGI wrapper around the app.

Granian bounds connections, header reads and per-stream buffers (`outcrop.server`); what it
leaves to the app is bounded here (every limit, its key and what the client sees:
docs/limits.md):

* **Requests in flight.** At most `max_requests_in_flight` requests are handled at once;
  another one is answered at once with 503 (`ServiceUnavailableException`, or SageMaker's
  `ServiceUnavailable` under `/endpoints/`), which the SDKs retry with back-off, instead of
  queueing without end. `GET /_outcrop/health` is never refused, so health answers under load.
* **Request body deadline.** A request's body must have arrived whole within
  `body_read_timeout_s` of the app's first read of it. A client that stalls its body is
  answered 408 `RequestTimeoutException` (retried by the SDKs) and its connection closed; the
  app sees the client leave (`http.disconnect`). The deadline ends once the app starts its
  response: a duplex operation reads its body while it answers, for as long as the session
  lasts.
* **Send stall.** A response body message the client does not take within
  `send_stall_timeout_s` (its receive window or socket buffer full: it stopped reading) counts
  as the client leaving: the app's `receive()` answers `http.disconnect`, so a stream is
  cancelled as for a client that left (generation stops, the call is recorded as a client
  disconnect); if the app does not cancel the send within `_STALL_GRACE_S`, the task sending
  is cancelled and the response dropped. Either way the stream is reset. Sends are not timed
  one by one (a timer per event-stream frame costs more than the frame): one watchdog task
  looks at the sends in progress every `min(1 s, send_stall_timeout_s / 4)`. Until then the
  app's `send`
  waits, so a client that reads slowly slows its generation down rather than growing buffers
  (Granian holds at most `stream_send_buffer_bytes` per stream).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from outcrop.gateway.asgi import (
    Message,
    Receive,
    Scope,
    Send,
    http_date,
    send_response,
)
from outcrop.security_settings import LimitsSettings
from outcrop.server import TransportLimits
from outcrop.wire.errors import (
    AwsError,
    RequestTimeout,
    ServiceUnavailable,
    ServiceUnavailableException,
)

ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

HEALTH_PATH = "/_outcrop/health"
_DISCONNECT: Message = {"type": "http.disconnect"}
_MIN_RECEIVE_WAIT_S = 0.25
"""How long a body read waits at least, past the deadline included (event-loop lag)."""
_STALL_GRACE_S = 1.0
"""After a send stall, how long the app has to cancel its stream before the response is
dropped."""
_SAGEMAKER_PREFIX = "/endpoints/"


@dataclass(frozen=True, slots=True)
class RequestLimitSettings:
    """The `[limits]` keys of the same names (defaults as there)."""

    max_requests_in_flight: int = 2048
    body_read_timeout_s: float = 30.0
    send_stall_timeout_s: float = 60.0


def request_limits(limits: LimitsSettings) -> RequestLimitSettings:
    return RequestLimitSettings(
        max_requests_in_flight=limits.max_requests_in_flight,
        body_read_timeout_s=limits.body_read_timeout_s,
        send_stall_timeout_s=limits.send_stall_timeout_s,
    )


def transport_limits(limits: LimitsSettings) -> TransportLimits:
    return TransportLimits(
        max_connections=limits.max_connections,
        listen_backlog=limits.listen_backlog,
        header_read_timeout_s=limits.header_read_timeout_s,
        stream_send_buffer_bytes=limits.stream_send_buffer_bytes,
        h2_max_concurrent_streams=limits.h2_max_concurrent_streams,
        h2_receive_window_bytes=limits.h2_receive_window_bytes,
    )


class RequestLimits:
    """Wraps an ASGI app with the request limits above; `in_flight` counts requests now."""

    def __init__(self, app: ASGIApp, settings: RequestLimitSettings) -> None:
        self.app = app
        self.settings = settings
        self.in_flight = 0
        self._requests: set[_LimitedRequest] = set()
        self._watchdog: asyncio.Task[None] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        exempt = scope.get("path") == HEALTH_PATH and scope.get("method") == "GET"
        if not exempt and self.in_flight >= self.settings.max_requests_in_flight:
            await _refuse(scope, send, _busy(scope))
            return
        self.in_flight += 1
        request = _LimitedRequest(receive, send, self.settings)
        self._requests.add(request)
        if self._watchdog is None or self._watchdog.done():
            self._watchdog = asyncio.create_task(self._watch(), name="outcrop send watchdog")
        try:
            await self.app(scope, request.receive, request.send)
        finally:
            self.in_flight -= 1
            self._requests.discard(request)
        if request.timed_out and not request.response_started:
            await _refuse(
                scope,
                send,
                RequestTimeout(
                    "The request body was not received within "
                    f"{self.settings.body_read_timeout_s:g} seconds."
                ),
            )

    async def _watch(self) -> None:
        """Look for stalled sends while requests are in flight."""
        period = min(1.0, self.settings.send_stall_timeout_s / 4)
        loop = asyncio.get_running_loop()
        while self._requests:
            await asyncio.sleep(period)
            now = loop.time()
            for request in list(self._requests):
                request.check_stall(now)


class _LimitedRequest:
    """One request's `receive` with the body deadline and `send` with the stall timeout."""

    def __init__(self, receive: Receive, send: Send, settings: RequestLimitSettings) -> None:
        self._receive = receive
        self._send = send
        self._stall_s = settings.send_stall_timeout_s
        self._body_timeout_s = settings.body_read_timeout_s
        self._deadline: float | None = None
        self.body_done = False
        self.response_started = False
        self.timed_out = False
        self.stalled = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        self._sending_since: float | None = None
        self._sending_task: asyncio.Task[Any] | None = None
        self._stalled_at = 0.0
        self._dropped = False

    async def receive(self) -> Message:
        if self.timed_out or self.stalled.is_set():
            return _DISCONNECT
        if self.body_done or self.response_started:
            return await self._unless_stalled()
        now = asyncio.get_running_loop().time()
        if self._deadline is None:
            self._deadline = now + self._body_timeout_s
        # A busy event loop may come back late: what has arrived meanwhile is still taken.
        remaining = max(self._deadline - now, _MIN_RECEIVE_WAIT_S)
        try:
            async with asyncio.timeout(remaining):
                message = await self._receive()
        except TimeoutError:
            self.timed_out = True
            return {"type": "http.disconnect"}
        if message["type"] != "http.request" or not message.get("more_body", False):
            self.body_done = True
        return message

    async def _unless_stalled(self) -> Message:
        """The next message, or `http.disconnect` as soon as a send stalls."""
        inner = asyncio.ensure_future(self._receive())
        stalled = asyncio.ensure_future(self.stalled.wait())
        try:
            await asyncio.wait({inner, stalled}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            inner.cancel()
            raise
        finally:
            stalled.cancel()
        if inner.done():
            return inner.result()
        inner.cancel()
        return _DISCONNECT

    async def send(self, message: Message) -> None:
        if self.timed_out and not self.response_started:
            return  # the wrapper answers 408 once the app has returned
        if message["type"] == "http.response.start":
            self.response_started = True
            await self._send(message)
            return
        self._sending_task = asyncio.current_task()
        self._sending_since = self._loop.time()
        try:
            await self._send(message)
        finally:
            self._sending_since = None

    def check_stall(self, now: float) -> None:
        """Called by the watchdog: a send waiting too long means the client stopped reading."""
        since = self._sending_since
        if since is None or self._dropped:
            return
        if not self.stalled.is_set():
            if now - since >= self._stall_s:
                self._stalled_at = now
                self.stalled.set()  # the app's disconnect watcher cancels its stream
        elif now - self._stalled_at >= _STALL_GRACE_S and self._sending_task is not None:
            self._dropped = True
            self._sending_task.cancel()


def _busy(scope: Scope) -> AwsError:
    if str(scope.get("path", "")).startswith(_SAGEMAKER_PREFIX):
        return ServiceUnavailable("The service is busy; too many requests in flight. Retry.")
    return ServiceUnavailableException(
        "Bedrock is unable to process your request: too many requests in flight. Retry."
    )


async def _refuse(scope: Scope, send: Send, err: AwsError) -> None:
    """Answer `err` without reading the body; HTTP/1.x connections are closed after it."""
    status, headers, body = err.to_http()
    base = [("x-amzn-RequestId", str(uuid.uuid4())), ("Date", http_date())]
    if str(scope.get("http_version", "1.1")).startswith("1"):
        headers = [*headers, ("Connection", "close")]
    await send_response(send, status, [*base, *headers], body)
