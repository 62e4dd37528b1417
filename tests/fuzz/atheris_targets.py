"""Coverage-guided fuzzing with atheris (libFuzzer) where coverage guidance pays: the byte-level
decoders, whose branches random mutation rarely reaches (frame lengths, header types, CRCs).

    python -m tests.fuzz.atheris_run eventstream -max_total_time=60
    python -m tests.fuzz.atheris_run restjson -max_total_time=60

`eventstream` feeds bytes to the bidirectional input decoder (outer signed frames, inner `chunk`
events, the speech protocol behind them); `restjson` builds a method, path, headers, query and
body from the bytes and routes and binds them against bedrock-runtime's and SageMaker Runtime's
service models, then checks the body against the operation's input shape. Each target raises
only when a parser fails with something other than its modelled error, which libFuzzer reports
with the input that did it. The targets are plain functions, run on their seeds by
`test_fuzz_parsers.py` in every test run; atheris is needed only to fuzz (`atheris_run`, from
`make fuzz`).
"""

from __future__ import annotations

from collections.abc import Callable

from outcrop.speech.protocol import InputProtocol, ProtocolError
from outcrop.wire.bidi_input import InputFrameDecoder, InputFrameError, chunk_bytes
from outcrop.wire.errors import AwsError
from outcrop.wire.event_signing import EventSigningError
from outcrop.wire.jsonbody import parse_json_body
from outcrop.wire.restjson import ServiceSpec
from tests.fuzz.corpus import session_stream

SPECS = (ServiceSpec.load("bedrock-runtime"), ServiceSpec.load("sagemaker-runtime"))
METHODS = ("GET", "POST", "PUT", "DELETE")
HEADERS = (
    "content-type",
    "accept",
    "x-amzn-bedrock-guardrailidentifier",
    "x-amzn-bedrock-guardrailversion",
    "x-amzn-bedrock-trace",
    "x-amzn-bedrock-service-tier",
    "x-amzn-sagemaker-custom-attributes",
    "x-amzn-sagemaker-target-model",
    "x-amzn-sagemaker-session-id",
)


def eventstream(data: bytes) -> None:
    """One request body of InvokeModelWithBidirectionalStream, split in two at a data-chosen
    point, through the frame decoder and the speech protocol."""
    decoder = InputFrameDecoder()
    protocol = InputProtocol()
    cut, data = (data[0] * 31 % len(data), data[1:]) if data else (0, b"")
    try:
        for part in (data[:cut], data[cut:]):
            for frame in decoder.feed(part):
                if not frame.is_final:
                    protocol.receive(chunk_bytes(frame.payload))
    except (InputFrameError, EventSigningError, ProtocolError):
        pass


def restjson(data: bytes) -> None:
    """A request made of the bytes, routed and bound (fields split at NUL bytes)."""
    fields = data.split(b"\x00")
    fields += [b""] * (5 - len(fields))
    text = [f.decode("utf-8", "replace") for f in fields[:4]]
    method = METHODS[len(fields[0]) % len(METHODS)]
    headers = [(HEADERS[i % len(HEADERS)], value) for i, value in enumerate(text[2].split("\n"))]
    query = {key: [value] for key, _, value in (p.partition("=") for p in text[3].split("&"))}
    body = b"\x00".join(fields[4:])
    for spec in SPECS:
        matched = spec.match(method, "/" + text[1])
        if matched is None:
            continue
        operation, labels = matched
        try:
            spec.bind(operation, labels, headers, query)
            parse_json_body(operation, body)
        except AwsError:
            pass


TARGETS: dict[str, Callable[[bytes], None]] = {"eventstream": eventstream, "restjson": restjson}


def seeds(target: str) -> list[bytes]:
    """Valid inputs that start each target's corpus."""
    if target == "eventstream":
        return [b"\x00" + session_stream()]
    return [
        b"\x00model/amazon.nova-lite-v1%3A0/converse\x00\x00\x00"
        b'{"messages":[{"role":"user","content":[{"text":"hi"}]}]}',
        b"P\x00model/anthropic.claude-3-haiku-20240307-v1%3A0/invoke\x00application/json\x00\x00{}",
        b"P\x00guardrail/abc/version/1/apply\x00\x00\x00"
        b'{"source":"INPUT","content":[{"text":{"text":"x"}}]}',
        b"P\x00endpoints/e/invocations\x00application/json\nx\x00\x00{}",
    ]
