"""A throwaway PostgreSQL server for tests: Debian's binaries, a temporary directory, a free
loopback port, trust authentication, stopped (and its directory removed) at the end.

PostgreSQL refuses to run as root; as root the cluster belongs to the `postgres` user and its
programs run through `runuser -u postgres --`. `stop()` and `start()` restart the same cluster
(same data, same port), for tests of what clients see while it is down.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg

from tests.support.server import free_port

READY_TIMEOUT_S = 120.0


def postgres_bin() -> Path:
    """The newest installed PostgreSQL's bin directory (`make test` installs one)."""
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/postgres"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    if not found:
        raise RuntimeError(
            "PostgreSQL is not installed (/usr/lib/postgresql/*/bin); `make service-deps` "
            "installs it from Debian's packages"
        )
    return found[-1].parent


def _as_owner() -> list[str]:
    return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []


@dataclass
class PostgresServer:
    root: Path
    port: int
    bin: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def data(self) -> Path:
        return self.root / "data"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        assert self.process is None, "already running"
        log = open(self.root / "postgres.log", "ab")  # noqa: SIM115 (the server's lifetime)
        self.process = subprocess.Popen(
            [
                *_as_owner(),
                str(self.bin / "postgres"),
                "-D",
                str(self.data),
                "-p",
                str(self.port),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                f"unix_socket_directories={self.root}",
                "-c",
                "max_connections=200",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            try:
                with psycopg.connect(self.url(), connect_timeout=5):
                    return
            except psycopg.OperationalError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"PostgreSQL did not start:\n{(self.root / 'postgres.log').read_text()}"
                    ) from None
                time.sleep(0.05)

    def stop(self) -> None:
        """Fast shutdown (clients are disconnected, committed work is on disk)."""
        process, self.process = self.process, None
        if process is None:
            return
        subprocess.run(
            [*_as_owner(), str(self.bin / "pg_ctl"), "stop", "-D", str(self.data), "-m", "fast"],
            check=False,
            capture_output=True,
            timeout=120,
        )
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def create_database(self, name: str) -> str:
        """A new empty database; its URL."""
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


@contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    """Start a new cluster; yield it running; stop it and remove its files."""
    binaries = postgres_bin()
    root = Path(tempfile.mkdtemp(prefix="outcrop-pg-"))
    try:
        root.chmod(0o755)
        if os.geteuid() == 0:
            shutil.chown(root, "postgres", "postgres")
        subprocess.run(
            [
                *_as_owner(),
                str(binaries / "initdb"),
                "-D",
                str(root / "data"),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-instructions",
            ],
            check=True,
            capture_output=True,
            timeout=300,
        )
        server = PostgresServer(root, free_port(), binaries)
        server.start()
        try:
            yield server
        finally:
            server.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)
