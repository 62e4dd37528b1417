"""Outcrop's default engine vs the same llama-server used directly, at 1 to 16 streams.

Two servers run side by side: `outcrop serve` with its default engine (a managed llama-server
child) and a llama-server started here from the same cached binary, model and flags
(`LlamaServerOptions()`, i.e. Outcrop's defaults). For each concurrency (1, 2, 4, 8, 16) and
round, both are measured in turn, alternating which goes first: `c` clients each stream one
answer (same prompts, temperature 0, `--max-tokens`). Outcrop is called with
InvokeModelWithResponseStream (Anthropic Claude body, frames decoded with botocore's
EventStreamBuffer); llama-server with its OpenAI-compatible `/v1/chat/completions` stream.

Measured: aggregate output tokens/s (all clients' tokens / wall time of the run), time to first
token (request sent to first text) and inter-token gaps (between text events) p50/p99.
Targets (issue 11): Outcrop/direct >= 0.9 tokens/s at every concurrency, TTFT p50 at 8 streams
within 1.3x of direct.

Run: .venv/bin/python bench/engine_concurrency.py [--max-tokens 48] [--rounds 2]
Results: bench/results/engine_concurrency.json, .md and .png.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import aiohttp
from botocore.eventstream import EventStreamBuffer

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from tests.support.server import free_port, running_server  # noqa: E402

from outcrop.engines import llama_build  # noqa: E402
from outcrop.engines.default_model import resolve_model  # noqa: E402
from outcrop.engines.llama_server import (  # noqa: E402
    DEFAULT_REPEAT_LAST_N,
    DEFAULT_REPEAT_PENALTY,
    LlamaServerOptions,
)

RESULTS = REPO / "bench" / "results"
MODEL = "anthropic.claude-3-haiku-20240307-v1%3A0"
CONCURRENCY = (1, 2, 4, 8, 16)
PROMPTS = (
    "Describe how granite forms.",
    "List some uses of limestone.",
    "Why do rock layers fold?",
    "What is a volcano?",
    "Explain erosion to a child.",
    "How are fossils made?",
    "What is the rock cycle?",
    "Name some minerals and their colours.",
)


class Sample:
    def __init__(self) -> None:
        self.ttft: float | None = None
        self.gaps: list[float] = []
        self.tokens = 0


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def outcrop_stream(
    session: aiohttp.ClientSession, url: str, prompt: str, max_tokens: int
) -> Sample:
    body = json.dumps(
        {
            "anthropic_version": "bedrock-2023-05-31",
            "max_tokens": max_tokens,
            "temperature": 0,
            "messages": [{"role": "user", "content": prompt}],
        }
    )
    sample, buf, last = Sample(), EventStreamBuffer(), 0.0
    start = time.perf_counter()
    target = f"{url}/model/{MODEL}/invoke-with-response-stream"
    async with session.post(target, data=body, headers={"content-type": "application/json"}) as r:
        assert r.status == 200, await r.text()
        async for chunk in r.content.iter_any():
            buf.add_data(chunk)
            for message in buf:
                payload = json.loads(message.payload)
                if "bytes" not in payload:
                    raise RuntimeError(f"stream error: {payload}")
                event = json.loads(base64.b64decode(payload["bytes"]))
                now = time.perf_counter()
                if event.get("type") == "content_block_delta":
                    if sample.ttft is None:
                        sample.ttft = now - start
                    else:
                        sample.gaps.append(now - last)
                    last = now
                metrics = event.get("amazon-bedrock-invocationMetrics")
                if metrics:
                    sample.tokens = int(metrics["outputTokenCount"])
    return sample


async def direct_stream(
    session: aiohttp.ClientSession, url: str, prompt: str, max_tokens: int
) -> Sample:
    body = {
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": max_tokens,
        "temperature": 0,
        # the sampling Outcrop's engine asks its child for on free text (engines/llama_server.py)
        "repeat_penalty": DEFAULT_REPEAT_PENALTY,
        "repeat_last_n": DEFAULT_REPEAT_LAST_N,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    sample, last, pending = Sample(), 0.0, b""
    start = time.perf_counter()
    async with session.post(f"{url}/v1/chat/completions", json=body) as r:
        assert r.status == 200, await r.text()
        async for chunk in r.content.iter_any():
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                if not line.startswith(b"data: ") or line == b"data: [DONE]":
                    continue
                event = json.loads(line[6:])
                now = time.perf_counter()
                choices = event.get("choices") or []
                if choices and (choices[0].get("delta") or {}).get("content"):
                    if sample.ttft is None:
                        sample.ttft = now - start
                    else:
                        sample.gaps.append(now - last)
                    last = now
                if event.get("usage"):
                    sample.tokens = int(event["usage"]["completion_tokens"])
    return sample


async def run(kind: str, url: str, concurrency: int, max_tokens: int) -> dict[str, float]:
    stream = outcrop_stream if kind == "outcrop" else direct_stream
    timeout = aiohttp.ClientTimeout(total=900)
    connector = aiohttp.TCPConnector(limit=64)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
        start = time.perf_counter()
        samples = await asyncio.gather(
            *(
                stream(session, url, PROMPTS[i % len(PROMPTS)], max_tokens)
                for i in range(concurrency)
            )
        )
        wall = time.perf_counter() - start
    ttfts = [s.ttft for s in samples if s.ttft is not None]
    gaps = [g for s in samples for g in s.gaps]
    tokens = sum(s.tokens for s in samples)
    return {
        "tokens": tokens,
        "wall_s": wall,
        "tokens_per_s": tokens / wall,
        "ttft_p50_s": statistics.median(ttfts),
        "itl_p50_ms": _percentile(gaps, 0.5) * 1000,
        "itl_p99_ms": _percentile(gaps, 0.99) * 1000,
    }


def start_direct(options: LlamaServerOptions) -> tuple[subprocess.Popen[bytes], str]:
    binary = llama_build.find_binary() or llama_build.build()
    port = free_port()
    command = options.command(binary, resolve_model(None), port)
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    return proc, url
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("llama-server did not become ready")


def combine(runs: list[dict[str, float]]) -> dict[str, float]:
    return {key: statistics.median(r[key] for r in runs) for key in runs[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-tokens", type=int, default=48)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    options = LlamaServerOptions()
    direct, direct_url = start_direct(options)
    rows: list[dict[str, Any]] = []
    try:
        with running_server([], ready_timeout=600) as server:
            for concurrency in CONCURRENCY:
                results: dict[str, list[dict[str, float]]] = {"outcrop": [], "direct": []}
                for round_ in range(args.rounds):
                    order = ("outcrop", "direct") if round_ % 2 == 0 else ("direct", "outcrop")
                    for kind in order:
                        url = server.url if kind == "outcrop" else direct_url
                        results[kind].append(
                            asyncio.run(run(kind, url, concurrency, args.max_tokens))
                        )
                ours, theirs = combine(results["outcrop"]), combine(results["direct"])
                row = {
                    "concurrency": concurrency,
                    "outcrop": ours,
                    "direct": theirs,
                    "tokens_per_s_ratio": ours["tokens_per_s"] / theirs["tokens_per_s"],
                    "ttft_p50_ratio": ours["ttft_p50_s"] / theirs["ttft_p50_s"],
                }
                rows.append(row)
                print(json.dumps(row), flush=True)
    finally:
        direct.terminate()
        direct.wait(timeout=15)
    write(rows, args, options)


def write(
    rows: list[dict[str, Any]], args: argparse.Namespace, options: LlamaServerOptions
) -> None:
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    RESULTS.mkdir(exist_ok=True)
    summary = {
        "machine": machine,
        "max_tokens": args.max_tokens,
        "rounds": args.rounds,
        "slots": options.parallel,
        "threads": options.n_threads or "default",
        "rows": rows,
    }
    (RESULTS / "engine_concurrency.json").write_text(json.dumps(summary, indent=2) + "\n")
    lines = [
        "# Outcrop's default engine vs llama-server directly (`bench/engine_concurrency.py`)",
        "",
        f"{machine}; embedded default model, {options.parallel} slots, max_tokens "
        f"{args.max_tokens}, temperature 0, {args.rounds} alternating rounds (medians).",
        "",
        "| streams | Outcrop tok/s | direct tok/s | ratio | TTFT p50 Outcrop / direct (s) "
        "| TTFT ratio | ITL p50 / p99 Outcrop (ms) | ITL p50 / p99 direct (ms) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        ours, theirs = row["outcrop"], row["direct"]
        lines.append(
            f"| {row['concurrency']} | {ours['tokens_per_s']:.1f} | {theirs['tokens_per_s']:.1f} "
            f"| {row['tokens_per_s_ratio']:.2f} | {ours['ttft_p50_s']:.2f} / "
            f"{theirs['ttft_p50_s']:.2f} | {row['ttft_p50_ratio']:.2f} | "
            f"{ours['itl_p50_ms']:.0f} / {ours['itl_p99_ms']:.0f} | "
            f"{theirs['itl_p50_ms']:.0f} / {theirs['itl_p99_ms']:.0f} |"
        )
    (RESULTS / "engine_concurrency.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    xs = [row["concurrency"] for row in rows]
    ax.plot(xs, [r["outcrop"]["tokens_per_s"] for r in rows], marker="o", label="Outcrop")
    ax.plot(xs, [r["direct"]["tokens_per_s"] for r in rows], marker="s", label="llama-server")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("concurrent streams")
    ax.set_ylabel("aggregate output tokens/s")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(RESULTS / "engine_concurrency.png", dpi=100)


if __name__ == "__main__":
    main()
