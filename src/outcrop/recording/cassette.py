"""Cassettes: recorded calls as typed values, their JSON file format, and the sans-IO rules
applied to them (normalization, redaction, matching, the nearest-match diff, replay timing).

No sockets and no asyncio here: the proxy (recording/proxy.py) and replay (recording/replay.py)
feed bytes in and take bytes out. The format is documented in docs/cassettes.md; the
event-stream facts it relies on (prelude, typed headers, CRCs) in docs/wire.md.

A body is stored as one of `{"json": value}` (only when serializing the value compactly gives
the original bytes back exactly), `{"text": str}` (valid UTF-8) or `{"base64": str}`. An
event-stream frame is stored decoded (its headers in wire order, its payload as a body) and
re-encoded byte for byte on replay; a Bedrock `chunk` event's base64 `bytes` is stored decoded
in `chunk`, the envelope keeping the marker `"@chunk"` in its place.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import difflib
import io
import json
import os
import re
import struct
import tempfile
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from smithy_aws_event_stream.events import (
    Byte,
    Event,
    EventHeaderEncoder,
    EventMessage,
    Long,
    Short,
    _DecodeUtils,
)
from smithy_aws_event_stream.events import _EventEncoder as _FrameEncoder

from outcrop.config.recording import PathStep as PathStep
from outcrop.config.recording import parse_path as parse_path

FORMAT_VERSION = 1
"""The value of a cassette's `outcrop_cassette` key."""

CHUNK_MARKER = "@chunk"
"""Where a `chunk` event's decoded `bytes` go back into its envelope."""

REDACTED = "[REDACTED]"

Body = dict[str, Any]
"""`{"json": value}`, `{"text": str}` or `{"base64": str}`."""

# -- bodies ------------------------------------------------------------------------------------


def _compact(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def encode_body(data: bytes) -> Body:
    """The stored form of `data`: JSON when it round-trips byte-exactly, else text or base64."""
    if data[:1] in (b"{", b"["):
        try:
            value = json.loads(data)
        except ValueError:
            pass
        else:
            if _compact(value) == data:
                return {"json": value}
    try:
        return {"text": data.decode("utf-8")}
    except UnicodeDecodeError:
        return {"base64": base64.b64encode(data).decode("ascii")}


def body_bytes(body: Body) -> bytes:
    """The bytes a stored body stands for."""
    if "json" in body:
        return _compact(body["json"])
    if "text" in body:
        return str(body["text"]).encode("utf-8")
    if "base64" in body:
        return base64.b64decode(str(body["base64"]))
    raise ValueError(f"a body needs one of json, text, base64; got {sorted(body)}")


def parsed_body(data: bytes) -> Any:
    """A request body for matching and storing: its JSON value when it parses (whatever its
    spacing), else the stored form of the bytes."""
    try:
        return {"json": json.loads(data)} if data.strip() else {"text": ""}
    except ValueError:
        return encode_body(data)


# -- event-stream frames -----------------------------------------------------------------------

HeaderValue = str | dict[str, Any] | bool
"""A frame header as stored: a string as itself, a boolean as itself, other types tagged
`{"type": "byte|short|int32|int64|bytes|timestamp|uuid", "value": ...}`."""

_TYPE_NAMES = {2: "byte", 3: "short", 4: "int32", 5: "int64", 6: "bytes", 8: "timestamp", 9: "uuid"}


def _decode_headers(raw: bytes) -> list[tuple[str, HeaderValue]]:
    """Headers in wire order with their declared types (smithy's decoder loses int sizes)."""
    data = memoryview(raw)
    out: list[tuple[str, HeaderValue]] = []
    while len(data):
        key, used = _DecodeUtils.unpack_utf8_string(data, 1)
        data = data[used:]
        kind, used = _DecodeUtils.unpack_uint8(data)
        data = data[used:]
        value: HeaderValue
        if kind in (0, 1):
            value = kind == 0
        elif kind == 7:
            text, used = _DecodeUtils.unpack_utf8_string(data)
            data = data[used:]
            value = text
        else:
            unpack: Callable[[memoryview], tuple[Any, int]] = {
                2: _DecodeUtils.unpack_int8,
                3: _DecodeUtils.unpack_int16,
                4: _DecodeUtils.unpack_int32,
                5: _DecodeUtils.unpack_int64,
                6: _DecodeUtils.unpack_byte_array,
                8: _timestamp_ms,
                9: _DecodeUtils.unpack_uuid,
            }[kind]
            got, used = unpack(data)
            data = data[used:]
            if kind == 6:
                got = base64.b64encode(bytes(got)).decode("ascii")
            elif kind == 9:
                got = str(got)
            value = {"type": _TYPE_NAMES[kind], "value": got}
        out.append((key, value))
    return out


def _timestamp_ms(data: memoryview) -> tuple[int, int]:
    value, used = _DecodeUtils.unpack_int64(data)
    return int(value), used


def _header_value(value: HeaderValue) -> Any:
    if isinstance(value, str | bool):
        return value
    kind, raw = value["type"], value["value"]
    if kind == "byte":
        return Byte(raw)
    if kind == "short":
        return Short(raw)
    if kind == "int32":
        return int(raw)
    if kind == "int64":
        return Long(raw)
    if kind == "bytes":
        return base64.b64decode(raw)
    if kind == "timestamp":
        return datetime.datetime.fromtimestamp(raw / 1000, datetime.UTC)
    if kind == "uuid":
        return uuid.UUID(raw)
    raise ValueError(f"unknown header type {kind!r}")


_FRAMES = _FrameEncoder()


@dataclass(frozen=True, slots=True)
class RecordedEvent:
    """One event-stream frame, decoded, with its arrival time `t` (seconds since the request
    was sent)."""

    headers: tuple[tuple[str, HeaderValue], ...]
    payload: Body
    t: float = 0.0
    chunk: Body | None = None
    """A `chunk` event's `bytes`, decoded (the payload's `bytes` is then `@chunk`)."""

    @property
    def event_type(self) -> str | None:
        """`:event-type` (events) or `:exception-type` (modelled exceptions)."""
        for name, value in self.headers:
            if name in (":event-type", ":exception-type") and isinstance(value, str):
                return value
        return None

    @property
    def message_type(self) -> str | None:
        for name, value in self.headers:
            if name == ":message-type" and isinstance(value, str):
                return value
        return None

    @classmethod
    def from_frame(cls, frame: bytes, t: float = 0.0) -> RecordedEvent:
        """Decode one whole frame (its CRCs are checked)."""
        message = _split_frame(frame)
        headers = tuple(_decode_headers(message[0]))
        payload = encode_body(message[1])
        chunk: Body | None = None
        value = payload.get("json")
        if isinstance(value, dict) and isinstance(value.get("bytes"), str):
            raw = value["bytes"]
            try:
                decoded = base64.b64decode(raw, validate=True)
            except (binascii.Error, ValueError):
                decoded = None
            if decoded is not None and base64.b64encode(decoded).decode("ascii") == raw:
                chunk = encode_body(decoded)
                payload = {"json": {**value, "bytes": CHUNK_MARKER}}
        return cls(headers, payload, round(t, 6), chunk)

    def payload_bytes(self, audio: bytes = b"") -> bytes:
        """The payload's bytes; `audio`: the interaction's audio blob that `@audio` markers in
        a speech event's `chunk` point into."""
        if self.chunk is None:
            return body_bytes(self.payload)
        inner = body_bytes(self.chunk)
        if audio:
            inner = expand_audio(inner, audio)
        envelope = dict(self.payload["json"])
        envelope["bytes"] = base64.b64encode(inner).decode("ascii")
        return _compact(envelope)

    def frame(self, audio: bytes = b"") -> bytes:
        """The frame as it was received: same headers, same payload bytes, fresh CRCs."""
        encoder = EventHeaderEncoder()
        encoder.encode_headers({name: _header_value(value) for name, value in self.headers})
        payload = self.payload_bytes(audio)
        return _FRAMES.encode_bytes(headers=encoder.get_result(), payload=payload)

    def with_audio_in(self, blob: bytearray) -> RecordedEvent:
        """This event with a speech event's base64 audio moved into `blob` (appended) and an
        `"@audio:OFFSET:LENGTH"` marker in its place; unchanged when it carries none."""
        if self.chunk is None:
            return self
        data = body_bytes(self.chunk)
        content = _audio_content(data)
        if content is None:
            return self
        needle = b'"' + content.encode("ascii") + b'"'
        raw = base64.b64decode(content)
        if data.count(needle) != 1 or base64.b64encode(raw) != content.encode("ascii"):
            return self
        marker = f'"@audio:{len(blob)}:{len(raw)}"'.encode()
        blob += raw
        return RecordedEvent(
            self.headers, self.payload, self.t, encode_body(data.replace(needle, marker))
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"t": self.t, "headers": dict(self.headers), "payload": self.payload}
        if self.chunk is not None:
            out["chunk"] = self.chunk
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RecordedEvent:
        chunk = data.get("chunk")
        return cls(
            tuple(dict(data["headers"]).items()),
            dict(data["payload"]),
            float(data.get("t", 0.0)),
            dict(chunk) if chunk is not None else None,
        )


_AUDIO_MARKER = re.compile(rb'"@audio:(\d+):(\d+)"')
_AUDIO_KINDS = ("audioInput", "audioOutput")


def _audio_content(data: bytes) -> str | None:
    """The base64 `content` of a Nova Sonic `audioInput`/`audioOutput` event (JSON bytes)."""
    if b'"audio' not in data:
        return None
    try:
        value = json.loads(data)
    except ValueError:
        return None
    event = value.get("event") if isinstance(value, dict) else None
    if not isinstance(event, dict):
        return None
    for kind in _AUDIO_KINDS:
        part = event.get(kind)
        if isinstance(part, dict) and isinstance(part.get("content"), str):
            content: str = part["content"]
            try:
                base64.b64decode(content, validate=True)
            except (binascii.Error, ValueError):
                return None
            return content if content else None
    return None


def expand_audio(data: bytes, audio: bytes) -> bytes:
    """`data` with each `"@audio:OFFSET:LENGTH"` marker replaced by that audio, base64."""

    def back(found: re.Match[bytes]) -> bytes:
        offset, length = int(found[1]), int(found[2])
        return b'"' + base64.b64encode(audio[offset : offset + length]) + b'"'

    return _AUDIO_MARKER.sub(back, data)


def _split_frame(frame: bytes) -> tuple[bytes, bytes]:
    """(header bytes, payload bytes) of one frame, its CRCs checked by smithy's decoder."""
    event = Event.decode(io.BytesIO(frame))
    if event is None:
        raise ValueError("empty frame")
    headers_length = event.prelude.headers_length
    message = frame[12 : 12 + headers_length], bytes(event.message.payload)
    return message


def exception_event(code: str, message_body: bytes) -> bytes:
    """A modelled exception frame (for tests and for recorded errors)."""
    return EventMessage(
        headers={
            ":exception-type": code,
            ":content-type": "application/json",
            ":message-type": "exception",
        },
        payload=message_body,
    ).encode()


class FrameSplitter:
    """Splits a byte stream into whole event-stream frames as bytes arrive (sans-IO)."""

    def __init__(self, max_frame: int = 16 * 1024 * 1024 + 1024) -> None:
        self._buffer = bytearray()
        self._max = max_frame

    def feed(self, data: bytes) -> list[bytes]:
        self._buffer += data
        frames: list[bytes] = []
        while len(self._buffer) >= 12:
            total = int.from_bytes(self._buffer[:4], "big")
            if total < 16 or total > self._max:
                raise ValueError(f"bad event-stream frame length {total}")
            if len(self._buffer) < total:
                break
            frames.append(bytes(self._buffer[:total]))
            del self._buffer[:total]
        return frames

    @property
    def pending(self) -> int:
        """Bytes of an incomplete frame still buffered."""
        return len(self._buffer)


# -- interactions ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: Body
    events: tuple[RecordedEvent, ...] | None = None
    """The input events of a bidirectional stream."""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "headers": self.headers,
            "body": self.body,
        }
        if self.events is not None:
            out["events"] = [e.to_json() for e in self.events]
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RecordedRequest:
        events = data.get("events")
        return cls(
            str(data.get("method", "POST")),
            str(data["path"]),
            str(data.get("query", "")),
            {str(k): str(v) for k, v in dict(data.get("headers", {})).items()},
            dict(data.get("body", {"text": ""})),
            tuple(RecordedEvent.from_json(e) for e in events) if events is not None else None,
        )


@dataclass(frozen=True, slots=True)
class RecordedResponse:
    status: int
    headers: tuple[tuple[str, str], ...]
    body: Body | None = None
    """A complete response's body (None for a stream)."""
    events: tuple[RecordedEvent, ...] | None = None
    """A stream's events, in arrival order."""

    @property
    def streaming(self) -> bool:
        return self.events is not None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"status": self.status, "headers": dict(self.headers)}
        if self.events is not None:
            out["events"] = [e.to_json() for e in self.events]
        else:
            out["body"] = self.body if self.body is not None else {"text": ""}
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RecordedResponse:
        events = data.get("events")
        body = data.get("body")
        return cls(
            int(data["status"]),
            tuple((str(k), str(v)) for k, v in dict(data.get("headers", {})).items()),
            dict(body) if body is not None else None,
            tuple(RecordedEvent.from_json(e) for e in events) if events is not None else None,
        )


@dataclass(frozen=True, slots=True)
class Interaction:
    """One recorded call."""

    service: str
    """`bedrock-runtime` or `sagemaker-runtime`."""
    operation: str
    target: str
    """The model ID, endpoint name or guardrail identifier, as sent."""
    request: RecordedRequest
    response: RecordedResponse
    recorded_at: str = ""
    duration: float = 0.0
    audio: Mapping[str, str] = field(default_factory=dict)
    """A speech session's audio, base64, one blob per direction (`input`, `output`), that the
    events' `@audio:OFFSET:LENGTH` markers point into."""
    _frames: list[tuple[bytes, ...]] = field(
        default_factory=list, init=False, repr=False, compare=False
    )
    """The response's frames once encoded (see `frames`)."""

    def audio_bytes(self, direction: str) -> bytes:
        blob = self.audio.get(direction)
        return base64.b64decode(blob) if blob else b""

    def frames(self) -> tuple[bytes, ...]:
        """The response's event frames as sent (speech audio markers expanded from the `output`
        blob), encoded on first use and kept: a cassette replays the same entry many times, and
        encoding each frame from its decoded event was most of a replay's CPU. What is kept is
        about the size of the recorded events, which the cassette limits already bound."""
        if not self._frames:
            events = self.response.events or ()
            audio = self.audio_bytes("output") if self.audio else b""
            self._frames.append(tuple(e.frame(audio) for e in events))
        return self._frames[0]

    def check_frames(self) -> None:
        """Encode each event once, keeping nothing (`frames` keeps them when replay first needs
        them): a damaged event in a cassette file fails when the file is loaded."""
        audio = self.audio_bytes("output") if self.audio else b""
        for event in self.response.events or ():
            event.frame(audio)

    def to_json(self) -> dict[str, Any]:
        out = {
            "service": self.service,
            "operation": self.operation,
            "target": self.target,
            "request": self.request.to_json(),
            "response": self.response.to_json(),
            "recorded_at": self.recorded_at,
            "duration": self.duration,
        }
        if self.audio:
            out["audio"] = dict(self.audio)
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Interaction:
        return cls(
            str(data["service"]),
            str(data["operation"]),
            str(data.get("target", "")),
            RecordedRequest.from_json(data["request"]),
            RecordedResponse.from_json(data["response"]),
            str(data.get("recorded_at", "")),
            float(data.get("duration", 0.0)),
            {str(k): str(v) for k, v in dict(data.get("audio", {})).items()},
        )

    def size(self) -> int:
        """Roughly how many bytes it takes in a cassette file."""
        return len(json.dumps(self.to_json(), ensure_ascii=False))


class CassetteError(ValueError):
    """A cassette file that is not one (the message names the file)."""


class NotACassette(CassetteError):
    """A JSON file that does not claim to be a cassette (no `outcrop_cassette` key): some other
    project file, which a folder of cassettes may hold beside them."""


@dataclass(slots=True)
class Cassette:
    interactions: list[Interaction] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "outcrop_cassette": FORMAT_VERSION,
            "interactions": [i.to_json() for i in self.interactions],
        }

    def dumps(self) -> str:
        """Pretty-printed (two-space indent, keys in a fixed order) so that it diffs well."""
        return json.dumps(self.to_json(), indent=2, ensure_ascii=False) + "\n"

    @classmethod
    def loads(cls, text: str, name: str = "cassette") -> Cassette:
        try:
            data = json.loads(text)
        except (ValueError, RecursionError) as exc:  # RecursionError: nested too deep
            raise CassetteError(f"{name}: not JSON ({exc})") from None
        if not isinstance(data, dict) or "outcrop_cassette" not in data:
            raise NotACassette(f"{name}: not an outcrop cassette (outcrop_cassette: 1 missing)")
        if data["outcrop_cassette"] != FORMAT_VERSION:
            raise CassetteError(
                f"{name}: outcrop_cassette {data['outcrop_cassette']!r} is not a format this "
                f"version reads (outcrop_cassette: {FORMAT_VERSION})"
            )
        try:
            cassette = cls([Interaction.from_json(i) for i in data.get("interactions", [])])
            for interaction in cassette.interactions:  # refused with the file, not mid-replay
                interaction.check_frames()
        except (
            AttributeError,
            IndexError,
            KeyError,
            OverflowError,
            TypeError,
            ValueError,
            struct.error,
        ) as exc:
            raise CassetteError(f"{name}: malformed interaction ({exc!r})") from None
        return cassette

    @classmethod
    def load(cls, path: Path) -> Cassette:
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise CassetteError(f"{path}: not JSON ({exc})") from None
        return cls.loads(text, str(path))

    def save(self, path: Path) -> None:
        """Write durably: a temporary file in the same folder, fsynced, then renamed over."""
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(self.dumps())
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, path)
        except BaseException:
            with _suppress_os_error():
                os.unlink(tmp)
            raise


class _suppress_os_error:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> bool:
        return isinstance(exc[1], OSError)


# -- JSON paths --------------------------------------------------------------------------------


def _children(value: Any, step: PathStep) -> Iterable[tuple[Any, str | int]]:
    """(container, key) pairs that `step` selects in `value`."""
    if isinstance(value, dict):
        if step == "*":
            return [(value, k) for k in list(value)]
        if isinstance(step, str) and step in value:
            return [(value, step)]
    elif isinstance(value, list):
        if step == "*":
            return [(value, i) for i in range(len(value))]
        if isinstance(step, int) and -len(value) <= step < len(value):
            return [(value, step % len(value))]
    return []


def _select(value: Any, steps: Sequence[PathStep]) -> list[tuple[Any, str | int]]:
    current: list[tuple[Any, str | int]] = []
    frontier = [value]
    for index, step in enumerate(steps):
        current = [pair for node in frontier for pair in _children(node, step)]
        if index < len(steps) - 1:
            frontier = [container[key] for container, key in current]
    return current


def remove_path(value: Any, steps: Sequence[PathStep]) -> None:
    """Delete what `steps` selects (in place)."""
    for container, key in reversed(_select(value, steps)):
        del container[key]


def replace_path(value: Any, steps: Sequence[PathStep], new: Any) -> int:
    """Replace what `steps` selects with `new` (in place); how many were replaced."""
    found = _select(value, steps)
    for container, key in found:
        container[key] = new
    return len(found)


def get_path(value: Any, steps: Sequence[PathStep]) -> list[Any]:
    return [container[key] for container, key in _select(value, steps)]


# -- normalization and redaction ---------------------------------------------------------------

VOLATILE_REQUEST_HEADERS = frozenset(
    {
        "authorization",
        "x-amz-date",
        "x-amz-security-token",
        "x-amz-content-sha256",
        "amz-sdk-invocation-id",
        "amz-sdk-request",
        "user-agent",
        "x-amz-user-agent",
        "x-amzn-trace-id",
        "content-length",
        "host",
        "connection",
        "accept-encoding",
        "transfer-encoding",
        "expect",
        "te",
        "keep-alive",
        "x-amz-client-context",
    }
)
"""Request headers that differ on every call (signature, dates, ids, transport)."""

VOLATILE_RESPONSE_HEADERS = frozenset(
    {
        "date",
        "x-amzn-requestid",
        "x-amz-request-id",
        "x-amz-id-2",
        "x-amzn-trace-id",
        "content-length",
        "connection",
        "transfer-encoding",
        "keep-alive",
        "server",
        "x-amz-apigw-id",
        "via",
    }
)
"""Response headers that differ on every call or belong to the transport."""

DEFAULT_SECRET_PATTERNS = (
    r"\b(?:AKIA|ASIA|AROA|AIDA|ABIA|ACCA)[A-Z0-9]{16}\b",
    r"(?<![A-Za-z0-9/+])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])",
    r"\b(?:IQoJ|FwoG|FQoG|AQoD|AgoJ)[A-Za-z0-9/+=]{40,}",
)
"""Anything that looks like an AWS access key ID, a secret access key (40 base64 characters
standing alone) or a session token (STS tokens start with one of these prefixes)."""


@dataclass(frozen=True, slots=True)
class Redaction:
    """What is taken out of a request before it is stored (and before it is matched)."""

    headers: frozenset[str] = frozenset()
    """More request header names (lower case) whose values are replaced."""
    paths: tuple[tuple[PathStep, ...], ...] = ()
    """JSON paths in request bodies whose values are replaced."""
    patterns: tuple[re.Pattern[str], ...] = tuple(re.compile(p) for p in DEFAULT_SECRET_PATTERNS)
    """Replaced wherever they occur in request header values and body strings."""

    @classmethod
    def build(
        cls,
        headers: Iterable[str] = (),
        paths: Iterable[str] = (),
        patterns: Iterable[str] = (),
        default_patterns: bool = True,
    ) -> Redaction:
        every = [*(DEFAULT_SECRET_PATTERNS if default_patterns else ()), *patterns]
        return cls(
            frozenset(h.lower() for h in headers),
            tuple(parse_path(p) for p in paths),
            tuple(re.compile(p) for p in every),
        )

    def text(self, value: str) -> str:
        for pattern in self.patterns:
            value = pattern.sub(REDACTED, value)
        return value

    def value(self, value: Any) -> Any:
        """Every string in a JSON value (keys included) with the patterns replaced."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, list):
            return [self.value(v) for v in value]
        if isinstance(value, dict):
            return {self.text(k): self.value(v) for k, v in value.items()}
        return value

    def body(self, body: Body) -> Body:
        if "json" in body:
            value = json.loads(json.dumps(body["json"]))  # a copy to edit
            for steps in self.paths:
                replace_path(value, steps, REDACTED)
            return {"json": self.value(value)}
        if "text" in body:
            return {"text": self.text(str(body["text"]))}
        return body

    def request_headers(self, headers: Iterable[tuple[str, str]]) -> dict[str, str]:
        """The headers worth keeping, lower-cased, sorted, volatile ones dropped, secrets out."""
        kept: dict[str, str] = {}
        for name, value in headers:
            key = name.lower()
            if key in VOLATILE_REQUEST_HEADERS or key.startswith(":"):
                continue
            kept[key] = REDACTED if key in self.headers else self.text(value)
        return dict(sorted(kept.items()))


def response_headers(headers: Iterable[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    """A response's headers without the volatile ones, in their order."""
    return tuple(
        (name, value)
        for name, value in headers
        if name.lower() not in VOLATILE_RESPONSE_HEADERS and not name.startswith(":")
    )


# -- matching ----------------------------------------------------------------------------------

MatchOn = Literal["body", "last_user_message", "paths"]


@dataclass(frozen=True, slots=True)
class Matcher:
    """How a request is compared with recorded ones: same service, operation and target, and
    the same body as this matcher sees it (exact by default)."""

    on: MatchOn = "body"
    ignore: tuple[tuple[PathStep, ...], ...] = ()
    """JSON paths left out of the comparison."""
    paths: tuple[tuple[PathStep, ...], ...] = ()
    """`on = "paths"`: only these JSON paths are compared."""

    @classmethod
    def build(
        cls, on: MatchOn = "body", ignore: Iterable[str] = (), paths: Iterable[str] = ()
    ) -> Matcher:
        return cls(on, tuple(parse_path(p) for p in ignore), tuple(parse_path(p) for p in paths))

    def view(self, body: Body) -> Any:
        """What of a (normalized, redacted) request body takes part in matching."""
        if "json" not in body:
            return body
        value = json.loads(json.dumps(body["json"]))
        for steps in self.ignore:
            remove_path(value, steps)
        if self.on == "last_user_message":
            return last_user_message(value)
        if self.on == "paths":
            return {_path_name(steps): get_path(value, steps) for steps in self.paths}
        return value


def _path_name(steps: Sequence[PathStep]) -> str:
    out = ""
    for step in steps:
        out += f"[{step}]" if isinstance(step, int) or step == "*" else f".{step}"
    return out.lstrip(".")


def last_user_message(value: Any) -> Any:
    """The last user turn of a request body: Converse and Messages-style `messages`, else the
    prompt fields of the text-completion bodies, else the whole body."""
    if isinstance(value, dict):
        messages = value.get("messages")
        if isinstance(messages, list):
            for message in reversed(messages):
                if isinstance(message, dict) and message.get("role") == "user":
                    return message.get("content")
        for key in ("inputText", "prompt", "inputs", "message", "text"):
            if key in value:
                return value[key]
        content = value.get("content")
        if isinstance(content, list):  # ApplyGuardrail
            return content
    return value


@dataclass(frozen=True, slots=True)
class Call:
    """An incoming call as matching sees it (its body normalized and redacted)."""

    service: str
    operation: str
    target: str
    body: Body


def same(matcher: Matcher, call: Call, recorded: Interaction) -> bool:
    return (
        call.service == recorded.service
        and call.operation == recorded.operation
        and call.target == recorded.target
        and matcher.view(call.body) == matcher.view(recorded.request.body)
    )


Difference = dict[str, Any]


def diff(recorded: Any, request: Any, path: str = "", limit: int = 8) -> list[Difference]:
    """Where two JSON values differ: `{"path", "recorded", "request"}` entries, the values
    shortened; at most `limit` of them."""
    out: list[Difference] = []
    _diff(recorded, request, path, out, limit)
    return out


_ABSENT = "<absent>"


def _diff(a: Any, b: Any, path: str, out: list[Difference], limit: int) -> None:
    if len(out) >= limit:
        return
    if isinstance(a, dict) and isinstance(b, dict):
        for key in [*a, *(k for k in b if k not in a)]:
            sub = f"{path}.{key}" if path else str(key)
            _diff(a.get(key, _ABSENT), b.get(key, _ABSENT), sub, out, limit)
        return
    if isinstance(a, list) and isinstance(b, list):
        for i in range(max(len(a), len(b))):
            _diff(
                a[i] if i < len(a) else _ABSENT,
                b[i] if i < len(b) else _ABSENT,
                f"{path}[{i}]",
                out,
                limit,
            )
        return
    if a != b or type(a) is not type(b):
        out.append({"path": path or "$", "recorded": _short(a), "request": _short(b)})


def _short(value: Any, width: int = 80) -> Any:
    if isinstance(value, str):
        return value if len(value) <= width else value[: width - 1] + "…"
    if isinstance(value, dict | list):
        text = json.dumps(value, ensure_ascii=False)
        return value if len(text) <= width else text[: width - 1] + "…"
    return value


def call_diff(matcher: Matcher, call: Call, recorded: Interaction) -> list[Difference]:
    """The differences that keep `recorded` from matching `call`."""
    out: list[Difference] = []
    for name in ("service", "operation", "target"):
        mine, theirs = getattr(call, name), getattr(recorded, name)
        if mine != theirs:
            out.append({"path": name, "recorded": theirs, "request": mine})
    out += diff(matcher.view(recorded.request.body), matcher.view(call.body), "body")
    return out


def nearest(
    matcher: Matcher, call: Call, recorded: Iterable[Interaction]
) -> tuple[Interaction, list[Difference]] | None:
    """The recorded interaction closest to `call` (same service first, then same operation,
    then same target, then the fewest differing body values, then the most alike differing
    strings) and the differences."""
    best: tuple[tuple[float, ...], Interaction] | None = None
    for interaction in recorded:
        pairs = _differing(matcher.view(interaction.request.body), matcher.view(call.body))
        key = (
            float(interaction.service != call.service),
            float(interaction.operation != call.operation),
            float(interaction.target != call.target),
            float(len(pairs)),
            sum(_unlike(a, b) for a, b in pairs),
        )
        if best is None or key < best[0]:
            best = (key, interaction)
    if best is None:
        return None
    return best[1], call_diff(matcher, call, best[1])


def _differing(a: Any, b: Any) -> list[tuple[Any, Any]]:
    """The pairs of leaf values where two JSON values differ, whole (unlike `diff`)."""
    if isinstance(a, dict) and isinstance(b, dict):
        keys = [*a, *(k for k in b if k not in a)]
        return [p for k in keys for p in _differing(a.get(k, _ABSENT), b.get(k, _ABSENT))]
    if isinstance(a, list) and isinstance(b, list):
        pad = [_ABSENT] * abs(len(a) - len(b))
        longer_a, longer_b = (a, b + pad) if len(a) >= len(b) else (a + pad, b)
        return [p for x, y in zip(longer_a, longer_b, strict=True) for p in _differing(x, y)]
    return [] if a == b and type(a) is type(b) else [(a, b)]


def _unlike(a: Any, b: Any) -> float:
    """0 for equal values, up to 1 for nothing in common (strings by difflib's ratio)."""
    if isinstance(a, str) and isinstance(b, str):
        return 1.0 - difflib.SequenceMatcher(None, a, b).ratio()
    return 1.0


class Tape:
    """The interactions replay can answer from, and which of them were played: a call gets
    the first matching interaction not played yet, in recorded order (so a recorded retry
    sequence, an error then a success, replays in order); once all matches were played, the
    last of them again."""

    def __init__(self, interactions: Iterable[Interaction] = (), matcher: Matcher | None = None):
        self.interactions: list[Interaction] = list(interactions)
        self.matcher = matcher or Matcher()
        self._played: set[int] = set()

    def play(self, call: Call) -> Interaction | None:
        last: Interaction | None = None
        for index, interaction in enumerate(self.interactions):
            if not same(self.matcher, call, interaction):
                continue
            if index not in self._played:
                self._played.add(index)
                return interaction
            last = interaction
        return last

    def add(self, interaction: Interaction) -> None:
        """A newly recorded interaction (counted as played: it answered its call)."""
        self._played.add(len(self.interactions))
        self.interactions.append(interaction)

    def nearest(self, call: Call) -> tuple[Interaction, list[Difference]] | None:
        return nearest(self.matcher, call, self.interactions)


# -- timing ------------------------------------------------------------------------------------


def replay_at(t: float, speed: float) -> float:
    """When (seconds after the call arrived) an event recorded at `t` is replayed: `t / speed`,
    immediately for speed 0."""
    if speed < 0:
        raise ValueError("replay speed must be 0 (no delays) or more")
    if speed == 0:
        return 0.0
    return max(0.0, t) / speed


def now_iso() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds")
