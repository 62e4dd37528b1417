"""Run the official AWS SDK for JavaScript v3 (`js/bedrock_client.mjs`) from Python tests.

`run_js(command)` starts `node js/bedrock_client.mjs` with the command as JSON and returns what
it printed, one parsed JSON object per line (see the script's header for the command fields
and the line shapes). It skips the test when `node` is not on PATH and fails, saying how to fix
it, when the SDK is not installed (`tests/conformance/js/install.sh`).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

JS_DIR = Path(__file__).resolve().parent / "js"
SCRIPT = JS_DIR / "bedrock_client.mjs"
INSTALL = JS_DIR / "install.sh"

# AWS's documented example credentials: requests are signed, and nothing real ever is.
EXAMPLE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE",
    "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
}


@dataclass(frozen=True)
class JsRun:
    """The lines one SDK call printed, in order."""

    lines: list[dict[str, Any]]
    stderr: str

    @property
    def events(self) -> list[dict[str, Any]]:
        """Stream events: `{"t", "event", "value", "data"?}`."""
        return [line for line in self.lines if "event" in line]

    @property
    def sent(self) -> list[dict[str, Any]]:
        """Bidirectional input events handed to the SDK: `{"t", "sent": index}`."""
        return [line for line in self.lines if "sent" in line]

    @property
    def final(self) -> dict[str, Any]:
        """The last line: `{"done": true, ...}` or `{"error": {...}, ...}`."""
        if not self.lines or not ({"done", "error"} & self.lines[-1].keys()):
            raise AssertionError(f"the JS client printed no final line:\n{self.stderr}")
        return self.lines[-1]

    @property
    def error(self) -> dict[str, Any] | None:
        """The SDK error (`name`, `message`, `$fault`, `$metadata`, modelled members), if any."""
        error: dict[str, Any] | None = self.final.get("error")
        return error

    def ok(self) -> dict[str, Any]:
        """The final `done` line; fails the test with the SDK error if there was one."""
        if self.error is not None:
            raise AssertionError(f"the JS SDK call failed: {json.dumps(self.error)}")
        return self.final


def node_or_skip() -> str:
    """The `node` executable; skips the calling test when there is none."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not on PATH; the JS SDK conformance tests need Node.js >= 20")
    if not (JS_DIR / "node_modules" / "@aws-sdk" / "client-bedrock-runtime").is_dir():
        pytest.fail(f"the JS SDK is not installed; run `bash {INSTALL}` (or `make js`)")
    return node


def run_js(
    command: Mapping[str, Any],
    *,
    ca_file: Path | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 60.0,
    script: Path = SCRIPT,
) -> JsRun:
    """Run one SDK call described by `command`; returns its parsed output lines.

    The child gets this process's environment without any `AWS_*` variable (so no real profile,
    token or endpoint leaks in), plus the example credentials, plus `env`. `ca_file` is trusted
    for https endpoints (`NODE_EXTRA_CA_CERTS`). `script` runs another client script of `js/`
    with the same conventions (`openai_client.mjs`: the `openai` npm package).
    """
    node = node_or_skip()
    proc = subprocess.run(
        [node, str(script)],
        input=json.dumps(command),
        capture_output=True,
        text=True,
        cwd=JS_DIR,
        env=_child_env(ca_file, env),
        timeout=timeout,
        check=False,
    )
    if proc.returncode != 0:
        raise AssertionError(
            f"{script.name} exited {proc.returncode}:\n{proc.stderr}\n{proc.stdout}"
        )
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    return JsRun(lines, proc.stderr)


def _child_env(ca_file: Path | None, env: Mapping[str, str] | None) -> dict[str, str]:
    child_env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    child_env.update(EXAMPLE_CREDENTIALS)
    child_env["NODE_NO_WARNINGS"] = "1"
    if ca_file is not None:
        child_env["NODE_EXTRA_CA_CERTS"] = str(ca_file)
    child_env.update(env or {})
    return child_env


class JsCall:
    """One SDK call running in the background (`start_js`), its lines read as they come, for
    tests that act while a call is in flight (kill the engine mid-stream, queue calls)."""

    def __init__(self, command: Mapping[str, Any], env: Mapping[str, str] | None = None) -> None:
        node = node_or_skip()
        self.proc = subprocess.Popen(
            [node, str(SCRIPT)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=JS_DIR,
            env=_child_env(None, env),
        )
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(command))
        self.proc.stdin.close()
        self.proc.stdin = None  # closed: `communicate` must not flush it
        self.lines: list[dict[str, Any]] = []

    def read_events(self, count: int) -> list[dict[str, Any]]:
        """Block until the call has printed `count` stream events (or ended); its lines so far."""
        assert self.proc.stdout is not None
        while sum("event" in line for line in self.lines) < count:
            text = self.proc.stdout.readline()
            if not text:
                break
            self.lines.append(json.loads(text))
        return self.lines

    def wait(self, timeout: float = 120.0) -> JsRun:
        """Wait for the call to end; everything it printed."""
        stdout, stderr = self.proc.communicate(timeout=timeout)
        self.lines += [json.loads(line) for line in stdout.splitlines() if line.strip()]
        return JsRun(self.lines, stderr)

    def kill(self) -> None:
        """End the client process at once (its connection closes: a client that vanished)."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.communicate(timeout=30)
