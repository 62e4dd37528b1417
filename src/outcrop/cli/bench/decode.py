"""Sans-IO reading of a streaming response for the benchmark: bytes in, stream events out.

`StreamDecoder.feed(data)` takes response body bytes as they arrive (any split) and returns
what they completed: `TEXT` for each event that carries generated text, a `StreamUsage` when the
stream reports usage, or raises `StreamFailed` for an exception or error frame. Frames are
parsed and CRC-checked by botocore's event-stream parser. `error_type` names a pre-stream HTTP
error the way the SDKs do (the `X-Amzn-ErrorType` header, else the body's `__type`/`code`).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from enum import StrEnum
from typing import Any, Final

from botocore.eventstream import EventStreamBuffer, ParserError

from outcrop.cli.native import StreamUsage, chunk_text, chunk_usage, converse_text, converse_usage


class Operation(StrEnum):
    """The streaming operation a benchmark calls."""

    invoke = "invoke-stream"
    """InvokeModelWithResponseStream with the model family's native body."""
    converse = "converse-stream"
    """ConverseStream."""

    @property
    def path_suffix(self) -> str:
        return "invoke-with-response-stream" if self is Operation.invoke else "converse-stream"

    @property
    def api_name(self) -> str:
        return "InvokeModelWithResponseStream" if self is Operation.invoke else "ConverseStream"


class StreamFailed(Exception):
    """The request failed; `error_type` is what the benchmark counts it as."""

    def __init__(self, error_type: str, message: str = "") -> None:
        super().__init__(f"{error_type}: {message}" if message else error_type)
        self.error_type = error_type
        self.message = message


TEXT: Final = "text"
StreamEvent = str | StreamUsage


class StreamDecoder:
    """Incremental decoder of one response stream."""

    def __init__(self, operation: Operation) -> None:
        self.operation = operation
        self._buffer = EventStreamBuffer()

    def feed(self, data: bytes) -> list[StreamEvent]:
        self._buffer.add_data(data)
        events: list[StreamEvent] = []
        try:
            for message in self._buffer:
                self._message(message.headers, message.payload, events)
        except ParserError as exc:
            raise StreamFailed("MalformedEventStream", str(exc)) from None
        return events

    def _message(self, headers: Mapping[str, Any], payload: bytes, out: list[StreamEvent]) -> None:
        kind = headers.get(":message-type")
        if kind == "exception":
            # Exception members are lowerCamel (`throttlingException`); count them under the
            # error shape's name, as the same error before the stream would be.
            member = str(headers.get(":exception-type", "exception"))
            raise StreamFailed(member[:1].upper() + member[1:], _message(payload))
        if kind == "error":
            raise StreamFailed(
                str(headers.get(":error-code", "error")), str(headers.get(":error-message", ""))
            )
        event_type = headers.get(":event-type")
        body = _json(payload)
        if self.operation is Operation.invoke:
            if event_type != "chunk" or not isinstance(body, dict) or "bytes" not in body:
                return
            chunk = _json(base64.b64decode(body["bytes"]))
            if not isinstance(chunk, dict):
                return
            if chunk_text(chunk):
                out.append(TEXT)
            usage = chunk_usage(chunk)
        else:
            if not isinstance(body, dict) or event_type is None:
                return
            event = {str(event_type): body}
            if converse_text(event):
                out.append(TEXT)
            usage = converse_usage(event)
        if usage is not None:
            out.append(usage)


def error_type(status: int, headers: Mapping[str, str], body: bytes) -> str:
    """The AWS error code of a non-200 response, as the SDKs would name it."""
    header = headers.get("x-amzn-errortype") or headers.get("X-Amzn-ErrorType")
    if header:
        return header.split(":", 1)[0]
    parsed = _json(body)
    if isinstance(parsed, dict):
        for key in ("__type", "code", "Code"):
            value = parsed.get(key)
            if isinstance(value, str) and value:
                return value.rsplit("#", 1)[-1]
    return f"HTTP{status}"


def error_message(body: bytes) -> str:
    return _message(body)


def _message(payload: bytes) -> str:
    parsed = _json(payload)
    if isinstance(parsed, dict):
        for key in ("message", "Message"):
            value = parsed.get(key)
            if isinstance(value, str):
                return value
    return payload[:200].decode("utf-8", "replace")


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, ValueError):
        return None
