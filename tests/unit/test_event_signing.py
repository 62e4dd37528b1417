"""The signed input frames of a bidirectional stream: decoding, format checks, the chain."""

from __future__ import annotations

import base64
import json

import pytest
from smithy_aws_event_stream.events import EventMessage

from outcrop.wire.bidi_input import InputFrameDecoder, InputFrameError, chunk_bytes
from outcrop.wire.event_signing import (
    EventChain,
    EventSigningError,
    SignedFrame,
    amz_date,
    key_from_secret,
    parse_authorization,
    read_signed_frame,
    sign_frame,
    signing_key,
)

SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
# wire.md Appendix B: frames signed by aws_sdk_signers.AsyncEventSigner (us-east-1, bedrock).
SEED = "ef4e80b9944ca2934f20d37d0f21961cc00160c8d7b88eeb2f4a4bd1902eb851"
FRAMES = bytes.fromhex(
    "000000e200000043d8e35bfc053a6461746508000001a2072f1902103a6368756e6b2d7369676e6174757265"
    "060020e6a95b69285f719d797f8010f406b229b3639a2169d831997ca0b6bc19320e3a"
    "0000008f0000004bb79a60320d3a6d6573736167652d747970650700056576656e740b3a6576656e742d7479"
    "70650700056368756e6b0d3a636f6e74656e742d747970650700106170706c69636174696f6e2f6a736f6e7b"
    "226279746573223a2265794a6c646d567564434936494873696332567a63326c76626b56755a434936494874"
    "396658303d227d6d41cfad992e622c"
    "0000005300000043f5447a58053a6461746508000001a2072f1902103a6368756e6b2d7369676e6174757265"
    "060020d63363d2a5a2578ad69bb00fe1027e2b3b61435b2ee0626280f85cb735a50c379016efd2"
)


def chain() -> EventChain:
    return EventChain(SEED, "us-east-1", "bedrock", key_from_secret(SECRET, "us-east-1", "bedrock"))


def test_the_official_signers_frames_verify_in_any_split() -> None:
    for cut in (1, 7, 100, 0xE2, 0xE3, len(FRAMES) - 1):
        decoder = InputFrameDecoder()
        frames = decoder.feed(FRAMES[:cut]) + decoder.feed(FRAMES[cut:])
        assert [f.is_final for f in frames] == [False, True]
        verifier = chain()
        for frame in frames:
            verifier.verify(frame)
        assert verifier.frames == 2
        assert json.loads(chunk_bytes(frames[0].payload)) == {"event": {"sessionEnd": {}}}


def test_a_tampered_frame_and_everything_after_it_fail() -> None:
    first, final = InputFrameDecoder().feed(FRAMES)
    verifier = chain()
    tampered = SignedFrame(first.date_ms, first.signature, first.payload.replace(b"eyJ", b"eyK"))
    with pytest.raises(EventSigningError, match="input event 1 does not match"):
        verifier.verify(tampered)
    with pytest.raises(EventSigningError):
        verifier.verify(final)  # its signature chains from the untampered frame
    other_date = SignedFrame(first.date_ms + 1000, first.signature, first.payload)
    with pytest.raises(EventSigningError):
        chain().verify(other_date)


def test_sign_frame_round_trips_through_the_verifier() -> None:
    when = 1795330456000 + 1234
    key = signing_key(SECRET, amz_date(when)[:8], "us-east-1", "bedrock")
    prior = SEED
    verifier = chain()
    for payload in (b"hello", b"world", b""):
        frame, prior = sign_frame(prior, payload, when, key, "us-east-1")
        (decoded,) = InputFrameDecoder().feed(frame)
        verifier.verify(decoded)
    assert verifier.prior == prior


def test_outer_headers_are_format_checked() -> None:
    sig = b"\1" * 32
    assert read_signed_frame({":date": 5, ":chunk-signature": sig}, b"x").date_ms == 5
    cases: list[tuple[dict[str, object], str]] = [
        ({":chunk-signature": sig}, ":date"),
        ({":date": 5, ":chunk-signature": b"short"}, "32-byte"),
        ({":date": "today", ":chunk-signature": sig}, ":date"),
        ({":date": 5, ":chunk-signature": sig, ":extra": "x"}, "Unexpected header :extra"),
    ]
    for headers, message in cases:
        with pytest.raises(EventSigningError, match=message):
            read_signed_frame(headers, b"x")


def test_authorization_header_seeds_the_chain() -> None:
    seed = parse_authorization(
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261123/us-east-1/bedrock/aws4_request, "
        f"SignedHeaders=content-type;host;x-amz-content-sha256;x-amz-date, Signature={SEED}"
    )
    assert (seed.date, seed.region, seed.service, seed.signature) == (
        "20261123", "us-east-1", "bedrock", SEED)  # fmt: skip
    for bad in (None, "Bearer abc", "AWS4-HMAC-SHA256 Credential=x, Signature=zz"):
        with pytest.raises(EventSigningError):
            parse_authorization(bad)


def inner(event_type: str, payload: bytes, message_type: str = "event") -> bytes:
    headers = {":message-type": message_type, ":event-type": event_type,
               ":content-type": "application/json"}  # fmt: skip
    return bytes(EventMessage(headers=headers, payload=payload).encode())


def test_inner_chunk_errors_are_named() -> None:
    good = json.dumps({"bytes": base64.b64encode(b"{}").decode()}).encode()
    assert chunk_bytes(inner("chunk", good)) == b"{}"
    cases = [
        (inner("other", good), "Unsupported input event 'other'"),
        (inner("chunk", b"{not json"), "not JSON"),
        (inner("chunk", b'{"bytes": "%%%"}'), "not valid base64"),
        (inner("chunk", b'{"nobytes": 1}'), "no bytes member"),
        (inner("chunk", good)[:-1] + b"\0", "checksum"),
        (inner("chunk", good) * 2, "exactly one event"),
    ]
    for data, message in cases:
        with pytest.raises(InputFrameError, match=message):
            chunk_bytes(data)


def test_a_corrupt_outer_frame_is_an_input_error() -> None:
    broken = bytearray(FRAMES)
    broken[20] ^= 0xFF
    with pytest.raises(InputFrameError, match="checksum"):
        InputFrameDecoder().feed(bytes(broken))
