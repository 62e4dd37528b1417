"""The prefix cache through Outcrop: a ~1,500-token prompt cold, with its last sentence
changed, then identical.

`outcrop serve` (default engine) is called with ConverseStream (boto3), the long prompt in one
user message followed by a `cachePoint`. Each round uses a fresh prompt (a new first sentence,
so nothing is cached from an earlier round) and sends: (1) the prompt cold, (2) the same prompt
with its last sentence changed, (3) the prompt of (2) again. Time to first token (request sent
to the first text delta) and the usage's `inputTokens` / `cacheReadInputTokens` /
`cacheWriteInputTokens` are recorded. Target (issue 11): warm TTFT <= 0.1x cold, and the usage
reports the cached tokens.

Run: .venv/bin/python bench/prefix_cache.py [--rounds 3]
Results: bench/results/prefix_cache.json and .md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from tests.support.server import running_server  # noqa: E402

RESULTS = REPO / "bench" / "results"
MODEL = "us.amazon.nova-lite-v1:0"
SENTENCES = (
    "Granite forms when magma cools slowly deep below the surface of the Earth.",
    "Its large crystals of quartz, feldspar and mica can be seen with the naked eye.",
    "Basalt, by contrast, cools quickly at the surface and has very fine grains.",
    "Sandstone is made of sand grains cemented together by silica or calcite.",
    "Limestone often holds the fossils of shells and corals from ancient seas.",
    "Metamorphic rocks such as marble and slate form under heat and pressure.",
)


def long_prompt(round_: int, last: str) -> str:
    body = " ".join(SENTENCES[i % len(SENTENCES)] for i in range(90))  # ~1,500 tokens
    return f"Round {round_} notes on rocks. {body} {last}"


def ask(client: Any, text: str) -> dict[str, Any]:
    start = time.perf_counter()
    response = client.converse_stream(
        modelId=MODEL,
        messages=[
            {"role": "user", "content": [{"text": text}, {"cachePoint": {"type": "default"}}]}
        ],
        inferenceConfig={"maxTokens": 4, "temperature": 0},
    )
    ttft: float | None = None
    usage: dict[str, Any] = {}
    for event in response["stream"]:
        if "contentBlockDelta" in event and ttft is None:
            ttft = time.perf_counter() - start
        if "metadata" in event:
            usage = event["metadata"]["usage"]
    return {"ttft_s": ttft if ttft is not None else time.perf_counter() - start, "usage": usage}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    rounds: list[dict[str, Any]] = []
    with running_server([], ready_timeout=600) as server:
        client = boto3.client(
            "bedrock-runtime",
            endpoint_url=server.url,
            region_name="us-east-1",
            aws_access_key_id="x",
            aws_secret_access_key="x",
            config=Config(retries={"max_attempts": 1}, read_timeout=300),
        )
        for round_ in range(args.rounds):
            cold = ask(client, long_prompt(round_, "What is granite made of?"))
            changed = ask(client, long_prompt(round_, "Where is basalt found?"))
            identical = ask(client, long_prompt(round_, "Where is basalt found?"))
            rounds.append({"cold": cold, "changed": changed, "identical": identical})
            print(json.dumps(rounds[-1]), flush=True)
    summary: dict[str, Any] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}",
        "rounds": rounds,
    }
    for kind in ("cold", "changed", "identical"):
        summary[f"{kind}_ttft_p50_s"] = statistics.median(r[kind]["ttft_s"] for r in rounds)
    for kind in ("changed", "identical"):
        summary[f"{kind}_over_cold"] = summary[f"{kind}_ttft_p50_s"] / summary["cold_ttft_p50_s"]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "prefix_cache.json").write_text(json.dumps(summary, indent=2) + "\n")
    last = rounds[-1]
    lines = [
        "# The prefix cache through Outcrop (`bench/prefix_cache.py`)",
        "",
        f"{summary['machine']}; ConverseStream with a cachePoint after a ~1,500-token user "
        f"message, maxTokens 4, {args.rounds} rounds (medians).",
        "",
        "| request | TTFT p50 (s) | vs cold | inputTokens | cacheRead | cacheWrite (last round) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for kind in ("cold", "changed", "identical"):
        usage = last[kind]["usage"]
        ratio = summary[f"{kind}_ttft_p50_s"] / summary["cold_ttft_p50_s"]
        lines.append(
            f"| {kind} | {summary[f'{kind}_ttft_p50_s']:.3f} | {ratio:.3f} | "
            f"{usage.get('inputTokens')} | {usage.get('cacheReadInputTokens')} | "
            f"{usage.get('cacheWriteInputTokens')} |"
        )
    (RESULTS / "prefix_cache.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
