"""Outcrop servers for the speech-session conformance tests (imported by the test modules).

`speech_server` routes Nova Sonic to the scripted echo engine (it answers "Echo: <what the user
said>") and Nova 2 Sonic to a scripted engine with a long answer (for barge-in), with plain and
TLS listeners. `verifying_speech_server` verifies the input events' signature chain with AWS's
example secret. `limits_server` ends idle sessions after 2 s and any session after 5 s.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.server import ServerProcess, running_server

SONIC = "amazon.nova-sonic-v1:0"
LONG_SONIC = "amazon.nova-2-sonic-v1:0"
LONG_ANSWER = (
    "Paris has been the capital of France for more than a thousand years. "
    "It sits on the river Seine in the north of the country. "
    "Millions of people visit its museums and gardens every year. "
    "The city is also famous for its bakeries and its cafes. "
    "Many bridges cross the river in the middle of the city."
)
EXAMPLE_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"

CONFIG = f"""
[engines.default]
type = "scripted"

[engines.long]
type = "scripted"
text = "{LONG_ANSWER}"
delay_ms = 5

[[models]]
match = "{LONG_SONIC}"
engine = "long"

[[models]]
match = "*"
engine = "default"

[speech]
input_timeout_s = 20
"""


def _serve(
    tmp: pytest.TempPathFactory, config: str, tls: tuple[Path, Path] | None = None
) -> Iterator[ServerProcess]:
    path = tmp.mktemp("speech") / "outcrop.toml"
    path.write_text(config)
    with running_server(["--config", str(path)], tls=tls) as server:
        yield server


@pytest.fixture(scope="session")
def speech_server(
    tmp_path_factory: pytest.TempPathFactory, tls_files: tuple[Path, Path]
) -> Iterator[ServerProcess]:
    yield from _serve(tmp_path_factory, CONFIG, tls_files)


@pytest.fixture(scope="session")
def verifying_speech_server(
    tmp_path_factory: pytest.TempPathFactory, tls_files: tuple[Path, Path]
) -> Iterator[ServerProcess]:
    config = CONFIG + f'event_signing_secret = "{EXAMPLE_SECRET}"\n'
    yield from _serve(tmp_path_factory, config, tls_files)


@pytest.fixture(scope="session")
def limits_server(
    tmp_path_factory: pytest.TempPathFactory, tls_files: tuple[Path, Path]
) -> Iterator[ServerProcess]:
    config = CONFIG.replace("input_timeout_s = 20", "input_timeout_s = 2\nsession_limit_s = 5")
    yield from _serve(tmp_path_factory, config, tls_files)
