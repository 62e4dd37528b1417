"""Model invocation logging in the shape of Amazon Bedrock's, one JSON object per line.

Bedrock's model invocation logs (schemaType `ModelInvocationLog`, schemaVersion `1.0`) carry
`timestamp`, `accountId`, `identity.arn`, `region`, `requestId`, `operation`, `modelId` (as the
caller named it), an `input` object (`inputContentType`, `inputTokenCount`, `inputBodyJson`)
and an `output` object (`outputContentType`, `outputTokenCount`, `outputBodyJson`), plus
`errorCode` when the call failed, and `requestMetadata` when the call carried request metadata
(the InvokeModel header or Converse's member). Outcrop writes the same keys and adds
`errorMessage`, `latencyMs` and, for streams, `timeToFirstTokenMs`; in a fleet (`[shared]`
set, or `[server] replica_id`), `replicaId`, the replica that served the call. Bodies are
written only when configured (`include_bodies`); a stream's `outputBodyJson` is the list of
its events as the client decodes them (the model's chunk objects for InvokeModelWithResponseStream,
`{eventType: payload}` for other streams; unverified against a real ConverseStream log).

`identity.arn`, `accountId` and `region` come from the `Identity` the authentication
interceptor leaves in `ctx.call.identity` (gateway/auth.py); a call refused before that
names the access key it was signed with, and the region of its SigV4 credential scope.
Invocations of the runtime services are logged (for SageMaker Runtime, `modelId` is the
endpoint name); Bedrock control-plane calls are not.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import sys
import time
from collections.abc import AsyncGenerator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO
from weakref import WeakKeyDictionary

from botocore.eventstream import EventStreamBuffer

from outcrop.config import InvocationLogSettings
from outcrop.gateway.interceptors import BaseInterceptor
from outcrop.gateway.metrics import RUNTIME_SERVICES
from outcrop.invocation.context import Identity, RequestContext

SCHEMA_TYPE = "ModelInvocationLog"
SCHEMA_VERSION = "1.0"
_CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/\d{8}/([^/,\s]+)/")


def invocation_entry(
    ctx: RequestContext,
    *,
    now: float,
    include_bodies: bool,
    stream_frames: list[bytes] | None = None,
) -> dict[str, Any]:
    """The log object for a finished invocation (`now`: wall-clock seconds at the end).

    `stream_frames` is None for a complete response, else the frames of the stream (empty
    when bodies are not logged).
    """
    record = ctx.record
    latency_ms = ctx.elapsed_ms()
    started = datetime.fromtimestamp(now - latency_ms / 1000, UTC)
    access_key, region = _credential_scope(ctx.header("authorization"))
    entry: dict[str, Any] = {
        "schemaType": SCHEMA_TYPE,
        "schemaVersion": SCHEMA_VERSION,
        "timestamp": started.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    identity = ctx.call.identity
    if identity is not None and identity.account_id:
        entry["accountId"] = identity.account_id
    entry["identity"] = _identity(identity, access_key)
    if identity is not None and identity.region:
        region = identity.region
    if region is not None:
        entry["region"] = region
    entry["requestId"] = ctx.request_id
    entry["operation"] = ctx.operation
    entry["modelId"] = str(ctx.params.get("modelId", record.model_id or ""))
    metadata = ctx.call.request_metadata
    if metadata:
        # X-Amzn-Bedrock-Request-Metadata / Converse requestMetadata, as checked and parsed by
        # invocation.request_options: the key-value pairs Bedrock's logs carry for filtering.
        entry["requestMetadata"] = dict(metadata)
    entry["input"] = _input(ctx, include_bodies)
    if record.error_code is None or stream_frames is not None:
        entry["output"] = _output(ctx, include_bodies, stream_frames)
    if record.error_code is not None:
        entry["errorCode"] = record.error_code
        if record.error_message:
            entry["errorMessage"] = record.error_message
    entry["latencyMs"] = latency_ms
    if stream_frames is not None and record.first_byte_ms is not None:
        entry["timeToFirstTokenMs"] = record.first_byte_ms
    return entry


def decode_stream_events(frames: list[bytes]) -> list[Any]:
    """The events of an event stream as a client decodes them."""
    buffer = EventStreamBuffer()
    for frame in frames:
        buffer.add_data(frame)
    events: list[Any] = []
    for message in buffer:
        headers = message.headers
        try:
            payload = json.loads(message.payload) if message.payload else {}
        except ValueError:
            payload = {"payloadBase64": base64.b64encode(message.payload).decode()}
        event_type = headers.get(":event-type", headers.get(":exception-type", "event"))
        if event_type == "chunk" and isinstance(payload, dict) and "bytes" in payload:
            events.append(_json_or_text(_b64(payload["bytes"])))
        else:
            if isinstance(payload, dict):
                payload.pop("p", None)
            events.append({event_type: payload})
    return events


class InvocationLog(BaseInterceptor):
    """Writes one JSON line per finished invocation to `sink`."""

    def __init__(self, sink: TextIO, *, include_bodies: bool = False, owns_sink: bool = False):
        self._frames: WeakKeyDictionary[RequestContext, list[bytes]] = WeakKeyDictionary()
        self.sink = sink
        self.include_bodies = include_bodies
        self.owns_sink = owns_sink
        self.replica: str | None = None
        """Written as `replicaId` when set (replicas of a fleet)."""

    @classmethod
    def from_settings(cls, settings: InvocationLogSettings) -> InvocationLog | None:
        """The configured log, or None when logging is off. Raises OSError if unwritable."""
        if settings.destination is None:
            return None
        if settings.destination == "-":
            return cls(sys.stdout, include_bodies=settings.include_bodies)
        path = Path(settings.destination).expanduser()
        sink = path.open("a", encoding="utf-8", buffering=1)
        return cls(sink, include_bodies=settings.include_bodies, owns_sink=True)

    def wrap_stream(
        self, ctx: RequestContext, frames: AsyncGenerator[bytes, None]
    ) -> AsyncGenerator[bytes, None]:
        if ctx.service not in RUNTIME_SERVICES:
            return frames
        captured: list[bytes] = []
        self._frames[ctx] = captured
        if not self.include_bodies:
            return frames
        return _capture(frames, captured)

    def after(self, ctx: RequestContext) -> None:
        if ctx.service not in RUNTIME_SERVICES:
            return
        entry = invocation_entry(
            ctx,
            now=time.time(),
            include_bodies=self.include_bodies,
            stream_frames=self._frames.pop(ctx, None),
        )
        if self.replica is not None:
            entry["replicaId"] = self.replica
        self.sink.write(json.dumps(entry, ensure_ascii=False) + "\n")
        self.sink.flush()

    def close(self) -> None:
        if self.owns_sink:
            self.sink.close()


async def _capture(
    frames: AsyncGenerator[bytes, None], captured: list[bytes]
) -> AsyncGenerator[bytes, None]:
    try:
        async for frame in frames:
            captured.append(frame)
            yield frame
    finally:
        await frames.aclose()


def _identity(identity: Identity | None, access_key: str | None) -> dict[str, str]:
    if identity is not None and identity.principal:
        return {"arn": identity.principal}
    return {"accessKeyId": access_key} if access_key is not None else {}


def _credential_scope(authorization: str | None) -> tuple[str | None, str | None]:
    if not authorization:
        return None, None
    match = _CREDENTIAL.search(authorization)
    if match is None:
        return None, None
    return match.group(1), match.group(2)


def _input(ctx: RequestContext, include_bodies: bool) -> dict[str, Any]:
    content_type = ctx.params.get("contentType") or "application/json"
    section: dict[str, Any] = {"inputContentType": str(content_type)}
    if include_bodies and ctx.body:
        section["inputBodyJson"] = _json_or_text(ctx.body)
    if ctx.record.input_tokens is not None:
        section["inputTokenCount"] = ctx.record.input_tokens
    if ctx.record.cache_read_input_tokens is not None:
        section["cacheReadInputTokenCount"] = ctx.record.cache_read_input_tokens
    if ctx.record.cache_write_input_tokens is not None:
        section["cacheWriteInputTokenCount"] = ctx.record.cache_write_input_tokens
    return section


def _output(
    ctx: RequestContext, include_bodies: bool, stream_frames: list[bytes] | None
) -> dict[str, Any]:
    streaming = stream_frames is not None
    units = ctx.call.stream_units
    content_type = "application/vnd.amazon.eventstream" if streaming else "application/json"
    if streaming and units is not None:
        content_type = units.content_type
    section: dict[str, Any] = {"outputContentType": content_type}
    if include_bodies:
        if stream_frames is not None:
            decode = decode_stream_events if units is None else units.decode
            section["outputBodyJson"] = decode(stream_frames)
        elif ctx.record.response_body is not None:
            section["outputBodyJson"] = _json_or_text(ctx.record.response_body)
    if ctx.record.output_tokens is not None:
        section["outputTokenCount"] = ctx.record.output_tokens
    return section


def _b64(text: object) -> bytes:
    try:
        return base64.b64decode(str(text), validate=True)
    except (binascii.Error, ValueError):
        return str(text).encode()


def _json_or_text(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, ValueError):
        return raw.decode("utf-8", "replace")
