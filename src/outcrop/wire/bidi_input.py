"""Decoding the request body of InvokeModelWithBidirectionalStream, as it arrives.

The body is a sequence of signed outer event-stream messages (see `event_signing`); each
outer payload is a complete inner message, the modelled `chunk` event
(`:message-type: event`, `:event-type: chunk`) whose JSON payload is `{"bytes": "<base64>"}`
(wire.md §4.2). `InputFrameDecoder` turns body bytes, split anywhere, into `SignedFrame`s, and
`chunk_bytes` opens one inner message. Frames are decoded by botocore's `EventStreamBuffer`,
which checks both CRCs. Sans-IO: bytes in, values out; errors are `InputFrameError`.
"""

from __future__ import annotations

import base64
import binascii
import struct

from botocore.eventstream import EventStreamBuffer, ParserError

from outcrop.wire.event_signing import EventSigningError, SignedFrame, read_signed_frame
from outcrop.wire.jsonbody import JsonInputError, load_json


class InputFrameError(ValueError):
    """The request body is not a well-formed stream of `chunk` input events."""


class InputFrameDecoder:
    """Feed request-body bytes; get the complete outer frames they finish."""

    def __init__(self) -> None:
        self._buffer = EventStreamBuffer()

    def feed(self, data: bytes) -> list[SignedFrame]:
        self._buffer.add_data(data)
        frames: list[SignedFrame] = []
        try:
            for message in self._buffer:
                frames.append(read_signed_frame(message.headers, bytes(message.payload)))
        except EventSigningError:
            raise
        except (ParserError, KeyError, struct.error, UnicodeDecodeError) as exc:
            raise InputFrameError(
                f"The input event stream is malformed: {_describe(exc)}"
            ) from None
        return frames


def chunk_bytes(inner: bytes) -> bytes:
    """The decoded `bytes` member of an inner `chunk` event message."""
    buffer = EventStreamBuffer()
    buffer.add_data(inner)
    try:
        messages = list(buffer)
    except (ParserError, KeyError, struct.error, UnicodeDecodeError) as exc:
        raise InputFrameError(f"An input event is malformed: {_describe(exc)}") from None
    if len(messages) != 1 or _framed_length(inner) != len(inner):
        raise InputFrameError("A signed input frame must carry exactly one event message.")
    message = messages[0]
    message_type = message.headers.get(":message-type")
    event_type = message.headers.get(":event-type")
    if message_type != "event" or event_type != "chunk":
        raise InputFrameError(
            f"Unsupported input event {event_type!r} (message type {message_type!r}); "
            "the only input event is chunk."
        )
    try:
        body = load_json(bytes(message.payload))
    except JsonInputError:
        raise InputFrameError("The chunk event's payload is not JSON.") from None
    if not isinstance(body, dict) or not isinstance(body.get("bytes"), str):
        raise InputFrameError("The chunk event has no bytes member.")
    try:
        return base64.b64decode(body["bytes"], validate=True)
    except (binascii.Error, ValueError):
        raise InputFrameError("The chunk event's bytes member is not valid base64.") from None


def _framed_length(data: bytes) -> int:
    return int.from_bytes(data[:4], "big") if len(data) >= 4 else -1


def _describe(exc: Exception) -> str:
    name = type(exc).__name__
    if name == "ChecksumMismatch":
        return "checksum mismatch"
    return f"{name} {exc}".strip()
