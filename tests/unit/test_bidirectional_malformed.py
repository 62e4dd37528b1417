"""Issue 13 item 10: a bidirectional session given hostile input ends at once with the modelled
`validationException` frame, and says why in the log, instead of hanging until the session
limit. Before the fix, deeply nested JSON in an input event and (with event signing) an
out-of-range `:date` killed the input reader silently: the session waited for the limit and
ended with modelTimeoutException. The limit is set short here so that such a regression fails
on the frame it gets, not on a clock.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import struct
import time
from collections.abc import MutableMapping
from typing import Any

import pytest
from botocore.eventstream import EventStreamBuffer
from smithy_aws_event_stream.events import EventMessage

from outcrop.config import ScriptedSettings, Settings, SpeechSettings
from outcrop.gateway.app import OutcropApp
from outcrop.wire.event_signing import sign_frame

PATH = "/model/amazon.nova-sonic-v1%3A0/invoke-with-bidirectional-stream"
AUTHORIZATION = (
    "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20260101/us-east-1/bedrock/aws4_request, "
    "SignedHeaders=host;x-amz-date, Signature=" + "ab" * 32
)


def app(**speech: Any) -> OutcropApp:
    settings = Settings(
        engines={"default": ScriptedSettings(type="scripted")},
        speech=SpeechSettings(session_limit_s=20, input_timeout_s=20, **speech),
    )
    return OutcropApp(settings)


def chunk(payload: bytes) -> bytes:
    """An inner `chunk` event carrying `payload` as its event JSON."""
    body = json.dumps({"bytes": base64.b64encode(payload).decode()}).encode()
    headers = {":message-type": "event", ":event-type": "chunk",
               ":content-type": "application/json"}  # fmt: skip
    return bytes(EventMessage(headers=headers, payload=body).encode())


def outer(inner: bytes, date_ms: int) -> bytes:
    """An outer frame with any int64 `:date` (the SDK encoders refuse out-of-range dates)."""
    headers = (
        b"\x05:date\x08" + struct.pack(">q", date_ms)
        + b"\x10:chunk-signature\x06" + struct.pack(">H", 32) + b"s" * 32
    )  # fmt: skip
    total = 12 + len(headers) + len(inner) + 4
    prelude = struct.pack(">II", total, len(headers))
    prelude += struct.pack(">I", binascii.crc32(prelude))
    message = prelude + headers + inner
    return message + struct.pack(">I", binascii.crc32(message))


async def session(served: OutcropApp, body: bytes, headers: list[tuple[bytes, bytes]]) -> list[Any]:
    """Run one session whose client sends `body` and keeps its input open; the frames back."""
    sent: list[MutableMapping[str, Any]] = []
    arrived: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    arrived.put_nowait({"type": "http.request", "body": body, "more_body": True})

    async def receive() -> dict[str, Any]:
        return await arrived.get()

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)
        if message["type"] == "http.response.body" and not message.get("more_body", False):
            arrived.put_nowait({"type": "http.disconnect"})

    scope = {
        "type": "http",
        "method": "POST",
        "path": PATH.replace("%3A", ":"),
        "raw_path": PATH.encode(),
        "query_string": b"",
        "headers": [(b"content-type", b"application/vnd.amazon.eventstream"), *headers],
    }
    await served(scope, receive, send)
    buffer = EventStreamBuffer()
    buffer.add_data(b"".join(m.get("body", b"") for m in sent if "body" in m))
    return list(buffer)


def the_error(frames: list[Any]) -> tuple[str, str]:
    (last,) = [f for f in frames if f.headers.get(":message-type") == "exception"]
    return last.headers[":exception-type"], json.loads(last.payload)["message"]


async def test_deeply_nested_input_event_ends_the_session_with_a_validation_event(
    caplog: pytest.LogCaptureFixture,
) -> None:
    nested = b'{"event": {"sessionStart": ' + b"[" * 5000 + b"]" * 5000 + b"}}"
    frame, _ = sign_frame("0" * 64, chunk(nested), int(time.time() * 1000), b"k" * 32, "us-east-1")
    with caplog.at_level(logging.INFO, logger="outcrop.speech"):
        frames = await session(app(), frame, [])
    kind, message = the_error(frames)
    assert kind == "validationException"
    assert message == "An input event is not valid JSON."
    assert any("An input event is not valid JSON." in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("date_ms", [2**62, -(2**62), 253402300800000])
async def test_out_of_range_date_with_event_signing_ends_with_a_validation_event(
    date_ms: int, caplog: pytest.LogCaptureFixture
) -> None:
    served = app(event_signing_secret="secret")
    start = chunk(json.dumps({"event": {"sessionStart": {}}}).encode())
    with caplog.at_level(logging.INFO, logger="outcrop.speech"):
        frames = await session(
            served,
            outer(start, date_ms),
            [
                (b"authorization", AUTHORIZATION.encode()),
                (b"x-amz-date", b"20260101T000000Z"),
                (b"host", b"localhost"),
            ],
        )
    kind, message = the_error(frames)
    assert kind == "validationException"
    assert "out of range" in message
    assert any("out of range" in r.getMessage() for r in caplog.records)
