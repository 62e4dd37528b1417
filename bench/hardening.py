"""Benchmark of issue 13 item 7: memory and health under 2,000 streams and 2,000 stalled clients.

`outcrop serve` on the scripted engine with the default `[limits]`, one fresh server per
scenario, loaded from this process (asyncio, 127.0.0.1 only):

* `streams`: 2,000 concurrent InvokeModelWithResponseStream calls read to the end, half over
  HTTP/1.1 (aiohttp), half over h2c (python-h2, 125 streams per connection); lost or corrupted
  streams are counted.
* `zero_window`: 2,000 h2c streams whose client never opens its receive window (16
  connections), held until the server has ended them (`send_stall_timeout_s`, 60 s).
* `stalled`: 1,000 requests whose body stalls after 10 bytes and 1,000 whose header block
  never ends, held until the server has closed them all (`body_read_timeout_s` 30 s,
  `header_read_timeout_s` 10 s).

Throughout each scenario a separate process asks `GET /_outcrop/health` every 150 ms with a 1 s
timeout, and the server's resident memory is sampled every 100 ms (and its VmHWM read at the
end). Results: bench/results/hardening.json and .md.

Run: .venv/bin/python bench/hardening.py [--clients 2000] [--only streams,zero_window,stalled]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import platform
import resource
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import aiohttp

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from tests.reliability.clients import (  # noqa: E402
    FAST_MODEL,
    SLOW_MODEL,
    H2Client,
    claude_body,
    expected_echo,
    h1_stream,
    metric_sum,
    stalled_body,
    stalled_headers,
    stream_path,
    stream_text,
)
from tests.support.server import running_server  # noqa: E402

CONFIG = """
[engines.default]
type = "scripted"
delay_ms = 50

[engines.slow]
type = "scripted"
token_count = 300
delay_ms = 10

[[models]]
match = "anthropic.claude-3-sonnet*"
engine = "slow"

[[models]]
match = "*"
engine = "default"
"""
"""Default limits; FAST_MODEL echoes the prompt (about 15 tokens, 50 ms apart); SLOW_MODEL
would stream 300 tokens for 3 s (a zero-window client blocks it after a few). The scripted
engine plans its whole answer up front, so long answers cost memory and CPU at the start that
real engines do not spend: kept short here so that the figures are the server's."""

MIB = 1024 * 1024
PROBE_EVERY_S = 0.15
PROBE_TIMEOUT_S = 1.0
SAMPLE_EVERY_S = 0.1
H2_STREAMS_PER_CONNECTION = 125


def _probe(url: str, stop: Connection, results: Connection) -> None:
    """Health every PROBE_EVERY_S until told to stop; sends [(elapsed_s, latency_s | None)]."""
    started = time.monotonic()
    seen: list[tuple[float, float | None]] = []
    while not stop.poll(0):
        asked = time.monotonic()
        latency: float | None
        try:
            with urllib.request.urlopen(f"{url}/_outcrop/health", timeout=PROBE_TIMEOUT_S) as r:
                r.read()
            latency = time.monotonic() - asked
        except urllib.error.HTTPError:
            latency = time.monotonic() - asked
        except OSError:
            latency = None
        if latency is not None and latency > PROBE_TIMEOUT_S:
            latency = None
        seen.append((round(asked - started, 3), None if latency is None else round(latency, 4)))
        time.sleep(max(0.0, PROBE_EVERY_S - (time.monotonic() - asked)))
    results.send(seen)


def _rss(pid: int, field: str = "VmRSS") -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return 0


async def _measured(
    pid: int, url: str, load: Callable[[], Awaitable[dict[str, Any]]]
) -> dict[str, Any]:
    """Run `load` while probing health from another process and sampling the server's RSS."""
    stop_rx, stop_tx = multiprocessing.Pipe(duplex=False)
    results_rx, results_tx = multiprocessing.Pipe(duplex=False)
    prober = multiprocessing.Process(target=_probe, args=(url, stop_rx, results_tx))
    prober.start()
    rss_start = _rss(pid)
    samples: list[int] = []

    async def sample() -> None:
        while True:
            samples.append(_rss(pid))
            await asyncio.sleep(SAMPLE_EVERY_S)

    sampler = asyncio.create_task(sample())
    started = time.monotonic()
    try:
        outcome = await load()
    finally:
        sampler.cancel()
        stop_tx.send(True)
        probes: list[tuple[float, float | None]] = results_rx.recv()
        prober.join()
    answered = [p for p in probes if p[1] is not None]
    latencies = sorted(p[1] for p in answered if p[1] is not None)
    return {
        **outcome,
        "duration_s": round(time.monotonic() - started, 1),
        "rss_start_mib": round(rss_start / MIB, 1),
        "rss_peak_mib": round(max(samples, default=0) / MIB, 1),
        "vm_hwm_mib": round(_rss(pid, "VmHWM") / MIB, 1),
        "health_probes": len(probes),
        "health_answered_within_1s": len(answered),
        "health_always_answered_within_1s": len(answered) == len(probes),
        "health_latency_max_s": latencies[-1] if latencies else None,
        "health_latency_p50_s": latencies[len(latencies) // 2] if latencies else None,
        "health_missed_at_s": [p[0] for p in probes if p[1] is None][:50],
    }


async def _streams(url: str, port: int, clients: int) -> dict[str, Any]:
    h1_count = clients // 2
    h2_count = clients - h1_count
    prompts = [f"stream {i}: granite, basalt and {i * 7} grains of quartz" for i in range(clients)]
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=600)
    outcomes = {"ok": 0, "lost": 0, "corrupted": 0}

    def check(body: bytes, prompt: str) -> None:
        try:
            text, stopped = stream_text(body)
        except Exception:
            outcomes["corrupted"] += 1
            return
        outcomes["ok" if stopped and text == expected_echo(prompt) else "corrupted"] += 1

    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        connections = [
            await H2Client.open("127.0.0.1", port)
            for _ in range(-(-h2_count // H2_STREAMS_PER_CONNECTION))
        ]
        h2_streams = []
        for index, prompt in enumerate(prompts[h1_count:]):
            client = connections[index // H2_STREAMS_PER_CONNECTION]
            body = claude_body(prompt)
            h2_streams.append((client, await client.request("POST", stream_path(FAST_MODEL), body)))
        h1_results = await asyncio.gather(
            *(h1_stream(session, url, p) for p in prompts[:h1_count]), return_exceptions=True
        )
        for client in connections:
            await client.wait([s for c, s in h2_streams if c is client], 600)
        for result, prompt in zip(h1_results, prompts[:h1_count], strict=True):
            if isinstance(result, BaseException):
                outcomes["lost"] += 1
            else:
                check(result, prompt)
        for (client, stream_id), prompt in zip(h2_streams, prompts[h1_count:], strict=True):
            response = client.responses[stream_id]
            if not response.ended or response.status != 200:
                outcomes["lost"] += 1
            else:
                check(bytes(response.data), prompt)
        for client in connections:
            await client.close()
    return {"http1_streams": h1_count, "h2c_streams": h2_count, **outcomes}


async def _zero_window(url: str, port: int, clients: int) -> dict[str, Any]:
    connections = [
        await H2Client.open("127.0.0.1", port, window=0)
        for _ in range(-(-clients // H2_STREAMS_PER_CONNECTION))
    ]
    body = claude_body("never read")
    opened = 0
    for index in range(clients):
        client = connections[index // H2_STREAMS_PER_CONNECTION]
        await client.request("POST", stream_path(SLOW_MODEL), body)
        opened += 1
    peak_active = 0.0
    deadline = time.monotonic() + 180
    active = -1.0
    while time.monotonic() < deadline:
        try:
            active = await asyncio.to_thread(metric_sum, url, "outcrop_active_streams")
        except OSError:  # a slow scrape under this load: health probes record it
            continue
        peak_active = max(peak_active, active)
        if peak_active >= clients and active == 0:
            break
        await asyncio.sleep(1)
    ended_by_server = peak_active >= clients and active == 0
    for client in connections:
        await client.close()
    return {
        "h2c_streams": opened,
        "connections": len(connections),
        "peak_active_streams": peak_active,
        "all_ended_by_send_stall": ended_by_server,
    }


async def _stalled(url: str, port: int, clients: int) -> dict[str, Any]:
    bodies = [await stalled_body("127.0.0.1", port) for _ in range(clients // 2)]
    headers = [await stalled_headers("127.0.0.1", port) for _ in range(clients - clients // 2)]

    async def closed(reader: asyncio.StreamReader) -> bytes | None:
        try:
            async with asyncio.timeout(120):
                return await reader.read()
        except TimeoutError:
            return None
        except ConnectionError:
            return b""

    body_answers = await asyncio.gather(*(closed(r) for r, _ in bodies))
    header_answers = await asyncio.gather(*(closed(r) for r, _ in headers))
    for _, writer in bodies + headers:
        writer.close()
    return {
        "stalled_bodies": len(bodies),
        "stalled_bodies_answered_408": sum(
            1 for a in body_answers if a is not None and a.startswith(b"HTTP/1.1 408")
        ),
        "stalled_headers": len(headers),
        "stalled_headers_closed": sum(1 for a in header_answers if a is not None),
    }


SCENARIOS = {"streams": _streams, "zero_window": _zero_window, "stalled": _stalled}


async def _run(scenario: str, clients: int, config: Path) -> dict[str, Any]:
    with running_server(["--config", str(config)], ready_timeout=180) as server:
        load = SCENARIOS[scenario]
        return await _measured(
            server.proc.pid, server.url, lambda: load(server.url, server.port, clients)
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=2000)
    parser.add_argument("--only", default=",".join(SCENARIOS))
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = min(hard, max(soft, 4 * args.clients + 1024))
    resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    results: dict[str, Any] = {
        "machine": f"{platform.machine()}, {multiprocessing.cpu_count()} cores, "
        f"Python {platform.python_version()}",
        "clients": args.clients,
        "limits": "defaults (docs/limits.md)",
        "scenarios": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "outcrop.toml"
        config.write_text(CONFIG)
        for scenario in args.only.split(","):
            print(f"{scenario}: {args.clients} clients ...", flush=True)
            outcome = asyncio.run(_run(scenario, args.clients, config))
            results["scenarios"][scenario] = outcome
            print(json.dumps(outcome), flush=True)
    out = REPO / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    previous = out / "hardening.json"
    if previous.exists() and args.only != ",".join(SCENARIOS):
        # A partial run replaces only its scenarios.
        kept = json.loads(previous.read_text())["scenarios"]
        results["scenarios"] = {**kept, **results["scenarios"]}
    (out / "hardening.json").write_text(json.dumps(results, indent=2) + "\n")
    (out / "hardening.md").write_text(_markdown(results))


def _markdown(results: dict[str, Any]) -> str:
    lines = [
        "# Memory and health under load (`bench/hardening.py`)",
        "",
        f"{results['machine']}; {results['clients']} clients per scenario; "
        f"limits: {results['limits']}.",
        "",
        "| scenario | outcome | duration | server RSS start → peak | health within 1 s | "
        "slowest answer |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for name, r in results["scenarios"].items():
        if name == "streams":
            outcome = f"{r['ok']} whole, {r['lost']} lost, {r['corrupted']} corrupted"
        elif name == "zero_window":
            outcome = f"all ended by send stall: {r['all_ended_by_send_stall']}"
        else:
            outcome = (
                f"{r['stalled_bodies_answered_408']}/{r['stalled_bodies']} bodies 408, "
                f"{r['stalled_headers_closed']}/{r['stalled_headers']} header blocks closed"
            )
        lines.append(
            f"| {name} | {outcome} | {r['duration_s']} s | {r['rss_start_mib']} → "
            f"{r['rss_peak_mib']} MiB | {r['health_answered_within_1s']}/{r['health_probes']} | "
            f"{r['health_latency_max_s']} s |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
