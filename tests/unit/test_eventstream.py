"""Event-stream frames: byte layout against the reference vector, and parsing by botocore."""

from __future__ import annotations

import base64
import binascii
import json
import struct

import botocore.session
from botocore.eventstream import EventStream, EventStreamBuffer
from botocore.exceptions import EventStreamError
from botocore.parsers import EventStreamJSONParser

from outcrop.wire import eventstream
from outcrop.wire.errors import ModelStreamErrorException, ThrottlingException

# docs/wire.md §3.3: a chunk whose bytes are this JSON, without padding.
_DELTA = {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi"}}


def test_chunk_frame_matches_reference_bytes() -> None:
    frame = eventstream.chunk_frame(_DELTA, pad=False)
    total, headers_len, prelude_crc = struct.unpack(">III", frame[:12])
    assert (total, headers_len) == (215, 75)
    assert prelude_crc == 0xBFF9E438 == binascii.crc32(frame[:8])
    assert struct.unpack(">I", frame[-4:])[0] == 0x4B8E9495 == binascii.crc32(frame[:-4])
    payload = json.loads(frame[12 + headers_len : -4])
    assert json.loads(base64.b64decode(payload["bytes"])) == _DELTA


def test_header_order_is_bedrocks() -> None:
    buf = EventStreamBuffer()
    buf.add_data(eventstream.chunk_frame(_DELTA))
    (message,) = list(buf)
    assert list(message.headers) == [":event-type", ":content-type", ":message-type"]


def test_padding_is_a_prefix_of_the_alphabet() -> None:
    for _ in range(50):
        p = eventstream.padding()
        assert 1 <= len(p) <= 62
        assert "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789".startswith(p)


def _stream(frames: bytes, operation: str = "InvokeModelWithResponseStream") -> EventStream:
    model = botocore.session.get_session().get_service_model("bedrock-runtime")
    op = model.operation_model(operation)
    output_shape = op.get_event_stream_output()

    class Raw:
        def stream(self) -> list[bytes]:
            # Split frames at odd places: parsers must cope with any chunking.
            return [frames[i : i + 7] for i in range(0, len(frames), 7)]

    return EventStream(Raw(), output_shape, EventStreamJSONParser(), operation)


def test_botocore_parses_chunks_then_raises_exception_frame() -> None:
    err = ModelStreamErrorException("boom", original_status_code=500, original_message="died")
    data = eventstream.chunk_frame(_DELTA) + eventstream.exception_frame(err)
    events = _stream(data)
    it = iter(events)
    first = next(it)
    assert json.loads(first["chunk"]["bytes"]) == _DELTA
    try:
        next(it)
    except EventStreamError as exc:
        assert exc.response["Error"] == {"Code": "modelStreamErrorException", "Message": "boom"}
    else:
        raise AssertionError("exception frame was not raised")


def test_exception_frame_headers() -> None:
    buf = EventStreamBuffer()
    buf.add_data(eventstream.exception_frame(ThrottlingException("slow down")))
    (message,) = list(buf)
    assert message.headers[":message-type"] == "exception"
    assert message.headers[":exception-type"] == "throttlingException"
    assert json.loads(message.payload) == {"message": "slow down"}
    assert message.to_response_dict()["status_code"] == 400


def test_error_frame_is_unmodelled() -> None:
    buf = EventStreamBuffer()
    buf.add_data(eventstream.error_frame("InternalFailure", "oops"))
    (message,) = list(buf)
    assert message.headers == {
        ":message-type": "error",
        ":error-code": "InternalFailure",
        ":error-message": "oops",
    }
    assert message.payload == b""


def test_converse_event_frame_carries_struct_json() -> None:
    frame = eventstream.json_event_frame("messageStart", {"role": "assistant"})
    events = list(_stream(frame, "ConverseStream"))
    assert events == [{"messageStart": {"role": "assistant"}}]
