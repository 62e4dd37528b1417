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
from typing import Any

from smithy_aws_event_stream.events import EventMessage

from outcrop.wire.errors import AwsError

JSON = "application/json"
OCTET_STREAM = "application/octet-stream"
_PAD_ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


def padding(rng: random.Random | None = None) -> str:
    """Bedrock's `p` field: a prefix of the alphanumeric alphabet of random length (1-62)."""
    n = (rng or random).randint(1, len(_PAD_ALPHABET))
    return _PAD_ALPHABET[:n]


def event_frame(event_type: str, payload: bytes, content_type: str = JSON) -> bytes:
    """One `:message-type: event` frame."""
    return EventMessage(
        headers={
            ":event-type": event_type,
            ":content-type": content_type,
            ":message-type": "event",
        },
        payload=payload,
    ).encode()


def json_event_frame(event_type: str, body: dict[str, Any], *, pad: bool = True) -> bytes:
    """An event whose payload is a JSON structure (Converse events), with Bedrock's padding."""
    if pad:
        body = {**body, "p": padding()}
    return event_frame(event_type, _dumps(body))


def chunk_frame(model_object: dict[str, Any], *, pad: bool = True) -> bytes:
    """A Bedrock `chunk` event carrying one complete model JSON object, base64-encoded."""
    encoded = base64.b64encode(_dumps(model_object)).decode("ascii")
    envelope: dict[str, Any] = {"bytes": encoded}
    if pad:
        envelope["p"] = padding()
    return event_frame("chunk", _dumps(envelope))


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
        payload=_dumps(error.body()),
    ).encode()


def error_frame(code: str, message: str) -> bytes:
    """An unmodelled `:message-type: error` frame (no payload)."""
    return EventMessage(
        headers={":message-type": "error", ":error-code": code, ":error-message": message},
        payload=b"",
    ).encode()


def _dumps(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()
