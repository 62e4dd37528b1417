"""Is `outcrop bench` ever the bottleneck? Its throughput against Outcrop vs against a replay.

One run, side by side, alternating, several rounds: `outcrop bench` (the command, as a user runs
it) drives (a) `outcrop serve` on the scripted engine with no delay, the fastest Outcrop can
serve, and (b) bench/replay_server.py, which answers every request with the same response
Outcrop produced, pre-encoded, at almost no cost. If one bench process completes far more
requests per second against (b) than against (a), the client is not what limits (a). Both
clients are measured: `--client raw` (aiohttp + botocore SigV4, the default) and `--client sdk`
(aiobotocore). CPU time of the server process is read from /proc around each run; the bench
process reports its own. Results: bench/results/client_capacity.{json,md} and the plots that
`outcrop bench` drew for the first round.

Run: .venv/bin/python bench/client_capacity.py [--seconds 10] [--rounds 2] [--tokens 64]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path
from typing import Any

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from tests.support.server import free_port, running_server  # noqa: E402

MODEL = "anthropic.claude-3-haiku-20240307-v1:0"
RESULTS = REPO / "bench" / "results"
ENV = {
    "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE",
    "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads) so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def record_response(url: str, tokens: int) -> bytes:
    """One signed InvokeModelWithResponseStream response body from Outcrop."""
    body = json.dumps(
        {
            "anthropic_version": "bedrock-2023-05-31",
            "max_tokens": tokens,
            "messages": [
                {"role": "user", "content": "Explain in two sentences why the sky is blue."}
            ],
        }
    ).encode()
    target = f"{url}/model/{MODEL.replace(':', '%3A')}/invoke-with-response-stream"
    request = AWSRequest("POST", target, data=body, headers={"Content-Type": "application/json"})
    SigV4Auth(Credentials(ENV["AWS_ACCESS_KEY_ID"], ENV["AWS_SECRET_ACCESS_KEY"]), "bedrock",
              "us-east-1").add_auth(request)  # fmt: skip
    with urllib.request.urlopen(
        urllib.request.Request(target, data=body, headers=dict(request.headers.items())),
        timeout=30,
    ) as response:
        return bytes(response.read())


def run_bench(url: str, client: str, seconds: float, concurrency: int, tokens: int,
              out: Path, plot: bool) -> dict[str, Any]:  # fmt: skip
    command = [
        sys.executable, "-m", "outcrop.cli.main", "bench", MODEL,
        "--endpoint-url", url, "--duration", f"{seconds}s", "--concurrency", str(concurrency),
        "--max-tokens", str(tokens), "--client", client, "--no-progress", "--out", str(out),
    ]  # fmt: skip
    if not plot:
        command.append("--no-plot")
    done = subprocess.run(
        command, capture_output=True, text=True, env={**os.environ, **ENV}, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"outcrop bench failed:\n{done.stdout}\n{done.stderr}")
    return dict(json.loads(out.with_name(out.name + ".json").read_text()))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="outcrop-client-capacity-"))
    config = tmp / "outcrop.toml"
    config.write_text(
        f'[engines.default]\ntype = "scripted"\ntext = "tok"\ntoken_count = {args.tokens}\n'
    )
    runs: list[dict[str, Any]] = []
    with running_server(["--config", str(config)], env=ENV) as outcrop:
        body = record_response(outcrop.url, args.tokens)
        (tmp / "response.bin").write_bytes(body)
        replay_port = free_port()
        replay = subprocess.Popen(
            [sys.executable, str(REPO / "bench" / "replay_server.py"), str(tmp / "response.bin"),
             str(replay_port)],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            assert replay.stdout is not None
            replay.stdout.readline()
            servers = {
                "outcrop": (outcrop.url, outcrop.proc.pid),
                "replay": (f"http://127.0.0.1:{replay_port}", replay.pid),
            }
            for round_ in range(args.rounds):
                for client in ("raw", "sdk"):
                    for name, (url, pid) in servers.items():
                        out = tmp / f"{name}-{client}-{round_}"
                        before = cpu_seconds(pid)
                        doc = run_bench(
                            url, client, args.seconds, args.concurrency, args.tokens, out,
                            plot=round_ == 0 and client == "raw",
                        )  # fmt: skip
                        server_cpu = cpu_seconds(pid) - before
                        s = doc["summary"]
                        runs.append(
                            {
                                "round": round_,
                                "server": name,
                                "client": client,
                                "requests_per_s": s["requests_per_s"],
                                "output_tokens_per_s": s["output_tokens_per_s"],
                                "failed": s["failed"],
                                "ttft_p50_ms": s["ttft_s"]["p50"] * 1000,
                                "e2e_p50_ms": s["e2e_s"]["p50"] * 1000,
                                "client_cpu_utilization": doc["client"]["cpu_utilization"],
                                "server_cpu_utilization": server_cpu / s["duration_s"],
                                "client_cpu_us_per_token": doc["client"]["cpu_seconds"]
                                / max(1, s["output_tokens"])
                                * 1e6,
                                "server_cpu_us_per_token": server_cpu
                                / max(1, s["output_tokens"])
                                * 1e6,
                            }
                        )
                        if round_ == 0 and client == "raw":
                            RESULTS.mkdir(parents=True, exist_ok=True)
                            for suffix in (".json", ".png"):
                                shutil.copy(
                                    out.with_name(out.name + suffix),
                                    RESULTS / f"client_capacity_{name}{suffix}",
                                )
        finally:
            replay.terminate()
            replay.wait()
    write_results(args, runs, len(body))


def write_results(args: argparse.Namespace, runs: list[dict[str, Any]], body_size: int) -> None:
    summary: dict[str, dict[str, float]] = {}
    for server in ("outcrop", "replay"):
        for client in ("raw", "sdk"):
            mine = [r for r in runs if r["server"] == server and r["client"] == client]
            summary[f"{server}/{client}"] = {
                key: statistics.median(r[key] for r in mine)
                for key in ("requests_per_s", "output_tokens_per_s", "client_cpu_utilization",
                            "server_cpu_utilization", "client_cpu_us_per_token",
                            "server_cpu_us_per_token", "ttft_p50_ms", "e2e_p50_ms")
            }  # fmt: skip
    ratios = {
        client: summary[f"replay/{client}"]["requests_per_s"]
        / summary[f"outcrop/{client}"]["requests_per_s"]
        for client in ("raw", "sdk")
    }
    raw_vs_sdk = summary["replay/raw"]["requests_per_s"] / summary["replay/sdk"]["requests_per_s"]
    results = {
        "benchmark": "outcrop bench throughput against Outcrop (scripted, no delay) vs a replay",
        "command": "bench/client_capacity.py "
        f"--seconds {args.seconds:g} --rounds {args.rounds} --tokens {args.tokens} "
        f"--concurrency {args.concurrency}",
        "machine": f"{platform.machine()}, {os.cpu_count()} cores (shared), "
        f"Python {platform.python_version()}",
        "tokens_per_answer": args.tokens,
        "response_bytes": body_size,
        "runs": runs,
        "median": summary,
        "replay_over_outcrop_requests_per_s": ratios,
        "raw_over_sdk_client_capacity": raw_vs_sdk,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "client_capacity.json").write_text(json.dumps(results, indent=2) + "\n")
    lines = [
        "# Client capacity: `outcrop bench` against Outcrop vs against a replay server",
        "",
        f"Command: `.venv/bin/python {results['command']}`  ",
        f"Machine: {results['machine']}. {args.tokens} tokens per answer, "
        f"{args.concurrency} streams in flight, {args.seconds:g} s per run, medians of "
        f"{args.rounds} rounds.",
        "",
        "| server / client | req/s | output tokens/s | bench CPU (of one core) "
        "| server CPU (of one core) | bench CPU µs/token | server CPU µs/token |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for key, s in summary.items():
        lines.append(
            f"| {key} | {s['requests_per_s']:.0f} | {s['output_tokens_per_s']:.0f} "
            f"| {s['client_cpu_utilization']:.0%} | {s['server_cpu_utilization']:.0%} "
            f"| {s['client_cpu_us_per_token']:.1f} | {s['server_cpu_us_per_token']:.1f} |"
        )
    lines += [
        "",
        f"One bench process (raw client) completes {ratios['raw']:.1f}× as many requests per "
        "second against the replay server as Outcrop serves; with the SDK client "
        f"{ratios['sdk']:.1f}×. The raw client does {raw_vs_sdk:.1f}× the SDK client's requests "
        "per second against the replay.",
    ]
    (RESULTS / "client_capacity.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
