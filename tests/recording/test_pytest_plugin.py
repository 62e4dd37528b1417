"""The pytest plugin from a user's test project: record through Outcrop, then replay offline.

tests/recording/sample_project/ is run with `pytest --outcrop-record` against an upstream
Outcrop (scripted engine, its answers queued with a per-run marker text), the upstream is
stopped, and the project runs again with `--outcrop-replay`: every test gets the same results,
from one cassette per test (two tests sharing a named one). Plugin loading is explicit
(`-p outcrop.pytest_plugin`, entry points off) so that the run does not depend on whether the
installed package's `pytest11` entry point is current.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from outcrop.recording.cassette import Cassette
from outcrop.testing import AdminApiError, Recording, Responses, cassette
from tests.support.server import REPO, running_server

SAMPLE = Path(__file__).parent / "sample_project"
RUN_TIMEOUT = 600


def run_pytest(
    project: Path, *args: str, out: Path | None = None
) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",
        "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")]),
        "SAMPLE_OUT": str(out or project / "out"),
        "AWS_ACCESS_KEY_ID": "AKIAIOSFODNN7EXAMPLE",
        "AWS_SECRET_ACCESS_KEY": "sample-project-secret",
    }
    # the sample's clients get their endpoint from the plugin alone
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_BEDROCK_RUNTIME", "AWS_PROFILE"):
        env.pop(name, None)
    command = [sys.executable, "-m", "pytest", "-p", "outcrop.pytest_plugin"]
    command += ["-p", "no:cacheprovider", "-q", "-rA", *args]
    return subprocess.run(
        command,
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        check=False,
    )


def results(folder: Path) -> dict[str, object]:
    return {p.stem: json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))}


def test_sample_project_records_then_replays_with_the_upstream_stopped(tmp_path: Path) -> None:
    project = tmp_path / "project"
    shutil.copytree(SAMPLE, project)
    marker = f"Recorded upstream answer {uuid.uuid4().hex[:8]}"
    with running_server(["--engine", "scripted", "--quiet"]) as upstream:
        Responses(upstream.url).queue(text=marker, times=100)
        recorded = run_pytest(
            project, "--outcrop-record", "--outcrop-upstream", upstream.url, out=tmp_path / "rec"
        )
    assert recorded.returncode == 0, recorded.stdout + recorded.stderr
    replayed = run_pytest(project, "--outcrop-replay", out=tmp_path / "replay")
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr

    expected = {
        "test_converse",
        "test_converse_stream",
        "test_invoke_model",
        "test_invoke_model_stream",
        "test_recorded_error",
        "test_own_client_first",
        "test_own_client_second",
        "TestInAClass.test_converse",
        "more.test_more",
    }
    first, second = results(tmp_path / "rec"), results(tmp_path / "replay")
    assert set(first) == expected
    assert second == first
    # the answers came from the upstream's queued text, through the cassettes
    assert marker in json.dumps(first["test_converse"])
    stream_events = first["test_converse_stream"]
    assert isinstance(stream_events, list)
    deltas = [
        e["contentBlockDelta"]["delta"]["text"] for e in stream_events if "contentBlockDelta" in e
    ]
    assert marker in "".join(deltas)
    assert marker in json.dumps(first["TestInAClass.test_converse"])

    folder = project / "cassettes" / "sample_bedrock"
    files = {p.name for p in folder.glob("*.json")}
    assert files == {
        "test_converse.json",
        "test_converse_stream.json",
        "test_invoke_model.json",
        "test_invoke_model_stream.json",
        "test_recorded_error.json",
        "shared-greetings.json",
        "TestInAClass.test_converse.json",
    }
    # a second test folder has its own cassettes/; the project's other JSON file (beside both
    # cassette folders) is never taken for a cassette
    more = Cassette.load(project / "more" / "cassettes" / "sample_more" / "test_more.json")
    assert [i.operation for i in more.interactions] == ["Converse"]
    assert json.loads((project / "app-settings.json").read_text()) == {
        "feature_flags": {"beta": True}
    }
    shared = Cassette.load(folder / "shared-greetings.json")
    assert [i.operation for i in shared.interactions] == ["Converse", "Converse"]
    stream = Cassette.load(folder / "test_converse_stream.json").interactions
    assert [i.operation for i in stream] == ["ConverseStream"]
    assert stream[0].response.events
    error = Cassette.load(folder / "test_recorded_error.json").interactions
    assert [i.response.status for i in error] == [400]


def test_replay_without_a_cassette_fails_the_test_naming_the_file(tmp_path: Path) -> None:
    project = tmp_path / "project"
    shutil.copytree(SAMPLE, project)
    replayed = run_pytest(project, "--outcrop-replay", "-k", "test_converse_stream")
    assert replayed.returncode == 1, replayed.stdout
    missing = project / "cassettes" / "sample_bedrock" / "test_converse_stream.json"
    assert f"no cassette to replay for this test: {missing}" in replayed.stdout


def test_idle_without_options_and_refuses_both(tmp_path: Path) -> None:
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "test_idle.py").write_text(
        "import os\n"
        "def test_idle(outcrop_cassette, outcrop_endpoint, outcrop_server):\n"
        "    assert outcrop_cassette is None and outcrop_server is None\n"
        "    assert outcrop_endpoint == 'http://example.invalid:1'\n"
        "    assert os.environ['AWS_ENDPOINT_URL_BEDROCK_RUNTIME'] == 'http://example.invalid:1'\n"
        "    assert not (os.path.exists('cassettes'))\n"
    )
    idle = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "outcrop.pytest_plugin", "-q"],
        cwd=tmp_path,
        env={
            **os.environ,
            "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",
            "PYTHONPATH": str(REPO / "src"),
            "AWS_ENDPOINT_URL_BEDROCK_RUNTIME": "http://example.invalid:1",
        },
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        check=False,
    )
    assert idle.returncode == 0, idle.stdout + idle.stderr
    both = run_pytest(tmp_path, "--outcrop-record", "--outcrop-replay")
    assert both.returncode == 4  # pytest's usage error
    assert "--outcrop-record and --outcrop-replay exclude each other" in both.stderr


def test_cassette_block_selects_and_restores(tmp_path: Path) -> None:
    """`outcrop.testing.cassette()`: what the plugin does per test, for code outside pytest."""
    args = ["--engine", "scripted", "--quiet", "--replay", str(tmp_path)]
    with running_server(args) as server:
        recording = Recording(server.url)
        assert recording.state()["cassette"] is None
        with cassette("suite/first", server.url, mode="new_episodes") as selected:
            state = selected.state()
            assert (state["cassette"], state["mode"]) == ("suite/first", "new_episodes")
            assert state["path"] == str(tmp_path / "suite" / "first.json")
        state = recording.state()
        assert (state["cassette"], state["mode"]) == (None, "none")
        with pytest.raises(AdminApiError) as refused:
            recording.select("../outside")
        assert refused.value.status == 400
