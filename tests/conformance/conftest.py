"""The scripted Outcrop server most conformance tests share, with its model routing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conformance.speech_fixtures import (  # noqa: F401 - speech-session servers
    limits_server,
    speech_server,
    verifying_speech_server,
)
from tests.support.server import ServerProcess, running_server

HAIKU = "anthropic.claude-3-haiku-20240307-v1:0"
BROKEN = "anthropic.claude-instant-v1"  # routed to a scripted engine that fails mid-stream
DEAD = "anthropic.claude-v2"  # routed to a scripted engine that fails before any token
SLOW = "anthropic.claude-v2:1"  # routed to a slow scripted engine (10 tokens, 100 ms apart)
APP_PROFILE = "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/a1b2c3d4e5f6"

CONFIG = f"""
[engines.default]
type = "scripted"

[engines.broken]
type = "scripted"
fail_after_tokens = 2

[engines.dead]
type = "scripted"
fail_after_tokens = 0

[engines.slow]
type = "scripted"
text = "one two three four five six seven eight nine ten"
delay_ms = 100

[[models]]
match = "{BROKEN}"
engine = "broken"

[[models]]
match = "{DEAD}"
engine = "dead"

[[models]]
match = "{SLOW}"
engine = "slow"

[[models]]
match = "*"
engine = "default"

[aliases]
"{APP_PROFILE}" = "{HAIKU}"
"""


@pytest.fixture(scope="session")
def invoke_server(
    tmp_path_factory: pytest.TempPathFactory, tls_files: tuple[Path, Path]
) -> Iterator[ServerProcess]:
    """`outcrop serve --config` with the routes above, plain and TLS listeners."""
    config = tmp_path_factory.mktemp("cfg") / "outcrop.toml"
    config.write_text(CONFIG)
    with running_server(["--config", str(config)], tls=tls_files) as proc:
        yield proc
