"""A fleet on one Redis: requests/s and p99 latency of 1, 2 and 3 replicas with shared quotas on,
and the cost of the Redis round trips per request against a replica with no shared state.

One run starts a throwaway redis-server (tests/support/redis_server.py), three `outcrop serve`
replicas sharing it (`[shared] url`) and one more server with the same configuration but no
`[shared]` section (quotas and rules in process). Every server runs the scripted engine and the
same quotas, set far above the load so that nothing is refused: requests and tokens per minute
on every model (each call runs the admission and reservation scripts, which carry the
settlements of calls finished meanwhile; the fault and scripted-response registries read their
version once each). `--baseline-src` adds a shared replica running other sources (the code
before a change) to the same rounds. Client threads send InvokeModel
over keep-alive HTTP/1.1 connections, spread round-robin over the replicas of the configuration
measured: `local` (the unshared server), `shared x1`, `shared x2`, `shared x3`. Rounds alternate
the order of the configurations; per configuration the median requests/s over rounds and the
p50/p99 latency over all its requests are reported, with the ratio `shared x1 / local` (the
price of the Redis round trips) and its cost in microseconds per request.

On a 2-core machine shared with other work, adding replicas adds no cores: read the 2 and 3
replica figures as the cost of coordination, not as scaling.

Results: bench/results/fleet.json and .md.

Run: .venv/bin/python bench/fleet.py [--requests 1500] [--threads 6] [--rounds 3]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.redis_server import running_redis
from tests.support.server import running_server

RESULTS = Path(__file__).resolve().parent / "results"
BEFORE = "shared x1 (before)"
MODEL_PATH = "/model/anthropic.claude-3-haiku-20240307-v1%3A0/invoke"
BODY = json.dumps(
    {
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": 8,
        "messages": [{"role": "user", "content": "hello there"}],
    }
).encode()
HEADERS = {"Content-Type": "application/json", "Accept": "application/json"}

CONFIG = """
[server]
access_log = false

[engines.default]
type = "scripted"
text = "ok"

[[quotas]]
model = "*"
requests_per_minute = 1000000000
tokens_per_minute = 1000000000
"""
SHARED = """
[shared]
url = "{url}"
key_prefix = "bench{stamp}"
"""


def blast(urls: list[str], requests: int, threads: int) -> tuple[float, list[float]]:
    """(requests per second, latencies in seconds) for `requests` calls over `threads`
    keep-alive connections, thread i on replica i mod len(urls)."""
    per_thread = requests // threads
    latencies: list[list[float]] = [[] for _ in range(threads)]
    failures: list[str] = []

    def worker(n: int) -> None:
        parts = urlsplit(urls[n % len(urls)])
        conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=60)
        mine = latencies[n]
        for _ in range(per_thread):
            started = time.perf_counter()
            conn.request("POST", MODEL_PATH, body=BODY, headers=HEADERS)
            response = conn.getresponse()
            response.read()
            mine.append(time.perf_counter() - started)
            if response.status != 200:
                failures.append(f"{response.status} {response.getheader('X-Amzn-ErrorType')}")
        conn.close()

    workers = [threading.Thread(target=worker, args=(n,)) for n in range(threads)]
    started = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    elapsed = time.perf_counter() - started
    if failures:
        raise RuntimeError(f"{len(failures)} requests failed, e.g. {failures[0]}")
    return per_thread * threads / elapsed, [x for chunk in latencies for x in chunk]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1500)
    parser.add_argument("--threads", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--baseline-src",
        type=Path,
        help="also measure `shared x1 (before)`: one shared replica running the outcrop sources "
        "in this folder (e.g. `git archive COMMIT src | tar -x -C DIR`, then DIR/src), in the "
        "same rounds, for a before/after on the same load",
    )
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="outcrop-bench-fleet-"))
    names = ["local", "shared x1", "shared x2", "shared x3"]
    if args.baseline_src is not None:
        names.insert(2, BEFORE)
    rates: dict[str, list[float]] = {name: [] for name in names}
    latencies: dict[str, list[float]] = {name: [] for name in names}
    load: list[float] = []
    with running_redis() as redis, ExitStack() as stack:
        (folder / "local.toml").write_text(CONFIG)
        shared = CONFIG + SHARED.format(url=redis.url, stamp=int(time.time()))
        (folder / "shared.toml").write_text(shared)
        local = stack.enter_context(running_server(["--config", str(folder / "local.toml")]))
        replicas = [
            stack.enter_context(running_server(["--config", str(folder / "shared.toml")]))
            for _ in range(3)
        ]
        targets = {
            "local": [local.url],
            "shared x1": [replicas[0].url],
            "shared x2": [r.url for r in replicas[:2]],
            "shared x3": [r.url for r in replicas],
        }
        if args.baseline_src is not None:
            (folder / "before.toml").write_text(
                CONFIG + SHARED.format(url=redis.url, stamp=f"{int(time.time())}before")
            )
            before = stack.enter_context(
                running_server(
                    ["--config", str(folder / "before.toml")],
                    env={"PYTHONPATH": str(args.baseline_src.resolve())},
                )
            )
            targets[BEFORE] = [before.url]
        for urls in targets.values():  # warm-up: connections, scripts loaded, code paths hot
            blast(urls, args.threads * 30, args.threads)
        for round_number in range(args.rounds):
            order = names if round_number % 2 == 0 else names[::-1]
            for name in order:
                rps, lat = blast(targets[name], args.requests, args.threads)
                rates[name].append(rps)
                latencies[name] += lat
                print(f"round {round_number + 1} {name:10s} {rps:8.1f} req/s")
            load.append(os.getloadavg()[0])
    summary = {
        name: {
            "rps": rates[name],
            "rps_median": statistics.median(rates[name]),
            "p50_ms": percentile(latencies[name], 0.50) * 1000,
            "p99_ms": percentile(latencies[name], 0.99) * 1000,
        }
        for name in names
    }
    local_rps = statistics.median(rates["local"])
    one_rps = statistics.median(rates["shared x1"])
    # Side by side: the ratio within each round (the load moves between rounds).
    ratios = [one / loc for one, loc in zip(rates["shared x1"], rates["local"], strict=True)]
    result: dict[str, Any] = {
        "benchmark": "fleet",
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "load_average_per_round": load,
        },
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "configurations": summary,
        "shared_x1_over_local": one_rps / local_rps,
        "shared_x1_over_local_per_round": ratios,
        "shared_x1_over_local_median_of_rounds": statistics.median(ratios),
        "shared_cost_us_per_request": (1 / one_rps - 1 / local_rps) * 1e6,
    }
    before_line = ""
    if args.baseline_src is not None:
        before_rps = statistics.median(rates[BEFORE])
        before_ratios = [b / loc for b, loc in zip(rates[BEFORE], rates["local"], strict=True)]
        after_over_before = [a / b for a, b in zip(rates["shared x1"], rates[BEFORE], strict=True)]
        result["before_over_local_per_round"] = before_ratios
        result["before_over_local_median_of_rounds"] = statistics.median(before_ratios)
        result["after_over_before_per_round"] = after_over_before
        result["after_over_before_median_of_rounds"] = statistics.median(after_over_before)
        result["before_cost_us_per_request"] = (1 / before_rps - 1 / local_rps) * 1e6
        before_line = (
            f"\n{BEFORE} (the sources given by `--baseline-src`) / local, per round: "
            f"{', '.join(f'{r:.2f}' for r in before_ratios)} (median "
            f"{statistics.median(before_ratios):.2f}; "
            f"{result['before_cost_us_per_request']:.0f} µs more per request); shared x1 / "
            f"{BEFORE}, per round: {', '.join(f'{r:.2f}' for r in after_over_before)} "
            f"(median {statistics.median(after_over_before):.2f}).\n"
        )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "fleet.json").write_text(json.dumps(result, indent=2) + "\n")
    rows = "".join(
        f"| {name} | {statistics.median(rates[name]):.0f} | "
        f"{percentile(latencies[name], 0.5) * 1000:.2f} | "
        f"{percentile(latencies[name], 0.99) * 1000:.2f} | "
        + ", ".join(f"{r:.0f}" for r in rates[name])
        + " |\n"
        for name in names
    )
    (RESULTS / "fleet.md").write_text(
        "# A fleet on one Redis: replicas, shared quotas and the Redis round trip\n\n"
        f"{result['when']}, {result['machine']['platform']}, "
        f"{result['machine']['cpus']} CPUs (shared with other work; load average per round "
        + ", ".join(f"{x:.1f}" for x in load)
        + f"), Python {result['machine']['python']}.\n"
        f"`bench/fleet.py --requests {args.requests} --threads {args.threads} "
        f"--rounds {args.rounds}`; InvokeModel on the scripted engine, RPM and TPM quotas on "
        "every model (never reached), HTTP/1.1 keep-alive, client threads round-robin over the "
        "replicas, rounds alternating.\n\n"
        f"| configuration | req/s (median of {args.rounds}) | p50 ms | p99 ms | "
        "req/s per round |\n|---|---|---|---|---|\n"
        + rows
        + f"\nshared x1 / local, per round: {', '.join(f'{r:.2f}' for r in ratios)} "
        f"(median {statistics.median(ratios):.2f}); of the medians: {one_rps / local_rps:.3f} "
        f"({result['shared_cost_us_per_request']:.0f} µs more per request for the Redis "
        "round trips: quota admission and token reservation, each carrying the settlements "
        "of calls finished meanwhile; rule-version reads at most every 0.1 s). More "
        "replicas on this 2-core machine add processes, not cores.\n" + before_line
    )
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
