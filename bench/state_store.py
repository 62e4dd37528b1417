"""Benchmark: what the durable state store costs a guarded call, SQLite against PostgreSQL.

1. Through the server. `outcrop serve` (scripted engine, no delay) on the default SQLite store,
   then on a throwaway PostgreSQL (tests/support/postgres_server.py), each with a guardrail made
   through CreateGuardrail (one denied word). Converse without a guardrail and Converse naming
   it alternate request by request over one boto3 client; the guarded call pays the freshness
   check (one read of the guardrail generation) and the word check. Reported: median latency
   per variant and the difference.
2. In process: `GuardrailStore.refresh()` alone, one at a time (µs per call: one generation
   read, nothing changed) and 100 at once (how many reads the shared checks make, and the
   time per call).

Results: bench/results/state_store.json and .md.
Run: .venv/bin/python bench/state_store.py [--requests 200]
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
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "src"))
from tests.support.postgres_server import postgres_server  # noqa: E402
from tests.support.server import ServerProcess, running_server  # noqa: E402

from outcrop.guardrails.store import GuardrailStore  # noqa: E402
from outcrop.state.postgres import PostgresStore  # noqa: E402
from outcrop.state.sqlite import SQLiteStore  # noqa: E402
from outcrop.state.store import Document, StateStore  # noqa: E402

MODEL = "anthropic.claude-3-haiku-20240307-v1:0"
MACHINE = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
SPEC = {
    "name": "bench",
    "blockedInputMessaging": "Blocked.",
    "blockedOutputsMessaging": "Blocked.",
    "wordPolicyConfig": {"wordsConfig": [{"text": "pineapple"}]},
}


@contextmanager
def server(tmp: Path, url: str | None) -> Iterator[ServerProcess]:
    lines = ["[engines.default]", 'type = "scripted"', "[guardrails]"]
    lines.append(f"state_dir = {json.dumps(str(tmp / 'state'))}")
    if url is not None:
        lines += ["[state]", f"url = {json.dumps(url)}"]
    config = tmp / "outcrop.toml"
    tmp.mkdir(parents=True, exist_ok=True)
    config.write_text("\n".join(lines) + "\n")
    with running_server(["--config", str(config)]) as process:
        yield process


def through_server(process: ServerProcess, requests: int) -> dict[str, float]:
    env = {"aws_access_key_id": "x", "aws_secret_access_key": "y", "region_name": "us-east-1"}
    control = boto3.client("bedrock", endpoint_url=process.url, **env)
    runtime = boto3.client("bedrock-runtime", endpoint_url=process.url, **env)
    gid = control.create_guardrail(**SPEC)["guardrailId"]
    messages = [{"role": "user", "content": [{"text": "Tell me about mangoes."}]}]
    config = {"guardrailIdentifier": gid, "guardrailVersion": "DRAFT"}
    times: dict[str, list[float]] = {"plain": [], "guarded": []}
    for index in range(requests * 2 + 20):
        variant = "guarded" if index % 2 else "plain"
        extra: dict[str, Any] = {"guardrailConfig": config} if variant == "guarded" else {}
        started = time.perf_counter()
        runtime.converse(modelId=MODEL, messages=messages, **extra)
        if index >= 20:  # warm-up
            times[variant].append((time.perf_counter() - started) * 1000)
    plain, guarded = statistics.median(times["plain"]), statistics.median(times["guarded"])
    return {"plain_ms": plain, "guarded_ms": guarded, "added_ms": guarded - plain}


class Counted:
    """Counts the generation reads a store answers."""

    def __init__(self, inner: StateStore) -> None:
        self.inner = inner
        self.reads = 0

    async def generation(self, kind: str) -> int:
        self.reads += 1
        return await self.inner.generation(kind)

    async def list(self, kind: str) -> list[Document]:
        return await self.inner.list(kind)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


async def in_process(documents: StateStore, calls: int) -> dict[str, float]:
    counted = Counted(documents)
    store = GuardrailStore(counted, "123456789012")
    await store.create(SPEC, "us-east-1")
    await store.refresh()
    started = time.perf_counter()
    for _ in range(calls):
        await store.refresh()
    sequential_us = (time.perf_counter() - started) / calls * 1e6
    counted.reads = 0
    started = time.perf_counter()
    await asyncio.gather(*(store.refresh() for _ in range(100)))
    concurrent_us = (time.perf_counter() - started) / 100 * 1e6
    await documents.close()
    return {
        "sequential_us_per_call": sequential_us,
        "concurrent_100_us_per_call": concurrent_us,
        "concurrent_100_reads": counted.reads,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    results: dict[str, Any] = {"machine": MACHINE, "requests": args.requests}
    with tempfile.TemporaryDirectory() as tmp, postgres_server() as pg:
        url = pg.create_database("bench")
        for name, target in (("sqlite", None), ("postgresql", url)):
            with server(Path(tmp) / name, target) as process:
                results[f"server_{name}"] = through_server(process, args.requests)
        memory = asyncio.run(in_process(SQLiteStore(Path(tmp) / "bench.sqlite3"), 2000))
        results["refresh_sqlite"] = memory
        results["refresh_postgresql"] = asyncio.run(
            in_process(PostgresStore(pg.create_database("bench2")), 2000)
        )
    results["load_average"] = list(os.getloadavg())
    out = REPO / "bench" / "results"
    (out / "state_store.json").write_text(json.dumps(results, indent=1) + "\n")
    (out / "state_store.md").write_text(report(results))
    print(report(results))


def report(r: dict[str, Any]) -> str:
    rows = [
        "# State store: what a guarded call pays",
        "",
        f"Machine: {r['machine']}, load average {[round(x, 2) for x in r['load_average']]} at "
        "the end (a shared machine: absolute numbers move with its load; variants alternate "
        f"request by request, so differences are comparable). `python bench/state_store.py "
        f"--requests {r['requests']}`.",
        "",
        "## Through the server: Converse, medians over boto3",
        "",
        "| store | no guardrail ms | with guardrail ms | added ms |",
        "|---|---|---|---|",
    ]
    for name in ("sqlite", "postgresql"):
        s = r[f"server_{name}"]
        rows.append(
            f"| {name} | {s['plain_ms']:.3f} | {s['guarded_ms']:.3f} | {s['added_ms']:+.3f} |"
        )
    rows += [
        "",
        "The added time is the freshness check (one generation read) plus the guardrail's word "
        "check and trace; docs/state.md explains the check.",
        "",
        "## In process: GuardrailStore.refresh() with nothing changed",
        "",
        "| store | one at a time, µs per call | 100 at once, µs per call | reads for 100 at once |",
        "|---|---|---|---|",
    ]
    for name in ("sqlite", "postgresql"):
        s = r[f"refresh_{name}"]
        rows.append(
            f"| {name} | {s['sequential_us_per_call']:.1f} | "
            f"{s['concurrent_100_us_per_call']:.1f} | {s['concurrent_100_reads']} |"
        )
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    main()
