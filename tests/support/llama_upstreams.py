"""Real llama.cpp servers (`llama-server`, built by `engines.llama_build`) on the embedded
default GGUF, started directly as upstreams of an engine pool, each on a fixed loopback port so
that it can be killed and started again on the same port. Used by the pool tests and
bench/pool_affinity.py."""

from __future__ import annotations

import json
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from outcrop.engines import llama_build
from outcrop.engines.default_model import resolve_model
from outcrop.engines.llama_server import LlamaServerOptions
from tests.support.server import free_port

READY_TIMEOUT_S = 300.0


class LlamaUpstream:
    """One llama-server child on `port` (`base` its address, `url` its OpenAI base URL)."""

    def __init__(self, workdir: Path, index: int, options: LlamaServerOptions) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.url = f"{self.base}/v1"
        self.log = workdir / f"llama_server_{index}.log"
        self.options = options
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = llama_build.find_binary() or llama_build.build()
        command = self.options.command(binary, resolve_model(None), self.port)
        with self.log.open("ab") as sink:
            self.proc = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT)

    def wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            assert self.proc is not None
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"llama-server never served:\n{self.log.read_text()}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=5):
                    return
            except (urllib.error.URLError, OSError):
                time.sleep(0.2)

    def kill(self) -> None:
        """SIGKILL, as a crash or an out-of-memory kill would end it."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@contextmanager
def llama_upstreams(
    workdir: Path, count: int, *, n_ctx: int = 1024, parallel: int = 2
) -> Iterator[list[LlamaUpstream]]:
    """`count` llama-servers (one thread each, prompt cache on), all ready; stopped on exit."""
    options = LlamaServerOptions(n_ctx=n_ctx, parallel=parallel, n_threads=1)
    upstreams = [LlamaUpstream(workdir, i, options) for i in range(count)]
    with ExitStack() as stack:
        for upstream in upstreams:
            stack.callback(upstream.stop)
            upstream.start()
        for upstream in upstreams:
            upstream.wait_ready()
        yield upstreams


def pool_config(path: Path, urls: list[str], **pool: float | int) -> Path:
    """A configuration file whose default engine is an `openai` pool over `urls`."""
    lines = [
        "[engines.default]",
        'type = "openai"',
        f"upstreams = {json.dumps(urls)}",
        "",
        "[engines.default.pool]",
        *(f"{key} = {value}" for key, value in pool.items()),
    ]
    path.write_text("\n".join(lines) + "\n")
    return path
