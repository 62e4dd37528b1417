"""Start `outcrop serve` as a subprocess on free loopback ports and wait until it is ready."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """A port nobody listens on now (bound without SO_REUSEPORT, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class ServerProcess:
    proc: subprocess.Popen[str]
    port: int
    tls_port: int | None = None
    output: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def tls_url(self) -> str:
        # An address, not "localhost": CI machines may have no hosts entry for that name, and
        # the test certificate names 127.0.0.1 as well (tests/support/tls.py).
        assert self.tls_port is not None
        return f"https://127.0.0.1:{self.tls_port}"

    def health(self) -> tuple[int, dict[str, object]]:
        try:
            with urllib.request.urlopen(f"{self.url}/_outcrop/health", timeout=5) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"{}")

    def log(self) -> str:
        return "".join(self.output)


def _drain(proc: subprocess.Popen[str], sink: list[str]) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:
        sink.append(line)


@contextmanager
def running_server(
    args: Sequence[str],
    *,
    ready_timeout: float = 180.0,
    wait_healthy: bool = True,
    env: dict[str, str] | None = None,
    tls: tuple[Path, Path] | None = None,
    python: str | Path = sys.executable,
) -> Iterator[ServerProcess]:
    """Run `outcrop serve ARGS` on a free port; yield once it prints its URL (and is healthy).

    `python` is the interpreter that runs it (another virtualenv's, to test an installation)."""
    port = free_port()
    cmd = [str(python), "-m", "outcrop.cli.main", "serve", "--port", str(port), *args]
    tls_port = None
    if tls is not None:
        tls_port = free_port()
        cmd += ["--tls-cert", str(tls[0]), "--tls-key", str(tls[1]), "--tls-port", str(tls_port)]
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
        cwd=REPO,
    )
    server = ServerProcess(proc, port, tls_port)
    threading.Thread(target=_drain, args=(proc, server.output), daemon=True).start()
    try:
        deadline = time.monotonic() + ready_timeout
        # The URL line comes once engines are loaded; a test of the loading phase itself
        # (wait_healthy=False) only needs the server to accept connections.
        marks = ("AWS_ENDPOINT_URL",) if wait_healthy else ("AWS_ENDPOINT_URL", "is starting at")
        while not any(mark in line for line in server.output for mark in marks):
            if proc.poll() is not None:
                raise RuntimeError(f"outcrop serve exited {proc.returncode}:\n{server.log()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"outcrop serve did not start:\n{server.log()}")
            time.sleep(0.05)
        while wait_healthy and server.health()[0] != 200:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"outcrop serve never became healthy:\n{server.log()}")
            time.sleep(0.2)
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
