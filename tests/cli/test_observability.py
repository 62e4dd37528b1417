"""Metrics and invocation logs agree with the requests the commands made.

The requests go to Claude 3.5 Haiku, which no other command test uses, so its metrics and log
entries are exactly these.
"""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path
from typing import Any

import boto3
from prometheus_client.parser import text_string_to_metric_families

from tests.cli.conftest import HAIKU_35, ToolsServer, run_outcrop
from tests.support.server import running_server

STREAM = "InvokeModelWithResponseStream"


def _metrics(url: str) -> dict[str, float]:
    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as response:
        text = response.read().decode()
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.labels.get("model") == HAIKU_35 and s.labels.get("operation") == STREAM:
                found[s.name] = s.value
    return found


def _log(path: Path) -> list[dict[str, Any]]:
    entries = [json.loads(line) for line in path.read_text().splitlines()]
    return [e for e in entries if e["modelId"] == HAIKU_35]


def test_metrics_and_logs_match_the_requests(tools_server: ToolsServer, tmp_path: Path) -> None:
    url = tools_server.url
    prompts = ["alpha", "alpha beta", "alpha beta gamma"]
    for prompt in prompts:
        result = run_outcrop(["invoke", HAIKU_35, prompt, "--endpoint-url", url])
        assert result.returncode == 0, result.stderr
    bad = tmp_path / "bad.json"
    bad.write_text('{"anthropic_version": "bedrock-2023-05-31", "max_tokens": 5}')
    for _ in range(2):
        result = run_outcrop(["invoke", HAIKU_35, "--body", str(bad), "--endpoint-url", url])
        assert result.returncode == 1
    out = tmp_path / "bench"
    result = run_outcrop(
        [
            "bench",
            HAIKU_35,
            "--endpoint-url",
            url,
            "--requests",
            "10",
            "--warmup",
            "0",
            "--max-tokens",
            "3",
            "--no-plot",
            "--no-progress",
            "--out",
            str(out),
        ]
    )
    assert result.returncode == 0, result.stderr
    bench_tokens = json.loads(out.with_name("bench.json").read_text())["summary"]["output_tokens"]
    assert bench_tokens == 10 * 3

    # invoke: "Echo: alpha" ... = 3, 4 and 5 tokens.
    expected_output = 3 + 4 + 5 + bench_tokens
    metrics = _metrics(url)
    assert metrics["outcrop_invocations_total"] == 3 + 10
    assert metrics["outcrop_invocation_client_errors_total"] == 2
    assert metrics.get("outcrop_invocation_server_errors_total", 0) == 0
    assert metrics["outcrop_output_token_count_total"] == expected_output
    assert metrics["outcrop_time_to_first_token_seconds_count"] == 13
    assert metrics["outcrop_invocation_latency_seconds_count"] == 13
    assert metrics["outcrop_active_streams"] == 0

    entries = _log(tools_server.log)
    assert len(entries) == 3 + 2 + 10
    assert len({e["requestId"] for e in entries}) == len(entries)
    failed = [e for e in entries if "errorCode" in e]
    assert [e["errorCode"] for e in failed] == ["ValidationException"] * 2
    ok = [e for e in entries if "errorCode" not in e]
    assert all(e["operation"] == STREAM for e in entries)
    assert sum(e["output"]["outputTokenCount"] for e in ok) == expected_output
    assert (
        sum(e["input"]["inputTokenCount"] for e in ok) == metrics["outcrop_input_token_count_total"]
    )
    # Open mode: the authenticator names each caller after the access key it signed with.
    assert all(e["identity"]["arn"].endswith(":user/AKIDEXAMPLE") for e in entries)
    assert all(e["accountId"] == e["identity"]["arn"].split(":")[4] for e in entries)
    assert all(e["region"] == "us-east-1" for e in entries)
    assert all("inputBodyJson" not in e["input"] for e in entries)


def test_invocation_log_to_stdout_with_bodies() -> None:
    request = {
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": 10,
        "messages": [{"role": "user", "content": "log me"}],
    }
    args = ["--engine", "scripted", "--invocation-log", "-", "--log-bodies"]
    with running_server(args) as server:
        client = boto3.client("bedrock-runtime", endpoint_url=server.url)
        response = client.invoke_model(modelId=HAIKU_35, body=json.dumps(request))
        answer = json.loads(response["body"].read())
        request_id = response["ResponseMetadata"]["RequestId"]
        deadline = time.monotonic() + 10
        while not any(request_id in line for line in server.output):
            assert time.monotonic() < deadline, server.log()
            time.sleep(0.05)
        line = next(line for line in server.output if request_id in line)
    entry = json.loads(line)
    assert entry["operation"] == "InvokeModel"
    assert entry["input"]["inputBodyJson"] == request
    assert entry["output"]["outputBodyJson"] == answer
