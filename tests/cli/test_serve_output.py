"""What `outcrop serve` prints while it serves: an access-log line per call, then how it stops."""

from __future__ import annotations

import re
import signal
import time
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ClientError

from tests.cli.conftest import HAIKU, ToolsServer, run_outcrop
from tests.support.server import ServerProcess, running_server

# The model as this test alone names it (the server is shared): a foundation-model ARN.
HAIKU_ARN = f"arn:aws:bedrock:us-east-1::foundation-model/{HAIKU}"
ACCESS_LINE = re.compile(
    r"^\d\d:\d\d:\d\d POST InvokeModelWithResponseStream "
    + re.escape(HAIKU_ARN)
    + r" 200 \d+ms (\d+)/(\d+) tokens$"
)


def _lines(server: ServerProcess) -> list[str]:
    return [line.strip() for line in server.output]


def _wait_for(server: ServerProcess, text: str) -> None:
    deadline = time.monotonic() + 60
    while not any(text in line for line in server.output):
        assert time.monotonic() < deadline, server.log()
        time.sleep(0.05)


def test_each_call_gets_an_access_line(tools_server: ToolsServer) -> None:
    args = ["invoke", HAIKU_ARN, "count these words", "--endpoint-url", tools_server.url]
    result = run_outcrop(args)
    assert result.returncode == 0, result.stderr
    _wait_for(tools_server.server, "POST InvokeModelWithResponseStream " + HAIKU_ARN)
    [matched] = [m for line in _lines(tools_server.server) if (m := ACCESS_LINE.match(line))]
    # "Echo: count these words": 5 tokens out, as the invoke summary reported.
    assert matched.group(2) == "5"
    assert "5 output tokens" in result.stderr


def test_a_failed_call_names_its_error(tools_server: ToolsServer) -> None:
    client = boto3.client(
        "bedrock-runtime",
        endpoint_url=tools_server.url,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )
    with pytest.raises(ClientError):
        client.invoke_model(modelId="nobody.access-log-model", body=b"{}")
    _wait_for(tools_server.server, "nobody.access-log-model")
    line = next(x for x in _lines(tools_server.server) if "nobody.access-log-model" in x)
    assert re.fullmatch(
        r"\d\d:\d\d:\d\d POST InvokeModel nobody\.access-log-model 400 \d+ms ValidationException",
        line,
    ), line


@pytest.mark.parametrize("how", ["flag", "config"])
def test_quiet(tmp_path: Path, how: str) -> None:
    config = tmp_path / "outcrop.toml"
    config.write_text('[server]\naccess_log = false\n\n[engines.default]\ntype = "scripted"\n')
    args = ["--engine", "scripted", "--quiet"] if how == "flag" else ["--config", str(config)]
    with running_server(args) as server:
        result = run_outcrop(["invoke", HAIKU, "hello", "--endpoint-url", server.url])
        assert result.returncode == 0, result.stderr
        server.proc.send_signal(signal.SIGTERM)
        server.proc.wait(timeout=60)
        _wait_for(server, "Outcrop stopped.")
    assert not any("InvokeModelWithResponseStream" in line for line in server.output)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_stopping_says_so(sig: signal.Signals) -> None:
    with running_server(["--engine", "scripted"]) as server:
        server.proc.send_signal(sig)
        assert server.proc.wait(timeout=60) == 0
        _wait_for(server, "Outcrop stopped.")
    lines = [line for line in _lines(server) if line]
    assert lines[-2:] == [f"Outcrop is stopping ({sig.name}).", "Outcrop stopped."]
