"""pytest plugin: record each test's Bedrock and SageMaker calls into a cassette, replay them
offline.

`pytest --outcrop-record` starts one `outcrop serve --record DIR` for the session (proxying to
AWS, or to `--outcrop-upstream URL`); `pytest --outcrop-replay` starts `outcrop serve --replay
DIR` (no upstream, no credentials). Before each test that uses the `outcrop` fixtures (or
carries the `outcrop_cassette` marker) the plugin selects that test's cassette through the
server's `PUT /_outcrop/recording`, and points the SDKs at the server for the test's duration
(`AWS_ENDPOINT_URL_BEDROCK_RUNTIME`, `AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME`). Cassettes are one per
test by default, `cassettes/<module>/<test>.json` beside the test module, as pytest-recording
lays out its own; `@pytest.mark.outcrop_cassette("name")` names one (tests naming the same one
share it). Without either option the plugin changes nothing: the fixtures then hand out the
endpoint the environment already names (or none: AWS itself).

Loaded through the `pytest11` entry point once Outcrop is installed; docs/cassettes.md.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from outcrop.testing import Recording

RECORD_MODES = ("none", "once", "new_episodes", "all")
MARKER = "outcrop_cassette"
ENDPOINT_VARIABLES = ("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME")
_UNSAFE = re.compile(r"[^A-Za-z0-9_.\-]")
"""What a cassette name may not hold (the admin API takes letters, digits, `_ . -` and `/`)."""


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("outcrop", "Outcrop: record and replay Bedrock/SageMaker calls")
    group.addoption(
        "--outcrop-record",
        action="store_true",
        help="record each test's calls through `outcrop serve --record` into its cassette",
    )
    group.addoption(
        "--outcrop-replay",
        action="store_true",
        help="replay each test's calls from its cassette with `outcrop serve --replay`",
    )
    group.addoption(
        "--outcrop-record-mode",
        choices=RECORD_MODES,
        default=None,
        help="with --outcrop-record: all (default: re-record), once, new_episodes or none",
    )
    group.addoption(
        "--outcrop-upstream",
        default=None,
        metavar="URL",
        help="with --outcrop-record: the upstream to record from (default: AWS)",
    )
    group.addoption(
        "--outcrop-cassette-dir",
        default=None,
        metavar="DIR",
        help="one folder for all cassettes (default: cassettes/ beside each test module)",
    )
    group.addoption(
        "--outcrop-replay-speed",
        default=None,
        metavar="N",
        help="with --outcrop-replay: timing of replayed streams (0, the default: no delays)",
    )
    parser.addini("outcrop_cassette_dir", "one folder for all cassettes (relative to rootdir)")
    parser.addini("outcrop_record_upstream", "the upstream to record from (default: AWS)")
    parser.addini("outcrop_replay_speed", "replay timing: 0 (default) none, 1 original, N faster")
    parser.addini(
        "outcrop_serve_args", "more arguments for `outcrop serve` (e.g. --config)", type="args"
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(name=None): record into / replay from Outcrop cassette `name` "
        "(default: one per test)",
    )
    if config.getoption("--outcrop-record") and config.getoption("--outcrop-replay"):
        raise pytest.UsageError("--outcrop-record and --outcrop-replay exclude each other")


def active_mode(config: pytest.Config) -> str | None:
    """'record', 'replay' or None (the plugin is idle)."""
    if config.getoption("--outcrop-record"):
        return "record"
    if config.getoption("--outcrop-replay"):
        return "replay"
    return None


def _option(config: pytest.Config, option: str, ini: str) -> str | None:
    value = config.getoption(option)
    if value is None:
        value = config.getini(ini) or None
    return None if value is None else str(value)


def cassette_path(item: pytest.Item) -> Path:
    """Where `item`'s cassette lives: the marker's name or the test's own, under its module's
    `cassettes/<module>/` (or the configured folder's `<module>/`)."""
    config = item.config
    module = item.path.stem
    folder = _option(config, "--outcrop-cassette-dir", "outcrop_cassette_dir")
    base = (config.rootpath / folder) if folder else item.path.parent / "cassettes"
    marker = item.get_closest_marker(MARKER)
    name = marker.args[0] if marker is not None and marker.args else None
    if name is None:
        cls = getattr(item, "cls", None)
        name = item.name if cls is None else f"{cls.__name__}.{item.name}"
    stem = _UNSAFE.sub("_", str(name)).lstrip(".-") or "_"
    return base / module / (stem[:150] + ".json")


@dataclass
class OutcropSession:
    """The `outcrop serve` process of a recording or replaying test session."""

    mode: str
    root: Path
    url: str
    proc: subprocess.Popen[bytes]
    log_path: Path
    record_mode: str
    recording: Recording = field(init=False)
    selected: set[str] = field(default_factory=set)
    """Cassettes selected so far this session."""
    aliases: dict[Path, str] = field(default_factory=dict)
    """Cassette folders (`cassettes/` beside a test module, or the configured one) by the name
    of their link in `root`."""

    def __post_init__(self) -> None:
        self.recording = Recording(self.url)

    def cassette_name(self, path: Path) -> str:
        """The name the admin API takes for cassette file `path` (`base/<module>/<name>.json`):
        `<alias>/<module>/<name>`, the alias a link in the server's folder to `base`."""
        base = path.parent.parent
        alias = self.aliases.get(base)
        if alias is None:
            alias = self.aliases[base] = f"c{len(self.aliases)}"
            if self.mode == "record":
                base.mkdir(parents=True, exist_ok=True)
            (self.root / alias).symlink_to(base.resolve(), target_is_directory=True)
        return f"{alias}/{path.parent.name}/{path.stem}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def select(self, name: str) -> None:
        """Make `name` the server's cassette. In mode `all` a cassette starts empty when
        selected; one that tests share starts empty only for the first of them this session
        (`new_episodes` for the others, which keeps what they recorded)."""
        mode = self.record_mode
        if mode == "all" and name in self.selected:
            mode = "new_episodes"
        self.selected.add(name)
        self.recording.select(name, mode)


def _free_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(
    mode: str,
    root: Path,
    *,
    record_mode: str,
    upstream: str | None,
    replay_speed: str | None,
    extra_args: Sequence[str],
    ready_timeout: float = 300.0,
) -> OutcropSession:
    """Start `outcrop serve --record ROOT` or `--replay ROOT` on a free loopback port and wait
    until it answers its health check."""
    port = _free_port()
    args = [sys.executable, "-m", "outcrop.cli.main", "serve"]
    args += ["--host", "127.0.0.1", "--port", str(port), "--quiet"]
    if mode == "record":
        args += ["--record", str(root), "--record-mode", record_mode]
        if upstream:
            args += ["--record-upstream", upstream]
    else:
        args += ["--replay", str(root)]
        args += ["--replay-speed", replay_speed or "0"]
    args += list(extra_args)
    log_fd, log_name = tempfile.mkstemp(prefix="outcrop-serve-", suffix=".log")
    proc = subprocess.Popen(
        args, stdout=log_fd, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"}
    )
    os.close(log_fd)
    session = OutcropSession(
        mode, root, f"http://127.0.0.1:{port}", proc, Path(log_name), record_mode
    )
    deadline = time.monotonic() + ready_timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"outcrop serve exited {proc.returncode}:\n{session.log()}")
        try:
            with urllib.request.urlopen(f"{session.url}/_outcrop/health", timeout=5) as reply:
                if reply.status == 200:
                    return session
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() > deadline:
            stop_server(session)
            raise TimeoutError(f"outcrop serve did not become healthy:\n{session.log()}")
        time.sleep(0.2)


def stop_server(session: OutcropSession) -> None:
    session.proc.terminate()
    try:
        session.proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        session.proc.kill()
        session.proc.wait()
    session.log_path.unlink(missing_ok=True)


@pytest.fixture(scope="session")
def outcrop_server(request: pytest.FixtureRequest) -> Iterator[OutcropSession | None]:
    """The session's `outcrop serve` (None without --outcrop-record / --outcrop-replay)."""
    config = request.config
    mode = active_mode(config)
    if mode is None:
        yield None
        return
    # The server's folder holds only links to the cassette folders (one per test folder, or
    # the configured one): a common parent of those could hold other JSON files, which the
    # server would try to read as cassettes.
    root = Path(tempfile.mkdtemp(prefix="outcrop-cassettes-"))
    record_mode = config.getoption("--outcrop-record-mode") or "all"
    session = start_server(
        mode,
        root,
        record_mode=record_mode if mode == "record" else "none",
        upstream=_option(config, "--outcrop-upstream", "outcrop_record_upstream"),
        replay_speed=_option(config, "--outcrop-replay-speed", "outcrop_replay_speed"),
        extra_args=[str(arg) for arg in config.getini("outcrop_serve_args")],
    )
    try:
        yield session
    finally:
        stop_server(session)
        shutil.rmtree(root)  # the links only, not what they point to


@pytest.fixture
def outcrop_cassette(
    request: pytest.FixtureRequest,
    outcrop_server: OutcropSession | None,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Path | None]:
    """This test's cassette file, selected on the session's server, with the SDKs pointed at
    that server for the test; None when the plugin is idle."""
    if outcrop_server is None:
        yield None
        return
    path = cassette_path(request.node)
    if outcrop_server.mode == "replay" and not path.exists():
        pytest.fail(
            f"no cassette to replay for this test: {path} (record it with --outcrop-record)"
        )
    outcrop_server.select(outcrop_server.cassette_name(path))
    for variable in ENDPOINT_VARIABLES:
        monkeypatch.setenv(variable, outcrop_server.url)
    if outcrop_server.mode == "replay" and "AWS_ACCESS_KEY_ID" not in os.environ:
        # Replay needs no real credentials, but the SDKs refuse to sign without some.
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAOUTCROPREPLAY000")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "outcrop-replay-needs-no-secret")
    yield path


@pytest.fixture(autouse=True)
def _outcrop_marked(request: pytest.FixtureRequest) -> None:
    """Tests carrying the marker get their cassette without asking for a fixture."""
    if active_mode(request.config) is not None and request.node.get_closest_marker(MARKER):
        request.getfixturevalue("outcrop_cassette")


@pytest.fixture
def outcrop_endpoint(outcrop_cassette: Path | None) -> str | None:
    """The endpoint URL the test's SDK clients should use: the recording/replaying server's,
    or (plugin idle) the one the environment names, None meaning AWS itself."""
    return (
        os.environ.get("AWS_ENDPOINT_URL_BEDROCK_RUNTIME")
        or os.environ.get("AWS_ENDPOINT_URL")
        or None
    )


@pytest.fixture
def outcrop_bedrock_runtime(outcrop_endpoint: str | None) -> Any:
    """A boto3 `bedrock-runtime` client for this test (no retries: a replay miss shows as is)."""
    import boto3
    from botocore.config import Config

    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    return boto3.client(
        "bedrock-runtime",
        region_name=region,
        endpoint_url=outcrop_endpoint,
        config=Config(retries={"max_attempts": 1, "mode": "standard"}, read_timeout=300),
    )
