"""The units of a streamed answer, for the interceptors that look inside them.

A streaming operation hands the gateway's interceptors (`wrap_stream`) its answer as a stream of
units, each one event as its service writes it on the wire: an AWS event-stream frame for the
Runtime operations, one server-sent event for Bedrock's OpenAI-compatible endpoint. Errors
raised inside the stream are encoded by whoever encodes the units (the gateway's exception
frame, the endpoint's error event), so most interceptors never look inside a unit; the few that
do (fault injection's corrupted event, the invocation log's decoded output) ask the call's
`StreamUnits` (`CallState.stream_units`, None for event-stream frames).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Protocol


class StreamUnits(Protocol):
    """How a stream's units are written."""

    content_type: str

    def corrupt(self, unit: bytes) -> bytes:
        """The unit damaged so that a client's decoder rejects it."""
        ...

    def decode(self, units: Sequence[bytes]) -> list[Any]:
        """The stream's events as a client decodes them."""
        ...


class ServerSentEvents:
    """`data: <JSON>` events, each unit one whole event, ended by `data: [DONE]`."""

    content_type = "text/event-stream"

    def corrupt(self, unit: bytes) -> bytes:
        """The event with its JSON cut in half (server-sent events carry no checksum)."""
        data = unit.removesuffix(b"\n\n")
        return data[: max(len(b"data: ") + 1, len(data) // 2)] + b"\n\n"

    def decode(self, units: Sequence[bytes]) -> list[Any]:
        events: list[Any] = []
        for line in b"".join(units).decode("utf-8", "replace").splitlines():
            if not line.startswith("data:"):
                continue
            data = line.removeprefix("data:").strip()
            if data == "[DONE]":
                continue
            try:
                events.append(json.loads(data))
            except ValueError:
                events.append(data)
        return events


SERVER_SENT_EVENTS = ServerSentEvents()
