"""Every `outcrop` error is one line, without a traceback or a library's link, saying what to fix.

Usage errors (bad flags, values out of range, unknown commands) exit 2, configuration errors
exit 2 naming the key's own line, and a default engine that cannot load stops `outcrop serve`
with exit status 1 before it prints its URL.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from tests.cli.conftest import one_line_error, run_outcrop
from tests.support.server import free_port, running_server


def _no_library_noise(result: subprocess.CompletedProcess[str]) -> None:
    assert "pydantic" not in result.stderr and "http" not in result.stderr, result.stderr
    assert "Usage:" not in result.stderr and "╭" not in result.stderr, result.stderr


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ["serve", "--port", "99999"],
            "outcrop: Invalid value for '--port': Input should be less than or equal to 65535"
            " (see `outcrop serve --help`)",
        ),
        (["serve", "--tls-port", "-1"], "'--tls-port'"),
        (["serve", "--bogus"], "No such option: --bogus"),
        (["serve", "--engine", "nope"], "'nope' is not one of 'llamacpp', 'scripted', 'openai'"),
        (["servve"], "No such command 'servve'"),
        (["invoke"], "Missing argument"),
        (["bench", "--concurrency", "0"], "'--concurrency'"),
    ],
)
def test_usage_errors_are_one_line(args: list[str], expected: str) -> None:
    result = run_outcrop(args)
    assert result.returncode == 2
    line = one_line_error(result)
    assert expected in line
    _no_library_noise(result)


def test_no_command_prints_the_help() -> None:
    result = run_outcrop([])
    assert result.returncode == 0, result.stderr
    assert "serve" in result.stdout and "invoke" in result.stdout


def test_openai_engine_without_upstream() -> None:
    result = run_outcrop(["serve", "--engine", "openai"])
    assert result.returncode == 2
    assert one_line_error(result) == "outcrop: --engine openai needs --upstream URL"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # A value out of range: the key's line, not its section's.
        ("[server]\nhost = 'localhost'\nport = 99999\n", "line 3: server.port: Input should be"),
        # Inside an engine (a tagged union): no `llamacpp` tag in the key, the key's own line.
        (
            '[engines.default]\ntype = "llamacpp"\nn_ctx = 3\n',
            "line 3: engines.default.n_ctx: Input should be greater than or equal to 256",
        ),
        (
            '[engines.default]\ntype = "scripted"\ndelay_ms = 5\ncolour = "red"\n',
            "line 4: engines.default.colour: Extra inputs are not permitted",
        ),
        # A route naming an engine nobody defined: its `engine` line, and what is defined.
        (
            '[engines.default]\ntype = "scripted"\n\n[[models]]\nmatch = "a*"\nengine = "default"'
            '\n\n[[models]]\nmatch = "*"\nengine = "big"\n',
            "line 10: models.1.engine: route '*' names unknown engine 'big' "
            "(engines defined: default)",
        ),
        ("[server\nport = 1\n", "line 1"),
    ],
)
def test_configuration_errors_name_the_keys_line(tmp_path: Path, text: str, expected: str) -> None:
    config = tmp_path / "outcrop.toml"
    config.write_text(text)
    result = run_outcrop(["serve", "--config", str(config)])
    assert result.returncode == 2
    line = one_line_error(result)
    assert line.startswith(f"outcrop: {config}: ")
    assert expected in line
    assert "Value error" not in line
    _no_library_noise(result)


def test_models_names_the_line_of_a_bad_config(tmp_path: Path) -> None:
    config = tmp_path / "outcrop.toml"
    config.write_text(
        '[engines.default]\ntype = "scripted"\n\n[[models]]\nmatch = "*"\nengine = "gone"\n'
    )
    result = run_outcrop(["models", "--config", str(config)])
    assert result.returncode == 2
    assert "line 6: models.0.engine: route '*' names unknown engine 'gone'" in one_line_error(
        result
    )


def _serve_until_exit(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return run_outcrop(
        ["serve", "--port", str(free_port()), *args],
        env={"OUTCROP_CACHE_DIR": str(tmp_path / "cache")},
        timeout=300,
    )


def test_a_missing_model_file_stops_serve(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-model.gguf"
    result = _serve_until_exit(["--model", str(missing)], tmp_path)
    assert result.returncode == 1
    line = one_line_error(result, alone=False)
    assert line.startswith("outcrop: engine default failed to load: ")
    assert "no-such-model.gguf" in line
    assert "AWS_ENDPOINT_URL" not in result.stdout + result.stderr


def test_a_file_that_is_not_gguf_stops_serve(tmp_path: Path) -> None:
    fake = tmp_path / "notes.gguf"
    fake.write_text("these are notes, not a model\n" * 100)
    result = _serve_until_exit(["--model", str(fake)], tmp_path)
    assert result.returncode == 1
    line = one_line_error(result, alone=False)
    assert line.startswith("outcrop: engine default failed to load: ")
    assert "notes.gguf" in line
    assert "AWS_ENDPOINT_URL" not in result.stdout + result.stderr


def test_any_default_engine_that_fails_stops_serve(tmp_path: Path) -> None:
    config = tmp_path / "outcrop.toml"
    config.write_text('[engines.default]\ntype = "scripted"\nload_error = "weights missing"\n')
    result = _serve_until_exit(["--config", str(config)], tmp_path)
    assert result.returncode == 1
    assert one_line_error(result) == "outcrop: engine default failed to load: weights missing"


def test_an_extra_engine_may_stay_failed(tmp_path: Path) -> None:
    config = tmp_path / "outcrop.toml"
    config.write_text(
        '[engines.default]\ntype = "scripted"\n\n'
        '[engines.extra]\ntype = "scripted"\nload_error = "weights missing"\n\n'
        '[[models]]\nmatch = "meta.*"\nengine = "extra"\n\n'
        '[[models]]\nmatch = "*"\nengine = "default"\n'
    )
    with running_server(["--config", str(config)], wait_healthy=False) as server:
        deadline = time.monotonic() + 60
        while "AWS_ENDPOINT_URL" not in server.log() and time.monotonic() < deadline:
            time.sleep(0.05)
        status, health = server.health()
        output = server.log()
    assert "outcrop: engine extra failed to load: weights missing" in output
    assert "AWS_ENDPOINT_URL" in output
    assert status == 503
    assert health["status"] == "failed"
    engines = health["engines"]
    assert isinstance(engines, dict)
    assert engines["extra"]["state"] == "failed" and engines["default"]["ready"] is True


def test_a_bad_log_level() -> None:
    result = run_outcrop(["serve", "--engine", "scripted"], env={"OUTCROP_LOG_LEVEL": "loud"})
    assert result.returncode == 2
    assert one_line_error(result) == (
        "outcrop: OUTCROP_LOG_LEVEL=LOUD: use one of DEBUG, INFO, WARNING, ERROR, CRITICAL"
    )
