"""Session-wide fixtures: Outcrop servers started as real processes."""

from __future__ import annotations

import faulthandler
import os
import shutil
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.server import ServerProcess, running_server
from tests.support.tls import self_signed

# pytest-timeout (ini `timeout`) fails a test that runs too long by a signal, which cannot reach
# a test whose coroutine waits on a future nobody completes. Past this grace the whole run
# prints every thread's stack and exits, instead of holding CI until its own limit.
WATCHDOG_GRACE_S = 120.0


def _stuck(item: pytest.Item, limit: float) -> None:
    capture = item.config.pluginmanager.getplugin("capturemanager")
    if capture is not None:
        capture.suspend_global_capture(in_=True)
    sys.stderr.write(f"\n{item.nodeid} still running after {limit:.0f} s; stacks follow\n")
    faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
    sys.stderr.flush()
    os._exit(3)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Iterator[None]:
    marker = item.get_closest_marker("timeout")
    timeout = (
        float(marker.args[0]) if marker and marker.args else float(item.config.getini("timeout"))
    )
    limit = timeout + WATCHDOG_GRACE_S
    watchdog = threading.Timer(limit, _stuck, args=(item, limit))
    watchdog.daemon = True
    watchdog.start()
    try:
        yield
    finally:
        watchdog.cancel()


_STATE_DIR: list[str] = []


def pytest_configure(config: pytest.Config) -> None:
    """Servers and apps built without a state directory keep their durable state (the SQLite
    state store) in one temporary directory per run, not in the user's home."""
    if "OUTCROP_STATE_DIR" not in os.environ:
        _STATE_DIR.append(tempfile.mkdtemp(prefix="outcrop-test-state-"))
        os.environ["OUTCROP_STATE_DIR"] = _STATE_DIR[0]


def pytest_unconfigure(config: pytest.Config) -> None:
    for made in _STATE_DIR:
        shutil.rmtree(made, ignore_errors=True)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The random order's seed at the end of every run, `-q` included (pytest-randomly prints it
    only in the header), with how to run the same order again."""
    config = terminalreporter.config
    if config.pluginmanager.hasplugin("randomly"):
        seed = config.getoption("randomly_seed")
        terminalreporter.write_line(
            f"test order: random, seed {seed} (the same order again: --randomly-seed={seed}; "
            "file order: -p no:randomly)"
        )


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for localhost and 127.0.0.1 (cert.pem, key.pem)."""
    return self_signed(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="session")
def scripted_server() -> Iterator[ServerProcess]:
    """`outcrop serve --engine scripted` with 5 ms between tokens."""
    with running_server(["--engine", "scripted", "--delay-ms", "5"]) as server:
        yield server


@pytest.fixture(scope="session")
def llama_server() -> Iterator[ServerProcess]:
    """`outcrop serve` on the embedded default model (llama.cpp in-process)."""
    with running_server([], ready_timeout=300) as server:
        yield server


@pytest.fixture(autouse=True)
def _aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Dummy credentials and region so SDKs sign requests; no real AWS is ever reached."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("AWS_BEARER_TOKEN_BEDROCK", raising=False)
