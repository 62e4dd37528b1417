"""The bidirectional speech stream recorded and replayed end to end: Outcrop B (speech sessions,
auth mode `verify`) is the upstream; Outcrop A records a Nova Sonic session the Python smithy SDK
opens over TLS + HTTP/2, forwarding it over h2c with the input events re-signed in A's own
chain (B verifies every event signature). B is stopped; A replays the session and the client
gets the same output events in the same order; the answer's audio sits in the cassette as one
blob, not as a base64 string per event."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

from tests.conformance.smithy_bidi import SmithyStream
from tests.support.server import running_server
from tests.support.speech import NovaInput, pieces, silence

ACCESS_KEY = "AKIDRECORDERBIDI"
SECRET_KEY = "recorder-bidi-secret"

B_CONFIG = f"""
[engines.default]
type = "scripted"

[auth]
mode = "verify"

[[auth.credentials]]
access_key_id = "{ACCESS_KEY}"
secret_access_key = "{SECRET_KEY}"
principal = "recorder"

[principals.recorder]
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


async def session(url: str, ca_file: Path) -> tuple[list[dict[str, Any]], str | None]:
    nova = NovaInput(prompt="recorded-prompt")
    async with SmithyStream(url, ca_file) as stream:
        await stream.send_all(nova.opening(rate=16000))
        # A moment of microphone silence (audio input), then a typed question.
        await stream.send(nova.audio_start("mic"))
        for piece in pieces(silence(0.3)):
            await stream.send(nova.audio("mic", piece))
        await stream.send(nova.content_end("mic"))
        await stream.send_all(nova.text("USER", "Basalt is a rock.", interactive=True))
        await stream.wait_for("completionEnd", within=120)
        await stream.send(nova.prompt_end())
        await stream.send(nova.session_end())
        await stream.close_input()
        await stream.wait_end(60)
    return stream.events, repr(stream.error) if stream.error is not None else None


async def test_bidirectional_session_records_and_replays(
    tmp_path: Path, tls_files: tuple[Path, Path]
) -> None:
    config = tmp_path / "b.toml"
    config.write_text(B_CONFIG)
    profile = tmp_path / "credentials"
    profile.write_text(
        f"[rec]\naws_access_key_id = {ACCESS_KEY}\naws_secret_access_key = {SECRET_KEY}\n"
    )
    env = {
        "AWS_SHARED_CREDENTIALS_FILE": str(profile),
        "AWS_CONFIG_FILE": str(tmp_path / "none"),
        "AWS_PROFILE": "rec",
        "AWS_ACCESS_KEY_ID": "",
        "AWS_SECRET_ACCESS_KEY": "",
        "AWS_SESSION_TOKEN": "",
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    cassettes = tmp_path / "cassettes"
    with running_server(["--config", str(config)], ready_timeout=300) as upstream:
        args = ["--engine", "scripted", "--record", str(cassettes)]
        with running_server(
            [*args, "--record-upstream", upstream.url], env=env, tls=tls_files
        ) as a:
            recorded, recorded_error = await session(a.tls_url, tls_files[0])
    assert recorded_error is None
    names = [next(iter(e)) for e in recorded]
    assert names[0] == "completionStart" and "audioOutput" in names and "textOutput" in names
    text = next(cassettes.glob("*.json")).read_text()
    data = json.loads(text)
    (interaction,) = data["interactions"]
    assert interaction["operation"] == "InvokeModelWithBidirectionalStream"
    assert interaction["audio"]["output"]
    # The microphone's 32 ms pieces are one blob too, not a base64 string per event.
    assert len(base64.b64decode(interaction["audio"]["input"])) == len(silence(0.3))
    assert "@audio:1024:1024" in text
    inputs = [e["chunk"] for e in interaction["request"]["events"]]
    assert any("Basalt is a rock." in json.dumps(i) for i in inputs)
    first_audio = next(e for e in recorded if "audioOutput" in e)["audioOutput"]["content"]
    assert first_audio not in text and '"@audio:0:' in text
    for secret in (ACCESS_KEY, SECRET_KEY):
        assert secret not in text

    args = ["--engine", "scripted", "--replay", str(cassettes), "--replay-speed", "0"]
    with running_server(args, tls=tls_files) as replayer:
        replayed, replayed_error = await session(replayer.tls_url, tls_files[0])
    assert replayed_error is None
    assert replayed == recorded
