"""Decoding response streams for the benchmark, from frames Outcrop's wire layer encodes."""

from __future__ import annotations

from typing import Any

import pytest

from outcrop.cli.bench.decode import TEXT, Operation, StreamDecoder, StreamFailed, error_type
from outcrop.cli.native import StreamUsage
from outcrop.wire import eventstream
from outcrop.wire.errors import ModelStreamErrorException, ThrottlingException

METRICS = {
    "inputTokenCount": 7,
    "outputTokenCount": 2,
    "invocationLatency": 40,
    "firstByteLatency": 9,
}
CLAUDE_STREAM: list[dict[str, Any]] = [
    {"type": "message_start", "message": {"role": "assistant"}},
    {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi"}},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "!"}},
    {"type": "content_block_stop", "index": 0},
    {"type": "message_stop", "amazon-bedrock-invocationMetrics": METRICS},
]


def _feed_in_pieces(data: bytes, size: int, operation: Operation) -> list[object]:
    decoder = StreamDecoder(operation)
    events: list[object] = []
    for i in range(0, len(data), size):
        events += decoder.feed(data[i : i + size])
    return events


@pytest.mark.parametrize("size", [1, 7, 64, 100_000])
def test_invoke_stream_in_any_split(size: int) -> None:
    data = b"".join(eventstream.chunk_frame(obj) for obj in CLAUDE_STREAM)
    events = _feed_in_pieces(data, size, Operation.invoke)
    assert events == [TEXT, TEXT, StreamUsage(7, 2, 40, 9)]


def test_converse_stream_events() -> None:
    frames = [
        eventstream.json_event_frame("messageStart", {"role": "assistant"}),
        eventstream.json_event_frame(
            "contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "Hel"}}
        ),
        eventstream.json_event_frame(
            "contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "lo"}}
        ),
        eventstream.json_event_frame("contentBlockStop", {"contentBlockIndex": 0}),
        eventstream.json_event_frame("messageStop", {"stopReason": "end_turn"}),
        eventstream.json_event_frame(
            "metadata",
            {
                "usage": {"inputTokens": 3, "outputTokens": 2, "totalTokens": 5},
                "metrics": {"latencyMs": 12},
            },
        ),
    ]
    events = _feed_in_pieces(b"".join(frames), 5, Operation.converse)
    assert events == [TEXT, TEXT, StreamUsage(3, 2, 12, None)]


def test_exception_frame_fails_with_the_error_shape_name() -> None:
    data = eventstream.chunk_frame(CLAUDE_STREAM[2]) + eventstream.exception_frame(
        ModelStreamErrorException("engine died", original_status_code=500)
    )
    decoder = StreamDecoder(Operation.invoke)
    with pytest.raises(StreamFailed) as caught:
        decoder.feed(data)
    assert caught.value.error_type == "ModelStreamErrorException"
    assert caught.value.message == "engine died"


def test_error_frame_and_corrupt_bytes() -> None:
    with pytest.raises(StreamFailed) as caught:
        StreamDecoder(Operation.invoke).feed(eventstream.error_frame("InternalFailure", "boom"))
    assert caught.value.error_type == "InternalFailure"
    frame = bytearray(eventstream.chunk_frame(CLAUDE_STREAM[2]))
    frame[-1] ^= 0xFF  # break the message CRC
    with pytest.raises(StreamFailed) as caught:
        StreamDecoder(Operation.invoke).feed(bytes(frame))
    assert caught.value.error_type == "MalformedEventStream"


def test_error_type_from_header_or_body() -> None:
    status, headers, body = ThrottlingException("slow down").to_http()
    assert error_type(status, {k.lower(): v for k, v in headers}, body) == "ThrottlingException"
    assert error_type(400, {}, b'{"__type":"com.amazon#ValidationException"}') == (
        "ValidationException"
    )
    assert error_type(502, {}, b"<html>bad gateway</html>") == "HTTP502"


def test_bad_prelude_is_a_malformed_stream() -> None:
    with pytest.raises(StreamFailed) as caught:
        StreamDecoder(Operation.invoke).feed(b"\x00\x00\x00\x05" + b"\x00" * 20)
    assert caught.value.error_type == "MalformedEventStream"


def test_partial_frames_wait_for_the_rest() -> None:
    frame = eventstream.chunk_frame(CLAUDE_STREAM[2])
    decoder = StreamDecoder(Operation.invoke)
    assert decoder.feed(frame[:11]) == []
    assert decoder.feed(frame[11:-1]) == []
    assert decoder.feed(frame[-1:] + frame) == [TEXT, TEXT]
