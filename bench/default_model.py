"""Which embedded model ends its own turns: the measurement behind the default model.

Each embedded model (`outcrop.engines.default_model.EMBEDDED_MODELS`) answers the same 20
fixed chat prompts with max_tokens 256 at temperature 0, through the managed llama-server
engine (4 slots), once with the engine's default repetition penalty (1.1 over the last 64
tokens) and once without (1.0, llama-server's own default). Counted per run: answers that end
by themselves (`END_TURN`) rather than at max_tokens, which did not, and the median output
length. Target for the default: at least 18 of 20.

Run: .venv/bin/python bench/default_model.py [--max-tokens 256] [--models smollm2-135m]
Results: bench/results/default_model.json and .md.
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

from outcrop.engines.default_model import EMBEDDED_MODELS, embedded_model_path
from outcrop.engines.llama_server import (
    DEFAULT_REPEAT_PENALTY,
    LlamaServerEngine,
    LlamaServerOptions,
)
from outcrop.types import ChatMessage, Finish, GenerationRequest, SamplingParams, StopReason

RESULTS = Path(__file__).resolve().parent / "results"
PROMPTS = (
    "What is granite?",
    "Name three planets.",
    "Say hello in French.",
    "What is 12 times 7?",
    "Give me one tip for staying focused.",
    "What colour is the sky on a clear day?",
    "Write a haiku about rain.",
    "Translate 'thank you' into Spanish.",
    "What is the capital of Japan?",
    "Explain photosynthesis in one sentence.",
    "List two uses of copper.",
    "Who wrote Romeo and Juliet?",
    "What does HTTP stand for?",
    "Suggest a name for a pet turtle.",
    "Is a tomato a fruit or a vegetable?",
    "How many days are in a leap year?",
    "What is the boiling point of water in Celsius?",
    "Describe a volcano in one sentence.",
    "What is the opposite of 'ancient'?",
    "Recommend a book for a long flight.",
)


async def measure(model: str, max_tokens: int, repeat_penalty: float) -> dict[str, object]:
    options = LlamaServerOptions(n_ctx=1024, parallel=4, repeat_penalty=repeat_penalty)
    engine = LlamaServerEngine(embedded_model_path(model), options=options)
    await engine.start()
    assert engine.health().ready, engine.health().detail
    try:

        async def one(prompt: str) -> Finish:
            request = GenerationRequest(
                (ChatMessage("user", prompt),),
                SamplingParams(max_tokens=max_tokens, temperature=0),
            )
            async for event in engine.generate(request):
                if isinstance(event, Finish):
                    return event
            raise AssertionError("no Finish")

        started = time.perf_counter()
        finishes = await asyncio.gather(*(one(p) for p in PROMPTS))
        elapsed = time.perf_counter() - started
    finally:
        await engine.close()
    ended = sum(1 for f in finishes if f.stop_reason is StopReason.END_TURN)
    return {
        "model": model,
        "repeat_penalty": repeat_penalty,
        "ended_by_themselves": ended,
        "not_ended": [
            p
            for p, f in zip(PROMPTS, finishes, strict=True)
            if f.stop_reason is not StopReason.END_TURN
        ],
        "prompts": len(PROMPTS),
        "median_output_tokens": statistics.median(f.output_tokens for f in finishes),
        "output_tokens": [f.output_tokens for f in finishes],
        "seconds": round(elapsed, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-tokens", type=int, default=256)
    parser.add_argument("--models", nargs="*", default=list(EMBEDDED_MODELS))
    args = parser.parse_args()
    rows = [
        asyncio.run(measure(model, args.max_tokens, penalty))
        for model in args.models
        for penalty in (DEFAULT_REPEAT_PENALTY, 1.0)
    ]
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "default_model.json").write_text(
        json.dumps({"machine": machine, "max_tokens": args.max_tokens, "models": rows}, indent=2)
        + "\n"
    )
    lines = [
        "# Which embedded model ends its own turns (`bench/default_model.py`)",
        "",
        f"{len(PROMPTS)} fixed chat prompts, max_tokens {args.max_tokens}, temperature 0, "
        f"managed llama-server engine (4 slots); {machine}. Repetition penalty "
        f"{DEFAULT_REPEAT_PENALTY} over the last 64 tokens is the engine's default for free "
        "text; 1.0 is none (llama-server's own default).",
        "",
        "| model | repetition penalty | ended by themselves | median output tokens | seconds |"
        " ran to max_tokens |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for row in rows:
        missed = row["not_ended"]
        assert isinstance(missed, list)
        lines.append(
            f"| {row['model']} | {row['repeat_penalty']} | {row['ended_by_themselves']} / "
            f"{row['prompts']} | {row['median_output_tokens']} | {row['seconds']} | "
            f"{'; '.join(missed) if len(missed) <= 5 else f'{len(missed)} prompts'} |"
        )
    (RESULTS / "default_model.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
