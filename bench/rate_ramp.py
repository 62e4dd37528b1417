"""Where does Outcrop stop keeping up? An open-loop rate ramp with `outcrop bench`.

`outcrop serve` runs a scripted engine with a known latency (first token after 50 ms, then one
token every 10 ms, 32 tokens: 360 ms per answer when nothing queues); `outcrop bench` sends
requests on a ramp of rates, whatever the latency (at most `--concurrency` in flight), and
draws latency percentiles and throughput over time. While it runs, the server's CPU time is
sampled from /proc every second, and bench/results/rate_ramp.md puts both side by side per
stage. The PNG is the one `outcrop bench` drew.

Run: .venv/bin/python bench/rate_ramp.py [--rate 50:10s,100:10s,200:10s,400:10s]
                                         [--concurrency 256]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "src"))
from tests.support.server import running_server  # noqa: E402

from outcrop.cli.bench.schedule import parse_rate  # noqa: E402

MODEL = "anthropic.claude-3-haiku-20240307-v1:0"
RESULTS = REPO / "bench" / "results"
ENV = {
    "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE",
    "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "AWS_DEFAULT_REGION": "us-east-1",
}

CONFIG = """
[engines.default]
type = "scripted"
text = "tok"
token_count = 32
first_token_delay_ms = 50
delay_ms = 10
"""


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads) so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def sample_cpu(pid: int, stop: threading.Event, out: list[tuple[float, float]]) -> None:
    """(wall time, server CPU seconds) once a second until `stop`."""
    while not stop.is_set():
        out.append((time.monotonic(), cpu_seconds(pid)))
        stop.wait(1.0)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", default="50:10s,100:10s,200:10s,400:10s")
    parser.add_argument("--concurrency", type=int, default=256, help="cap on streams in flight")
    args = parser.parse_args()
    stages = parse_rate(args.rate)
    tmp = Path(tempfile.mkdtemp(prefix="outcrop-rate-ramp-"))
    (tmp / "outcrop.toml").write_text(CONFIG)
    samples: list[tuple[float, float]] = []
    with running_server(["--config", str(tmp / "outcrop.toml")], env=ENV) as server:
        stop = threading.Event()
        sampler = threading.Thread(target=sample_cpu, args=(server.proc.pid, stop, samples))
        command = [
            sys.executable, "-m", "outcrop.cli.main", "bench", MODEL,
            "--endpoint-url", server.url, "--rate", args.rate, "--max-tokens", "32",
            "--concurrency", str(args.concurrency),
            "--no-progress", "--out", str(tmp / "rate_ramp"),
        ]  # fmt: skip
        sampler.start()
        started = time.monotonic()
        done = subprocess.run(
            command, capture_output=True, text=True, env={**os.environ, **ENV}, check=False
        )
        stop.set()
        sampler.join()
    if done.returncode != 0:
        raise RuntimeError(f"outcrop bench failed:\n{done.stdout}\n{done.stderr}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    for suffix in (".json", ".png"):
        shutil.copy(tmp / f"rate_ramp{suffix}", RESULTS / f"rate_ramp{suffix}")
    doc = json.loads((tmp / "rate_ramp.json").read_text())
    write_report(args.rate, args.concurrency, stages, doc, samples, started, done.stdout)


def write_report(
    rate: str,
    concurrency: int,
    stages: Any,
    doc: dict[str, Any],
    samples: list[tuple[float, float]],
    started: float,
    table: str,
) -> None:
    # The bench process starts a little after `started` (interpreter start, warm-up request):
    # stage boundaries on the server's clock are approximate to about a second.
    lines = [
        "# Rate ramp: `outcrop bench` against Outcrop on a scripted engine with known latency",
        "",
        f"Command: `.venv/bin/python bench/rate_ramp.py --rate {rate} --concurrency "
        f"{concurrency}`  ",
        "Engine: scripted, 32 tokens, first after 50 ms then every 10 ms (360 ms per answer "
        "without queueing). Open loop: requests are sent on schedule whatever the latency, "
        f"at most {concurrency} in flight (beyond that they wait in the client: send lag).",
        "",
        "| stage | offered req/s | server CPU (of one core) |",
        "|---|---:|---:|",
    ]
    edge = 0.0
    for stage in stages:
        end = edge + (stage.duration or 0.0)
        inside = [(t - started, c) for t, c in samples if edge <= t - started <= end]
        if len(inside) >= 2:
            busy = (inside[-1][1] - inside[0][1]) / (inside[-1][0] - inside[0][0])
            lines.append(f"| {edge:.0f}–{end:.0f} s | {stage.rate:g} | {busy:.0%} |")
        edge = end
    s = doc["summary"]
    lines += [
        "",
        f"Completed {s['requests']} requests ({s['failed']} failed) in {s['duration_s']:.1f} s; "
        f"bench CPU {doc['client']['cpu_utilization']:.0%} of one core; send lag p99 "
        f"{doc['client']['send_lag_s']['p99'] * 1000:.0f} ms.",
        "",
        "```",
        table.strip(),
        "```",
        "",
        "![latency and throughput over time](rate_ramp.png)",
    ]
    (RESULTS / "rate_ramp.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
