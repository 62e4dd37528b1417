"""The README's commands, run as a newcomer runs them after the two set-up commands.

Every ```sh and ```python block of README.md runs here, in the README's order, unless the line
before its fence is an `<!-- readme: illustrative ... -->` comment (the set-up commands
themselves, the ways to start a server, long benchmarks: shown, not run). ```toml blocks are
loaded as configuration files. A block in any other language, or with none, must be marked:
nothing in the README escapes both running and the marker.

How the blocks run:
- against one `outcrop serve --engine scripted` on a free port (the embedded model the README
  starts would take minutes to load; the scripted engine answers every call the blocks make);
  `127.0.0.1:4590` in a block becomes that server's address, the only change made to a block;
- each ```sh block by `bash -e` in the repository's folder, with an empty HOME, the system's
  PATH and nothing of the test run's AWS settings: a fresh terminal, except for what the blocks
  before it exported (the README's `. .venv/bin/activate` and `export AWS_...` carry on, as in
  one terminal). PYTHONPATH is passed on, so that a checkout's `src` is what runs;
- each ```python block by the `python` those blocks put on PATH, reading it on standard input.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from outcrop.config import load_settings
from tests.support.server import REPO, ServerProcess, running_server

README = REPO / "README.md"
ILLUSTRATIVE = re.compile(r"<!--\s*readme:\s*illustrative\b.*-->")
FENCE = re.compile(r"^```(\S*)\s*$")
SHELL = frozenset({"sh", "bash", "shell"})
README_PORT = "127.0.0.1:4590"
BLOCK_TIMEOUT_S = 120
SYSTEM_PATH = "/usr/local/bin:/usr/bin:/bin"


@dataclass(frozen=True, slots=True)
class Block:
    """One fenced block of the README."""

    language: str
    text: str
    line: int
    """The 1-based line of its opening fence."""
    illustrative: bool

    def __str__(self) -> str:
        return f"README.md line {self.line} ({self.language or 'no language'})"


def readme_blocks(text: str) -> list[Block]:
    """The fenced blocks of a Markdown text, each with its marker (if any) read off."""
    blocks: list[Block] = []
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        opening = FENCE.match(lines[index])
        if opening is None:
            index += 1
            continue
        before = next((line for line in reversed(lines[:index]) if line.strip()), "")
        end = index + 1
        while end < len(lines) and lines[end].strip() != "```":
            end += 1
        blocks.append(
            Block(
                opening.group(1).lower(),
                "\n".join(lines[index + 1 : end]) + "\n",
                index + 1,
                ILLUSTRATIVE.search(before) is not None,
            )
        )
        index = end + 1
    return blocks


def test_blocks_are_found_with_their_markers() -> None:
    text = (
        "Intro\n\n<!-- readme: illustrative (starts a server) -->\n```sh\noutcrop serve\n```\n"
        "\n```python\nprint(1)\n```\n```\nplain\n```\n"
    )
    blocks = readme_blocks(text)
    assert [(b.language, b.text, b.line, b.illustrative) for b in blocks] == [
        ("sh", "outcrop serve\n", 4, True),
        ("python", "print(1)\n", 8, False),
        ("", "plain\n", 11, False),
    ]


class Terminal:
    """A shell session spread over processes: the environment and folder carry on."""

    def __init__(self, home: Path, state: Path) -> None:
        self.state = state
        env = {"HOME": str(home), "PATH": SYSTEM_PATH, "LANG": "C.UTF-8", "TERM": "dumb"}
        if os.environ.get("PYTHONPATH"):
            env["PYTHONPATH"] = os.environ["PYTHONPATH"]
        exports = "".join(f"export {k}={shlex.quote(v)}\n" for k, v in env.items())
        state.write_text(f"{exports}cd {shlex.quote(str(REPO))}\n")

    def run(self, script: str, *, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run `script` with `bash -e` where the previous one left off."""
        save = f'{{ export -p; echo cd "$(pwd)"; }} > {shlex.quote(str(self.state) + ".next")}'
        wrapped = f"source {shlex.quote(str(self.state))}\n{script}\n{save}\n"
        result = subprocess.run(
            ["bash", "-e", "-o", "pipefail", "-c", wrapped],
            input=stdin,
            capture_output=True,
            text=True,
            env={"PATH": SYSTEM_PATH},
            timeout=BLOCK_TIMEOUT_S,
            check=False,
        )
        following = self.state.with_name(self.state.name + ".next")
        if result.returncode == 0 and following.exists():
            following.replace(self.state)
        return result


@pytest.fixture(scope="module")
def readme_server() -> Iterator[ServerProcess]:
    with running_server(["--engine", "scripted"]) as server:
        yield server


def test_every_readme_command_runs(readme_server: ServerProcess, tmp_path: Path) -> None:
    if not (REPO / ".venv" / "bin" / "activate").exists():
        pytest.skip("no .venv in the repository (make install creates it, as the README says)")
    blocks = readme_blocks(README.read_text(encoding="utf-8"))
    address = readme_server.url.removeprefix("http://")
    home = tmp_path / "home"
    home.mkdir()
    terminal = Terminal(home, tmp_path / "terminal.sh")
    unmarked = [b for b in blocks if not b.illustrative]
    ran: list[Block] = []
    for block in unmarked:
        text = block.text.replace(README_PORT, address)
        if block.language in SHELL:
            result = terminal.run(text)
        elif block.language == "python":
            result = terminal.run("python -", stdin=text)
        elif block.language == "toml":
            config = tmp_path / f"readme-{block.line}.toml"
            config.write_text(text)
            load_settings(config)  # raises ConfigError, naming the line, if it does not validate
            ran.append(block)
            continue
        else:
            pytest.fail(f"{block}: neither run nor marked <!-- readme: illustrative -->")
        assert result.returncode == 0, (
            f"{block} failed (exit {result.returncode}):\n{block.text}\n"
            f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
        )
        assert "Traceback" not in result.stderr, f"{block}:\n{result.stderr}"
        ran.append(block)
    assert ran == unmarked
    # The examples reached the server: each call is one access-log line.
    assert any("InvokeModelWithResponseStream" in line for line in readme_server.output)
