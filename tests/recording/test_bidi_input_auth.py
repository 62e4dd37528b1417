"""Issue 16 (security): in record and replay mode, InvokeModelWithBidirectionalStream's input
events are verified against the client's SigV4 event-signature chain exactly as a live speech
session verifies them (`verify` auth mode). Before the fix, record mode only format-checked the
incoming frames (a forged event was silently not forwarded, and the session ended without an
error) and replay mode read and dropped them unchecked (the recorded answer played to a client
whose events were forged).

Outcrop A runs in-process (ASGI) in `verify` mode with a credential the test signs with; the
request itself is properly signed (botocore's SigV4 signer), only the events differ: signed with
the right key (they pass) or a wrong one (forged). For record mode the upstream is Outcrop B, a
separate process with the scripted engine in `open` mode.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.eventstream import EventStreamBuffer
from smithy_aws_event_stream.events import EventMessage

from outcrop.app import OutcropApp
from outcrop.config import load_settings
from outcrop.recording.cassette import (
    Cassette,
    Interaction,
    RecordedEvent,
    RecordedRequest,
    RecordedResponse,
    body_bytes,
)
from outcrop.wire import eventstream
from outcrop.wire.event_signing import parse_authorization, sign_frame, signing_key
from tests.support.server import running_server

MODEL = "amazon.nova-sonic-v1:0"
PATH = "/model/amazon.nova-sonic-v1%3A0/invoke-with-bidirectional-stream"
REGION = "us-east-1"
ACCESS_KEY = "AKIDBIDIAUTH"
SECRET_KEY = "bidi-auth-secret"
FORGED_KEY = "not-the-secret-the-server-knows"
MISMATCH = "The signature of input event 1 does not match the signature chain of this request."

CONFIG = f"""
[engines.default]
type = "scripted"

[auth]
mode = "verify"

[[auth.credentials]]
access_key_id = "{ACCESS_KEY}"
secret_access_key = "{SECRET_KEY}"
principal = "speaker"

[principals.speaker]
policies = ["all"]

[policies.all]
Version = "2012-10-17"
[[policies.all.Statement]]
Effect = "Allow"
Action = ["bedrock:*"]
Resource = "*"

[speech]
input_timeout_s = 30
"""


def app(tmp_path: Path, recording: str = "") -> OutcropApp:
    config = tmp_path / "a.toml"
    config.write_text(CONFIG + recording)
    return OutcropApp(load_settings(config))


def chunk(event: dict[str, Any]) -> bytes:
    """An inner `chunk` event carrying a Nova Sonic event."""
    inner = base64.b64encode(json.dumps(event).encode()).decode()
    body = json.dumps({"bytes": inner}, separators=(",", ":"))
    headers = {":message-type": "event", ":event-type": "chunk",
               ":content-type": "application/json"}  # fmt: skip
    return bytes(EventMessage(headers=headers, payload=body.encode()).encode())


def signed_call(secret_for_events: str) -> tuple[list[tuple[bytes, bytes]], bytes]:
    """A properly signed request's headers, and a body whose events (sessionStart, then the
    final empty frame) are chained from its signature with `secret_for_events`'s key."""
    request = AWSRequest(
        method="POST",
        url=f"http://localhost{PATH}",
        data=b"",
        headers={
            "Content-Type": "application/vnd.amazon.eventstream",
            "X-Amz-Content-SHA256": "STREAMING-AWS4-HMAC-SHA256-EVENTS",
        },
    )
    SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY), "bedrock", REGION).add_auth(request)
    headers = [(b"host", b"localhost")]
    headers += [(k.lower().encode(), v.encode()) for k, v in request.headers.items()]
    prior = parse_authorization(request.headers["Authorization"]).signature
    body = b""
    for payload in (chunk({"event": {"sessionStart": {}}}), b""):
        date_ms = int(time.time() * 1000)
        day = time.strftime("%Y%m%d", time.gmtime(date_ms // 1000))
        key = signing_key(secret_for_events, day, REGION, "bedrock")
        frame, prior = sign_frame(prior, payload, date_ms, key, REGION)
        body += frame
    return headers, body


async def session(served: OutcropApp, headers: list[tuple[bytes, bytes]], body: bytes) -> Any:
    """One session whose client sends `body` and then ends its input; status and frames back."""
    sent: list[MutableMapping[str, Any]] = []
    arrived: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    arrived.put_nowait({"type": "http.request", "body": body, "more_body": True})
    arrived.put_nowait({"type": "http.request", "body": b"", "more_body": False})
    finished = asyncio.Event()

    async def receive() -> dict[str, Any]:
        if arrived.empty():
            await finished.wait()
            return {"type": "http.disconnect"}
        return await arrived.get()

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)
        if message["type"] == "http.response.body" and not message.get("more_body", False):
            finished.set()

    scope = {
        "type": "http",
        "method": "POST",
        "path": PATH.replace("%3A", ":"),
        "raw_path": PATH.encode(),
        "query_string": b"",
        "headers": headers,
    }
    try:
        await asyncio.wait_for(served(scope, receive, send), 120)
    finally:
        if served.recording is not None:
            await served.recording.close()
    (start,) = [m for m in sent if m["type"] == "http.response.start"]
    buffer = EventStreamBuffer()
    buffer.add_data(b"".join(m.get("body", b"") for m in sent if "body" in m))
    return start["status"], list(buffer)


def errors(frames: list[Any]) -> list[tuple[str, str]]:
    return [
        (f.headers[":exception-type"], json.loads(f.payload)["message"])
        for f in frames
        if f.headers.get(":message-type") == "exception"
    ]


def events(frames: list[Any]) -> list[Any]:
    return [f for f in frames if f.headers.get(":message-type") == "event"]


async def test_live_session_refuses_forged_input_events(tmp_path: Path) -> None:
    """The reference behaviour the recording modes must match."""
    status, frames = await session(app(tmp_path), *signed_call(FORGED_KEY))
    assert status == 200
    assert errors(frames) == [("validationException", MISMATCH)]
    assert events(frames) == []


async def test_record_mode_refuses_forged_input_events_and_records_signed_ones(
    tmp_path: Path,
) -> None:
    cassettes = tmp_path / "cassettes"
    with running_server(["--engine", "scripted"]) as upstream:
        recording = f'\n[recording]\ndir = "{cassettes}"\nmode = "all"\n'
        recording += f'upstream = "{upstream.url}"\n'
        status, frames = await session(app(tmp_path, recording), *signed_call(FORGED_KEY))
        assert status == 200
        assert errors(frames) == [("validationException", MISMATCH)]
        assert events(frames) == []
        assert not list(cassettes.glob("*.json"))  # a refused session is not recorded

        status, frames = await session(app(tmp_path, recording), *signed_call(SECRET_KEY))
    assert status == 200
    assert errors(frames) == []
    (written,) = cassettes.glob("*.json")
    (interaction,) = Cassette.load(written).interactions
    assert interaction.operation == "InvokeModelWithBidirectionalStream"
    assert interaction.request.events is not None
    inputs = [e.chunk for e in interaction.request.events]
    assert [json.loads(body_bytes(c)) for c in inputs if c is not None] == [
        {"event": {"sessionStart": {}}}
    ]


async def test_replay_mode_refuses_forged_input_events_before_answering(tmp_path: Path) -> None:
    recorded_payload = b'{"bytes":"' + base64.b64encode(b'{"event":{"completionStart":{}}}') + b'"}'
    recorded = eventstream.event_frame("chunk", recorded_payload)
    cassette = Cassette(
        [
            Interaction(
                "bedrock-runtime",
                "InvokeModelWithBidirectionalStream",
                MODEL,
                RecordedRequest("POST", PATH, "", {}, {"text": ""}, ()),
                RecordedResponse(
                    200,
                    (("Content-Type", "application/vnd.amazon.eventstream"),),
                    events=(RecordedEvent.from_frame(recorded, 0.0),),
                ),
            )
        ]
    )
    cassettes = tmp_path / "cassettes"
    cassette.save(cassettes / "speech.json")
    replaying = f'\n[recording]\ndir = "{cassettes}"\nmode = "none"\nreplay_speed = 0\n'

    status, frames = await session(app(tmp_path, replaying), *signed_call(FORGED_KEY))
    assert status == 200
    assert errors(frames) == [("validationException", MISMATCH)]
    assert events(frames) == []

    status, frames = await session(app(tmp_path, replaying), *signed_call(SECRET_KEY))
    assert status == 200
    assert errors(frames) == []
    assert [bytes(f.payload) for f in events(frames)] == [recorded_payload]
