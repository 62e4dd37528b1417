"""The sans-IO cassette core: bodies and frames round-trip byte for byte, normalization and
redaction, JSON paths, matching, the nearest-match diff and replay timing."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from smithy_aws_event_stream.exceptions import EventError

from outcrop.recording.cassette import (
    CHUNK_MARKER,
    REDACTED,
    Call,
    Cassette,
    CassetteError,
    FrameSplitter,
    Interaction,
    Matcher,
    RecordedEvent,
    RecordedRequest,
    RecordedResponse,
    Redaction,
    Tape,
    body_bytes,
    encode_body,
    exception_event,
    nearest,
    parse_path,
    parsed_body,
    remove_path,
    replay_at,
    response_headers,
)
from outcrop.wire import eventstream


def test_body_json_only_when_it_round_trips_exactly() -> None:
    compact = b'{"a":1,"b":"\xc3\xa9"}'
    assert encode_body(compact) == {"json": {"a": 1, "b": "é"}}
    spaced = b'{"a": 1}'
    assert encode_body(spaced) == {"text": '{"a": 1}'}
    assert encode_body(b"1e5") == {"text": "1e5"}
    binary = bytes(range(256))
    assert "base64" in encode_body(binary)
    for data in (compact, spaced, binary, b"", b'{"x":1.5,"y":[true,null]}'):
        assert body_bytes(encode_body(data)) == data


def test_chunk_event_decoded_and_reencoded_byte_for_byte() -> None:
    frame = eventstream.chunk_frame({"type": "content_block_delta", "delta": {"text": "Hé"}})
    event = RecordedEvent.from_frame(frame, t=0.25)
    assert event.payload["json"]["bytes"] == CHUNK_MARKER
    assert event.chunk == {"json": {"type": "content_block_delta", "delta": {"text": "Hé"}}}
    assert event.event_type == "chunk" and event.message_type == "event"
    assert event.frame() == frame
    again = RecordedEvent.from_json(json.loads(json.dumps(event.to_json())))
    assert again.frame() == frame and again.t == 0.25


def test_other_frames_round_trip() -> None:
    frames = [
        eventstream.json_event_frame("contentBlockDelta", {"delta": {"text": "x"}, "index": 0}),
        eventstream.payload_part_frame(b'{"token": {"text": " hi"}}\n\xff'),
        exception_event("throttlingException", b'{"message":"slow down"}'),
        eventstream.error_frame("SomeError", "went wrong"),
    ]
    for frame in frames:
        event = RecordedEvent.from_frame(frame)
        assert RecordedEvent.from_json(json.loads(json.dumps(event.to_json()))).frame() == frame
    assert RecordedEvent.from_frame(frames[2]).event_type == "throttlingException"


def test_typed_headers_keep_their_sizes() -> None:
    from smithy_aws_event_stream.events import Byte, EventMessage, Long, Short

    frame = EventMessage(
        headers={"b": Byte(1), "s": Short(2), "i": 3, "l": Long(4), "t": True, "x": b"\x00"},
        payload=b"",
    ).encode()
    event = RecordedEvent.from_frame(frame)
    assert RecordedEvent.from_json(json.loads(json.dumps(event.to_json()))).frame() == frame


def test_corrupt_frame_is_refused() -> None:
    frame = eventstream.json_event_frame("messageStart", {"role": "assistant"})
    with pytest.raises(EventError):
        RecordedEvent.from_frame(frame[:-1] + bytes([frame[-1] ^ 1]))


def test_splitter_reassembles_frames_split_anywhere() -> None:
    frames = [eventstream.json_event_frame("x", {"i": i}) for i in range(5)]
    stream = b"".join(frames)
    splitter = FrameSplitter()
    got: list[bytes] = []
    for i in range(0, len(stream), 7):
        got += splitter.feed(stream[i : i + 7])
    assert got == frames and splitter.pending == 0
    with pytest.raises(ValueError):
        FrameSplitter().feed(b"\x00\x00\x00\x01" + bytes(12))


def test_volatile_headers_dropped() -> None:
    headers = [
        ("Authorization", "AWS4-HMAC-SHA256 Credential=AKIA..."),
        ("X-Amz-Date", "20260101T000000Z"),
        ("X-Amz-Security-Token", "tok"),
        ("amz-sdk-invocation-id", "1"),
        ("amz-sdk-request", "attempt=1"),
        ("User-Agent", "Boto3/1"),
        ("Content-Length", "12"),
        ("Content-Type", "application/json"),
        ("X-Amzn-Bedrock-Trace", "ENABLED"),
    ]
    kept = Redaction().request_headers(headers)
    assert kept == {"content-type": "application/json", "x-amzn-bedrock-trace": "ENABLED"}
    response = response_headers(
        [("Date", "now"), ("x-amzn-RequestId", "r"), ("X-Amzn-ErrorType", "ValidationException")]
    )
    assert response == (("X-Amzn-ErrorType", "ValidationException"),)


SECRET_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
SESSION_TOKEN = "IQoJb3JpZ2luX2VjEJr//////////wEaCXVzLWVhc3QtMSJHMEUCIQDexampletokenvalue0123456789"
ACCESS_KEY = "AKIAIOSFODNN7EXAMPLE"


def test_redaction_leaves_no_planted_secret() -> None:
    body = {
        "messages": [
            {
                "role": "user",
                "content": [
                    {"text": f"key {ACCESS_KEY} secret {SECRET_KEY} token {SESSION_TOKEN}"}
                ],
            }
        ],
        "requestMetadata": {"patient": "Jane Q. Doe", "ssn": "123-45-6789"},
    }
    redaction = Redaction.build(
        headers=["x-custom-secret"],
        paths=["requestMetadata.patient"],
        patterns=[r"\d{3}-\d{2}-\d{4}"],
    )
    stored = redaction.body(parsed_body(json.dumps(body).encode()))
    headers = redaction.request_headers([("X-Custom-Secret", "hunter2"), ("X-Other", ACCESS_KEY)])
    text = json.dumps({"body": stored, "headers": headers})
    for secret in (ACCESS_KEY, SECRET_KEY, SESSION_TOKEN, "Jane Q. Doe", "123-45-6789", "hunter2"):
        assert secret not in text
    assert REDACTED in stored["json"]["messages"][0]["content"][0]["text"]
    assert stored["json"]["requestMetadata"]["patient"] == REDACTED
    assert headers == {"x-custom-secret": REDACTED, "x-other": REDACTED}


def test_json_paths() -> None:
    assert parse_path("$.messages[*].content[0].text") == ("messages", "*", "content", 0, "text")
    value = {"a": [{"b": 1, "c": 2}, {"b": 3}], "d": {"e": 1}}
    remove_path(value, parse_path("a[*].b"))
    assert value == {"a": [{"c": 2}, {}], "d": {"e": 1}}
    remove_path(value, parse_path("d.*"))
    assert value["d"] == {}
    with pytest.raises(ValueError):
        parse_path("a..b[")


def _interaction(
    body: dict[str, object], target: str = "m", operation: str = "Converse"
) -> Interaction:
    request = RecordedRequest("POST", f"/model/{target}/converse", "", {}, {"json": body})
    return Interaction(
        "bedrock-runtime", operation, target, request, RecordedResponse(200, (), {"json": {}})
    )


def _call(body: dict[str, object], target: str = "m", operation: str = "Converse") -> Call:
    return Call("bedrock-runtime", operation, target, {"json": body})


def _chat(text: str, temperature: float = 0.5) -> dict[str, object]:
    return {
        "messages": [
            {"role": "user", "content": [{"text": "first"}]},
            {"role": "assistant", "content": [{"text": "reply"}]},
            {"role": "user", "content": [{"text": text}]},
        ],
        "inferenceConfig": {"maxTokens": 8, "temperature": temperature},
    }


def test_exact_matching_and_matchers() -> None:
    recorded = _interaction(_chat("hello"))
    tape = Tape([recorded])
    assert tape.play(_call(_chat("hello"))) is recorded
    assert tape.play(_call(_chat("hello", 0.9))) is None
    assert tape.play(_call(_chat("hello"), target="other")) is None
    assert tape.play(_call(_chat("hello"), operation="ConverseStream")) is None
    ignoring = Tape([recorded], Matcher.build(ignore=["inferenceConfig.temperature"]))
    assert ignoring.play(_call(_chat("hello", 0.9))) is recorded
    last = Tape([recorded], Matcher.build(on="last_user_message"))
    other_history = _chat("hello", 0.1)
    other_history["messages"] = [{"role": "user", "content": [{"text": "hello"}]}]
    assert last.play(_call(other_history)) is recorded
    assert last.play(_call(_chat("bye"))) is None
    by_path = Tape([recorded], Matcher.build(on="paths", paths=["inferenceConfig.maxTokens"]))
    assert by_path.play(_call(_chat("anything", 0.0))) is recorded


def test_tape_plays_matches_in_order_then_repeats_the_last() -> None:
    first, second = _interaction(_chat("x")), _interaction(_chat("x"))
    tape = Tape([first, second])
    assert tape.play(_call(_chat("x"))) is first
    assert tape.play(_call(_chat("x"))) is second
    assert tape.play(_call(_chat("x"))) is second


def test_nearest_names_the_closest_and_the_difference() -> None:
    near = _interaction(_chat("hello there"))
    far = _interaction({"prompt": "other"}, target="x")
    found = nearest(Matcher(), _call(_chat("hello world")), [far, near])
    assert found is not None
    interaction, differences = found
    assert interaction is near
    assert differences == [
        {
            "path": "body.messages[2].content[0].text",
            "recorded": "hello there",
            "request": "hello world",
        }
    ]
    _, target_diff = nearest(Matcher(), _call(_chat("hello there"), target="y"), [near]) or (
        None,
        [],
    )
    assert target_diff == [{"path": "target", "recorded": "m", "request": "y"}]
    assert nearest(Matcher(), _call({}), []) is None
    # Equally many differences: the most alike text wins, wherever it sits in the tape.
    unlike, alike = _interaction(_chat("Name a volcano.")), _interaction(_chat("Say hi."))
    for order in ([unlike, alike], [alike, unlike]):
        found = nearest(Matcher(), _call(_chat("Say hello.")), order)
        assert found is not None and found[0] is alike


def test_cassette_file_round_trip_and_atomic_save(tmp_path: Path) -> None:
    frame = eventstream.chunk_frame({"completion": "hi"})
    streamed = Interaction(
        "bedrock-runtime",
        "InvokeModelWithResponseStream",
        "anthropic.claude-v2",
        RecordedRequest("POST", "/model/x/invoke-with-response-stream", "", {}, {"json": {}}),
        RecordedResponse(
            200,
            (("Content-Type", "application/vnd.amazon.eventstream"),),
            events=(RecordedEvent.from_frame(frame, 0.5),),
        ),
        "2026-01-01T00:00:00.000+00:00",
        0.6,
    )
    cassette = Cassette([streamed, _interaction({"a": 1})])
    path = tmp_path / "sub" / "c.json"
    cassette.save(path)
    text = path.read_text()
    assert text.startswith('{\n  "outcrop_cassette": 1,\n  "interactions": [')
    loaded = Cassette.load(path)
    assert loaded.dumps() == text
    events = loaded.interactions[0].response.events
    assert events is not None and events[0].frame() == frame
    assert [p.name for p in path.parent.iterdir()] == ["c.json"]
    with pytest.raises(CassetteError):
        Cassette.loads('{"interactions": []}', "x.json")
    with pytest.raises(CassetteError):
        Cassette.loads("not json", "x.json")


def test_replay_timing_scales() -> None:
    assert replay_at(2.0, 1) == 2.0
    assert replay_at(2.0, 10) == pytest.approx(0.2)
    assert replay_at(2.0, 0) == 0.0
    with pytest.raises(ValueError):
        replay_at(1.0, -1)


def test_chunk_bytes_that_are_not_canonical_base64_stay_as_sent() -> None:
    envelope = b'{"bytes":"aGk","p":"a"}'  # unpadded: would not re-encode the same
    frame = eventstream.event_frame("chunk", envelope)
    event = RecordedEvent.from_frame(frame)
    assert event.chunk is None and event.frame() == frame
    assert base64.b64decode("aGk=") == b"hi"


def _speech_chunk(event: dict[str, object], compact: bool = True) -> bytes:
    inner = json.dumps(event, separators=(",", ":") if compact else None).encode()
    return eventstream.event_frame("chunk", b'{"bytes":"' + base64.b64encode(inner) + b'"}')


def test_speech_audio_moves_into_one_blob_and_comes_back_byte_for_byte() -> None:
    pcm = [bytes([i]) * 3200 for i in range(3)]
    frames = [
        _speech_chunk(
            {
                "event": {
                    "audioInput": {"contentName": "mic", "content": base64.b64encode(p).decode()}
                }
            },
            compact,
        )
        for p, compact in zip(pcm, (True, False, True), strict=True)
    ]
    frames.append(_speech_chunk({"event": {"textOutput": {"content": "hello"}}}))
    blob = bytearray()
    events = [RecordedEvent.from_frame(f).with_audio_in(blob) for f in frames]
    assert bytes(blob) == b"".join(pcm)
    stored = json.dumps([e.to_json() for e in events])
    assert base64.b64encode(pcm[1]).decode() not in stored
    assert "@audio:3200:3200" in stored
    loaded = [RecordedEvent.from_json(e) for e in json.loads(stored)]
    assert [e.frame(bytes(blob)) for e in loaded] == frames
    interaction = Interaction(
        "bedrock-runtime",
        "InvokeModelWithBidirectionalStream",
        "amazon.nova-sonic-v1:0",
        RecordedRequest("POST", "/", "", {}, {"text": ""}, tuple(loaded)),
        RecordedResponse(200, (), events=()),
        audio={"input": base64.b64encode(bytes(blob)).decode()},
    )
    again = Interaction.from_json(json.loads(json.dumps(interaction.to_json())))
    assert again.audio_bytes("input") == bytes(blob) and again.audio_bytes("output") == b""
    assert again.request.events is not None
    assert [e.frame(again.audio_bytes("input")) for e in again.request.events] == frames
