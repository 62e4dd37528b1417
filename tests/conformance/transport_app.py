"""A tiny ASGI app for transport tests, served by `outcrop.server` when run as a module.

Routes (any model id):

* `POST /model/{id}/invoke-with-response-stream`: three Bedrock `chunk` event-stream frames,
  300 ms apart (`--event-gap-ms`), each carrying `{"index", "http_version", "scheme"}`;
  prints `STREAM <path>` on stdout once the response headers are sent.
* `POST /model/{id}/invoke`: the request body back as the response body (JSON). For the model
  id `error-validation`, a restJson1 `ValidationException` (400) instead.
* `POST /model/error-midstream/invoke-with-response-stream`: one `chunk`, then a
  `modelStreamErrorException` frame with `originalStatusCode` and `originalMessage`.
* `POST /model/{id}/invoke-with-bidirectional-stream`: full duplex; every signed input frame's
  inner message (already a `chunk` event) is sent back as soon as it arrives; the response ends
  after the client's empty terminal frame.
* `POST /echo`: streams each request-body chunk back as soon as it arrives (full duplex).
* `GET /whoami`: the request's HTTP version and scheme as JSON.
* `POST /count`: increments a counter held by the app object and returns it with the pid, so a
  test can show that both listeners share one app and its state.

Granian, as the ASGI spec allows, sends the response headers only with the first
`http.response.body` message; the duplex routes send an empty one right after
`http.response.start` so the client sees the headers before it sends anything.

Every response carries `x-outcrop-http-version` (the HTTP version the server saw), an
`x-amzn-RequestId` and a `Date`.

`python -m tests.conformance.transport_app --port P [--tls-port Q --cert C --key K]` prints one
line, `READY <url> [<url>]`, once the listeners accept.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import email.utils
import json
import os
import struct
import sys
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

from smithy_aws_event_stream.events import EventMessage

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

EVENT_COUNT = 3


class Settings:
    event_gap_s = 0.3


def chunk_frame(payload: dict[str, Any]) -> bytes:
    """One Bedrock `chunk` event whose `bytes` member is `payload` as JSON."""
    data = base64.b64encode(json.dumps(payload).encode()).decode()
    message = EventMessage(
        headers={
            ":event-type": "chunk",
            ":content-type": "application/json",
            ":message-type": "event",
        },
        payload=json.dumps({"bytes": data}).encode(),
    )
    return bytes(message.encode())


def exception_frame(name: str, payload: dict[str, Any]) -> bytes:
    """A modelled exception inside an event stream (wire.md §3.2)."""
    message = EventMessage(
        headers={
            ":exception-type": name,
            ":content-type": "application/json",
            ":message-type": "exception",
        },
        payload=json.dumps(payload).encode(),
    )
    return bytes(message.encode())


def _headers(scope: Scope, content_type: str, extra: list[tuple[str, str]]) -> list[Any]:
    pairs = [
        ("content-type", content_type),
        ("x-amzn-RequestId", str(uuid.uuid4())),
        ("date", email.utils.formatdate(usegmt=True)),
        ("x-outcrop-http-version", str(scope.get("http_version", ""))),
        *extra,
    ]
    return [(k.lower().encode(), v.encode()) for k, v in pairs]


async def _start(send: Send, scope: Scope, content_type: str, **extra: str) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": _headers(scope, content_type, list(extra.items())),
        }
    )


async def _body(send: Send, data: bytes, more: bool = True) -> None:
    await send({"type": "http.response.body", "body": data, "more_body": more})


async def response_stream(scope: Scope, receive: Receive, send: Send) -> None:
    while (await receive()).get("more_body", False):
        pass
    await _start(
        send,
        scope,
        "application/vnd.amazon.eventstream",
        **{"X-Amzn-Bedrock-Content-Type": "application/json"},
    )
    print("STREAM", scope["path"], flush=True)
    for index in range(EVENT_COUNT):
        if index:
            await asyncio.sleep(Settings.event_gap_s)
        info = {"index": index, "http_version": scope["http_version"], "scheme": scope["scheme"]}
        await _body(send, chunk_frame(info))
        if "/model/error-midstream/" in scope["path"]:
            error = {"message": "boom", "originalStatusCode": 500, "originalMessage": "died"}
            await _body(send, exception_frame("modelStreamErrorException", error), more=False)
            return
    await _body(send, b"", more=False)


async def invoke(scope: Scope, receive: Receive, send: Send) -> None:
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body", False):
            break
    if scope["path"] == "/model/error-validation/invoke":
        await send(
            {
                "type": "http.response.start",
                "status": 400,
                "headers": _headers(
                    scope,
                    "application/json",
                    [("x-amzn-ErrorType", "ValidationException:http://internal.amazon.com/")],
                ),
            }
        )
        await _body(send, b'{"message":"The provided model identifier is invalid."}', more=False)
        return
    await _start(send, scope, "application/json")
    await _body(send, body, more=False)


async def echo(scope: Scope, receive: Receive, send: Send) -> None:
    await _start(send, scope, "application/octet-stream")
    await _body(send, b"")  # headers now, before any request body arrives
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        if message.get("body"):
            await _body(send, message["body"])
        if not message.get("more_body", False):
            break
    await _body(send, b"", more=False)


async def bidirectional(scope: Scope, receive: Receive, send: Send) -> None:
    """Send each outer frame's payload (a complete `chunk` message) back; stop at the empty one."""
    await _start(send, scope, "application/vnd.amazon.eventstream")
    await _body(send, b"")  # headers now, before any input event (wire.md §4.1)
    buffer = b""
    more = True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        buffer += message.get("body", b"")
        more = message.get("more_body", False)
        while len(buffer) >= 12:
            total, headers_length = struct.unpack(">II", buffer[:8])
            if len(buffer) < total:
                break
            frame, buffer = buffer[:total], buffer[total:]
            inner = frame[12 + headers_length : total - 4]
            if not inner:
                more = False
                break
            await _body(send, inner)
    await _body(send, b"", more=False)


async def whoami(scope: Scope, receive: Receive, send: Send) -> None:
    await _start(send, scope, "application/json")
    info = {"http_version": scope["http_version"], "scheme": scope["scheme"]}
    await _body(send, json.dumps(info).encode(), more=False)


class Counter:
    value = 0


async def count(scope: Scope, receive: Receive, send: Send) -> None:
    Counter.value += 1
    await _start(send, scope, "application/json")
    info = {"count": Counter.value, "pid": os.getpid(), "scheme": scope["scheme"]}
    await _body(send, json.dumps(info).encode(), more=False)


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    path: str = scope["path"]
    if path == "/count":
        await count(scope, receive, send)
        return
    if path.endswith("/invoke-with-response-stream"):
        await response_stream(scope, receive, send)
    elif path.endswith("/invoke"):
        await invoke(scope, receive, send)
    elif path.endswith("/invoke-with-bidirectional-stream"):
        await bidirectional(scope, receive, send)
    elif path == "/echo":
        await echo(scope, receive, send)
    elif path == "/whoami":
        await whoami(scope, receive, send)
    else:
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await _body(send, b"", more=False)


def main() -> None:
    from outcrop.server import TLSListener, run

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--tls-port", type=int)
    parser.add_argument("--cert", type=Path)
    parser.add_argument("--key", type=Path)
    parser.add_argument("--event-gap-ms", type=float, default=Settings.event_gap_s * 1000)
    args = parser.parse_args()
    Settings.event_gap_s = args.event_gap_ms / 1000
    tls = None
    if args.tls_port is not None:
        tls = TLSListener(port=args.tls_port, cert=args.cert, key=args.key)
    try:
        run(
            app, host=args.host, port=args.port, tls=tls, on_ready=_print_ready, shutdown_timeout=10
        )
    except OSError as exc:
        print(f"transport_app: {exc}", file=sys.stderr, flush=True)
        sys.exit(1)


def _print_ready(urls: list[str]) -> None:
    print("READY", *urls, flush=True)


if __name__ == "__main__":
    main()
