"""Replay throughput and timing fidelity of `outcrop serve --replay` (issue 16).

Throughput: the same request mix (ConverseStream and InvokeModelWithResponseStream, a few
distinct prompts each) at the same concurrency against two servers on the same harness: the
scripted engine with no delays (`--engine scripted`), and `outcrop serve --replay DIR
--replay-speed 0` answering from a cassette recorded beforehand through `outcrop serve --record`
from that same scripted server, so that both send the same events. Streams/s and events/s of
each, measured alternately for several rounds in one run, and their ratio (replay / scripted).

Each server's CPU time (from /proc) is read around each measurement too, so that the ratio of
streams per server CPU-second, which other work on a shared machine disturbs far less than
wall-clock throughput, comes with the wall-clock one.

Timing fidelity: one stream recorded from a scripted upstream with a delay between tokens; its
cassette's event times (`t`) against the times a client sees each event arrive when replayed
at `--replay-speed 1` and `10`: the gaps between consecutive events and the whole duration.

One aiohttp client (HTTP/1.1; frames decoded with botocore's EventStreamBuffer) for everything.
Results: bench/results/replay.json and replay.md.

Run: .venv/bin/python bench/replay.py [--tokens 200] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp
from botocore.eventstream import EventStreamBuffer

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from tests.support.server import running_server  # noqa: E402

from outcrop.recording.cassette import Cassette  # noqa: E402

MODEL = "anthropic.claude-3-haiku-20240307-v1%3A0"
MACHINE = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
HEADERS = {"content-type": "application/json", "x-amzn-bedrock-accept": "application/json"}
PROMPTS = ("benchmark one", "benchmark two", "benchmark three", "benchmark four")
# Recording re-signs with the credential chain; these keys only make the chain find some.
RECORDER_ENV = {"AWS_ACCESS_KEY_ID": "AKIAIOSFODNN7EXAMPLE", "AWS_SECRET_ACCESS_KEY": "bench"}


def request_mix() -> list[tuple[str, bytes]]:
    """(path, body) of every request of the mix: each prompt through both stream operations."""
    mix = []
    for prompt in PROMPTS:
        converse = {"messages": [{"role": "user", "content": [{"text": prompt}]}]}
        claude = {
            "anthropic_version": "bedrock-2023-05-31",
            "max_tokens": 100000,
            "messages": [{"role": "user", "content": prompt}],
        }
        mix.append((f"/model/{MODEL}/converse-stream", json.dumps(converse).encode()))
        mix.append((f"/model/{MODEL}/invoke-with-response-stream", json.dumps(claude).encode()))
    return mix


async def one_stream(
    session: aiohttp.ClientSession, url: str, body: bytes, times: list[float] | None = None
) -> int:
    buffer = EventStreamBuffer()
    count = 0
    sent = time.perf_counter()
    async with session.post(url, data=body, headers=HEADERS) as response:
        assert response.status == 200, await response.text()
        async for chunk in response.content.iter_any():
            buffer.add_data(chunk)
            for _ in buffer:
                count += 1
                if times is not None:
                    times.append(time.perf_counter() - sent)
    return count


async def measure(base: str, concurrency: int, repeats: int) -> dict[str, float]:
    """Every worker sends the whole mix `repeats` times, `concurrency` workers at once."""
    mix = request_mix()
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        await one_stream(session, base + mix[0][0], mix[0][1])  # warm-up

        async def worker(offset: int) -> tuple[int, int]:
            streams = events = 0
            for i in range(repeats * len(mix)):
                path, body = mix[(i + offset) % len(mix)]
                events += await one_stream(session, base + path, body)
                streams += 1
            return streams, events

        started = time.perf_counter()
        done = await asyncio.gather(*(worker(n) for n in range(concurrency)))
        elapsed = time.perf_counter() - started
    streams = sum(s for s, _ in done)
    events = sum(e for _, e in done)
    return {
        "streams": float(streams),
        "events": float(events),
        "seconds": elapsed,
        "streams_per_s": streams / elapsed,
        "events_per_s": events / elapsed,
    }


_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a server process (all its threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def measure_server(pid: int, base: str, concurrency: int, repeats: int) -> dict[str, float]:
    """`measure`, plus the CPU time the server spent: streams per server CPU-second moves far
    less with other work on a shared machine than streams per wall-clock second does."""
    before = cpu_seconds(pid)
    result = asyncio.run(measure(base, concurrency, repeats))
    cpu = cpu_seconds(pid) - before
    result["server_cpu_s"] = cpu
    result["streams_per_cpu_s"] = result["streams"] / cpu if cpu else float("nan")
    result["events_per_cpu_s"] = result["events"] / cpu if cpu else float("nan")
    return result


def select(base: str, cassette: str, mode: str) -> None:
    body = json.dumps({"cassette": cassette, "mode": mode}).encode()
    request = urllib.request.Request(f"{base}/_outcrop/recording", data=body, method="PUT")
    request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=30) as reply:
        assert reply.status == 200


async def record_mix(base: str) -> None:
    async with aiohttp.ClientSession() as session:
        for path, body in request_mix():
            await one_stream(session, base + path, body)


async def timed_stream(base: str, path: str, body: bytes) -> list[float]:
    times: list[float] = []
    async with aiohttp.ClientSession() as session:
        await one_stream(session, base + path, body, times)
    return times


def gaps(times: Sequence[float]) -> list[float]:
    return [b - a for a, b in itertools.pairwise(times)]


def fidelity(recorded: Sequence[float], seen: Sequence[float], speed: float) -> dict[str, float]:
    """How the client-seen arrival times of a replay compare with the cassette's `t` / speed."""
    expected = [t / speed for t in recorded]
    errors = [abs(a - b) for a, b in zip(gaps(seen), gaps(expected), strict=True)]
    span_expected = expected[-1] - expected[0]
    span_seen = seen[-1] - seen[0]
    return {
        "events": float(len(seen)),
        "expected_span_s": span_expected,
        "seen_span_s": span_seen,
        "span_ratio": span_seen / span_expected if span_expected else float("nan"),
        "gap_abs_error_median_ms": statistics.median(errors) * 1000,
        "gap_abs_error_p90_ms": sorted(errors)[int(0.9 * (len(errors) - 1))] * 1000,
        "first_event_s": seen[0],
        "first_event_expected_s": expected[0],
    }


def recorder_args(cassettes: Path, upstream: str) -> list[str]:
    return [
        *("--engine", "scripted", "--quiet", "--record", str(cassettes)),
        *("--record-upstream", upstream, "--record-mode", "all"),
    ]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tokens", type=int, default=200, help="tokens per scripted answer")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--delay-ms", type=float, default=20.0, help="timing run: token delay")
    parser.add_argument("--timing-tokens", type=int, default=40)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-replay-"))
    config = tmp / "scripted.toml"
    config.write_text(f'[engines.default]\ntype = "scripted"\ntoken_count = {args.tokens}\n')
    slow = tmp / "slow.toml"
    slow.write_text(
        f'[engines.default]\ntype = "scripted"\ntoken_count = {args.timing_tokens}\n'
        f"delay_ms = {args.delay_ms}\n"
    )
    cassettes = tmp / "cassettes"
    results: dict[str, Any] = {
        "benchmark": "outcrop serve --replay (speed 0) vs the scripted engine (no delay), "
        "same request mix and concurrency; timing fidelity at speed 1 and 10",
        "machine": MACHINE,
        "tokens_per_answer": args.tokens,
        "request_mix": [path.split("/")[-1] for path, _ in request_mix()],
        "client": "aiohttp HTTP/1.1, botocore EventStreamBuffer decoding",
        "rounds": [],
    }
    scripted_args = ["--config", str(config), "--quiet"]
    with running_server(scripted_args) as scripted:
        # Record the mix from the scripted server, so that replay sends the same events.
        with running_server(recorder_args(cassettes, scripted.url), env=RECORDER_ENV) as recorder:
            select(recorder.url, "mix", "all")
            asyncio.run(record_mix(recorder.url))
        recorded = Cassette.load(cassettes / "mix.json")
        results["interactions_recorded"] = len(recorded.interactions)
        results["events_per_stream"] = [len(i.response.events or ()) for i in recorded.interactions]
        replay_args = ["--engine", "scripted", "--quiet", "--replay", str(cassettes)]
        with running_server([*replay_args, "--replay-speed", "0"]) as replay:
            select(replay.url, "mix", "none")
            for _ in range(args.rounds):
                round_: dict[str, Any] = {}
                for concurrency, repeats in ((1, 3), (16, 1)):
                    s = measure_server(scripted.proc.pid, scripted.url, concurrency, repeats)
                    r = measure_server(replay.proc.pid, replay.url, concurrency, repeats)
                    round_[f"c{concurrency}"] = {
                        "scripted": s,
                        "replay": r,
                        "ratio_streams": r["streams_per_s"] / s["streams_per_s"],
                        "ratio_events": r["events_per_s"] / s["events_per_s"],
                        "ratio_per_cpu": r["streams_per_cpu_s"] / s["streams_per_cpu_s"],
                    }
                results["rounds"].append(round_)

    # Timing fidelity: record one stream with delays between tokens, replay at 1 and 10.
    path, body = request_mix()[0]
    timing: dict[str, Any] = {"delay_ms": args.delay_ms, "tokens": args.timing_tokens}
    with (
        running_server(["--config", str(slow), "--quiet"]) as upstream,
        running_server(recorder_args(cassettes, upstream.url), env=RECORDER_ENV) as recorder,
    ):
        select(recorder.url, "timing", "all")
        timing["client_seen_while_recording"] = asyncio.run(timed_stream(recorder.url, path, body))
    stream = Cassette.load(cassettes / "timing.json").interactions[0].response.events or ()
    recorded_t = [event.t for event in stream]
    timing["recorded_t"] = recorded_t
    for speed in (1, 10):
        with running_server([*replay_args, "--replay-speed", str(speed)]) as replay:
            select(replay.url, "timing", "none")
            runs = [asyncio.run(timed_stream(replay.url, path, body)) for _ in range(3)]
        timing[f"speed_{speed}"] = [fidelity(recorded_t, seen, speed) for seen in runs]
    results["timing"] = timing
    write(results, args)


def write(results: dict[str, Any], args: argparse.Namespace) -> None:
    summary: dict[str, Any] = {}
    for key in ("c1", "c16"):
        rounds = [r[key] for r in results["rounds"]]
        summary[key] = {
            name: statistics.median(r[side][metric] for r in rounds)
            for name, side, metric in (
                ("scripted_streams_per_s", "scripted", "streams_per_s"),
                ("replay_streams_per_s", "replay", "streams_per_s"),
                ("scripted_events_per_s", "scripted", "events_per_s"),
                ("replay_events_per_s", "replay", "events_per_s"),
            )
        }
        summary[key]["ratio_streams_median"] = statistics.median(r["ratio_streams"] for r in rounds)
        summary[key]["ratio_events_median"] = statistics.median(r["ratio_events"] for r in rounds)
        summary[key]["ratio_per_cpu_median"] = statistics.median(r["ratio_per_cpu"] for r in rounds)
        summary[key]["ratio_streams_range"] = [
            min(r["ratio_streams"] for r in rounds),
            max(r["ratio_streams"] for r in rounds),
        ]
        for side in ("scripted", "replay"):
            summary[key][f"{side}_streams_per_cpu_s"] = statistics.median(
                r[side]["streams_per_cpu_s"] for r in rounds
            )
    results["summary"] = summary
    out = REPO / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "replay.json").write_text(json.dumps(results, indent=2) + "\n")
    timing = results["timing"]
    lines = [
        "# Replay: `outcrop serve --replay` vs the scripted engine, and timing fidelity",
        "",
        "Command: `.venv/bin/python bench/replay.py "
        f"--tokens {args.tokens} --rounds {args.rounds} --delay-ms {args.delay_ms:g} "
        f"--timing-tokens {args.timing_tokens}`",
        f"Machine: {results['machine']}. Request mix: {len(results['request_mix'])} requests "
        f"(ConverseStream and InvokeModelWithResponseStream, {len(PROMPTS)} prompts), "
        f"events per stream {sorted(set(results['events_per_stream']))}; replay at speed 0 "
        "from a cassette recorded through `outcrop serve --record` from the scripted server. "
        f"Medians of {args.rounds} rounds, the two servers measured alternately. Ratios are "
        "replay / scripted; the wall-clock ones move with the other work on the machine (the "
        "range over rounds is shown), the ratio of streams per server CPU-second far less.",
        "",
        "| concurrency | scripted streams/s | replay streams/s | ratio (range) | "
        "scripted events/s | replay events/s | ratio | streams per server CPU-s: scripted "
        "/ replay | ratio |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for key, label in (("c1", "1"), ("c16", "16")):
        s = summary[key]
        low, high = s["ratio_streams_range"]
        lines.append(
            f"| {label} | {s['scripted_streams_per_s']:.1f} | {s['replay_streams_per_s']:.1f} "
            f"| {s['ratio_streams_median']:.2f} ({low:.2f}-{high:.2f}) "
            f"| {s['scripted_events_per_s']:.0f} "
            f"| {s['replay_events_per_s']:.0f} | {s['ratio_events_median']:.2f} "
            f"| {s['scripted_streams_per_cpu_s']:.1f} / {s['replay_streams_per_cpu_s']:.1f} "
            f"| {s['ratio_per_cpu_median']:.2f} |"
        )
    recorded_t = timing["recorded_t"]
    lines += [
        "",
        f"## Timing fidelity ({len(recorded_t)} events recorded from a scripted upstream with "
        f"{args.delay_ms:g} ms between tokens; recorded span "
        f"{recorded_t[-1] - recorded_t[0]:.3f} s)",
        "",
        "Per replay (3 at each speed): the span from first to last event as the client saw it "
        "against the recorded span / speed, and the error of each gap between consecutive "
        "events against the recorded gap / speed.",
        "",
        "| speed | span seen / expected | gap error median (ms) | gap error p90 (ms) |",
        "|---|---|---|---|",
    ]
    for speed in (1, 10):
        for run in timing[f"speed_{speed}"]:
            lines.append(
                f"| {speed} | {run['seen_span_s']:.3f} / {run['expected_span_s']:.3f} s "
                f"({run['span_ratio']:.3f}) | {run['gap_abs_error_median_ms']:.2f} "
                f"| {run['gap_abs_error_p90_ms']:.2f} |"
            )
    (out / "replay.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
