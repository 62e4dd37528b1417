"""`outcrop bench` run as a user would, against a live server on scripted engines.

The `timed` engine answers Claude 3 Sonnet with ten tokens, the first after 100 ms and the
rest 20 ms apart, so the benchmark's figures have known lower bounds: TTFT ≥ 100 ms,
inter-token ≥ 20 ms (minus timer noise) and E2E ≥ 280 ms; the upper bounds allow for a shared
machine.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.cli.conftest import (
    HAIKU,
    INSTANT,
    SONNET,
    TIMED_FIRST_S,
    TIMED_GAP_S,
    TIMED_TOKENS,
    ToolsServer,
    one_line_error,
    outcrop_command,
    run_outcrop,
    serves_converse,
)
from tests.support.server import REPO

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _bench(server: ToolsServer, out: Path, *args: str) -> tuple[Any, dict[str, Any]]:
    result = run_outcrop(
        ["bench", *args, "--endpoint-url", server.url, "--out", str(out), "--no-progress"]
    )
    path = out.with_name(out.name + ".json")
    doc = json.loads(path.read_text()) if path.exists() else {}
    return result, doc


def test_counts_and_percentiles_for_a_known_latency(
    tools_server: ToolsServer, tmp_path: Path
) -> None:
    out = tmp_path / "timed"
    result, doc = _bench(tools_server, out, SONNET, "--requests", "24", "--concurrency", "4")
    assert result.returncode == 0, result.stderr
    s = doc["summary"]
    assert (s["requests"], s["failed"], s["errors"]) == (24, 0, {})
    assert s["output_tokens"] == 24 * TIMED_TOKENS
    assert s["itl_s"]["count"] == 24 * (TIMED_TOKENS - 1)
    ttft, itl, e2e = s["ttft_s"], s["itl_s"], s["e2e_s"]
    assert TIMED_FIRST_S <= ttft["p50"] <= ttft["p90"] <= ttft["p99"] < TIMED_FIRST_S + 0.4
    assert TIMED_GAP_S * 0.75 <= itl["p50"] < TIMED_GAP_S + 0.05
    least_e2e = TIMED_FIRST_S + (TIMED_TOKENS - 1) * TIMED_GAP_S
    assert least_e2e <= e2e["p50"] <= e2e["p99"] < least_e2e + 0.6
    rate = s["stream_output_tokens_per_s"]["p50"]
    assert 1 / (TIMED_GAP_S + 0.05) < rate <= 1 / (TIMED_GAP_S * 0.75)
    assert s["requests_per_s"] == pytest.approx(24 / s["duration_s"])
    buckets = doc["timeline"]["buckets"]
    width = doc["timeline"]["bucket_s"]
    completed = sum(b["requests_per_s"] * width for b in buckets[:-1])
    completed += buckets[-1]["requests_per_s"] * (s["duration_s"] - buckets[-1]["t"])
    assert completed == pytest.approx(24, abs=0.6)
    assert out.with_name("timed.png").read_bytes().startswith(PNG_MAGIC)
    assert "24 ok, 0 failed" in result.stdout
    assert "time to first token" in result.stdout


def test_rate_schedule_with_a_duration(tools_server: ToolsServer, tmp_path: Path) -> None:
    out = tmp_path / "rate"
    result, doc = _bench(
        tools_server, out, HAIKU, "--rate", "10:0.5s,30:0.5s", "--max-tokens", "5", "--no-plot"
    )
    assert result.returncode == 0, result.stderr
    # Evenly spaced: 5 requests in the first half second, 15 in the second.
    assert doc["summary"]["requests"] == 20
    assert doc["plan"]["duration_s"] == pytest.approx(1.0)
    assert doc["client"]["send_lag_s"]["count"] == 20
    assert doc["summary"]["output_tokens"] == 20 * 5
    assert not out.with_name("rate.png").exists()


def test_live_progress(tools_server: ToolsServer, tmp_path: Path) -> None:
    out = tmp_path / "progress"
    result = run_outcrop(
        [
            "bench",
            SONNET,
            "--endpoint-url",
            tools_server.url,
            "--requests",
            "6",
            "--concurrency",
            "2",
            "--progress",
            "--no-plot",
            "--out",
            str(out),
        ]
    )
    assert result.returncode == 0, result.stderr
    assert "6 done (0 failed)" in result.stderr
    assert json.loads(out.with_name("progress.json").read_text())["summary"]["requests"] == 6


def test_sdk_client_agrees(tools_server: ToolsServer, tmp_path: Path) -> None:
    out = tmp_path / "sdk"
    result, doc = _bench(
        tools_server, out, SONNET, "--requests", "8", "--concurrency", "4", "--client", "sdk"
    )
    assert result.returncode == 0, result.stderr
    s = doc["summary"]
    assert (s["requests"], s["output_tokens"]) == (8, 8 * TIMED_TOKENS)
    assert s["ttft_s"]["p50"] >= TIMED_FIRST_S
    assert doc["client"]["kind"] == "sdk"


@pytest.mark.parametrize("client", ["raw", "sdk"])
def test_converse_stream(tools_server: ToolsServer, tmp_path: Path, client: str) -> None:
    if not serves_converse(tools_server.url):
        pytest.skip("this server does not serve ConverseStream yet (NotImplementedException)")
    out = tmp_path / f"converse-{client}"
    result, doc = _bench(
        tools_server,
        out,
        SONNET,
        "--converse",
        "--client",
        client,
        "--requests",
        "8",
        "--concurrency",
        "4",
        "--no-plot",
    )
    assert result.returncode == 0, result.stderr
    s = doc["summary"]
    assert doc["target"]["operation"] == "ConverseStream"
    assert (s["requests"], s["output_tokens"]) == (8, 8 * TIMED_TOKENS)
    assert s["ttft_s"]["p50"] >= TIMED_FIRST_S
    assert s["itl_s"]["count"] == 8 * (TIMED_TOKENS - 1)


def test_errors_are_counted_by_type(tools_server: ToolsServer, tmp_path: Path) -> None:
    out = tmp_path / "errors"
    result = run_outcrop(
        [
            "bench",
            "nobody.model-x",
            "--endpoint-url",
            tools_server.url,
            "--warmup",
            "0",
            "--requests",
            "5",
            "--out",
            str(out),
            "--no-progress",
        ]
    )
    assert result.returncode == 1
    line = one_line_error(result, alone=False)
    assert line == "outcrop: all 5 requests failed (ValidationException × 5)"
    doc = json.loads(out.with_name("errors.json").read_text())
    assert doc["summary"]["errors"] == {"ValidationException": 5}
    assert doc["summary"]["requests"] == 0


def test_unknown_model_ends_at_the_warm_up(tools_server: ToolsServer, tmp_path: Path) -> None:
    result = run_outcrop(
        [
            "bench",
            "nobody.model-x",
            "--endpoint-url",
            tools_server.url,
            "--out",
            str(tmp_path / "x"),
        ]
    )
    assert result.returncode == 1
    assert one_line_error(result) == (
        "outcrop: ValidationException: The provided model identifier is invalid."
    )
    assert not list(tmp_path.iterdir())


def test_unreachable_endpoint(tmp_path: Path) -> None:
    result = run_outcrop(
        ["bench", HAIKU, "--endpoint-url", "http://127.0.0.1:9", "--out", str(tmp_path / "x")]
    )
    assert result.returncode == 1
    assert one_line_error(result).startswith("outcrop: ConnectionError: Cannot connect")


def test_no_credentials(tools_server: ToolsServer, tmp_path: Path) -> None:
    env = {
        "AWS_ACCESS_KEY_ID": "",
        "AWS_SECRET_ACCESS_KEY": "",
        "AWS_CONFIG_FILE": str(tmp_path / "none"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    result = run_outcrop(["bench", HAIKU, "--endpoint-url", tools_server.url], env=env)
    assert result.returncode == 1
    assert one_line_error(result) == "outcrop: Unable to locate credentials"


def test_bad_options(tmp_path: Path) -> None:
    for args, fragment in (
        (["--rate", "fast"], "not a rate"),
        (["--duration", "soon"], "not a duration"),
        (["--prompts", str(tmp_path / "none.txt")], "none.txt"),
    ):
        result = run_outcrop(["bench", HAIKU, "--endpoint-url", "http://127.0.0.1:9", *args])
        assert result.returncode == 2, args
        assert fragment in one_line_error(result)


def test_prompts_from_a_file(tools_server: ToolsServer, tmp_path: Path) -> None:
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text('{"prompt": "one"}\n"two words"\n')
    out = tmp_path / "prompts"
    result, doc = _bench(
        tools_server, out, HAIKU, "--prompts", str(prompts), "--requests", "4", "--no-plot"
    )
    assert result.returncode == 0, result.stderr
    # Echo answers: "Echo: one" is 3 tokens, "Echo: two words" 4; taken round robin.
    assert doc["summary"]["output_tokens"] == 3 + 4 + 3 + 4
    assert doc["plan"]["prompts"] == 2


def _output_tokens(url: str) -> float:
    """The server's total output tokens so far, from its Prometheus metrics."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as response:
        text = response.read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("outcrop_output_token_count_total")
    )


def test_ctrl_c_prints_partial_results(tools_server: ToolsServer, tmp_path: Path) -> None:
    out = tmp_path / "interrupted"
    proc = subprocess.Popen(
        outcrop_command(
            "bench",
            SONNET,
            "--endpoint-url",
            tools_server.url,
            "--duration",
            "120s",
            "--concurrency",
            "2",
            "--out",
            str(out),
            "--no-progress",
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    try:
        # Interrupt only once a recorded request has completed (the warm-up's tokens and one
        # more request's are counted by the server), however slowly a busy machine runs it.
        base = _output_tokens(tools_server.url)
        deadline = time.monotonic() + 60
        while _output_tokens(tools_server.url) < base + 2 * TIMED_TOKENS:
            assert time.monotonic() < deadline, "no bench request completed within 60 s"
            time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    result = subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
    assert proc.returncode == 130
    line = one_line_error(result, alone=False)
    assert line.startswith("outcrop: interrupted after ") and "partial results above" in line
    assert "Partial results (interrupted)" in stdout
    doc = json.loads(out.with_name("interrupted.json").read_text())
    assert doc["interrupted"] is True
    assert doc["summary"]["requests"] >= 1
    assert doc["summary"]["output_tokens"] == doc["summary"]["requests"] * TIMED_TOKENS


def test_duration_says_it_drains_the_requests_in_flight(
    tools_server: ToolsServer, tmp_path: Path
) -> None:
    # The `paced` engine takes about 4 s an answer: at the 1 s deadline both are in flight.
    out = tmp_path / "drain"
    args = ["--duration", "1s", "--concurrency", "2", "--warmup", "0", "--no-plot"]
    result, doc = _bench(tools_server, out, INSTANT, *args)
    assert result.returncode == 0, result.stderr
    assert (
        "bench: --duration 1s is up: no more requests sent; waiting for the 2 requests in "
        "flight to finish (--cancel-at-deadline cancels them instead)"
    ) in result.stderr
    assert doc["summary"]["requests"] == 2
    assert doc["cancelled_at_deadline"] == 0
    assert doc["plan"]["cancel_at_deadline"] is False


def test_cancel_at_deadline(tools_server: ToolsServer, tmp_path: Path) -> None:
    out = tmp_path / "cut"
    args = ["--duration", "1s", "--concurrency", "2", "--warmup", "0", "--no-plot"]
    result, doc = _bench(tools_server, out, INSTANT, *args, "--cancel-at-deadline")
    assert result.returncode == 0, result.stderr
    assert (
        "bench: --duration 1s is up: no more requests sent; cancelling the 2 requests in flight"
    ) in result.stderr
    assert doc["cancelled_at_deadline"] == 2
    assert doc["interrupted"] is False
    assert doc["summary"]["requests"] == 0
    assert (
        "cancelled at the deadline: 2 requests in flight (--cancel-at-deadline), not counted"
    ) in result.stdout
