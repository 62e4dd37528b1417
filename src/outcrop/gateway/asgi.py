"""Small ASGI helpers: typed aliases, reading a bounded body, sending complete responses, and the
last-resort answer (`SendGuard`) for an exception nothing else turned into an AWS error."""

from __future__ import annotations

import asyncio
import email.utils
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from typing import Any

from outcrop.wire.errors import InternalServerException

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class BodyTooLarge(Exception):
    """The request body exceeded the limit; `size` is how much was read before stopping."""

    def __init__(self, size: int) -> None:
        super().__init__(size)
        self.size = size


class ClientGone(Exception):
    """The client disconnected before its request body arrived."""


class AbortConnection(BaseException):
    """Raised (by fault injection) to drop the connection without completing the response.

    A BaseException so that no `except Exception` on the way turns it into an error response
    or an exception frame. The gateway answers it by leaving the response incomplete, which
    ASGI servers turn into an aborted connection (HTTP/1.1: closed mid-body; HTTP/2:
    RST_STREAM).
    """

    def __init__(self, response_started: bool) -> None:
        super().__init__(response_started)
        self.response_started = response_started


async def abort_response(send: Send, started: bool, headers: list[tuple[str, str]]) -> None:
    """Leave the response incomplete: before any response, headers promising a body that
    never fully arrives; after the headers, nothing more."""
    if started:
        return
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": encode_headers(
                [*headers, ("Content-Type", "application/json"), ("Content-Length", "1024")]
            ),
        }
    )
    await send({"type": "http.response.body", "body": b"{", "more_body": True})


async def read_body(receive: Receive, limit: int) -> bytes:
    """The whole request body, or BodyTooLarge once more than `limit` bytes arrived."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone()
        chunk = message.get("body", b"")
        if chunk:
            size += len(chunk)
            if size > limit:
                raise BodyTooLarge(size)
            chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


class StreamedBody:
    """A request body read as it arrives (duplex operations), noticing the client leaving.

    `chunks()` yields body chunks until the body ends (or the client goes away);
    `wait_disconnect()` returns once the client has gone, reading `receive()` itself only after
    the body has been read, so that the two never compete for messages.
    """

    def __init__(self, receive: Receive) -> None:
        self._receive = receive
        self._gone = asyncio.Event()
        self._ended = asyncio.Event()

    async def chunks(self) -> AsyncIterator[bytes]:
        try:
            while not self._ended.is_set():
                message = await self._receive()
                if message["type"] == "http.disconnect":
                    self._gone.set()
                    return
                if not message.get("more_body", False):
                    self._ended.set()
                chunk = message.get("body", b"")
                if chunk:
                    yield chunk
        finally:
            self._ended.set()

    async def wait_disconnect(self) -> None:
        gone = asyncio.ensure_future(self._gone.wait())
        ended = asyncio.ensure_future(self._ended.wait())
        try:
            await asyncio.wait({gone, ended}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            gone.cancel()
            ended.cancel()
        if not self._gone.is_set():
            await wait_disconnect(self._receive)


async def wait_disconnect(receive: Receive) -> None:
    """Return once the client has gone (ASGI servers do not raise on send after that)."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return


def http_date() -> str:
    return email.utils.formatdate(usegmt=True)


def encode_headers(headers: list[tuple[str, str]]) -> list[tuple[bytes, bytes]]:
    return [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers]


async def send_response(
    send: Send, status: int, headers: list[tuple[str, str]], body: bytes
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": encode_headers([*headers, ("Content-Length", str(len(body)))]),
        }
    )
    await send({"type": "http.response.body", "body": body, "more_body": False})


class SendGuard:
    """Wraps an ASGI `send`, remembering whether the response has started and ended, so that an
    exception that escaped every handler can still be answered in AWS's form.

    `last_resort` answers a modelled InternalServerException (with the request's
    `x-amzn-RequestId`) when nothing was sent yet; once the headers are out it can only leave
    the response incomplete, which the server turns into an aborted response. Either way the
    exception never reaches the ASGI server, whose own answer is a plain-text 500 without
    `x-amzn-RequestId`.
    """

    def __init__(self, send: Send) -> None:
        self._send = send
        self.started = False
        self.ended = False

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.started = True
        elif message["type"] == "http.response.body" and not message.get("more_body", False):
            self.ended = True
        await self._send(message)

    async def last_resort(self, request_id: str, headers: list[tuple[str, str]]) -> None:
        logging.getLogger("outcrop").error(
            "request %s: unexpected failure while answering", request_id, exc_info=True
        )
        if self.started:
            return
        status, error_headers, body = InternalServerException("Internal server error.").to_http()
        try:
            await send_response(self, status, [*headers, *error_headers], body)
        except Exception:
            logging.getLogger("outcrop").exception("request %s: no answer possible", request_id)
