"""Benchmark of issue 5: forwarding SageMaker invocations to a real container.

The test container (`tests/support/sagemaker_container.py`) runs as one process and
`outcrop serve` as another, with endpoints forwarding to it. One client process (aiohttp,
HTTP/1.1) measures, alternately and side by side in one run:

* streamed throughput: the container writes N chunks of S bytes as fast as it can
  (`/bulk`); the client reads them directly from the container's `POST /invocations`, or
  through Outcrop's InvokeEndpointWithResponseStream, decoding the event stream with
  botocore's `EventStreamBuffer` and counting PayloadParts. Reported: container chunks/s
  and MB/s, 1 stream and 16 concurrent streams, and their ratio (through Outcrop / direct).
* added latency: a small non-streamed request (`/` echo, ~40 bytes), sequentially, directly
  vs through InvokeEndpoint; median and p90, their difference (what forwarding adds) and ratio.
* time to first byte of a stream, directly vs through Outcrop.

Results: bench/results/sagemaker_forwarding.json and .md.

Run: .venv/bin/python bench/sagemaker_forwarding.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from botocore.eventstream import EventStreamBuffer

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from tests.support.sagemaker_container import running_container  # noqa: E402
from tests.support.server import running_server  # noqa: E402

SMALL = json.dumps({"inputs": "benchmark"}).encode()
JSON = {"Content-Type": "application/json"}


def config(container_url: str) -> str:
    return (
        '[engines.default]\ntype = "scripted"\n\n'
        "[[sagemaker.endpoints.bulk.variants]]\n"
        f'url = "{container_url}/bulk"\n'
        "max_concurrent_invocations_per_instance = 64\n\n"
        "[[sagemaker.endpoints.echo.variants]]\n"
        f'url = "{container_url}"\n'
        "max_concurrent_invocations_per_instance = 64\n"
    )


async def direct_stream(session: aiohttp.ClientSession, url: str, body: bytes) -> tuple[int, float]:
    """Bytes read and seconds to the first byte, reading the container's body directly."""
    started = time.perf_counter()
    first = 0.0
    size = 0
    async with session.post(url, data=body, headers=JSON) as response:
        assert response.status == 200, await response.text()
        async for data in response.content.iter_any():
            if not size:
                first = time.perf_counter() - started
            size += len(data)
    return size, first


async def outcrop_stream(
    session: aiohttp.ClientSession, url: str, body: bytes
) -> tuple[int, float]:
    """Payload bytes carried by PayloadParts and seconds to the first part, through Outcrop."""
    started = time.perf_counter()
    first = 0.0
    size = 0
    buffer = EventStreamBuffer()
    async with session.post(url, data=body, headers=JSON) as response:
        assert response.status == 200, await response.text()
        async for data in response.content.iter_any():
            buffer.add_data(data)
            for message in buffer:
                assert message.headers[":event-type"] == "PayloadPart", message.headers
                if not size:
                    first = time.perf_counter() - started
                size += len(message.payload)
    return size, first


async def throughput(
    url: str, outcrop: bool, body: bytes, concurrency: int, repeats: int
) -> dict[str, float]:
    reader = outcrop_stream if outcrop else direct_stream
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        await reader(session, url, body)  # warm-up
        started = time.perf_counter()
        results: list[tuple[int, float]] = []
        for _ in range(repeats):
            results += await asyncio.gather(
                *(reader(session, url, body) for _ in range(concurrency))
            )
        elapsed = time.perf_counter() - started
    size = sum(r[0] for r in results)
    return {
        "bytes": float(size),
        "seconds": elapsed,
        "mb_per_s": size / elapsed / 1e6,
        "ttfb_ms_median": statistics.median(r[1] for r in results) * 1000,
    }


async def latency(url: str, count: int) -> dict[str, float]:
    async with aiohttp.ClientSession() as session:
        for _ in range(20):  # warm-up
            async with session.post(url, data=SMALL, headers=JSON) as response:
                await response.read()
        samples = []
        for _ in range(count):
            started = time.perf_counter()
            async with session.post(url, data=SMALL, headers=JSON) as response:
                await response.read()
                assert response.status == 200
            samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    return {
        "median_ms": statistics.median(samples),
        "p90_ms": samples[int(0.9 * len(samples)) - 1],
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--latency-requests", type=int, default=300)
    args = parser.parse_args()
    shapes = {
        "small_chunks": {"size": 64, "chunks": 4000},
        "large_chunks": {"size": 16384, "chunks": 400},
    }
    results: dict[str, Any] = {
        "benchmark": "SageMaker forwarding to a container: direct vs through Outcrop",
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}",
        "client": "aiohttp HTTP/1.1; Outcrop's stream decoded with botocore EventStreamBuffer",
        "container": "tests/support/sagemaker_container.py (aiohttp.web), one process",
        "shapes": shapes,
        "rounds": [],
    }
    tmp = Path(tempfile.mkdtemp())
    with running_container() as container:
        cfg = tmp / "bench.toml"
        cfg.write_text(config(container.url()))
        with running_server(["--config", str(cfg)]) as outcrop:
            direct_bulk = container.url("bulk") + "/invocations"
            via_bulk = f"{outcrop.url}/endpoints/bulk/invocations-response-stream"
            direct_echo = container.url() + "/invocations"
            via_echo = f"{outcrop.url}/endpoints/echo/invocations"
            for _ in range(args.rounds):
                round_: dict[str, Any] = {}
                for name, shape in shapes.items():
                    body = json.dumps({**shape, "stream": True}).encode()
                    for concurrency, repeats in ((1, 3), (16, 1)):
                        d = asyncio.run(throughput(direct_bulk, False, body, concurrency, repeats))
                        o = asyncio.run(throughput(via_bulk, True, body, concurrency, repeats))
                        assert d["bytes"] == o["bytes"]
                        round_[f"{name}_c{concurrency}"] = {
                            "direct": d,
                            "outcrop": o,
                            "throughput_ratio": o["mb_per_s"] / d["mb_per_s"],
                        }
                d_lat = asyncio.run(latency(direct_echo, args.latency_requests))
                o_lat = asyncio.run(latency(via_echo, args.latency_requests))
                round_["latency"] = {
                    "direct": d_lat,
                    "outcrop": o_lat,
                    "added_median_ms": o_lat["median_ms"] - d_lat["median_ms"],
                    "ratio_median": o_lat["median_ms"] / d_lat["median_ms"],
                }
                results["rounds"].append(round_)
    rounds = results["rounds"]
    summary: dict[str, Any] = {}
    for key in rounds[0]:
        if key == "latency":
            continue
        chunks = shapes[key.rsplit("_c", 1)[0]]["chunks"]
        summary[key] = {
            "direct_mb_per_s": statistics.median(r[key]["direct"]["mb_per_s"] for r in rounds),
            "outcrop_mb_per_s": statistics.median(r[key]["outcrop"]["mb_per_s"] for r in rounds),
            "ratio_median": statistics.median(r[key]["throughput_ratio"] for r in rounds),
            "direct_ttfb_ms": statistics.median(r[key]["direct"]["ttfb_ms_median"] for r in rounds),
            "outcrop_ttfb_ms": statistics.median(
                r[key]["outcrop"]["ttfb_ms_median"] for r in rounds
            ),
            "container_chunks_per_stream": chunks,
        }
    summary["latency"] = {
        "direct_median_ms": statistics.median(r["latency"]["direct"]["median_ms"] for r in rounds),
        "outcrop_median_ms": statistics.median(
            r["latency"]["outcrop"]["median_ms"] for r in rounds
        ),
        "direct_p90_ms": statistics.median(r["latency"]["direct"]["p90_ms"] for r in rounds),
        "outcrop_p90_ms": statistics.median(r["latency"]["outcrop"]["p90_ms"] for r in rounds),
        "added_median_ms": statistics.median(r["latency"]["added_median_ms"] for r in rounds),
        "ratio_median": statistics.median(r["latency"]["ratio_median"] for r in rounds),
    }
    results["summary"] = summary
    out = REPO / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "sagemaker_forwarding.json").write_text(json.dumps(results, indent=2) + "\n")
    lines = [
        "# SageMaker forwarding: a container directly vs through Outcrop",
        "",
        f"Command: `.venv/bin/python bench/sagemaker_forwarding.py --rounds {args.rounds} "
        f"--latency-requests {args.latency_requests}`",
        f"Machine: {results['machine']}. Medians over {args.rounds} alternating rounds.",
        "",
        "Streamed throughput (InvokeEndpointWithResponseStream; the container writes as fast "
        "as it can):",
        "",
        "| chunks x bytes | streams | direct MB/s | through Outcrop MB/s | ratio "
        "| direct TTFB ms | Outcrop TTFB ms |",
        "|---|---|---|---|---|---|---|",
    ]
    for key, s in summary.items():
        if key == "latency":
            continue
        shape = shapes[key.rsplit("_c", 1)[0]]
        streams = key.rsplit("_c", 1)[1]
        lines.append(
            f"| {shape['chunks']} x {shape['size']} | {streams} | {s['direct_mb_per_s']:.1f} "
            f"| {s['outcrop_mb_per_s']:.1f} | {s['ratio_median']:.2f} "
            f"| {s['direct_ttfb_ms']:.2f} | {s['outcrop_ttfb_ms']:.2f} |"
        )
    lat = summary["latency"]
    lines += [
        "",
        "Latency of a small non-streamed request (InvokeEndpoint, sequential):",
        "",
        "| | median ms | p90 ms |",
        "|---|---|---|",
        f"| direct | {lat['direct_median_ms']:.2f} | {lat['direct_p90_ms']:.2f} |",
        f"| through Outcrop | {lat['outcrop_median_ms']:.2f} | {lat['outcrop_p90_ms']:.2f} |",
        "",
        f"Added by forwarding: {lat['added_median_ms']:.2f} ms at the median "
        f"(ratio {lat['ratio_median']:.2f}).",
    ]
    (out / "sagemaker_forwarding.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
