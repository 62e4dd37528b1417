"""The results of a benchmark run: the JSON document and the table printed at the end."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from outcrop.cli.bench.runner import RunOutcome
from outcrop.cli.bench.stats import PERCENTILES, Distribution, Summary, summarize, timeline


@dataclass(frozen=True, slots=True)
class RunInfo:
    """What was measured, for the record."""

    endpoint_url: str
    model_id: str
    operation: str
    client: str
    plan: dict[str, Any]
    max_tokens: int
    prompts: int
    started_at: datetime


def bucket_width(duration: float) -> float:
    """About 60 timeline points whatever the run's length, at least 0.25 s wide."""
    for width in (0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0):
        if duration / width <= 60:
            return width
    return 300.0


def document(info: RunInfo, outcome: RunOutcome, summary: Summary | None = None) -> dict[str, Any]:
    """The JSON results of a run (`summary`: the outcome's, when already computed)."""
    if summary is None:
        summary = summarize(outcome.results, outcome.duration)
    width = bucket_width(outcome.duration)
    lag = Distribution.of(outcome.send_lags)
    return {
        "tool": "outcrop bench",
        "started_at": info.started_at.astimezone(UTC).isoformat(timespec="seconds"),
        "target": {
            "endpoint_url": info.endpoint_url,
            "model_id": info.model_id,
            "operation": info.operation,
        },
        "plan": {**info.plan, "max_tokens": info.max_tokens, "prompts": info.prompts},
        "interrupted": outcome.interrupted,
        "cancelled_at_deadline": outcome.cancelled_at_deadline,
        "summary": summary.to_json(),
        "client": {
            "kind": info.client,
            "cpu_seconds": outcome.cpu_seconds,
            "cpu_utilization": outcome.cpu_seconds / outcome.duration if outcome.duration else 0,
            "send_lag_s": None if lag is None else lag.to_json(),
        },
        "timeline": {
            "bucket_s": width,
            "buckets": [b.to_json() for b in timeline(outcome.results, outcome.duration, width)],
        },
    }


def write_json(path: Path, doc: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")


def render(console: Console, doc: dict[str, Any], summary: Summary) -> None:
    """The summary table and headline numbers."""
    title = "Partial results (interrupted)" if doc["interrupted"] else "Results"
    table = Table(title=title, title_justify="left")
    table.add_column("latency (ms)")
    for q in PERCENTILES:
        table.add_column(f"p{q:g}", justify="right")
    table.add_column("mean", justify="right")
    table.add_column("max", justify="right")
    for name, dist in (
        ("time to first token", summary.ttft),
        ("inter-token", summary.itl),
        ("end to end", summary.e2e),
    ):
        if dist is None:
            table.add_row(name, *["-"] * (len(PERCENTILES) + 2))
            continue
        table.add_row(
            name,
            *(f"{dist.p(q) * 1000:.1f}" for q in PERCENTILES),
            f"{dist.mean * 1000:.1f}",
            f"{dist.max * 1000:.1f}",
        )
    console.print(table)
    rate = summary.stream_rate
    lines = [
        f"requests: {summary.requests} ok, {summary.failed} failed in {summary.duration:.2f} s"
        f" → {summary.requests_per_s:.2f} req/s",
        f"output tokens: {summary.output_tokens} → {summary.output_tokens_per_s:.1f} tokens/s"
        " aggregate"
        + (
            f"; per stream: p50 {rate.p(50):.1f}, mean {rate.mean:.1f}, slowest {rate.min:.1f}"
            " tokens/s"
            if rate is not None
            else ""
        ),
    ]
    if doc.get("cancelled_at_deadline"):
        lines.append(
            f"cancelled at the deadline: {doc['cancelled_at_deadline']} requests in flight "
            "(--cancel-at-deadline), not counted"
        )
    if summary.errors:
        lines.append(
            "errors: " + ", ".join(f"{name} × {count}" for name, count in summary.errors.items())
        )
    client = doc["client"]
    lines.append(
        f"client ({client['kind']}): {client['cpu_seconds']:.2f} s CPU"
        f" ({client['cpu_utilization']:.0%} of one core)"
    )
    lag = client.get("send_lag_s")
    if lag is not None:
        lines.append(f"send lag behind schedule: p99 {lag['p99'] * 1000:.1f} ms")
    for line in lines:
        console.print(line, markup=False, highlight=False, soft_wrap=True)
