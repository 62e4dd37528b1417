"""Which default CPU thread count is fast on a shared machine (issue 18): A/B/A/B.

The managed llama-server engine with the embedded default model is started once per thread
count (`--threads`, 1 and 2 by default) and the engines are measured in alternation (A, B, A,
B, ...), each turn one stream of `--max-tokens` tokens at temperature 0, so both see the same
machine. Two conditions: as the machine is ("idle": other work may run) and "busy", with a CPU
hog (`yes > /dev/null`) on one core. Reported: median decode tokens/s per thread count and
condition, and the load average at the start.

Run: .venv/bin/python bench/threads.py [--threads 1 2] [--rounds 4] [--max-tokens 48]
Results: bench/results/threads.json and .md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any

from outcrop.engines.llama_server import LlamaServerEngine, LlamaServerOptions
from outcrop.types import ChatMessage, Finish, GenerationRequest, SamplingParams, TokenEvent

RESULTS = Path(__file__).resolve().parent / "results"
PROMPT = "Write a short paragraph about how mountains form."


async def one_stream(engine: LlamaServerEngine, max_tokens: int) -> float:
    request = GenerationRequest(
        (ChatMessage("user", PROMPT),), SamplingParams(max_tokens=max_tokens, temperature=0)
    )
    first: float | None = None
    async for event in engine.generate(request):
        if isinstance(event, TokenEvent) and first is None:
            first = time.perf_counter()
        if isinstance(event, Finish):
            end = time.perf_counter()
            assert first is not None
            return (event.output_tokens - 1) / max(end - first, 1e-9)
    raise AssertionError("no Finish")


async def measure(threads: list[int], rounds: int, max_tokens: int) -> dict[str, Any]:
    engines = {
        n: LlamaServerEngine(options=LlamaServerOptions(n_ctx=512, parallel=1, n_threads=n))
        for n in threads
    }
    for engine in engines.values():
        await engine.start()
        assert engine.health().ready, engine.health().detail
    results: dict[str, dict[int, list[float]]] = {}
    try:
        for condition in ("idle", "busy"):
            hog = (
                await asyncio.create_subprocess_exec("yes", stdout=asyncio.subprocess.DEVNULL)
                if condition == "busy"
                else None
            )
            try:
                rates: dict[int, list[float]] = {n: [] for n in threads}
                for _ in range(rounds):
                    for n in threads:
                        rates[n].append(await one_stream(engines[n], max_tokens))
                results[condition] = rates
            finally:
                if hog is not None:
                    hog.terminate()
                    await hog.wait()
    finally:
        for engine in engines.values():
            await engine.close()
    return {
        condition: {
            str(n): {"median_tokens_per_s": statistics.median(r), "runs": r}
            for n, r in rates.items()
        }
        for condition, rates in results.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--max-tokens", type=int, default=48)
    args = parser.parse_args()
    load = os.getloadavg()
    results = asyncio.run(measure(args.threads, args.rounds, args.max_tokens))
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    summary = {
        "machine": machine,
        "load_average_at_start": load,
        "rounds": args.rounds,
        "max_tokens": args.max_tokens,
        "results": results,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "threads.json").write_text(json.dumps(summary, indent=2) + "\n")
    lines = [
        "# Default CPU threads on a shared machine (`bench/threads.py`)",
        "",
        f"{machine}; load average {load[0]:.1f} at the start (other work on the machine); "
        f"one stream of {args.max_tokens} tokens per turn, thread counts alternated "
        f"(A/B/A/B), {args.rounds} turns each; busy = `yes > /dev/null` on one core.",
        "",
        "| threads | idle tok/s (median) | busy tok/s (median) |",
        "|---:|---:|---:|",
    ]
    for n in args.threads:
        idle = results["idle"][str(n)]["median_tokens_per_s"]
        busy = results["busy"][str(n)]["median_tokens_per_s"]
        lines.append(f"| {n} | {idle:.1f} | {busy:.1f} |")
    (RESULTS / "threads.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
