"""Benchmark (b) of issue 2: the llama.cpp engine through `outcrop serve` vs called in-process.

The same embedded model and prompts (temperature 0, same max_tokens) are streamed alternately
from a `LlamaCppEngine` in this process and from an `outcrop serve` process over HTTP/1.1
(InvokeModelWithResponseStream, frames decoded with botocore's EventStreamBuffer). Time to
first token is measured from sending the request to the first text delta; tokens per second
after the first token as (tokens - 1) / (last - first). Both sides generate the same tokens
(greedy), so the difference is the server's overhead.
Targets: the server keeps >= 95% of the in-process token rate and adds < 10 ms to the TTFT.
Results: bench/results/llama_server_vs_inprocess.json and .md.

Run: .venv/bin/python bench/llama_server_vs_inprocess.py [--max-tokens 64] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
from botocore.eventstream import EventStreamBuffer

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from tests.support.server import running_server  # noqa: E402

from bench.engine_inprocess import DEFAULT_PROMPTS, run_inprocess  # noqa: E402

MODEL = "anthropic.claude-3-haiku-20240307-v1%3A0"
MACHINE = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"


async def through_server(
    session: aiohttp.ClientSession, url: str, prompt: str, max_tokens: int
) -> dict[str, float]:
    body = json.dumps(
        {
            "anthropic_version": "bedrock-2023-05-31",
            "max_tokens": max_tokens,
            "temperature": 0,
            "messages": [{"role": "user", "content": prompt}],
        }
    )
    buf = EventStreamBuffer()
    first: float | None = None
    last = 0.0
    tokens = 0
    start = time.perf_counter()
    async with session.post(url, data=body, headers={"content-type": "application/json"}) as r:
        assert r.status == 200, await r.text()
        async for chunk in r.content.iter_any():
            buf.add_data(chunk)
            for message in buf:
                obj = json.loads(base64.b64decode(json.loads(message.payload)["bytes"]))
                if obj["type"] == "content_block_delta" and obj["delta"]["text"]:
                    now = time.perf_counter()
                    first = first if first is not None else now
                    last = now
                if obj["type"] == "message_stop":
                    tokens = obj["amazon-bedrock-invocationMetrics"]["outputTokenCount"]
    end = time.perf_counter()
    first = first if first is not None else end
    decoding = last - first
    return {
        "ttft_s": first - start,
        "tokens": tokens,
        "tokens_per_s": (tokens - 1) / decoding if decoding > 0 else 0.0,
        "total_s": end - start,
    }


async def main_async(max_tokens: int, rounds: int) -> dict[str, Any]:
    from outcrop.engines.llamacpp import LlamaCppEngine

    engine = LlamaCppEngine(None)
    await engine.start()
    assert engine.health().ready, engine.health().detail
    rows: list[dict[str, Any]] = []
    # One kept-alive connection, as SDK clients keep theirs.
    with running_server([], ready_timeout=300) as server:
        async with aiohttp.ClientSession() as session:
            url = f"{server.url}/model/{MODEL}/invoke-with-response-stream"
            # warm both up
            await run_inprocess(engine, DEFAULT_PROMPTS[:1], 8)
            await through_server(session, url, DEFAULT_PROMPTS[0], 8)
            for _ in range(rounds):
                for prompt in DEFAULT_PROMPTS:
                    (inproc,) = await run_inprocess(engine, [prompt], max_tokens)
                    served = await through_server(session, url, prompt, max_tokens)
                    rows.append({"prompt": prompt, "inprocess": dict(inproc), "server": served})
    await engine.close()
    return {"rows": rows}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    data = asyncio.run(main_async(args.max_tokens, args.rounds))
    rows = data["rows"]
    med = statistics.median
    in_rate = med(r["inprocess"]["tokens_per_s"] for r in rows)
    sv_rate = med(r["server"]["tokens_per_s"] for r in rows)
    in_ttft = med(r["inprocess"]["ttft_s"] for r in rows)
    sv_ttft = med(r["server"]["ttft_s"] for r in rows)
    added = med(r["server"]["ttft_s"] - r["inprocess"]["ttft_s"] for r in rows)
    summary = {
        "inprocess_tokens_per_s": round(in_rate, 2),
        "server_tokens_per_s": round(sv_rate, 2),
        "token_rate_ratio": round(sv_rate / in_rate, 3),
        "inprocess_ttft_ms": round(in_ttft * 1000, 1),
        "server_ttft_ms": round(sv_ttft * 1000, 1),
        "added_ttft_ms_median_of_pairs": round(added * 1000, 1),
        "same_token_counts": all(r["inprocess"]["tokens"] == r["server"]["tokens"] for r in rows),
    }
    result = {
        "benchmark": "llama.cpp engine through outcrop serve vs in-process, same prompts",
        "command": (
            ".venv/bin/python bench/llama_server_vs_inprocess.py "
            f"--max-tokens {args.max_tokens} --rounds {args.rounds}"
        ),
        "machine": MACHINE,
        "model": "embedded Gemma 3 270M Q4_K_M",
        "max_tokens": args.max_tokens,
        "summary": summary,
        **data,
    }
    out = REPO / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "llama_server_vs_inprocess.json").write_text(json.dumps(result, indent=2) + "\n")
    md = [
        "# llama.cpp through the server vs in-process",
        "",
        f"Command: `{result['command']}`  ",
        f"Machine: {result['machine']}; model: {result['model']}; pairs: {len(rows)}.",
        "",
        "| | in-process | through outcrop serve | ratio / difference |",
        "|---|---|---|---|",
        f"| tokens/s after first token (median) | {in_rate:.1f} | {sv_rate:.1f} | "
        f"{sv_rate / in_rate:.3f} (target >= 0.95) |",
        f"| time to first token (median) | {in_ttft * 1000:.1f} ms | {sv_ttft * 1000:.1f} ms | "
        f"+{added * 1000:.1f} ms median of pairs (target < 10 ms) |",
        "",
        f"Same output token counts on both sides: {summary['same_token_counts']}.",
    ]
    (out / "llama_server_vs_inprocess.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
