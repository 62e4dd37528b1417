"""A live `outcrop serve` on scripted engines for the command tests, and a way to run commands.

Engines (routed by model ID, so that tests do not disturb each other's metrics and logs):
- Claude 3 Opus → `slow`: four words 700 ms apart (to watch a stream while it runs);
- Claude 3 Sonnet → `timed`: ten tokens, the first after 100 ms, then one every 20 ms (known
  latencies for the benchmark);
- Claude v2.1 → `long`: an answer of 1000 tokens at once (cut by max_tokens);
- Claude Instant → `paced`: four words a second apart (requests still in flight at a deadline);
- everything else → `default`: echoes the prompt at once.
The server writes invocation logs to a file the tests read.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ClientError

from tests.support.server import REPO, ServerProcess, running_server

OPUS = "anthropic.claude-3-opus-20240229-v1:0"
SONNET = "anthropic.claude-3-sonnet-20240229-v1:0"
HAIKU = "anthropic.claude-3-haiku-20240307-v1:0"
HAIKU_35 = "anthropic.claude-3-5-haiku-20241022-v1:0"
SLOW_WORDS = ["first", "second", "third", "fourth"]
SLOW_DELAY_S = 0.7
TIMED_FIRST_S = 0.100
TIMED_GAP_S = 0.020
TIMED_TOKENS = 10
CLAUDE_V2 = "anthropic.claude-v2:1"
INSTANT = "anthropic.claude-instant-v1"
PACED_DELAY_S = 1.0

CONFIG = f"""
[invocation_log]
destination = "{{log}}"

[engines.default]
type = "scripted"

[engines.slow]
type = "scripted"
text = "{" ".join(SLOW_WORDS)}"
delay_ms = {SLOW_DELAY_S * 1000}

[engines.timed]
type = "scripted"
text = "tok"
token_count = {TIMED_TOKENS}
first_token_delay_ms = {TIMED_FIRST_S * 1000}
delay_ms = {TIMED_GAP_S * 1000}

[engines.long]
type = "scripted"
text = "rock"
token_count = 1000

[engines.paced]
type = "scripted"
text = "granite basalt slate chalk"
delay_ms = {PACED_DELAY_S * 1000}

[[models]]
match = "{OPUS}"
engine = "slow"

[[models]]
match = "{CLAUDE_V2}"
engine = "long"

[[models]]
match = "{INSTANT}"
engine = "paced"

[[models]]
match = "{SONNET}"
engine = "timed"

[[models]]
match = "*"
engine = "default"
"""


@dataclass
class ToolsServer:
    server: ServerProcess
    config: Path
    log: Path

    @property
    def url(self) -> str:
        return self.server.url


@pytest.fixture(scope="session")
def tools_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ToolsServer]:
    directory = tmp_path_factory.mktemp("tools-server")
    log = directory / "invocations.jsonl"
    config = directory / "outcrop.toml"
    config.write_text(CONFIG.replace("{log}", str(log)))
    with running_server(["--config", str(config)]) as server:
        yield ToolsServer(server, config, log)


def outcrop_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "outcrop.cli.main", *args]


def run_outcrop(
    args: Sequence[str],
    *,
    stdin: str | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 120,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run `outcrop ARGS` to completion as a user would, capturing its output."""
    return subprocess.run(
        outcrop_command(*args),
        input=stdin,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=timeout,
        cwd=cwd or REPO,
        check=False,
    )


def one_line_error(result: subprocess.CompletedProcess[str], *, alone: bool = True) -> str:
    """The command's error: its last line on stderr (its only one when `alone`), no traceback."""
    assert result.returncode != 0, result
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines, result.stderr
    if alone:
        assert len(lines) == 1, result.stderr
    assert lines[-1].startswith("outcrop: "), result.stderr
    return lines[-1]


def serves_converse(url: str) -> bool:
    """Whether the server answers ConverseStream (being built on another branch)."""
    client = boto3.client("bedrock-runtime", endpoint_url=url, region_name="us-east-1")
    try:
        response = client.converse_stream(
            modelId=HAIKU, messages=[{"role": "user", "content": [{"text": "ping"}]}]
        )
        for _ in response["stream"]:
            pass
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "NotImplementedException":
            return False
        raise
    return True
