"""`outcrop models`, from a running server and from configuration."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.conftest import OPUS, SONNET, ToolsServer, one_line_error, run_outcrop


def test_from_a_running_server(tools_server: ToolsServer) -> None:
    result = run_outcrop(["models", "*claude-3-*", "--json", "--endpoint-url", tools_server.url])
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["status"] == "ready"
    served = {m["modelId"]: m for m in doc["models"]}
    assert served[SONNET]["engine"] == "timed" and served[SONNET]["ready"] is True
    assert served[OPUS]["engine"] == "slow"
    assert all("claude-3-" in model_id for model_id in served)
    table = run_outcrop(["models", "--endpoint-url", tools_server.url])
    assert table.returncode == 0
    assert SONNET in table.stdout and "timed" in table.stdout


def test_from_configuration(tools_server: ToolsServer) -> None:
    result = run_outcrop(["models", "--json", "--config", str(tools_server.config)])
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    served = {m["modelId"]: m for m in doc["models"]}
    assert doc["status"] == "not running"
    assert served[OPUS] == {
        "modelId": OPUS,
        "engine": "slow",
        "engineType": "scripted",
        "ready": None,
    }
    default = run_outcrop(["models", "--json", "--engine", "scripted"])
    assert {m["engine"] for m in json.loads(default.stdout)["models"]} == {"default"}


def test_unreachable_and_bad_config(tmp_path: Path) -> None:
    result = run_outcrop(["models", "--endpoint-url", "http://127.0.0.1:9"])
    assert result.returncode == 1
    assert one_line_error(result).startswith("outcrop: cannot reach http://127.0.0.1:9")
    bad = tmp_path / "bad.toml"
    bad.write_text("[engines.default]\ntype = 'nope'\n")
    result = run_outcrop(["models", "--config", str(bad)])
    assert result.returncode == 2
    assert str(bad) in one_line_error(result)
