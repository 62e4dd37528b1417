"""Benchmark: tool calls by grammar-constrained decoding on the embedded model, in-process.

Kinds of generation from one `LlamaCppEngine`, alternating within each round, greedy:

- `forced_call`: tools offered with toolChoice `any`: every token sampled through the grammar
  (each token checked against the grammar, `GrammarSampler`'s fast path);
- `forced_call_grammar_first`: the same, with the grammar applied to the whole vocabulary for
  every token (what a plain grammar-first sampler chain does; the engine's sampler is swapped
  for this run only);
- `auto_text`: the same tools with `auto`, where the model chooses to answer in text: the first
  token goes through the grammar, the rest are sampled freely;
- `tools_no_grammar`: the same tools with `none`: the same prompt, no grammar (the baseline);
- `plain_text`: the same question without tools (no grammar, a much shorter prompt).

For each: milliseconds per output token after the first (decode cost, the prompt excluded) and
the time to the first event. For the forced calls also: how many produced input that validates
against the tool's JSON schema (`jsonschema`). The grammar's cost is the ratio of forced-call
to tools_no_grammar milliseconds per token (same prompt), measured side by side in one run.
Results: bench/results/tool_grammar.json and .md.

Run: .venv/bin/python bench/tool_grammar.py [--rounds 3] [--max-tokens 48]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any, cast

import jsonschema

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
from outcrop.engines import llamacpp  # noqa: E402
from outcrop.engines.llamacpp import LlamaCppEngine  # noqa: E402
from outcrop.engines.tool_grammar import GrammarSampler  # noqa: E402
from outcrop.types import (  # noqa: E402
    ChatMessage,
    Finish,
    GenerationRequest,
    SamplingParams,
    ToolCallEvent,
    ToolChoice,
    ToolChoiceMode,
    ToolSpec,
)

MACHINE = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
SCHEMA = {
    "type": "object",
    "properties": {
        "city": {"type": "string"},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
        "days": {"type": "integer", "minimum": 1, "maximum": 5},
    },
    "required": ["city", "unit", "days"],
}
TOOLS = (ToolSpec("forecast", "Weather forecast for a city", SCHEMA),)
KINDS: dict[str, str | None] = {
    "forced_call": "any",
    "forced_call_grammar_first": "any",
    "auto_text": "auto",
    "tools_no_grammar": "none",
    "plain_text": None,
}
QUESTIONS = [
    "What will the weather be in Lisbon this week?",
    "Is it going to rain in Oslo tomorrow?",
    "Forecast for Nairobi, please.",
]


async def timed(engine: LlamaCppEngine, request: GenerationRequest) -> dict[str, Any]:
    start = time.perf_counter()
    stamps: list[float] = []
    cpu: list[float] = []
    counts: list[int] = []
    arguments = ""
    called = False
    output_tokens = 0
    async for event in engine.generate(request):
        if isinstance(event, Finish):
            output_tokens = event.output_tokens
            continue
        stamps.append(time.perf_counter())
        cpu.append(time.process_time())
        counts.append(event.token_count)
        if isinstance(event, ToolCallEvent):
            called = True
            arguments += event.arguments
    first = stamps[0] - start if stamps else float("nan")
    # Decode cost: the time between the first and last event over the tokens that arrived in
    # between (a call's first event comes only once its name has been generated).
    later = sum(counts[1:])
    per_token = (stamps[-1] - stamps[0]) * 1000 / later if later else float("nan")
    cpu_per_token = (cpu[-1] - cpu[0]) * 1000 / later if later else float("nan")
    valid = None
    if called:
        try:
            jsonschema.validate(json.loads(arguments), SCHEMA)
            valid = True
        except (ValueError, jsonschema.ValidationError):
            valid = False
    return {
        "first_token_s": first,
        "ms_per_token": per_token,
        "cpu_ms_per_token": cpu_per_token,
        "tokens": output_tokens,
        "valid": valid,
    }


class GrammarFirst(GrammarSampler):
    """Every token through the grammar-first chain (no check-then-resample fast path)."""

    def sample(self) -> int:
        return self._constrained.sample()


async def generation(
    engine: LlamaCppEngine, kind: str, question: str, max_tokens: int
) -> dict[str, Any]:
    choice = {"forced_call_grammar_first": "any"}.get(kind, KINDS[kind])
    if kind != "forced_call_grammar_first":
        return await timed(engine, request(question, choice, max_tokens))
    llamacpp.GrammarSampler = GrammarFirst  # type: ignore[attr-defined]
    try:
        return await timed(engine, request(question, choice, max_tokens))
    finally:
        llamacpp.GrammarSampler = GrammarSampler  # type: ignore[attr-defined]


def request(question: str, choice: str | None, max_tokens: int) -> GenerationRequest:
    return GenerationRequest(
        (ChatMessage("user", question),),
        SamplingParams(max_tokens=max_tokens, temperature=0),
        tools=TOOLS if choice else (),
        tool_choice=ToolChoice(cast(ToolChoiceMode, choice))
        if choice in ("any", "auto", "none")
        else ToolChoice(),
    )


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=48)
    args = parser.parse_args()
    engine = LlamaCppEngine()
    await engine.start()
    samples: dict[str, list[dict[str, Any]]] = {k: [] for k in KINDS}
    await timed(engine, request(QUESTIONS[0], "any", 8))  # warm-up
    for _ in range(args.rounds):
        for question in QUESTIONS:
            for kind in KINDS:
                samples[kind].append(await generation(engine, kind, question, args.max_tokens))
    await engine.close()
    summary: dict[str, Any] = {}
    for kind, rows in samples.items():
        summary[kind] = {
            "ms_per_token_median": statistics.median(r["ms_per_token"] for r in rows),
            "cpu_ms_per_token_median": statistics.median(r["cpu_ms_per_token"] for r in rows),
            "first_token_s_median": statistics.median(r["first_token_s"] for r in rows),
            "tokens_median": statistics.median(r["tokens"] for r in rows),
            "runs": len(rows),
        }
    for kind in ("forced_call", "forced_call_grammar_first"):
        valid = sum(1 for r in samples[kind] if r["valid"])
        summary[kind]["schema_valid"] = f"{valid}/{len(samples[kind])}"
    summary["auto_text"]["calls_made"] = sum(
        1 for r in samples["auto_text"] if r["valid"] is not None
    )
    # CPU time (all of this process's threads) is what the grammar adds; wall time on a shared
    # machine also measures the other processes.
    base = summary["tools_no_grammar"]["cpu_ms_per_token_median"]
    ratio = summary["forced_call"]["cpu_ms_per_token_median"] / base
    auto_ratio = summary["auto_text"]["cpu_ms_per_token_median"] / base
    first_ratio = summary["forced_call_grammar_first"]["cpu_ms_per_token_median"] / base
    result = {
        "machine": MACHINE,
        "rounds": args.rounds,
        "max_tokens": args.max_tokens,
        "summary": summary,
        "grammar_cost_ratio": ratio,
        "grammar_first_cost_ratio": first_ratio,
        "auto_text_vs_plain_ratio": auto_ratio,
        "samples": samples,
    }
    out = REPO / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "tool_grammar.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        "# Tool calls by grammar-constrained decoding (embedded Gemma 3 270M, in-process)",
        "",
        f"Machine: {MACHINE}. {args.rounds} rounds x {len(QUESTIONS)} questions, greedy, "
        f"max_tokens {args.max_tokens}. Command: `.venv/bin/python bench/tool_grammar.py`.",
        "",
        "| generation | CPU ms/token | wall ms/token | first event s | tokens | notes |",
        "|---|---|---|---|---|---|",
    ]
    for kind, row in summary.items():
        notes = ""
        if kind.startswith("forced_call"):
            notes = f"schema-valid calls {row['schema_valid']}"
        elif kind == "auto_text":
            notes = f"calls made {row['calls_made']}"
        lines.append(
            f"| {kind} | {row['cpu_ms_per_token_median']:.1f} | {row['ms_per_token_median']:.1f} | "
            f"{row['first_token_s_median']:.2f} | {row['tokens_median']} | {notes} |"
        )
    lines += [
        "",
        "Medians. CPU ms/token counts the CPU time of all of this process's threads between the "
        "first and the last event over the tokens in between; wall time on a shared machine "
        "also measures the other processes.",
        "",
        f"Grammar cost in CPU time: a constrained token takes {ratio:.2f}x a free one with the "
        f"same prompt ({first_ratio:.2f}x when the grammar is applied to the whole vocabulary "
        f"for every token; auto answering in text: {auto_ratio:.2f}x, the grammar being dropped "
        "after the first token). The runs alternate in one process.",
        "",
    ]
    (out / "tool_grammar.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    asyncio.run(main())
