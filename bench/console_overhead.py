"""Benchmark: what recording calls for the web console costs on the request path.

In process (the ASGI app driven directly, no sockets), the same InvokeModelWithResponseStream
call (scripted engine, no delay, `--tokens` tokens, one frame per token) against two apps
built from the same settings but for `[console] enabled`, alternating call by call, several
rounds. Reported: median time per streamed call with the console on and off, their ratio, and
per frame.

Results: bench/results/console_overhead.json and .md.
Run: .venv/bin/python bench/console_overhead.py [--calls 40] [--rounds 5] [--tokens 500]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "src"))

from tests.asgi_driver import call  # noqa: E402

from outcrop.app import OutcropApp  # noqa: E402
from outcrop.config import Settings  # noqa: E402
from outcrop.engines.factory import build_engine  # noqa: E402

RESULTS = REPO / "bench" / "results"
PATH = "/model/anthropic.claude-3-haiku-20240307-v1%3A0/invoke-with-response-stream"


def build(console: bool, tokens: int) -> OutcropApp:
    settings = Settings.model_validate(
        {
            "engines": {"default": {"type": "scripted", "text": "tok " * tokens}},
            "console": {"enabled": console},
            "server": {"access_log": False},
        }
    )
    return OutcropApp(
        settings, engines={"default": build_engine("default", settings.engines["default"])}
    )


async def one(app: OutcropApp, body: bytes) -> tuple[float, int]:
    start = time.perf_counter()
    result = await call(app, "POST", PATH, body, [("content-type", "application/json")])
    assert result.status == 200, result.body[:200]
    return time.perf_counter() - start, len(result.chunks)


async def run(calls: int, rounds: int, tokens: int) -> dict[str, Any]:
    apps = {"on": build(True, tokens), "off": build(False, tokens)}
    body = json.dumps(
        {
            "anthropic_version": "bedrock-2023-05-31",
            "max_tokens": tokens + 10,
            "messages": [{"role": "user", "content": "go"}],
        }
    ).encode()
    times: dict[str, list[float]] = {"on": [], "off": []}
    frames = 0
    for name in apps:  # warm up
        await one(apps[name], body)
    for _ in range(rounds):
        for _ in range(calls):
            for name in ("on", "off"):
                elapsed, frames = await one(apps[name], body)
                times[name].append(elapsed)
    on, off = statistics.median(times["on"]), statistics.median(times["off"])
    ring = apps["on"].console.ring if apps["on"].console is not None else None
    return {
        "calls_each": calls * rounds,
        "frames_per_call": frames,
        "median_ms_console_on": round(on * 1000, 2),
        "median_ms_console_off": round(off * 1000, 2),
        "ratio_on_off": round(on / off, 3),
        "added_us_per_frame": round((on - off) * 1e6 / max(frames, 1), 2),
        "calls_recorded": len(ring) if ring is not None else 0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--calls", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--tokens", type=int, default=500)
    args = parser.parse_args()
    results = asyncio.run(run(args.calls, args.rounds, args.tokens))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "console_overhead.json").write_text(json.dumps(results, indent=2) + "\n")
    (RESULTS / "console_overhead.md").write_text(
        "# Recording calls for the console (bench/console_overhead.py)\n\n"
        f"In process, InvokeModelWithResponseStream of {results['frames_per_call']} frames, "
        f"scripted engine without delay, {results['calls_each']} calls each, alternating.\n\n"
        "| console | median per call |\n|---|---|\n"
        f"| on | {results['median_ms_console_on']} ms |\n"
        f"| off | {results['median_ms_console_off']} ms |\n\n"
        f"Ratio on/off {results['ratio_on_off']}; about {results['added_us_per_frame']} µs "
        "per frame.\n"
    )
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
