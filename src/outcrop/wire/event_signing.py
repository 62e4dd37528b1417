"""The SigV4 signature chain of signed input event streams (InvokeModelWithBidirectionalStream).

Each input frame of a bidirectional stream is an outer event-stream message with two headers,
`:date` (timestamp, ms) and `:chunk-signature` (32 raw bytes), whose payload is the complete inner
message as the client encoded it (wire.md §4.2). Frame *n* is signed over

    AWS4-HMAC-SHA256-PAYLOAD \\n <:date as YYYYMMDDTHHMMSSZ>
    \\n <date>/<region>/<service>/aws4_request
    \\n <signature of frame n-1, hex; the request's Authorization Signature= for the first>
    \\n hex(sha256(encoded :date header)) \\n hex(sha256(payload))

with the SigV4 signing key of the frame's date. An empty payload is the client's final frame.

This module is sans-IO: `read_signed_frame` checks an outer frame's headers (what `open` auth
mode does), `EventChain` verifies signatures in arrival order (what `verify` mode does), and
`sign_frame` is the client side, for tests and benchmarks. The request's own signature is
verified elsewhere (the authentication interceptor); the chain only needs its seed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache

from smithy_aws_event_stream.events import EventMessage

EVENT_ALGORITHM = "AWS4-HMAC-SHA256-PAYLOAD"
SIGNATURE_LENGTH = 32
MAX_DATE_MS = 253402300799999
"""9999-12-31T23:59:59.999Z: the last `:date` a SigV4 date stamp can express (YYYYMMDD)."""
_AUTHORIZATION = re.compile(
    r"^AWS4-HMAC-SHA256\s+Credential=(?P<akid>[^/\s,]+)/(?P<date>\d{8})/(?P<region>[^/\s,]+)/"
    r"(?P<service>[^/\s,]+)/aws4_request\s*,\s*SignedHeaders=(?P<signed>[^,\s]+)\s*,\s*"
    r"Signature=(?P<signature>[0-9a-f]{64})\s*$"
)


class EventSigningError(ValueError):
    """An input frame's signature headers are malformed or its signature does not verify."""


@dataclass(frozen=True, slots=True)
class SignedFrame:
    """One outer input frame: when the client signed it, the signature, the inner message."""

    date_ms: int
    signature: bytes
    payload: bytes

    def __post_init__(self) -> None:
        if len(self.signature) != SIGNATURE_LENGTH:
            raise ValueError("a chunk signature has 32 bytes")

    @property
    def is_final(self) -> bool:
        """The client's terminal frame: it closed its input stream."""
        return not self.payload


@dataclass(frozen=True, slots=True)
class Seed:
    """What the chain of a request starts from: its Authorization header's scope and signature."""

    access_key_id: str
    date: str
    region: str
    service: str
    signature: str


def parse_authorization(value: str | None) -> Seed:
    """The seed of the chain from an `Authorization: AWS4-HMAC-SHA256 ...` header."""
    if value is None:
        raise EventSigningError("The request has no Authorization header to seed event signing.")
    found = _AUTHORIZATION.match(value.strip())
    if found is None:
        raise EventSigningError("The Authorization header is not a well-formed SigV4 header.")
    return Seed(found["akid"], found["date"], found["region"], found["service"], found["signature"])


def read_signed_frame(headers: Mapping[str, object], payload: bytes) -> SignedFrame:
    """The outer frame's `:date` and `:chunk-signature`, format-checked (open mode)."""
    extra = sorted(set(headers) - {":date", ":chunk-signature"})
    if extra:
        raise EventSigningError(f"Unexpected header {extra[0]} on a signed input event.")
    date = headers.get(":date")
    signature = headers.get(":chunk-signature")
    if not isinstance(date, int) or isinstance(date, bool):
        raise EventSigningError("A signed input event has no :date timestamp header.")
    if not isinstance(signature, bytes) or len(signature) != SIGNATURE_LENGTH:
        raise EventSigningError("A signed input event has no 32-byte :chunk-signature header.")
    if not 0 <= date <= MAX_DATE_MS:
        raise EventSigningError(
            f"The :date header of a signed input event is out of range: {date}."
        )
    return SignedFrame(date, signature, payload)


def encode_date_header(date_ms: int) -> bytes:
    """The `:date` header as it is encoded on the wire (type 8, int64 ms since the epoch)."""
    return b"\x05:date\x08" + date_ms.to_bytes(8, "big", signed=True)


def amz_date(date_ms: int) -> str:
    """`YYYYMMDDTHHMMSSZ` of a millisecond timestamp (the ms are dropped, as the SDKs do)."""
    moment = dt.datetime.fromtimestamp(date_ms // 1000, tz=dt.UTC)
    return moment.strftime("%Y%m%dT%H%M%SZ")


def string_to_sign(prior: str, date_ms: int, payload: bytes, region: str, service: str) -> str:
    stamp = amz_date(date_ms)
    return "\n".join(
        [
            EVENT_ALGORITHM,
            stamp,
            f"{stamp[:8]}/{region}/{service}/aws4_request",
            prior,
            hashlib.sha256(encode_date_header(date_ms)).hexdigest(),
            hashlib.sha256(payload).hexdigest(),
        ]
    )


@lru_cache(maxsize=64)
def signing_key(secret_access_key: str, date: str, region: str, service: str) -> bytes:
    """The SigV4 signing key of one day, region and service."""
    key = f"AWS4{secret_access_key}".encode()
    for part in (date, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


KeyForDate = Callable[[str], bytes]
"""The signing key for a `YYYYMMDD` date (frames dated on another day use that day's key)."""


def key_from_secret(secret_access_key: str, region: str, service: str) -> KeyForDate:
    return lambda date: signing_key(secret_access_key, date, region, service)


@dataclass(slots=True)
class EventChain:
    """Verifies each frame's signature against the previous one, in arrival order.

    The chain advances only on success; after a failure every later frame fails too, as the
    client's chain and ours have parted.
    """

    prior: str
    region: str
    service: str
    key_for_date: KeyForDate
    frames: int = field(default=0)

    @classmethod
    def from_seed(cls, seed: Seed, key_for_date: KeyForDate) -> EventChain:
        return cls(seed.signature, seed.region, seed.service, key_for_date)

    def verify(self, frame: SignedFrame) -> None:
        text = string_to_sign(self.prior, frame.date_ms, frame.payload, self.region, self.service)
        key = self.key_for_date(amz_date(frame.date_ms)[:8])
        expected = hmac.new(key, text.encode(), hashlib.sha256).digest()
        if not hmac.compare_digest(expected, frame.signature):
            raise EventSigningError(
                f"The signature of input event {self.frames + 1} does not match the signature "
                "chain of this request."
            )
        self.prior = expected.hex()
        self.frames += 1


def sign_frame(
    prior: str, payload: bytes, date_ms: int, key: bytes, region: str, service: str = "bedrock"
) -> tuple[bytes, str]:
    """Client side (tests, benchmarks): the signed outer frame for `payload` and its signature."""
    text = string_to_sign(prior, date_ms, payload, region, service)
    signature = hmac.new(key, text.encode(), hashlib.sha256).digest()
    when = dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(milliseconds=date_ms)
    frame = EventMessage(
        headers={":date": when, ":chunk-signature": signature}, payload=payload
    ).encode()
    return bytes(frame), signature.hex()
