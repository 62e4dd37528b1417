"""In-process engine timings: the baseline that server benchmarks compare against.

`run_inprocess` streams prompts one after another straight from an `Engine` (no HTTP, no
serialization) and reports, per prompt, the time to first token and the output rate. Run as a
script it measures the embedded default model with the llama.cpp engine:

    .venv/bin/python bench/engine_inprocess.py [--max-tokens N] [--runs N] [--temperature T]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from collections.abc import Sequence
from typing import TypedDict

from outcrop.engines.base import Engine
from outcrop.types import ChatMessage, Finish, GenerationRequest, SamplingParams, TokenEvent

DEFAULT_PROMPTS = (
    "Describe how granite forms, in two sentences.",
    "List three uses of limestone.",
    "Why do rock layers fold?",
)


class InprocessResult(TypedDict):
    ttft_s: float
    """Seconds from calling `generate` to the first non-empty `TokenEvent`."""
    tokens: int
    """Output tokens, as the engine's `Finish` reports them."""
    tokens_per_s: float
    """Output tokens per second after the first token: (tokens - 1) / (end - first token)."""
    total_s: float
    """Seconds from calling `generate` to the `Finish`."""


async def run_inprocess(
    engine: Engine,
    prompts: Sequence[str | GenerationRequest],
    max_tokens: int,
    *,
    temperature: float | None = 0.0,
) -> list[InprocessResult]:
    """Stream each prompt from `engine` in turn; a `str` prompt becomes one user message.

    `GenerationRequest` prompts are used as given (`max_tokens` and `temperature` then do not
    apply). The engine must already be started.
    """
    results: list[InprocessResult] = []
    for prompt in prompts:
        request = (
            prompt
            if isinstance(prompt, GenerationRequest)
            else GenerationRequest(
                messages=(ChatMessage("user", prompt),),
                sampling=SamplingParams(max_tokens=max_tokens, temperature=temperature),
            )
        )
        start = time.perf_counter()
        first: float | None = None
        finish: Finish | None = None
        async for event in engine.generate(request):
            if isinstance(event, TokenEvent):
                if first is None and event.text:
                    first = time.perf_counter()
            elif isinstance(event, Finish):
                finish = event
        end = time.perf_counter()
        if finish is None:
            raise RuntimeError("the engine ended a stream without a Finish")
        first = end if first is None else first
        decoding = end - first
        rate = (finish.output_tokens - 1) / decoding if decoding > 0 else 0.0
        results.append(
            InprocessResult(
                ttft_s=first - start,
                tokens=finish.output_tokens,
                tokens_per_s=rate,
                total_s=end - start,
            )
        )
    return results


async def _main(argv: Sequence[str]) -> None:
    from outcrop.engines.llama_server import LlamaServerEngine

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--runs", type=int, default=3, help="passes over the prompts")
    parser.add_argument("--temperature", type=float, default=0.0)
    parser.add_argument("--model", default=None, help="GGUF path (default: embedded model)")
    args = parser.parse_args(argv)

    engine = LlamaServerEngine(args.model)
    loaded = time.perf_counter()
    await engine.start()
    load_s = time.perf_counter() - loaded
    if not engine.health().ready:
        raise SystemExit(engine.health().detail)
    warmup = await run_inprocess(engine, DEFAULT_PROMPTS[:1], 8, temperature=args.temperature)
    results: list[InprocessResult] = []
    for _ in range(args.runs):
        results += await run_inprocess(
            engine, DEFAULT_PROMPTS, args.max_tokens, temperature=args.temperature
        )
    model_path = engine.health().extra.get("model_path")
    await engine.close()
    summary = {
        "model": model_path,
        "load_s": round(load_s, 3),
        "cold_ttft_s": round(warmup[0]["ttft_s"], 4),
        "max_tokens": args.max_tokens,
        "temperature": args.temperature,
        "runs": len(results),
        "ttft_s_median": round(statistics.median(r["ttft_s"] for r in results), 4),
        "tokens_per_s_median": round(statistics.median(r["tokens_per_s"] for r in results), 2),
        "tokens_mean": round(statistics.mean(r["tokens"] for r in results), 1),
    }
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    asyncio.run(_main(sys.argv[1:]))
