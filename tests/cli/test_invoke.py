"""`outcrop invoke` run as a user would, against a live server on scripted engines."""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.cli.conftest import (
    CLAUDE_V2,
    HAIKU,
    OPUS,
    SLOW_WORDS,
    ToolsServer,
    one_line_error,
    outcrop_command,
    run_outcrop,
    serves_converse,
)
from tests.support.server import REPO

INVALID_MODEL = (
    "outcrop: ValidationException: The provided model identifier is invalid."
    " (`outcrop models` lists the model IDs a server serves)"
)


def _active_streams(url: str, model: str) -> float:
    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as response:
        text = response.read().decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "outcrop_active_streams" and sample.labels.get("model") == model:
                return sample.value
    return 0.0


def _read_some(proc: subprocess.Popen[bytes], timeout: float) -> bytes:
    """The first bytes the process writes to stdout."""
    assert proc.stdout is not None
    selector = selectors.DefaultSelector()
    selector.register(proc.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if selector.select(timeout=0.05):
            data = os.read(proc.stdout.fileno(), 65536)
            if data.strip():
                return data
    raise AssertionError("no output from outcrop invoke")


def test_streams_the_answer_as_it_is_generated(tools_server: ToolsServer) -> None:
    # The slow engine sends four words 700 ms apart: the first word must be on the terminal
    # while the server is still generating (its stream still counts as active).
    proc = subprocess.Popen(
        outcrop_command("invoke", OPUS, "Say four words", "--endpoint-url", tools_server.url),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=REPO,
    )
    try:
        first = _read_some(proc, timeout=60).decode()
        assert first.strip() == SLOW_WORDS[0]
        assert proc.poll() is None
        assert _active_streams(tools_server.url, OPUS) == 1
        rest, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert first + rest.decode() == " ".join(SLOW_WORDS) + "\n"
    summary = err.decode().strip()
    assert summary.startswith("[") and "4 output tokens" in summary
    assert "first token" in summary and "total" in summary
    assert _active_streams(tools_server.url, OPUS) == 0


def test_prompt_from_stdin(tools_server: ToolsServer) -> None:
    result = run_outcrop(
        ["invoke", HAIKU, "--endpoint-url", tools_server.url], stdin="tell me  something\n"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "Echo: tell me something\n"
    assert "output tokens" in result.stderr


def test_json_events(tools_server: ToolsServer) -> None:
    result = run_outcrop(
        ["invoke", HAIKU, "hi there", "--json", "--endpoint-url", tools_server.url]
    )
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert events[0]["type"] == "message_start"
    text = "".join(e["delta"]["text"] for e in events if e["type"] == "content_block_delta")
    assert text == "Echo: hi there"
    metrics = events[-1]["amazon-bedrock-invocationMetrics"]
    assert metrics["outputTokenCount"] == 4
    assert f"{metrics['outputTokenCount']} output tokens" in result.stderr


def test_native_body_from_a_file(tools_server: ToolsServer, tmp_path: Path) -> None:
    body = tmp_path / "body.json"
    body.write_text(
        json.dumps(
            {
                "anthropic_version": "bedrock-2023-05-31",
                "max_tokens": 2,
                "messages": [{"role": "user", "content": "alpha beta gamma"}],
            }
        )
    )
    result = run_outcrop(["invoke", HAIKU, "--body", str(body), "--endpoint-url", tools_server.url])
    assert result.returncode == 0, result.stderr
    assert result.stdout == "Echo:\n"
    assert "2 output tokens" in result.stderr


def test_unknown_model(tools_server: ToolsServer) -> None:
    result = run_outcrop(["invoke", "nobody.model-x", "hi", "--endpoint-url", tools_server.url])
    assert result.returncode == 1
    assert one_line_error(result) == INVALID_MODEL
    assert result.stdout == ""


def test_malformed_body_is_the_servers_validation_error(
    tools_server: ToolsServer, tmp_path: Path
) -> None:
    body = tmp_path / "bad.json"
    body.write_text('{"anthropic_version": "bedrock-2023-05-31"}')
    result = run_outcrop(["invoke", HAIKU, "--body", str(body), "--endpoint-url", tools_server.url])
    assert result.returncode == 1
    assert one_line_error(result).startswith("outcrop: ValidationException: Malformed input")


def test_unreachable_endpoint() -> None:
    result = run_outcrop(["invoke", HAIKU, "hi", "--endpoint-url", "http://127.0.0.1:9"])
    assert result.returncode == 1
    assert one_line_error(result).startswith("outcrop: Could not connect to the endpoint URL")


def test_no_credentials(tools_server: ToolsServer, tmp_path: Path) -> None:
    env = {
        "AWS_ACCESS_KEY_ID": "",
        "AWS_SECRET_ACCESS_KEY": "",
        "AWS_CONFIG_FILE": str(tmp_path / "none"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    result = run_outcrop(["invoke", HAIKU, "hi", "--endpoint-url", tools_server.url], env=env)
    assert result.returncode == 1
    assert one_line_error(result) == "outcrop: Unable to locate credentials"


def test_unknown_profile() -> None:
    result = run_outcrop(["invoke", HAIKU, "hi", "--profile", "no-such-profile-here"])
    assert result.returncode == 1
    assert "no-such-profile-here" in one_line_error(result)


def test_bad_body_file_and_missing_prompt(tmp_path: Path) -> None:
    missing = run_outcrop(["invoke", HAIKU, "--body", str(tmp_path / "nope.json")])
    assert missing.returncode == 2
    assert "nope.json" in one_line_error(missing)
    (tmp_path / "list.json").write_text("[1, 2]")
    listed = run_outcrop(["invoke", HAIKU, "--body", str(tmp_path / "list.json")])
    assert listed.returncode == 2
    assert "JSON object" in one_line_error(listed)
    empty = run_outcrop(["invoke", HAIKU], stdin="")
    assert empty.returncode == 2
    assert one_line_error(empty) == "outcrop: no prompt: standard input was empty"


def _default_sigint() -> None:
    """In the child: Ctrl-C as in a terminal, even when the test run inherited SIGINT ignored
    (a run started in the background), which Python would otherwise keep."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_mid_stream(tools_server: ToolsServer) -> None:
    proc = subprocess.Popen(
        outcrop_command("invoke", OPUS, "go", "--endpoint-url", tools_server.url),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=REPO,
        preexec_fn=_default_sigint,
    )
    try:
        _read_some(proc, timeout=60)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 130
    result = subprocess.CompletedProcess(proc.args, 130, "", err.decode())
    assert one_line_error(result) == "outcrop: interrupted"


def test_converse_stream(tools_server: ToolsServer) -> None:
    if not serves_converse(tools_server.url):
        pytest.skip("this server does not serve ConverseStream yet (NotImplementedException)")
    result = run_outcrop(
        ["invoke", HAIKU, "hello converse", "--converse", "--endpoint-url", tools_server.url]
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "Echo: hello converse\n"
    assert "output tokens" in result.stderr
    as_json = run_outcrop(
        ["invoke", HAIKU, "hi", "--converse", "--json", "--endpoint-url", tools_server.url]
    )
    events = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert "messageStart" in events[0] and "metadata" in events[-1]


def test_default_max_tokens(tools_server: ToolsServer) -> None:
    # The `long` engine would answer 1000 tokens: the default --max-tokens cuts it at 256.
    result = run_outcrop(["invoke", CLAUDE_V2, "go on", "--endpoint-url", tools_server.url])
    assert result.returncode == 0, result.stderr
    assert "256 output tokens" in result.stderr
    assert result.stdout.split() == ["rock"] * 256


def test_a_model_that_does_not_stream(tools_server: ToolsServer) -> None:
    result = run_outcrop(
        ["invoke", "amazon.nova-canvas-v1:0", "a cat", "--endpoint-url", tools_server.url]
    )
    assert result.returncode == 1
    assert one_line_error(result) == (
        "outcrop: ValidationException: The model is unsupported for streaming. "
        "(`outcrop invoke` streams; `outcrop models` lists the models it can call)"
    )
