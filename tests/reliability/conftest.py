"""The reliability suite's servers: `outcrop serve` on the scripted engine with small limits,
so that the slow-client timeouts fire within a second or two."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.reliability.clients import SERVER_CONFIG
from tests.support.server import ServerProcess, running_server

LIMITS = """
[limits]
body_read_timeout_s = 2
header_read_timeout_s = 1
send_stall_timeout_s = 2
stream_send_buffer_bytes = 16384
max_requests_in_flight = {cap}
"""


def serve_with(path: Path, cap: int = 400) -> str:
    """Write the suite's server configuration to `path`, at most `cap` requests in flight."""
    path.write_text(SERVER_CONFIG + LIMITS.format(cap=cap))
    return str(path)


@pytest.fixture(scope="session")
def limited_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    config = serve_with(tmp_path_factory.mktemp("reliability") / "outcrop.toml")
    with running_server(["--config", config], ready_timeout=120) as server:
        yield server
