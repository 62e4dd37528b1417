"""Benchmark (a) of issue 2: events per second through Outcrop vs a minimal raw ASGI app.

Both servers run as processes on the same Granian runner (outcrop.server); Outcrop serves
InvokeModelWithResponseStream on the scripted engine with no delay, the raw app replays the
very frames Outcrop produced. One client process (aiohttp, HTTP/1.1, frames decoded with
botocore's EventStreamBuffer on both sides) measures events/s for 1 stream and for 32
concurrent streams; the two servers are measured alternately, several rounds, in one run.
Results: bench/results/stream_throughput.json and .md.

Run: .venv/bin/python bench/stream_throughput.py [--tokens 2000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from botocore.eventstream import EventStreamBuffer

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from tests.support.server import free_port, running_server  # noqa: E402

MODEL = "anthropic.claude-3-haiku-20240307-v1%3A0"
BODY = json.dumps(
    {
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": 100000,
        "messages": [{"role": "user", "content": "benchmark"}],
    }
).encode()
MACHINE = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
HEADERS = {"content-type": "application/json", "x-amzn-bedrock-accept": "application/json"}


async def one_stream(session: aiohttp.ClientSession, url: str) -> int:
    buf = EventStreamBuffer()
    count = 0
    async with session.post(url, data=BODY, headers=HEADERS) as response:
        assert response.status == 200, await response.text()
        async for chunk in response.content.iter_any():
            buf.add_data(chunk)
            for _ in buf:
                count += 1
    return count


async def measure(url: str, concurrency: int, repeats: int) -> dict[str, float]:
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        await one_stream(session, url)  # warm-up
        started = time.perf_counter()
        totals = []
        for _ in range(repeats):
            totals += await asyncio.gather(*(one_stream(session, url) for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return {"events": float(sum(totals)), "seconds": elapsed, "events_per_s": sum(totals) / elapsed}


async def record_frames(url: str) -> tuple[bytes, int]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, data=BODY, headers=HEADERS) as r,
    ):
        data = await r.read()
    buf = EventStreamBuffer()
    buf.add_data(data)
    out = bytearray()
    frames = 0
    offset = 0
    for _ in buf:
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        out += data[offset : offset + length]
        offset += length
        frames += 1
    return bytes(out), frames


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tokens", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp())
    config = tmp / "bench.toml"
    config.write_text(f'[engines.default]\ntype = "scripted"\ntoken_count = {args.tokens}\n')
    results: dict[str, Any] = {
        "benchmark": "events per second, InvokeModelWithResponseStream, scripted engine, no delay",
        "tokens_per_stream": args.tokens,
        "machine": MACHINE,
        "client": "aiohttp HTTP/1.1, botocore EventStreamBuffer decoding",
        "rounds": [],
    }
    with running_server(["--config", str(config)]) as outcrop:
        url = f"{outcrop.url}/model/{MODEL}/invoke-with-response-stream"
        frames_file = tmp / "frames.bin"
        recorded, n_frames = asyncio.run(record_frames(url))
        frames_file.write_bytes(recorded)
        results["events_per_stream"] = n_frames
        raw_port = free_port()
        raw = subprocess.Popen(
            [
                sys.executable,
                str(REPO / "bench" / "raw_asgi_app.py"),
                str(frames_file),
                str(raw_port),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert raw.stdout is not None
            raw.stdout.readline()
            raw_url = f"http://127.0.0.1:{raw_port}/model/{MODEL}/invoke-with-response-stream"
            for _ in range(args.rounds):
                round_: dict[str, Any] = {}
                for concurrency, repeats in ((1, 5), (32, 1)):
                    o = asyncio.run(measure(url, concurrency, repeats))
                    r = asyncio.run(measure(raw_url, concurrency, repeats))
                    round_[f"c{concurrency}"] = {
                        "outcrop": o,
                        "raw": r,
                        "ratio": o["events_per_s"] / r["events_per_s"],
                    }
                results["rounds"].append(round_)
        finally:
            raw.terminate()
            raw.wait()
    summary = {}
    for key in ("c1", "c32"):
        ratios = [r[key]["ratio"] for r in results["rounds"]]
        summary[key] = {
            "outcrop_events_per_s": statistics.median(
                r[key]["outcrop"]["events_per_s"] for r in results["rounds"]
            ),
            "raw_events_per_s": statistics.median(
                r[key]["raw"]["events_per_s"] for r in results["rounds"]
            ),
            "ratio_median": statistics.median(ratios),
        }
    results["summary"] = summary
    out = REPO / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "stream_throughput.json").write_text(json.dumps(results, indent=2) + "\n")
    lines = [
        "# Stream throughput: Outcrop vs a raw ASGI app (same runner, same frames)",
        "",
        "Command: `.venv/bin/python bench/stream_throughput.py "
        f"--tokens {args.tokens} --rounds {args.rounds}`",
        f"Machine: {results['machine']}. Events per stream: {n_frames}.",
        "",
        "| streams | Outcrop events/s | raw ASGI events/s | ratio |",
        "|---|---|---|---|",
    ]
    for key, label in (("c1", "1"), ("c32", "32 concurrent")):
        s = summary[key]
        lines.append(
            f"| {label} | {s['outcrop_events_per_s']:.0f} | {s['raw_events_per_s']:.0f} "
            f"| {s['ratio_median']:.2f} |"
        )
    (out / "stream_throughput.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
