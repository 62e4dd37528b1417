"""The bidirectional speech stream recorded and replayed with the JS v3 SDK (h2c), as
test_record_replay_bidi.py does with the smithy Python SDK: Outcrop B (auth `verify`) is the
upstream, Outcrop A records the session re-signing it with credentials from its own credential
chain; B is stopped and A replays the session to the same client, which gets the same output
events in the same order. The client ends its prompt when the answer's `completionEnd` has
arrived (the harness's `waitFor`), not after a fixed delay, so the test holds under any load."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conformance.jsclient import run_js
from tests.recording.test_record_replay_bidi import ACCESS_KEY, B_CONFIG, SECRET_KEY
from tests.support.server import ServerProcess, running_server
from tests.support.speech import NovaInput, pieces, silence

pytestmark = pytest.mark.node


def session_events() -> list[dict[str, Any]]:
    nova = NovaInput(prompt="recorded-prompt-js")
    events: list[dict[str, Any]] = [
        *({"json": e} for e in nova.opening(rate=16000)),
        {"json": nova.audio_start("mic")},
        *({"json": nova.audio("mic", piece)} for piece in pieces(silence(0.3))),
        {"json": nova.content_end("mic")},
        *({"json": e} for e in nova.text("USER", "Basalt is a rock.", interactive=True)),
        {"json": nova.prompt_end(), "waitFor": "completionEnd"},
        {"json": nova.session_end()},
    ]
    return events


def run_session(server: ServerProcess, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    command = {"endpoint": server.url, "operation": "InvokeModelWithBidirectionalStream",
               "modelId": "amazon.nova-sonic-v1:0", "inputEvents": events}  # fmt: skip
    run = run_js(command, timeout=120)
    run.ok()
    chunks = [line for line in run.events if line["event"] == "chunk"]
    # The prompt ended only once the answer had: `waitFor` held promptEnd back until then.
    (waited,) = [i for i, e in enumerate(events) if "waitFor" in e]
    (sent,) = [line["t"] for line in run.sent if line["sent"] == waited]
    answered = next(line["t"] for line in chunks if "completionEnd" in line["data"]["event"])
    assert sent >= answered
    return [line["data"]["event"] for line in chunks]


def test_js_sdk_bidirectional_session_records_and_replays(tmp_path: Path) -> None:
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
    events = session_events()
    cassettes = tmp_path / "cassettes"
    with running_server(["--config", str(config)], ready_timeout=300) as upstream:
        args = ["--engine", "scripted", "--record", str(cassettes), "--record-upstream"]
        with running_server([*args, upstream.url], env=env) as a:
            recorded = run_session(a, events)
    names = [next(iter(e)) for e in recorded]
    assert names[0] == "completionStart" and names[-1] == "completionEnd"
    assert "audioOutput" in names and "textOutput" in names
    text = next(cassettes.glob("*.json")).read_text()
    (interaction,) = json.loads(text)["interactions"]
    assert interaction["operation"] == "InvokeModelWithBidirectionalStream"
    inputs = [json.dumps(e["chunk"]) for e in interaction["request"]["events"]]
    assert any("Basalt is a rock." in i for i in inputs)
    assert '"promptEnd"' in inputs[-2] and '"sessionEnd"' in inputs[-1]
    for secret in (ACCESS_KEY, SECRET_KEY):
        assert secret not in text

    args = ["--engine", "scripted", "--replay", str(cassettes), "--replay-speed", "0"]
    with running_server(args) as replayer:
        replayed = run_session(replayer, events)
    assert replayed == recorded
