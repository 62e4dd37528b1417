"""Encoding of `application/vnd.amazon.eventstream` frames, with `smithy-aws-event-stream`.

Bedrock's `chunk` events carry `{"bytes": "<base64 of one model JSON object>", "p": "<padding>"}`;
Converse events carry the event structure's JSON directly; modelled exceptions are frames with
`:message-type: exception` and the union member as `:exception-type` (lowerCamel for Bedrock,
the shape name for SageMaker). SageMaker's `PayloadPart` events carry the container's raw bytes.
Header order follows real Bedrock (`:event-type`, `:content-type`, `:message-type`).
"""

from __future__ import annotations

import base64
import json
import random
from functools import cache
from typing import Any

import orjson
from smithy_aws_event_stream.events import EventHeaderEncoder, EventMessage
from smithy_aws_event_stream.events import _EventEncoder as _FrameEncoder

from outcrop.wire.errors import AwsError

JSON = "application/json"
OCTET_STREAM = "application/octet-stream"
_PAD_ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


_PADS = [_PAD_ALPHABET[:n] for n in range(1, len(_PAD_ALPHABET) + 1)]


def padding(rng: random.Random | None = None) -> str:
    """Bedrock's `p` field: a prefix of the alphanumeric alphabet of random length (1-62)."""
    return (rng or random).choice(_PADS)


def event_frame(event_type: str, payload: bytes, content_type: str = JSON) -> bytes:
    """One `:message-type: event` frame.

    Every frame of a stream has the same headers, so their encoding (by the library's header
    encoder) is cached, and the library's frame encoder adds the prelude and CRCs. This is the
    hot path of streaming; `smithy-aws-event-stream` is pinned, since `_EventEncoder` is
    private, and the unit tests check the bytes against the reference vector.
    """
    return _FRAMES.encode_bytes(headers=_event_headers(event_type, content_type), payload=payload)


_FRAMES = _FrameEncoder()


@cache
def _event_headers(event_type: str, content_type: str) -> bytes:
    encoder = EventHeaderEncoder()
    encoder.encode_headers(
        {":event-type": event_type, ":content-type": content_type, ":message-type": "event"}
    )
    return encoder.get_result()


def json_event_frame(event_type: str, body: dict[str, Any], *, pad: bool = True) -> bytes:
    """An event whose payload is a JSON structure (Converse events), with Bedrock's padding."""
    if pad:
        body = {**body, "p": padding()}
    return event_frame(event_type, _dumps(body))


def chunk_frame(model_object: dict[str, Any], *, pad: bool = True) -> bytes:
    """A Bedrock `chunk` event carrying one complete model JSON object, base64-encoded."""
    encoded = base64.b64encode(_dumps(model_object))
    # Base64 and the padding alphabet need no JSON escaping, so the envelope is assembled
    # directly: this is the hot path of every stream.
    if pad:
        envelope = b'{"bytes":"' + encoded + b'","p":"' + padding().encode() + b'"}'
    else:
        envelope = b'{"bytes":"' + encoded + b'"}'
    return event_frame("chunk", envelope)


def payload_part_frame(data: bytes) -> bytes:
    """A SageMaker `PayloadPart` event: the container's bytes as the raw event payload.

    `Bytes` is the `eventpayload` member, so the payload is not JSON. Real SageMaker's
    `:content-type` on these events is unverified; `application/octet-stream` is smithy's
    default for a blob event payload, and neither boto3 nor the JS SDK reads it.
    """
    return event_frame("PayloadPart", data, OCTET_STREAM)


def exception_frame(error: AwsError) -> bytes:
    """A modelled exception frame for `error` (boto3 raises EventStreamError with its code)."""
    return EventMessage(
        headers={
            ":exception-type": error.stream_member(),
            ":content-type": JSON,
            ":message-type": "exception",
        },
        payload=_error_payload(error),
    ).encode()


def _error_payload(error: AwsError) -> bytes:
    try:
        return _dumps(error.body())
    except orjson.JSONEncodeError:  # a lone surrogate in the message: escaped, as JSON allows
        return json.dumps(error.body()).encode()


def error_frame(code: str, message: str) -> bytes:
    """An unmodelled `:message-type: error` frame (no payload)."""
    return EventMessage(
        headers={":message-type": "error", ":error-code": code, ":error-message": message},
        payload=b"",
    ).encode()


def _dumps(obj: dict[str, Any]) -> bytes:
    return orjson.dumps(obj)
